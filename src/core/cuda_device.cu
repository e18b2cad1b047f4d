// Device queries used by the GPU entry points.
#include <cuda_runtime.h>

#include "flashmla/version.h"

namespace flashmla {

bool built_with_cuda() { return true; }

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();  // no driver / no device: clear the sticky-free error and report none
    return 0;
  }
  return n;
}

}  // namespace flashmla
