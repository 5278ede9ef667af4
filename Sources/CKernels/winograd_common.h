// What the Winograd kernels (winograd.c: F(4x4, 3x3) and the tile GEMM; winograd23.c: F(2x2, 3x3))
// share: the CPU clones, the 8-float vector type and its transpose, the kernels' taps and the
// zero-padded input rows. Private to CKernels.
#ifndef PERCEP_CKERNELS_WINOGRAD_COMMON_H
#define PERCEP_CKERNELS_WINOGRAD_COMMON_H

#if defined(__x86_64__) && defined(__clang__)
#define PD_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
// The 16-lane GEMM and tile transforms also get an AVX-512 clone; on other CPUs they run split
// into 8-lane halves.
#define PD_CLONES_WIDE __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define PD_CLONES
#define PD_CLONES_WIDE
#endif

#define GROUP 8

// Helpers of the cloned functions must be inlined into each clone: an outlined copy is compiled
// for the baseline ISA (no FMA), which would give other bits and lose the vector width.
#define PD_INLINE static inline __attribute__((always_inline))
// Those helpers pass 8-float vectors by value; in the baseline clone (no AVX) that would change the
// calling convention, but no such call remains once they are inlined, so the warning is moot.
#pragma clang diagnostic ignored "-Wpsabi"

// Eight floats, one AVX register: GCC/clang's vector type, so each clone compiles it for its own ISA.
typedef float pd_v8 __attribute__((vector_size(32)));

PD_INLINE pd_v8 pd_load8(const float *p) {
  pd_v8 r;
  __builtin_memcpy(&r, p, sizeof r);
  return r;
}

PD_INLINE void pd_store8(float *p, pd_v8 x) { __builtin_memcpy(p, &x, sizeof x); }

typedef int pd_i8 __attribute__((vector_size(32)));

// r[j][l] <- r[l][j]: the 8x8 transpose by unpacks, 64-bit shuffles and 128-bit lane swaps.
PD_INLINE void transpose8x8(pd_v8 r[8]) {
  const pd_v8 t0 = __builtin_shufflevector(r[0], r[1], 0, 8, 1, 9, 4, 12, 5, 13);
  const pd_v8 t1 = __builtin_shufflevector(r[0], r[1], 2, 10, 3, 11, 6, 14, 7, 15);
  const pd_v8 t2 = __builtin_shufflevector(r[2], r[3], 0, 8, 1, 9, 4, 12, 5, 13);
  const pd_v8 t3 = __builtin_shufflevector(r[2], r[3], 2, 10, 3, 11, 6, 14, 7, 15);
  const pd_v8 t4 = __builtin_shufflevector(r[4], r[5], 0, 8, 1, 9, 4, 12, 5, 13);
  const pd_v8 t5 = __builtin_shufflevector(r[4], r[5], 2, 10, 3, 11, 6, 14, 7, 15);
  const pd_v8 t6 = __builtin_shufflevector(r[6], r[7], 0, 8, 1, 9, 4, 12, 5, 13);
  const pd_v8 t7 = __builtin_shufflevector(r[6], r[7], 2, 10, 3, 11, 6, 14, 7, 15);
  const pd_v8 s0 = __builtin_shufflevector(t0, t2, 0, 1, 8, 9, 4, 5, 12, 13);
  const pd_v8 s1 = __builtin_shufflevector(t0, t2, 2, 3, 10, 11, 6, 7, 14, 15);
  const pd_v8 s2 = __builtin_shufflevector(t1, t3, 0, 1, 8, 9, 4, 5, 12, 13);
  const pd_v8 s3 = __builtin_shufflevector(t1, t3, 2, 3, 10, 11, 6, 7, 14, 15);
  const pd_v8 s4 = __builtin_shufflevector(t4, t6, 0, 1, 8, 9, 4, 5, 12, 13);
  const pd_v8 s5 = __builtin_shufflevector(t4, t6, 2, 3, 10, 11, 6, 7, 14, 15);
  const pd_v8 s6 = __builtin_shufflevector(t5, t7, 0, 1, 8, 9, 4, 5, 12, 13);
  const pd_v8 s7 = __builtin_shufflevector(t5, t7, 2, 3, 10, 11, 6, 7, 14, 15);
  r[0] = __builtin_shufflevector(s0, s4, 0, 1, 2, 3, 8, 9, 10, 11);
  r[1] = __builtin_shufflevector(s1, s5, 0, 1, 2, 3, 8, 9, 10, 11);
  r[2] = __builtin_shufflevector(s2, s6, 0, 1, 2, 3, 8, 9, 10, 11);
  r[3] = __builtin_shufflevector(s3, s7, 0, 1, 2, 3, 8, 9, 10, 11);
  r[4] = __builtin_shufflevector(s0, s4, 4, 5, 6, 7, 12, 13, 14, 15);
  r[5] = __builtin_shufflevector(s1, s5, 4, 5, 6, 7, 12, 13, 14, 15);
  r[6] = __builtin_shufflevector(s2, s6, 4, 5, 6, 7, 12, 13, 14, 15);
  r[7] = __builtin_shufflevector(s3, s7, 4, 5, 6, 7, 12, 13, 14, 15);
}

