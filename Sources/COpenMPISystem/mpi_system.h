// Open MPI's header, reached through pkg-config (ompi-c). Only the CMPI C target includes it;
// Swift code imports CMPI, whose interface has no MPI types.
#include <mpi.h>
