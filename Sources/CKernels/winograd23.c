// Winograd F(2x2, 3x3) transforms; see include/winograd.h.
//
// The same scheme as F(4x4, 3x3) in winograd.c (groups of 8 or 16 tiles, each of the 16
// positions stored as contiguous floats of the GEMM operand, pd_wino43_gemm between the
// transforms), with the matrices of the interpolation points 0, 1, -1 and infinity:
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
//   G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
//   A^T = [1 1 1 0; 0 1 -1 -1]
// B^T and A^T hold only 0 and +-1, and G only halves, so a tile rounds about as a direct
// convolution does: no product is magnified and cancelled again as in F(4x4, 3x3). A patch that is
// constant along a row (or a column, or both) transforms to exact zeros outside one row (column)
// of V, so the outputs it shares with its neighbours come out bit-equal, as a direct convolution's
// do: flat regions keep their exact ties through ReLU and max-pool.

#include "winograd.h"
#include "winograd_common.h"

// out[i] = (G in)[i] for four outputs from three vectors, without contracting into FMAs (the
// clones then round alike).
PD_INLINE void g23_vectors(pd_v8 g0, pd_v8 g1, pd_v8 g2, pd_v8 out[4]) {
#pragma clang fp contract(off)
  const pd_v8 s = g0 + g2;
  out[0] = g0;
  out[1] = (s + g1) * 0.5f;
  out[2] = (s - g1) * 0.5f;
  out[3] = g2;
}

// Rows row0 .. row0+PD_WINO_MR-1 of one panel's group of eight columns c0.. (lanes of them valid)
// into stage[16][MR], as weights_group in winograd.c does for F(4x4, 3x3).
PD_INLINE void weights23_group(const float *w, int c_in, int rows, int row0, int c0, int lanes, pd_v8 stage[16][PD_WINO_MR]) {
  for (int r = 0; r < PD_WINO_MR; r++) {
    const int row = row0 + r;
    if (row >= rows) {
      for (int p = 0; p < 16; p++) stage[p][r] = (pd_v8){0};
      continue;
    }
    pd_v8 taps[9];
    pd_kernel_taps(w, c_in, 0, row, c0, lanes, taps);
    // t[i][b] = sum_a G[i][a] g[a][b], then U[i][j] = sum_b t[i][b] G[j][b].
    pd_v8 t[4][3], col[4];
    for (int b = 0; b < 3; b++) {
      g23_vectors(taps[b], taps[3 + b], taps[6 + b], col);
      for (int i = 0; i < 4; i++) t[i][b] = col[i];
    }
    for (int i = 0; i < 4; i++) {
      g23_vectors(t[i][0], t[i][1], t[i][2], col);
      for (int j = 0; j < 4; j++) stage[i * 4 + j][r] = col[j];
    }
  }
}

PD_CLONES
void pd_wino23_weights(const float *w, int k_out, int c_in, int panel_begin, int panel_end, int u_panels, float *u) {
  const int groups = (c_in + GROUP - 1) / GROUP;
  const size_t panel_floats = (size_t)groups * PD_WINO_MR * GROUP, position_step = (size_t)u_panels * panel_floats;
  pd_v8 stage[16][PD_WINO_MR];
  for (int panel = panel_begin; panel < panel_end; panel++) {
    for (int group = 0; group < groups; group++) {
      const int c0 = group * GROUP, lanes = c_in - c0 < GROUP ? c_in - c0 : GROUP;
      weights23_group(w, c_in, k_out, panel * PD_WINO_MR, c0, lanes, stage);
      float *dst = u + (size_t)(panel - panel_begin) * panel_floats + (size_t)group * PD_WINO_MR * GROUP;
      for (int p = 0; p < 16; p++) __builtin_memcpy(dst + p * position_step, stage[p], sizeof stage[p]);
    }
  }
}

// out[i][*] = (B^T in)[i][*] for four rows of `lanes` values (rows `stride` apart).
PD_INLINE void bt23_rows(const float *in, float *out, int stride, const int lanes) {
  for (int l = 0; l < lanes; l++) {
    float d0 = in[0 * stride + l], d1 = in[1 * stride + l], d2 = in[2 * stride + l], d3 = in[3 * stride + l];
    out[0 * stride + l] = d0 - d2;
    out[1 * stride + l] = d1 + d2;
    out[2 * stride + l] = d2 - d1;
    out[3 * stride + l] = d1 - d3;
  }
}

