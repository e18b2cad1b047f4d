// Dense decode on the GPU (sm_90): plan on the host, then schedule + run on the caller's stream.
//
//   DenseDecodePlan plan = plan_dense_decode(params);            // host only: validates, sizes the buffers
//   DenseDecodeSchedule sched = <two int32 device tensors: (plan.num_parts, 8) and (b + 1)>;
//   void* ws = <device memory, plan.workspace_bytes, 256-byte aligned>;
//   dense_decode_schedule(params.cache_seqlens, sched, stream);  // split-KV schedule from the device cache_seqlens
//                                                                // (one kernel, no host sync); once per step
//   dense_decode_run(params, plan, sched, ws, stream);           // main kernel + combine; every layer of the step
//
// The schedule is FlashMLA's (tile_scheduler_metadata, num_splits) pair: build it once per decoding step and reuse
// it for every layer while cache_seqlens keep their values. Neither call allocates, synchronizes or reads device data
// on the host, so a step can be captured in a CUDA graph. Errors: InvalidArgument (bad arguments, named),
// Unsupported (GPU other than sm_90, a layout the kernel does not take, or a build without CUDA), CudaError.
#pragma once

#include <cstdint>

#include "flashmla/params.h"

namespace flashmla {

/// Which main kernel a plan runs.
enum class DenseDecodeKernel : int {
  kWgmmaTma = 0,  // TMA + wgmma, warp-specialised; page_block_size a multiple of 8 that divides 64 or is a multiple of 64
  kFallback = 1,  // mma.sync baseline for every other page_block_size (slow; see docs/kernels/dense_decode.md)
};

/// The split-KV schedule, in caller-owned device memory (layout: core/decode_schedule.h, same sizes as FlashMLA's).
///   tile_scheduler_metadata  (num_parts, 8) int32, contiguous: one 32-byte entry per part (persistent CTA slot)
///   num_splits               (b + 1) int32, contiguous: request i owns split slots [num_splits[i], num_splits[i+1])
struct DenseDecodeSchedule {
  TensorView tile_scheduler_metadata;
  TensorView num_splits;
};

struct DenseDecodePlan {
  int device = 0;           // CUDA device of the tensors (made current by every call)
  DenseDecodeKernel kernel = DenseDecodeKernel::kWgmmaTma;
  int num_sms = 0;
  int rows_per_cta = 0;     // query rows (s_q x heads of one KV head) per CTA
  int m_blocks = 0;         // ceil(s_q * h_q / h_kv / rows_per_cta)
  int num_parts = 0;        // persistent CTA slots per (m-block, KV head) = rows of tile_scheduler_metadata
  int64_t batch = 0, s_q = 0, h_q = 0, h_kv = 0;
  int64_t max_splits = 0;   // split-partial slots (b + num_parts)
  // Workspace layout: the fp32 split partials (byte offsets; each 256-byte aligned).
  int64_t lse_accum_offset = 0, o_accum_offset = 0;
  int64_t workspace_bytes = 0;
};

/// FlashMLA's number of schedule parts on `device` for `q_rows_per_kv_head` (= s_q * h_q / h_kv) query rows per KV
/// head: max(num_sms / h_kv / m_blocks, 1), one CTA per SM. m_blocks counts the rows per CTA of the kernel that
/// `page_block_size` selects (64 is the main kernel's). Host only.
int dense_decode_num_parts(int device, int64_t q_rows_per_kv_head, int64_t h_kv, int64_t page_block_size = 64);

/// Validates (semantics and what the sm_90 kernel supports) and sizes the workspace. Host only. `num_parts` = 0 uses
/// dense_decode_num_parts; a positive value adopts a schedule built for that many parts (e.g. by an earlier call).
DenseDecodePlan plan_dense_decode(const DenseDecodeParams& p, int num_parts = 0);

/// Builds the split-KV schedule from `cache_seqlens` ((b) int32 on the device) into `sched`; num_parts is
/// sched.tile_scheduler_metadata.shape[0]. `stream` is a cudaStream_t (nullptr = legacy default stream).
void dense_decode_schedule(const TensorView& cache_seqlens, const DenseDecodeSchedule& sched, void* stream);

/// Main kernel + combine, using a schedule that dense_decode_schedule built from the same cache_seqlens values with
/// plan.num_parts parts. `workspace`: plan.workspace_bytes of device memory.
void dense_decode_run(const DenseDecodeParams& p, const DenseDecodePlan& plan, const DenseDecodeSchedule& sched,
                      void* workspace, void* stream);

}  // namespace flashmla
