#include "kernels/sm90/common/context.h"

#include <cuda.h>
#include <cuda_runtime.h>

#include "kernels/sm90/common/cuda_check.h"
#include "kernels/sm90/common/driver_entry.h"

namespace flashmla::sm90 {

uint64_t current_context_id() {
  using GetCurrentFn = CUresult (*)(CUcontext*);
  using GetIdFn = CUresult (*)(CUcontext, unsigned long long*);
  static const GetCurrentFn get_current = driver_entry_point<GetCurrentFn>("cuCtxGetCurrent");
  static const GetIdFn get_id = driver_entry_point<GetIdFn>("cuCtxGetId");
  CUcontext ctx = nullptr;
  CUresult r = get_current(&ctx);
  if (r == CUDA_SUCCESS && ctx == nullptr) {  // e.g. right after cudaDeviceReset: the runtime binds a new one lazily
    FLASHMLA_CUDA_CHECK(cudaFree(nullptr));
    r = get_current(&ctx);
  }
  if (r != CUDA_SUCCESS || ctx == nullptr) {
    throw CudaError("cuCtxGetCurrent", static_cast<int>(r), "no current context");
  }
  unsigned long long id = 0;
  r = get_id(ctx, &id);
  if (r != CUDA_SUCCESS) throw CudaError("cuCtxGetId", static_cast<int>(r), "");
  return id;
}

}  // namespace flashmla::sm90
