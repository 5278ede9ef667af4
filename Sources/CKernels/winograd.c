// Winograd F(4x4, 3x3) transforms; see include/winograd.h.
//
// Work goes in groups of 8 tiles: a group's 6x6 patches are gathered into d[36][8], so every
// transform step is an operation on 8-float vectors (one AVX register) and each of the 36
// results is stored as 8 contiguous floats of the GEMM operand. The matrices are the usual
// ones for the interpolation points 0, 1, -1, 2, -2 and infinity:
//   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
//   G   = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
//   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]

#include "winograd.h"
#include "winograd_common.h"

// out[i][*] = (B^T in)[i][*] for six rows of `lanes` values (in and out rows `stride` apart). The
// tile transforms run on groups of 8 or 16 tiles (`lanes`, a constant in each caller once inlined,
// so the loop is one vector operation per row); every lane does the same arithmetic either way.
PD_INLINE void bt_rows(const float *in, float *out, int stride, const int lanes) {
  for (int l = 0; l < lanes; l++) {
    float d0 = in[0 * stride + l], d1 = in[1 * stride + l], d2 = in[2 * stride + l];
    float d3 = in[3 * stride + l], d4 = in[4 * stride + l], d5 = in[5 * stride + l];
    out[0 * stride + l] = 4 * d0 - 5 * d2 + d4;
    out[1 * stride + l] = -4 * d1 - 4 * d2 + d3 + d4;
    out[2 * stride + l] = 4 * d1 - 4 * d2 - d3 + d4;
    out[3 * stride + l] = -2 * d1 - d2 + 2 * d3 + d4;
    out[4 * stride + l] = 2 * d1 - d2 - 2 * d3 + d4;
    out[5 * stride + l] = 4 * d1 - 5 * d3 + d5;
  }
}

// out[i][*] = (A^T in)[i][*]: four rows from six (in rows `in_stride`, out rows `out_stride` apart).
PD_INLINE void at_rows(const float *in, int in_stride, float *out, int out_stride, const int lanes) {
  for (int l = 0; l < lanes; l++) {
    float m0 = in[0 * in_stride + l], m1 = in[1 * in_stride + l], m2 = in[2 * in_stride + l];
    float m3 = in[3 * in_stride + l], m4 = in[4 * in_stride + l], m5 = in[5 * in_stride + l];
    float s12 = m1 + m2, d12 = m1 - m2, s34 = m3 + m4, d34 = m3 - m4;
    out[0 * out_stride + l] = m0 + s12 + s34;
    out[1 * out_stride + l] = d12 + 2 * d34;
    out[2 * out_stride + l] = s12 + 4 * s34;
    out[3 * out_stride + l] = d12 + 8 * d34 + m5;
  }
}

// out[i][*] = (G in)[i][*]: six rows from three (in rows `in_stride`, out rows `out_stride` apart).
// Neither G helper contracts a*b + c into one FMA: the vector and the per-kernel transforms then
// round alike, and so do the CPU-specific clones.
PD_INLINE void g_rows(const float *in, int in_stride, float *out, int out_stride) {
#pragma clang fp contract(off)
  for (int l = 0; l < GROUP; l++) {
    float g0 = in[0 * in_stride + l], g1 = in[1 * in_stride + l], g2 = in[2 * in_stride + l];
    float s = g0 + g2, a = g0 * (1.0f / 24) + g2 * (1.0f / 6), b = g1 * (1.0f / 12);
    out[0 * out_stride + l] = g0 * 0.25f;
    out[1 * out_stride + l] = -(s + g1) * (1.0f / 6);
    out[2 * out_stride + l] = -(s - g1) * (1.0f / 6);
    out[3 * out_stride + l] = a + b;
    out[4 * out_stride + l] = a - b;
    out[5 * out_stride + l] = g2;
  }
}

// out[i] = (G in)[i] for six outputs from three vectors: g_rows's arithmetic, expression for
// expression, on whole vectors (so each lane rounds as g_rows's lanes do).
PD_INLINE void g_vectors(pd_v8 g0, pd_v8 g1, pd_v8 g2, pd_v8 out[6]) {
#pragma clang fp contract(off)
  const pd_v8 s = g0 + g2, a = g0 * (1.0f / 24) + g2 * (1.0f / 6), b = g1 * (1.0f / 12);
  out[0] = g0 * 0.25f;
  out[1] = -(s + g1) * (1.0f / 6);
  out[2] = -(s - g1) * (1.0f / 6);
  out[3] = a + b;
  out[4] = a - b;
  out[5] = g2;
}

// Rows r of one panel's group of eight columns c0.. (lanes of them valid) into stage[36][MR]: see
// pd_wino43_weights. Vectors stay inside this inlined helper, so the baseline clone never passes
// one by value.
PD_INLINE void weights_group(const float *w, int c_in, int transpose_flip, int rows, int row0, int c0, int lanes,
                             pd_v8 stage[36][PD_WINO_MR]) {
  for (int r = 0; r < PD_WINO_MR; r++) {
    const int row = row0 + r;
    if (row >= rows) {
      // Padding rows of the last panel: zeros, which the GEMM multiplies and never stores.
      for (int p = 0; p < 36; p++) stage[p][r] = (pd_v8){0};
      continue;
    }
    pd_v8 taps[9];
    pd_kernel_taps(w, c_in, transpose_flip, row, c0, lanes, taps);
    // t[i][b] = sum_a G[i][a] g[a][b] (per kernel column b), then U[i][j] = sum_b t[i][b] G[j][b].
    pd_v8 t[6][3], col[6];
    for (int b = 0; b < 3; b++) {
      g_vectors(taps[b], taps[3 + b], taps[6 + b], col);
      for (int i = 0; i < 6; i++) t[i][b] = col[i];
    }
    for (int i = 0; i < 6; i++) {
      g_vectors(t[i][0], t[i][1], t[i][2], col);
      for (int j = 0; j < 6; j++) stage[i * 6 + j][r] = col[j];
    }
  }
}

