// The machine's peak single-precision FMA rate, for efficiency figures that mean the same on
// every CPU: `bench conv` used to divide by OpenBLAS's sgemm rate, which on an AVX-512 machine
// with OpenBLAS held to AVX2 kernels is half of what oneDNN reaches.
#ifndef PERCEP_CKERNELS_FMA_PEAK_H
#define PERCEP_CKERNELS_FMA_PEAK_H

#ifdef __cplusplus
extern "C" {
#endif

/// Runs `iterations` rounds of independent fused multiply-adds on the widest vectors this CPU
/// has (AVX-512, else AVX2+FMA, else SSE multiply-adds) on the calling thread and returns the
/// number of floating-point operations done (2 per lane per FMA). `*vector_bits` receives the
/// width used (512, 256 or 128).
double pd_fma_probe(long iterations, int *vector_bits);

#ifdef __cplusplus
}
#endif

#endif
