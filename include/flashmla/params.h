// Parameter structs of every operation. Plain data; fill them, then call validate() (or an entry point, which
// validates first). Shapes use the field's names: b = batch, s_q = query tokens per request, h_q / h_kv = query / KV
// heads, d_qk = Q/K head dim (576 = 512 latent + 64 RoPE, or 512 for MODEL1), d_v = V head dim (512; V is the first
// d_v dims of K), topk = indices per query token.
#pragma once

#include <cstdint>

#include "flashmla/types.h"

namespace flashmla {

/// Layouts of the FP8 KV cache. Source: DeepSeek FlashMLA (V3.2 "FP8 with scale" and MODEL1), see docs/fp8-kv-cache.md.
enum class KvCacheFormat : int {
  /// d_qk = 576. 656 bytes per token, token-contiguous: [0,512) 512 x fp8_e4m3 NoPE, [512,528) 4 x float32 scales
  /// (scale i covers NoPE dims [128i, 128i+128)), [528,656) 64 x bf16 RoPE.
  kV32,
  /// d_qk = 512. Block-interleaved: a page of P tokens holds P x 576 bytes (448 x fp8_e4m3 NoPE, 64 x bf16 RoPE) and
  /// then P x 8 bytes of scales (7 x e8m0, one per 64 NoPE dims, then one zero pad byte). 584 bytes per token.
  kModel1,
};

constexpr int kV32BytesPerToken = 656;
constexpr int kModel1BytesPerToken = 584;
constexpr int bytes_per_token(KvCacheFormat f) { return f == KvCacheFormat::kV32 ? kV32BytesPerToken : kModel1BytesPerToken; }
constexpr int head_dim_qk(KvCacheFormat f) { return f == KvCacheFormat::kV32 ? 576 : 512; }

/// Dense decode: every query token attends to the first cache_seqlens[i] tokens of its request's paged KV cache.
///
///   q             (b, s_q, h_q, d_qk)                       bf16 or fp16, last dim contiguous
///   k_cache       (num_blocks, page_block_size, h_kv, d_qk) same dtype as q, last dim contiguous; token t of request
///                                                           i lives at k_cache[block_table[i][t / page_block_size],
///                                                           t % page_block_size]
///   block_table   (b, max_blocks_per_seq)                   int32, last dim contiguous
///   cache_seqlens (b)                                       int32, contiguous, values in [0, max_blocks * page)
///   out           (b, s_q, h_q, d_v)                        dtype of q, last dim contiguous (written)
///   lse           (b, h_q, s_q)                             float32 (written): natural-log logsumexp of the scaled
///                                                           logits; +inf for a row with nothing to attend
/// GQA: query head h uses KV head h / (h_q / h_kv). Causal (only when s_q > 1): query token j sees keys
/// [0, s_k - s_q + j], i.e. the mask is bottom-right aligned; rows that see nothing give out = 0, lse = +inf.
struct DenseDecodeParams {
  TensorView q;
  TensorView k_cache;
  TensorView block_table;
  TensorView cache_seqlens;
  TensorView out;
  TensorView lse;
  int d_v = 512;
  float softmax_scale = 0.f;  // logits = softmax_scale * q.k; FlashMLA's default is d_qk^-0.5
  bool causal = false;
};

/// Sparse decode (DeepSeek Sparse Attention) over an FP8 KV cache.
///
///   q                 (b, s_q, h_q, d_qk)                       bf16, last dim contiguous
///   kv_cache          (num_blocks, page_block_size, 1, bytes)   uint8/int8/fp8_e4m3 bytes in `format`; stride(1)
///                                                               must equal bytes_per_token, stride(0) is free
///                                                               (strides in bytes)
///   indices           (b, s_q, topk)                            int32, token = block * page_block_size + offset
///                                                               (block_table already folded in); -1 = invalid
///   topk_length       (b) int32, optional: request i uses only indices[i, :, :topk_length[i]]
///   attn_sink         (h_q) float32, optional: out *= 1 / (1 + exp(attn_sink[h] - lse)); lse itself is unchanged
///   extra_kv_cache    optional second cache, same format (its own page_block_size), attended jointly
///   extra_indices     (b, s_q, extra_topk) int32, required with extra_kv_cache
///   extra_topk_length (b) int32, optional, only with extra_kv_cache
///   out               (b, s_q, h_q, d_v) bf16 (written)
///   lse               (b, h_q, s_q) float32 (written), +inf when nothing is attended
struct SparseDecodeParams {
  TensorView q;
  TensorView kv_cache;
  TensorView indices;
  TensorView topk_length;
  TensorView attn_sink;
  TensorView extra_kv_cache;
  TensorView extra_indices;
  TensorView extra_topk_length;
  TensorView out;
  TensorView lse;
  KvCacheFormat format = KvCacheFormat::kV32;
  int d_v = 512;
  float softmax_scale = 0.f;
};

/// Sparse prefill: each query token attends to the tokens listed in its indices (no batch dimension; flatten
/// batches and offset the indices yourself).
///
///   q           (s_q, h_q, d_qk)   bf16, last dim contiguous
///   kv          (s_kv, h_kv, d_qk) bf16, h_kv == 1, last dim contiguous
///   indices     (s_q, h_kv, topk)  int32; an index < 0 or >= s_kv is invalid (skipped)
///   attn_sink   (h_q) float32, optional (affects out only)
///   topk_length (s_q) int32, optional: token i uses only indices[i, :, :topk_length[i]]
///   out         (s_q, h_q, d_v) bf16 (written)
///   max_logits  (s_q, h_q) float32 (written): max of softmax_scale * q.k, -inf when nothing is attended
///   lse         (s_q, h_q) float32 (written): natural log, +inf when nothing is attended
struct SparsePrefillParams {
  TensorView q;
  TensorView kv;
  TensorView indices;
  TensorView attn_sink;
  TensorView topk_length;
  TensorView out;
  TensorView max_logits;
  TensorView lse;
  int d_v = 512;
  float softmax_scale = 0.f;
};

/// FP8 KV-cache quantization (bf16 -> `format`). Per token and per NoPE tile (128 dims for V32, 64 for MODEL1):
/// scale = 2^ceil(log2(max(amax / 448, 1e-4))), fp8 = e4m3(x / scale) rounded to nearest even; RoPE dims copied.
///
///   kv      (num_blocks, page_block_size, 1, d_qk) bf16, d_qk = head_dim_qk(format), last dim contiguous (read)
///   kv_fp8  (num_blocks, page_block_size, 1, bytes_per_token(format)) uint8/int8/fp8_e4m3, stride(1) ==
///           bytes_per_token, stride(0) free (written)
struct KvQuantizeParams {
  TensorView kv;
  TensorView kv_fp8;
  KvCacheFormat format = KvCacheFormat::kV32;
};

/// FP8 KV-cache dequantization (`format` -> bf16): x = fp8 * scale, exact for power-of-two scales.
/// Same tensors as KvQuantizeParams with the direction reversed (kv_fp8 read, kv written).
using KvDequantizeParams = KvQuantizeParams;

}  // namespace flashmla
