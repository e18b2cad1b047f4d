// CPU reference of dense decode over a paged KV cache, and of its split-KV partials.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "flashmla/reference.h"
#include "flashmla/validate.h"
#include "reference/access.h"
#include "reference/attention_core.h"
#include "reference/parallel.h"

namespace flashmla::ref {
namespace {

// Query rows (s, h) of one (request, KV head) per task: small enough to keep every core busy on a single request,
// large enough that gathering the keys (one pass over the request's cache) stays a small part of a task.
constexpr int64_t kRowsPerTask = 4;

// Checks what validate() cannot: lengths within the block table and the block ids they use within the cache.
void check_contents(const DenseDecodeParams& p) {
  const int64_t b = p.q.shape[0], P = p.k_cache.shape[1], num_blocks = p.k_cache.shape[0];
  const int64_t max_blocks = p.block_table.shape[1];
  for (int64_t i = 0; i < b; ++i) {
    const int64_t len = load_i32(p.cache_seqlens, offset_of(p.cache_seqlens, i));
    const std::string at = "[" + std::to_string(i) + "]";
    if (len < 0) detail::fail("cache_seqlens" + at + " = " + std::to_string(len) + " is negative");
    if (len > max_blocks * P) {
      detail::fail("cache_seqlens" + at + " = " + std::to_string(len) + " exceeds what block_table holds (" +
                   std::to_string(max_blocks) + " blocks x page_block_size " + std::to_string(P) + " = " +
                   std::to_string(max_blocks * P) + ")");
    }
    for (int64_t j = 0; j < (len + P - 1) / P; ++j) {
      const int64_t blk = load_i32(p.block_table, offset_of(p.block_table, i, j));
      if (blk < 0 || blk >= num_blocks) {
        detail::fail("block_table" + at + "[" + std::to_string(j) + "] = " + std::to_string(blk) +
                     " is not a block of k_cache (num_blocks = " + std::to_string(num_blocks) + ")");
      }
    }
  }
}

// Keys of request i, KV head g, tokens [0, n), widened to Acc (row-major, d_qk per row).
template <typename Acc>
void gather_keys(const DenseDecodeParams& p, int64_t i, int64_t g, int64_t n, std::vector<Acc>& keys) {
  const int64_t P = p.k_cache.shape[1], d_qk = p.k_cache.shape[3];
  keys.resize(n * d_qk);
  for (int64_t t = 0; t < n; ++t) {
    const int64_t blk = load_i32(p.block_table, offset_of(p.block_table, i, t / P));
    const int64_t base = offset_of(p.k_cache, blk, t % P, g, 0);
    for (int64_t d = 0; d < d_qk; ++d) keys[t * d_qk + d] = load_float(p.k_cache, base + d * p.k_cache.stride[3]);
  }
}

// Number of keys row s of a request with s_k keys may see.
int64_t visible_keys(const DenseDecodeParams& p, int64_t s, int64_t s_k) {
  const int64_t s_q = p.q.shape[1];
  if (!p.causal || s_q == 1) return s_k;
  return std::clamp<int64_t>(s_k - s_q + s + 1, 0, s_k);
}

// Calls row_fn(i, s, h, q_row, keys, visible) for every query row, parallel over (request, KV head, row chunk).
template <typename Acc, typename RowFn>
void for_each_row(const DenseDecodeParams& p, const Options& opt, RowFn&& row_fn) {
  const int64_t b = p.q.shape[0], s_q = p.q.shape[1], h_q = p.q.shape[2], d_qk = p.q.shape[3];
  const int64_t h_kv = p.k_cache.shape[2], hpg = h_q / h_kv;
  const int64_t rows = s_q * hpg, chunks = (rows + kRowsPerTask - 1) / kRowsPerTask;
  parallel_for(b * h_kv * chunks, opt.num_threads, [&](int64_t task) {
    const int64_t i = task / (h_kv * chunks), g = (task / chunks) % h_kv, c = task % chunks;
    const int64_t s_k = load_i32(p.cache_seqlens, offset_of(p.cache_seqlens, i));
    std::vector<Acc> keys, q(d_qk);
    gather_keys<Acc>(p, i, g, s_k, keys);
    for (int64_t row = c * kRowsPerTask; row < std::min(rows, (c + 1) * kRowsPerTask); ++row) {
      const int64_t s = row / hpg, h = g * hpg + row % hpg;
      const int64_t qo = offset_of(p.q, i, s, h, 0);
      for (int64_t d = 0; d < d_qk; ++d) q[d] = load_float(p.q, qo + d * p.q.stride[3]);
      row_fn(i, s, h, q.data(), keys, visible_keys(p, s, s_k));
    }
  });
}

template <typename Acc>
void run_dense(const DenseDecodeParams& p, const Options& opt) {
  const int64_t d_qk = p.q.shape[3];
  const int d_v = p.d_v;
  for_each_row<Acc>(p, opt, [&](int64_t i, int64_t s, int64_t h, const Acc* q, const std::vector<Acc>& keys,
                                int64_t visible) {
    thread_local std::vector<Acc> logits, o;
    o.resize(d_v);
    const RowState<Acc> st = attend<Acc>(q, keys.data(), 0, visible, d_qk, d_v, Acc(p.softmax_scale), logits, o.data());
    const int64_t oo = offset_of(p.out, i, s, h, 0);
    for (int j = 0; j < d_v; ++j) store_float(p.out, oo + j * p.out.stride[3], st.empty() ? Acc(0) : o[j] / st.l);
    store_float(p.lse, offset_of(p.lse, i, h, s),
                st.empty() ? std::numeric_limits<double>::infinity() : static_cast<double>(st.lse()));
  });
}

void check_partials(const DenseDecodeParams& p, const std::vector<std::vector<int32_t>>& bounds,
                    const SplitKvPartials& part) {
  const int64_t b = p.q.shape[0], s_q = p.q.shape[1], h_q = p.q.shape[2];
  if (static_cast<int64_t>(bounds.size()) != b) {
    detail::fail("split_bounds: expected one list per request (" + std::to_string(b) + "), got " +
                 std::to_string(bounds.size()));
  }
  if (static_cast<int64_t>(part.split_offsets.size()) != b + 1 || part.split_offsets[0] != 0) {
    detail::fail("split_offsets: expected b + 1 = " + std::to_string(b + 1) + " prefix sums starting at 0");
  }
  for (int64_t i = 0; i < b; ++i) {
    const auto& v = bounds[i];
    const int64_t len = load_i32(p.cache_seqlens, offset_of(p.cache_seqlens, i));
    const std::string at = "split_bounds[" + std::to_string(i) + "]";
    if (v.size() < 2 || v.front() != 0 || v.back() != len || !std::is_sorted(v.begin(), v.end())) {
      detail::fail(at + ": expected non-decreasing boundaries from 0 to cache_seqlens = " + std::to_string(len));
    }
    if (part.split_offsets[i + 1] - part.split_offsets[i] != static_cast<int32_t>(v.size() - 1)) {
      detail::fail("split_offsets: request " + std::to_string(i) + " owns " +
                   std::to_string(part.split_offsets[i + 1] - part.split_offsets[i]) + " slots but has " +
                   std::to_string(v.size() - 1) + " splits");
    }
  }
  const int64_t total = part.split_offsets[b];
  detail::expect_shape(part.o_accum, "o_accum", {{"total_splits", total}, {"s_q", s_q}, {"h_q", h_q}, {"d_v", p.d_v}});
  detail::expect_dtype(part.o_accum, "o_accum", {DType::kFloat32});
  detail::expect_shape(part.lse_accum, "lse_accum", {{"total_splits", total}, {"s_q", s_q}, {"h_q", h_q}});
  detail::expect_dtype(part.lse_accum, "lse_accum", {DType::kFloat32});
  expect_host(part.o_accum, "o_accum");
  expect_host(part.lse_accum, "lse_accum");
}

template <typename Acc>
void run_partials(const DenseDecodeParams& p, const std::vector<std::vector<int32_t>>& bounds,
                  const SplitKvPartials& part, const Options& opt) {
  const int64_t d_qk = p.q.shape[3];
  const int d_v = p.d_v;
  for_each_row<Acc>(p, opt, [&](int64_t i, int64_t s, int64_t h, const Acc* q, const std::vector<Acc>& keys,
                                int64_t visible) {
    thread_local std::vector<Acc> logits, o;
    o.resize(d_v);
    const auto& v = bounds[i];
    for (size_t k = 0; k + 1 < v.size(); ++k) {
      const int64_t slot = part.split_offsets[i] + static_cast<int64_t>(k);
      const int64_t lo = v[k], hi = std::min<int64_t>(v[k + 1], visible);
      const RowState<Acc> st = attend<Acc>(q, keys.data(), lo, hi, d_qk, d_v, Acc(p.softmax_scale), logits, o.data());
      const int64_t oo = offset_of(part.o_accum, slot, s, h, 0);
      for (int j = 0; j < d_v; ++j) {
        store_float(part.o_accum, oo + j * part.o_accum.stride[3], st.empty() ? Acc(0) : o[j] / st.l);
      }
      store_float(part.lse_accum, offset_of(part.lse_accum, slot, s, h),
                  st.empty() ? -std::numeric_limits<double>::infinity()
                             : static_cast<double>(st.lse() * Acc(1.4426950408889634)));
    }
  });
}

void check_host(const DenseDecodeParams& p) {
  expect_host(p.q, "q");
  expect_host(p.k_cache, "k_cache");
  expect_host(p.block_table, "block_table");
  expect_host(p.cache_seqlens, "cache_seqlens");
  expect_host(p.out, "out");
  expect_host(p.lse, "lse");
}

}  // namespace

void dense_decode(const DenseDecodeParams& p, const Options& opt) {
  validate(p);
  check_host(p);
  check_contents(p);
  if (opt.accum == Accum::kFloat64) {
    run_dense<double>(p, opt);
  } else {
    run_dense<float>(p, opt);
  }
}

void dense_decode_partials(const DenseDecodeParams& p, const std::vector<std::vector<int32_t>>& split_bounds,
                           SplitKvPartials& partials, const Options& opt) {
  validate(p);
  check_host(p);
  check_contents(p);
  check_partials(p, split_bounds, partials);
  if (opt.accum == Accum::kFloat64) {
    run_partials<double>(p, split_bounds, partials, opt);
  } else {
    run_partials<float>(p, split_bounds, partials, opt);
  }
}

}  // namespace flashmla::ref
