// Per-token FP8 KV-cache encode/decode used by the quantize/dequantize operations and by the sparse decode reference.
#pragma once

#include <cstdint>

#include "flashmla/params.h"

namespace flashmla::ref {

/// Dequantizes token t (0 <= t < P) of the page block starting at `block`: out[d] for d < d_qk, each value the bf16
/// the FlashMLA dequant produces (fp8 * scale rounded to bf16; exact for power-of-two scales) widened to float.
void dequantize_token(const uint8_t* block, KvCacheFormat f, int64_t t, int64_t page_block_size, float* out);

/// Writes the bf16 RoPE copy and the quantized NoPE/scales of token t. `x` holds d_qk bf16 values.
void quantize_token(const uint16_t* x, KvCacheFormat f, int64_t t, int64_t page_block_size, uint8_t* block);

}  // namespace flashmla::ref