PD_CLONES
void pd_wino43_weights(const float *w, int k_out, int c_in, int transpose_flip, int panel_begin, int panel_end, int u_panels,
                       float *u) {
  // The vector lanes are eight GEMM columns of one row: a group's 3x3 kernels are loaded as eight
  // rows of taps and transposed (tap ab of the eight kernels in one vector), G g G^T runs on
  // whole vectors, and each position's result is the row's eight floats of the GEMM's block
  // layout (PD_WINO_MR rows of eight columns per group), so nothing is gathered or scattered a
  // float at a time. The six rows of a group are staged and written as 48 contiguous floats
  // (three cache lines) per position: the positions lie a multiple of 4 KiB apart, in the same
  // cache sets, and lines written piecemeal were evicted before they were full.
  const int rows = transpose_flip ? c_in : k_out, cols = transpose_flip ? k_out : c_in;
  const int groups = (cols + GROUP - 1) / GROUP;
  const size_t panel_floats = (size_t)groups * PD_WINO_MR * GROUP, position_step = (size_t)u_panels * panel_floats;
  pd_v8 stage[36][PD_WINO_MR];
  for (int panel = panel_begin; panel < panel_end; panel++) {
    for (int group = 0; group < groups; group++) {
      const int c0 = group * GROUP, lanes = cols - c0 < GROUP ? cols - c0 : GROUP;
      // The next group's kernels, while this one is transformed: backward-data reads eight
      // kernels a whole weight row apart (w[k][c] for eight k), a stride the hardware prefetcher
      // does not follow, and the loads of those kernels were the slowest part of the transform.
      const int row0 = panel * PD_WINO_MR, next = c0 + GROUP;
      if (next < cols && row0 < rows) {
        const int valid_rows = rows - row0 < PD_WINO_MR ? rows - row0 : PD_WINO_MR;
        if (transpose_flip) {
          // Column k's kernels of the panel's rows lie together: valid_rows x 9 floats.
          for (int l = 0; l < GROUP && next + l < cols; l++) {
            const char *k = (const char *)kernel_of(w, c_in, 1, row0, next + l);
            for (int b = 0; b < valid_rows * 9 * 4; b += 64) __builtin_prefetch(k + b);
          }
        } else {
          // Row o's kernels of the next eight columns lie together: 72 floats.
          for (int r = 0; r < valid_rows; r++) {
            const char *k = (const char *)kernel_of(w, c_in, 0, row0 + r, next);
            for (int b = 0; b < GROUP * 9 * 4; b += 64) __builtin_prefetch(k + b);
          }
        }
      }
      weights_group(w, c_in, transpose_flip, rows, row0, c0, lanes, stage);
      float *dst = u + (size_t)(panel - panel_begin) * panel_floats + (size_t)group * PD_WINO_MR * GROUP;
      for (int p = 0; p < 36; p++) __builtin_memcpy(dst + p * position_step, stage[p], sizeof stage[p]);
    }
  }
}

void pd_wino43_weights_reference(const float *w, int k_out, int c_in, int transpose_flip, int panel_begin, int panel_end,
                                 int u_panels, float *u) {
  // One kernel at a time, in lane 0 of g_rows's arrays: the arithmetic of pd_wino43_weights
  // without its transposes, for the tests.
  const int rows = transpose_flip ? c_in : k_out, cols = transpose_flip ? k_out : c_in;
  const int groups = (cols + GROUP - 1) / GROUP;
  const size_t panel_floats = (size_t)groups * PD_WINO_MR * GROUP, position_step = (size_t)u_panels * panel_floats;
  for (int panel = panel_begin; panel < panel_end; panel++)
    for (int r = 0; r < PD_WINO_MR; r++)
      for (int c = 0; c < groups * GROUP; c++) {
        const int row = panel * PD_WINO_MR + r;
        float g[9 * GROUP] = {0}, t[18 * GROUP] = {0}, v[36 * GROUP] = {0};
        if (row < rows) {
          // Columns past `cols` transform zero taps, as the vector lanes past them do.
          if (c < cols) {
            const float *k = kernel_of(w, c_in, transpose_flip, row, c);
            for (int ab = 0; ab < 9; ab++) g[ab * GROUP] = k[transpose_flip ? 8 - ab : ab];
          }
          for (int b = 0; b < 3; b++) g_rows(g + b * GROUP, 3 * GROUP, t + b * GROUP, 3 * GROUP);
          for (int i = 0; i < 6; i++) g_rows(t + i * 3 * GROUP, GROUP, v + i * 6 * GROUP, GROUP);
        }
        float *dst = u + (size_t)(panel - panel_begin) * panel_floats + ((size_t)(c / GROUP) * PD_WINO_MR + r) * GROUP + c % GROUP;
        for (int p = 0; p < 36; p++) dst[p * position_step] = v[p * GROUP];
      }
}

