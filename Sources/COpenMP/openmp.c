// Parallel regions through libgomp's own entry point. The Swift toolchain's clang emits the
// LLVM OpenMP ABI (__kmpc_*) for `#pragma omp`, which libgomp does not provide, so the region is
// started with GOMP_parallel, the call GCC emits for `#pragma omp parallel`, declared here
// because the toolchain ships no omp.h.
#include "COpenMP.h"

extern void GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads, unsigned flags);
extern int omp_get_thread_num(void);
extern int omp_get_num_threads(void);
extern void omp_set_num_threads(int n);

typedef struct {
  pd_omp_task task;
  void *context;
} region_t;

static void run_region(void *data) {
  const region_t *r = (const region_t *)data;
  r->task(r->context, omp_get_thread_num(), omp_get_num_threads());
}

void pd_omp_parallel(pd_omp_task task, void *context, int threads) {
  region_t r = {task, context};
  GOMP_parallel(run_region, &r, threads > 0 ? (unsigned)threads : 0u, 0u);
}

void pd_omp_set_num_threads(int threads) {
  if (threads > 0) omp_set_num_threads(threads);
}
