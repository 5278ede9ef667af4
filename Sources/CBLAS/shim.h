// The only place the project includes OpenBLAS's cblas.h.
#include <cblas.h>
// OpenBLAS extensions for the thread budget.
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
