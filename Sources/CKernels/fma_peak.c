// FMA peak probe; see include/fma_peak.h.
//
// Twelve independent accumulator chains keep two FMA pipes with a 4-cycle latency busy; the
// multiplier is just below 1 and the addend tiny, so values stay finite and normal for any
// iteration count. Each ISA's loop is compiled for that ISA with a target attribute and chosen
// at run time, so one binary reports the right peak on AVX2 and AVX-512 machines.
#include "fma_peak.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define CHAINS 12

__attribute__((target("avx512f"))) static double probe512(long n) {
  __m512 acc[CHAINS];
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (int k = 0; k < CHAINS; k++) acc[k] = _mm512_set1_ps((float)k);
  for (long i = 0; i < n; i++)
    for (int k = 0; k < CHAINS; k++) acc[k] = _mm512_fmadd_ps(acc[k], a, b);
  float sink = 0;
  for (int k = 0; k < CHAINS; k++) sink += _mm512_reduce_add_ps(acc[k]);
  return sink == -1.0f ? 0 : (double)n * CHAINS * 16 * 2;  // sink keeps the loop alive
}

__attribute__((target("avx2,fma"))) static double probe256(long n) {
  __m256 acc[CHAINS];
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (int k = 0; k < CHAINS; k++) acc[k] = _mm256_set1_ps((float)k);
  for (long i = 0; i < n; i++)
    for (int k = 0; k < CHAINS; k++) acc[k] = _mm256_fmadd_ps(acc[k], a, b);
  float lanes[8], sink = 0;
  for (int k = 0; k < CHAINS; k++) {
    _mm256_storeu_ps(lanes, acc[k]);
    for (int l = 0; l < 8; l++) sink += lanes[l];
  }
  return sink == -1.0f ? 0 : (double)n * CHAINS * 8 * 2;
}

static double probe128(long n) {
  __m128 acc[CHAINS];
  const __m128 a = _mm_set1_ps(0.999999f), b = _mm_set1_ps(1e-7f);
  for (int k = 0; k < CHAINS; k++) acc[k] = _mm_set1_ps((float)k);
  for (long i = 0; i < n; i++)
    for (int k = 0; k < CHAINS; k++) acc[k] = _mm_add_ps(_mm_mul_ps(acc[k], a), b);
  float lanes[4], sink = 0;
  for (int k = 0; k < CHAINS; k++) {
    _mm_storeu_ps(lanes, acc[k]);
    for (int l = 0; l < 4; l++) sink += lanes[l];
  }
  return sink == -1.0f ? 0 : (double)n * CHAINS * 4 * 2;
}

double pd_fma_probe(long iterations, int *vector_bits) {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) { *vector_bits = 512; return probe512(iterations); }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) { *vector_bits = 256; return probe256(iterations); }
  *vector_bits = 128;
  return probe128(iterations);
}

#else

double pd_fma_probe(long iterations, int *vector_bits) {
  float acc[8] = {0, 1, 2, 3, 4, 5, 6, 7};
  for (long i = 0; i < iterations; i++)
    for (int k = 0; k < 8; k++) acc[k] = acc[k] * 0.999999f + 1e-7f;
  *vector_bits = 32;
  return (acc[0] == -1.0f ? 0 : (double)iterations * 8 * 2);
}

#endif
