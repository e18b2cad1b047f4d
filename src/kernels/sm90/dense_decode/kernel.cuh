// Dense decode main kernel for sm_90a: TMA + wgmma (docs/kernels/dense_decode.md).
//
// One CTA = one (schedule part, KV head g, m-block of 64 query rows). It walks the requests ("segments") and 64-token
// KV tiles its schedule entry assigns; every role walks the same sequence of tile slots, so slot u means the same to
// all of them.
//
//   warpgroup 0 (math): S_A = Q K_A^T of tile A of each pair (stage 0); its row maxima to warpgroup 1;
//                       P_A = exp2(S_A - m) against the pair's common max m; O[:, 0:256] += P_A V_A (P_A from
//                       registers), then += P_B V_B (P_B from smem). Loads Q itself when Q cannot come by TMA.
//   warpgroup 1 (math): the same for tile B (stage 1), concurrently, and O[:, 256:512]: its own P_B first.
//   Both math warpgroups issue a segment's first QK^T at the end of the previous segment, between its row-sum
//   exchange and its O stores, so that it runs while the stores drain (for_each_segment_primed).
//   warpgroup 2 (producer): lane 0 of warp s < 2 serves KV stage s: it waits until a chunk group of its stage is free
//                       (kv_empty) and refills it with the tile two slots ahead. Lane 0 of warp 2 loads each
//                       segment's Q once the previous segment's last QK^T is over (q_empty). The math warps only
//                       signal.
//
// Masking: logits of tokens at or past the row's bound (length, bottom-right causal) are replaced by -inf, and the
// V rows of a partial last tile are zeroed in smem before PV, so NaN in unused cache slots never reaches O.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cute/tensor.hpp>
#include <cutlass/arch/barrier.h>
#include <cutlass/arch/reg_reconfig.h>
#include <cutlass/numeric_types.h>

#include <cstdint>

#include "core/decode_schedule.h"
#include "kernels/sm90/dense_decode/common_params.h"
#include "kernels/sm90/dense_decode/config.cuh"
#include "kernels/sm90/dense_decode/kv_tile_loader.cuh"
#include "kernels/sm90/dense_decode/trace.cuh"

namespace flashmla::sm90::dense_decode {

struct Params : CommonParams {
  PagedTmaKvLoader kv;  // holds the CUtensorMap (64-byte aligned)
  // q as (dim 576, head, s_q, b), innermost first, box (64, q_box_h, q_box_s, 1): one box is one 64-dim chunk of an
  // m-block's 64 rows (row = s * hpg + head in group). Valid when q_tma (hpg a multiple or a divisor of 64, 16-byte
  // aligned strides); otherwise warpgroup 0 loads Q with plain loads (load_q).
  CUtensorMap q_map;
  bool q_tma;
  bool q_vec16;         // q rows can be read with 16-byte loads (aligned base and strides)
  bool o_pairs;         // out can be written two elements (4 bytes) at a time (aligned base and strides)
};

using TxBarrier = cutlass::arch::ClusterTransactionBarrier;
using Barrier = cutlass::arch::ClusterBarrier;

// Named barriers by hardware id (config.cuh). A producer's bar.arrive releases its prior writes to the threads that
// complete the barrier with bar.sync.
__device__ __forceinline__ void bar_sync(uint32_t id, uint32_t threads) {
  asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(threads) : "memory");
}
__device__ __forceinline__ void bar_arrive(uint32_t id, uint32_t threads) {
  asm volatile("bar.arrive %0, %1;" ::"r"(id), "r"(threads) : "memory");
}

/// The math warpgroups' walk: f(begin_req - 1, 0, 0, 0) first (no segment: only the first segment's QK^T is issued
/// there), then f for each request of the CTA as in for_each_segment. Each call ends by issuing the next segment's
/// first QK^T before its own stores, from one code site.
template <typename F>
__device__ __forceinline__ void for_each_segment_primed(const Params& p, const DecodeSchedEntry& e, F&& f) {
#pragma unroll 1
  for (int r = e.begin_req - 1; r <= e.end_req; ++r) {
    int len = 0, start = 0, end = 0;
    if (r >= e.begin_req) {
      const Segment sg = segment(p, e, r);
      len = sg.len, start = sg.start, end = sg.end;
    }
    f(r, len, start, end);
  }
}

/// The CTA's work: requests [e.begin_req, e.end_req], calling f(request, length, first tile, end tile) for each.
template <typename F>
__device__ __forceinline__ void for_each_segment(const Params& p, const DecodeSchedEntry& e, F&& f) {
#pragma unroll 1
  for (int r = e.begin_req; r <= e.end_req; ++r) {
    const Segment sg = segment(p, e, r);
    f(r, sg.len, sg.start, sg.end);
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
      // 8 consecutive elements starting at a multiple of 8 stay contiguous under the 128-byte swizzle. The swizzled
      // address comes back as an offset from ss.q, so the store stays a shared-memory store.
      *reinterpret_cast<uint4*>(ss.q + (&sQ(row, d) - ss.q)) = v[u];
    }
  }
}

/// The Q rows [row0, row0 + 64) of KV head g of request r into the Q buffer by TMA, arming `full` with its bytes.
/// Single thread; rows past s_q come back as zeros (out of bounds of the tensor map).
template <typename E>
__device__ __forceinline__ void load_q_tma(const Params& p, SharedStorage<E>& ss, int r, int row0, int g) {
  const int head = g * p.hpg + row0 % p.hpg, s = row0 / p.hpg;  // row0 % hpg is 0 unless hpg is a multiple of 64
  cutlass::arch::ClusterTransactionBarrier::arrive_and_expect_tx(&ss.q_full, kBlockM * kDqk * sizeof(E));
#pragma unroll 1
  for (int c = 0; c < kChunks; ++c) {
    cute::SM90_TMA_LOAD_4D::copy(&p.q_map, &ss.q_full, static_cast<uint64_t>(cute::TMA::CacheHintSm90::EVICT_NORMAL),
                                 ss.q + c * kBlockM * kChunk, c * kChunk, head, s, r);
  }
}