// The GEMM's register block: PD_WINO_MR rows of U by two vectors of V (2 x lanes columns),
// twelve accumulators: with 8-float vectors the shape that fills the 16 AVX registers (BLIS's
// Haswell kernel), with 16-float vectors the same on AVX-512. One definition for both widths, so
// each lane sums the same products in the same order and the two GEMMs agree bit for bit.
// m[0..valid_rows)[0..2 x lanes) (row stride ld) = panel . v[0..cols)[..] (row stride ld), the
// panel in pd_wino43_weights's layout: per group of eight columns, PD_WINO_MR rows of eight.
// Row r of column c0 + j of a panel (c0 a multiple of 8, j < 8): panel[c0 * PD_WINO_MR + 8 r + j].

#define PD_DEFINE_BLOCK(name, vec, lanes)                                                                   \
  PD_INLINE void name(const float *panel, const float *v, int cols, int ld, float *m, int valid_rows) {    \
    vec a00 = {0}, a01 = {0}, a10 = {0}, a11 = {0}, a20 = {0}, a21 = {0};                                   \
    vec a30 = {0}, a31 = {0}, a40 = {0}, a41 = {0}, a50 = {0}, a51 = {0};                                   \
    /* Columns in U's groups of eight: the group's rows are 8 floats apart. */                              \
    for (int c0 = 0; c0 < cols; c0 += GROUP) {                                                              \
      const float *group = panel + (size_t)c0 * PD_WINO_MR;                                                 \
      const int n = cols - c0 < GROUP ? cols - c0 : GROUP;                                                  \
      const float *vc = v + (size_t)c0 * ld;                                                                \
      for (int j = 0; j < n; j++, vc += ld) {                                                               \
        vec b0, b1;                                                                                         \
        __builtin_memcpy(&b0, vc, sizeof b0);                                                               \
        __builtin_memcpy(&b1, vc + (lanes), sizeof b1);                                                     \
        const float *a = group + j;                                                                         \
        a00 += a[0] * b0; a01 += a[0] * b1;                                                                 \
        a10 += a[8] * b0; a11 += a[8] * b1;                                                                 \
        a20 += a[16] * b0; a21 += a[16] * b1;                                                               \
        a30 += a[24] * b0; a31 += a[24] * b1;                                                               \
        a40 += a[32] * b0; a41 += a[32] * b1;                                                               \
        a50 += a[40] * b0; a51 += a[40] * b1;                                                               \
      }                                                                                                     \
    }                                                                                                       \
    const vec rows[6][2] = {{a00, a01}, {a10, a11}, {a20, a21}, {a30, a31}, {a40, a41}, {a50, a51}};        \
    for (int i = 0; i < valid_rows && i < PD_WINO_MR; i++) {                                                \
      __builtin_memcpy(m + (size_t)i * ld, &rows[i][0], sizeof(vec));                                       \
      __builtin_memcpy(m + (size_t)i * ld + (lanes), &rows[i][1], sizeof(vec));                             \
    }                                                                                                       \
  }

PD_DEFINE_BLOCK(pd_block_6x16, pd_v8, 8)

// The same for the last 8 columns when the width is not a multiple of 16.
PD_INLINE void pd_block_6x8(const float *panel, const float *v, int cols, int ld, float *m, int valid_rows) {
  pd_v8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0}, a5 = {0};
  for (int c0 = 0; c0 < cols; c0 += GROUP) {
    const float *group = panel + (size_t)c0 * PD_WINO_MR;
    const int n = cols - c0 < GROUP ? cols - c0 : GROUP;
    const float *vc = v + (size_t)c0 * ld;
    for (int j = 0; j < n; j++, vc += ld) {
      const pd_v8 b = pd_load8(vc);
      const float *a = group + j;
      a0 += a[0] * b; a1 += a[8] * b; a2 += a[16] * b;
      a3 += a[24] * b; a4 += a[32] * b; a5 += a[40] * b;
    }
  }
  const pd_v8 rows[6] = {a0, a1, a2, a3, a4, a5};
  for (int i = 0; i < valid_rows && i < PD_WINO_MR; i++) pd_store8(m + (size_t)i * ld, rows[i]);
}

// Floats of one U panel (one position) for `cols` columns: groups of eight, PD_WINO_MR rows each.
PD_INLINE size_t pd_panel_floats(int cols) { return (size_t)(cols + GROUP - 1) / GROUP * GROUP * PD_WINO_MR; }

// Columns j..width-1 of the GEMM in 16- and 8-column blocks. Column blocks outside, row panels
// inside: one block of V (cols x 16) is read by every panel while it is in cache; U streams once
// per column block.
PD_INLINE void pd_gemm_columns(const float *u, const float *v, int rows, int cols, int ld, float *m, int j, int width) {
  const int panels = (rows + PD_WINO_MR - 1) / PD_WINO_MR;
  for (; j + 16 <= width; j += 16)
    for (int i = 0; i < panels; i++)
      pd_block_6x16(u + (size_t)i * pd_panel_floats(cols), v + j, cols, ld, m + (size_t)i * PD_WINO_MR * ld + j, rows - i * PD_WINO_MR);
  if (j < width)
    for (int i = 0; i < panels; i++)
      pd_block_6x8(u + (size_t)i * pd_panel_floats(cols), v + j, cols, ld, m + (size_t)i * PD_WINO_MR * ld + j, rows - i * PD_WINO_MR);
}

PD_CLONES
void pd_wino43_gemm(const float *u, const float *v, int rows, int cols, int count, int ld, float *m) {
  pd_gemm_columns(u, v, rows, cols, ld, m, 0, (count + GROUP - 1) / GROUP * GROUP);
}

// Sixteen floats, one AVX-512 register.
typedef float pd_v16 __attribute__((vector_size(64)));

