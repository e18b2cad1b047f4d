// Split-KV partials merged by combine equal the unsplit reference, for random split points (empty splits included).
#include "tests/cpu/sparse_cases.h"

namespace flashmla::test {
namespace {

struct SplitRun {
  ref::SplitKvPartials part;
  std::vector<float> o, l;
};

SplitRun random_partials(Rng& r, DenseCase& c, std::vector<std::vector<int32_t>>& bounds) {
  SplitRun s;
  s.part.split_offsets = {0};
  bounds.clear();
  for (int64_t i = 0; i < c.b; ++i) {
    std::vector<int32_t> v = {0, c.seqlens[i]};
    const int64_t n = r.integer(0, 4);
    for (int64_t k = 0; k < n; ++k) v.push_back(static_cast<int32_t>(r.integer(0, c.seqlens[i])));
    std::sort(v.begin(), v.end());  // duplicates make empty splits on purpose
    bounds.push_back(v);
    s.part.split_offsets.push_back(s.part.split_offsets.back() + static_cast<int32_t>(v.size() - 1));
  }
  const int64_t total = s.part.split_offsets.back();
  s.o.assign(total * c.s_q * c.h_q * c.d_v, NAN);
  s.l.assign(total * c.s_q * c.h_q, NAN);
  s.part.o_accum = TensorView::contiguous(s.o.data(), DType::kFloat32, {total, c.s_q, c.h_q, c.d_v});
  s.part.lse_accum = TensorView::contiguous(s.l.data(), DType::kFloat32, {total, c.s_q, c.h_q});
  return s;
}

TEST(SplitCombine, EqualsUnsplitReference) {
  for (int seed = 0; seed < 4; ++seed) {
    Rng r(100 + seed);
    DenseCase c = make_dense_case(r, 4, 1 + seed % 3, 6, 2, 16, 60, true, seed % 2, DType::kBFloat16, true, 3);
    std::vector<std::vector<int32_t>> bounds;
    SplitRun s = random_partials(r, c, bounds);
    DenseDecodeParams p = c.params();
    ref::dense_decode_partials(p, bounds, s.part, {ref::Accum::kFloat64});
    std::vector<uint16_t> out(c.out.size(), 0x7fc1);
    std::vector<float> lse(c.lse.size(), NAN);
    ref::combine(s.part, {}, TensorView::contiguous(out.data(), DType::kBFloat16, {c.b, c.s_q, c.h_q, c.d_v}),
                 TensorView::contiguous(lse.data(), DType::kFloat32, {c.b, c.h_q, c.s_q}));
    const Expected e = brute_dense(c);
    EXPECT_TRUE(all_close(widen(out, DType::kBFloat16), e.out, {1e-30, std::ldexp(1.0, -8) * 1.01, 5e-6})) << seed;
    EXPECT_TRUE(all_close(widen(lse), e.lse, {1e-30, std::ldexp(1.0, -22), 1e-12})) << seed;
  }
}

TEST(SplitCombine, PartialsUseBase2LseAndEmptySplitsAreMinusInf) {
  Rng r(7);
  DenseCase c = make_dense_case(r, 1, 1, 2, 1, 16, 40, false, false, DType::kBFloat16);
  std::vector<std::vector<int32_t>> bounds = {{0, 0, 40}};
  SplitRun s;
  s.part.split_offsets = {0, 2};
  s.o.assign(2 * 2 * 512, NAN);
  s.l.assign(2 * 2, NAN);
  s.part.o_accum = TensorView::contiguous(s.o.data(), DType::kFloat32, {2, 1, 2, 512});
  s.part.lse_accum = TensorView::contiguous(s.l.data(), DType::kFloat32, {2, 1, 2});
  ref::dense_decode_partials(c.params(), bounds, s.part, {ref::Accum::kFloat64});
  EXPECT_TRUE(std::isinf(s.l[0]) && s.l[0] < 0);
  EXPECT_TRUE(std::isinf(s.l[1]) && s.l[1] < 0);
  const Expected e = brute_dense(c);
  EXPECT_NEAR(s.l[2], e.lse[0] / std::log(2.0), 1e-5);
  EXPECT_NEAR(s.l[3], e.lse[1] / std::log(2.0), 1e-5);
}

TEST(SplitCombine, SinkIsAppliedInCombine) {
  Rng r(8);
  DenseCase c = make_dense_case(r, 2, 1, 4, 1, 16, 50, true, false, DType::kBFloat16);
  std::vector<std::vector<int32_t>> bounds;
  SplitRun s = random_partials(r, c, bounds);
  ref::dense_decode_partials(c.params(), bounds, s.part, {ref::Accum::kFloat64});
  std::vector<float> sink = {INFINITY, -INFINITY, 0.5f, -2.0f};
  std::vector<float> out(c.out.size()), lse(c.lse.size()), out0(c.out.size()), lse0(c.lse.size());
  const TensorView sink_v = TensorView::contiguous(sink.data(), DType::kFloat32, {4});
  ref::combine(s.part, sink_v, TensorView::contiguous(out.data(), DType::kFloat32, {c.b, 1, 4, 512}),
               TensorView::contiguous(lse.data(), DType::kFloat32, {c.b, 4, 1}));
  ref::combine(s.part, {}, TensorView::contiguous(out0.data(), DType::kFloat32, {c.b, 1, 4, 512}),
               TensorView::contiguous(lse0.data(), DType::kFloat32, {c.b, 4, 1}));
  EXPECT_EQ(lse, lse0);  // the sink never changes lse
  for (int64_t i = 0; i < c.b; ++i) {
    for (int64_t h = 0; h < 4; ++h) {
      const double f = 1.0 / (1.0 + std::exp(static_cast<double>(sink[h]) - lse0[i * 4 + h]));
      for (int64_t d = 0; d < 512; ++d) {
        const size_t k = (i * 4 + h) * 512 + d;
        EXPECT_NEAR(out[k], out0[k] * f, 1e-6 * std::fabs(out0[k]) + 1e-12);
      }
    }
  }
}

}  // namespace
}  // namespace flashmla::test
