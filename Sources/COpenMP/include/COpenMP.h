// COpenMP: the process's one thread pool, libgomp's, behind two plain functions.
//
// OpenBLAS (Debian's OpenMP build) and oneDNN already run on libgomp. Running the engine's own
// parallel loops on the same pool means exactly one set of worker threads per process: a second
// pool (Dispatch, pthreads) would compete with libgomp's threads while they spin between
// parallel regions, halving the speed of whichever runs second on a machine with few cores.

#ifndef COPENMP_H
#define COPENMP_H

#ifdef __cplusplus
extern "C" {
#endif

/// Work run by each thread of a parallel region: `thread` in 0..<`threads`, the team size the
/// runtime actually granted (it may be smaller than requested).
typedef void (*pd_omp_task)(void *context, int thread, int threads);

/// Runs `task` on a team of up to `threads` threads (the caller is thread 0) and returns when
/// all have finished. Nested calls run on a team of one.
void pd_omp_parallel(pd_omp_task task, void *context, int threads);

/// Sets the default team size for OpenMP regions started from the calling thread (OpenBLAS,
/// oneDNN). oneDNN fixes a primitive's split when the primitive is created.
void pd_omp_set_num_threads(int threads);

#ifdef __cplusplus
}
#endif

#endif // COPENMP_H
