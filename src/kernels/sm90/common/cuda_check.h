// CUDA error handling for host code of the kernels: every runtime call goes through FLASHMLA_CUDA_CHECK, which throws
// flashmla::CudaError naming the call.
#pragma once

#include <cuda_runtime.h>

#include "flashmla/errors.h"

#define FLASHMLA_CUDA_CHECK(call)                                                        \
  do {                                                                                   \
    const cudaError_t flashmla_err_ = (call);                                            \
    if (flashmla_err_ != cudaSuccess) {                                                  \
      throw ::flashmla::CudaError(#call, static_cast<int>(flashmla_err_), cudaGetErrorString(flashmla_err_)); \
    }                                                                                    \
  } while (0)

namespace flashmla::sm90 {

/// Makes `device` current for the lifetime of the guard and restores the previous device after.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    FLASHMLA_CUDA_CHECK(cudaGetDevice(&previous_));
    if (device != previous_) FLASHMLA_CUDA_CHECK(cudaSetDevice(device));
  }
  ~DeviceGuard() { cudaSetDevice(previous_); }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

}  // namespace flashmla::sm90
