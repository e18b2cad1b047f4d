// Random sparse decode / sparse prefill cases and their naive float64 brute forces.
#pragma once

#include <set>

#include "core/fp8_kv_format.h"
#include "tests/cpu/test_util.h"

namespace flashmla::test {

// ---- FP8 paged cache -----------------------------------------------------------------------------------------------
struct Fp8Cache {
  KvCacheFormat format;
  int64_t num_blocks, page, block_stride;  // block_stride in bytes, padded past page * bytes_per_token
  std::vector<uint16_t> bf16;              // (num_blocks, page, 1, d_qk) source values
  std::vector<uint8_t> bytes;

  int64_t num_tokens() const { return num_blocks * page; }
  TensorView bf16_view() {
    const int64_t d = head_dim_qk(format);
    return TensorView::contiguous(bf16.data(), DType::kBFloat16, {num_blocks, page, 1, d});
  }
  TensorView view() {
    const int64_t bpt = bytes_per_token(format);
    return TensorView::strided(bytes.data(), DType::kUInt8, {num_blocks, page, 1, bpt}, {block_stride, bpt, bpt, 1});
  }
  /// Token t decoded independently of the library: fp8 (formula) * scale, widened to double.
  std::vector<double> decode(int64_t token) const {
    const Fp8Layout L = fp8_layout(format);
    const uint8_t* blk = bytes.data() + (token / page) * block_stride;
    const int64_t t = token % page;
    std::vector<double> x(L.d_qk);
    for (int d = 0; d < L.d_nope; ++d) {
      double scale;
      if (format == KvCacheFormat::kV32) {
        float f;
        std::memcpy(&f, blk + t * 656 + 512 + 4 * (d / 128), 4);
        scale = f;
        x[d] = decode_e4m3(blk[t * 656 + d]) * scale;
      } else {
        scale = std::ldexp(1.0, blk[page * 576 + t * 8 + d / 64] - 127);
        x[d] = decode_e4m3(blk[t * 576 + d]) * scale;
      }
    }
    const int64_t rope = format == KvCacheFormat::kV32 ? t * 656 + 528 : t * 576 + 448;
    for (int d = 0; d < L.d_rope; ++d) {
      uint16_t h;
      std::memcpy(&h, blk + rope + 2 * d, 2);
      x[L.d_nope + d] = decode_bf16(h);
    }
    return x;
  }
};

inline Fp8Cache make_fp8_cache(Rng& r, KvCacheFormat f, int64_t num_blocks, int64_t page) {
  Fp8Cache c{f, num_blocks, page, 0, {}, {}};
  const int64_t bpt = bytes_per_token(f);
  c.block_stride = ((page * bpt + 16) + 15) / 16 * 16;  // padded, 16-byte aligned
  c.bf16.resize(num_blocks * page * head_dim_qk(f));
  for (auto& x : c.bf16) x = float_to_bf16(small_normal(r));
  c.bytes.assign(num_blocks * c.block_stride, 0xAB);
  return c;
}

inline void quantize(Fp8Cache& c) {
  KvQuantizeParams q{c.bf16_view(), c.view(), c.format};
  ref::quantize_kv_cache(q);
}

/// Sets every token of the bf16 source that `used` does not contain to NaN (before quantization).
inline void poison_unused(Fp8Cache& c, const std::set<int64_t>& used) {
  const int64_t d = head_dim_qk(c.format);
  for (int64_t t = 0; t < c.num_tokens(); ++t) {
    if (!used.count(t)) std::fill_n(&c.bf16[t * d], d, 0x7fc1);
  }
}

// ---- sparse decode -------------------------------------------------------------------------------------------------
struct SparseDecodeCase {
  int64_t b, s_q, h_q, topk, extra_topk = 0;
  KvCacheFormat format;
  float scale;
  Fp8Cache cache, extra;
  bool has_extra = false, has_topk_length = false, has_extra_topk_length = false, has_sink = false;
  std::vector<int32_t> indices, extra_indices, topk_length, extra_topk_length;
  std::vector<float> sink, lse;
  std::vector<uint16_t> q, out;