// Its 32-column twin for the 16-lane GEMM.
PD_DEFINE_BLOCK(pd_block_6x32, pd_v16, 16)

PD_CLONES_WIDE
void pd_wino43_gemm_wide(const float *u, const float *v, int rows, int cols, int count, int ld, float *m) {
  const int width = (count + GROUP - 1) / GROUP * GROUP;
  const int panels = (rows + PD_WINO_MR - 1) / PD_WINO_MR;
  int j = 0;
  for (; j + 32 <= width; j += 32)
    for (int i = 0; i < panels; i++)
      pd_block_6x32(u + (size_t)i * pd_panel_floats(cols), v + j, cols, ld, m + (size_t)i * PD_WINO_MR * ld + j, rows - i * PD_WINO_MR);
  pd_gemm_columns(u, v, rows, cols, ld, m, j, width);
}

int pd_cpu_has_avx512f(void) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") ? 1 : 0;
#else
  return 0;
#endif
}

// Eight tiles side by side in one tile row read six input rows of 34 consecutive columns from
// column x0: lane l's patch column j is column 4l + j. Writes d[(i*6 + j) * stride + l] for the six
// rows (rows[i] points at column x0 of row i, 34 readable floats). The lanes are gathered with
// vector shuffles: the first 32 columns are an 8x4 (tile, column) matrix to transpose; columns 4
// and 5 are columns 0 and 1 of the next tile.
PD_INLINE void gather_row_of_tiles(const float *const rows[6], float *d, int stride) {
  for (int i = 0; i < 6; i++) {
    const float *r = rows[i];
    const pd_v8 a = pd_load8(r), b = pd_load8(r + 8), c = pd_load8(r + 16), e = pd_load8(r + 24);
    // [t0c0 t2c0 t0c1 t2c1 t1c0 t3c0 t1c1 t3c1] and the same for columns 2, 3 and tiles 4..7.
    const pd_v8 ab_lo = __builtin_shufflevector(a, b, 0, 8, 1, 9, 4, 12, 5, 13);
    const pd_v8 ab_hi = __builtin_shufflevector(a, b, 2, 10, 3, 11, 6, 14, 7, 15);
    const pd_v8 ce_lo = __builtin_shufflevector(c, e, 0, 8, 1, 9, 4, 12, 5, 13);
    const pd_v8 ce_hi = __builtin_shufflevector(c, e, 2, 10, 3, 11, 6, 14, 7, 15);
    const pd_v8 col0 = __builtin_shufflevector(ab_lo, ce_lo, 0, 4, 1, 5, 8, 12, 9, 13);
    const pd_v8 col1 = __builtin_shufflevector(ab_lo, ce_lo, 2, 6, 3, 7, 10, 14, 11, 15);
    const pd_v8 col2 = __builtin_shufflevector(ab_hi, ce_hi, 0, 4, 1, 5, 8, 12, 9, 13);
    const pd_v8 col3 = __builtin_shufflevector(ab_hi, ce_hi, 2, 6, 3, 7, 10, 14, 11, 15);
    const pd_v8 tail = {r[32], r[33], 0, 0, 0, 0, 0, 0};
    const pd_v8 col4 = __builtin_shufflevector(col0, tail, 1, 2, 3, 4, 5, 6, 7, 8);
    const pd_v8 col5 = __builtin_shufflevector(col1, tail, 1, 2, 3, 4, 5, 6, 7, 9);
    float *out = d + i * 6 * stride;
    pd_store8(out + 0 * stride, col0); pd_store8(out + 1 * stride, col1); pd_store8(out + 2 * stride, col2);
    pd_store8(out + 3 * stride, col3); pd_store8(out + 4 * stride, col4); pd_store8(out + 5 * stride, col5);
  }
}

// The 6x6 input patches of channel c of the tiles first .. first+lanes-1 (lanes <= 8) into
// d[p * stride + l] for the 36 positions p, lanes past `lanes` zero. `padded` is scratch for rows
// that reach past the image.
PD_INLINE void gather_eight_patches(const float *x, int channels, int h, int w, int pad, int tiles_w, long per_image, int c,
                                    long first, int lanes, float *d, int stride, float padded[6][40]) {
  const int first_tx = (int)(first % per_image) % tiles_w;
  if (lanes == GROUP && first_tx + GROUP <= tiles_w) {
    // The common case on large maps: eight tiles of one tile row, read as six row segments.
    const long n = first / per_image;
    const int ty = (int)(first % per_image) / tiles_w;
    const float *plane = x + ((size_t)n * channels + c) * h * w;
    const int y0 = 4 * ty - pad, x0 = 4 * first_tx - pad;
    const float *rows[6];
    for (int i = 0; i < 6; i++) {
      const int yy = y0 + i;
      rows[i] = yy >= 0 && yy < h && x0 >= 0 && x0 + 34 <= w ? plane + (size_t)yy * w + x0
                                                              : pd_padded_row(plane, h, w, yy, x0, 34, padded[i], 40);
    }
    gather_row_of_tiles(rows, d, stride);
    return;
  }
  for (int l = 0; l < GROUP; l++) {
    if (l >= lanes) {
      for (int p = 0; p < 36; p++) d[p * stride + l] = 0;
      continue;
    }
    const long t = first + l;
    const long n = t / per_image;
    const int ty = (int)(t % per_image) / tiles_w, tx = (int)(t % per_image) % tiles_w;
    const float *plane = x + ((size_t)n * channels + c) * h * w;
    const int y0 = 4 * ty - pad, x0 = 4 * tx - pad;
    if (y0 >= 0 && x0 >= 0 && y0 + 6 <= h && x0 + 6 <= w) {
      for (int i = 0; i < 6; i++)
        for (int j = 0; j < 6; j++) d[(i * 6 + j) * stride + l] = plane[(size_t)(y0 + i) * w + x0 + j];
    } else {
      for (int i = 0; i < 6; i++)
        for (int j = 0; j < 6; j++) {
          const int yy = y0 + i, xx = x0 + j;
          d[(i * 6 + j) * stride + l] = (yy >= 0 && yy < h && xx >= 0 && xx < w) ? plane[(size_t)yy * w + xx] : 0.0f;
        }
    }
  }
}

