// Split-KV combine: merges the partials of every request that the schedule split (spec section 4.5 semantics).
// Grid (b * s_q, ceil(h_q / 8)); 8 warps, one (request, query token, head) row per warp; each lane owns 16 of the
// 512 output columns as four float4. A request with a single split was written by the main kernel: skipped.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace flashmla::sm90::combine {

constexpr int kDv = 512;

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
  const int lane = threadIdx.x % 32;
  const int h = blockIdx.y * 8 + threadIdx.x / 32;
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
  float4 acc[4] = {};
  if (S > 0.f) {
    for (int k = k0; k < k1; ++k) {
      const float w = exp2f(lse_of(k) - G);
      if (w == 0.f) continue;  // an empty split: its partial may be garbage, never multiply it
      const float4* src = reinterpret_cast<const float4*>(p.o_accum + ((static_cast<int64_t>(k) * p.s_q + s) * p.h_q + h) * kDv);
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const float4 v = src[lane + 32 * j];
        acc[j].x += w * v.x, acc[j].y += w * v.y, acc[j].z += w * v.z, acc[j].w += w * v.w;
      }
    }
  }
  T* out = static_cast<T*>(p.out) + i * p.o_stride_b + s * p.o_stride_s + h * p.o_stride_h;
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const int c = 4 * (lane + 32 * j);
    out[c + 0] = T(acc[j].x * factor);
    out[c + 1] = T(acc[j].y * factor);
    out[c + 2] = T(acc[j].z * factor);
    out[c + 3] = T(acc[j].w * factor);
  }
  if (lane == 0) p.lse[i * p.lse_stride_b + h * p.lse_stride_h + s * p.lse_stride_s] = S > 0.f ? G * 0.6931471805599453f : INFINITY;
}

}  // namespace flashmla::sm90::combine
