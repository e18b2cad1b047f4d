// The reference (float32 and float64 modes) against the naive float64 brute force on random shapes.
#include "tests/cpu/sparse_cases.h"

namespace flashmla::test {
namespace {

// float64 mode: the only differences left are the final roundings (output dtype, float32 lse).
constexpr Tol kBf16Exact{1e-30, std::ldexp(1.0, -8) * 1.01, 5e-6};  // cos: bf16 rounding noise is ~1.3e-6
// fp16 outputs below 2^-14 are subnormal: there the rounding error is absolute, half of 2^-24.
constexpr Tol kFp16Exact{std::ldexp(1.0, -25) * 1.01, std::ldexp(1.0, -11) * 1.01, 1e-7};
constexpr Tol kF32Exact{1e-30, std::ldexp(1.0, -23), 1e-12};

struct DenseShape {
  int64_t b, s_q, h_q, h_kv, page, s_k;
  bool varlen, causal;
  DType dtype;
};

// Keeps ctest names short (gtest would print the struct's bytes).
void PrintTo(const DenseShape& s, std::ostream* os) { *os << "b" << s.b << "_sq" << s.s_q << "_hq" << s.h_q; }

class DenseVsBruteForce : public ::testing::TestWithParam<DenseShape> {};

TEST_P(DenseVsBruteForce, BothPrecisions) {
  const DenseShape s = GetParam();
  Rng r(1000 + s.b * 7 + s.s_q * 13 + s.h_q * 17 + s.page);
  DenseCase c = make_dense_case(r, s.b, s.s_q, s.h_q, s.h_kv, s.page, s.s_k, s.varlen, s.causal, s.dtype);
  const Expected e = brute_dense(c);
  for (ref::Accum acc : {ref::Accum::kFloat64, ref::Accum::kFloat32}) {
    ref::dense_decode(c.params(), {acc});
    const bool f64 = acc == ref::Accum::kFloat64;
    EXPECT_TRUE(all_close(widen(c.out, c.dtype), e.out, f64 ? (s.dtype == DType::kFloat16 ? kFp16Exact : kBf16Exact) : kDenseOutTol))
        << (f64 ? "float64" : "float32");
    EXPECT_TRUE(all_close(widen(c.lse), e.lse, f64 ? kF32Exact : kDenseLseTol)) << (f64 ? "float64" : "float32");
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, DenseVsBruteForce,
    ::testing::Values(DenseShape{1, 1, 16, 1, 64, 200, false, false, DType::kBFloat16},
                      DenseShape{2, 2, 8, 2, 64, 90, true, true, DType::kBFloat16},
                      DenseShape{3, 4, 9, 3, 16, 70, true, true, DType::kFloat16},
                      DenseShape{2, 1, 3, 1, 1, 33, true, false, DType::kBFloat16},
                      DenseShape{2, 3, 4, 4, 7, 50, false, true, DType::kFloat16},
                      DenseShape{1, 2, 1, 1, 256, 300, false, true, DType::kBFloat16}),
    [](const auto& info) {
      const DenseShape& s = info.param;
      return "b" + std::to_string(s.b) + "_sq" + std::to_string(s.s_q) + "_hq" + std::to_string(s.h_q) + "_hkv" +
             std::to_string(s.h_kv) + "_page" + std::to_string(s.page) + "_sk" + std::to_string(s.s_k) +
             (s.varlen ? "_varlen" : "") + (s.causal ? "_causal" : "") + (s.dtype == DType::kFloat16 ? "_fp16" : "_bf16");
    });

TEST(SparseDecodeVsBruteForce, V32) {
  Rng r(2001);
  SparseDecodeCase c = make_sparse_decode_case(r, KvCacheFormat::kV32, 2, 2, 8, 64, 300, 64, {.sink = true});
  const Expected e = brute_sparse_decode(c);
  ref::sparse_decode(c.params(), {ref::Accum::kFloat64});
  EXPECT_TRUE(all_close(widen(c.out, DType::kBFloat16), e.out, kBf16Exact));
  EXPECT_TRUE(all_close(widen(c.lse), e.lse, kF32Exact));
  ref::sparse_decode(c.params(), {ref::Accum::kFloat32});
  EXPECT_TRUE(all_close(widen(c.out, DType::kBFloat16), e.out, kSparseOutTol));
  EXPECT_TRUE(all_close(widen(c.lse), e.lse, kDenseLseTol));
}

TEST(SparseDecodeVsBruteForce, Model1WithExtraCacheAndLengths) {
  Rng r(2002);
  SparseDecodeCase c = make_sparse_decode_case(
      r, KvCacheFormat::kModel1, 3, 1, 4, 128, 200, 2,
      {.extra = true, .topk_length = true, .extra_topk_length = true, .sink = true}, 64, 5);
  const Expected e = brute_sparse_decode(c);
  ref::sparse_decode(c.params(), {ref::Accum::kFloat64});
  EXPECT_TRUE(all_close(widen(c.out, DType::kBFloat16), e.out, kBf16Exact));
  EXPECT_TRUE(all_close(widen(c.lse), e.lse, kF32Exact));
  ref::sparse_decode(c.params(), {ref::Accum::kFloat32});
  EXPECT_TRUE(all_close(widen(c.out, DType::kBFloat16), e.out, kSparseOutTol));
  EXPECT_TRUE(all_close(widen(c.lse), e.lse, kDenseLseTol));
}

TEST(SparsePrefillVsBruteForce, BothHeadDims) {
  for (int64_t d_qk : {576, 512}) {
    Rng r(3000 + d_qk);
    SparsePrefillCase c = make_sparse_prefill_case(r, 5, 16, d_qk, 150, 128, true, true);
    const Expected e = brute_sparse_prefill(c);
    ref::sparse_prefill(c.params(), {ref::Accum::kFloat64});
    EXPECT_TRUE(all_close(widen(c.out, DType::kBFloat16), e.out, kBf16Exact)) << d_qk;
    EXPECT_TRUE(all_close(widen(c.lse), e.lse, kF32Exact)) << d_qk;
    EXPECT_TRUE(all_close(widen(c.max_logits), e.max_logits, kF32Exact)) << d_qk;
    ref::sparse_prefill(c.params(), {ref::Accum::kFloat32});
    EXPECT_TRUE(all_close(widen(c.out, DType::kBFloat16), e.out, kPrefillOutTol)) << d_qk;
    EXPECT_TRUE(all_close(widen(c.lse), e.lse, kPrefillLseTol)) << d_qk;
    EXPECT_TRUE(all_close(widen(c.max_logits), e.max_logits, kPrefillLseTol)) << d_qk;
  }
}

}  // namespace
}  // namespace flashmla::test
