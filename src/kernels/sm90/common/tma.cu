#include "kernels/sm90/common/tma.h"

#include <cuda_runtime.h>

#include <string>

#include "kernels/sm90/common/cuda_check.h"
#include "kernels/sm90/common/driver_entry.h"

namespace flashmla::sm90 {
namespace {

using EncodeTiledFn = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*,
                                   const cuuint64_t*, const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave,
                                   CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

EncodeTiledFn encode_tiled() {
  static const EncodeTiledFn fn = driver_entry_point<EncodeTiledFn>("cuTensorMapEncodeTiled");  // resolved once
  return fn;
}

}  // namespace

CUtensorMap make_tma_map_sw128(CUtensorMapDataType dtype, const void* base, int rank, const uint64_t* dims,
                               const uint64_t* byte_strides, const uint32_t* box) {
  CUtensorMap map{};
  cuuint64_t d[5], s[4];
  cuuint32_t b[5], e[5];
  for (int i = 0; i < rank; ++i) {
    d[i] = dims[i], b[i] = box[i], e[i] = 1;
    if (i + 1 < rank) s[i] = byte_strides[i];
  }
  const CUresult r = encode_tiled()(&map, dtype, static_cast<cuuint32_t>(rank), const_cast<void*>(base), d, s, b, e,
                                    CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                                    CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS) {
    throw CudaError("cuTensorMapEncodeTiled", static_cast<int>(r), "the driver rejected the tensor map (rank " +
                                                                        std::to_string(rank) + ")");
  }
  return map;
}

}  // namespace flashmla::sm90