/// A position in the CTA's sequence of KV tile slots. Each segment (request) contributes its tiles [start, end),
/// padded with one phantom slot to an even count, so that slot u always uses stage u % 2 and a pair of slots is (stage
/// 0, stage 1). A phantom slot loads nothing and costs no wgmma: its P is all zeros (masked logits) and neither its
/// QK^T nor its PV is issued. Segments without tiles contribute no slot.
struct SlotCursor {
  int r, blk, end, pend, len;
  __device__ void settle(const Params& p, const DecodeSchedEntry& e) {  // from request r's first tile on
    for (; r <= e.end_req; ++r) {
      const Segment sg = segment(p, e, r);
      len = sg.len, blk = sg.start, end = sg.end;
      if (blk < end) {
        pend = blk + ((end - blk + 1) & ~1);
        return;
      }
    }
  }
  __device__ void begin(const Params& p, const DecodeSchedEntry& e) {
    r = e.begin_req;
    settle(p, e);
  }
  __device__ void next(const Params& p, const DecodeSchedEntry& e) {
    if (++blk >= pend) ++r, settle(p, e);
  }
  __device__ bool done(const DecodeSchedEntry& e) const { return r > e.end_req; }
  /// The pages of the current slot's tile (nothing for a phantom slot). Producer thread.
  template <int kBoxes>
  __device__ PagedTmaKvLoader::TileRef<kBoxes> locate(const Params& p) const {
    if (blk >= end) return PagedTmaKvLoader::TileRef<kBoxes>{{}, 0, 0};
    const int tok0 = blk * kBlockN;
    return p.kv.locate<kBoxes>(p.block_table + r * p.bt_stride, tok0, min(kBlockN, len - tok0));
  }
};

/// The i-th chunk QK^T reads from `stage`, in the order the chunks are refilled: stage 0's chunks 0-3 are freed first
/// (warpgroup 0 applies P_A to V_A dims 0-255 first), stage 1's chunks 4-7 (warpgroup 1, dims 256-511); chunk 8 (P)
/// always last.
__host__ __device__ constexpr int qk_chunk(int stage, int i) { return stage == 0 || i == kChunks - 1 ? i : i ^ 4; }

/// 2^x with the MUFU's approximation (ex2.approx.ftz, relative error ~2^-22): exp2f() adds a range check and two
/// multiplies per element for results below 2^-126, which only flush to zero here (P, rescale factors); that
/// path was a third of the softmax's instructions (ncu). 2^-inf = 0.
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

/// The running row max (scaled base-2 logits) after a tile with row maximum `mx`. It moves only when mx exceeds it by
/// more than kMaxSlack: P = exp2(s - m) then stays below 2^kMaxSlack, harmless in fp32 (l, O) and in the 16-bit P,
/// and O needs rescaling only when the max jumps, which is rare after the first tiles. The result is the same either
/// way: O, l and the lse all use one m.
constexpr float kMaxSlack = 8.f;
__device__ __forceinline__ float slack_max(float m, float mx) {
  return m != -INFINITY && mx <= m + kMaxSlack ? m : fmaxf(m, mx);
}

/// Zeroes V rows [valid, 64) (all 512 dims) of one KV stage, a partial last tile: the cache may hold NaN past the
/// length, and 0 * NaN = NaN. Then makes the writes visible to wgmma and syncs the calling warpgroup on `bar`.
template <typename E>
__device__ __forceinline__ void zero_tail_rows(E* stage, int valid, int t128, uint32_t bar) {
  using C = Config<E>;
  Tensor sKV = make_tensor(make_smem_ptr(stage), typename C::LayoutKV{});
  constexpr int kVecs = kDv / 8;
  for (int i = t128; i < (kBlockN - valid) * kVecs; i += 128) {
    const int row = valid + i / kVecs, d = (i % kVecs) * 8;
    *reinterpret_cast<uint4*>(stage + (&sKV(row, d, 0) - stage)) = make_uint4(0, 0, 0, 0);  // shared store (see load_q)
  }
  cutlass::arch::fence_view_async_shared();
  bar_sync(bar, 128);
}

/// Epilogue of one math warpgroup: its 256 output columns of the two rows `rows` this thread holds, scaled by inv_l.
/// Element i = 4 k + 2 j + e of the accumulator is row slot j, column 8 k + 2 q + e (k: 8-column group, q: the lane in
/// its quad, which holds one row). The stores are what an epilogue waits for: ~4,300-5,600 cycles per warpgroup for
/// an fp32 partial in 8-byte stores, ~7,000 for out in 4-byte ones (b=128 h_q=128, CTA span probe in trace.cuh).
///   o_accum (several splits): one float4 of the column pairs c and c + 8 per store, at accum_pos(c), so that the quad
///     writes 64 contiguous bytes of its row with half the store instructions of column order.
///   out (one split): column pairs as 4-byte words when out is 4-byte aligned, else elements. Wider stores need the
///     quad's lanes to exchange pairs; a quad transpose to 16-byte stores took that epilogue to ~3,800 cycles and
///     b=32 s_q=4 h_q=128 causal from 80.6 to 75.1 us, but its code slowed the main loop of other cases by up to 5%
///     (b=8 h_q=16): not kept.
template <typename E, typename TensorO, typename TensorC>
__device__ __forceinline__ void store_o(const Params& p, const TensorO& acc, const TensorC& coord, const int (&rows)[2],
                                        const float (&inv_l)[2], int r, int row0, int nrows, int g, int col0,
                                        bool split, int slot) {
  // The lane in the quad, read afresh (an opaque asm), so that these addresses share no value with the main loop.
  // Beware: ptxas schedules the main loop differently after almost any change in this function, and the loop's pairs
  // have measured up to 4% slower for it (docs/kernels/dense_decode.md, session 16); this exact form measured no
  // slower than the 8-byte stores it replaced. Measure any change here on whole cases.
  int q;
  asm volatile("mov.u32 %0, %%laneid;" : "=r"(q));
  q &= 3;
#pragma unroll
  for (int j = 0; j < 2; ++j) {
    const bool valid = rows[j] < nrows;
    const int s = (row0 + rows[j]) / p.hpg, h = g * p.hpg + (row0 + rows[j]) % p.hpg;
    const float sc = inv_l[j];
    if (split) {
      if (!valid) continue;
      float* dst = p.o_accum + ((static_cast<int64_t>(slot) * p.s_q + s) * p.h_q + h) * kDv;
#pragma unroll
      for (int i = 2 * j; i < size(acc); i += 8) {  // columns c = 8 (i / 4) + 2 q, c + 1, c + 8, c + 9
        *reinterpret_cast<float4*>(dst + col0 + 2 * (i - 2 * j) + 4 * q) =  // = accum_pos(col0 + c)
            make_float4(acc(i) * sc, acc(i + 1) * sc, acc(i + 4) * sc, acc(i + 5) * sc);
      }
    } else {
      if (!valid) continue;
      E* dst = static_cast<E*>(p.out) + r * p.o_stride_b + s * p.o_stride_s + h * p.o_stride_h + col0;
#pragma unroll
      for (int i = 2 * j; i < size(acc); i += 4) {
        E* d = dst + get<1>(coord(i));
        if (p.o_pairs) {  // one 4-byte store per column pair: 2-byte stores were ~18% of a short-segment case (ncu)
          *reinterpret_cast<uint32_t*>(d) = pack2<E>(acc(i) * sc, acc(i + 1) * sc);
        } else {
          d[0] = E(acc(i) * sc);
          d[1] = E(acc(i + 1) * sc);
        }
      }
    }
  }
}

