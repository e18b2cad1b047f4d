// Dense decode main kernel for sm_90a: TMA + wgmma (docs/kernels/dense_decode.md).
//
// One CTA = one (schedule part, KV head g, m-block of 64 query rows). It walks the requests ("segments") and 64-token
// KV tiles its schedule entry assigns; both warpgroups walk the same sequence, so tile t means the same to both.
//
//   warpgroup 0: Q of each segment into smem; S = Q K^T (wgmma 64x64x16, one commit group per 64-dim chunk, each
//                issued when its TMA has landed); online softmax in base 2; publishes P (input dtype) and the row
//                rescale factor in smem (bar.arrive kPFull); O[:, 0:256] += P V.
//   warpgroup 1: waits for P (bar.sync kPFull), rescales O[:, 256:512], O[:, 256:512] += P V, releases P
//                (bar.arrive kPFree; warpgroup 0 syncs on it before the next P).
//
// KV tiles live in a 2-stage ring. There is no producer warp: the thread that finishes the last read of a 64-dim
// chunk of a stage refills that chunk with the tile two steps ahead (chunk 8, K only: after QK^T; chunks 0-3: after
// warpgroup 0's PV; chunks 4-7: after warpgroup 1's PV), so a chunk is reloaded as soon as it is free.
//
// Masking: logits of tokens at or past the row's bound (length, bottom-right causal) are replaced by -inf, and the
// V rows of a partial last tile are zeroed in smem before PV, so NaN in unused cache slots never reaches O.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cute/tensor.hpp>
#include <cutlass/arch/barrier.h>
#include <cutlass/numeric_types.h>

#include <cstdint>

#include "core/decode_schedule.h"
#include "kernels/sm90/dense_decode/common_params.h"
#include "kernels/sm90/dense_decode/config.cuh"
#include "kernels/sm90/dense_decode/kv_tile_loader.cuh"

