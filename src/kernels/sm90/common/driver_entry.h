// Driver API functions reached through the CUDA runtime's entry-point query, so that the library links the static
// CUDA runtime only (no libcuda at link time).
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "kernels/sm90/common/cuda_check.h"

namespace flashmla::sm90 {

/// The driver function `name` (ABI of CUDA 12.0) as a pointer of type Fn. Throws CudaError when the driver lacks it.
/// Cache the result: the query is a runtime call, the entry point is process-wide.
template <typename Fn>
Fn driver_entry_point(const char* name) {
  void* f = nullptr;
  cudaDriverEntryPointQueryResult q{};
  FLASHMLA_CUDA_CHECK(cudaGetDriverEntryPointByVersion(name, &f, 12000, cudaEnableDefault, &q));
  if (q != cudaDriverEntryPointSuccess || f == nullptr) {
    throw CudaError(std::string("cudaGetDriverEntryPointByVersion(") + name + ")", static_cast<int>(q),
                    "driver entry point not found (driver older than CUDA 12?)");
  }
  return reinterpret_cast<Fn>(f);
}

}  // namespace flashmla::sm90
