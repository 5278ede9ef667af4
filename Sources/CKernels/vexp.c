// exp over float arrays; see include/vexp.h.
//
// exp(x) = 2^k · exp(r) with k = round(x / ln 2) and r = x − k·ln 2 in [−ln2/2, ln2/2] (ln 2 in
// two parts, so r is exact to float), exp(r) by Cephes' degree-7 polynomial
// 1 + r + r²·P(r), and 2^k put into the exponent bits. Written as plain loops over one
// element's arithmetic with fmaf: the compiler vectorises each clone for its ISA, and fmaf
// keeps every clone's rounding identical (the baseline clone calls libm's correctly rounded
// fmaf).

#include "vexp.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) && defined(__clang__)
#define PD_VEXP_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define PD_VEXP_CLONES
#endif

// Helpers must be inlined into each clone (an outlined copy would be baseline code).
#define PD_INLINE static inline __attribute__((always_inline))

PD_INLINE float exp_one(float x) {
  const float hi = 88.3762626647949f, lo = -87.3365478515625f;
  // Comparisons, not fminf/fmaxf: NaN must pass through.
  float c = x > hi ? hi : x;
  c = c < lo ? lo : c;
  const float k = __builtin_rintf(c * 1.44269504088896341f);
  float r = fmaf(k, -0.693359375f, c);
  r = fmaf(k, 2.12194440e-4f, r);
  float p = 1.9875691500e-4f;
  p = fmaf(p, r, 1.3981999507e-3f);
  p = fmaf(p, r, 8.3334519073e-3f);
  p = fmaf(p, r, 4.1665795894e-2f);
  p = fmaf(p, r, 1.6666665459e-1f);
  p = fmaf(p, r, 5.0000001201e-1f);
  const float e = fmaf(p, r * r, r) + 1.0f;
  // 2^k through the exponent bits; k is in [-126, 127] here (NaN maps to 0 and e is NaN anyway).
  const int32_t bits = ((int32_t)(k == k ? k : 0.0f) + 127) << 23;
  float scale;
  memcpy(&scale, &bits, sizeof scale);
  return x < lo ? 0.0f : e * scale;
}

PD_VEXP_CLONES
void pd_vexp(float *y, const float *x, const float *shift, int64_t n) {
  // y is x or overlaps neither x nor shift (the header's contract), so every element is read
  // before its own result is written: the loops vectorise without clang's runtime overlap
  // check, which sends y == x down the scalar path.
  if (shift) {
#pragma clang loop vectorize(assume_safety)
    for (int64_t j = 0; j < n; j++) y[j] = exp_one(x[j] - shift[j]);
  } else {
#pragma clang loop vectorize(assume_safety)
    for (int64_t j = 0; j < n; j++) y[j] = exp_one(x[j]);
  }
}

float pd_exp_reference(float x) { return exp_one(x); }
