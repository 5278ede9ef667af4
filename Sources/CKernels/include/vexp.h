// exp over float arrays, vectorised for the CPU at hand (AVX-512, AVX2 + FMA, or baseline),
// for the softmax and cross-entropy sweeps (libm's expf is a scalar call per element).
#ifndef PERCEP_CKERNELS_VEXP_H
#define PERCEP_CKERNELS_VEXP_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// y[j] = exp(x[j] - shift[j]) for j < n, or exp(x[j]) when `shift` is NULL. y may be x;
/// otherwise it must not overlap x or shift.
///
/// Relative error within 2 ulp of the exact value for arguments in [-87.3, 88.37]; below
/// that the result is 0 (expf gives denormals there), above it 2.4e38 (expf gives up to
/// 3.4e38, then inf); NaN stays NaN. Every clone computes each element with the same
/// correctly rounded operations (fused multiply-adds included), so AVX-512, AVX2 and baseline
/// CPUs give the same bits.
void pd_vexp(float *y, const float *x, const float *shift, int64_t n);

/// The scalar kernel `pd_vexp` applies per element, for tests and reference.
float pd_exp_reference(float x);

#ifdef __cplusplus
}
#endif

#endif
