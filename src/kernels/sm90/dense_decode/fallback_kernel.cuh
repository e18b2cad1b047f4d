// Dense decode fallback kernel (WMMA, no TMA) for page sizes the TMA tile loader does not take; see
// docs/kernels/dense_decode.md.
//
// One CTA = one (schedule part, KV head g, m-block of kRows query rows); it walks the requests and KV blocks its
// schedule entry assigns. 8 warps (256 threads), no warp specialisation yet:
//   load K tile -> S = Q K^T (WMMA bf16/fp16, fp32 accumulate; warp w owns S fragment (w/4, w%4))
//   -> online softmax in base 2 (8 threads per row) -> rescale O in smem -> O += P V (warp w owns 64 columns of O)
// Tokens are addressed one by one through block_table, so any page size works. Tokens at or past the request's
// length are zero-filled in smem, never read, so NaN in unused cache slots cannot reach the output.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>

#include <cstdint>

#include "core/decode_schedule.h"
#include "kernels/sm90/dense_decode/common_params.h"

namespace flashmla::sm90::dense_decode::fallback {

constexpr int kRows = 32;      // query rows per CTA (s_q x heads sharing one KV head)
constexpr int kBlockN = kDecodeBlockN;  // KV tokens per step (the schedule's block_size_n)
constexpr int kDqk = 576;
constexpr int kDv = 512;
constexpr int kThreads = 256;

template <typename T>
struct Smem {
  T q[kRows * kDqk];          // 36,864 B
  T k[kBlockN * kDqk];        // 73,728 B; V = first kDv columns
  float s[kRows * kBlockN];   //  8,192 B logits
  T p[kRows * kBlockN];       //  4,096 B probabilities (input dtype, the PV operand)
  float o[kRows * kDv];       // 65,536 B unnormalised output
  float m[kRows], l[kRows], alpha[kRows];
  int row_end[kRows];         // exclusive token bound of each row (length, causal mask)
};

struct Params : CommonParams {
  const void* k;
  int64_t k_stride_block, k_stride_tok, k_stride_head;
  int page;
};

template <typename T>
__global__ void __launch_bounds__(kThreads, 1) dense_decode_kernel(const Params p) {
  using namespace nvcuda;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  Smem<T>& sm = *reinterpret_cast<Smem<T>*>(smem_raw);
  const int tid = threadIdx.x, warp = tid / 32;
  const CtaWork w = cta_work(p, kRows);
  const DecodeSchedEntry e = w.e;
  if (e.begin_req >= p.b) return;
  const int g = w.g, row0 = w.row0, nrows = w.nrows;

  for (int r = e.begin_req; r <= e.end_req; ++r) {
    const Segment sg = segment(p, e, r);
    const int len = sg.len, start = sg.start, end = sg.end;

    for (int i = tid; i < kRows * kDv; i += kThreads) sm.o[i] = 0.f;
    if (tid < kRows) {
      sm.m[tid] = -INFINITY;
      sm.l[tid] = 0.f;
      sm.row_end[tid] = tid < nrows ? visible_keys(p, len, row0 + tid) : 0;
    }
    const T* q = static_cast<const T*>(p.q);
    for (int i = tid; i < kRows * kDqk; i += kThreads) {
      const int row = i / kDqk, d = i % kDqk;
      T v = T(0.f);
      if (row < nrows) {
        const int s = (row0 + row) / p.hpg, h = g * p.hpg + (row0 + row) % p.hpg;
        v = q[r * p.q_stride_b + s * p.q_stride_s + h * p.q_stride_h + d];
      }
      sm.q[i] = v;
    }
    __syncthreads();

    for (int blk = start; blk < end; ++blk) {
      // K tile: 64 tokens x 576 dims, 16-byte loads; tokens past the length are zeros.
      const int tok0 = blk * kBlockN;
      constexpr int kVecPerRow = kDqk / 8;
      for (int i = tid; i < kBlockN * kVecPerRow; i += kThreads) {
        const int j = i / kVecPerRow, c = i % kVecPerRow, t = tok0 + j;
        int4 v = make_int4(0, 0, 0, 0);
        if (t < len) {
          const int64_t phys = p.block_table[r * p.bt_stride + t / p.page];
          const T* src = static_cast<const T*>(p.k) + phys * p.k_stride_block + (t % p.page) * p.k_stride_tok +
                         g * p.k_stride_head;
          v = reinterpret_cast<const int4*>(src)[c];
        }
        reinterpret_cast<int4*>(sm.k + j * kDqk)[c] = v;
      }
      __syncthreads();

      {  // S = Q K^T: warp w computes the 16x16 fragment (w / 4, w % 4).
        const int rf = warp / 4, cf = warp % 4;
        wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
        wmma::fill_fragment(acc, 0.f);
#pragma unroll 4
        for (int kk = 0; kk < kDqk / 16; ++kk) {
          wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
          wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> bq;
          wmma::load_matrix_sync(a, sm.q + rf * 16 * kDqk + kk * 16, kDqk);
          wmma::load_matrix_sync(bq, sm.k + cf * 16 * kDqk + kk * 16, kDqk);
          wmma::mma_sync(acc, a, bq, acc);
        }
        wmma::store_matrix_sync(sm.s + rf * 16 * kBlockN + cf * 16, acc, kBlockN, wmma::mem_row_major);
      }
      __syncthreads();

      {  // Online softmax, base 2: 8 consecutive threads per row, 8 columns each.
        const int row = tid / 8, c0 = (tid % 8) * 8;
        const int bound = sm.row_end[row];
        const float m_old = sm.m[row];
        float x[8];
        float mx = -INFINITY;
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          // Replace (never add to) masked logits: the cache may hold anything there.
          x[j] = tok0 + c0 + j < bound ? sm.s[row * kBlockN + c0 + j] * p.scale_log2 : -INFINITY;
          mx = fmaxf(mx, x[j]);
        }
#pragma unroll
        for (int o = 1; o < 8; o *= 2) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
        const float m_new = fmaxf(m_old, mx);
        const float alpha = m_new == -INFINITY ? 1.f : exp2f(m_old - m_new);
        float sum = 0.f;
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          const float pj = x[j] == -INFINITY ? 0.f : exp2f(x[j] - m_new);
          sum += pj;
          sm.p[row * kBlockN + c0 + j] = T(pj);
        }
#pragma unroll
        for (int o = 1; o < 8; o *= 2) sum += __shfl_xor_sync(0xffffffffu, sum, o);
        __syncwarp();  // every lane of the row has read the old m / l before lane 0 of the group overwrites them
        if (tid % 8 == 0) {
          sm.m[row] = m_new;
          sm.l[row] = sm.l[row] * alpha + sum;
          sm.alpha[row] = alpha;
        }
      }
      __syncthreads();
      for (int i = tid; i < kRows * kDv; i += kThreads) sm.o[i] *= sm.alpha[i / kDv];
      __syncthreads();

      {  // O += P V: warp w owns output columns [64w, 64w + 64) for both 16-row fragments.
#pragma unroll
        for (int rf = 0; rf < kRows / 16; ++rf) {
#pragma unroll
          for (int cf = warp * 4; cf < warp * 4 + 4; ++cf) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
            wmma::load_matrix_sync(acc, sm.o + rf * 16 * kDv + cf * 16, kDv, wmma::mem_row_major);
#pragma unroll
            for (int kk = 0; kk < kBlockN / 16; ++kk) {
              wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
              wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> v;
              wmma::load_matrix_sync(a, sm.p + rf * 16 * kBlockN + kk * 16, kBlockN);
              wmma::load_matrix_sync(v, sm.k + kk * 16 * kDqk + cf * 16, kDqk);
              wmma::mma_sync(acc, a, v, acc);
            }
            wmma::store_matrix_sync(sm.o + rf * 16 * kDv + cf * 16, acc, kDv, wmma::mem_row_major);
          }
        }
      }
      __syncthreads();
    }

    // Epilogue: a request with one split writes the final output; otherwise this split's normalised partial.
    const int first_slot = p.split_offsets[r];
    const bool split = p.split_offsets[r + 1] - first_slot > 1;
    const int slot = first_slot + (r == e.begin_req ? e.begin_split : 0);
    for (int i = tid; i < nrows * kDv; i += kThreads) {
      const int row = i / kDv, c = i % kDv;
      const float l = sm.l[row];
      const float v = l > 0.f ? sm.o[i] / l : 0.f;
      const int s = (row0 + row) / p.hpg, h = g * p.hpg + (row0 + row) % p.hpg;
      if (split) {
        p.o_accum[((static_cast<int64_t>(slot) * p.s_q + s) * p.h_q + h) * kDv + accum_pos(c)] = v;
      } else {
        static_cast<T*>(p.out)[r * p.o_stride_b + s * p.o_stride_s + h * p.o_stride_h + c] = T(v);
      }
    }
    if (tid < nrows) {
      const float l = sm.l[tid];
      const int s = (row0 + tid) / p.hpg, h = g * p.hpg + (row0 + tid) % p.hpg;
      if (split) {
        p.lse_accum[(static_cast<int64_t>(slot) * p.s_q + s) * p.h_q + h] = l > 0.f ? sm.m[tid] + log2f(l) : -INFINITY;
      } else {
        p.lse[r * p.lse_stride_b + h * p.lse_stride_h + s * p.lse_stride_s] =
            l > 0.f ? (sm.m[tid] + log2f(l)) * 0.6931471805599453f : INFINITY;
      }
    }
    __syncthreads();
  }
}

}  // namespace flashmla::sm90::dense_decode::fallback
