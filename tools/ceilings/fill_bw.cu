// Fill-rate ceilings of one H200 SM's shared memory from a paged KV cache laid out as the dense decode kernel reads
// it (576 bf16 dims per token, 64 tokens per page): how many bytes per cycle reach an SM
//   - by TMA: 64 x 64 boxes with 128-byte swizzle and EVICT_FIRST, as kv_tile_loader.cuh issues them, from one thread
//     with 16 boxes (128 KB) in flight;
//   - by cp.async.cg (CuTe's, with its L2::128B hint): 16 bytes per instruction, 128 threads, 8 boxes in flight;
//   - by both at once: the TMA thread and 96 cp.async threads each loading every tile (twice the bytes), which shows
//     whether the two paths add up;
//   - by TMA multicast in clusters of 2: each CTA issues every other box to both CTAs (the two m-blocks of h_q = 128
//     sharing their tiles), which shows whether an SM can receive faster than its own TMA unit issues;
// from 1 SM (one CTA, or one cluster) and from all of them, with the tiles L2-resident or streamed from DRAM (L2
// flushed before every launch), and with CTAs 2i and 2i + 1 reading the same tiles. A diagnostic, not the library.
//
// Built with the library when CUDA is found (target flashmla-fill-bw); run build/flashmla-fill-bw on the GPU machine
// under `timeout` (its waits have no time limit). It prints one line per configuration. Results: the first version
// (TMA and cp.async alone), docs/results/raw/2026-11-21-session13-experiments.txt, section 3; the second,
// -session14-experiments.txt, section 1 (its TMA rows read half the first version's); this one, -session15-
// experiments.txt, section 4, which traces that factor to the second version's bounded wait loop.
#include <cuda.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <cute/arch/cluster_sm90.hpp>
#include <cute/arch/copy_sm80.hpp>
#include <cute/arch/copy_sm90_tma.hpp>
#include <cutlass/arch/barrier.h>

#include "kernels/sm90/common/tma.h"