  SparseDecodeParams params() {
    SparseDecodeParams p;
    const int64_t d = head_dim_qk(format);
    p.format = format;
    p.q = TensorView::contiguous(q.data(), DType::kBFloat16, {b, s_q, h_q, d});
    p.kv_cache = cache.view();
    p.indices = TensorView::contiguous(indices.data(), DType::kInt32, {b, s_q, topk});
    if (has_topk_length) p.topk_length = TensorView::contiguous(topk_length.data(), DType::kInt32, {b});
    if (has_sink) p.attn_sink = TensorView::contiguous(sink.data(), DType::kFloat32, {h_q});
    if (has_extra) {
      p.extra_kv_cache = extra.view();
      p.extra_indices = TensorView::contiguous(extra_indices.data(), DType::kInt32, {b, s_q, extra_topk});
      if (has_extra_topk_length) p.extra_topk_length = TensorView::contiguous(extra_topk_length.data(), DType::kInt32, {b});
    }
    out.assign(b * s_q * h_q * 512, 0x7fc1);
    lse.assign(b * h_q * s_q, NAN);
    p.out = TensorView::contiguous(out.data(), DType::kBFloat16, {b, s_q, h_q, 512});
    p.lse = TensorView::contiguous(lse.data(), DType::kFloat32, {b, h_q, s_q});
    p.softmax_scale = scale;
    return p;
  }
};

/// Unique random tokens of [0, num_tokens) per row, padded with -1; `invalid_row_every` > 0 makes every n-th row all -1.
inline std::vector<int32_t> random_indices(Rng& r, int64_t rows, int64_t topk, int64_t num_tokens, int invalid_row_every) {
  std::vector<int32_t> idx(rows * topk, -1);
  std::vector<int32_t> all(num_tokens);
  std::iota(all.begin(), all.end(), 0);
  for (int64_t row = 0; row < rows; ++row) {
    if (invalid_row_every > 0 && row % invalid_row_every == 0) continue;
    std::shuffle(all.begin(), all.end(), r.gen);
    const int64_t n = std::min(topk, num_tokens);
    for (int64_t k = 0; k < n; ++k) idx[row * topk + k] = all[k];
    std::shuffle(idx.begin() + row * topk, idx.begin() + (row + 1) * topk, r.gen);
  }
  return idx;
}

inline std::vector<float> random_sink(Rng& r, int64_t h_q) {
  std::vector<float> s(h_q);
  for (auto& x : s) {
    const double u = r.uniform(0, 1);
    x = u < 0.3 ? INFINITY : u < 0.6 ? -INFINITY : static_cast<float>(r.normal());
  }
  return s;
}

struct SparseDecodeOptions {
  bool extra = false, topk_length = false, extra_topk_length = false, sink = false, poison = true;
  int invalid_row_every = 0;
};

inline SparseDecodeCase make_sparse_decode_case(Rng& r, KvCacheFormat f, int64_t b, int64_t s_q, int64_t h_q,
                                                int64_t topk, int64_t num_tokens, int64_t page, SparseDecodeOptions o,
                                                int64_t extra_topk = 0, int64_t extra_page = 0) {
  SparseDecodeCase c;
  c.b = b, c.s_q = s_q, c.h_q = h_q, c.topk = topk, c.format = f;
  c.scale = static_cast<float>(std::pow(head_dim_qk(f), -0.55));
  c.cache = make_fp8_cache(r, f, (num_tokens + page - 1) / page, page);
  std::set<int64_t> used, used_extra;
  c.indices = random_indices(r, b * s_q, topk, c.cache.num_tokens(), o.invalid_row_every);
  c.has_topk_length = o.topk_length;
  for (int64_t i = 0; i < b; ++i) c.topk_length.push_back(static_cast<int32_t>(r.integer(0, topk)));
  for (int64_t row = 0; row < b * s_q; ++row) {
    const int64_t n = o.topk_length ? c.topk_length[row / s_q] : topk;
    for (int64_t k = 0; k < n; ++k) {
      if (c.indices[row * topk + k] >= 0) used.insert(c.indices[row * topk + k]);
    }
    // Positions past topk_length hold garbage that must never be read.
    for (int64_t k = n; k < topk; ++k) c.indices[row * topk + k] = k % 2 ? INT32_MAX : -7;
  }
  if (o.poison) poison_unused(c.cache, used);
  quantize(c.cache);
  if (o.extra) {
    c.has_extra = true, c.extra_topk = extra_topk, c.has_extra_topk_length = o.extra_topk_length;
    c.extra = make_fp8_cache(r, f, (num_tokens + extra_page - 1) / extra_page, extra_page);
    c.extra_indices = random_indices(r, b * s_q, extra_topk, c.extra.num_tokens(), o.invalid_row_every);
    for (int64_t i = 0; i < b; ++i) c.extra_topk_length.push_back(static_cast<int32_t>(r.integer(0, extra_topk)));
    for (int64_t row = 0; row < b * s_q; ++row) {
      const int64_t n = o.extra_topk_length ? c.extra_topk_length[row / s_q] : extra_topk;
      for (int64_t k = 0; k < n; ++k) {
        if (c.extra_indices[row * extra_topk + k] >= 0) used_extra.insert(c.extra_indices[row * extra_topk + k]);
      }
      for (int64_t k = n; k < extra_topk; ++k) c.extra_indices[row * extra_topk + k] = INT32_MIN;
    }
    if (o.poison) poison_unused(c.extra, used_extra);
    quantize(c.extra);
  }
  c.has_sink = o.sink;
  c.sink = random_sink(r, h_q);
  c.q.resize(b * s_q * h_q * head_dim_qk(f));
  for (auto& x : c.q) x = float_to_bf16(static_cast<float>(std::clamp(r.normal(), -1.0, 1.0)));
  return c;
}

/// Softmax of one row over explicit key rows, float64, with the sink convention. Returns (out, lse, max).
inline void brute_row(const std::vector<double>& q, const std::vector<std::vector<double>>& keys, double scale,
                      int64_t d_v, bool has_sink, double sink, double* out, double& lse, double& max_logit) {
  if (keys.empty()) {
    std::fill_n(out, d_v, 0.0);
    lse = kInf, max_logit = -kInf;
    return;
  }
  std::vector<double> logit;
  for (const auto& k : keys) logit.push_back(scale * std::inner_product(q.begin(), q.end(), k.begin(), 0.0));
  max_logit = *std::max_element(logit.begin(), logit.end());
  double sum = 0;
  for (double l : logit) sum += std::exp(l - max_logit);
  lse = max_logit + std::log(sum);
  // With a sink the softmax has one more logit (the sink) whose value vector is zero.
  const double denom_lse = has_sink ? (sink == kInf ? kInf : sink == -kInf ? lse : std::max(lse, sink) + std::log1p(std::exp(-std::fabs(lse - sink)))) : lse;
  std::fill_n(out, d_v, 0.0);
  if (denom_lse == kInf) return;
  for (size_t k = 0; k < keys.size(); ++k) {
    const double p = std::exp(logit[k] - denom_lse);
    for (int64_t d = 0; d < d_v; ++d) out[d] += p * keys[k][d];
  }
}

inline Expected brute_sparse_decode(const SparseDecodeCase& c) {
  Expected e;
  const int64_t d = head_dim_qk(c.format);
  e.out.assign(c.b * c.s_q * c.h_q * 512, 0);
  e.lse.assign(c.b * c.h_q * c.s_q, 0);
  for (int64_t i = 0; i < c.b; ++i) {
    for (int64_t s = 0; s < c.s_q; ++s) {
      std::vector<std::vector<double>> keys;
      const int64_t row = i * c.s_q + s;
      const int64_t n = c.has_topk_length ? c.topk_length[i] : c.topk;
      for (int64_t k = 0; k < n; ++k) {
        if (c.indices[row * c.topk + k] != -1) keys.push_back(c.cache.decode(c.indices[row * c.topk + k]));
      }
      if (c.has_extra) {
        const int64_t ne = c.has_extra_topk_length ? c.extra_topk_length[i] : c.extra_topk;
        for (int64_t k = 0; k < ne; ++k) {
          if (c.extra_indices[row * c.extra_topk + k] != -1) keys.push_back(c.extra.decode(c.extra_indices[row * c.extra_topk + k]));
        }
      }
      for (int64_t h = 0; h < c.h_q; ++h) {
        std::vector<double> q(d);
        for (int64_t x = 0; x < d; ++x) q[x] = decode_bf16(c.q[((row * c.h_q) + h) * d + x]);
        double m;
        brute_row(q, keys, c.scale, 512, c.has_sink, c.sink[h], &e.out[(row * c.h_q + h) * 512],
                  e.lse[(i * c.h_q + h) * c.s_q + s], m);
      }
    }
  }
  return e;
}

// ---- sparse prefill ------------------------------------------------------------------------------------------------
struct SparsePrefillCase {
  int64_t s_q, h_q, d_qk, s_kv, topk;
  float scale = 0.5f;
  bool has_sink = false, has_topk_length = false;
  std::vector<uint16_t> q, kv, out;
  std::vector<int32_t> indices, topk_length;
  std::vector<float> sink, max_logits, lse;

