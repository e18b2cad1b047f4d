// NaN in every cache slot that is not attended (and 2147480000 in unused block_table entries, garbage past
// topk_length) must never reach an output: results equal a run on clean data.
#include "tests/cpu/sparse_cases.h"

namespace flashmla::test {
namespace {

bool any_nan(const std::vector<double>& v) {
  return std::any_of(v.begin(), v.end(), [](double x) { return std::isnan(x); });
}

TEST(NaNPoison, DenseDecodeIgnoresUnusedSlotsAndBlockTableTail) {
  for (bool causal : {false, true}) {
    Rng r(50 + causal);
    DenseCase poisoned = make_dense_case(r, 3, 2, 8, 2, 16, 40, true, causal, DType::kBFloat16, /*poison=*/true);
    DenseCase clean = poisoned;
    Rng fill(99);
    for (auto& x : clean.cache) {
      if (std::isnan(decode_bf16(x))) x = float_to_bf16(small_normal(fill));
    }
    for (auto& x : clean.block_table) {
      if (x == kUnusedBlock) x = 0;
    }
    ASSERT_NE(poisoned.cache, clean.cache);  // the poison is really there
    ref::dense_decode(poisoned.params());
    ref::dense_decode(clean.params());
    EXPECT_FALSE(any_nan(widen(poisoned.out, DType::kBFloat16)));
    EXPECT_FALSE(any_nan(widen(poisoned.lse)));
    EXPECT_EQ(poisoned.out, clean.out);
    EXPECT_EQ(poisoned.lse, clean.lse);
  }
}

TEST(NaNPoison, SparseDecodeIgnoresUnreferencedTokensAndGarbagePastTopkLength) {
  Rng r(60);
  SparseDecodeCase c = make_sparse_decode_case(
      r, KvCacheFormat::kModel1, 2, 2, 4, 64, 300, 16,
      {.extra = true, .topk_length = true, .extra_topk_length = true, .sink = true, .poison = true}, 64, 8);
  // The cache really holds NaN (fp8 NaN and NaN scales) outside the referenced tokens.
  bool has_nan = false;
  for (int64_t t = 0; t < c.cache.num_tokens() && !has_nan; ++t) has_nan = any_nan(c.cache.decode(t));
  ASSERT_TRUE(has_nan);
  ref::sparse_decode(c.params());
  EXPECT_FALSE(any_nan(widen(c.out, DType::kBFloat16)));
  EXPECT_FALSE(any_nan(widen(c.lse)));
  const Expected e = brute_sparse_decode(c);
  EXPECT_TRUE(all_close(widen(c.out, DType::kBFloat16), e.out, kSparseOutTol));
  EXPECT_TRUE(all_close(widen(c.lse), e.lse, kDenseLseTol));
}

TEST(NaNPoison, SparsePrefillIgnoresUnreferencedRows) {
  Rng r(70);
  SparsePrefillCase c = make_sparse_prefill_case(r, 6, 8, 576, 400, 128, true, true, /*poison=*/true);
  ref::sparse_prefill(c.params());
  EXPECT_FALSE(any_nan(widen(c.out, DType::kBFloat16)));
  EXPECT_FALSE(any_nan(widen(c.lse)));
  EXPECT_FALSE(any_nan(widen(c.max_logits)));
  const Expected e = brute_sparse_prefill(c);
  EXPECT_TRUE(all_close(widen(c.out, DType::kBFloat16), e.out, kPrefillOutTol));
}

}  // namespace
}  // namespace flashmla::test