namespace flashmla::sm90::dense_decode {

struct Params : CommonParams {
  PagedTmaKvLoader kv;  // holds the CUtensorMap (64-byte aligned)
  bool q_vec16;         // q rows can be read with 16-byte loads (aligned base and strides)
};

using TxBarrier = cutlass::arch::ClusterTransactionBarrier;

using cutlass::arch::NamedBarrier;

/// The CTA's work: requests [e.begin_req, e.end_req], calling f(request, length, first tile, end tile) for each.
template <typename F>
__device__ __forceinline__ void for_each_segment(const Params& p, const DecodeSchedEntry& e, F&& f) {
#pragma unroll 1
  for (int r = e.begin_req; r <= e.end_req; ++r) {
    // Written by the scheduler kernel and the caller earlier on the stream: plain loads.
    const int len = p.seqlens[r];
    const int start = r == e.begin_req ? e.begin_block : 0;
    const int end = r == e.end_req ? e.end_block : sched_num_blocks(len, kBlockN);
    f(r, len, start, end);
  }
}

/// Warpgroup 0: Q rows of the segment into the swizzled Q buffer; rows past the m-block's valid rows are zeros.
template <typename E>
__device__ __forceinline__ void load_q(const Params& p, SharedStorage<E>& ss, int r, int row0, int nrows, int g, int t128) {
  using C = Config<E>;
  Tensor sQ = make_tensor(make_smem_ptr(ss.q), typename C::LayoutQ{});
  constexpr int kVecs = kDqk / 8;  // 16-byte vectors per row
  constexpr int kUnroll = 12;
  static_assert(kBlockM * kVecs % (128 * kUnroll) == 0, "no tail");
  const E* q = static_cast<const E*>(p.q) + r * p.q_stride_b;
#pragma unroll 1
  for (int base = t128; base < kBlockM * kVecs; base += 128 * kUnroll) {
    uint4 v[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int i = base + u * 128, row = i / kVecs, d = (i % kVecs) * 8;
      v[u] = make_uint4(0, 0, 0, 0);
      if (row < nrows) {
        const int s = (row0 + row) / p.hpg, h = g * p.hpg + (row0 + row) % p.hpg;
        const E* src = q + s * p.q_stride_s + h * p.q_stride_h + d;
        if (p.q_vec16) {
          v[u] = *reinterpret_cast<const uint4*>(src);
        } else {
          E* dst = reinterpret_cast<E*>(&v[u]);
#pragma unroll
          for (int j = 0; j < 8; ++j) dst[j] = src[j];
        }
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int i = base + u * 128, row = i / kVecs, d = (i % kVecs) * 8;
      // 8 consecutive elements starting at a multiple of 8 stay contiguous under the 128-byte swizzle.
      *reinterpret_cast<uint4*>(&sQ(row, d)) = v[u];
    }
  }
}

/// Position in the CTA's sequence of KV tiles (requests [e.begin_req, e.end_req], empty ones skipped).
struct TileCursor {
  int r, blk, end, len;
  __device__ void settle(const Params& p, const DecodeSchedEntry& e) {
    for (; r <= e.end_req; ++r, blk = 0) {
      len = p.seqlens[r];
      end = r == e.end_req ? e.end_block : sched_num_blocks(len, kBlockN);
      if (blk < end) return;
    }
  }
  __device__ void begin(const Params& p, const DecodeSchedEntry& e) {
    r = e.begin_req, blk = e.begin_block;
    settle(p, e);
  }
  __device__ void next(const Params& p, const DecodeSchedEntry& e) {
    if (++blk >= end) ++r, blk = 0, settle(p, e);
  }
  __device__ bool done(const DecodeSchedEntry& e) const { return r > e.end_req; }
  /// Loads dim chunks [c0, c1) of the current tile into `stage` (single thread), then moves to the next tile.
  template <typename E>
  __device__ void load_and_next(const Params& p, const DecodeSchedEntry& e, SharedStorage<E>& ss, int stage, int g,
                                int c0, int c1) {
    if (done(e)) return;
    const int tok0 = blk * kBlockN;
    p.kv.load_chunks(ss.kv[stage], ss.kv_full[stage], p.block_table + r * p.bt_stride, tok0, min(kBlockN, len - tok0),
                     g, c0, c1);
    next(p, e);
  }
};

/// Zeroes V rows [valid, 64) of dims [dim0, dim0 + 256) of one KV stage (a partial last tile), then makes the
/// writes visible to wgmma and syncs the 128 threads of the calling warpgroup on `bar`.
template <typename E>
__device__ __forceinline__ void zero_tail_rows(E* stage, int valid, int dim0, int t128, uint32_t bar) {
  using C = Config<E>;
  Tensor sKV = make_tensor(make_smem_ptr(stage), typename C::LayoutKV{});
  constexpr int kVecs = kHalfDv / 8;
  for (int i = t128; i < (kBlockN - valid) * kVecs; i += 128) {
    const int row = valid + i / kVecs, d = dim0 + (i % kVecs) * 8;
    *reinterpret_cast<uint4*>(&sKV(row, d, 0)) = make_uint4(0, 0, 0, 0);
  }
  cutlass::arch::fence_view_async_shared();
  NamedBarrier::sync(128, bar);
}

/// Epilogue of one math warpgroup: its 256 output columns of the two rows `rows` this thread holds, scaled by inv_l.
/// Element i of the accumulator is row slot (i / 2) % 2, column get<1>(coord(i)); elements 2k, 2k + 1 are adjacent.
template <typename E, typename TensorO, typename TensorC>
__device__ __forceinline__ void store_o(const Params& p, const TensorO& acc, const TensorC& coord, const int (&rows)[2],
                                        const float (&inv_l)[2], int r, int row0, int nrows, int g, int col0,
                                        bool split, int slot) {
#pragma unroll
  for (int j = 0; j < 2; ++j) {
    if (rows[j] >= nrows) continue;
    const int s = (row0 + rows[j]) / p.hpg, h = g * p.hpg + (row0 + rows[j]) % p.hpg;
    const float sc = inv_l[j];
    if (split) {
      float* dst = p.o_accum + ((static_cast<int64_t>(slot) * p.s_q + s) * p.h_q + h) * kDv + col0;
#pragma unroll
      for (int i = 2 * j; i < size(acc); i += 4) {
        *reinterpret_cast<float2*>(dst + get<1>(coord(i))) = make_float2(acc(i) * sc, acc(i + 1) * sc);
      }
    } else {
      E* dst = static_cast<E*>(p.out) + r * p.o_stride_b + s * p.o_stride_s + h * p.o_stride_h + col0;
#pragma unroll
      for (int i = 2 * j; i < size(acc); i += 4) {
        E* d = dst + get<1>(coord(i));
        d[0] = E(acc(i) * sc);
        d[1] = E(acc(i + 1) * sc);
      }
    }
  }
}

template <typename E>
__global__ void __launch_bounds__(kThreads, 1) dense_decode_kernel(const __grid_constant__ Params p) {
  using C = Config<E>;
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  // The 128-byte swizzle is a function of address bits 4-9: the buffers must start on 1024-byte boundaries.
  SharedStorage<E>& ss = *reinterpret_cast<SharedStorage<E>*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023));

