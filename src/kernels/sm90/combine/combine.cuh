// Split-KV combine: merges the partials of every request that the schedule split (spec section 4.5 semantics).
// Grid (n * s_q, ceil(h_q / rows per CTA)), 8 warps, kWarpsPerRow warps per output row (request, query token, head),
// each with 512 / kWarpsPerRow of its columns. A warp first issues the loads of its first kAhead partial rows together
// with the loads of the splits' lse values (lane k holds split k's), so that a request with few splits (large batches:
// 2-3) costs one memory round trip; it then merges the row's base-2 lse and accumulates the partials, each lane its
// float4s (positions 4 lane + 128 j: every load of the warp is 512 contiguous bytes), refilling a partial's registers
// with the split kAhead further as soon as it was added. A partial row's columns are in the main kernels' accum_pos
// order (dense_decode/common_params.h): each float4 goes out as two column pairs.
//   kWarpsPerRow = 1: few splits per request, many rows (b >= 16 or so): fewer CTAs, one lse pass per row.
//   kWarpsPerRow = 4: many splits per request, few rows (small b): 4x the warps, shorter dependent chains per warp.
// At b=128 h_q=128 the combine's share of the end-to-end time was 18-21 us, FlashMLA's 11-12 (same session, with and
// without it). The single round trip, 3 CTAs per SM instead of 2 (80 registers instead of 105) and the grid by part
// took 3.4-6.3 us off b=128 h_q=128 s_k=4096v end to end (s_q = 1 and 2), at most 0.3 us more on the small cases
// (docs/results/raw/2026-11-21-session17-experiments.txt).
// A request with a single split was written by the main kernel: its CTAs leave before waiting for the main kernel.
// The grid's n is b (one x per request) or, when the schedule has fewer parts than requests, num_parts: x then
// stands for the split request that schedule part x opens (its last request, when that one continues in the next
// part), so that the grid holds no CTAs of unsplit requests (at b=128 h_q=128 half of them).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "core/decode_schedule.h"
#include "kernels/sm90/dense_decode/common_params.h"

