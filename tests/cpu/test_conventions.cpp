// The conventions at the edges: empty rows give out = 0 and lse = +inf (prefill max_logits = -inf); the sink only
// scales out.
#include "tests/cpu/sparse_cases.h"

namespace flashmla::test {
namespace {

bool all_zero(const std::vector<uint16_t>& v, size_t begin, size_t n) {
  for (size_t i = begin; i < begin + n; ++i) {
    if (decode_bf16(v[i]) != 0.0) return false;
  }
  return true;
}

TEST(Conventions, ZeroLengthRequestGivesZeroOutAndInfLse) {
  Rng r(1);
  DenseCase c = make_dense_case(r, 4, 2, 8, 1, 64, 100, false, true, DType::kBFloat16, true, /*zero_len_every=*/2);
  ASSERT_EQ(c.seqlens[0], 0);
  ASSERT_EQ(c.seqlens[2], 0);
  ref::dense_decode(c.params());
  const int64_t row = c.s_q * c.h_q * c.d_v;
  for (int64_t i = 0; i < c.b; ++i) {
    const bool empty = c.seqlens[i] == 0;
    EXPECT_EQ(all_zero(c.out, i * row, row), empty) << i;
    for (int64_t k = 0; k < c.h_q * c.s_q; ++k) {
      EXPECT_EQ(std::isinf(c.lse[i * c.h_q * c.s_q + k]) && c.lse[i * c.h_q * c.s_q + k] > 0, empty) << i;
    }
  }
}

TEST(Conventions, CausalRowsBeforeTheCacheSeeNothing) {
  // s_k = 2 < s_q = 5: query j sees keys [0, s_k - s_q + j], so rows 0..2 see nothing, row 3 one key, row 4 two.
  Rng r(2);
  DenseCase c = make_dense_case(r, 1, 5, 4, 1, 64, 2, false, true, DType::kBFloat16);
  ref::dense_decode(c.params());
  const Expected e = brute_dense(c);
  for (int64_t s = 0; s < 5; ++s) {
    for (int64_t h = 0; h < c.h_q; ++h) {
      const double lse = c.lse[h * c.s_q + s];
      if (s < 3) {
        EXPECT_TRUE(std::isinf(lse) && lse > 0) << s;
        EXPECT_TRUE(all_zero(c.out, (s * c.h_q + h) * c.d_v, c.d_v)) << s;
      } else {
        EXPECT_TRUE(std::isfinite(lse)) << s;
      }
    }
  }
  EXPECT_TRUE(all_close(widen(c.out, c.dtype), e.out, kDenseOutTol));
  EXPECT_TRUE(all_close(widen(c.lse), e.lse, kDenseLseTol));
  // With one key, row 3's output is exactly that key's V (softmax weight 1).
  const int64_t blk = c.block_table[0];
  for (int64_t d = 0; d < c.d_v; ++d) EXPECT_EQ(c.out[(3 * c.h_q) * c.d_v + d], c.cache[c.k_off(blk, 0, 0) + d]);
}

TEST(Conventions, AllInvalidIndicesSparseDecode) {
  Rng r(3);
  for (KvCacheFormat f : {KvCacheFormat::kV32, KvCacheFormat::kModel1}) {
    SparseDecodeCase c = make_sparse_decode_case(r, f, 2, 2, 4, 64, 100, 64, {.sink = true, .invalid_row_every = 1});
    ref::sparse_decode(c.params());
    EXPECT_TRUE(all_zero(c.out, 0, c.out.size()));
    for (float l : c.lse) EXPECT_TRUE(std::isinf(l) && l > 0);
  }
}

TEST(Conventions, AllInvalidIndicesSparsePrefill) {
  Rng r(4);
  SparsePrefillCase c = make_sparse_prefill_case(r, 3, 8, 576, 64, 128, true, false, true, /*invalid_row_every=*/1);
  ref::sparse_prefill(c.params());
  EXPECT_TRUE(all_zero(c.out, 0, c.out.size()));
  for (float l : c.lse) EXPECT_TRUE(std::isinf(l) && l > 0);
  for (float m : c.max_logits) EXPECT_TRUE(std::isinf(m) && m < 0);
}

TEST(Conventions, TopkLengthZeroAttendsNothing) {
  Rng r(5);
  SparseDecodeCase c = make_sparse_decode_case(r, KvCacheFormat::kModel1, 2, 1, 4, 64, 100, 64, {.topk_length = true});
  std::fill(c.topk_length.begin(), c.topk_length.end(), 0);
  ref::sparse_decode(c.params());
  EXPECT_TRUE(all_zero(c.out, 0, c.out.size()));
  for (float l : c.lse) EXPECT_TRUE(std::isinf(l) && l > 0);

  SparsePrefillCase pc = make_sparse_prefill_case(r, 2, 8, 512, 100, 128, false, true);
  std::fill(pc.topk_length.begin(), pc.topk_length.end(), 0);
  ref::sparse_prefill(pc.params());
  EXPECT_TRUE(all_zero(pc.out, 0, pc.out.size()));
  for (float m : pc.max_logits) EXPECT_TRUE(std::isinf(m) && m < 0);
}

TEST(Conventions, SinkPlusInfZeroesOutButKeepsLse) {
  Rng r(6);
  SparseDecodeCase c = make_sparse_decode_case(r, KvCacheFormat::kV32, 2, 2, 4, 64, 200, 64, {.sink = false});
  ref::sparse_decode(c.params());
  const std::vector<float> lse_no_sink = c.lse;
  c.has_sink = true;
  std::fill(c.sink.begin(), c.sink.end(), INFINITY);
  ref::sparse_decode(c.params());
  EXPECT_TRUE(all_zero(c.out, 0, c.out.size()));
  EXPECT_EQ(c.lse, lse_no_sink);
  for (float l : c.lse) EXPECT_TRUE(std::isfinite(l));
}

TEST(Conventions, SinkMinusInfHasNoEffect) {
  Rng r(7);
  SparsePrefillCase c = make_sparse_prefill_case(r, 4, 8, 576, 300, 128, false, false);
  ref::sparse_prefill(c.params());
  const std::vector<uint16_t> out = c.out;
  const std::vector<float> lse = c.lse;
  c.has_sink = true;
  std::fill(c.sink.begin(), c.sink.end(), -INFINITY);
  ref::sparse_prefill(c.params());
  EXPECT_EQ(c.out, out);
  EXPECT_EQ(c.lse, lse);
}

TEST(Conventions, FiniteSinkScalesOutputOnly) {
  // out_with_sink = out * 1 / (1 + exp(sink - lse)); lse unchanged.
  Rng r(8);
  SparseDecodeCase c = make_sparse_decode_case(r, KvCacheFormat::kModel1, 1, 1, 2, 64, 100, 64, {});
  ref::sparse_decode(c.params(), {ref::Accum::kFloat64});
  const std::vector<uint16_t> out = c.out;
  const std::vector<float> lse = c.lse;
  c.has_sink = true;
  c.sink = {lse[0], lse[1] + 1.0f};
  ref::sparse_decode(c.params(), {ref::Accum::kFloat64});
  EXPECT_EQ(c.lse, lse);
  for (int64_t h = 0; h < 2; ++h) {
    const double factor = 1.0 / (1.0 + std::exp(static_cast<double>(c.sink[h]) - lse[h]));
    for (int64_t d = 0; d < 512; ++d) {
      const double want = decode_bf16(out[h * 512 + d]) * factor, got = decode_bf16(c.out[h * 512 + d]);
      EXPECT_NEAR(got, want, std::fabs(want) * 0.008 + 1e-6) << h << " " << d;
    }
  }
}

}  // namespace
}  // namespace flashmla::test