// out[i][*] = (A^T in)[i][*]: two rows from four (in rows `in_stride`, out rows `out_stride` apart).
PD_INLINE void at23_rows(const float *in, int in_stride, float *out, int out_stride, const int lanes) {
  for (int l = 0; l < lanes; l++) {
    float m0 = in[0 * in_stride + l], m1 = in[1 * in_stride + l], m2 = in[2 * in_stride + l], m3 = in[3 * in_stride + l];
    out[0 * out_stride + l] = m0 + m1 + m2;
    out[1 * out_stride + l] = m1 - m2 - m3;
  }
}

// Eight tiles side by side in one tile row read four input rows of 18 consecutive columns: lane
// l's patch column j is column 2l + j. Writes d[(i*4 + j) * stride + l] (rows[i]: 18 readable
// floats). Columns 0 and 1 are the even and odd columns; 2 and 3 the same one tile on.
PD_INLINE void gather23_row_of_tiles(const float *const rows[4], float *d, int stride) {
  for (int i = 0; i < 4; i++) {
    const float *r = rows[i];
    const pd_v8 a = pd_load8(r), b = pd_load8(r + 8);
    const pd_v8 even = __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14);
    const pd_v8 odd = __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15);
    const pd_v8 tail = {r[16], r[17], 0, 0, 0, 0, 0, 0};
    float *out = d + i * 4 * stride;
    pd_store8(out, even);
    pd_store8(out + stride, odd);
    pd_store8(out + 2 * stride, __builtin_shufflevector(even, tail, 1, 2, 3, 4, 5, 6, 7, 8));
    pd_store8(out + 3 * stride, __builtin_shufflevector(odd, tail, 1, 2, 3, 4, 5, 6, 7, 9));
  }
}

// The 4x4 input patches of channel c of the tiles first .. first+lanes-1 (lanes <= 8) into
// d[p * stride + l] for the 16 positions p, lanes past `lanes` zero. `padded` is scratch for rows
// that reach past the image.
PD_INLINE void gather23_eight_patches(const float *x, int channels, int h, int w, int pad_h, int pad_w, int tiles_w, long per_image, int c,
                                      long first, int lanes, float *d, int stride, float padded[4][24]) {
  const int first_tx = (int)(first % per_image) % tiles_w;
  if (lanes == GROUP && first_tx + GROUP <= tiles_w) {
    const long n = first / per_image;
    const int ty = (int)(first % per_image) / tiles_w;
    const float *plane = x + ((size_t)n * channels + c) * h * w;
    const int y0 = 2 * ty - pad_h, x0 = 2 * first_tx - pad_w;
    const float *rows[4];
    for (int i = 0; i < 4; i++) {
      const int yy = y0 + i;
      rows[i] = yy >= 0 && yy < h && x0 >= 0 && x0 + 18 <= w ? plane + (size_t)yy * w + x0
                                                              : pd_padded_row(plane, h, w, yy, x0, 18, padded[i], 24);
    }
    gather23_row_of_tiles(rows, d, stride);
    return;
  }
  for (int l = 0; l < GROUP; l++) {
    if (l >= lanes) {
      for (int p = 0; p < 16; p++) d[p * stride + l] = 0;
      continue;
    }
    const long t = first + l;
    const long n = t / per_image;
    const int ty = (int)(t % per_image) / tiles_w, tx = (int)(t % per_image) % tiles_w;
    const float *plane = x + ((size_t)n * channels + c) * h * w;
    const int y0 = 2 * ty - pad_h, x0 = 2 * tx - pad_w;
    for (int i = 0; i < 4; i++)
      for (int j = 0; j < 4; j++) {
        const int yy = y0 + i, xx = x0 + j;
        d[(i * 4 + j) * stride + l] = (yy >= 0 && yy < h && xx >= 0 && xx < w) ? plane[(size_t)yy * w + xx] : 0.0f;
      }
  }
}

