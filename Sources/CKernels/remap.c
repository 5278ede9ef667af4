#define _GNU_SOURCE
#include <sys/mman.h>
#include "remap.h"

void *pd_remap_onto(void *address, size_t length, void *target) {
    void *moved = mremap(address, length, length, MREMAP_MAYMOVE | MREMAP_FIXED, target);
    return moved == MAP_FAILED ? NULL : moved;
}
