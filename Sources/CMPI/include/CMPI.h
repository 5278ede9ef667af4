// CMPI: the project's only door to MPI, as plain C functions over the world communicator.
//
// Swift cannot import Open MPI's handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM are macros over
// casts of globals), so this wrapper owns them. Every function checks MPI's return code (errors
// return instead of aborting: MPI_ERRORS_RETURN is set on the communicators) and writes MPI's
// error string into `err` (NUL-terminated, truncated to `err_len`).

#ifndef CMPI_H
#define CMPI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// MPI thread levels, in increasing order (MPI_THREAD_SINGLE … MPI_THREAD_MULTIPLE).
enum { PD_MPI_THREAD_SINGLE = 0, PD_MPI_THREAD_FUNNELED = 1, PD_MPI_THREAD_SERIALIZED = 2, PD_MPI_THREAD_MULTIPLE = 3 };

/// Initialises MPI with at least `required` thread support; `*provided` receives the level the
/// library granted (callers check it). Started without mpirun this makes a one-rank world.
/// Also builds the node-local communicator. Returns 0 on success.
int pd_mpi_init(int required, int *provided, char *err, size_t err_len);

/// Whether MPI is initialised and not finalised.
int pd_mpi_is_initialized(void);

/// Rank and size in the world; rank and size among the ranks on this node.
int pd_mpi_rank(void);
int pd_mpi_size(void);
int pd_mpi_local_rank(void);
int pd_mpi_local_size(void);

/// In-place sum of `count` floats (or doubles) across all ranks; counts above INT_MAX are
/// reduced in slices. Returns 0 on success.
int pd_mpi_allreduce_sum_f32(float *buffer, int64_t count, char *err, size_t err_len);
int pd_mpi_allreduce_sum_f64(double *buffer, int64_t count, char *err, size_t err_len);

/// Broadcasts `count` bytes from `root` (in slices above INT_MAX).
int pd_mpi_broadcast(void *buffer, int64_t count, int root, char *err, size_t err_len);

/// Gathers `count` int64 values from every rank into `received` ([size × count], rank order).
int pd_mpi_allgather_i64(const int64_t *values, int count, int64_t *received, char *err, size_t err_len);

/// Gathers variable-length byte buffers to `root` (MPI_Gatherv): rank r sends `count` bytes;
/// on the root, `counts[r]` (every rank's count, known from an allgather first) and `received`
/// (their sum, in rank order) are used; other ranks may pass NULL. Each count must fit an int.
int pd_mpi_gatherv_bytes(const void *send, int count, void *received, const int *counts, int root, char *err, size_t err_len);

/// Blocks until every rank has called it.
int pd_mpi_barrier(char *err, size_t err_len);

/// Terminates every process of the job with `code` (never returns in practice).
void pd_mpi_abort(int code);

/// Finalises MPI (only after success: after an error the job is aborted instead).
int pd_mpi_finalize(char *err, size_t err_len);

#ifdef __cplusplus
}
#endif

#endif // CMPI_H
