#include "kernels/sm90/common/context.h"

#include <cuda.h>
#include <cuda_runtime.h>

#include <string>

#include "kernels/sm90/common/cuda_check.h"

namespace flashmla::sm90 {
namespace {

// A driver function through the runtime's entry-point query, so that the library needs no libcuda at link time.
template <typename Fn>
Fn driver_fn(const char* name) {
  void* f = nullptr;
  cudaDriverEntryPointQueryResult q{};
  FLASHMLA_CUDA_CHECK(cudaGetDriverEntryPointByVersion(name, &f, 12000, cudaEnableDefault, &q));
  if (q != cudaDriverEntryPointSuccess || f == nullptr) {
    throw CudaError(std::string("cudaGetDriverEntryPointByVersion(") + name + ")", static_cast<int>(q),
                    "driver entry point not found (driver older than CUDA 12?)");
  }
  return reinterpret_cast<Fn>(f);
}

}  // namespace

uint64_t current_context_id() {
  using GetCurrentFn = CUresult (*)(CUcontext*);
  using GetIdFn = CUresult (*)(CUcontext, unsigned long long*);
  static const GetCurrentFn get_current = driver_fn<GetCurrentFn>("cuCtxGetCurrent");
  static const GetIdFn get_id = driver_fn<GetIdFn>("cuCtxGetId");
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
