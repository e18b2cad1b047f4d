// CPU references of sparse decode (FP8 paged cache, indices, topk_length, extra cache, attn_sink) and sparse prefill
// (bf16 kv, indices, topk_length, attn_sink, max_logits).
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "flashmla/reference.h"
#include "flashmla/validate.h"
#include "reference/access.h"
#include "reference/attention_core.h"
#include "reference/kv_quant.h"
#include "reference/parallel.h"

namespace flashmla::ref {
namespace {

constexpr int kHeadsPerTask = 16;
constexpr double kInf = std::numeric_limits<double>::infinity();

// Number of used positions of a request's index rows: topk_length[i] (checked against [0, topk]) or topk.
int64_t used_length(const TensorView& topk_length, const char* arg, int64_t i, int64_t topk) {
  if (!topk_length.present()) return topk;
  const int64_t n = load_i32(topk_length, offset_of(topk_length, i));
  if (n < 0 || n > topk) {
    detail::fail(std::string(arg) + "[" + std::to_string(i) + "] = " + std::to_string(n) + " is outside [0, " +
                 std::to_string(topk) + "]");
  }
  return n;
}

// Appends the dequantized rows that indices[i][s][0:n) select from `cache` (-1 = skip).
template <typename Acc>
void gather_fp8(const TensorView& cache, const char* cache_arg, const TensorView& indices, const char* idx_arg,
                KvCacheFormat f, int64_t i, int64_t s, int64_t n, std::vector<Acc>& keys) {
  const int64_t P = cache.shape[1], num_tokens = cache.shape[0] * P;
  const int d_qk = head_dim_qk(f);
  std::vector<float> row(d_qk);
  for (int64_t pos = 0; pos < n; ++pos) {
    const int64_t idx = load_i32(indices, offset_of(indices, i, s, pos));
    if (idx == -1) continue;
    if (idx < 0 || idx >= num_tokens) {
      detail::fail(std::string(idx_arg) + "[" + std::to_string(i) + "][" + std::to_string(s) + "][" +
                   std::to_string(pos) + "] = " + std::to_string(idx) + " is neither -1 nor a token of " + cache_arg +
                   " (num_blocks * page_block_size = " + std::to_string(num_tokens) + ")");
    }
    const uint8_t* block = cache.ptr<const uint8_t>() + (idx / P) * cache.stride[0];
    dequantize_token(block, f, idx % P, P, row.data());
    keys.insert(keys.end(), row.begin(), row.end());
  }
}

template <typename Acc>
void run_sparse_decode(const SparseDecodeParams& p, const Options& opt) {
  const int64_t b = p.q.shape[0], s_q = p.q.shape[1], h_q = p.q.shape[2], d_qk = p.q.shape[3];
  const int d_v = p.d_v;
  const int64_t chunks = (h_q + kHeadsPerTask - 1) / kHeadsPerTask;
  parallel_for(b * s_q * chunks, opt.num_threads, [&](int64_t task) {
    const int64_t i = task / (s_q * chunks), s = (task / chunks) % s_q, c = task % chunks;
    std::vector<Acc> keys, q(d_qk), o(d_v), logits;
    const int64_t n = used_length(p.topk_length, "topk_length", i, p.indices.shape[2]);
    gather_fp8<Acc>(p.kv_cache, "kv_cache", p.indices, "indices", p.format, i, s, n, keys);
    if (p.extra_kv_cache.present()) {
      const int64_t ne = used_length(p.extra_topk_length, "extra_topk_length", i, p.extra_indices.shape[2]);
      gather_fp8<Acc>(p.extra_kv_cache, "extra_kv_cache", p.extra_indices, "extra_indices", p.format, i, s, ne, keys);
    }
    const int64_t n_keys = static_cast<int64_t>(keys.size()) / d_qk;
    for (int64_t h = c * kHeadsPerTask; h < std::min((c + 1) * kHeadsPerTask, h_q); ++h) {
      const int64_t qo = offset_of(p.q, i, s, h, 0);
      for (int64_t d = 0; d < d_qk; ++d) q[d] = load_float(p.q, qo + d * p.q.stride[3]);
      const RowState<Acc> st = attend<Acc>(q.data(), keys.data(), 0, n_keys, d_qk, d_v, Acc(p.softmax_scale), logits, o.data());
      Acc factor = st.empty() ? Acc(0) : Acc(1) / st.l;
      if (!st.empty() && p.attn_sink.present()) factor *= sink_factor<Acc>(st.lse(), Acc(p.attn_sink.ptr<const float>()[h]));
      const int64_t oo = offset_of(p.out, i, s, h, 0);
      for (int j = 0; j < d_v; ++j) store_float(p.out, oo + j * p.out.stride[3], o[j] * factor);
      store_float(p.lse, offset_of(p.lse, i, h, s), st.empty() ? kInf : static_cast<double>(st.lse()));
    }
  });
}

template <typename Acc>
void run_sparse_prefill(const SparsePrefillParams& p, const Options& opt) {
  const int64_t s_q = p.q.shape[0], h_q = p.q.shape[1], d_qk = p.q.shape[2], s_kv = p.kv.shape[0];
  const int64_t topk = p.indices.shape[2];
  const int d_v = p.d_v;
  const int64_t chunks = (h_q + kHeadsPerTask - 1) / kHeadsPerTask;
  parallel_for(s_q * chunks, opt.num_threads, [&](int64_t task) {
    const int64_t s = task / chunks, c = task % chunks;
    std::vector<Acc> keys, q(d_qk), o(d_v), logits;
    const int64_t n = used_length(p.topk_length, "topk_length", s, topk);
    for (int64_t pos = 0; pos < n; ++pos) {
      const int64_t idx = load_i32(p.indices, offset_of(p.indices, s, 0, pos));
      if (idx < 0 || idx >= s_kv) continue;  // prefill convention: anything outside [0, s_kv) is invalid
      const int64_t ko = offset_of(p.kv, idx, 0, 0);
      for (int64_t d = 0; d < d_qk; ++d) keys.push_back(load_float(p.kv, ko + d * p.kv.stride[2]));
    }
    const int64_t n_keys = static_cast<int64_t>(keys.size()) / d_qk;
    for (int64_t h = c * kHeadsPerTask; h < std::min((c + 1) * kHeadsPerTask, h_q); ++h) {
      const int64_t qo = offset_of(p.q, s, h, 0);
      for (int64_t d = 0; d < d_qk; ++d) q[d] = load_float(p.q, qo + d * p.q.stride[2]);
      const RowState<Acc> st = attend<Acc>(q.data(), keys.data(), 0, n_keys, d_qk, d_v, Acc(p.softmax_scale), logits, o.data());
      Acc factor = st.empty() ? Acc(0) : Acc(1) / st.l;
      if (!st.empty() && p.attn_sink.present()) factor *= sink_factor<Acc>(st.lse(), Acc(p.attn_sink.ptr<const float>()[h]));
      const int64_t oo = offset_of(p.out, s, h, 0);
      for (int j = 0; j < d_v; ++j) store_float(p.out, oo + j * p.out.stride[2], o[j] * factor);
      store_float(p.max_logits, offset_of(p.max_logits, s, h), st.empty() ? -kInf : static_cast<double>(st.m));
      store_float(p.lse, offset_of(p.lse, s, h), st.empty() ? kInf : static_cast<double>(st.lse()));
    }
  });
}

}  // namespace

void sparse_decode(const SparseDecodeParams& p, const Options& opt) {
  validate(p);
  for (auto [t, name] : {std::pair{&p.q, "q"}, {&p.kv_cache, "kv_cache"}, {&p.indices, "indices"},
                         {&p.topk_length, "topk_length"}, {&p.attn_sink, "attn_sink"},
                         {&p.extra_kv_cache, "extra_kv_cache"}, {&p.extra_indices, "extra_indices"},
                         {&p.extra_topk_length, "extra_topk_length"}, {&p.out, "out"}, {&p.lse, "lse"}}) {
    expect_host(*t, name);
  }
  if (opt.accum == Accum::kFloat64) {
    run_sparse_decode<double>(p, opt);
  } else {
    run_sparse_decode<float>(p, opt);
  }
}

void sparse_prefill(const SparsePrefillParams& p, const Options& opt) {
  validate(p);
  for (auto [t, name] : {std::pair{&p.q, "q"}, {&p.kv, "kv"}, {&p.indices, "indices"}, {&p.attn_sink, "attn_sink"},
                         {&p.topk_length, "topk_length"}, {&p.out, "out"}, {&p.max_logits, "max_logits"},
                         {&p.lse, "lse"}}) {
    expect_host(*t, name);
  }
  if (opt.accum == Accum::kFloat64) {
    run_sparse_prefill<double>(p, opt);
  } else {
    run_sparse_prefill<float>(p, opt);
  }
}

}  // namespace flashmla::ref