namespace flashmla::sm90::combine {

constexpr int kDv = 512;
constexpr int kWarps = 8;  // per CTA

/// Rows (request, token, head) per CTA with kWarpsPerRow warps per row.
constexpr int rows_per_cta(int warps_per_row) { return kWarps / warps_per_row; }

struct Params {
  const float* o_accum;    // (max_splits, s_q, h_q, kDv), each row's columns in accum_pos order
  const float* lse_accum;  // (max_splits, s_q, h_q), base 2, -inf = empty split
  const int32_t* split_offsets;
  const DecodeSchedEntry* sched;  // (num_parts) when by_part
  bool by_part;                   // blockIdx.x / s_q is a schedule part (else a request)
  const float* attn_sink;  // (h_q) or nullptr
  void* out;
  int64_t o_stride_b, o_stride_s, o_stride_h;
  float* lse;
  int64_t lse_stride_b, lse_stride_h, lse_stride_s;
  int s_q, h_q;
  bool o_pairs;  // out can be written two elements (4 bytes) at a time (aligned base and strides)
};

// Registers per thread decide how many CTAs an SM holds and with them how many loads are in flight: 3 CTAs of one
// warp per row (80 registers; the version before took 105, two CTAs) and 4 of four warps per row.
template <int kWarpsPerRow>
constexpr int kMinCtasPerSm = kWarpsPerRow == 1 ? 3 : 4;

template <typename T, int kWarpsPerRow>
__global__ void __launch_bounds__(32 * kWarps, kMinCtasPerSm<kWarpsPerRow>) combine_kernel(const Params p) {
  constexpr int kVecs = kDv / 128 / kWarpsPerRow;  // float4 per lane per split
  constexpr int kAhead = 8 / kVecs;                // splits in flight per lane: 8 float4 (128 bytes)
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int h = blockIdx.y * rows_per_cta(kWarpsPerRow) + warp / kWarpsPerRow;
  const int col0 = (warp % kWarpsPerRow) * (kDv / kWarpsPerRow) + 4 * lane;
  const int s = blockIdx.x % p.s_q;
  // The schedule comes from the schedule kernel, which completed before the main kernel started (a plain launch after
  // it): readable before the wait, so that the CTAs of a request with one split leave at once.
  int i = blockIdx.x / p.s_q;
  if (p.by_part) {
    i = sched_request_opened(p.sched[i]);  // a split request has its first split in exactly one part
    if (i < 0) return;
  }
  const int k0 = p.split_offsets[i], k1 = p.split_offsets[i + 1];
  const int n = k1 - k0;
  if (h >= p.h_q || n <= 1) return;
  // Launched with programmatic dependent launch after the main kernel: wait until its writes are visible.
  asm volatile("griddepcontrol.wait;" ::: "memory");
  auto lse_of = [&](int k) { return p.lse_accum[(static_cast<int64_t>(k) * p.s_q + s) * p.h_q + h]; };
  const int64_t split_stride = static_cast<int64_t>(p.s_q) * p.h_q * kDv;
  const float* base = p.o_accum + k0 * split_stride + (static_cast<int64_t>(s) * p.h_q + h) * kDv + col0;
  // The first kAhead partial rows go out with the lse loads: one round trip for a request with few splits.
  float4 v[kAhead][kVecs];
#pragma unroll
  for (int u = 0; u < kAhead; ++u) {
#pragma unroll
    for (int j = 0; j < kVecs; ++j) {
      v[u][j] = u < n ? *reinterpret_cast<const float4*>(base + u * split_stride + 128 * j) : make_float4(0.f, 0.f, 0.f, 0.f);
    }
  }
  const float my_lse = lane < n ? lse_of(k0 + lane) : -INFINITY;  // splits past the 32nd: loaded where needed
  float M = my_lse;
  for (int k = k0 + 32 + lane; k < k1; k += 32) M = fmaxf(M, lse_of(k));
  for (int o = 16; o; o /= 2) M = fmaxf(M, __shfl_xor_sync(0xffffffffu, M, o));
  float S = 0.f;
  if (M != -INFINITY) {
    S = exp2f(my_lse - M);
    for (int k = k0 + 32 + lane; k < k1; k += 32) S += exp2f(lse_of(k) - M);
  }
  for (int o = 16; o; o /= 2) S += __shfl_xor_sync(0xffffffffu, S, o);
  const float G = S > 0.f ? log2f(S) + M : INFINITY;  // base-2 lse of the row
  float factor = 1.f;
  if (p.attn_sink != nullptr && S > 0.f) {
    const float lse_nat = G * 0.6931471805599453f;
    factor = 1.f / (1.f + expf(p.attn_sink[h] - lse_nat));
  }
  float4 acc[kVecs];
#pragma unroll
  for (int j = 0; j < kVecs; ++j) acc[j] = make_float4(0.f, 0.f, 0.f, 0.f);
  if (S > 0.f) {
    // Splits in chunks of 32: lane l computes the weight of split c + l (one load per chunk past the first, all lanes
    // at once), and the split's turn takes it with a shuffle. v[u] holds split k + u (kAhead divides 32).
    for (int c = 0; c < n; c += 32) {
      const float lse_c = c == 0 ? my_lse : c + lane < n ? lse_of(k0 + c + lane) : -INFINITY;
      const float w_lane = exp2f(lse_c - G);
      for (int k = c; k < min(n, c + 32); k += kAhead) {
#pragma unroll
        for (int u = 0; u < kAhead; ++u) {
          const int r = k + u;
          if (r >= n) break;
          const float w = __shfl_sync(0xffffffffu, w_lane, r - c);
          // An empty split has weight 0 and a partial that may be garbage: skip it, never multiply it in.
          if (w != 0.f) {
#pragma unroll
            for (int j = 0; j < kVecs; ++j) {
              acc[j].x += w * v[u][j].x, acc[j].y += w * v[u][j].y;
              acc[j].z += w * v[u][j].z, acc[j].w += w * v[u][j].w;
            }
          }
          if (r + kAhead < n) {
#pragma unroll
            for (int j = 0; j < kVecs; ++j) {
              v[u][j] = *reinterpret_cast<const float4*>(base + (r + kAhead) * split_stride + 128 * j);
            }
          }
        }
      }
    }
  }
  // acc[j] holds columns c, c + 1, c + 8, c + 9 (c = accum_col(col0 + 128 j)): two column pairs. A quad transpose to
  // one 8-byte store of four consecutive columns made this kernel faster alone (ncu) but the end-to-end time up to
  // 2.5 us slower (b=32 s_q=4 h_q=128 causal, b=64 h_q=16; docs/results/raw/2026-11-21-session17-experiments.txt).
  T* out = static_cast<T*>(p.out) + i * p.o_stride_b + s * p.o_stride_s + h * p.o_stride_h;
#pragma unroll
  for (int j = 0; j < kVecs; ++j) {
    T* d = out + dense_decode::accum_col(col0 + 128 * j);  // columns d[0], d[1], d[8], d[9]
    const float x0 = acc[j].x * factor, x1 = acc[j].y * factor, x8 = acc[j].z * factor, x9 = acc[j].w * factor;
    if (p.o_pairs) {
      *reinterpret_cast<uint32_t*>(d) = dense_decode::pack2<T>(x0, x1);
      *reinterpret_cast<uint32_t*>(d + 8) = dense_decode::pack2<T>(x8, x9);
    } else {
      d[0] = T(x0), d[1] = T(x1), d[8] = T(x8), d[9] = T(x9);
    }
  }
  if (lane == 0 && warp % kWarpsPerRow == 0) {
    p.lse[i * p.lse_stride_b + h * p.lse_stride_h + s * p.lse_stride_s] = S > 0.f ? G * 0.6931471805599453f : INFINITY;
  }
}

}  // namespace flashmla::sm90::combine