// The 3x3 kernel of GEMM row `row` and column `col` of a weight transform: w[row][col] of
// w: [K][C][3][3], or with transpose_flip w[col][row] read backwards (the backward-data weights).
PD_INLINE const float *kernel_of(const float *w, int c_in, int transpose_flip, int row, int col) {
  return transpose_flip ? w + ((size_t)col * c_in + row) * 9 : w + ((size_t)row * c_in + col) * 9;
}

// taps[ab][l] = tap ab (row-major 3x3, after the flip) of the kernel of row `row`, column c0 + l,
// for the `lanes` <= 8 columns of one group (lanes past them zero): a whole group's eight kernels
// are loaded as eight rows and transposed. Both weight transforms (F(4x4, 3x3)'s, F(2x2, 3x3)'s)
// start from these vectors.
PD_INLINE void pd_kernel_taps(const float *w, int c_in, int transpose_flip, int row, int c0, int lanes, pd_v8 taps[9]) {
  if (lanes == GROUP) {
    pd_v8 first8[8];
    float last[GROUP];
    for (int l = 0; l < GROUP; l++) {
      const float *k = kernel_of(w, c_in, transpose_flip, row, c0 + l);
      first8[l] = pd_load8(k);
      last[l] = k[8];
    }
    transpose8x8(first8);
    if (transpose_flip) {
      taps[0] = pd_load8(last);
      for (int ab = 1; ab < 9; ab++) taps[ab] = first8[8 - ab];
    } else {
      for (int ab = 0; ab < 8; ab++) taps[ab] = first8[ab];
      taps[8] = pd_load8(last);
    }
    return;
  }
  float t[9][GROUP] = {{0}};
  for (int l = 0; l < lanes; l++) {
    const float *k = kernel_of(w, c_in, transpose_flip, row, c0 + l);
    for (int ab = 0; ab < 9; ab++) t[ab][l] = k[transpose_flip ? 8 - ab : ab];
  }
  for (int ab = 0; ab < 9; ab++) taps[ab] = pd_load8(t[ab]);
}

// Row yy of an image plane [h][w] from column x0 on, `columns` values with zeros outside the
// image, written to padded[0 .. capacity) (capacity a multiple of 8, at least `columns`) for the
// tile gathers' rows that reach past the image: whole 8-float chunks as vectors, the chunks an
// edge cuts element by element (a per-element bounds test was a quarter of the gather's time).
PD_INLINE const float *pd_padded_row(const float *plane, int h, int w, int yy, int x0, int columns, float *padded, int capacity) {
  __builtin_memset(padded, 0, (size_t)capacity * sizeof(float));
  if (yy >= 0 && yy < h) {
    const float *row = plane + (size_t)yy * w;   // column x0 + j is padded[j]
    const int lo = x0 < 0 ? -x0 : 0, hi = w - x0 < columns ? w - x0 : columns;
    for (int q = 0; q < capacity; q += GROUP) {
      if (q >= lo && q + GROUP <= hi) {
        __builtin_memcpy(padded + q, row + x0 + q, GROUP * sizeof(float));
      } else {
        for (int j = q > lo ? q : lo; j < q + GROUP && j < hi; j++) padded[j] = row[x0 + j];
      }
    }
  }
  return padded;
}

#endif