// One group of pd_wino43_input for channel c: tiles t0+g0 .. +lanes-1 (lanes <= width), gathered
// eight tiles at a time into d's rows of `width` floats, transformed, stored to V.
PD_INLINE void input_group(const float *x, int channels, int h, int w, int pad, int tiles_w, long per_image, long t0, int c,
                           int g0, int lanes, float *v, int ld, float *d, float *e, float padded[6][40], const int width) {
  for (int half = 0; half < width; half += GROUP) {
    const int half_lanes = lanes - half < 0 ? 0 : (lanes - half < GROUP ? lanes - half : GROUP);
    gather_eight_patches(x, channels, h, w, pad, tiles_w, per_image, c, t0 + g0 + half, half_lanes, d + half, width, padded);
  }
  // Columns of the patch: e[i][j] = sum_r B^T[i][r] d[r][j] (six rows of six columns).
  for (int j = 0; j < 6; j++) bt_rows(d + j * width, e + j * width, 6 * width, width);
  // Rows: V[i][j] = sum_k e[i][k] B^T[j][k].
  for (int i = 0; i < 6; i++) bt_rows(e + i * 6 * width, d + i * 6 * width, width, width);
  if (lanes == width) {
    // A whole group is one vector store per position (a variable-length copy would be a
    // memcpy call per position).
    for (int p = 0; p < 36; p++) {
      float *dst = v + ((size_t)p * channels + c) * ld + g0;
      // 36 rows written in step are more streams than the prefetchers follow: fetch the line
      // four groups ahead in each.
      if (g0 + 4 * width <= ld) __builtin_prefetch(dst + 4 * width, 1);
      __builtin_memcpy(dst, d + p * width, width * sizeof(float));
    }
  } else {
    for (int p = 0; p < 36; p++) {
      float *dst = v + ((size_t)p * channels + c) * ld + g0;
      for (int l = 0; l < lanes; l++) dst[l] = d[p * width + l];
    }
  }
}

// pd_wino43_input on groups of `width` tiles (8 or 16). With 16, a last group of at most eight
// tiles takes 8-float rows (as on maps of 8 tiles per image pair), so no half of zeros is
// transformed; every lane's arithmetic is the same either way.
PD_INLINE void input_transform(const float *x, int channels, int h, int w, int pad, int tiles_w, long t0, int count,
                               int c_begin, int c_end, float *v, int ld, const int width, long per_image) {
  float d[36 * 16], e[36 * 16];
  // Rows of a tile-row group that reach past the image, zero-padded (34 columns used).
  float padded[6][40];
  for (int c = c_begin; c < c_end; c++) {
    for (int g0 = 0; g0 < count; g0 += width) {
      const int lanes = count - g0 < width ? count - g0 : width;
      if (width > GROUP && lanes <= GROUP)
        input_group(x, channels, h, w, pad, tiles_w, per_image, t0, c, g0, lanes, v, ld, d, e, padded, GROUP);
      else
        input_group(x, channels, h, w, pad, tiles_w, per_image, t0, c, g0, lanes, v, ld, d, e, padded, width);
    }
  }
}

PD_CLONES
void pd_wino43_input(const float *x, int channels, int h, int w, int pad, int tiles_h, int tiles_w,
                     long t0, int count, int c_begin, int c_end, float *v, int ld) {
  input_transform(x, channels, h, w, pad, tiles_w, t0, count, c_begin, c_end, v, ld, GROUP, (long)tiles_h * tiles_w);
}

PD_CLONES_WIDE
void pd_wino43_input_wide(const float *x, int channels, int h, int w, int pad, int tiles_h, int tiles_w,
                          long t0, int count, int c_begin, int c_end, float *v, int ld) {
  input_transform(x, channels, h, w, pad, tiles_w, t0, count, c_begin, c_end, v, ld, 2 * GROUP, (long)tiles_h * tiles_w);
}

