// Identity of the current CUDA context, for per-context caches on the host.
#pragma once

#include <cstdint>

namespace flashmla::sm90 {

/// A process-unique id of the calling thread's current CUDA context (the driver's cuCtxGetId), which changes when a
/// context is destroyed and created again (cudaDeviceReset, a re-created primary context) even where the new context
/// reuses the old handle's address. Per-context state (function attributes such as the dynamic shared memory limit)
/// is cached under it. Throws CudaError when no context is current or the driver lacks cuCtxGetId (before CUDA 12).
uint64_t current_context_id();

}  // namespace flashmla::sm90
