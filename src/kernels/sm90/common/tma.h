// Host-side creation of TMA tensor maps (CUtensorMap) for the sm_90 kernels.
//
// The driver function cuTensorMapEncodeTiled is reached through cudaGetDriverEntryPointByVersion, so the library
// links the static CUDA runtime only (no libcuda at link time). Encoding is pure host work: no allocation, no
// synchronisation, no device access; it may run inside CUDA-graph capture.
#pragma once

#include <cuda.h>

#include <cstdint>

namespace flashmla::sm90 {

/// A tiled tensor map over a rank-`rank` strided global tensor with 128-byte swizzle.
///   dims[i]          extent of dimension i, innermost first (dims[0] is contiguous)
///   byte_strides[i]  stride of dimension i + 1 in bytes (rank - 1 values; multiples of 16)
///   box[i]           box extent per dimension; box[0] * element size must be <= 128 bytes (swizzle span)
/// Out-of-bounds boxes are zero-filled. Throws CudaError if the driver rejects the description.
CUtensorMap make_tma_map_sw128(CUtensorMapDataType dtype, const void* base, int rank, const uint64_t* dims,
                               const uint64_t* byte_strides, const uint32_t* box);

}  // namespace flashmla::sm90
