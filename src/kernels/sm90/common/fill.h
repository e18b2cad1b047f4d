#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace flashmla::sm90 {

/// Fills n bf16 (or fp16) values with deterministic pseudo-random numbers of roughly N(0, 0.1^2) clamped to [-1, 1]
/// (the distribution of FlashMLA's tests). For benchmarks: generating GBs of inputs on the host is too slow.
void fill_random_half(void* data, int64_t n, uint64_t seed, bool fp16, cudaStream_t stream);

}  // namespace flashmla::sm90