// The inverse of gather_row_of_tiles for one output row: o[j * stride + l] (column j of lane l's
// tile, four vectors) become the row's 32 consecutive values, lane l's four columns at 4l, stored
// at y after adding `bias` and, with `relu`, replacing negatives by +0 exactly as the scalar path
// does.
PD_INLINE void scatter_row_of_tiles(const float *o, int stride, float bias, int relu, uint32_t keep, float *y) {
  const pd_v8 o0 = pd_load8(o), o1 = pd_load8(o + stride), o2 = pd_load8(o + 2 * stride), o3 = pd_load8(o + 3 * stride);
  // [t0c0 t0c1 t1c0 t1c1 t2c0 t2c1 t3c0 t3c1], columns 2 and 3 likewise, then tiles 4..7.
  const pd_v8 p_lo = __builtin_shufflevector(o0, o1, 0, 8, 1, 9, 2, 10, 3, 11);
  const pd_v8 q_lo = __builtin_shufflevector(o2, o3, 0, 8, 1, 9, 2, 10, 3, 11);
  const pd_v8 p_hi = __builtin_shufflevector(o0, o1, 4, 12, 5, 13, 6, 14, 7, 15);
  const pd_v8 q_hi = __builtin_shufflevector(o2, o3, 4, 12, 5, 13, 6, 14, 7, 15);
  pd_v8 row[4] = {
    __builtin_shufflevector(p_lo, q_lo, 0, 1, 8, 9, 2, 3, 10, 11),
    __builtin_shufflevector(p_lo, q_lo, 4, 5, 12, 13, 6, 7, 14, 15),
    __builtin_shufflevector(p_hi, q_hi, 0, 1, 8, 9, 2, 3, 10, 11),
    __builtin_shufflevector(p_hi, q_hi, 4, 5, 12, 13, 6, 7, 14, 15),
  };
  const pd_v8 zero = {0};
  const pd_i8 lane_bit = {1, 2, 4, 8, 16, 32, 64, 128};
  for (int q = 0; q < 4; q++) {
    pd_v8 value = row[q] + bias;
    if (relu) value = (pd_v8)((pd_i8)value & ~(pd_i8)(value < zero));
    if (keep != 0xFFFFFFFFu) {
      const int byte = (int)((keep >> (8 * q)) & 0xFF);
      const pd_i8 bits = (pd_i8){byte, byte, byte, byte, byte, byte, byte, byte} & lane_bit;
      value = (pd_v8)((pd_i8)value & (pd_i8)(bits != 0));
    }
    pd_store8(y + q * GROUP, value);
  }
}

// Bits bit .. bit+31 of a mask row (all inside the row), bit bit first.
PD_INLINE uint32_t mask_bits32(const uint64_t *row, long bit) {
  const uint64_t *w = row + (bit >> 6);
  const int shift = (int)(bit & 63);
  uint64_t v = w[0] >> shift;
  if (shift > 32) v |= w[1] << (64 - shift);
  return (uint32_t)v;
}

// Writes the transformed tiles first .. first+lanes-1 (lanes <= 8) of channel k: lane l's output
// (i, j) is out[(i*4 + j) * stride + l], cropped to the map, with bias, ReLU and mask as
// pd_wino43_output says.
PD_INLINE void write_eight_tiles(const float *out, int stride, int channels, int k, long first, int lanes, int oh, int ow,
                                 int tiles_w, long per_image, float b, int relu, const uint64_t *mask, int mask_row_words,
                                 float *y) {
  const int first_tx = (int)(first % per_image) % tiles_w;
  if (lanes == GROUP && first_tx + GROUP <= tiles_w && 4 * (first_tx + GROUP) <= ow) {
    // Eight whole tiles of one tile row: each output row is 32 consecutive values.
    const long n = first / per_image;
    const int ty = (int)(first % per_image) / tiles_w;
    float *plane = y + ((size_t)n * channels + k) * oh * ow;
    const uint64_t *mask_row = mask ? mask + ((size_t)n * channels + k) * mask_row_words : NULL;
    for (int i = 0; i < 4 && 4 * ty + i < oh; i++) {
      const long at = (long)(4 * ty + i) * ow + 4 * first_tx;
      scatter_row_of_tiles(out + i * 4 * stride, stride, b, relu, mask_row ? mask_bits32(mask_row, at) : 0xFFFFFFFFu, plane + at);
    }
    return;
  }
  for (int l = 0; l < lanes; l++) {
    const long t = first + l;
    const long n = t / per_image;
    const int ty = (int)(t % per_image) / tiles_w, tx = (int)(t % per_image) % tiles_w;
    float *plane = y + ((size_t)n * channels + k) * oh * ow;
    const uint64_t *mask_row = mask ? mask + ((size_t)n * channels + k) * mask_row_words : NULL;
    for (int i = 0; i < 4 && 4 * ty + i < oh; i++)
      for (int j = 0; j < 4 && 4 * tx + j < ow; j++) {
        const size_t at = (size_t)(4 * ty + i) * ow + 4 * tx + j;
        float value = out[(i * 4 + j) * stride + l] + b;
        if (relu && value < 0) value = 0.0f;
        if (mask_row && !((mask_row[at >> 6] >> (at & 63)) & 1)) value = 0.0f;
        plane[at] = value;
      }
  }
}

// One group of pd_wino43_output for channel k: tiles t0+g0 .. +lanes-1 (lanes <= width) read from
// M, transformed on rows of `width` floats, written eight tiles at a time.
PD_INLINE void output_group(const float *m, int channels, int ld, long t0, int g0, int lanes, int oh, int ow, int tiles_w,
                            long per_image, float b, int relu, const uint64_t *mask, int mask_row_words, int k, float *y,
                            float *in, float *mid, float *out, const int width) {
  if (lanes == width) {
    for (int p = 0; p < 36; p++) {
      const float *src = m + ((size_t)p * channels + k) * ld + g0;
      if (g0 + 4 * width <= ld) __builtin_prefetch(src + 4 * width);   // as in input_group
      __builtin_memcpy(in + p * width, src, width * sizeof(float));
    }
  } else {
    for (int p = 0; p < 36; p++) {
      const float *src = m + ((size_t)p * channels + k) * ld + g0;
      for (int l = 0; l < width; l++) in[p * width + l] = l < lanes ? src[l] : 0.0f;
    }
  }
  // mid[i][j] = sum_a A^T[i][a] in[a][j]: for each column j, rows 6 -> 4.
  for (int j = 0; j < 6; j++) at_rows(in + j * width, 6 * width, mid + j * width, 6 * width, width);
  // out[i][j] = sum_b mid[i][b] A^T[j][b].
  for (int i = 0; i < 4; i++) at_rows(mid + i * 6 * width, width, out + i * 4 * width, width, width);
  for (int half = 0; half < width && half < lanes; half += GROUP) {
    const int half_lanes = lanes - half < GROUP ? lanes - half : GROUP;
    write_eight_tiles(out + half, width, channels, k, t0 + g0 + half, half_lanes, oh, ow, tiles_w, per_image, b, relu, mask,
                      mask_row_words, y);
  }
}

