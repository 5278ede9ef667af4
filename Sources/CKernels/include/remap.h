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

/// Maps fresh zero pages at exactly [address, address + length) if nothing is mapped anywhere in
/// that range (MAP_FIXED_NOREPLACE: never replaces another mapping). Returns 0 when it mapped them,
/// 1 when something is already mapped there, -1 with errno set on any other failure.
int pd_map_zero_pages_if_unmapped(void *address, size_t length);

#ifdef __cplusplus
}
#endif

#endif
