// Split-KV combine: merges the partials of every request that the schedule split (spec section 4.5 semantics).
// Grid (b * s_q, ceil(h_q / kRowsPerCta)); 8 warps = kRowsPerCta rows x 4 column quarters. Each warp computes its
// row's merged base-2 lse (lanes stride over the splits), then each lane accumulates one float4 of its quarter over
// the splits, kUnroll splits at a time so that a single request's many splits still keep loads in flight.
// A request with a single split was written by the main kernel: skipped.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace flashmla::sm90::combine {

constexpr int kDv = 512;
constexpr int kRowsPerCta = 2;
constexpr int kUnroll = 8;

struct Params {
  const float* o_accum;    // (max_splits, s_q, h_q, kDv)
  const float* lse_accum;  // (max_splits, s_q, h_q), base 2, -inf = empty split
  const int32_t* split_offsets;
  const float* attn_sink;  // (h_q) or nullptr
  void* out;
  int64_t o_stride_b, o_stride_s, o_stride_h;
  float* lse;
  int64_t lse_stride_b, lse_stride_h, lse_stride_s;
  int s_q, h_q;
};

template <typename T>
__global__ void __launch_bounds__(256) combine_kernel(const Params p) {
  // Launched with programmatic dependent launch after the main kernel: wait until its writes are visible.
  asm volatile("griddepcontrol.wait;" ::: "memory");
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int h = blockIdx.y * kRowsPerCta + warp / 4, quarter = warp % 4;
  const int i = blockIdx.x / p.s_q, s = blockIdx.x % p.s_q;
  if (h >= p.h_q) return;
  // Produced by the main kernel earlier on the stream: plain loads.
  const int k0 = p.split_offsets[i], k1 = p.split_offsets[i + 1];
  if (k1 - k0 <= 1) return;
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
  const int col = quarter * (kDv / 4) + 4 * lane;
  float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
  if (S > 0.f) {
    const float* base = p.o_accum + (static_cast<int64_t>(s) * p.h_q + h) * kDv + col;
    const int64_t split_stride = static_cast<int64_t>(p.s_q) * p.h_q * kDv;
    for (int k = k0; k < k1; k += kUnroll) {
      float4 v[kUnroll];
      float w[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const bool in = k + u < k1;
        w[u] = in ? exp2f(lse_of(k + u) - G) : 0.f;
        v[u] = in ? *reinterpret_cast<const float4*>(base + (k + u) * split_stride) : make_float4(0.f, 0.f, 0.f, 0.f);
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        // An empty split has weight 0 and a partial that may be garbage: select, never multiply it in.
        if (w[u] != 0.f) acc.x += w[u] * v[u].x, acc.y += w[u] * v[u].y, acc.z += w[u] * v[u].z, acc.w += w[u] * v[u].w;
      }
    }
  }
  T* out = static_cast<T*>(p.out) + i * p.o_stride_b + s * p.o_stride_s + h * p.o_stride_h + col;
  out[0] = T(acc.x * factor);
  out[1] = T(acc.y * factor);
  out[2] = T(acc.z * factor);
  out[3] = T(acc.w * factor);
  if (quarter == 0 && lane == 0) {
    p.lse[i * p.lse_stride_b + h * p.lse_stride_h + s * p.lse_stride_s] = S > 0.f ? G * 0.6931471805599453f : INFINITY;
  }
}

}  // namespace flashmla::sm90::combine
