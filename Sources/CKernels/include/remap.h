// mremap(2) is variadic in C, which Swift cannot call: this wrapper moves pages for
// PercepCore's mapped-block cache.
#ifndef PERCEP_CKERNELS_REMAP_H
#define PERCEP_CKERNELS_REMAP_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Moves the pages of the `length` bytes at `address` to `target`, replacing whatever was mapped
/// there, without copying them. Returns `target`, or NULL with errno set.
void *pd_remap_onto(void *address, size_t length, void *target);

#ifdef __cplusplus
}
#endif

#endif
