// Bit-exact scalar conversions between float and the storage formats (bf16, fp16, fp8 e4m3fn, fp8 e8m0fnu).
// float -> narrow conversions round to nearest, ties to even, like PyTorch's casts:
//   bf16: NaN stays NaN (quiet); overflow goes to inf.
//   fp16: subnormals kept; overflow goes to inf.
//   e4m3fn: no infinities; a value whose rounding exceeds 448 becomes NaN (0x7f, sign kept), as torch does; +-inf and
//           NaN become NaN.
//   e8m0: only powers of two are representable (2^(e-127), e in 0..254; 0xff = NaN).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/host_device.h"

namespace flashmla {

FLASHMLA_HD float bits_to_float(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}
FLASHMLA_HD uint32_t float_to_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

FLASHMLA_HD float bf16_to_float(uint16_t h) { return bits_to_float(static_cast<uint32_t>(h) << 16); }

FLASHMLA_HD uint16_t float_to_bf16(float f) {
  uint32_t u = float_to_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);  // quiet NaN
  uint32_t lsb = (u >> 16) & 1u;
  u += 0x7fffu + lsb;
  return static_cast<uint16_t>(u >> 16);
}

FLASHMLA_HD float fp16_to_float(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t man = h & 0x3ffu;
  if (exp == 0x1f) return bits_to_float(sign | 0x7f800000u | (man << 13));  // inf / NaN
  if (exp == 0) {                                                            // zero / subnormal: man * 2^-24
    float v = static_cast<float>(man) * 5.9604644775390625e-08f;
    return sign ? -v : v;
  }
  return bits_to_float(sign | ((exp + 112u) << 23) | (man << 13));
}

FLASHMLA_HD uint16_t float_to_fp16(float f) {
  uint32_t u = float_to_bits(f);
  uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return sign | 0x7e00u;  // NaN
  if (a >= 0x477ff000u) return sign | 0x7c00u;  // rounds to >= 65536 -> inf
  if (a < 0x38800000u) {                        // below 2^-14: subnormal half, step 2^-24
    // Exact: a float below 2^-14 times 2^24 stays below 2^10; nearbyint rounds ties to even.
    float v = bits_to_float(a) * 16777216.0f;
    return sign | static_cast<uint16_t>(static_cast<uint32_t>(rintf(v)));
  }
  uint32_t lsb = (a >> 13) & 1u;
  a += 0xfffu + lsb;
  return sign | static_cast<uint16_t>(((a >> 23) - 112u) << 10 | ((a >> 13) & 0x3ffu));
}

/// fp8 e4m3fn: 1 sign, 4 exponent (bias 7), 3 mantissa; no inf; 0x7f / 0xff are NaN; max 448; min subnormal 2^-9.
FLASHMLA_HD float e4m3_to_float(uint8_t v) {
  uint32_t sign = static_cast<uint32_t>(v & 0x80u) << 24;
  uint32_t exp = (v >> 3) & 0xfu;
  uint32_t man = v & 0x7u;
  if (exp == 0xf && man == 0x7) return bits_to_float(sign | 0x7fc00000u);
  if (exp == 0) {
    float x = static_cast<float>(man) * 0.001953125f;  // man * 2^-9
    return sign ? -x : x;
  }
  return bits_to_float(sign | ((exp + 120u) << 23) | (man << 20));
}

FLASHMLA_HD uint8_t float_to_e4m3(float f) {
  uint32_t u = float_to_bits(f);
  uint8_t sign = static_cast<uint8_t>((u >> 24) & 0x80u);
  uint32_t a = u & 0x7fffffffu;
  if (a >= 0x7f800000u) return sign | 0x7fu;  // inf / NaN -> NaN
  if (a < 0x3c800000u) {                      // below 2^-6: subnormal range, step 2^-9
    float v = bits_to_float(a) * 512.0f;      // exact scaling; < 8
    uint32_t m = static_cast<uint32_t>(rintf(v));  // 8 means the smallest normal (exp 1, man 0): same encoding
    return sign | static_cast<uint8_t>(m);
  }
  uint32_t lsb = (a >> 20) & 1u;
  a += 0x7ffffu + lsb;
  uint32_t exp = (a >> 23) - 120u;
  uint32_t man = (a >> 20) & 0x7u;
  if (exp > 15 || (exp == 15 && man == 7)) return sign | 0x7fu;  // above 448 after rounding -> NaN
  return sign | static_cast<uint8_t>(exp << 3 | man);
}

/// fp8 e8m0fnu: 2^(e - 127), 0xff = NaN. Used for MODEL1 scales.
FLASHMLA_HD float e8m0_to_float(uint8_t e) {
  if (e == 0xff) return bits_to_float(0x7fc00000u);
  if (e == 0) return bits_to_float(0x00400000u);  // 2^-127 is a float subnormal
  return bits_to_float(static_cast<uint32_t>(e) << 23);
}

/// Encodes a power of two 2^k (k in [-127, 127]) as e8m0. Non-powers of two are not representable: the caller
/// guarantees it (the quantization recipe only produces powers of two).
FLASHMLA_HD uint8_t pow2_to_e8m0(int k) { return static_cast<uint8_t>(k + 127); }

/// The quantization recipe's per-tile scale: 2^ceil(log2(max(amax / 448, 1e-4))), computed exactly (frexp, no
/// log2f rounding). NaN amax gives a NaN scale and inf amax an inf scale, as the PyTorch recipe does.
inline float fp8_tile_scale(float amax) {
  if (std::isnan(amax)) return std::nanf("");
  if (std::isinf(amax)) return INFINITY;
  float ratio = amax / 448.0f;
  if (ratio < 1e-4f) ratio = 1e-4f;
  int e;
  float m = std::frexp(ratio, &e);  // ratio = m * 2^e, m in [0.5, 1)
  return std::ldexp(1.0f, m == 0.5f ? e - 1 : e);
}

/// e8m0 encoding of a float scale: powers of two exactly, NaN/inf/zero/non-powers-of-two as NaN (0xff).
inline uint8_t float_to_e8m0(float s) {
  if (!(s > 0.0f) || std::isinf(s)) return 0xff;
  int e;
  float m = std::frexp(s, &e);  // s = 0.5 * 2^e = 2^(e-1)
  if (m != 0.5f || e - 1 < -127 || e - 1 > 127) return 0xff;
  return pow2_to_e8m0(e - 1);
}

}  // namespace flashmla
