// Semantic validation of every operation (spec section 2), independent of any backend.
#include "flashmla/validate.h"

#include <cmath>
#include <string>

#include "core/checks.h"

namespace flashmla {

using detail::Dim;
using detail::expect_absent;
using detail::expect_contiguous;
using detail::expect_dtype;
using detail::expect_last_dim_contiguous;
using detail::expect_positive;
using detail::expect_same_device;
using detail::expect_shape;
using detail::expect_value;
using detail::fail;

namespace {

constexpr int64_t kAny = -1;

void expect_scale(float softmax_scale) {
  if (!std::isfinite(softmax_scale) || softmax_scale == 0.f) {
    fail("softmax_scale: expected a finite non-zero value, got " + std::to_string(softmax_scale));
  }
}

void expect_d_v(int d_v, int64_t d_qk) {
  if (d_v != 512) fail("d_v: expected 512, got " + std::to_string(d_v));
  if (d_v > d_qk) fail("d_v: must not exceed d_qk (" + std::to_string(d_qk) + "), got " + std::to_string(d_v));
}

// A paged FP8 cache: (num_blocks, page_block_size, 1, bytes_per_token) bytes, token stride = bytes_per_token, blocks
// must not overlap.
void expect_fp8_cache(const TensorView& kv, const char* arg, KvCacheFormat format, const TensorView& q, const char* q_arg) {
  const int bpt = bytes_per_token(format);
  expect_shape(kv, arg, {{"num_blocks", kAny}, {"page_block_size", kAny}, {"h_kv", kAny}, {"bytes_per_token", kAny}});
  expect_dtype(kv, arg, {DType::kUInt8, DType::kInt8, DType::kFloat8E4M3});
  expect_same_device(kv, arg, q, q_arg);
  const std::string a(arg);
  if (kv.shape[2] != 1) fail(a + ": h_kv must be 1 (MQA), got " + std::to_string(kv.shape[2]));
  if (kv.shape[3] != bpt) {
    fail(a + ": last dim must be " + std::to_string(bpt) + " bytes per token for format " +
         (format == KvCacheFormat::kV32 ? "V32 (d_qk 576)" : "MODEL1 (d_qk 512)") + ", got " + std::to_string(kv.shape[3]));
  }
  expect_positive(kv.shape[1], (a + ": page_block_size").c_str());
  expect_last_dim_contiguous(kv, arg);
  if (kv.shape[1] > 1 && kv.stride[1] != bpt) {
    fail(a + ": token stride (stride(1)) must be " + std::to_string(bpt) + " bytes (a page block is contiguous), got " +
         std::to_string(kv.stride[1]));
  }
  if (kv.shape[0] > 1 && kv.stride[0] < kv.shape[1] * bpt) {
    fail(a + ": block stride (stride(0)) must be at least page_block_size * " + std::to_string(bpt) + " = " +
         std::to_string(kv.shape[1] * bpt) + " bytes (blocks must not overlap), got " + std::to_string(kv.stride[0]));
  }
}

}  // namespace

void validate(const DenseDecodeParams& p) {
  expect_shape(p.q, "q", {{"b", kAny}, {"s_q", kAny}, {"h_q", kAny}, {"d_qk", kAny}});
  expect_dtype(p.q, "q", {DType::kBFloat16, DType::kFloat16});
  expect_last_dim_contiguous(p.q, "q");
  const int64_t b = p.q.shape[0], s_q = p.q.shape[1], h_q = p.q.shape[2], d_qk = p.q.shape[3];
  expect_positive(b, "q: batch size b");
  expect_positive(s_q, "q: s_q");
  expect_positive(h_q, "q: h_q");
  if (d_qk != 576 && d_qk != 512) fail("q: d_qk (last dim) must be 576 or 512, got " + std::to_string(d_qk));
  expect_d_v(p.d_v, d_qk);

  expect_shape(p.k_cache, "k_cache", {{"num_blocks", kAny}, {"page_block_size", kAny}, {"h_kv", kAny}, {"d_qk", d_qk}});
  expect_dtype(p.k_cache, "k_cache", {p.q.dtype});
  expect_last_dim_contiguous(p.k_cache, "k_cache");
  expect_positive(p.k_cache.shape[1], "k_cache: page_block_size");
  const int64_t h_kv = p.k_cache.shape[2];
  expect_positive(h_kv, "k_cache: h_kv");
  if (h_q % h_kv != 0) {
    fail("q/k_cache: h_q (" + std::to_string(h_q) + ") must be a multiple of h_kv (" + std::to_string(h_kv) + ")");
  }

  expect_shape(p.block_table, "block_table", {{"b", b}, {"max_blocks_per_seq", kAny}});
  expect_dtype(p.block_table, "block_table", {DType::kInt32});
  expect_last_dim_contiguous(p.block_table, "block_table");
  expect_shape(p.cache_seqlens, "cache_seqlens", {{"b", b}});
  expect_dtype(p.cache_seqlens, "cache_seqlens", {DType::kInt32});
  expect_contiguous(p.cache_seqlens, "cache_seqlens");

  expect_shape(p.out, "out", {{"b", b}, {"s_q", s_q}, {"h_q", h_q}, {"d_v", p.d_v}});
  expect_dtype(p.out, "out", {p.q.dtype});
  expect_last_dim_contiguous(p.out, "out");
  expect_shape(p.lse, "lse", {{"b", b}, {"h_q", h_q}, {"s_q", s_q}});
  expect_dtype(p.lse, "lse", {DType::kFloat32});

  for (auto [t, name] : {std::pair{&p.k_cache, "k_cache"}, {&p.block_table, "block_table"},
                         {&p.cache_seqlens, "cache_seqlens"}, {&p.out, "out"}, {&p.lse, "lse"}}) {
    expect_same_device(*t, name, p.q, "q");
  }
  expect_scale(p.softmax_scale);
}

void validate(const SparseDecodeParams& p) {
  expect_shape(p.q, "q", {{"b", kAny}, {"s_q", kAny}, {"h_q", kAny}, {"d_qk", kAny}});
  expect_dtype(p.q, "q", {DType::kBFloat16});
  expect_last_dim_contiguous(p.q, "q");
  const int64_t b = p.q.shape[0], s_q = p.q.shape[1], h_q = p.q.shape[2], d_qk = p.q.shape[3];
  expect_positive(b, "q: batch size b");
  expect_positive(s_q, "q: s_q");
  expect_positive(h_q, "q: h_q");
  if (d_qk != head_dim_qk(p.format)) {
    fail("q: d_qk (last dim) must be " + std::to_string(head_dim_qk(p.format)) + " for format " +
         (p.format == KvCacheFormat::kV32 ? "V32" : "MODEL1") + ", got " + std::to_string(d_qk));
  }
  expect_d_v(p.d_v, d_qk);
  expect_fp8_cache(p.kv_cache, "kv_cache", p.format, p.q, "q");

  expect_shape(p.indices, "indices", {{"b", b}, {"s_q", s_q}, {"topk", kAny}});
  expect_dtype(p.indices, "indices", {DType::kInt32});
  expect_last_dim_contiguous(p.indices, "indices");
  expect_positive(p.indices.shape[2], "indices: topk");
  expect_same_device(p.indices, "indices", p.q, "q");

  if (p.topk_length.present()) {
    expect_shape(p.topk_length, "topk_length", {{"b", b}});
    expect_dtype(p.topk_length, "topk_length", {DType::kInt32});
    expect_contiguous(p.topk_length, "topk_length");
    expect_same_device(p.topk_length, "topk_length", p.q, "q");
  }
  if (p.attn_sink.present()) {
    expect_shape(p.attn_sink, "attn_sink", {{"h_q", h_q}});
    expect_dtype(p.attn_sink, "attn_sink", {DType::kFloat32});
    expect_contiguous(p.attn_sink, "attn_sink");
    expect_same_device(p.attn_sink, "attn_sink", p.q, "q");
  }
  if (p.extra_kv_cache.present()) {
    expect_fp8_cache(p.extra_kv_cache, "extra_kv_cache", p.format, p.q, "q");
    if (!p.extra_indices.present()) fail("extra_indices: required when extra_kv_cache is given");
    expect_shape(p.extra_indices, "extra_indices", {{"b", b}, {"s_q", s_q}, {"extra_topk", kAny}});
    expect_dtype(p.extra_indices, "extra_indices", {DType::kInt32});
    expect_last_dim_contiguous(p.extra_indices, "extra_indices");
    expect_positive(p.extra_indices.shape[2], "extra_indices: extra_topk");
    expect_same_device(p.extra_indices, "extra_indices", p.q, "q");
    if (p.extra_topk_length.present()) {
      expect_shape(p.extra_topk_length, "extra_topk_length", {{"b", b}});
      expect_dtype(p.extra_topk_length, "extra_topk_length", {DType::kInt32});
      expect_contiguous(p.extra_topk_length, "extra_topk_length");
      expect_same_device(p.extra_topk_length, "extra_topk_length", p.q, "q");
    }
  } else {
    expect_absent(p.extra_indices, "extra_indices", "without extra_kv_cache");
    expect_absent(p.extra_topk_length, "extra_topk_length", "without extra_kv_cache");
  }

  expect_shape(p.out, "out", {{"b", b}, {"s_q", s_q}, {"h_q", h_q}, {"d_v", p.d_v}});
  expect_dtype(p.out, "out", {DType::kBFloat16});
  expect_last_dim_contiguous(p.out, "out");
  expect_same_device(p.out, "out", p.q, "q");
  expect_shape(p.lse, "lse", {{"b", b}, {"h_q", h_q}, {"s_q", s_q}});
  expect_dtype(p.lse, "lse", {DType::kFloat32});
  expect_same_device(p.lse, "lse", p.q, "q");
  expect_scale(p.softmax_scale);
}

void validate(const SparsePrefillParams& p) {
  expect_shape(p.q, "q", {{"s_q", kAny}, {"h_q", kAny}, {"d_qk", kAny}});
  expect_dtype(p.q, "q", {DType::kBFloat16});
  expect_last_dim_contiguous(p.q, "q");
  const int64_t s_q = p.q.shape[0], h_q = p.q.shape[1], d_qk = p.q.shape[2];
  expect_positive(h_q, "q: h_q");
  if (d_qk != 576 && d_qk != 512) fail("q: d_qk (last dim) must be 576 or 512, got " + std::to_string(d_qk));
  expect_d_v(p.d_v, d_qk);

  expect_shape(p.kv, "kv", {{"s_kv", kAny}, {"h_kv", kAny}, {"d_qk", d_qk}});
  expect_dtype(p.kv, "kv", {DType::kBFloat16});
  expect_last_dim_contiguous(p.kv, "kv");
  expect_same_device(p.kv, "kv", p.q, "q");
  if (p.kv.shape[1] != 1) fail("kv: h_kv must be 1 (MQA), got " + std::to_string(p.kv.shape[1]));

  expect_shape(p.indices, "indices", {{"s_q", s_q}, {"h_kv", 1}, {"topk", kAny}});
  expect_dtype(p.indices, "indices", {DType::kInt32});
  expect_last_dim_contiguous(p.indices, "indices");
  expect_positive(p.indices.shape[2], "indices: topk");
  expect_same_device(p.indices, "indices", p.q, "q");

  if (p.attn_sink.present()) {
    expect_shape(p.attn_sink, "attn_sink", {{"h_q", h_q}});
    expect_dtype(p.attn_sink, "attn_sink", {DType::kFloat32});
    expect_last_dim_contiguous(p.attn_sink, "attn_sink");
    expect_same_device(p.attn_sink, "attn_sink", p.q, "q");
  }
  if (p.topk_length.present()) {
    expect_shape(p.topk_length, "topk_length", {{"s_q", s_q}});
    expect_dtype(p.topk_length, "topk_length", {DType::kInt32});
    expect_last_dim_contiguous(p.topk_length, "topk_length");
    expect_same_device(p.topk_length, "topk_length", p.q, "q");
  }
  expect_shape(p.out, "out", {{"s_q", s_q}, {"h_q", h_q}, {"d_v", p.d_v}});
  expect_dtype(p.out, "out", {DType::kBFloat16});
  expect_last_dim_contiguous(p.out, "out");
  expect_same_device(p.out, "out", p.q, "q");
  expect_shape(p.max_logits, "max_logits", {{"s_q", s_q}, {"h_q", h_q}});
  expect_dtype(p.max_logits, "max_logits", {DType::kFloat32});
  expect_same_device(p.max_logits, "max_logits", p.q, "q");
  expect_shape(p.lse, "lse", {{"s_q", s_q}, {"h_q", h_q}});
  expect_dtype(p.lse, "lse", {DType::kFloat32});
  expect_same_device(p.lse, "lse", p.q, "q");
  expect_scale(p.softmax_scale);
}

void validate(const KvQuantizeParams& p) {
  const int64_t d_qk = head_dim_qk(p.format);
  expect_shape(p.kv, "kv", {{"num_blocks", kAny}, {"page_block_size", kAny}, {"h_kv", 1}, {"d_qk", d_qk}});
  expect_dtype(p.kv, "kv", {DType::kBFloat16});
  expect_last_dim_contiguous(p.kv, "kv");
  expect_fp8_cache(p.kv_fp8, "kv_fp8", p.format, p.kv, "kv");
  expect_value(p.kv_fp8.shape[0], p.kv.shape[0], "kv_fp8: num_blocks (dim 0, must match kv)");
  expect_value(p.kv_fp8.shape[1], p.kv.shape[1], "kv_fp8: page_block_size (dim 1, must match kv)");
}

}  // namespace flashmla
