// CPU reference of the split-KV combine (spec section 4.5), computed in float64.
#include <cmath>
#include <limits>
#include <string>

#include "flashmla/reference.h"
#include "reference/access.h"
#include "reference/parallel.h"

namespace flashmla::ref {

void combine(const SplitKvPartials& part, const TensorView& attn_sink, const TensorView& out, const TensorView& lse) {
  detail::expect_shape(out, "out", {{"b", -1}, {"s_q", -1}, {"h_q", -1}, {"d_v", -1}});
  detail::expect_dtype(out, "out", {DType::kBFloat16, DType::kFloat16, DType::kFloat32});
  const int64_t b = out.shape[0], s_q = out.shape[1], h_q = out.shape[2], d_v = out.shape[3];
  detail::expect_shape(lse, "lse", {{"b", b}, {"h_q", h_q}, {"s_q", s_q}});
  detail::expect_dtype(lse, "lse", {DType::kFloat32});
  if (static_cast<int64_t>(part.split_offsets.size()) != b + 1) {
    detail::fail("split_offsets: expected b + 1 = " + std::to_string(b + 1) + " entries, got " +
                 std::to_string(part.split_offsets.size()));
  }
  const int64_t total = part.split_offsets[b];
  detail::expect_shape(part.o_accum, "o_accum", {{"total_splits", total}, {"s_q", s_q}, {"h_q", h_q}, {"d_v", d_v}});
  detail::expect_shape(part.lse_accum, "lse_accum", {{"total_splits", total}, {"s_q", s_q}, {"h_q", h_q}});
  if (attn_sink.present()) {
    detail::expect_shape(attn_sink, "attn_sink", {{"h_q", h_q}});
    detail::expect_dtype(attn_sink, "attn_sink", {DType::kFloat32});
  }
  for (auto [t, name] : {std::pair{&part.o_accum, "o_accum"}, {&part.lse_accum, "lse_accum"},
                         {&attn_sink, "attn_sink"}, {&out, "out"}, {&lse, "lse"}}) {
    expect_host(*t, name);
  }
  for (int64_t i = 0; i < b; ++i) {
    if (part.split_offsets[i + 1] < part.split_offsets[i]) detail::fail("split_offsets: must be non-decreasing");
  }

  constexpr double kInf = std::numeric_limits<double>::infinity();
  parallel_for(b * s_q, 0, [&](int64_t row) {
    const int64_t i = row / s_q, s = row % s_q;
    const int64_t k0 = part.split_offsets[i], k1 = part.split_offsets[i + 1];
    for (int64_t h = 0; h < h_q; ++h) {
      // All in base 2, as the partials are: M = max lse_k, S = sum 2^(lse_k - M), G = log2(S) + M.
      double M = -kInf;
      for (int64_t k = k0; k < k1; ++k) M = std::max<double>(M, load_float(part.lse_accum, offset_of(part.lse_accum, k, s, h)));
      double S = 0;
      if (M > -kInf) {
        for (int64_t k = k0; k < k1; ++k) S += std::exp2(load_float(part.lse_accum, offset_of(part.lse_accum, k, s, h)) - M);
      }
      const int64_t oo = offset_of(out, i, s, h, 0);
      if (!(S > 0)) {  // every split empty: nothing attended
        for (int64_t j = 0; j < d_v; ++j) store_float(out, oo + j * out.stride[3], 0.0);
        store_float(lse, offset_of(lse, i, h, s), kInf);
        continue;
      }
      const double G = std::log2(S) + M;
      const double lse_nat = G / std::log2(std::exp(1.0));
      store_float(lse, offset_of(lse, i, h, s), lse_nat);
      double factor = 1.0;
      if (attn_sink.present()) factor = 1.0 / (1.0 + std::exp(double(attn_sink.ptr<const float>()[h]) - lse_nat));
      for (int64_t j = 0; j < d_v; ++j) {
        double acc = 0;
        for (int64_t k = k0; k < k1; ++k) {
          const double w = std::exp2(load_float(part.lse_accum, offset_of(part.lse_accum, k, s, h)) - G);
          if (w > 0) acc += w * load_float(part.o_accum, offset_of(part.o_accum, k, s, h, j));
        }
        store_float(out, oo + j * out.stride[3], acc * factor);
      }
    }
  });
}

}  // namespace flashmla::ref
