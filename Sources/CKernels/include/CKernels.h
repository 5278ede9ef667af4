// The project's own C kernels (no external library): Winograd F(4x4, 3x3) transforms and the
// FMA peak probe, an mremap wrapper that moves pages, exp over float arrays and the 2x2 max-pool.
#include "winograd.h"
#include "fma_peak.h"
#include "remap.h"
#include "vexp.h"
#include "maxpool.h"