namespace {

constexpr int kDims = 576, kPage = 64, kChunk = 64, kChunks = kDims / kChunk;
constexpr int kBox = kPage * kChunk * 2;  // 8 KB
constexpr int kTmaSlots = 16;             // TMA ring: 128 KB
constexpr int kCpSlots = 8;               // cp.async ring: 64 KB
constexpr int kThreads = 128;

enum Mode : int { kTma = 0, kCpAsync = 1, kBoth = 2, kMulticast = 3, kModes = 4 };

using TxBarrier = cutlass::arch::ClusterTransactionBarrier;
constexpr uint64_t kEvictFirst = static_cast<uint64_t>(cute::TMA::CacheHintSm90::EVICT_FIRST);

/// Waits for the phase of parity `parity` with CUTLASS's ClusterBarrier::wait, as the dense decode kernel's threads
/// do. The form of this wait sets what the TMA thread measures: this tool's previous bounded loop (hint-less try_wait
/// with a clock64 check) read 18.9 B/cycle per SM, this wait 35.1, the first version's PTX spin loop 40.0, all on one
/// H200 in one session (docs/results/raw/2026-11-21-session15-experiments.txt, section 4). It has no time limit: run
/// the tool under `timeout`.
__device__ __forceinline__ void wait_phase(uint64_t* b, uint32_t parity) { TxBarrier::wait(b, parity); }

struct Args {
  const char* kv;     // the cache: blocks x 64 tokens x 576 dims, bf16
  int blocks;         // pages in the cache
  int tiles_per_cta;  // 64-token tiles each CTA receives
  int shared_pairs;   // 1: CTAs 2i and 2i + 1 read the same tiles (always so for kMulticast)
  int mode;
  long long* cycles;  // per CTA
};

// Tile t of CTA `cta`: a page of its own stretch of the cache (wrapping around).
__device__ __forceinline__ int tile_page(const Args& a, int cta, int t) {
  const int owner = a.shared_pairs ? cta / 2 : cta;
  return static_cast<int>((static_cast<long long>(owner) * a.tiles_per_cta + t) % a.blocks);
}

__global__ void __launch_bounds__(kThreads, 1) fill(const __grid_constant__ CUtensorMap map, Args a) {
  extern __shared__ __align__(1024) unsigned char smem[];
  unsigned char* tma_ring = smem;                    // kTmaSlots x 8 KB
  unsigned char* cp_ring = smem + kTmaSlots * kBox;  // kCpSlots x 8 KB
  uint64_t* bars = reinterpret_cast<uint64_t*>(cp_ring + kCpSlots * kBox);
  if (threadIdx.x == 0) {
    for (int i = 0; i < kTmaSlots; ++i) TxBarrier::init(&bars[i], 1);
    cutlass::arch::fence_barrier_init();
  }
  __syncthreads();
  if (a.mode == kMulticast) cute::cluster_sync();  // the peer's barriers are initialised before any box lands in them
  const long long t0 = clock64();
  const int cta = blockIdx.x;
  const bool tma_role = a.mode == kTma || a.mode == kBoth || a.mode == kMulticast;
  const bool cp_role = a.mode == kCpAsync || (a.mode == kBoth && threadIdx.x >= 32);
  if (tma_role && threadIdx.x == 0) {
    // One thread keeps kTmaSlots boxes in flight: wait for the oldest slot, re-arm it, refill it. With multicast, box
    // n lands in slot n % kTmaSlots of both CTAs and is issued by CTA n % 2 of the cluster: each CTA arms for every
    // box and issues half of them.
    const uint32_t rank = a.mode == kMulticast ? cute::block_rank_in_cluster() : 0;
    int n = 0;
    for (int t = 0; t < a.tiles_per_cta; ++t) {
      const int page = tile_page(a, cta, t);
      for (int c = 0; c < kChunks; ++c, ++n) {
        const int s = n % kTmaSlots;
        if (n >= kTmaSlots) wait_phase(&bars[s], (n / kTmaSlots - 1) & 1);
        TxBarrier::arrive_and_expect_tx(&bars[s], kBox);
        if (a.mode != kMulticast) {
          cute::SM90_TMA_LOAD_4D::copy(&map, &bars[s], kEvictFirst, tma_ring + s * kBox, c * kChunk, 0, 0, page);
        } else if (static_cast<uint32_t>(n % 2) == rank) {
          // The box lands at the same offsets of both CTAs of the cluster, completing on each CTA's own barrier.
          cute::SM90_TMA_LOAD_MULTICAST_4D::copy(&map, &bars[s], uint16_t{0x3}, kEvictFirst, tma_ring + s * kBox,
                                                 c * kChunk, 0, 0, page);
        }
      }
    }
    for (int k = max(0, n - kTmaSlots); k < n; ++k) wait_phase(&bars[k % kTmaSlots], (k / kTmaSlots) & 1);
  }
  if (cp_role) {
    // The threads of the cp.async role load one 8 KB box (64 rows x 128 bytes) per group, kCpSlots groups in flight.
    const int lane = a.mode == kBoth ? threadIdx.x - 32 : threadIdx.x, lanes = a.mode == kBoth ? kThreads - 32 : kThreads;
    int n = 0;
    for (int t = 0; t < a.tiles_per_cta; ++t) {
      const char* tile = a.kv + static_cast<long long>(tile_page(a, cta, t)) * kPage * kDims * 2;
      for (int c = 0; c < kChunks; ++c, ++n) {
        unsigned char* dst = cp_ring + (n % kCpSlots) * kBox;
        for (int v = lane; v < kBox / 16; v += lanes) {
          const int row = v / 8, u = v % 8;
          cute::SM80_CP_ASYNC_CACHEGLOBAL<cute::uint128_t>::copy(
              *reinterpret_cast<const cute::uint128_t*>(tile + row * kDims * 2 + c * kChunk * 2 + u * 16),
              *reinterpret_cast<cute::uint128_t*>(dst + row * 128 + u * 16));
        }
        cute::cp_async_fence();
        cute::cp_async_wait<kCpSlots - 1>();
      }
    }
    cute::cp_async_wait<0>();
  }
  __syncthreads();
  const long long t1 = clock64();
  if (a.mode == kMulticast) cute::cluster_sync();  // no CTA leaves while its peer may still write into it
  if (threadIdx.x == 0) a.cycles[cta] = t1 - t0;
}

#define CHECK(x)                                                   \
  do {                                                             \
    cudaError_t e_ = (x);                                          \
    if (e_ != cudaSuccess) {                                       \
      std::printf("%s: %s\n", #x, cudaGetErrorString(e_));         \
      std::exit(1);                                                \
    }                                                              \
  } while (0)

}  // namespace

int main() {
  int sms = 0;
  CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  const long long kBigBlocks = 40000;  // 2.9 GB: streamed from DRAM
  char* kv = nullptr;
  CHECK(cudaMalloc(&kv, kBigBlocks * kPage * kDims * 2));
  CHECK(cudaMemset(kv, 0, kBigBlocks * kPage * kDims * 2));
  const size_t kFlushBytes = size_t{512} << 20;  // written before every launch: evicts the 60 MB L2
  void* flush = nullptr;
  CHECK(cudaMalloc(&flush, kFlushBytes));
  long long* cycles = nullptr;
  CHECK(cudaMalloc(&cycles, sizeof(long long) * sms));
  const int smem = kTmaSlots * kBox + kCpSlots * kBox + kTmaSlots * 8 + 16;
  CHECK(cudaFuncSetAttribute(fill, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  cudaEvent_t e0, e1;
  CHECK(cudaEventCreate(&e0));
  CHECK(cudaEventCreate(&e1));
  const char* names[kModes] = {"TMA", "cp.async", "TMA+cp.async", "TMA multicast"};
  std::printf("%-14s %-5s %-5s %-6s %10s %12s %14s\n", "path", "CTAs", "data", "pairs", "us", "TB/s (all)",
              "B/cycle per SM");
  const int even_sms = sms & ~1;
  for (int mode = 0; mode < kModes; ++mode) {
    for (int ctas : {mode == kMulticast ? 2 : 1, mode == kMulticast ? even_sms : sms}) {
      for (int l2 : {1, 0}) {
        for (int pairs : {0, 1}) {
          if ((ctas == 1 && pairs) || (mode == kMulticast && !pairs)) continue;
          const int tiles = 512;
          // L2-resident: 128 pages (9.4 MB) read over and over; DRAM: every CTA (pair) its own stretch of the big
          // cache, with the L2 flushed before the launch.
          const int blocks = l2 ? 128 : static_cast<int>(kBigBlocks);
          const uint64_t dims[4] = {kDims, kPage, 1, static_cast<uint64_t>(blocks)};
          const uint64_t strides[3] = {kDims * 2, kDims * 2 * kPage, kDims * 2 * kPage};
          const uint32_t box[4] = {kChunk, kPage, 1, 1};
          const CUtensorMap map = flashmla::sm90::make_tma_map_sw128(CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, kv, 4, dims,
                                                                     strides, box);
          Args a{kv, blocks, tiles, pairs, mode, cycles};
          cudaLaunchConfig_t cfg{};
          cfg.gridDim = dim3(static_cast<unsigned>(ctas));
          cfg.blockDim = dim3(kThreads);
          cfg.dynamicSmemBytes = smem;
          cudaLaunchAttribute attr{};
          attr.id = cudaLaunchAttributeClusterDimension;
          attr.val.clusterDim.x = 2, attr.val.clusterDim.y = 1, attr.val.clusterDim.z = 1;
          cfg.attrs = &attr;
          cfg.numAttrs = mode == kMulticast ? 1 : 0;
          std::vector<float> ms;
          for (int rep = 0; rep < 7; ++rep) {
            if (!l2) CHECK(cudaMemset(flush, rep, kFlushBytes));
            CHECK(cudaEventRecord(e0));
            CHECK(cudaLaunchKernelEx(&cfg, fill, map, a));
            CHECK(cudaEventRecord(e1));
            CHECK(cudaEventSynchronize(e1));
            float t = 0;
            CHECK(cudaEventElapsedTime(&t, e0, e1));
            ms.push_back(t);
          }
          CHECK(cudaGetLastError());
          std::sort(ms.begin(), ms.end());
          std::vector<long long> cyc(ctas);
          CHECK(cudaMemcpy(cyc.data(), cycles, sizeof(long long) * ctas, cudaMemcpyDeviceToHost));
          std::sort(cyc.begin(), cyc.end());
          // Bytes each CTA receives: both paths load every tile in kBoth.
          const double bytes_cta = static_cast<double>(tiles) * kChunks * kBox * (mode == kBoth ? 2 : 1);
          std::printf("%-14s %-5d %-5s %-6s %10.1f %12.2f %14.1f\n", names[mode], ctas, l2 ? "L2" : "DRAM",
                      pairs ? "yes" : "no", ms[3] * 1e3, bytes_cta * ctas / (ms[3] * 1e-3) / 1e12,
                      bytes_cta / static_cast<double>(cyc[ctas / 2]));
        }
      }
    }
  }
  return 0;
}