// One group of pd_wino23_input for channel c: tiles t0+g0 .. +lanes-1 (lanes <= width), gathered
// eight at a time into d's rows of `width` floats, transformed, stored to V.
PD_INLINE void input23_group(const float *x, int channels, int h, int w, int pad_h, int pad_w, int tiles_w, long per_image, long t0, int c,
                             int g0, int lanes, float *v, int ld, float *d, float *e, float padded[4][24], const int width) {
  for (int half = 0; half < width; half += GROUP) {
    const int half_lanes = lanes - half < 0 ? 0 : (lanes - half < GROUP ? lanes - half : GROUP);
    gather23_eight_patches(x, channels, h, w, pad_h, pad_w, tiles_w, per_image, c, t0 + g0 + half, half_lanes, d + half, width, padded);
  }
  // Columns of the patch: e[i][j] = sum_r B^T[i][r] d[r][j]; then rows: V[i][j] = sum_k e[i][k] B^T[j][k].
  for (int j = 0; j < 4; j++) bt23_rows(d + j * width, e + j * width, 4 * width, width);
  for (int i = 0; i < 4; i++) bt23_rows(e + i * 4 * width, d + i * 4 * width, width, width);
  for (int p = 0; p < 16; p++) {
    float *dst = v + ((size_t)p * channels + c) * ld + g0;
    if (lanes == width) {
      if (g0 + 4 * width <= ld) __builtin_prefetch(dst + 4 * width, 1);
      __builtin_memcpy(dst, d + p * width, width * sizeof(float));
    } else {
      for (int l = 0; l < lanes; l++) dst[l] = d[p * width + l];
    }
  }
}

// pd_wino23_input on groups of `width` tiles (8 or 16), a last group of at most eight on 8-float
// rows.
PD_INLINE void input23_transform(const float *x, int channels, int h, int w, int pad_h, int pad_w, int tiles_w, long t0, int count,
                                 int c_begin, int c_end, float *v, int ld, const int width, long per_image) {
  float d[16 * 16], e[16 * 16];
  float padded[4][24];
  for (int c = c_begin; c < c_end; c++) {
    for (int g0 = 0; g0 < count; g0 += width) {
      const int lanes = count - g0 < width ? count - g0 : width;
      if (width > GROUP && lanes <= GROUP)
        input23_group(x, channels, h, w, pad_h, pad_w, tiles_w, per_image, t0, c, g0, lanes, v, ld, d, e, padded, GROUP);
      else
        input23_group(x, channels, h, w, pad_h, pad_w, tiles_w, per_image, t0, c, g0, lanes, v, ld, d, e, padded, width);
    }
  }
}

PD_CLONES
void pd_wino23_input(const float *x, int channels, int h, int w, int pad_h, int pad_w, int tiles_h, int tiles_w,
                     long t0, int count, int c_begin, int c_end, float *v, int ld) {
  input23_transform(x, channels, h, w, pad_h, pad_w, tiles_w, t0, count, c_begin, c_end, v, ld, GROUP, (long)tiles_h * tiles_w);
}

PD_CLONES_WIDE
void pd_wino23_input_wide(const float *x, int channels, int h, int w, int pad_h, int pad_w, int tiles_h, int tiles_w,
                          long t0, int count, int c_begin, int c_end, float *v, int ld) {
  input23_transform(x, channels, h, w, pad_h, pad_w, tiles_w, t0, count, c_begin, c_end, v, ld, 2 * GROUP, (long)tiles_h * tiles_w);
}

// Output row i of eight whole tiles (o: column 0 of the lanes, column 1 `stride` floats on) as 16
// consecutive values at y, plus `bias`, negatives replaced by +0 with `relu` (as the scalar path).
PD_INLINE void scatter23_row_of_tiles(const float *o, int stride, float bias, int relu, float *y) {
  const pd_v8 o0 = pd_load8(o), o1 = pd_load8(o + stride), zero = {0};
  pd_v8 row[2] = {__builtin_shufflevector(o0, o1, 0, 8, 1, 9, 2, 10, 3, 11),
                  __builtin_shufflevector(o0, o1, 4, 12, 5, 13, 6, 14, 7, 15)};
  for (int q = 0; q < 2; q++) {
    pd_v8 value = row[q] + bias;
    if (relu) value = (pd_v8)((pd_i8)value & ~(pd_i8)(value < zero));
    pd_store8(y + q * GROUP, value);
  }
}

