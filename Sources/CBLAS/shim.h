// The only place the project includes OpenBLAS's cblas.h.
#include <cblas.h>
// OpenBLAS extensions for the thread budget.
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
// The kernel family OpenBLAS dispatches to on this CPU (e.g. "Haswell", "SkylakeX"; it follows
// OPENBLAS_CORETYPE when that is set).
char *openblas_get_corename(void);
// OpenBLAS's build configuration ("OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Zen MAX_THREADS=64"),
// part of the key of tuned convolution decisions.
char *openblas_get_config(void);