// pd_wino43_output on groups of `width` tiles (8 or 16), a last group of at most eight on 8-float
// rows (as in input_transform).
PD_INLINE void output_transform(const float *m, int channels, int ld, long t0, int count, int oh, int ow, int tiles_w,
                                long per_image, const float *bias, int relu, const uint64_t *mask, int mask_row_words,
                                int k_begin, int k_end, float *y, const int width) {
  float in[36 * 16], mid[24 * 16], out[16 * 16];
  for (int k = k_begin; k < k_end; k++) {
    const float b = bias ? bias[k] : 0.0f;
    for (int g0 = 0; g0 < count; g0 += width) {
      const int lanes = count - g0 < width ? count - g0 : width;
      if (width > GROUP && lanes <= GROUP)
        output_group(m, channels, ld, t0, g0, lanes, oh, ow, tiles_w, per_image, b, relu, mask, mask_row_words, k, y, in, mid, out,
                     GROUP);
      else
        output_group(m, channels, ld, t0, g0, lanes, oh, ow, tiles_w, per_image, b, relu, mask, mask_row_words, k, y, in, mid, out,
                     width);
    }
  }
}

PD_CLONES
void pd_wino43_output(const float *m, int channels, int ld, long t0, int count, int oh, int ow,
                      int tiles_h, int tiles_w, const float *bias, int relu, const uint64_t *mask, int mask_row_words,
                      int k_begin, int k_end, float *y) {
  output_transform(m, channels, ld, t0, count, oh, ow, tiles_w, (long)tiles_h * tiles_w, bias, relu, mask, mask_row_words, k_begin,
                   k_end, y, GROUP);
}

PD_CLONES_WIDE
void pd_wino43_output_wide(const float *m, int channels, int ld, long t0, int count, int oh, int ow,
                           int tiles_h, int tiles_w, const float *bias, int relu, const uint64_t *mask, int mask_row_words,
                           int k_begin, int k_end, float *y) {
  output_transform(m, channels, ld, t0, count, oh, ow, tiles_w, (long)tiles_h * tiles_w, bias, relu, mask, mask_row_words, k_begin,
                   k_end, y, 2 * GROUP);
}

// out[i][*] = (A in)[i][*]: six rows from four (in rows `in_stride`, out rows `out_stride` apart),
// A = (A^T)^T, the transpose of the output transform's matrix.
PD_INLINE void a_rows(const float *in, int in_stride, float *out, int out_stride, const int lanes) {
  for (int l = 0; l < lanes; l++) {
    float d0 = in[0 * in_stride + l], d1 = in[1 * in_stride + l], d2 = in[2 * in_stride + l], d3 = in[3 * in_stride + l];
    float s02 = d0 + d2, s13 = d1 + d3, f02 = d0 + 4 * d2, f13 = 2 * d1 + 8 * d3;
    out[0 * out_stride + l] = d0;
    out[1 * out_stride + l] = s02 + s13;
    out[2 * out_stride + l] = s02 - s13;
    out[3 * out_stride + l] = f02 + f13;
    out[4 * out_stride + l] = f02 - f13;
    out[5 * out_stride + l] = d3;
  }
}

// One group of pd_wino43_output_grad for channel k: tiles t0+g0 .. +lanes-1 (lanes <= width).
PD_INLINE void output_grad_group(const float *dy, int channels, int oh, int ow, int tiles_w, long per_image, long t0, int g0,
                                 int lanes, int k, int k_first, int rows, float *dm, int ld, float *d, float *e, float *out,
                                 const int width) {
  for (int l = 0; l < width; l++) {
    if (l >= lanes) {
      for (int p = 0; p < 16; p++) d[p * width + l] = 0;
      continue;
    }
    const long t = t0 + g0 + l;
    const long n = t / per_image;
    const int ty = (int)(t % per_image) / tiles_w, tx = (int)(t % per_image) % tiles_w;
    const float *plane = dy + ((size_t)n * channels + k) * oh * ow;
    const int y0 = 4 * ty, x0 = 4 * tx;
    // Outputs past the map's edge, which the forward computed and cropped, take no gradient.
    for (int i = 0; i < 4; i++)
      for (int j = 0; j < 4; j++)
        d[(i * 4 + j) * width + l] = (y0 + i < oh && x0 + j < ow) ? plane[(size_t)(y0 + i) * ow + x0 + j] : 0.0f;
  }
  // Columns: e[i][j] = sum_r A[i][r] d[r][j] (four rows to six, for each of four columns).
  for (int j = 0; j < 4; j++) a_rows(d + j * width, 4 * width, e + j * width, 4 * width, width);
  // Rows: out[i][j] = sum_s e[i][s] A[j][s].
  for (int i = 0; i < 6; i++) a_rows(e + i * 4 * width, width, out + i * 6 * width, width, width);
  for (int p = 0; p < 36; p++) {
    float *dst = dm + ((size_t)p * rows + (k - k_first)) * ld + g0;
    for (int l = 0; l < lanes; l++) dst[l] = out[p * width + l];
  }
}

