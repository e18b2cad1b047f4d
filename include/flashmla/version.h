#pragma once

#define FLASHMLA_VERSION_MAJOR 0
#define FLASHMLA_VERSION_MINOR 1
#define FLASHMLA_VERSION_PATCH 0

namespace flashmla {
/// "0.1.0"
const char* version();
/// True when the library was built with its CUDA kernels.
bool built_with_cuda();
/// Number of CUDA devices the runtime sees; 0 when built without CUDA or when no driver/GPU is present.
int cuda_device_count();
}  // namespace flashmla
