// Test fixtures: random DeepSeek-shaped inputs in host memory, an independent float64 brute force of each
// operation, and FlashMLA's closeness check (abs OR rel per element, matching inf/NaN positions, cosine difference).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "core/numeric.h"
#include "flashmla/flashmla.h"

namespace flashmla::test {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr int32_t kUnusedBlock = 2147480000;  // what FlashMLA's tests put in unused block_table entries

// ---- independent decoders (formula-based, not the library's bit tricks) ---------------------------------------------
inline double decode_bf16(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline double decode_fp16(uint16_t h) {
  const int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
  double v = e == 0 ? std::ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : std::ldexp(1024 + m, e - 25);
  return s ? -v : v;
}
inline double decode_half(uint16_t h, DType t) { return t == DType::kFloat16 ? decode_fp16(h) : decode_bf16(h); }
inline double decode_e4m3(uint8_t v) {
  const int s = v >> 7, e = (v >> 3) & 15, m = v & 7;
  if (e == 15 && m == 7) return NAN;
  double x = e == 0 ? std::ldexp(m, -9) : std::ldexp(8 + m, e - 10);
  return s ? -x : x;
}
inline uint16_t encode_half(float f, DType t) { return t == DType::kFloat16 ? float_to_fp16(f) : float_to_bf16(f); }

// ---- random data ---------------------------------------------------------------------------------------------------
struct Rng {
  std::mt19937_64 gen;
  explicit Rng(uint64_t seed) : gen(seed) {}
  double normal() { return std::normal_distribution<double>(0, 1)(gen); }
  double uniform(double a, double b) { return std::uniform_real_distribution<double>(a, b)(gen); }
  int64_t integer(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(gen); }  // [lo, hi]

  /// randn / 10 clamped to [-1, 1] for bulk data (caches of up to ~10^8 elements): a draw from a table of 65536 such
  /// samples (made from `gen` on first use), indexed by a splitmix64 stream seeded from `gen`. A normal_distribution
  /// call per element made the GPU tests' case generation slower than the kernels and the reference together.
  float bulk_small_normal() {
    if (table_.empty()) {
      table_.resize(1 << 16);
      for (float& x : table_) x = static_cast<float>(std::clamp(normal() / 10, -1.0, 1.0));
      state_ = gen();
    }
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return table_[(z ^ (z >> 31)) >> 48];
  }

 private:
  std::vector<float> table_;
  uint64_t state_ = 0;
};


/// randn / 10 clamped to [-1, 1], as FlashMLA's tests draw q and the cache.
inline float small_normal(Rng& r) { return static_cast<float>(std::clamp(r.normal() / 10, -1.0, 1.0)); }

// ---- closeness (FlashMLA kernelkit check_is_allclose semantics) ----------------------------------------------------
struct Tol {
  double abs, rel, cos;
};

/// ans and ref must agree on the positions of +inf, -inf and NaN; elsewhere every element must pass
/// |a - r| < abs OR |a - r| / (|r| + 1e-6) < rel; then 1 - 2<a,r>/(|a|^2+|r|^2) <= cos (0 when |r|^2 < 1e-12).
inline ::testing::AssertionResult all_close(const std::vector<double>& ans, const std::vector<double>& ref, Tol tol) {
  if (ans.size() != ref.size()) return ::testing::AssertionFailure() << "size " << ans.size() << " vs " << ref.size();
  double aa = 0, rr = 0, ar = 0;
  for (size_t i = 0; i < ans.size(); ++i) {
    const double a = ans[i], r = ref[i];
    if (std::isnan(a) || std::isnan(r)) {
      if (std::isnan(a) != std::isnan(r)) return ::testing::AssertionFailure() << "NaN mismatch at " << i << ": " << a << " vs " << r;
      continue;
    }
    if (std::isinf(a) || std::isinf(r)) {
      if (a != r) return ::testing::AssertionFailure() << "inf mismatch at " << i << ": " << a << " vs " << r;
      continue;
    }
    const double err = std::fabs(a - r);
    if (!(err < tol.abs || err / (std::fabs(r) + 1e-6) < tol.rel)) {
      return ::testing::AssertionFailure() << "element " << i << ": " << a << " vs " << r << " (abs err " << err << ")";
    }
    aa += a * a, rr += r * r, ar += a * r;
  }
  const double cos_diff = rr < 1e-12 ? 0.0 : 1 - 2 * ar / (aa + rr);
  if (cos_diff > tol.cos) return ::testing::AssertionFailure() << "cosine difference " << cos_diff << " > " << tol.cos;
  return ::testing::AssertionSuccess();
}

constexpr Tol kDenseOutTol{8e-4, 2.01 / 128, 5e-6};
constexpr Tol kDenseLseTol{1e-6, 8.01 / 65536, 1e-7};
constexpr Tol kSparseOutTol{1e-3, 2.01 / 128, 5e-6};
constexpr Tol kPrefillOutTol{8e-4, 3.01 / 128, 7e-6};
constexpr Tol kPrefillLseTol{1e-6, 2.01 / 65536, 1e-7};

// ---- dense decode case ---------------------------------------------------------------------------------------------
struct DenseCase {
  int64_t b, s_q, h_q, h_kv, d_qk = 576, d_v = 512, page, max_blocks = 0, num_blocks = 0;
  bool causal = false;
  DType dtype = DType::kBFloat16;
  float scale = 0;
  int64_t q_pad = 0, block_pad = 0;  // extra elements per head row of q / per cache block (non-contiguous strides)
  std::vector<int32_t> seqlens, block_table;
  std::vector<uint16_t> q, cache, out;
  std::vector<float> lse;

  DenseDecodeParams params() {
    DenseDecodeParams p;
    const int64_t qh = d_qk + q_pad;
    p.q = TensorView::strided(q.data(), dtype, {b, s_q, h_q, d_qk}, {s_q * h_q * qh, h_q * qh, qh, 1});
    const int64_t blk = page * h_kv * d_qk + block_pad;
    p.k_cache = TensorView::strided(cache.data(), dtype, {num_blocks, page, h_kv, d_qk}, {blk, h_kv * d_qk, d_qk, 1});
    p.block_table = TensorView::contiguous(block_table.data(), DType::kInt32, {b, max_blocks});
    p.cache_seqlens = TensorView::contiguous(seqlens.data(), DType::kInt32, {b});
    out.assign(b * s_q * h_q * d_v, 0x7fc1);  // poison: NaN in bf16 and fp16 alike
    lse.assign(b * h_q * s_q, NAN);
    p.out = TensorView::contiguous(out.data(), dtype, {b, s_q, h_q, d_v});
    p.lse = TensorView::contiguous(lse.data(), DType::kFloat32, {b, h_q, s_q});
    p.d_v = static_cast<int>(d_v);
    p.softmax_scale = scale;
    p.causal = causal;
    return p;
  }
  int64_t q_off(int64_t i, int64_t s, int64_t h) const { return ((i * s_q + s) * h_q + h) * (d_qk + q_pad); }
  int64_t k_off(int64_t blk, int64_t t, int64_t g) const { return blk * (page * h_kv * d_qk + block_pad) + (t * h_kv + g) * d_qk; }
};

/// Random dense decode case. Blocks are a random permutation; with `poison`, every cache element outside the
/// attended tokens is NaN and unused block_table entries are 2147480000. zero_len_every > 0 makes every n-th request
/// empty.
inline DenseCase make_dense_case(Rng& r, int64_t b, int64_t s_q, int64_t h_q, int64_t h_kv, int64_t page, int64_t s_k,
                                 bool varlen, bool causal, DType dtype, bool poison = true, int zero_len_every = 0) {
  DenseCase c;
  c.b = b, c.s_q = s_q, c.h_q = h_q, c.h_kv = h_kv, c.page = page, c.causal = causal, c.dtype = dtype;
  c.scale = static_cast<float>(1.0 / std::sqrt(576.0));
  for (int64_t i = 0; i < b; ++i) {
    int64_t len = varlen ? std::max<int64_t>(static_cast<int64_t>(r.normal() * s_k / 2 + s_k), s_q) : s_k;
    if (zero_len_every > 0 && i % zero_len_every == 0) len = 0;
    c.seqlens.push_back(static_cast<int32_t>(len));
  }
  const int64_t max_len = *std::max_element(c.seqlens.begin(), c.seqlens.end());
  c.max_blocks = (max_len + page - 1) / page + 1;  // one spare entry: unused tail of every row
  c.num_blocks = b * c.max_blocks;
  std::vector<int32_t> perm(c.num_blocks);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), r.gen);
  c.block_table.assign(b * c.max_blocks, poison ? kUnusedBlock : 0);
  for (int64_t i = 0; i < b; ++i) {
    for (int64_t j = 0; j < (c.seqlens[i] + page - 1) / page; ++j) c.block_table[i * c.max_blocks + j] = perm[i * c.max_blocks + j];
  }
  c.q.resize(b * s_q * h_q * (c.d_qk + c.q_pad));
  for (auto& x : c.q) x = encode_half(r.bulk_small_normal(), dtype);
  c.cache.resize(c.num_blocks * (page * h_kv * c.d_qk + c.block_pad));
  for (auto& x : c.cache) x = poison ? 0x7fc1 : encode_half(r.bulk_small_normal(), dtype);
  if (poison) {  // fill only what is attended
    for (int64_t i = 0; i < b; ++i) {
      for (int64_t t = 0; t < c.seqlens[i]; ++t) {
        const int64_t blk = c.block_table[i * c.max_blocks + t / page];
        for (int64_t g = 0; g < h_kv; ++g) {
          for (int64_t d = 0; d < c.d_qk; ++d) c.cache[c.k_off(blk, t % page, g) + d] = encode_half(r.bulk_small_normal(), dtype);
        }
      }
    }
  }
  return c;
}

