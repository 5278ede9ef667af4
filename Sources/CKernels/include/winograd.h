// Winograd F(4x4, 3x3) and F(2x2, 3x3) transforms for stride-1 3x3 convolutions (Lavin & Gray, "Fast
// Algorithms for Convolutional Neural Networks", 2016), in plain C so the compiler vectorises
// them for the CPU at hand (function clones for x86-64-v3 and baseline x86-64, and x86-64-v4 for
// the 16-lane functions, chosen by the loader), and the GEMM between them (pd_wino43_gemm); PercepCore's ConvWinograd runs them in
// parallel.
//
// Tiles: the output [N][K][OH][OW] is cut into 4x4 tiles, tilesH = ceil(OH/4) by
// tilesW = ceil(OW/4) per image, numbered t = (n*tilesH + ty)*tilesW + tx. A call handles the
// tiles t0 .. t0+count-1 of one block; transformed data lies as [36][channels][ld] with the
// block's tiles contiguous (ld >= count rounded up to 8), so each of the 36 positions is one GEMM
// operand.
#ifndef PERCEP_CKERNELS_WINOGRAD_H
#define PERCEP_CKERNELS_WINOGRAD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Rows of U per GEMM panel (the register block of pd_wino43_gemm).
#define PD_WINO_MR 6

/// U = G w G^T per (row, column) channel pair for w: [K][C][3][3], written as GEMM panels of
/// PD_WINO_MR rows: rows = K and cols = C, panels = ceil(rows / PD_WINO_MR) (padding rows zero).
/// With `transpose_flip`, the weights of the backward-data convolution instead: rows = C,
/// cols = K, from w'[c][k] = w[k][c] rotated by 180 degrees. A panel of one position holds
/// ceil(cols / 8) groups of PD_WINO_MR x 8 floats (row r, column 8g + j at [g][r][j]; columns past
/// `cols` zero). Writes the panels panel_begin..panel_end-1 of every position to
/// u[36][u_panels][panel], panel_begin first (u_panels >= panel_end - panel_begin): the whole U
/// with u_panels = panels, or a few panels into a small buffer.
void pd_wino43_weights(const float *w, int k_out, int c_in, int transpose_flip, int panel_begin, int panel_end, int u_panels,
                       float *u);

/// pd_wino43_weights one kernel at a time without vector transposes: the reference the tests
/// hold it to, bit for bit.
void pd_wino43_weights_reference(const float *w, int k_out, int c_in, int transpose_flip, int panel_begin, int panel_end,
                                 int u_panels, float *u);

/// m[rows][ld] = U . v for one transform position: U that position's panels from
/// pd_wino43_weights, v: [cols][ld]. Columns 0..count rounded up to a multiple of 8 are
/// computed (ld >= that; the extra columns hold whatever v's do), with no packing copies.
void pd_wino43_gemm(const float *u, const float *v, int rows, int cols, int count, int ld, float *m);

/// pd_wino43_gemm in blocks of 32 columns, sixteen-float vectors: one register each on AVX-512
/// (an x86-64-v4 clone), two elsewhere. Bit-identical to pd_wino43_gemm on the same CPU.
void pd_wino43_gemm_wide(const float *u, const float *v, int rows, int cols, int count, int ld, float *m);

/// 1 when the CPU has AVX-512F (pd_wino43_gemm_wide then runs on 512-bit registers), else 0.
int pd_cpu_has_avx512f(void);

/// V[36][C][ld] for channels c_begin..c_end-1: B^T d B of each tile's 6x6 input patch, the
/// patch of tile (ty, tx) starting at row 4*ty - pad, column 4*tx - pad of x: [N][C][H][W]
/// (outside the image reads 0).
void pd_wino43_input(const float *x, int channels, int h, int w, int pad, int tiles_h, int tiles_w,
                     long t0, int count, int c_begin, int c_end, float *v, int ld);

/// The tile transforms come twice: on groups of 8 tiles (8-float vectors, AVX2's register), and
/// as the `_wide` functions on groups of 16 (one register each on AVX-512, an x86-64-v4 clone;
/// two elsewhere). Every lane does the same arithmetic, so on one CPU the two widths give the
/// same bits; only the speed differs.
void pd_wino43_input_wide(const float *x, int channels, int h, int w, int pad, int tiles_h, int tiles_w,
                          long t0, int count, int c_begin, int c_end, float *v, int ld);