  const int wg = threadIdx.x / 128;
  const int t128 = threadIdx.x % 128;
  const bool elected = t128 == 0;  // the thread of a warpgroup that issues its TMA loads
  const int mb = blockIdx.x % p.m_blocks;
  const int g = (blockIdx.x / p.m_blocks) % p.h_kv;
  const int part = blockIdx.x / (p.m_blocks * p.h_kv);
  // Written by the scheduler kernel that ran before on this stream: plain loads.
  const DecodeSchedEntry e = p.sched[part];
  if (e.begin_req >= p.b) return;
  const int row0 = mb * kBlockM;
  const int nrows = min(kBlockM, p.s_q * p.hpg - row0);

  // Refill cursor of this warpgroup: the tile two steps ahead of the one being consumed.
  TileCursor ahead;
  ahead.begin(p, e);
  if (threadIdx.x == 0) {
    for (int st = 0; st < kStages; ++st) {
      for (int c = 0; c < kChunks; ++c) TxBarrier::init(&ss.kv_full[st][c], 1);
    }
    cutlass::arch::fence_barrier_init();
  }
  __syncthreads();
  // Let the combine grid (programmatic dependent launch) be scheduled; it waits for this grid's completion itself.
  asm volatile("griddepcontrol.launch_dependents;");
  if (threadIdx.x == 0) {  // prologue: tiles 0 and 1, every chunk
    for (int st = 0; st < kStages; ++st) ahead.load_and_next(p, e, ss, st, g, 0, kChunks);
  } else {
    ahead.next(p, e), ahead.next(p, e);
  }

  typename C::MmaPV mma_pv;
  auto thr_pv = mma_pv.get_thread_slice(t128);
  Tensor sP = make_tensor(make_smem_ptr(ss.p), typename C::LayoutP{});
  Tensor sV = make_tensor(make_smem_ptr(&ss.kv[0][0] + wg * kHalfDv * kBlockN), typename C::LayoutV{});
  Tensor tOrP = thr_pv.partition_fragment_A(sP);  // (MMA, 1, 4)
  Tensor tOrV = thr_pv.partition_fragment_B(sV);  // (MMA, 1, 4, stage)
  Tensor tOrO = partition_fragment_C(mma_pv, Shape<Int<kBlockM>, Int<kHalfDv>>{});
  Tensor tOcO = thr_pv.partition_C(make_identity_tensor(Shape<Int<kBlockM>, Int<kHalfDv>>{}));
  // The two rows this thread holds in every m64nN accumulator (element i is in row slot (i / 2) % 2).
  const int my_row[2] = {get<0>(tOcO(0)), get<0>(tOcO(2))};