// Writes the transformed tiles first .. first+lanes-1 (lanes <= 8) of channel k: lane l's output
// (i, j) is out[(i*2 + j) * stride + l], cropped to the map, with bias and ReLU.
PD_INLINE void write23_eight_tiles(const float *out, int stride, int channels, int k, long first, int lanes, int oh, int ow,
                                   int tiles_w, long per_image, float b, int relu, float *y) {
  const int first_tx = (int)(first % per_image) % tiles_w;
  if (lanes == GROUP && first_tx + GROUP <= tiles_w && 2 * (first_tx + GROUP) <= ow) {
    const long n = first / per_image;
    const int ty = (int)(first % per_image) / tiles_w;
    float *plane = y + ((size_t)n * channels + k) * oh * ow;
    for (int i = 0; i < 2 && 2 * ty + i < oh; i++)
      scatter23_row_of_tiles(out + i * 2 * stride, stride, b, relu, plane + (size_t)(2 * ty + i) * ow + 2 * first_tx);
    return;
  }
  for (int l = 0; l < lanes; l++) {
    const long t = first + l;
    const long n = t / per_image;
    const int ty = (int)(t % per_image) / tiles_w, tx = (int)(t % per_image) % tiles_w;
    float *plane = y + ((size_t)n * channels + k) * oh * ow;
    for (int i = 0; i < 2 && 2 * ty + i < oh; i++)
      for (int j = 0; j < 2 && 2 * tx + j < ow; j++) {
        float value = out[(i * 2 + j) * stride + l] + b;
        if (relu && value < 0) value = 0.0f;
        plane[(size_t)(2 * ty + i) * ow + 2 * tx + j] = value;
      }
  }
}

// One group of pd_wino23_output for channel k: tiles t0+g0 .. +lanes-1 (lanes <= width).
PD_INLINE void output23_group(const float *m, int channels, int ld, long t0, int g0, int lanes, int oh, int ow, int tiles_w,
                              long per_image, float b, int relu, int k, float *y, float *in, float *mid, float *out,
                              const int width) {
  for (int p = 0; p < 16; p++) {
    const float *src = m + ((size_t)p * channels + k) * ld + g0;
    if (lanes == width) {
      if (g0 + 4 * width <= ld) __builtin_prefetch(src + 4 * width);
      __builtin_memcpy(in + p * width, src, width * sizeof(float));
    } else {
      for (int l = 0; l < width; l++) in[p * width + l] = l < lanes ? src[l] : 0.0f;
    }
  }
  // mid[i][j] = sum_a A^T[i][a] in[a][j] (rows 4 -> 2 for each column j), then
  // out[i][j] = sum_b mid[i][b] A^T[j][b].
  for (int j = 0; j < 4; j++) at23_rows(in + j * width, 4 * width, mid + j * width, 4 * width, width);
  for (int i = 0; i < 2; i++) at23_rows(mid + i * 4 * width, width, out + i * 2 * width, width, width);
  for (int half = 0; half < width && half < lanes; half += GROUP) {
    const int half_lanes = lanes - half < GROUP ? lanes - half : GROUP;
    write23_eight_tiles(out + half, width, channels, k, t0 + g0 + half, half_lanes, oh, ow, tiles_w, per_image, b, relu, y);
  }
}

// pd_wino23_output on groups of `width` tiles (8 or 16), a last group of at most eight on 8-float
// rows.
PD_INLINE void output23_transform(const float *m, int channels, int ld, long t0, int count, int oh, int ow, int tiles_w,
                                  long per_image, const float *bias, int relu, int k_begin, int k_end, float *y, const int width) {
  float in[16 * 16], mid[8 * 16], out[4 * 16];
  for (int k = k_begin; k < k_end; k++) {
    const float b = bias ? bias[k] : 0.0f;
    for (int g0 = 0; g0 < count; g0 += width) {
      const int lanes = count - g0 < width ? count - g0 : width;
      if (width > GROUP && lanes <= GROUP)
        output23_group(m, channels, ld, t0, g0, lanes, oh, ow, tiles_w, per_image, b, relu, k, y, in, mid, out, GROUP);
      else
        output23_group(m, channels, ld, t0, g0, lanes, oh, ow, tiles_w, per_image, b, relu, k, y, in, mid, out, width);
    }
  }
}

PD_CLONES
void pd_wino23_output(const float *m, int channels, int ld, long t0, int count, int oh, int ow, int tiles_h, int tiles_w,
                      const float *bias, int relu, int k_begin, int k_end, float *y) {
  output23_transform(m, channels, ld, t0, count, oh, ow, tiles_w, (long)tiles_h * tiles_w, bias, relu, k_begin, k_end, y, GROUP);
}

PD_CLONES_WIDE
void pd_wino23_output_wide(const float *m, int channels, int ld, long t0, int count, int oh, int ow, int tiles_h, int tiles_w,
                           const float *bias, int relu, int k_begin, int k_end, float *y) {
  output23_transform(m, channels, ld, t0, count, oh, ow, tiles_w, (long)tiles_h * tiles_w, bias, relu, k_begin, k_end, y,
                     2 * GROUP);
}