  SparsePrefillParams params() {
    SparsePrefillParams p;
    p.q = TensorView::contiguous(q.data(), DType::kBFloat16, {s_q, h_q, d_qk});
    p.kv = TensorView::contiguous(kv.data(), DType::kBFloat16, {s_kv, 1, d_qk});
    p.indices = TensorView::contiguous(indices.data(), DType::kInt32, {s_q, 1, topk});
    if (has_sink) p.attn_sink = TensorView::contiguous(sink.data(), DType::kFloat32, {h_q});
    if (has_topk_length) p.topk_length = TensorView::contiguous(topk_length.data(), DType::kInt32, {s_q});
    out.assign(s_q * h_q * 512, 0x7fc1);
    max_logits.assign(s_q * h_q, NAN);
    lse.assign(s_q * h_q, NAN);
    p.out = TensorView::contiguous(out.data(), DType::kBFloat16, {s_q, h_q, 512});
    p.max_logits = TensorView::contiguous(max_logits.data(), DType::kFloat32, {s_q, h_q});
    p.lse = TensorView::contiguous(lse.data(), DType::kFloat32, {s_q, h_q});
    p.softmax_scale = scale;
    return p;
  }
};

inline SparsePrefillCase make_sparse_prefill_case(Rng& r, int64_t s_q, int64_t h_q, int64_t d_qk, int64_t s_kv,
                                                  int64_t topk, bool sink, bool topk_length, bool poison = true,
                                                  int invalid_row_every = 0) {
  SparsePrefillCase c;
  c.s_q = s_q, c.h_q = h_q, c.d_qk = d_qk, c.s_kv = s_kv, c.topk = topk;
  c.has_sink = sink, c.has_topk_length = topk_length;
  const double off = r.uniform(-0.05, 0.05);
  auto val = [&] { return float_to_bf16(static_cast<float>(std::clamp(r.normal() / 10 + off, -10.0, 10.0))); };
  c.q.resize(s_q * h_q * d_qk);
  for (auto& x : c.q) x = val();
  c.kv.resize(s_kv * d_qk);
  for (auto& x : c.kv) x = val();
  static const int32_t kInvalid[] = {INT32_MIN, -123456, -1, 0 /* s_kv */, 114514, 1919810, 2147480000, INT32_MAX};
  std::set<int64_t> used;
  c.indices = random_indices(r, s_q, topk, s_kv, invalid_row_every);
  for (auto& x : c.indices) {
    if (x == -1) {
      const int32_t v = kInvalid[r.integer(0, 7)];
      x = v == 0 ? static_cast<int32_t>(s_kv) : v;
    }
  }
  for (int64_t s = 0; s < s_q; ++s) c.topk_length.push_back(static_cast<int32_t>(r.integer(0, topk)));
  for (int64_t s = 0; s < s_q; ++s) {
    for (int64_t k = 0; k < (topk_length ? c.topk_length[s] : topk); ++k) {
      const int32_t x = c.indices[s * topk + k];
      if (x >= 0 && x < s_kv) used.insert(x);
    }
  }
  if (poison) {
    for (int64_t t = 0; t < s_kv; ++t) if (!used.count(t)) std::fill_n(&c.kv[t * d_qk], d_qk, 0x7fc1);
  }
  c.sink = random_sink(r, h_q);
  return c;
}

inline Expected brute_sparse_prefill(const SparsePrefillCase& c) {
  Expected e;
  e.out.assign(c.s_q * c.h_q * 512, 0);
  e.lse.assign(c.s_q * c.h_q, 0);
  e.max_logits.assign(c.s_q * c.h_q, 0);
  for (int64_t s = 0; s < c.s_q; ++s) {
    std::vector<std::vector<double>> keys;
    for (int64_t k = 0; k < (c.has_topk_length ? c.topk_length[s] : c.topk); ++k) {
      const int64_t x = c.indices[s * c.topk + k];
      if (x < 0 || x >= c.s_kv) continue;
      std::vector<double> row(c.d_qk);
      for (int64_t d = 0; d < c.d_qk; ++d) row[d] = decode_bf16(c.kv[x * c.d_qk + d]);
      keys.push_back(row);
    }
    for (int64_t h = 0; h < c.h_q; ++h) {
      std::vector<double> q(c.d_qk);
      for (int64_t d = 0; d < c.d_qk; ++d) q[d] = decode_bf16(c.q[(s * c.h_q + h) * c.d_qk + d]);
      brute_row(q, keys, c.scale, 512, c.has_sink, c.sink[h], &e.out[(s * c.h_q + h) * 512], e.lse[s * c.h_q + h],
                e.max_logits[s * c.h_q + h]);
    }
  }
  return e;
}

}  // namespace flashmla::test