  auto pv = [&](int stage) {  // O_half += P V_half over the 64 tokens of `stage`
    warpgroup_fence_operand(tOrO);
    warpgroup_arrive();
#pragma unroll
    for (int k = 0; k < size<2>(tOrP); ++k) cute::gemm(mma_pv, tOrP(_, _, k), tOrV(_, _, k, stage), tOrO);
    warpgroup_commit_batch();
  };
  auto rescale_o = [&](const float (&a)[2]) {
#pragma unroll
    for (int i = 0; i < size(tOrO); ++i) tOrO(i) *= a[(i / 2) % 2];
  };
  auto split_slot = [&](int r, bool& split) {
    const int first = p.split_offsets[r];
    split = p.split_offsets[r + 1] - first > 1;
    return first + (r == e.begin_req ? e.begin_split : 0);
  };
  mma_pv.accumulate_ = GMMA::ScaleOut::One;

  if (wg == 1) {
    // ------------------------------------------------------------------ warpgroup 1: O[:, 256:512]
    int t = 0;
    for_each_segment(p, e, [&](int r, int len, int start, int end) {
      clear(tOrO);
#pragma unroll 1
      for (int blk = start; blk < end; ++blk, ++t) {
        const int st = t % kStages;
        NamedBarrier::sync(256, kPFull);  // P(t) and alpha(t) are in smem; QK^T(t) is done
        const float a[2] = {ss.row_scale[my_row[0]], ss.row_scale[my_row[1]]};
        rescale_o(a);
        // Complete already (QK^T waited for every chunk); observing them orders the TMA writes before our reads.
        for (int c = kHalfDv / kChunk; c < kDv / kChunk; ++c) TxBarrier::wait(&ss.kv_full[st][c], (t / kStages) & 1);
        const int valid = min(kBlockN, len - blk * kBlockN);
        if (valid < kBlockN) zero_tail_rows(ss.kv[st], valid, kHalfDv, t128, kWg1Sync);
        pv(st);
        warpgroup_wait<0>();
        warpgroup_fence_operand(tOrO);
        if (elected) ahead.load_and_next(p, e, ss, st, g, kHalfDv / kChunk, kDv / kChunk);  // chunks 4-7 are free
        NamedBarrier::arrive(256, kPFree);  // done with P(t) and row_scale
      }
      NamedBarrier::sync(256, kPFull);  // 1 / l of the segment's rows
      const float inv_l[2] = {ss.row_scale[my_row[0]], ss.row_scale[my_row[1]]};
      NamedBarrier::arrive(256, kPFree);
      bool split;
      const int slot = split_slot(r, split);
      store_o<E>(p, tOrO, tOcO, my_row, inv_l, r, row0, nrows, g, kHalfDv, split, slot);
    });
    return;
  }

