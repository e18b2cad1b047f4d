// Byte layout of one token in the FP8 KV-cache formats (spec section 3; source: DeepSeek FlashMLA's V3.2 and MODEL1
// caches). Shared by the CPU reference and the GPU kernels.
//
//   V32 (d_qk 576), token-contiguous, 656 bytes at block_base + t * 656:
//     [0, 512)   512 x fp8_e4m3  NoPE dims 0..511
//     [512, 528) 4 x float32     scale of NoPE dims [128i, 128i + 128)
//     [528, 656) 64 x bf16       RoPE dims 512..575, not quantized
//   MODEL1 (d_qk 512), block-interleaved, P tokens per page block:
//     block_base + t * 576:       448 x fp8_e4m3 NoPE dims 0..447, then 64 x bf16 RoPE dims 448..511
//     block_base + P * 576 + t*8: 7 x e8m0 scales (dims [64i, 64i + 64)), then 1 zero pad byte
#pragma once

#include <cstdint>

#include "core/host_device.h"
#include "flashmla/params.h"

namespace flashmla {

struct Fp8Layout {
  int d_qk;         // 576 / 512
  int d_nope;       // quantized dims: 512 / 448
  int d_rope;       // bf16 dims: 64
  int tile;         // dims per scale: 128 / 64
  int num_tiles;    // 4 / 7
  int scale_bytes;  // bytes of one scale: 4 (float32) / 1 (e8m0)
};

FLASHMLA_HD constexpr Fp8Layout fp8_layout(KvCacheFormat f) {
  return f == KvCacheFormat::kV32 ? Fp8Layout{576, 512, 64, 128, 4, 4} : Fp8Layout{512, 448, 64, 64, 7, 1};
}

/// Byte offsets of token t's parts from the start of its page block of P tokens.
struct Fp8TokenOffsets {
  int64_t nope;
  int64_t scales;
  int64_t rope;
};

FLASHMLA_HD Fp8TokenOffsets fp8_token_offsets(KvCacheFormat f, int64_t t, int64_t page_block_size) {
  if (f == KvCacheFormat::kV32) return {t * 656, t * 656 + 512, t * 656 + 528};
  return {t * 576, page_block_size * 576 + t * 8, t * 576 + 448};
}

}  // namespace flashmla
