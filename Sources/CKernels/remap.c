#define _GNU_SOURCE
#include <errno.h>
#include <sys/mman.h>
#include "remap.h"

void *pd_remap_onto(void *address, size_t length, void *target) {
    void *moved = mremap(address, length, length, MREMAP_MAYMOVE | MREMAP_FIXED, target);
    return moved == MAP_FAILED ? NULL : moved;
}

int pd_map_zero_pages_if_unmapped(void *address, size_t length) {
    void *mapped = mmap(address, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (mapped == MAP_FAILED) return errno == EEXIST ? 1 : -1;
    if (mapped != address) {
        // A kernel older than 4.17 takes the flag as a hint and maps elsewhere when the range is taken.
        munmap(mapped, length);
        return 1;
    }
    return 0;
}
