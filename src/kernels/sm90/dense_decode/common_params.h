// Kernel parameters that both dense decode main kernels (TMA + wgmma, and the mma.sync fallback) take: the query,
// the outputs, the schedule and the split-partial buffers. Strides are in elements.
#pragma once

#include <cstdint>

#include "core/decode_schedule.h"

namespace flashmla::sm90::dense_decode {

struct CommonParams {
  const void* q;  // (b, s_q, h_q, 576), bf16 or fp16
  int64_t q_stride_b, q_stride_s, q_stride_h;
  const int32_t* block_table;
  int64_t bt_stride;
  const int32_t* seqlens;
  void* out;  // (b, s_q, h_q, 512), the dtype of q
  int64_t o_stride_b, o_stride_s, o_stride_h;
  float* lse;  // (b, h_q, s_q), natural log
  int64_t lse_stride_b, lse_stride_h, lse_stride_s;
  float* o_accum;    // (max_splits, s_q, h_q, 512), contiguous
  float* lse_accum;  // (max_splits, s_q, h_q), contiguous, base 2
  const DecodeSchedEntry* sched;
  const int32_t* split_offsets;
  int b, s_q, h_q, h_kv, hpg, m_blocks;  // hpg = h_q / h_kv
  float scale_log2;                      // softmax_scale * log2(e)
  bool causal;
};

}  // namespace flashmla::sm90::dense_decode
