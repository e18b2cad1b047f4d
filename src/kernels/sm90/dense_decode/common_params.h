// Kernel parameters that both dense decode main kernels (TMA + wgmma, and the mma.sync fallback) take: the query,
// the outputs, the schedule and the split-partial buffers. Strides are in elements.
#pragma once

#include <cstdint>

#include "core/decode_schedule.h"

namespace flashmla::sm90::dense_decode {

constexpr int kDecodeBlockN = 64;  // KV tokens per tile of both main kernels: the schedule's block_size_n

/// Where column `col` (0-511) of a split partial row sits in o_accum: the columns are permuted inside every 16-column
/// unit, position 16 u + 4 q + 2 t + e holding column 16 u + 8 t + 2 q + e (q < 4; t, e < 2). That is the order in
/// which a quad (4 lanes, one row) of a wgmma accumulator holds them: lane q has the column pairs 8 k + 2 q of every
/// 8-column group k, so one 16-byte store takes the pairs of groups 2 u and 2 u + 1 and the quad writes 64 contiguous
/// bytes of its row (in column order: 8-byte stores, 32 bytes per quad, twice the store instructions; measured 25%
/// slower epilogue). o_accum is workspace: only the main kernels and the combine read or write it.
__host__ __device__ constexpr int accum_pos(int col) {
  return (col & ~15) | ((col >> 1) & 3) << 2 | ((col >> 3) & 1) << 1 | (col & 1);
}
/// The inverse of accum_pos: the column stored at position `pos`.
__host__ __device__ constexpr int accum_col(int pos) {
  return (pos & ~15) | ((pos >> 1) & 1) << 3 | ((pos >> 2) & 3) << 1 | (pos & 1);
}
static_assert(accum_pos(accum_col(13)) == 13 && accum_col(accum_pos(13)) == 13 && accum_pos(8 + 2 * 3 + 1) == 4 * 3 + 2 + 1,
              "accum_pos and accum_col are inverse permutations of a 16-column unit");

/// Two values as one 32-bit word of a 2-byte float type T (bf16 or fp16, CUDA's or CUTLASS's), the first in the low
/// half (the lower address): a column pair of out in one 4-byte store.
template <typename T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  static_assert(sizeof(T) == 2, "a 2-byte float type");
  const T a(lo), b(hi);
  return static_cast<uint32_t>(*reinterpret_cast<const uint16_t*>(&a)) |
         static_cast<uint32_t>(*reinterpret_cast<const uint16_t*>(&b)) << 16;
}

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
  float* o_accum;    // (max_splits, s_q, h_q, 512), contiguous; the 512 of a row in accum_pos order
  float* lse_accum;  // (max_splits, s_q, h_q), contiguous, base 2
  const DecodeSchedEntry* sched;
  const int32_t* split_offsets;
  int b, s_q, h_q, h_kv, hpg, m_blocks;  // hpg = h_q / h_kv
  float scale_log2;                      // softmax_scale * log2(e)
  bool causal;
};

/// What one CTA of a main kernel works on. The grid is num_parts x h_kv x m_blocks on x, m-block fastest (the host
/// side launches m_blocks * h_kv * num_parts CTAs).
struct CtaWork {
  int g;                // KV head
  DecodeSchedEntry e;   // the schedule part's range of requests and blocks
  int row0, nrows;      // first query row (s x h_q / h_kv + h') of the m-block and its number of valid rows
};

__device__ __forceinline__ CtaWork cta_work(const CommonParams& p, int rows_per_cta) {
  CtaWork w;
  const int mb = blockIdx.x % p.m_blocks;
  w.g = (blockIdx.x / p.m_blocks) % p.h_kv;
  // Written by the scheduler kernel that ran before on this stream: plain loads (never __ldg).
  w.e = p.sched[blockIdx.x / (p.m_blocks * p.h_kv)];
  w.row0 = mb * rows_per_cta;
  w.nrows = min(rows_per_cta, p.s_q * p.hpg - w.row0);
  return w;
}

/// Request r's share of schedule part `e`: its length and the tiles [start, end) of it the part processes.
struct Segment {
  int len, start, end;
};

__device__ __forceinline__ Segment segment(const CommonParams& p, const DecodeSchedEntry& e, int r) {
  Segment sg;
  sg.len = p.seqlens[r];  // written by the caller earlier on the stream: a plain load
  sg.start = r == e.begin_req ? e.begin_block : 0;
  sg.end = r == e.end_req ? e.end_block : sched_num_blocks(sg.len, kDecodeBlockN);
  return sg;
}

/// Keys [0, bound) that query row `row` (absolute: s x h_q / h_kv + h') sees in a request of `len` tokens: all of
/// them, or bottom-right causal when s_q > 1 (query token s sees keys [0, len - s_q + s]).
__device__ __forceinline__ int visible_keys(const CommonParams& p, int len, int row) {
  const int s = row / p.hpg;
  return (p.causal && p.s_q > 1) ? max(0, min(len, len - p.s_q + s + 1)) : len;
}

}  // namespace flashmla::sm90::dense_decode
