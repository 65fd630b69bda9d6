// nvcc's build of the kernels that tests/test_simt.cpp runs on the emulated device. Compiled (not
// run: CI has no GPU) in CUDA builds, so the one kernel source provably stays valid CUDA, and
// cortex::launch's nvcc branch (<<<>>>, the shared-memory opt-in, the error check) is
// instantiated for kernels with and without dynamic shared memory (tests/CMakeLists.txt).
#include "simt_kernels.h"

namespace simt_test {

// Device pointers in, results in device memory; the caller synchronises.
void launch_reduce_and_softmax(const float* x, int n, float* partial, float* total, float* y, int rows, int cols,
                               cortex::Stream stream) {
  CORTEX_LAUNCH(reduce_sum, dim3(13), dim3(256), 0, stream, x, n, partial, total);
  CORTEX_LAUNCH(softmax_rows, dim3(rows), dim3(128), (cols + 4) * sizeof(float), stream, x, y, cols);
}

}  // namespace simt_test
