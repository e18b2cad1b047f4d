// CPU backend: the reference implementation of every operation. It is the oracle of every test and what
// flashmla-bench runs on a machine without a GPU. All tensors must be host tensors (device == kCpuDevice).
//
// Inputs pass through bit-exact bf16/fp16/fp8 decodes; logits, softmax and P.V accumulate in float32 (Accum::kFloat32)
// or float64 (Accum::kFloat64); outputs are rounded to nearest even into their dtype. The reference also checks the
// contents that validate() cannot see (lengths against the block table, block ids against the cache, indices against
// the cache), throwing InvalidArgument.
#pragma once

#include <cstdint>
#include <vector>

#include "flashmla/params.h"

namespace flashmla::ref {

enum class Accum { kFloat32, kFloat64 };

struct Options {
  Accum accum = Accum::kFloat32;
  int num_threads = 0;  // 0 = std::thread::hardware_concurrency()
};

void dense_decode(const DenseDecodeParams& p, const Options& opt = {});
void sparse_decode(const SparseDecodeParams& p, const Options& opt = {});
void sparse_prefill(const SparsePrefillParams& p, const Options& opt = {});
void quantize_kv_cache(const KvQuantizeParams& p);
void dequantize_kv_cache(const KvDequantizeParams& p);

/// Split-KV partial results, the layout the GPU kernels use between the main kernel and combine.
///   o_accum     (total_splits, s_q, h_q, d_v) float32: the split's output already divided by its own sum
///   lse_accum   (total_splits, s_q, h_q)      float32: base-2 logsumexp of the split (log2(L) + m with m in
///                                              log2 units), -inf for a split with nothing to attend
///   split_offsets  b + 1 prefix sums: request i owns split slots [split_offsets[i], split_offsets[i+1])
struct SplitKvPartials {
  TensorView o_accum;
  TensorView lse_accum;
  std::vector<int32_t> split_offsets;
};

/// Dense decode computed as partials. split_bounds[i] are request i's split boundaries in tokens:
/// 0 = p_0 <= p_1 <= ... <= p_n = cache_seqlens[i]; split k covers tokens [p_k, p_{k+1}) (intersected with what the
/// causal mask lets a row see). `params.out` and `params.lse` are not written.
void dense_decode_partials(const DenseDecodeParams& p, const std::vector<std::vector<int32_t>>& split_bounds,
                           SplitKvPartials& partials, const Options& opt = {});

/// Merges partials: lse = ln(sum_k 2^lse_k) (natural, +inf when every split is empty), out = sum_k w_k o_k with
/// w_k = 2^(lse_k - lse2); with attn_sink (h_q) the output is further scaled by 1 / (1 + exp(sink - lse)).
///   out (b, s_q, h_q, d_v) bf16/fp16/float32, lse (b, h_q, s_q) float32.
void combine(const SplitKvPartials& partials, const TensorView& attn_sink, const TensorView& out,
             const TensorView& lse);

}  // namespace flashmla::ref
