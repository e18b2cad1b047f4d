// Scheduler kernel: one CTA reads cache_seqlens on the device, sums the costs in parallel, and thread 0 walks the
// requests (core/decode_schedule.h, the same function the CPU tests check).
#include <cstdint>

#include "core/decode_schedule.h"
#include "kernels/sm90/sched/decode_sched.h"

namespace flashmla::sm90 {

// Requests whose block counts are staged in shared memory for the walk (48 KB, the default dynamic limit).
constexpr int32_t kMaxStaged = 48 * 1024 / 4;

__global__ void __launch_bounds__(256) decode_sched_kernel(const int32_t* __restrict__ seqlens, int32_t b,
                                                           DecodeSchedConfig cfg, bool staged,
                                                           DecodeSchedEntry* entries, int32_t* split_offsets) {
  extern __shared__ int32_t blocks[];  // b block counts when staged
  __shared__ unsigned long long total;
  if (threadIdx.x == 0) total = 0;
  __syncthreads();
  const SchedBlockCounter count(cfg.block_size_n);
  unsigned long long mine = 0;
  for (int32_t i = threadIdx.x; i < b; i += blockDim.x) {
    const int32_t n = count(seqlens[i]);
    if (staged) blocks[i] = n;
    mine += n + cfg.overhead;
  }
  // One shared-memory atomic per warp: a 64-bit atomicAdd is a compare-and-swap loop, 256 of them serialize.
  for (int o = 16; o > 0; o /= 2) mine += __shfl_down_sync(0xffffffffu, mine, o);
  if (threadIdx.x % 32 == 0) atomicAdd(&total, mine);
  __syncthreads();
  if (threadIdx.x != 0) return;
  // The walk is thread 0's serial chain: block counts from shared memory rather than a global load and a count each.
  if (staged) {
    build_decode_schedule_from([&](int32_t i) { return blocks[i]; }, b, static_cast<int64_t>(total), cfg, entries,
                               split_offsets);
  } else {
    build_decode_schedule(seqlens, b, static_cast<int64_t>(total), cfg, entries, split_offsets);
  }
}

void launch_decode_sched(const int32_t* seqlens, int32_t b, DecodeSchedConfig cfg, DecodeSchedEntry* entries,
                         int32_t* split_offsets, cudaStream_t stream) {
  const bool staged = b <= kMaxStaged;
  decode_sched_kernel<<<1, 256, staged ? b * sizeof(int32_t) : 0, stream>>>(seqlens, b, cfg, staged, entries,
                                                                          split_offsets);
}

}  // namespace flashmla::sm90