/// kTileBoxes: TMA boxes per KV tile the producer provides for, PagedTmaKvLoader::tile_boxes(page_block_size).
template <typename E, int kTileBoxes>
__global__ void __launch_bounds__(kThreads, 1) dense_decode_kernel(const __grid_constant__ Params p) {
  using C = Config<E>;
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  // The 128-byte swizzle is a function of address bits 4-9: the buffers must start on 1024-byte boundaries. The offset
  // is added to the __shared__ array itself (not through an integer) so that the compiler still knows every access
  // below is to shared memory and emits STS/LDS rather than generic ST/LD.
  const uint32_t smem_base = static_cast<uint32_t>(__cvta_generic_to_shared(smem_raw));
  SharedStorage<E>& ss = *reinterpret_cast<SharedStorage<E>*>(smem_raw + ((1024u - smem_base % 1024u) % 1024u));

  // Through a shuffle, so that the compiler knows wg is warp-uniform: the shared-memory addresses and wgmma descriptors
  // derived from it (this warpgroup's half of V) then live in uniform registers. From threadIdx.x / 128 they were
  // per-thread values, each descriptor moved over with R2UR (+224 instructions in the SASS, 2-5% of the time).
  const int wg = cutlass::canonical_warp_group_idx();
  const int t128 = threadIdx.x % 128;
  const CtaWork w = cta_work(p, kBlockM);
  const DecodeSchedEntry e = w.e;
  FLASHMLA_SPAN_START();
  if (e.begin_req >= p.b) {
    FLASHMLA_SPAN_END(0, 0, 0);
    FLASHMLA_SPAN_END(1, 0, 0);
    return;
  }
  const int g = w.g, row0 = w.row0, nrows = w.nrows;

  if (threadIdx.x == 0) {
    for (int st = 0; st < kStages; ++st) {
      for (int c = 0; c < kChunks; ++c) TxBarrier::init(&ss.kv_full[st][c], 1);
      for (int grp = 0; grp < kGroups; ++grp) Barrier::init(&ss.kv_empty[st][grp], kGroupReaders);
    }
    TxBarrier::init(&ss.q_full, 1);
    Barrier::init(&ss.rows_a_full, 128);  // every thread of the writing warpgroup
    Barrier::init(&ss.rows_b_full, 128);
    Barrier::init(&ss.q_empty, kMathWarpgroups * 4);  // one arrival per math warp
    cutlass::arch::fence_barrier_init();
  }
  __syncthreads();  // the last CTA-wide barrier: the producer warpgroup's idle warps leave below
  // Let the combine grid (programmatic dependent launch) be scheduled; it waits for this grid's completion itself.
  asm volatile("griddepcontrol.launch_dependents;");

  if (wg == kProducerWg) {
    // ------------------------------------------------- warpgroup 2: the producer (lane 0 of warp s serves stage s)
    cutlass::arch::warpgroup_reg_dealloc<kProducerRegs>();
    const int st = t128 / 32;
#ifdef FLASHMLA_TRACE
    if (t128 == 32 * (kStages + 1)) {  // the observer (trace.cuh)
      trace::Recorder rec(4, true);
      SlotCursor cur;
      cur.begin(p, e);
      uint32_t par[kStages] = {0, 0};
      for (int u = 0; !cur.done(e); ++u, cur.next(p, e)) {
        const int s = u % kStages;
        if (cur.blk >= cur.end) continue;  // a phantom slot arms nothing
        rec(trace::kSlot + s);
        for (int grp = 0; grp < kGroups; ++grp) {
          for (int i = 0; i < (grp == kGroupOther ? 5 : 4); ++i) {
            const int c = i == 4 ? kPChunk : group_v_chunk0(s, grp) + i;
            // Bounded, never to hang the kernel for a trace. Such a polling loop slows the SM's TMA (fill_bw: 18.9
            // B/cycle with it, 35.1 with CUTLASS's wait), so the trace's landing times run late.
            const long long t0 = clock64();
            while (!TxBarrier::try_wait(&ss.kv_full[s][c], par[s])) {
              if (clock64() - t0 > 100000000ll) return;
            }
            rec(trace::kLanded + 16 * s + c);
          }
        }
        par[s] ^= 1u;
      }
      return;
    }
#endif
    if (t128 % 32 != 0 || st > kStages) return;
    if (st == kStages) {
      // Warp 2 serves Q (TMA path only): each segment's Q as soon as the math warps' last QK^T of the previous one
      // is over (q_empty), so that it lands while they finish that segment.
      if (!p.q_tma) return;
      cute::prefetch_tma_descriptor(&p.q_map);
      uint32_t q_parity = 0;
      bool first = true;
      for_each_segment(p, e, [&](int r, int, int start, int end) {
        if (start >= end) return;
        if (!first) Barrier::wait(&ss.q_empty, q_parity), q_parity ^= 1u;
        first = false;
        load_q_tma(p, ss, r, row0, g);
      });
      return;
    }
    cute::prefetch_tma_descriptor(&p.kv.map);
    // Slot u goes to stage u % 2; each stage's thread walks every slot and loads its own. Slot u's chunk group may be
    // overwritten once slot u - 2's readers released it (kv_empty); the groups are taken in the order they are
    // released, which is also the order QK^T reads them (qk_chunk). One thread per stage, so that a group released
    // early in one stage never waits behind a group released late in the other.
    SlotCursor cur;
    cur.begin(p, e);
    uint32_t parity = 0;  // of this stage's next kv_empty completion
#ifdef FLASHMLA_TRACE
    trace::Recorder rec(2 + st, true);
#endif
#pragma unroll 1
    for (int u = 0; !cur.done(e); ++u, cur.next(p, e)) {
      if (u % kStages != st) continue;
      const bool refill = u >= kStages;
#ifdef FLASHMLA_ABLATION_NO_REFILL  // timing experiment only (wrong results): the first two slots' loads only
      if (refill) break;
#endif
      const auto tile = cur.locate<kTileBoxes>(p);  // block_table read before the wait
#pragma unroll
      for (int grp = 0; grp < kGroups; ++grp) {  // own half first, then the other half and chunk 8
        FLASHMLA_TRACE_EVENT(rec, trace::kEmptyWaitBegin + grp);
        if (refill) Barrier::wait(&ss.kv_empty[st][grp], parity);
        FLASHMLA_TRACE_EVENT(rec, trace::kEmptyWaitEnd + grp);
        const int c0 = group_v_chunk0(st, grp);
        p.kv.load_chunks(ss.kv[st], ss.kv_full[st], tile, g, c0, c0 + 4);
        if (grp == kGroupOther) p.kv.load_chunks(ss.kv[st], ss.kv_full[st], tile, g, kPChunk, kPChunk + 1);
        FLASHMLA_TRACE_EVENT(rec, trace::kIssued + grp);
      }
      if (refill) parity ^= 1u;
    }
    return;
  }
  cutlass::arch::warpgroup_reg_alloc<kMathRegs>();
  const bool warp_leader = threadIdx.x % 32 == 0;  // the lane of a warp that signals kv_empty
#ifdef FLASHMLA_TRACE
  trace::Recorder rec(wg, t128 == 0);
#endif
  // This warp's reads of chunk group `grp` of `stage` are over (its wgmma completed).
  auto release = [&](int stage, int grp) {
    FLASHMLA_TRACE_EVENT(rec, trace::kRelease + 2 * stage + grp);
    if (warp_leader) Barrier::arrive(&ss.kv_empty[stage][grp]);
  };
  // Segment start: Q in smem. TMA path: wait for the Q producer; otherwise warpgroup 0 loads it and tells warpgroup 1.
  uint32_t q_phase = 0;
  auto acquire_q = [&](int r) {
    if (p.q_tma) {
      TxBarrier::wait(&ss.q_full, q_phase);
      q_phase ^= 1u;
    } else if (wg == 0) {
      load_q(p, ss, r, row0, nrows, g, t128);
      cutlass::arch::fence_view_async_shared();  // generic-proxy writes -> visible to wgmma
      bar_sync(kBarWg0, 128);
      bar_arrive(kBarQReady, 256);
    } else {
      bar_sync(kBarQReady, 256);
    }
  };
  // After this warp's last QK^T of a segment (TMA path): the Q buffer may take the next segment's Q. (The plain path
  // needs no signal: warpgroup 0 reloads Q only after it received warpgroup 1's row sums at the segment's end, which
  // every warp of warpgroup 1 sends after its last QK^T completed.)
  auto release_q = [&] {
    if (p.q_tma && warp_leader) Barrier::arrive(&ss.q_empty);
  };

  // ---- the MMAs, as both warpgroups see them (a warpgroup's QK^T reads its own stage: wg0 stage 0, wg1 stage 1)
  typename C::MmaQK mma_qk;
  auto thr_qk = mma_qk.get_thread_slice(t128);
  Tensor sQ = make_tensor(make_smem_ptr(ss.q), typename C::LayoutQ{});
  Tensor sK = make_tensor(make_smem_ptr(&ss.kv[0][0]), typename C::LayoutKV{});
  Tensor tSrQ = thr_qk.partition_fragment_A(sQ);  // (MMA, 1, 36)
  Tensor tSrK = thr_qk.partition_fragment_B(sK);  // (MMA, 1, 36, stage)
  Tensor tSrS = partition_fragment_C(mma_qk, Shape<Int<kBlockM>, Int<kBlockN>>{});
  Tensor tScS = thr_qk.partition_C(make_identity_tensor(Shape<Int<kBlockM>, Int<kBlockN>>{}));

  typename C::MmaPV mma_pv;
  mma_pv.accumulate_ = GMMA::ScaleOut::One;
  auto thr_pv = mma_pv.get_thread_slice(t128);
  E* const p_tile[2] = {&ss.kv[0][0] + kPChunk * kBlockN * kChunk, &ss.kv[1][0] + kPChunk * kBlockN * kChunk};
  Tensor tOrP0 = thr_pv.partition_fragment_A(make_tensor(make_smem_ptr(p_tile[0]), typename C::LayoutP{}));
  Tensor tOrP1 = thr_pv.partition_fragment_A(make_tensor(make_smem_ptr(p_tile[1]), typename C::LayoutP{}));
  Tensor sV = make_tensor(make_smem_ptr(&ss.kv[0][0] + wg * kHalfDv * kBlockN), typename C::LayoutV{});
  Tensor tOrV = thr_pv.partition_fragment_B(sV);  // (MMA, 1, 4, stage): this warpgroup's 256 columns of V
  Tensor tOrO = partition_fragment_C(mma_pv, Shape<Int<kBlockM>, Int<kHalfDv>>{});
  Tensor tOcO = thr_pv.partition_C(make_identity_tensor(Shape<Int<kBlockM>, Int<kHalfDv>>{}));
  // The two rows this thread holds in every m64nN accumulator (element i is in row slot (i / 2) % 2).
  const int my_row[2] = {get<0>(tOcO(0)), get<0>(tOcO(2))};
  const bool row_owner = t128 % 4 == 0;  // the thread of a quad that publishes the row's values

  // S = Q K^T over stage S (warpgroup S's stage): the i-th chunks for i in [I0, I1), in the order the producer refills
  // them (qk_chunk), each issued once its TMA has landed; one commit group per call. Stage and chunk indices are
  // compile-time constants (Int<>), so that every wgmma descriptor is a constant offset from the buffer's: computed
  // at run time they cost a chain of ~12 dependent uniform-datapath instructions per wgmma, which made the QK^T
  // issue-bound (ncu stall sampling, docs/kernels/dense_decode.md).
  auto qk_issue = [&](auto stage_c, auto i0_c, auto i1_c, uint32_t phase) {
    constexpr int S = decltype(stage_c)::value, I0 = decltype(i0_c)::value, I1 = decltype(i1_c)::value;
    constexpr int kKPerChunk = kChunk / 16;
#pragma unroll
    for (int i = I0; i < I1; ++i) {
      const int c = qk_chunk(S, i);
#ifndef FLASHMLA_ABLATION_NO_REFILL
      FLASHMLA_TRACE_EVENT(rec, trace::kQkWaitBegin + c);
      TxBarrier::wait(&ss.kv_full[S][c], phase);
      FLASHMLA_TRACE_EVENT(rec, trace::kQkWaitEnd + c);
#endif
      warpgroup_fence_operand(tSrS);
      warpgroup_arrive();
#pragma unroll
      for (int kk = 0; kk < kKPerChunk; ++kk) {
        const int k = c * kKPerChunk + kk;
        mma_qk.accumulate_ = i == 0 && kk == 0 ? GMMA::ScaleOut::Zero : GMMA::ScaleOut::One;
        cute::gemm(mma_qk, tSrQ(_, _, k), tSrK(_, _, k, Int<S>{}), tSrS);
      }
      warpgroup_fence_operand(tSrS);
    }
    warpgroup_commit_batch();
  };
  auto qk_wait = [&] {
    warpgroup_wait<0>();
    warpgroup_fence_operand(tSrS);
  };
  // op over the 16 elements of row slot j this thread holds in S (elements 4q + 2j and 4q + 2j + 1), as a tree: four
  // dependent steps instead of a chain of sixteen on the softmax's critical path.
  auto row_reduce = [&](int j, auto op) {
    float a[8];
#pragma unroll
    for (int q = 0; q < 8; ++q) a[q] = op(tSrS(4 * q + 2 * j), tSrS(4 * q + 2 * j + 1));
#pragma unroll
    for (int w = 4; w >= 1; w /= 2) {
#pragma unroll
      for (int q = 0; q < w; ++q) a[q] = op(a[q], a[q + w]);
    }
    return a[0];
  };
  // S stays unscaled until the exponential, which applies the scale in the same FFMA. Columns >= lim[j] of row slot j
  // are masked: replaced (never added to: the cache may hold NaN there) by the value that scales to -inf; only tiles
  // that reach a row's bound pay for it. Returns the row maxima of the tile in scaled base-2 units (for a negative
  // softmax_scale the scaled maximum is the unscaled minimum).
  const bool scale_pos = p.scale_log2 > 0.f;
  auto mask_and_max = [&](const int (&lim)[2], float (&mx)[2]) {
    if (lim[0] < kBlockN || lim[1] < kBlockN) {
      const float fill = scale_pos ? -INFINITY : INFINITY;
#pragma unroll
      for (int i = 0; i < size(tSrS); ++i) {
        if (get<1>(tScS(i)) >= lim[(i / 2) % 2]) tSrS(i) = fill;
      }
    }
    auto reduce = [&](auto op) {
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        mx[j] = row_reduce(j, op);
        mx[j] = op(mx[j], __shfl_xor_sync(0xffffffffu, mx[j], 1));
        mx[j] = op(mx[j], __shfl_xor_sync(0xffffffffu, mx[j], 2));
        mx[j] *= p.scale_log2;
      }
    };
    if (scale_pos) {
      reduce([](float a, float b) { return fmaxf(a, b); });
    } else {
      reduce([](float a, float b) { return fminf(a, b); });
    }
  };
  // P = exp2(S * scale_log2 - m) (m = -inf: a row with nothing visible yet, whose p are all 0) and this thread's part
  // of its row sums.
  auto exp_and_sum = [&](const float (&m)[2], float (&sum)[2]) {
    const float base[2] = {m[0] == -INFINITY ? 0.f : m[0], m[1] == -INFINITY ? 0.f : m[1]};
#pragma unroll
    for (int i = 0; i < size(tSrS); ++i) tSrS(i) = fast_exp2(fmaf(tSrS(i), p.scale_log2, -base[(i / 2) % 2]));
#pragma unroll
    for (int j = 0; j < 2; ++j) sum[j] = row_reduce(j, [](float a, float b) { return a + b; });
  };
  // The row sums l stay per thread (this thread's 16 columns of each row) until the segment's end: a row's rescale
  // factor is the same in the four threads of its quad, so their partial sums add up at the end to the row's l, and
  // the two shuffle rounds per pair leave the softmax's critical path.
  auto quad_sum = [](float (&l)[2]) {
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      l[j] += __shfl_xor_sync(0xffffffffu, l[j], 1);
      l[j] += __shfl_xor_sync(0xffffffffu, l[j], 2);
    }
  };
  // P in registers, in the input dtype: the A operand of this warpgroup's own PV and the source of the P store.
  Tensor tOrPreg = make_tensor<E>(typename C::LayoutPreg{});
  static_assert(size(decltype(tOrPreg){}) == size(decltype(tSrS){}), "one P element per S element");
  auto pack_p = [&] {
#pragma unroll
    for (int i = 0; i < size(tSrS); ++i) tOrPreg(i) = E(tSrS(i));
  };
  // P store with stmatrix: four 8x8 matrices per instruction, each lane addressing one 8-element row (p_stsm_offset,
  // config.cuh); the register order of the accumulator is the order stmatrix takes. 16 plain 4-byte stores and their
  // ~35 address instructions per pair before.
  const uint32_t p_lane_off[4] = {p_stsm_offset(t128, 0) * 2u, p_stsm_offset(t128, 1) * 2u,
                                  p_stsm_offset(t128, 2) * 2u, p_stsm_offset(t128, 3) * 2u};
  auto store_p = [&](E* dst) {  // from tOrPreg
    const uint32_t* pairs = reinterpret_cast<const uint32_t*>(tOrPreg.data());
    const uint32_t base = static_cast<uint32_t>(__cvta_generic_to_shared(dst));
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1, %2, %3, %4};" ::"r"(base + p_lane_off[q]),
                   "r"(pairs[4 * q]), "r"(pairs[4 * q + 1]), "r"(pairs[4 * q + 2]), "r"(pairs[4 * q + 3])
                   : "memory");
    }
  };
  typename C::MmaPVrs mma_pv_rs;
  mma_pv_rs.accumulate_ = GMMA::ScaleOut::One;
  auto pv_own = [&](int stage) {  // O_half += P V_half with this warpgroup's P from registers
    warpgroup_fence_operand(tOrPreg);
    warpgroup_fence_operand(tOrO);
    warpgroup_arrive();
#pragma unroll
    for (int k = 0; k < size<2>(tOrPreg); ++k) cute::gemm(mma_pv_rs, tOrPreg(_, _, k), tOrV(_, _, k, stage), tOrO);
    warpgroup_commit_batch();
    warpgroup_fence_operand(tOrPreg);
  };
  auto pv = [&](const auto& tOrP, int stage) {  // O_half += P V_half over the 64 tokens of `stage`, P in smem
    warpgroup_fence_operand(tOrO);
    warpgroup_arrive();
#pragma unroll
    for (int k = 0; k < size<2>(tOrP); ++k) cute::gemm(mma_pv, tOrP(_, _, k), tOrV(_, _, k, stage), tOrO);
    warpgroup_commit_batch();
  };
  auto pv_wait = [&] {
    FLASHMLA_TRACE_EVENT(rec, trace::kPvWaitBegin);
    warpgroup_wait<0>();
    FLASHMLA_TRACE_EVENT(rec, trace::kPvWaitEnd);
    warpgroup_fence_operand(tOrO);
  };
  auto rescale_o = [&](const float (&a)[2]) {  // skipped when no row of the warp changed its max (slack_max)
    if (!__any_sync(0xffffffffu, a[0] != 1.f || a[1] != 1.f)) return;
#pragma unroll
    for (int i = 0; i < size(tOrO); ++i) tOrO(i) *= a[(i / 2) % 2];
  };
  // Rescale factor exp2(m_old - m_new); 1 while nothing is visible (both -inf).
  auto rescale_factor = [](float m_old, float m_new) { return m_new == -INFINITY ? 1.f : fast_exp2(m_old - m_new); };
  auto observe = [&](int stage, uint32_t phase, int c0, int c1) {
    // The chunks completed already (the other warpgroup's QK^T waited for them); observing the barrier orders the
    // TMA writes before this warpgroup's wgmma reads.
#ifndef FLASHMLA_ABLATION_NO_REFILL
    for (int c = c0; c < c1; ++c) TxBarrier::wait(&ss.kv_full[stage][c], phase);
#endif
  };
  auto split_slot = [&](int r, bool& split) {
    const int first = p.split_offsets[r];
    split = p.split_offsets[r + 1] - first > 1;
    return first + (r == e.begin_req ? e.begin_split : 0);
  };
  // The segment's row sums l = warpgroup 0's + warpgroup 1's (both hold the same m, the pair maxima), added in that
  // order by both so that they agree bitwise; and 1 / l (0 for a row with nothing visible).
  auto total_l = [](const float (&l_wg0)[2], const float (&l_wg1)[2], float (&l)[2], float (&inv_l)[2]) {
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      l[j] = l_wg0[j] + l_wg1[j];
      inv_l[j] = l[j] > 0.f ? 1.f / l[j] : 0.f;
    }
  };
  // Per-row values handed between the math warpgroups (rows_a: 0 -> 1, rows_b: 1 -> 0). The owner thread of each quad
  // writes its rows; every thread of the writing warpgroup then arrives on the slot's mbarrier (release), and every
  // thread of the other one waits (acquire) and reads. A slot is written again only after the writer received the
  // other direction's next handoff, which each reader sends after its read. Named barriers (bar.arrive by the writer,
  // bar.sync by the reader) order the same accesses, but compute-sanitizer's racecheck does not model bar.arrive and
  // reported every such handoff (a two-warpgroup probe reproduces it); the mbarriers it models.
  // The warpgroup-local bar.sync between the stores and the arrival costs ~nothing but is needed: without it ptxas
  // serializes every wgmma of the kernel (C7515, "non wgmma instructions defining accumulator registers ... between
  // start and end of the pipeline stage"; 160 WARPGROUP.DEPBAR instead of 10 in the SASS, +30% time).
  auto publish = [&](float* rows, uint64_t* full, const float (&v)[2]) {
    if (row_owner) rows[my_row[0]] = v[0], rows[my_row[1]] = v[1];
    bar_sync(wg == 0 ? kBarWg0 : kBarWg1, 128);
    Barrier::arrive(full);
  };
  auto receive = [&](const float* rows, uint64_t* full, uint32_t& parity, float (&v)[2]) {
    FLASHMLA_TRACE_EVENT(rec, trace::kSyncBegin + (rows == ss.rows_a ? trace::kRowsA : trace::kRowsB));
    Barrier::wait(full, parity);
    FLASHMLA_TRACE_EVENT(rec, trace::kSyncEnd + (rows == ss.rows_a ? trace::kRowsA : trace::kRowsB));
    parity ^= 1u;
    v[0] = rows[my_row[0]], v[1] = rows[my_row[1]];
  };
  uint32_t rows_parity = 0;  // of the next handoff this warpgroup receives
  auto row_bounds = [&](int len, int (&bound)[2]) {  // keys [0, bound) visible to each of this thread's rows
#pragma unroll
    for (int j = 0; j < 2; ++j) bound[j] = my_row[j] >= nrows ? 0 : visible_keys(p, len, row0 + my_row[j]);
  };

  uint32_t phase[2] = {0, 0};  // parity of the next load each stage's chunk barriers complete
  [[maybe_unused]] int span_tiles = 0, span_segments = 0;  // FLASHMLA_CTA_SPAN only
  if (wg == 0) {
    // ------------------------------------------------------------------ warpgroup 0: tile A of each pair, O[:, 0:256]
    // Per pair, with S_A already in registers: m_a = the running max after tile A; P_A = exp2(S_A - m_a) and
    // O_L += P_A V_A,L while warpgroup 1 computes P_B against m_a; then P_A (rescaled to m_b, the max after tile B)
    // to smem for warpgroup 1, O_L += P_B V_B,L, and the next pair's QK^T(A).
    // always_inline (here and in warpgroup 1): left to itself ptxas stopped inlining these lambdas in the trace
    // build, whose events make them larger, and then passed the accumulators through a 1.7 KB stack frame and
    // serialized the wgmmas. The library build inlines them either way (same SASS).
    for_each_segment_primed(p, e, [&](int r, int len, int start, int end) __attribute__((always_inline)) {
      float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
      int bound[2];
      row_bounds(len, bound);
      clear(tOrO);
      FLASHMLA_SPAN_SEG(span_segments, 0, 0);
      FLASHMLA_SPAN_SEG(span_segments, 1, 0);  // Q was acquired by the previous call
      // The segment's first QK^T(A), issued by the previous call, before that segment's O stores. The wait is
      // unconditional (a wait inside a branch made ptxas serialize every wgmma; see the pair loop).
      qk_wait();
      FLASHMLA_SPAN_SEG(span_segments, 2, 0);
#pragma unroll 1
      for (int blk = start; blk < end; blk += 2) {
        const bool has1 = blk + 1 < end, next = blk + 2 < end;
        FLASHMLA_TRACE_EVENT(rec, trace::kPairStart);
        const int tok0 = blk * kBlockN;
        if (!next) release_q();  // S_A of the segment's last pair is in registers: our last QK^T is over
        const int lim[2] = {bound[0] - tok0, bound[1] - tok0};
        float mx[2], m_a[2], scale[2], sum[2];
        mask_and_max(lim, mx);
        FLASHMLA_TRACE_EVENT(rec, trace::kMark + 0);
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          m_a[j] = slack_max(m[j], mx[j]);
          scale[j] = rescale_factor(m[j], m_a[j]);
        }
        publish(ss.rows_a, &ss.rows_a_full, m_a);
        FLASHMLA_TRACE_EVENT(rec, trace::kMark + 1);
        exp_and_sum(m_a, sum);  // S_A -> P_A (fp32, kept until it is stored)
        FLASHMLA_TRACE_EVENT(rec, trace::kMark + 2);
#pragma unroll
        for (int j = 0; j < 2; ++j) l[j] = l[j] * scale[j] + sum[j];
        pack_p();
        rescale_o(scale);
        const int valid = min(kBlockN, len - tok0);
        if (valid < kBlockN) zero_tail_rows(ss.kv[0], valid, t128, kBarWg0);  // V_A: our PV and wg1's
        pv_own(0);  // P_A from registers; it goes to smem for warpgroup 1 once this PV completes (below)
        FLASHMLA_TRACE_EVENT(rec, trace::kPvOwnIssued);
        float m_b[2];
        receive(ss.rows_b, &ss.rows_b_full, rows_parity, m_b);
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          scale[j] = rescale_factor(m_a[j], m_b[j]);
          m[j] = m_b[j];
          l[j] *= scale[j];
        }
        // P_A to the basis m_b, from its fp32 values (one rounding); rare, thanks to the slack of the running max.
        if (__any_sync(0xffffffffu, scale[0] != 1.f || scale[1] != 1.f)) {
          warpgroup_wait<0>();  // tOrPreg is the A operand of the PV in flight
#pragma unroll
          for (int i = 0; i < size(tSrS); ++i) tOrPreg(i) = E(tSrS(i) * scale[(i / 2) % 2]);
        }
        // Our PV with P_A from registers completes before P_A is published: its V_A half goes back to the producer
        // here, before the P_A store, fence and arrival (3% faster at b=128 h_q=128 than releasing it after them: the
        // refill of these chunks is the one QK^T(A') needs first). The PV has usually completed during the rows_b wait.
        pv_wait();
        release(0, kGroupOwn);  // V_A dims 0-255: the producer refills them while the pair goes on
        store_p(p_tile[0]);  // for warpgroup 1; stage 0's chunk 8: its QK^T use is over
        cutlass::arch::fence_view_async_shared();
        bar_arrive(kBarPA, 256);  // every thread's P_A stores (and zeroed V_A rows) before warpgroup 1's PV
        FLASHMLA_TRACE_EVENT(rec, trace::kSyncBegin + kBarPB);
        bar_sync(kBarPB, 256);    // P_B of warpgroup 1 (it arrives for a phantom slot too)
        FLASHMLA_TRACE_EVENT(rec, trace::kSyncEnd + kBarPB);
        rescale_o(scale);  // O_L to the basis m_b (skipped by a warp whose rows kept their max, as most pairs do)
        phase[0] ^= 1;
        if (has1) {  // a phantom's P_B is all zeros: no PV
          observe(1, phase[1], 0, kHalfDv / kChunk);
          pv(tOrP1, 1);
          FLASHMLA_TRACE_EVENT(rec, trace::kPvOtherIssued);
          phase[1] ^= 1;
        }
        // P_B V_B,L over: V_B dims 0-255 and P_B go back (for a phantom slot too: the producer counts every slot)
        // before the next QK^T(A) waits for its chunks. Issued behind those waits, the release took the stage 0
        // refills' latency over to stage 1's (4% slower at b=128 h_q=128 and h_q=16): warpgroup 1's QK^T(B') needs
        // this refill first.
        warpgroup_wait<0>();
        warpgroup_fence_operand(tOrO);
        release(1, kGroupOther);
        FLASHMLA_TRACE_EVENT(rec, trace::kQkIssue);
        if (next) qk_issue(_0{}, _0{}, Int<kChunks>{}, phase[0]);  // the next pair's QK^T(A)
        qk_wait();  // outside the branch (see warpgroup 1's loop)
      }

      FLASHMLA_SPAN_SEG(span_segments, 3, 0);
      // Epilogue: the row sums of warpgroup 1 (after it has read ours: rows_a is free again for the next segment);
      // one split -> out and natural-log lse; several -> fp32 partial, base-2 lse.
      float l_wg1[2] = {0.f, 0.f}, inv_l[2];
      quad_sum(l);
      if (start < end) {  // else both l are 0
        publish(ss.rows_a, &ss.rows_a_full, l);
        receive(ss.rows_b, &ss.rows_b_full, rows_parity, l_wg1);
      }
      FLASHMLA_SPAN_SEG(span_segments, 4, 0);
      // The next segment's Q and first QK^T(A), in flight on the tensor pipe while this segment's O goes out (the
      // stores take 5,600-8,000 cycles per warpgroup, session 16). One issue site for every segment's first QK^T:
      // a second one, before the loop's first segment, left the issue itself 0.4-0.7% faster at b=128 h_q=128 but
      // its code cost the small cases 2.5-5% (ptxas' schedule; docs/results/raw/2026-11-22-session20-
      // experiments.txt, sections 6 and 9).
      if (r < e.end_req) {
        const Segment nx = segment(p, e, r + 1);
        if (nx.start < nx.end) {
          acquire_q(r + 1);
          qk_issue(_0{}, _0{}, Int<kChunks>{}, phase[0]);
        }
      }
      if (r < e.begin_req) return;  // the priming call
      total_l(l, l_wg1, l, inv_l);
      bool split;
      const int slot = split_slot(r, split);
      store_o<E>(p, tOrO, tOcO, my_row, inv_l, r, row0, nrows, g, 0, split, slot);
      FLASHMLA_SPAN_SEG(span_segments, 5, 0);
      if (row_owner) {
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
#ifdef FLASHMLA_CTA_SPAN
      FLASHMLA_SPAN_SEG(span_segments, 6, 0);
      FLASHMLA_SPAN_SEG(span_segments, 7, end - start);
      if (start < end) span_tiles += end - start, ++span_segments;
#endif
    });
    FLASHMLA_SPAN_END(0, span_tiles, span_segments);
    return;
  }

  // -------------------------------------------------------------------- warpgroup 1: tile B of each pair, O[:, 256:512]
  // Per pair, with S_B already in registers: m_b = the running max after tile B (from warpgroup 0's m_a);
  // P_B = exp2(S_B - m_b), O_R rescaled to m_b, O_R += P_B V_B,R while warpgroup 0 rescales and stores P_A; then
  // O_R += P_A V_A,R, and the next pair's QK^T(B).
  for_each_segment_primed(p, e, [&](int r, int len, int start, int end) __attribute__((always_inline)) {
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};  // the same m as warpgroup 0's after each pair
    int bound[2];
    row_bounds(len, bound);
    clear(tOrO);
    qk_wait();  // the segment's first QK^T(B), issued by the previous call (see warpgroup 0's)
#pragma unroll 1
    for (int blk = start; blk < end; blk += 2) {
      const bool has1 = blk + 1 < end;  // else a phantom slot: nothing loaded, everything masked, no QK^T
      FLASHMLA_TRACE_EVENT(rec, trace::kPairStart);
      const bool next1 = blk + 3 < end;  // the next pair has a real tile B
      const int tok1 = (blk + 1) * kBlockN;
      if (blk + 2 >= end) release_q();  // our last QK^T of the segment is over
      const int lim[2] = {has1 ? bound[0] - tok1 : 0, has1 ? bound[1] - tok1 : 0};
      float mx[2], m_b[2], scale[2], sum[2];
      mask_and_max(lim, mx);
      FLASHMLA_TRACE_EVENT(rec, trace::kMark + 0);
      float m_a[2];
      receive(ss.rows_a, &ss.rows_a_full, rows_parity, m_a);
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        m_b[j] = slack_max(m_a[j], mx[j]);
        scale[j] = rescale_factor(m[j], m_a[j]) * rescale_factor(m_a[j], m_b[j]);  // the factors warpgroup 0 applies
      }
      publish(ss.rows_b, &ss.rows_b_full, m_b);
      FLASHMLA_TRACE_EVENT(rec, trace::kMark + 1);
      exp_and_sum(m_b, sum);  // a phantom's logits are all -inf: P_B = 0, sum 0
      FLASHMLA_TRACE_EVENT(rec, trace::kMark + 2);
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        l[j] = l[j] * scale[j] + sum[j];
        m[j] = m_b[j];
      }
      if (has1) {
        pack_p();
        rescale_o(scale);
        const int valid = min(kBlockN, len - tok1);
        if (valid < kBlockN) zero_tail_rows(ss.kv[1], valid, t128, kBarWg1);  // V_B: our PV and wg0's
        pv_own(1);           // our own P first, from registers
        FLASHMLA_TRACE_EVENT(rec, trace::kPvOwnIssued);
        store_p(p_tile[1]);  // for warpgroup 0; stage 1's chunk 8: its QK^T use is over
        cutlass::arch::fence_view_async_shared();
      } else {
        rescale_o(scale);  // P_A still lands in O
      }
      bar_arrive(kBarPB, 256);
      FLASHMLA_TRACE_EVENT(rec, trace::kSyncBegin + kBarPA);
      bar_sync(kBarPA, 256);  // P_A of warpgroup 0, in the basis m_b
      FLASHMLA_TRACE_EVENT(rec, trace::kSyncEnd + kBarPA);
      observe(0, phase[0], kHalfDv / kChunk, kDv / kChunk);
      pv(tOrP0, 0);
      FLASHMLA_TRACE_EVENT(rec, trace::kPvOtherIssued);
      if (has1) warpgroup_wait<1>();
      release(1, kGroupOwn);  // V_B dims 256-511 (for a phantom slot too)
      pv_wait();
      release(0, kGroupOther);  // V_A dims 256-511 and P_A
      phase[0] ^= 1;
      if (has1) phase[1] ^= 1;
      FLASHMLA_TRACE_EVENT(rec, trace::kQkIssue);
      if (next1) qk_issue(_1{}, _0{}, Int<kChunks>{}, phase[1]);  // the next pair's QK^T(B)
      // Outside the branch: a wait inside it made ptxas serialize every wgmma of the kernel (C7518).
      qk_wait();
    }
    // Segment end: warpgroup 0's row sums, then ours to it (after our read: warpgroup 0 then may reuse rows_a).
    FLASHMLA_SPAN_SEG(span_segments, 8, 0);
    float l_wg0[2] = {0.f, 0.f}, inv_l[2];
    quad_sum(l);
    if (start < end) {
      receive(ss.rows_a, &ss.rows_a_full, rows_parity, l_wg0);
      publish(ss.rows_b, &ss.rows_b_full, l);
    }
    FLASHMLA_SPAN_SEG(span_segments, 9, 0);
    // The next segment's Q and first QK^T(B) (none for a segment of one tile), before our O stores.
    if (r < e.end_req) {
      const Segment nx = segment(p, e, r + 1);
      if (nx.start < nx.end) {
        acquire_q(r + 1);
        if (nx.start + 1 < nx.end) qk_issue(_1{}, _0{}, Int<kChunks>{}, phase[1]);
      }
    }
    if (r < e.begin_req) return;  // the priming call
    total_l(l_wg0, l, l, inv_l);
    bool split;
    const int slot = split_slot(r, split);
    store_o<E>(p, tOrO, tOcO, my_row, inv_l, r, row0, nrows, g, kHalfDv, split, slot);
    FLASHMLA_SPAN_SEG(span_segments, 10, 0);
#ifdef FLASHMLA_CTA_SPAN
    if (start < end) ++span_segments;
#endif
  });
  FLASHMLA_SPAN_END(1, 0, 0);
}

}  // namespace flashmla::sm90::dense_decode
