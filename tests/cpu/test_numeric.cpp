// The storage-format conversions against formula decoders and an exhaustive nearest-value search.
#include "tests/cpu/test_util.h"

namespace flashmla::test {
namespace {

// Nearest representable value by brute search over all codes; ties go to the even code.
template <typename Decode>
int nearest_code(double x, int num_codes, Decode decode) {
  int best = -1;
  double best_err = kInf;
  for (int c = 0; c < num_codes; ++c) {
    const double v = decode(c);
    if (std::isnan(v)) continue;
    const double err = std::fabs(v - x);
    if (err < best_err || (err == best_err && (c & 1) == 0 && (best & 1) == 1)) best = c, best_err = err;
  }
  return best;
}

TEST(Numeric, Bf16DecodeIsExactWidening) {
  for (int h = 0; h < 65536; ++h) {
    const double v = decode_bf16(static_cast<uint16_t>(h));
    const float f = bf16_to_float(static_cast<uint16_t>(h));
    if (std::isnan(v)) {
      EXPECT_TRUE(std::isnan(f));
    } else {
      EXPECT_EQ(static_cast<double>(f), v) << h;
    }
  }
}

TEST(Numeric, Bf16EncodeRoundsToNearestEven) {
  Rng r(1);
  for (int i = 0; i < 20000; ++i) {
    const float x = static_cast<float>(r.normal() * std::ldexp(1.0, static_cast<int>(r.integer(-30, 30))));
    const uint16_t h = float_to_bf16(x);
    // Neighbours in code space: the result must be at least as close as each, and even on a tie.
    for (int d : {-1, 1}) {
      const uint16_t n = static_cast<uint16_t>(h + d);
      const double e0 = std::fabs(decode_bf16(h) - x), e1 = std::fabs(decode_bf16(n) - x);
      ASSERT_TRUE(e0 < e1 || (e0 == e1 && (h & 1) == 0)) << x;
    }
  }
  EXPECT_EQ(float_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);  // tie -> even (down)
  EXPECT_EQ(float_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);  // tie -> even (up)
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(NAN))));
  EXPECT_EQ(float_to_bf16(INFINITY), 0x7f80);
}

TEST(Numeric, Fp16DecodeMatchesFormula) {
  for (int h = 0; h < 65536; ++h) {
    const double v = decode_fp16(static_cast<uint16_t>(h));
    const float f = fp16_to_float(static_cast<uint16_t>(h));
    if (std::isnan(v)) {
      EXPECT_TRUE(std::isnan(f));
    } else {
      EXPECT_EQ(static_cast<double>(f), v) << h;
    }
  }
}

TEST(Numeric, Fp16EncodeRoundsToNearestEven) {
  Rng r(2);
  for (int i = 0; i < 20000; ++i) {
    // Cover subnormals (< 2^-14), normals and values near the overflow threshold.
    const float x = static_cast<float>(r.uniform(-1, 1) * std::ldexp(1.0, static_cast<int>(r.integer(-26, 16))));
    const uint16_t h = float_to_fp16(x);
    if (std::fabs(x) >= 65520.0f) {
      EXPECT_EQ(h & 0x7fff, 0x7c00) << x;
      continue;
    }
    for (int d : {-1, 1}) {
      const uint16_t n = static_cast<uint16_t>(h + d);
      if ((n & 0x7fff) >= 0x7c00) continue;
      const double e0 = std::fabs(decode_fp16(h) - x), e1 = std::fabs(decode_fp16(n) - x);
      ASSERT_TRUE(e0 < e1 || (e0 == e1 && (h & 1) == 0)) << x;
    }
  }
  EXPECT_EQ(float_to_fp16(65504.0f), 0x7bff);
  EXPECT_EQ(float_to_fp16(65520.0f), 0x7c00);  // tie above max rounds to even = inf
  EXPECT_EQ(float_to_fp16(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(float_to_fp16(std::ldexp(1.0f, -25)), 0x0000);  // tie -> even zero
}

TEST(Numeric, E4m3DecodeAllCodes) {
  for (int c = 0; c < 256; ++c) {
    const double v = decode_e4m3(static_cast<uint8_t>(c));
    const float f = e4m3_to_float(static_cast<uint8_t>(c));
    if (std::isnan(v)) {
      EXPECT_TRUE(std::isnan(f)) << c;
    } else {
      EXPECT_EQ(static_cast<double>(f), v) << c;
    }
  }
  EXPECT_EQ(e4m3_to_float(0x7e), 448.0f);
  EXPECT_EQ(e4m3_to_float(0x01), std::ldexp(1.0f, -9));
}

TEST(Numeric, E4m3EncodeIsNearestEvenAndOverflowIsNaN) {
  Rng r(3);
  auto dec = [](int c) { return decode_e4m3(static_cast<uint8_t>(c)); };
  for (int i = 0; i < 5000; ++i) {
    const float x = static_cast<float>(r.uniform(-470, 470) * std::ldexp(1.0, -static_cast<int>(r.integer(0, 18))));
    const uint8_t c = float_to_e4m3(x);
    if (std::fabs(x) > 464.0f) {
      EXPECT_TRUE(std::isnan(e4m3_to_float(c))) << x;
      continue;
    }
    EXPECT_EQ(dec(c), dec(nearest_code(x, 256, dec))) << x;
  }
  EXPECT_EQ(float_to_e4m3(464.0f), 0x7e);  // tie between 448 and (unrepresentable) 480 -> even = 448
  EXPECT_TRUE(std::isnan(e4m3_to_float(float_to_e4m3(INFINITY))));
  EXPECT_TRUE(std::isnan(e4m3_to_float(float_to_e4m3(NAN))));
}

TEST(Numeric, E8m0IsPowerOfTwo) {
  for (int e = 1; e < 255; ++e) EXPECT_EQ(e8m0_to_float(static_cast<uint8_t>(e)), std::ldexp(1.0f, e - 127));
  EXPECT_TRUE(std::isnan(e8m0_to_float(0xff)));
  EXPECT_EQ(float_to_e8m0(std::ldexp(1.0f, -13)), 127 - 13);
  EXPECT_EQ(float_to_e8m0(3.0f), 0xff);  // not a power of two
}

TEST(Numeric, TileScaleIsCeilPowerOfTwo) {
  EXPECT_EQ(fp8_tile_scale(448.0f), 1.0f);
  EXPECT_EQ(fp8_tile_scale(448.5f), 2.0f);
  EXPECT_EQ(fp8_tile_scale(224.0f), 0.5f);
  EXPECT_EQ(fp8_tile_scale(0.0f), std::ldexp(1.0f, -13));  // clamp 1e-4 -> 2^-13
  EXPECT_TRUE(std::isnan(fp8_tile_scale(NAN)));
  Rng r(4);
  for (int i = 0; i < 2000; ++i) {
    const float amax = static_cast<float>(std::ldexp(r.uniform(0.5, 1), static_cast<int>(r.integer(-20, 20))));
    const double s = fp8_tile_scale(amax);
    const double ratio = std::max(static_cast<double>(amax / 448.0f), 1e-4);
    EXPECT_GE(s, ratio);
    EXPECT_LT(s / 2, ratio);
  }
}

}  // namespace
}  // namespace flashmla::test
