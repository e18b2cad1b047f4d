// Split-KV combine: merges the partials of every request that the schedule split (spec section 4.5 semantics).
// Grid (b * s_q, ceil(h_q / rows per CTA)), 8 warps, kWarpsPerRow warps per output row (request, query token, head),
// each with 512 / kWarpsPerRow of its columns: every warp computes the row's merged base-2 lse (lanes stride over the
// splits), then each lane accumulates its float4s of the partial rows (positions 4 lane + 128 j: every load of the
// warp is 512 contiguous bytes) over the splits, several splits at a time to keep loads in flight. A partial row's
// columns are in the main kernels' accum_pos order (dense_decode/common_params.h): the float4 at position o holds
// columns c, c + 1, c + 8, c + 9 with c = accum_col(o), written out as two column pairs.
//   kWarpsPerRow = 1: few splits per request, many rows (b >= 16 or so): fewer CTAs, one lse pass per row.
//   kWarpsPerRow = 4: many splits per request, few rows (small b): 4x the warps, shorter dependent chains per warp.
// A request with a single split was written by the main kernel: its CTAs leave before waiting for the main kernel.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

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
  const float* attn_sink;  // (h_q) or nullptr
  void* out;
  int64_t o_stride_b, o_stride_s, o_stride_h;
  float* lse;
  int64_t lse_stride_b, lse_stride_h, lse_stride_s;
  int s_q, h_q;
  bool o_pairs;  // out can be written two elements (4 bytes) at a time (aligned base and strides)
};

/// The 16 bits of a bf16 or fp16 value.
template <typename T>
__device__ __forceinline__ uint16_t bits(T x) {
  return *reinterpret_cast<const uint16_t*>(&x);
}

template <typename T, int kWarpsPerRow>
__global__ void __launch_bounds__(32 * kWarps) combine_kernel(const Params p) {
  constexpr int kVecs = kDv / 128 / kWarpsPerRow;  // float4 per lane per split
  constexpr int kUnroll = kWarpsPerRow == 1 ? 4 : 8;  // splits loaded together: 16 or 8 float4 in flight per lane
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int h = blockIdx.y * rows_per_cta(kWarpsPerRow) + warp / kWarpsPerRow;
  const int col0 = (warp % kWarpsPerRow) * (kDv / kWarpsPerRow) + 4 * lane;
  const int i = blockIdx.x / p.s_q, s = blockIdx.x % p.s_q;
  // split_offsets comes from the schedule kernel, which completed before the main kernel started (a plain launch after
  // it): readable before the wait, so that the CTAs of a request with one split leave at once.
  const int k0 = p.split_offsets[i], k1 = p.split_offsets[i + 1];
  if (h >= p.h_q || k1 - k0 <= 1) return;
  // Launched with programmatic dependent launch after the main kernel: wait until its writes are visible.
  asm volatile("griddepcontrol.wait;" ::: "memory");
  auto lse_of = [&](int k) { return p.lse_accum[(static_cast<int64_t>(k) * p.s_q + s) * p.h_q + h]; };
  float M = -INFINITY;
  for (int k = k0 + lane; k < k1; k += 32) M = fmaxf(M, lse_of(k));
  for (int o = 16; o; o /= 2) M = fmaxf(M, __shfl_xor_sync(0xffffffffu, M, o));
  float S = 0.f;
  if (M != -INFINITY) {
    for (int k = k0 + lane; k < k1; k += 32) S += exp2f(lse_of(k) - M);
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
    const float* base = p.o_accum + (static_cast<int64_t>(s) * p.h_q + h) * kDv + col0;
    const int64_t split_stride = static_cast<int64_t>(p.s_q) * p.h_q * kDv;
    for (int k = k0; k < k1; k += kUnroll) {
      float4 v[kUnroll][kVecs];
      float w[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const bool in = k + u < k1;
        w[u] = in ? exp2f(lse_of(k + u) - G) : 0.f;
#pragma unroll
        for (int j = 0; j < kVecs; ++j) {
          v[u][j] = in ? *reinterpret_cast<const float4*>(base + (k + u) * split_stride + 128 * j)
                       : make_float4(0.f, 0.f, 0.f, 0.f);
        }
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        // An empty split has weight 0 and a partial that may be garbage: select, never multiply it in.
        if (w[u] == 0.f) continue;
#pragma unroll
        for (int j = 0; j < kVecs; ++j) {
          acc[j].x += w[u] * v[u][j].x, acc[j].y += w[u] * v[u][j].y;
          acc[j].z += w[u] * v[u][j].z, acc[j].w += w[u] * v[u][j].w;
        }
      }
    }
  }
  T* out = static_cast<T*>(p.out) + i * p.o_stride_b + s * p.o_stride_s + h * p.o_stride_h;
#pragma unroll
  for (int j = 0; j < kVecs; ++j) {
    T* d = out + dense_decode::accum_col(col0 + 128 * j);  // columns d[0], d[1], d[8], d[9]
    const T x0 = T(acc[j].x * factor), x1 = T(acc[j].y * factor), x8 = T(acc[j].z * factor), x9 = T(acc[j].w * factor);
    if (p.o_pairs) {
      *reinterpret_cast<uint32_t*>(d) = static_cast<uint32_t>(bits(x0)) | static_cast<uint32_t>(bits(x1)) << 16;
      *reinterpret_cast<uint32_t*>(d + 8) = static_cast<uint32_t>(bits(x8)) | static_cast<uint32_t>(bits(x9)) << 16;
    } else {
      d[0] = x0, d[1] = x1, d[8] = x8, d[9] = x9;
    }
  }
  if (lane == 0 && warp % kWarpsPerRow == 0) {
    p.lse[i * p.lse_stride_b + h * p.lse_stride_h + s * p.lse_stride_s] = S > 0.f ? G * 0.6931471805599453f : INFINITY;
  }
}

}  // namespace flashmla::sm90::combine
