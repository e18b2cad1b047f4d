#include "reference/kv_quant.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "core/fp8_kv_format.h"
#include "core/numeric.h"
#include "flashmla/reference.h"
#include "flashmla/validate.h"
#include "reference/access.h"
#include "reference/parallel.h"

namespace flashmla::ref {

void dequantize_token(const uint8_t* block, KvCacheFormat f, int64_t t, int64_t page_block_size, float* out) {
  const Fp8Layout L = fp8_layout(f);
  const Fp8TokenOffsets o = fp8_token_offsets(f, t, page_block_size);
  for (int tile = 0; tile < L.num_tiles; ++tile) {
    float scale;
    if (f == KvCacheFormat::kV32) {
      memcpy(&scale, block + o.scales + 4 * tile, 4);
    } else {
      scale = e8m0_to_float(block[o.scales + tile]);
    }
    for (int d = tile * L.tile; d < (tile + 1) * L.tile; ++d) {
      out[d] = bf16_to_float(float_to_bf16(e4m3_to_float(block[o.nope + d]) * scale));
    }
  }
  for (int d = 0; d < L.d_rope; ++d) {
    uint16_t h;
    memcpy(&h, block + o.rope + 2 * d, 2);
    out[L.d_nope + d] = bf16_to_float(h);
  }
}

void quantize_token(const uint16_t* x, KvCacheFormat f, int64_t t, int64_t page_block_size, uint8_t* block) {
  const Fp8Layout L = fp8_layout(f);
  const Fp8TokenOffsets o = fp8_token_offsets(f, t, page_block_size);
  for (int tile = 0; tile < L.num_tiles; ++tile) {
    float amax = 0.f;
    bool nan = false;
    for (int d = tile * L.tile; d < (tile + 1) * L.tile; ++d) {
      float v = std::fabs(bf16_to_float(x[d]));
      nan |= std::isnan(v);
      amax = v > amax ? v : amax;
    }
    const float scale = fp8_tile_scale(nan ? NAN : amax);
    if (f == KvCacheFormat::kV32) {
      memcpy(block + o.scales + 4 * tile, &scale, 4);
    } else {
      block[o.scales + tile] = float_to_e8m0(scale);
    }
    for (int d = tile * L.tile; d < (tile + 1) * L.tile; ++d) {
      block[o.nope + d] = float_to_e4m3(bf16_to_float(x[d]) / scale);
    }
  }
  if (f == KvCacheFormat::kModel1) block[o.scales + L.num_tiles] = 0;  // pad byte
  memcpy(block + o.rope, x + L.d_nope, 2 * L.d_rope);
}

namespace {

template <bool kQuantize>
void convert_cache(const KvQuantizeParams& p) {
  validate(p);
  expect_host(p.kv, "kv");
  expect_host(p.kv_fp8, "kv_fp8");
  const int64_t num_blocks = p.kv.shape[0], P = p.kv.shape[1];
  const int d_qk = head_dim_qk(p.format);
  parallel_for(num_blocks, 0, [&](int64_t blk) {
    uint8_t* block = p.kv_fp8.ptr<uint8_t>() + blk * p.kv_fp8.stride[0];
    std::vector<uint16_t> row(d_qk);
    std::vector<float> deq(d_qk);
    for (int64_t t = 0; t < P; ++t) {
      uint16_t* x = p.kv.ptr<uint16_t>() + offset_of(p.kv, blk, t, 0, 0);
      if constexpr (kQuantize) {
        for (int d = 0; d < d_qk; ++d) row[d] = x[d * p.kv.stride[3]];
        quantize_token(row.data(), p.format, t, P, block);
      } else {
        dequantize_token(block, p.format, t, P, deq.data());
        for (int d = 0; d < d_qk; ++d) x[d * p.kv.stride[3]] = float_to_bf16(deq[d]);
      }
    }
  });
}

}  // namespace

void quantize_kv_cache(const KvQuantizeParams& p) { convert_cache<true>(p); }
void dequantize_kv_cache(const KvDequantizeParams& p) { convert_cache<false>(p); }

}  // namespace flashmla::ref
