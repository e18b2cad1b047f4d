// FP8 KV-cache formats: byte layout, round-trip error bound, exactness on representable values, NaN tiles.
#include "tests/cpu/sparse_cases.h"

namespace flashmla::test {
namespace {

class Fp8Format : public ::testing::TestWithParam<KvCacheFormat> {};

// A hand-built token: NoPE value of tile i is 2^i exactly at dim (tile start), RoPE dims = d / 8.
TEST_P(Fp8Format, ByteLayoutMatchesSpec) {
  const KvCacheFormat f = GetParam();
  const Fp8Layout L = fp8_layout(f);
  Rng r(10);
  Fp8Cache c = make_fp8_cache(r, f, 2, 3);
  const int64_t tok = 4;  // block 1, token 1
  uint16_t* x = &c.bf16[tok * L.d_qk];
  for (int d = 0; d < L.d_qk; ++d) x[d] = float_to_bf16(0.0f);
  for (int t = 0; t < L.num_tiles; ++t) x[t * L.tile] = float_to_bf16(448.0f * std::ldexp(1.0f, t));
  x[1] = float_to_bf16(-1.0f);
  for (int d = 0; d < L.d_rope; ++d) x[L.d_nope + d] = float_to_bf16(d / 8.0f);
  quantize(c);
  const uint8_t* blk = c.bytes.data() + 1 * c.block_stride;
  const int64_t t = 1, P = 3;
  const int64_t nope = f == KvCacheFormat::kV32 ? t * 656 : t * 576;
  const int64_t scales = f == KvCacheFormat::kV32 ? t * 656 + 512 : P * 576 + t * 8;
  const int64_t rope = f == KvCacheFormat::kV32 ? t * 656 + 528 : t * 576 + 448;
  for (int tile = 0; tile < L.num_tiles; ++tile) {
    // amax = 448 * 2^tile -> scale 2^tile, and that element encodes as 448 = 0x7e.
    if (f == KvCacheFormat::kV32) {
      float s;
      std::memcpy(&s, blk + scales + 4 * tile, 4);
      EXPECT_EQ(s, std::ldexp(1.0f, tile));
    } else {
      EXPECT_EQ(blk[scales + tile], 127 + tile);
    }
    EXPECT_EQ(blk[nope + tile * L.tile], 0x7e);
  }
  if (f == KvCacheFormat::kModel1) {
    EXPECT_EQ(blk[scales + 7], 0);  // pad byte
  }
  EXPECT_EQ(blk[nope + 1], 0xb8);                                   // -1.0 with scale 1: sign | exp 7 << 3
  for (int d = 0; d < L.d_rope; ++d) {
    uint16_t h;
    std::memcpy(&h, blk + rope + 2 * d, 2);
    EXPECT_EQ(h, float_to_bf16(d / 8.0f));
  }
}

// |x - dequant(quant(x))| <= max(|x| 2^-4, scale 2^-10): half an e4m3 ulp (normal) or half the subnormal step.
TEST_P(Fp8Format, RoundTripWithinFormatErrorBound) {
  const KvCacheFormat f = GetParam();
  const Fp8Layout L = fp8_layout(f);
  Rng r(11);
  Fp8Cache c = make_fp8_cache(r, f, 5, 7);
  for (auto& v : c.bf16) v = float_to_bf16(static_cast<float>(r.normal() * std::ldexp(1.0, static_cast<int>(r.integer(-12, 6)))));
  quantize(c);
  std::vector<uint16_t> back(c.bf16.size());
  KvDequantizeParams dq{TensorView::contiguous(back.data(), DType::kBFloat16, {5, 7, 1, L.d_qk}), c.view(), f};
  ref::dequantize_kv_cache(dq);
  for (int64_t tok = 0; tok < c.num_tokens(); ++tok) {
    const std::vector<double> indep = c.decode(tok);
    for (int d = 0; d < L.d_qk; ++d) {
      const double x = decode_bf16(c.bf16[tok * L.d_qk + d]), y = decode_bf16(back[tok * L.d_qk + d]);
      ASSERT_EQ(y, indep[d]) << "library dequant differs from the independent decode at token " << tok << " dim " << d;
      if (d >= L.d_nope) {
        ASSERT_EQ(x, y) << "RoPE must be copied verbatim";
        continue;
      }
      double amax = 0;
      const int t0 = d / L.tile * L.tile;
      for (int k = t0; k < t0 + L.tile; ++k) amax = std::max(amax, std::fabs(decode_bf16(c.bf16[tok * L.d_qk + k])));
      const double scale = fp8_tile_scale(static_cast<float>(amax));
      ASSERT_LE(std::fabs(x - y), std::max(std::fabs(x) * 0.0625, scale * std::ldexp(1.0, -10))) << x << " -> " << y;
    }
  }
}

// Values that are (e4m3 value) * 2^k, with one element at 448 * 2^k fixing the tile's scale, survive exactly.
TEST_P(Fp8Format, RoundTripExactOnRepresentableValues) {
  const KvCacheFormat f = GetParam();
  const Fp8Layout L = fp8_layout(f);
  Rng r(12);
  Fp8Cache c = make_fp8_cache(r, f, 3, 5);
  for (int64_t tok = 0; tok < c.num_tokens(); ++tok) {
    for (int tile = 0; tile < L.num_tiles; ++tile) {
      const int k = static_cast<int>(r.integer(-10, 4));
      for (int d = tile * L.tile; d < (tile + 1) * L.tile; ++d) {
        uint8_t code;
        do code = static_cast<uint8_t>(r.integer(0, 255)); while ((code & 0x7f) > 0x7e);  // any non-NaN e4m3
        c.bf16[tok * L.d_qk + d] = float_to_bf16(static_cast<float>(decode_e4m3(code) * std::ldexp(1.0, k)));
      }
      c.bf16[tok * L.d_qk + tile * L.tile + static_cast<int>(r.integer(0, L.tile - 1))] =
          float_to_bf16(static_cast<float>(448.0 * std::ldexp(1.0, k)));
    }
  }
  quantize(c);
  std::vector<uint16_t> back(c.bf16.size());
  KvDequantizeParams dq{TensorView::contiguous(back.data(), DType::kBFloat16, {3, 5, 1, L.d_qk}), c.view(), f};
  ref::dequantize_kv_cache(dq);
  for (size_t i = 0; i < back.size(); ++i) {
    ASSERT_EQ(decode_bf16(back[i]), decode_bf16(c.bf16[i])) << i;
  }
}

TEST_P(Fp8Format, NaNTileGivesNaNScaleAndStaysInItsTile) {
  const KvCacheFormat f = GetParam();
  const Fp8Layout L = fp8_layout(f);
  Rng r(13);
  Fp8Cache c = make_fp8_cache(r, f, 1, 2);
  c.bf16[3] = 0x7fc1;  // token 0, tile 0
  quantize(c);
  const std::vector<double> t0 = c.decode(0), t1 = c.decode(1);
  for (int d = 0; d < L.tile; ++d) EXPECT_TRUE(std::isnan(t0[d])) << d;
  for (int d = L.tile; d < L.d_qk; ++d) EXPECT_FALSE(std::isnan(t0[d])) << d;
  for (int d = 0; d < L.d_qk; ++d) EXPECT_FALSE(std::isnan(t1[d])) << d;
}

INSTANTIATE_TEST_SUITE_P(Formats, Fp8Format, ::testing::Values(KvCacheFormat::kV32, KvCacheFormat::kModel1),
                         [](const auto& info) { return info.param == KvCacheFormat::kV32 ? "V32" : "MODEL1"; });

}  // namespace
}  // namespace flashmla::test