/// Re-lays the case out with padded strides (q rows padded by q_pad, blocks by block_pad); values are unchanged.
inline void pad_strides(DenseCase& c, int64_t q_pad, int64_t block_pad) {
  DenseCase old = c;
  c.q_pad = q_pad, c.block_pad = block_pad;
  c.q.assign(c.b * c.s_q * c.h_q * (c.d_qk + q_pad), 0x7fc1);
  for (int64_t i = 0; i < c.b; ++i)
    for (int64_t s = 0; s < c.s_q; ++s)
      for (int64_t h = 0; h < c.h_q; ++h)
        std::copy_n(&old.q[old.q_off(i, s, h)], c.d_qk, &c.q[c.q_off(i, s, h)]);
  c.cache.assign(c.num_blocks * (c.page * c.h_kv * c.d_qk + block_pad), 0x7fc1);
  for (int64_t blk = 0; blk < c.num_blocks; ++blk)
    for (int64_t t = 0; t < c.page; ++t)
      for (int64_t g = 0; g < c.h_kv; ++g) std::copy_n(&old.cache[old.k_off(blk, t, g)], c.d_qk, &c.cache[c.k_off(blk, t, g)]);
}

struct Expected {
  std::vector<double> out, lse, max_logits;
};

/// Naive float64 dense decode straight from the definition: gather each request's keys, mask with
/// tril(ones(s_q, s_k), diagonal = s_k - s_q) when causal and s_q > 1, softmax, P.V.
inline Expected brute_dense(const DenseCase& c) {
  Expected e;
  e.out.assign(c.b * c.s_q * c.h_q * c.d_v, 0);
  e.lse.assign(c.b * c.h_q * c.s_q, 0);
  const int64_t hpg = c.h_q / c.h_kv;
  for (int64_t i = 0; i < c.b; ++i) {
    const int64_t s_k = c.seqlens[i];
    for (int64_t s = 0; s < c.s_q; ++s) {
      for (int64_t h = 0; h < c.h_q; ++h) {
        const int64_t g = h / hpg;
        std::vector<double> logit;
        std::vector<const uint16_t*> rows;
        for (int64_t t = 0; t < s_k; ++t) {
          if (c.causal && c.s_q > 1 && t > s_k - c.s_q + s) continue;
          const uint16_t* k = &c.cache[c.k_off(c.block_table[i * c.max_blocks + t / c.page], t % c.page, g)];
          double acc = 0;
          for (int64_t d = 0; d < c.d_qk; ++d) acc += decode_half(c.q[c.q_off(i, s, h) + d], c.dtype) * decode_half(k[d], c.dtype);
          logit.push_back(acc * c.scale);
          rows.push_back(k);
        }
        double* o = &e.out[((i * c.s_q + s) * c.h_q + h) * c.d_v];
        double& lse = e.lse[(i * c.h_q + h) * c.s_q + s];
        if (logit.empty()) {
          lse = kInf;
          continue;
        }
        const double m = *std::max_element(logit.begin(), logit.end());
        double sum = 0;
        for (double l : logit) sum += std::exp(l - m);
        lse = m + std::log(sum);
        for (size_t k = 0; k < rows.size(); ++k) {
          const double pr = std::exp(logit[k] - lse);
          for (int64_t d = 0; d < c.d_v; ++d) o[d] += pr * decode_half(rows[k][d], c.dtype);
        }
      }
    }
  }
  return e;
}

inline std::vector<double> widen(const std::vector<uint16_t>& v, DType t) {
  std::vector<double> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = decode_half(v[i], t);
  return r;
}
inline std::vector<double> widen(const std::vector<float>& v) { return {v.begin(), v.end()}; }

}  // namespace flashmla::test
