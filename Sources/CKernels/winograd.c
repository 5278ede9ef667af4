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

#if defined(__x86_64__) && defined(__clang__)
#define PD_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define PD_CLONES
#endif

#define GROUP 8

// out[i][*] = (B^T in)[i][*] for six rows of GROUP values (in and out rows `stride` apart).
static inline void bt_rows(const float *in, float *out, int stride) {
  for (int l = 0; l < GROUP; l++) {
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
static inline void at_rows(const float *in, int in_stride, float *out, int out_stride) {
  for (int l = 0; l < GROUP; l++) {
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
static inline void g_rows(const float *in, int in_stride, float *out, int out_stride) {
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

PD_CLONES
void pd_wino43_weights(const float *w, int k_out, int c_in, int transpose_flip, int r_begin, int r_end, float *u) {
  // The GEMM's rows are the output channels of the convolution this U serves.
  const int rows = transpose_flip ? c_in : k_out, cols = transpose_flip ? k_out : c_in;
  float g[9 * GROUP], t[18 * GROUP], v[36 * GROUP];
  for (int r = r_begin; r < r_end; r++) {
    for (int c0 = 0; c0 < cols; c0 += GROUP) {
      const int lanes = cols - c0 < GROUP ? cols - c0 : GROUP;
      for (int l = 0; l < GROUP; l++) {
        const int c = c0 + (l < lanes ? l : 0);
        for (int a = 0; a < 3; a++)
          for (int b = 0; b < 3; b++)
            g[(a * 3 + b) * GROUP + l] = transpose_flip ? w[((size_t)c * c_in + r) * 9 + (2 - a) * 3 + (2 - b)]
                                                        : w[((size_t)r * c_in + c) * 9 + a * 3 + b];
      }
      // t[i][b] = sum_a G[i][a] g[a][b] (per column b), then U[i][j] = sum_b t[i][b] G[j][b].
      for (int b = 0; b < 3; b++) g_rows(g + b * GROUP, 3 * GROUP, t + b * GROUP, 3 * GROUP);
      for (int i = 0; i < 6; i++) g_rows(t + i * 3 * GROUP, GROUP, v + i * 6 * GROUP, GROUP);
      for (int p = 0; p < 36; p++) {
        float *dst = u + ((size_t)p * rows + r) * cols + c0;
        for (int l = 0; l < lanes; l++) dst[l] = v[p * GROUP + l];
      }
    }
  }
}

PD_CLONES
void pd_wino43_input(const float *x, int channels, int h, int w, int pad, int tiles_h, int tiles_w,
                     long t0, int count, int c_begin, int c_end, float *v, int ld) {
  const long per_image = (long)tiles_h * tiles_w;
  float d[36 * GROUP], e[36 * GROUP];
  for (int c = c_begin; c < c_end; c++) {
    for (int g0 = 0; g0 < count; g0 += GROUP) {
      const int lanes = count - g0 < GROUP ? count - g0 : GROUP;
      for (int l = 0; l < GROUP; l++) {
        if (l >= lanes) {
          for (int p = 0; p < 36; p++) d[p * GROUP + l] = 0;
          continue;
        }
        const long t = t0 + g0 + l;
        const long n = t / per_image;
        const int ty = (int)(t % per_image) / tiles_w, tx = (int)(t % per_image) % tiles_w;
        const float *plane = x + ((size_t)n * channels + c) * h * w;
        const int y0 = 4 * ty - pad, x0 = 4 * tx - pad;
        if (y0 >= 0 && x0 >= 0 && y0 + 6 <= h && x0 + 6 <= w) {
          for (int i = 0; i < 6; i++)
            for (int j = 0; j < 6; j++) d[(i * 6 + j) * GROUP + l] = plane[(size_t)(y0 + i) * w + x0 + j];
        } else {
          for (int i = 0; i < 6; i++)
            for (int j = 0; j < 6; j++) {
              const int yy = y0 + i, xx = x0 + j;
              d[(i * 6 + j) * GROUP + l] = (yy >= 0 && yy < h && xx >= 0 && xx < w) ? plane[(size_t)yy * w + xx] : 0.0f;
            }
        }
      }
      // Columns of the patch: e[i][j] = sum_r B^T[i][r] d[r][j] (six rows of six columns).
      for (int j = 0; j < 6; j++) bt_rows(d + j * GROUP, e + j * GROUP, 6 * GROUP);
      // Rows: V[i][j] = sum_k e[i][k] B^T[j][k].
      for (int i = 0; i < 6; i++) bt_rows(e + i * 6 * GROUP, d + i * 6 * GROUP, GROUP);
      for (int p = 0; p < 36; p++) {
        float *dst = v + ((size_t)p * channels + c) * ld + g0;
        for (int l = 0; l < lanes; l++) dst[l] = d[p * GROUP + l];
      }
    }
  }
}

PD_CLONES
void pd_wino43_output(const float *m, int channels, int ld, long t0, int count, int oh, int ow,
                      int tiles_h, int tiles_w, const float *bias, int relu, int k_begin, int k_end, float *y) {
  const long per_image = (long)tiles_h * tiles_w;
  float in[36 * GROUP], mid[24 * GROUP], out[16 * GROUP];
  for (int k = k_begin; k < k_end; k++) {
    const float b = bias ? bias[k] : 0.0f;
    for (int g0 = 0; g0 < count; g0 += GROUP) {
      const int lanes = count - g0 < GROUP ? count - g0 : GROUP;
      for (int p = 0; p < 36; p++) {
        const float *src = m + ((size_t)p * channels + k) * ld + g0;
        for (int l = 0; l < GROUP; l++) in[p * GROUP + l] = l < lanes ? src[l] : 0.0f;
      }
      // mid[i][j] = sum_a A^T[i][a] in[a][j]: for each column j, rows 6 -> 4.
      for (int j = 0; j < 6; j++) at_rows(in + j * GROUP, 6 * GROUP, mid + j * GROUP, 6 * GROUP);
      // out[i][j] = sum_b mid[i][b] A^T[j][b].
      for (int i = 0; i < 4; i++) at_rows(mid + i * 6 * GROUP, GROUP, out + i * 4 * GROUP, GROUP);
      for (int l = 0; l < lanes; l++) {
        const long t = t0 + g0 + l;
        const long n = t / per_image;
        const int ty = (int)(t % per_image) / tiles_w, tx = (int)(t % per_image) % tiles_w;
        float *plane = y + ((size_t)n * channels + k) * oh * ow;
        for (int i = 0; i < 4 && 4 * ty + i < oh; i++)
          for (int j = 0; j < 4 && 4 * tx + j < ow; j++) {
            float value = out[(i * 4 + j) * GROUP + l] + b;
            plane[(size_t)(4 * ty + i) * ow + 4 * tx + j] = relu && value < 0 ? 0.0f : value;
          }
      }
    }
  }
}
