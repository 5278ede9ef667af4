// mremap(2) is variadic in C, which Swift cannot call: these wrappers grow and move mappings for
// PercepCore's mapped-block cache.
#ifndef PERCEP_CKERNELS_REMAP_H
#define PERCEP_CKERNELS_REMAP_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Grows (or shrinks) the private anonymous mapping at `address` from `old_length` to
/// `new_length` bytes, moving it if it cannot grow in place; pages beyond `old_length` are fresh
/// (zero) pages, the others keep their contents without a copy. Returns the mapping's new
/// address, or NULL with errno set.
void *pd_remap(void *address, size_t old_length, size_t new_length);

/// Moves the pages of the `length` bytes at `address` to `target`, replacing whatever was mapped
/// there, without copying them. Returns `target`, or NULL with errno set.
void *pd_remap_onto(void *address, size_t length, void *target);

#ifdef __cplusplus
}
#endif

#endif