/// y[n][k][4ty+i][4tx+j] = A^T m A (+ bias[k], then max(., 0) when `relu`) for channels
/// k_begin..k_end-1 of m: [36][K][ld], cropped to y: [N][K][oh][ow]. With `mask` (else NULL):
/// sign bits over y, one row of `mask_row_words` 64-bit words per [n][k] plane, element (r, c) at
/// bit r*ow + c; an element whose bit is clear is written as 0 (the backward of a ReLU in front of
/// the convolution, applied while its input gradient is written).
void pd_wino43_output(const float *m, int channels, int ld, long t0, int count, int oh, int ow,
                      int tiles_h, int tiles_w, const float *bias, int relu, const uint64_t *mask, int mask_row_words,
                      int k_begin, int k_end, float *y);
/// pd_wino43_output on groups of 16 tiles (see pd_wino43_input_wide).
void pd_wino43_output_wide(const float *m, int channels, int ld, long t0, int count, int oh, int ow,
                           int tiles_h, int tiles_w, const float *bias, int relu, const uint64_t *mask, int mask_row_words,
                           int k_begin, int k_end, float *y);

/// The weight gradient's two transforms. For channels k_begin..k_end-1 of dy: [N][K][oh][ow]
/// (K = channels), A g A^T of each tile's 4x4 patch g (outputs past oh, ow read 0), the gradient
/// of the tile's M = U (.) V in the forward's y = A^T M A, into dm[36][rows][ld] whose row r is
/// channel k_first + r.
void pd_wino43_output_grad(const float *dy, int channels, int oh, int ow, int tiles_h, int tiles_w, long t0, int count,
                           int k_begin, int k_end, int k_first, int rows, float *dm, int ld);
/// pd_wino43_output_grad on groups of 16 tiles (see pd_wino43_input_wide).
void pd_wino43_output_grad_wide(const float *dy, int channels, int oh, int ow, int tiles_h, int tiles_w, long t0, int count,
                                int k_begin, int k_end, int k_first, int rows, float *dm, int ld);
/// dw[k][c][3][3] = G^T S G for k in k_begin..k_end-1 and every c, S the 6x6 matrix
/// du[0..36)[k][c] (du: [36][K][C], the products of pd_wino43_output_grad's dm and
/// pd_wino43_input's V summed over the tiles): the gradient of w through U = G w G^T.
void pd_wino43_weight_grad(const float *du, int k_out, int c_in, int k_begin, int k_end, float *dw);
/// pd_wino43_weight_grad on groups of 16 input channels (see pd_wino43_input_wide).
void pd_wino43_weight_grad_wide(const float *du, int k_out, int c_in, int k_begin, int k_end, float *dw);

/// Winograd F(2x2, 3x3): 2x2 output tiles from 4x4 input patches, 16 transform positions;
/// tiles_h = ceil(OH/2), tiles_w =
/// ceil(OW/2). Transformed data lies as [16][channels][ld], and each position's GEMM is
/// pd_wino43_gemm (or _wide), the same kernel on U's and V's 16 positions. Its transforms hold only
/// 0, +-1 and 1/2, so it rounds about as a direct convolution does (forward only).
///
/// U = G w G^T for w: [K][C][3][3] in pd_wino43_weights's panel layout (rows K, columns C), panels
/// panel_begin..panel_end-1 of each of the 16 positions into u[16][u_panels][panel].
void pd_wino23_weights(const float *w, int k_out, int c_in, int panel_begin, int panel_end, int u_panels, float *u);
/// V[16][C][ld] for channels c_begin..c_end-1: B^T d B of each tile's 4x4 input patch, that of
/// tile (ty, tx) starting at row 2*ty - pad_h, column 2*tx - pad_w (the paddings may differ;
/// outside the image reads 0); groups of 8 tiles, or of 16 in the _wide twin (same bits).
void pd_wino23_input(const float *x, int channels, int h, int w, int pad_h, int pad_w, int tiles_h, int tiles_w,
                     long t0, int count, int c_begin, int c_end, float *v, int ld);
void pd_wino23_input_wide(const float *x, int channels, int h, int w, int pad_h, int pad_w, int tiles_h, int tiles_w,
                          long t0, int count, int c_begin, int c_end, float *v, int ld);
/// y[n][k][2ty+i][2tx+j] = A^T m A (+ bias[k], then max(., 0) when `relu`) for channels
/// k_begin..k_end-1 of m: [16][K][ld], cropped to y: [N][K][oh][ow]; the _wide twin on groups of 16.
void pd_wino23_output(const float *m, int channels, int ld, long t0, int count, int oh, int ow, int tiles_h, int tiles_w,
                      const float *bias, int relu, int k_begin, int k_end, float *y);
void pd_wino23_output_wide(const float *m, int channels, int ld, long t0, int count, int oh, int ow, int tiles_h, int tiles_w,
                           const float *bias, int relu, int k_begin, int k_end, float *y);
#ifdef __cplusplus
}
#endif

#endif
