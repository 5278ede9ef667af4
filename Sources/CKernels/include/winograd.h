// Winograd F(4x4, 3x3) transforms for stride-1 3x3 convolutions (Lavin & Gray, "Fast
// Algorithms for Convolutional Neural Networks", 2016), in plain C so the compiler vectorises
// them for the CPU at hand (function clones for x86-64-v3 and baseline x86-64, chosen by the
// loader). The GEMMs between the transforms are the caller's (PercepCore's ConvWinograd).
//
// Tiles: the output [N][K][OH][OW] is cut into 4x4 tiles, tilesH = ceil(OH/4) by
// tilesW = ceil(OW/4) per image, numbered t = (n*tilesH + ty)*tilesW + tx. A call handles the
// tiles t0 .. t0+count-1 of one block; transformed data lies as [36][channels][ld] with the
// block's tiles contiguous (ld >= count), so each of the 36 positions is one GEMM operand.
#ifndef PERCEP_CKERNELS_WINOGRAD_H
#define PERCEP_CKERNELS_WINOGRAD_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// U[36][K][C] = G w G^T for w: [K][C][3][3], rows r_begin..r_end-1 of each U[p]. With
/// `transpose_flip`, the weights of the backward-data convolution instead: U[36][C][K] from
/// w'[c][k] = w[k][c] rotated by 180 degrees.
void pd_wino43_weights(const float *w, int k_out, int c_in, int transpose_flip, int r_begin, int r_end, float *u);

/// V[36][C][ld] for channels c_begin..c_end-1: B^T d B of each tile's 6x6 input patch, the
/// patch of tile (ty, tx) starting at row 4*ty - pad, column 4*tx - pad of x: [N][C][H][W]
/// (outside the image reads 0).
void pd_wino43_input(const float *x, int channels, int h, int w, int pad, int tiles_h, int tiles_w,
                     long t0, int count, int c_begin, int c_end, float *v, int ld);

/// y[n][k][4ty+i][4tx+j] = A^T m A (+ bias[k], then max(., 0) when `relu`) for channels
/// k_begin..k_end-1 of m: [36][K][ld], cropped to y: [N][K][oh][ow].
void pd_wino43_output(const float *m, int channels, int ld, long t0, int count, int oh, int ow,
                      int tiles_h, int tiles_w, const float *bias, int relu, int k_begin, int k_end, float *y);

#ifdef __cplusplus
}
#endif

#endif
