// The 2x2, stride-2 max-pool of VGG-style loss networks, vectorised for the CPU at hand.
#ifndef PERCEP_CKERNELS_MAXPOOL_H
#define PERCEP_CKERNELS_MAXPOOL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// One plane: y[oy][ox] = max of x[2oy..2oy+1][2ox..2ox+1] (x: [h][w], y: [oh][ow], 2oh <= h,
/// 2ow <= w), with MaxPoolWindow's rule: the first maximum in row-major order wins, and a NaN
/// counts as the maximum and ends its window row. When `argmax` is not NULL, ORs each output's
/// window index (0..3, row-major) into it as 2-bit entries, 32 per word, entry oy*ow + ox (the
/// words must start zero).
void pd_maxpool2x2_plane(const float *x, int h, int w, int oh, int ow, float *y, uint64_t *argmax);

#ifdef __cplusplus
}
#endif

#endif