// pd_wino43_output_grad on groups of `width` tiles (8 or 16), a last group of at most eight on
// 8-float rows (as in input_transform).
PD_INLINE void output_grad_transform(const float *dy, int channels, int oh, int ow, int tiles_w, long per_image, long t0,
                                     int count, int k_begin, int k_end, int k_first, int rows, float *dm, int ld,
                                     const int width) {
  float d[16 * 16], e[24 * 16], out[36 * 16];
  for (int k = k_begin; k < k_end; k++) {
    for (int g0 = 0; g0 < count; g0 += width) {
      const int lanes = count - g0 < width ? count - g0 : width;
      if (width > GROUP && lanes <= GROUP)
        output_grad_group(dy, channels, oh, ow, tiles_w, per_image, t0, g0, lanes, k, k_first, rows, dm, ld, d, e, out, GROUP);
      else
        output_grad_group(dy, channels, oh, ow, tiles_w, per_image, t0, g0, lanes, k, k_first, rows, dm, ld, d, e, out, width);
    }
  }
}

PD_CLONES
void pd_wino43_output_grad(const float *dy, int channels, int oh, int ow, int tiles_h, int tiles_w, long t0, int count,
                           int k_begin, int k_end, int k_first, int rows, float *dm, int ld) {
  output_grad_transform(dy, channels, oh, ow, tiles_w, (long)tiles_h * tiles_w, t0, count, k_begin, k_end, k_first, rows, dm, ld,
                        GROUP);
}

PD_CLONES_WIDE
void pd_wino43_output_grad_wide(const float *dy, int channels, int oh, int ow, int tiles_h, int tiles_w, long t0, int count,
                                int k_begin, int k_end, int k_first, int rows, float *dm, int ld) {
  output_grad_transform(dy, channels, oh, ow, tiles_w, (long)tiles_h * tiles_w, t0, count, k_begin, k_end, k_first, rows, dm, ld,
                        2 * GROUP);
}

// out[a][*] = (G^T in)[a][*]: three rows from six (in rows `in_stride`, out rows `out_stride` apart).
PD_INLINE void gt_rows(const float *in, int in_stride, float *out, int out_stride, const int lanes) {
  for (int l = 0; l < lanes; l++) {
    float m0 = in[0 * in_stride + l], m1 = in[1 * in_stride + l], m2 = in[2 * in_stride + l];
    float m3 = in[3 * in_stride + l], m4 = in[4 * in_stride + l], m5 = in[5 * in_stride + l];
    float s12 = m1 + m2, d12 = m2 - m1, s34 = m3 + m4, d34 = m3 - m4;
    out[0 * out_stride + l] = m0 * (1.0f / 4) - s12 * (1.0f / 6) + s34 * (1.0f / 24);
    out[1 * out_stride + l] = d12 * (1.0f / 6) + d34 * (1.0f / 12);
    out[2 * out_stride + l] = (s34 - s12) * (1.0f / 6) + m5;
  }
}

// One group of pd_wino43_weight_grad: input channels c0 .. c0+lanes-1 (lanes <= width) of row k.
PD_INLINE void weight_grad_group(const float *du, int k_out, int c_in, int k, int c0, int lanes, float *dw, float *in, float *mid,
                                 float *out, const int width) {
  for (int p = 0; p < 36; p++) {
    const float *src = du + ((size_t)p * k_out + k) * c_in + c0;
    for (int l = 0; l < width; l++) in[p * width + l] = l < lanes ? src[l] : 0.0f;
  }
  // mid[a][j] = sum_i G[i][a] in[i][j], then out[a][b] = sum_j mid[a][j] G[j][b].
  for (int j = 0; j < 6; j++) gt_rows(in + j * width, 6 * width, mid + j * width, 6 * width, width);
  for (int a = 0; a < 3; a++) gt_rows(mid + a * 6 * width, width, out + a * 3 * width, width, width);
  for (int l = 0; l < lanes; l++) {
    float *kernel = dw + ((size_t)k * c_in + c0 + l) * 9;
    for (int ab = 0; ab < 9; ab++) kernel[ab] = out[ab * width + l];
  }
}

// pd_wino43_weight_grad on groups of `width` input channels (8 or 16), a last group of at most
// eight on 8-float rows (as in input_transform).
PD_INLINE void weight_grad_transform(const float *du, int k_out, int c_in, int k_begin, int k_end, float *dw, const int width) {
  float in[36 * 16], mid[18 * 16], out[9 * 16];
  for (int k = k_begin; k < k_end; k++) {
    for (int c0 = 0; c0 < c_in; c0 += width) {
      const int lanes = c_in - c0 < width ? c_in - c0 : width;
      if (width > GROUP && lanes <= GROUP)
        weight_grad_group(du, k_out, c_in, k, c0, lanes, dw, in, mid, out, GROUP);
      else
        weight_grad_group(du, k_out, c_in, k, c0, lanes, dw, in, mid, out, width);
    }
  }
}

PD_CLONES
void pd_wino43_weight_grad(const float *du, int k_out, int c_in, int k_begin, int k_end, float *dw) {
  weight_grad_transform(du, k_out, c_in, k_begin, k_end, dw, GROUP);
}

PD_CLONES_WIDE
void pd_wino43_weight_grad_wide(const float *du, int k_out, int c_in, int k_begin, int k_end, float *dw) {
  weight_grad_transform(du, k_out, c_in, k_begin, k_end, dw, 2 * GROUP);
}
