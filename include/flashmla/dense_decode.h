// Dense decode on the GPU (sm_90): plan on the host, then schedule + run on the caller's stream.
//
//   DenseDecodePlan plan = plan_dense_decode(params);          // host only: validates, sizes the workspace
//   void* ws = <cudaMalloc plan.workspace_bytes, 256-byte aligned>;
//   dense_decode_schedule(params, plan, ws, stream);           // builds the split-KV schedule from the device
//                                                              // cache_seqlens (one kernel, no host sync)
//   dense_decode_run(params, plan, ws, stream);                // main kernel + combine; reuse the schedule for
//                                                              // every layer of the step (same cache_seqlens)
//
// Neither call allocates, synchronizes or reads device data on the host: a step can be captured in a CUDA graph.
// The schedule depends on the values of cache_seqlens: rebuild it whenever they change. Errors: InvalidArgument
// (bad arguments, named), Unsupported (GPU other than sm_90, or a layout the kernel does not take), CudaError.
#pragma once

#include <cstdint>

#include "flashmla/params.h"

namespace flashmla {

/// Which main kernel a plan runs.
enum class DenseDecodeKernel : int {
  kWgmmaTma = 0,  // TMA + wgmma, warp-specialised; page_block_size a multiple of 8 that divides 64 or is a multiple of 64
  kFallback = 1,  // mma.sync baseline for every other page_block_size (slow; see docs/kernels/dense_decode.md)
};

struct DenseDecodePlan {
  int device = 0;           // CUDA device of the tensors (made current by every call)
  DenseDecodeKernel kernel = DenseDecodeKernel::kWgmmaTma;
  int num_sms = 0;
  int rows_per_cta = 0;     // query rows (s_q x heads of one KV head) per CTA
  int m_blocks = 0;         // ceil(s_q * h_q / h_kv / rows_per_cta)
  int num_parts = 0;        // persistent CTA slots per (m-block, KV head)
  int64_t batch = 0, s_q = 0, h_q = 0, h_kv = 0;
  int64_t max_splits = 0;   // split-partial slots (b + num_parts)
  // Workspace layout (byte offsets; each 256-byte aligned).
  int64_t sched_offset = 0, split_offsets_offset = 0, lse_accum_offset = 0, o_accum_offset = 0;
  int64_t workspace_bytes = 0;
};

/// Validates (semantics and what the sm_90 kernel supports) and sizes the workspace. Host only.
DenseDecodePlan plan_dense_decode(const DenseDecodeParams& p);

/// Builds the split-KV schedule into the workspace. `stream` is a cudaStream_t (nullptr = legacy default stream).
void dense_decode_schedule(const DenseDecodeParams& p, const DenseDecodePlan& plan, void* workspace, void* stream);

/// Main kernel + combine, using the schedule already in the workspace.
void dense_decode_run(const DenseDecodeParams& p, const DenseDecodePlan& plan, void* workspace, void* stream);

}  // namespace flashmla
