// 2x2 stride-2 max-pool; see include/maxpool.h.

#include "maxpool.h"

#if defined(__x86_64__) && defined(__clang__)
#define PD_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define PD_CLONES
#endif

// Helpers of the cloned function must be inlined into each clone (an outlined copy would be
// compiled for the baseline ISA).
#define PD_INLINE static inline __attribute__((always_inline))

typedef float pd_f8 __attribute__((vector_size(32)));
typedef int32_t pd_m8 __attribute__((vector_size(32)));

// The window rule for one output: a, b the top row, c, d the bottom row.
PD_INLINE void pool_one(float a, float b, float c, float d, float *best_out, uint64_t *at_out) {
  float best = a;
  uint64_t at = 0;
  if (!(a != a) && (b > best || b != b)) { best = b; at = 1; }
  if (c > best || c != c) { best = c; at = 2; }
  if (!(c != c) && (d > best || d != d)) { best = d; at = 3; }
  *best_out = best;
  *at_out = at;
}

// Where the lanes of m are set, v, else old (a macro: a helper taking vectors by value is an
// ABI error in the baseline clone).
#define TAKE(m, v, old) ((pd_f8)((((pd_m8)(v)) & (m)) | (((pd_m8)(old)) & ~(m))))

PD_CLONES
void pd_maxpool2x2_plane(const float *x, int h, int w, int oh, int ow, float *y, uint64_t *argmax) {
  (void)h;
  for (int oy = 0; oy < oh; oy++) {
    const float *r0 = x + (long)2 * oy * w, *r1 = r0 + w;
    float *out = y + (long)oy * ow;
    const long e0 = (long)oy * ow;   // argmax entry of (oy, 0)
    int ox = 0;
    // Eight outputs at a time: sixteen inputs of each row, split into even (a, c) and odd (b, d)
    // columns; the same compares as pool_one, lane by lane.
    for (; ox + 8 <= ow; ox += 8) {
      pd_f8 t0, t1, u0, u1;
      __builtin_memcpy(&t0, r0 + 2 * ox, sizeof t0);
      __builtin_memcpy(&t1, r0 + 2 * ox + 8, sizeof t1);
      __builtin_memcpy(&u0, r1 + 2 * ox, sizeof u0);
      __builtin_memcpy(&u1, r1 + 2 * ox + 8, sizeof u1);
      const pd_f8 a = __builtin_shufflevector(t0, t1, 0, 2, 4, 6, 8, 10, 12, 14);
      const pd_f8 b = __builtin_shufflevector(t0, t1, 1, 3, 5, 7, 9, 11, 13, 15);
      const pd_f8 c = __builtin_shufflevector(u0, u1, 0, 2, 4, 6, 8, 10, 12, 14);
      const pd_f8 d = __builtin_shufflevector(u0, u1, 1, 3, 5, 7, 9, 11, 13, 15);
      pd_f8 best = a;
      pd_m8 at = {0};
      const pd_m8 m1 = (a == a) & ((b > best) | (b != b));
      best = TAKE(m1, b, best);
      at = (at & ~m1) | (m1 & 1);
      const pd_m8 m2 = (c > best) | (c != c);
      best = TAKE(m2, c, best);
      at = (at & ~m2) | (m2 & 2);
      const pd_m8 m3 = (c == c) & ((d > best) | (d != d));
      best = TAKE(m3, d, best);
      at = (at & ~m3) | (m3 & 3);
      __builtin_memcpy(out + ox, &best, sizeof best);
      if (argmax) {
        uint64_t bits = 0;
        for (int l = 0; l < 8; l++) bits |= (uint64_t)(uint32_t)at[l] << (2 * l);
        const long e = e0 + ox;
        const int shift = (int)(e & 31) * 2;
        argmax[e >> 5] |= bits << shift;
        if (shift > 48) argmax[(e >> 5) + 1] |= bits >> (64 - shift);
      }
    }
    for (; ox < ow; ox++) {
      uint64_t at;
      pool_one(r0[2 * ox], r0[2 * ox + 1], r1[2 * ox], r1[2 * ox + 1], out + ox, &at);
      if (argmax) {
        const long e = e0 + ox;
        argmax[e >> 5] |= at << ((e & 31) * 2);
      }
    }
  }
}