  // -------------------------------------------------------------------- warpgroup 0: S, softmax, O[:, 0:256]
  typename C::MmaQK mma_qk;
  auto thr_qk = mma_qk.get_thread_slice(t128);
  Tensor sQ = make_tensor(make_smem_ptr(ss.q), typename C::LayoutQ{});
  Tensor sK = make_tensor(make_smem_ptr(&ss.kv[0][0]), typename C::LayoutKV{});
  Tensor tSrQ = thr_qk.partition_fragment_A(sQ);  // (MMA, 1, 36)
  Tensor tSrK = thr_qk.partition_fragment_B(sK);  // (MMA, 1, 36, stage)
  Tensor tSrS = partition_fragment_C(mma_qk, Shape<Int<kBlockM>, Int<kBlockN>>{});
  Tensor tScS = thr_qk.partition_C(make_identity_tensor(Shape<Int<kBlockM>, Int<kBlockN>>{}));
  // P store: element pairs (2k, 2k + 1) of S are adjacent columns of one row; under the 128-byte swizzle the 16-byte
  // unit u of row `row` sits at unit u ^ (row % 8), and row % 8 is lane / 4 for both rows of the thread. Spelled out
  // (instead of a CuTe partition) so that the addresses are a few shared terms, not 32 live registers; a CPU test
  // checks the formula against LayoutP.
  const uint32_t p_row_base[2] = {static_cast<uint32_t>(my_row[0] * kBlockN), static_cast<uint32_t>(my_row[1] * kBlockN)};
  const uint32_t p_col = (t128 % 4) * 2, p_swz = (t128 % 32) / 4;
  auto store_p = [&](const auto& acc) {
#pragma unroll
    for (int i = 0; i < size(acc); i += 2) {
      const int j = (i / 2) % 2, unit = i / 4;  // row slot, 8-column group
      E pair[2] = {E(acc(i)), E(acc(i + 1))};  // adjacent columns: one 32-bit store
      *reinterpret_cast<uint32_t*>(ss.p + p_row_base[j] + ((unit ^ p_swz) * 8) + p_col) = *reinterpret_cast<uint32_t*>(pair);
    }
  };
  // Chunks in the order they are refilled (8, then 4-7 by warpgroup 1, then 0-3), so QK^T waits least.
  auto chunk_order = [](int i) { return i == 0 ? kChunks - 1 : i <= 4 ? i + 3 : i - 5; };  // 8, 4..7, 0..3
  constexpr int kKPerChunk = kChunk / 16;
  TileCursor ahead_v = ahead;  // refill cursor of chunks 0-3 (after PV); `ahead` refills chunk 8 (after QK^T)

  int t = 0;
  bool p_owed = false;  // warpgroup 1 still has to release the P buffer
  for_each_segment(p, e, [&](int r, int len, int start, int end) {
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
    int bound[2];
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const int s = (row0 + my_row[j]) / p.hpg;
      bound[j] = my_row[j] >= nrows ? 0 : (p.causal && p.s_q > 1) ? max(0, min(len, len - p.s_q + s + 1)) : len;
    }
    clear(tOrO);
    load_q(p, ss, r, row0, nrows, g, t128);
    cutlass::arch::fence_view_async_shared();  // generic-proxy writes -> visible to wgmma
    NamedBarrier::sync(128, kWg0Sync);

#pragma unroll 1
    for (int blk = start; blk < end; ++blk, ++t) {
      const int st = t % kStages;
      const uint32_t phase = (t / kStages) & 1;
      // S = Q K^T: one wgmma group per chunk, each issued as soon as its TMA has landed.
#pragma unroll 1
      for (int ci = 0; ci < kChunks; ++ci) {
        const int c = chunk_order(ci);
        TxBarrier::wait(&ss.kv_full[st][c], phase);
        warpgroup_fence_operand(tSrS);
        warpgroup_arrive();
#pragma unroll
        for (int kk = 0; kk < kKPerChunk; ++kk) {
          const int k = c * kKPerChunk + kk;
          mma_qk.accumulate_ = ci == 0 && kk == 0 ? GMMA::ScaleOut::Zero : GMMA::ScaleOut::One;
          cute::gemm(mma_qk, tSrQ(_, _, k), tSrK(_, _, k, st), tSrS);
        }
        warpgroup_commit_batch();
        warpgroup_fence_operand(tSrS);
      }
      warpgroup_wait<0>();
      warpgroup_fence_operand(tSrS);
      if (elected) ahead.load_and_next(p, e, ss, st, g, kChunks - 1, kChunks);  // chunk 8 (K only) is free

      // Online softmax in base 2 over this tile.
      const int tok0 = blk * kBlockN;
      float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
      for (int i = 0; i < size(tSrS); ++i) {
        const int j = (i / 2) % 2;
        // Replace (never add to) masked logits: the cache may hold NaN there.
        const float x = tok0 + get<1>(tScS(i)) < bound[j] ? tSrS(i) * p.scale_log2 : -INFINITY;
        tSrS(i) = x;
        mx[j] = fmaxf(mx[j], x);
      }
      float alpha[2], m_use[2], sum[2] = {0.f, 0.f};
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        mx[j] = fmaxf(mx[j], __shfl_xor_sync(0xffffffffu, mx[j], 1));
        mx[j] = fmaxf(mx[j], __shfl_xor_sync(0xffffffffu, mx[j], 2));
        const float m_new = fmaxf(m[j], mx[j]);
        alpha[j] = m_new == -INFINITY ? 1.f : exp2f(m[j] - m_new);
        m[j] = m_new;
        m_use[j] = m_new == -INFINITY ? 0.f : m_new;  // a fully masked row: every p is exp2(-inf) = 0
      }
#pragma unroll
      for (int i = 0; i < size(tSrS); ++i) {
        const int j = (i / 2) % 2;
        tSrS(i) = exp2f(tSrS(i) - m_use[j]);
        sum[j] += tSrS(i);
      }
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        sum[j] += __shfl_xor_sync(0xffffffffu, sum[j], 1);
        sum[j] += __shfl_xor_sync(0xffffffffu, sum[j], 2);
        l[j] = l[j] * alpha[j] + sum[j];
      }
      rescale_o(alpha);

