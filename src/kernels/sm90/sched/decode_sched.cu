// Scheduler kernel: one CTA reads cache_seqlens on the device, sums the costs in parallel, and thread 0 walks the
// requests (core/decode_schedule.h, the same function the CPU tests check).
#include <cstdint>

#include "core/decode_schedule.h"
#include "kernels/sm90/sched/decode_sched.h"

namespace flashmla::sm90 {

__global__ void __launch_bounds__(256) decode_sched_kernel(const int32_t* __restrict__ seqlens, int32_t b,
                                                           DecodeSchedConfig cfg, DecodeSchedEntry* entries,
                                                           int32_t* split_offsets) {
  __shared__ unsigned long long total;
  if (threadIdx.x == 0) total = 0;
  __syncthreads();
  unsigned long long mine = 0;
  for (int32_t i = threadIdx.x; i < b; i += blockDim.x) mine += sched_num_blocks(seqlens[i], cfg.block_size_n) + cfg.overhead;
  atomicAdd(&total, mine);
  __syncthreads();
  if (threadIdx.x == 0) build_decode_schedule(seqlens, b, static_cast<int64_t>(total), cfg, entries, split_offsets);
}

void launch_decode_sched(const int32_t* seqlens, int32_t b, DecodeSchedConfig cfg, DecodeSchedEntry* entries,
                         int32_t* split_offsets, cudaStream_t stream) {
  decode_sched_kernel<<<1, 256, 0, stream>>>(seqlens, b, cfg, entries, split_offsets);
}

}  // namespace flashmla::sm90
