// The only translation unit that includes mpi.h. Each call checks MPI's return code and turns
// it into an error string; collectives larger than INT_MAX elements go in slices because MPI
// counts are ints.
#include "CMPI.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

static MPI_Comm g_local = MPI_COMM_NULL;

// Formats MPI's message for `code` into err; returns non-zero when code is an error.
static int fail(int code, const char *what, char *err, size_t err_len) {
  if (code == MPI_SUCCESS) return 0;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) snprintf(text, sizeof text, "MPI error code %d", code);
  if (err && err_len) snprintf(err, err_len, "%s failed: %s", what, text);
  return code;
}

int pd_mpi_init(int required, int *provided, char *err, size_t err_len) {
  static const int levels[] = {MPI_THREAD_SINGLE, MPI_THREAD_FUNNELED, MPI_THREAD_SERIALIZED, MPI_THREAD_MULTIPLE};
  if (required < 0 || required > 3) required = 2;
  int got = MPI_THREAD_SINGLE, rc;
  if ((rc = fail(MPI_Init_thread(NULL, NULL, levels[required], &got), "MPI_Init_thread", err, err_len))) return rc;
  *provided = 0;
  for (int i = 0; i < 4; i++) if (levels[i] == got) *provided = i;
  // Report errors to the caller instead of aborting inside MPI: the caller names the rank and
  // the operation, then aborts the job itself.
  if ((rc = fail(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler", err, err_len))) return rc;
  if ((rc = fail(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &g_local),
                 "MPI_Comm_split_type", err, err_len))) return rc;
  return fail(MPI_Comm_set_errhandler(g_local, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler(local)", err, err_len);
}

int pd_mpi_is_initialized(void) {
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  return init && !fin;
}

int pd_mpi_rank(void) { int r = 0; MPI_Comm_rank(MPI_COMM_WORLD, &r); return r; }
int pd_mpi_size(void) { int s = 1; MPI_Comm_size(MPI_COMM_WORLD, &s); return s; }
int pd_mpi_local_rank(void) { int r = 0; if (g_local != MPI_COMM_NULL) MPI_Comm_rank(g_local, &r); return r; }
int pd_mpi_local_size(void) { int s = 1; if (g_local != MPI_COMM_NULL) MPI_Comm_size(g_local, &s); return s; }

// In-place SUM of `count` elements of `type` (element size `size`), in INT_MAX slices.
static int allreduce_sum(void *buffer, int64_t count, MPI_Datatype type, size_t size, const char *what,
                         char *err, size_t err_len) {
  char *bytes = buffer;
  for (int64_t done = 0; done < count;) {
    int n = (int)((count - done) > INT_MAX ? INT_MAX : (count - done));
    int rc = fail(MPI_Allreduce(MPI_IN_PLACE, bytes + done * (int64_t)size, n, type, MPI_SUM, MPI_COMM_WORLD), what, err, err_len);
    if (rc) return rc;
    done += n;
  }
  return 0;
}

int pd_mpi_allreduce_sum_f32(float *buffer, int64_t count, char *err, size_t err_len) {
  return allreduce_sum(buffer, count, MPI_FLOAT, sizeof(float), "MPI_Allreduce(float)", err, err_len);
}

int pd_mpi_allreduce_sum_f64(double *buffer, int64_t count, char *err, size_t err_len) {
  return allreduce_sum(buffer, count, MPI_DOUBLE, sizeof(double), "MPI_Allreduce(double)", err, err_len);
}

int pd_mpi_broadcast(void *buffer, int64_t count, int root, char *err, size_t err_len) {
  char *bytes = buffer;
  for (int64_t done = 0; done < count;) {
    int n = (int)((count - done) > INT_MAX ? INT_MAX : (count - done));
    int rc = fail(MPI_Bcast(bytes + done, n, MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast", err, err_len);
    if (rc) return rc;
    done += n;
  }
  return 0;
}

int pd_mpi_allgather_i64(const int64_t *values, int count, int64_t *received, char *err, size_t err_len) {
  return fail(MPI_Allgather(values, count, MPI_INT64_T, received, count, MPI_INT64_T, MPI_COMM_WORLD),
              "MPI_Allgather(int64)", err, err_len);
}

int pd_mpi_gatherv_bytes(const void *send, int count, void *received, const int *counts, int root, char *err, size_t err_len) {
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  int *displacements = NULL;
  if (rank == root) {
    displacements = malloc(sizeof(int) * (size_t)size);
    if (!displacements) {
      if (err && err_len) snprintf(err, err_len, "MPI_Gatherv: out of memory for %d displacements", size);
      return -1;
    }
    long long at = 0;
    for (int r = 0; r < size; r++) {
      if (at > INT_MAX) {
        free(displacements);
        if (err && err_len) snprintf(err, err_len, "MPI_Gatherv: %lld bytes gathered exceed INT_MAX", at);
        return -1;
      }
      displacements[r] = (int)at;
      at += counts[r];
    }
  }
  int rc = fail(MPI_Gatherv(send, count, MPI_BYTE, received, counts, displacements, MPI_BYTE, root, MPI_COMM_WORLD),
                "MPI_Gatherv", err, err_len);
  free(displacements);
  return rc;
}

int pd_mpi_barrier(char *err, size_t err_len) { return fail(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier", err, err_len); }

void pd_mpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }

int pd_mpi_finalize(char *err, size_t err_len) {
  if (g_local != MPI_COMM_NULL) MPI_Comm_free(&g_local);
  return fail(MPI_Finalize(), "MPI_Finalize", err, err_len);
}