      const int valid = min(kBlockN, len - tok0);
      if (valid < kBlockN) zero_tail_rows(ss.kv[st], valid, 0, t128, kWg0Sync);
      if (p_owed) NamedBarrier::sync(256, kPFree);  // warpgroup 1 is done with P(t - 1)
      store_p(tSrS);
      if (t128 % 4 == 0) ss.row_scale[my_row[0]] = alpha[0], ss.row_scale[my_row[1]] = alpha[1];
      cutlass::arch::fence_view_async_shared();
      NamedBarrier::sync(128, kWg0Sync);   // all of P is written before this warpgroup's PV reads it
      NamedBarrier::arrive(256, kPFull);  // ... and before warpgroup 1's
      p_owed = true;

      // O[:, 0:256] += P V right away (concurrently with warpgroup 1's half), so that chunks 0-3 are refilled a
      // whole tile ahead of their next use.
      pv(st);
      warpgroup_wait<0>();
      warpgroup_fence_operand(tOrO);
      if (elected) ahead_v.load_and_next(p, e, ss, st, g, 0, kHalfDv / kChunk);
    }

    // Epilogue: one split -> out and natural-log lse; several -> fp32 partial and base-2 lse.
    const float inv_l[2] = {l[0] > 0.f ? 1.f / l[0] : 0.f, l[1] > 0.f ? 1.f / l[1] : 0.f};
    if (p_owed) NamedBarrier::sync(256, kPFree);
    if (t128 % 4 == 0) ss.row_scale[my_row[0]] = inv_l[0], ss.row_scale[my_row[1]] = inv_l[1];
    NamedBarrier::arrive(256, kPFull);
    p_owed = true;
    bool split;
    const int slot = split_slot(r, split);
    store_o<E>(p, tOrO, tOcO, my_row, inv_l, r, row0, nrows, g, 0, split, slot);
    if (t128 % 4 == 0) {
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        const int row = my_row[j];
        if (row >= nrows) continue;
        const int s = (row0 + row) / p.hpg, h = g * p.hpg + (row0 + row) % p.hpg;
        if (split) {
          p.lse_accum[(static_cast<int64_t>(slot) * p.s_q + s) * p.h_q + h] = l[j] > 0.f ? m[j] + log2f(l[j]) : -INFINITY;
        } else {
          p.lse[r * p.lse_stride_b + h * p.lse_stride_h + s * p.lse_stride_s] =
              l[j] > 0.f ? (m[j] + log2f(l[j])) * 0.6931471805599453f : INFINITY;
        }
      }
    }
  });
  if (p_owed) NamedBarrier::sync(256, kPFree);  // completes warpgroup 1's last kPFree arrival
}

}  // namespace flashmla::sm90::dense_decode
