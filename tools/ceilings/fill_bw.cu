// Fill-rate ceilings of one H200 SM's shared memory from a paged KV cache laid out as the dense decode kernel reads
// it (576 bf16 dims per token, 64 tokens per page): how many bytes per cycle reach an SM by TMA (64 x 64 boxes,
// 128-byte swizzle, as kv_tile_loader.cuh issues them), by cp.async (16 bytes per thread), and by both at once; from
// 1 CTA (one SM alone) and from 132 (every SM), with the tiles L2-resident or streamed from DRAM, and with CTAs 2i and
// 2i + 1 reading the same tiles (the two m-blocks of h_q = 128). A diagnostic tool, not part of the library.
//
// Built with the library when CUDA is found (target flashmla-fill-bw); run build/flashmla-fill-bw on the GPU machine.
// It prints one line per configuration. Results of 2026-11-21: docs/results/raw/2026-11-21-session13-experiments.txt.
//
// Known limits of this version: a "1 CTA, DRAM" row reads 37.7 MB, which stays in the 60 MB L2 after the first
// launch (it repeats the L2 row); a "TMA+cp.async" row splits the tiles 50/50 between the two paths, so it measures
// the slower one, not a combined ceiling.
#include <cuda.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "kernels/sm90/common/tma.h"

namespace {

constexpr int kDims = 576, kPage = 64, kChunk = 64, kChunks = kDims / kChunk;
constexpr int kBox = kPage * kChunk * 2;  // 8 KB
constexpr int kTmaSlots = 16;             // TMA ring: 128 KB
constexpr int kCpSlots = 8;               // cp.async ring: 64 KB
constexpr int kThreads = 128;

// The barrier and copy instructions are written out in PTX so that the measured loop is one instruction per step.
__device__ __forceinline__ uint32_t smem_u32(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }

__device__ __forceinline__ void mbar_init(uint64_t* b) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(smem_u32(b)));
}
__device__ __forceinline__ void mbar_expect(uint64_t* b, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_u32(b)), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_wait(uint64_t* b, uint32_t parity) {
  asm volatile(
      "{\n.reg .pred p;\nW: mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n@!p bra W;\n}" ::"r"(smem_u32(b)),
      "r"(parity)
      : "memory");
}
__device__ __forceinline__ void tma_load(const CUtensorMap* map, uint64_t* bar, void* dst, int c0, int c1, int c2,
                                         int c3) {
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint [%0], [%1, {%3, %4, "
      "%5, %6}], [%2], %7;" ::"r"(smem_u32(dst)),
      "l"(map), "r"(smem_u32(bar)), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "l"(0x12F0000000000000ull)  // EVICT_FIRST
      : "memory");
}

struct Args {
  const char* kv;     // the cache: blocks x 64 tokens x 576 dims, bf16
  int blocks;         // pages in the cache
  int tiles_per_cta;  // 64-token tiles each CTA reads
  int shared_pairs;   // 1: CTAs 2i and 2i + 1 read the same tiles
  int mode;           // 0 TMA, 1 cp.async, 2 both (TMA on even tiles, cp.async on odd ones)
  long long* cycles;  // per CTA
};

// Tile t of CTA `cta`: a page of its own stretch of the cache (wrapping around).
__device__ __forceinline__ int tile_page(const Args& a, int cta, int t) {
  const int owner = a.shared_pairs ? cta / 2 : cta;
  return static_cast<int>((static_cast<long long>(owner) * a.tiles_per_cta + t) % a.blocks);
}

__global__ void __launch_bounds__(kThreads, 1) fill(const __grid_constant__ CUtensorMap map, Args a) {
  extern __shared__ __align__(1024) unsigned char smem[];
  unsigned char* tma_ring = smem;                         // kTmaSlots x 8 KB
  unsigned char* cp_ring = smem + kTmaSlots * kBox;       // kCpSlots x 8 KB
  uint64_t* bars = reinterpret_cast<uint64_t*>(cp_ring + kCpSlots * kBox);
  if (threadIdx.x == 0) {
    for (int i = 0; i < kTmaSlots; ++i) mbar_init(&bars[i]);
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();
  const long long t0 = clock64();
  const int cta = blockIdx.x;
  const int tma_step = a.mode == 2 ? 2 : 1, cp_first = a.mode == 2 ? 1 : 0, cp_step = a.mode == 2 ? 2 : 1;
  if ((a.mode == 0 || a.mode == 2) && threadIdx.x == 0) {
    // One thread keeps kTmaSlots boxes in flight: wait for the oldest slot, refill it.
    int n = 0;
    for (int t = 0; t < a.tiles_per_cta; t += tma_step) {
      const int page = tile_page(a, cta, t);
      for (int c = 0; c < kChunks; ++c, ++n) {
        const int s = n % kTmaSlots;
        if (n >= kTmaSlots) mbar_wait(&bars[s], (n / kTmaSlots - 1) & 1);
        mbar_expect(&bars[s], kBox);
        tma_load(&map, &bars[s], tma_ring + s * kBox, c * kChunk, 0, 0, page);
      }
    }
    for (int k = max(0, n - kTmaSlots); k < n; ++k) mbar_wait(&bars[k % kTmaSlots], (k / kTmaSlots) & 1);
  }
  if (a.mode == 1 || (a.mode == 2 && threadIdx.x >= 32)) {
    // cp.async: the threads of the cp.async role load one 8 KB box (64 rows x 128 bytes) per group, kCpSlots groups
    // in flight.
    const int lane = a.mode == 2 ? threadIdx.x - 32 : threadIdx.x, lanes = a.mode == 2 ? kThreads - 32 : kThreads;
    int n = 0;
    for (int t = cp_first; t < a.tiles_per_cta; t += cp_step) {
      const char* tile = a.kv + static_cast<long long>(tile_page(a, cta, t)) * kPage * kDims * 2;
      for (int c = 0; c < kChunks; ++c, ++n) {
        unsigned char* dst = cp_ring + (n % kCpSlots) * kBox;
        for (int v = lane; v < kBox / 16; v += lanes) {
          const int row = v / 8, u = v % 8;
          asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(smem_u32(dst + row * 128 + u * 16)),
                       "l"(tile + row * kDims * 2 + c * kChunk * 2 + u * 16)
                       : "memory");
        }
        asm volatile("cp.async.commit_group;" ::: "memory");
        asm volatile("cp.async.wait_group %0;" ::"n"(kCpSlots - 1) : "memory");
      }
    }
    asm volatile("cp.async.wait_group 0;" ::: "memory");
  }
  __syncthreads();
  if (threadIdx.x == 0) a.cycles[cta] = clock64() - t0;
}

#define CHECK(x)                                                                  \
  do {                                                                            \
    cudaError_t e_ = (x);                                                         \
    if (e_ != cudaSuccess) {                                                      \
      std::printf("%s: %s\n", #x, cudaGetErrorString(e_));                        \
      std::exit(1);                                                               \
    }                                                                             \
  } while (0)

}  // namespace

int main() {
  int sms = 0, clock_khz = 0;
  CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  CHECK(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, 0));
  const long long kBigBlocks = 40000;  // 2.9 GB: streamed from DRAM
  char* kv = nullptr;
  CHECK(cudaMalloc(&kv, kBigBlocks * kPage * kDims * 2));
  CHECK(cudaMemset(kv, 0, kBigBlocks * kPage * kDims * 2));
  long long* cycles = nullptr;
  CHECK(cudaMalloc(&cycles, sizeof(long long) * sms));
  const int smem = kTmaSlots * kBox + kCpSlots * kBox + kTmaSlots * 8;
  CHECK(cudaFuncSetAttribute(fill, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  cudaEvent_t e0, e1;
  CHECK(cudaEventCreate(&e0));
  CHECK(cudaEventCreate(&e1));
  const char* modes[] = {"TMA", "cp.async", "TMA+cp.async"};
  std::printf("%-13s %-5s %-5s %-6s %10s %12s %14s\n", "path", "CTAs", "data", "pairs", "us", "TB/s (all)",
              "B/cycle per SM");
  for (int mode = 0; mode < 3; ++mode) {
    for (int ctas : {1, sms}) {
      for (int l2 : {1, 0}) {
        for (int pairs : {0, 1}) {
          if (ctas == 1 && pairs) continue;
          const int tiles = 512;
          // L2-resident: 128 pages (9.4 MB) read over and over; DRAM: every CTA its own stretch of the big cache.
          const int blocks = l2 ? 128 : static_cast<int>(kBigBlocks);
          const uint64_t dims[4] = {kDims, kPage, 1, static_cast<uint64_t>(blocks)};
          const uint64_t strides[3] = {kDims * 2, kDims * 2 * kPage, kDims * 2 * kPage};
          const uint32_t box[4] = {kChunk, kPage, 1, 1};
          const CUtensorMap map = flashmla::sm90::make_tma_map_sw128(CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, kv, 4, dims,
                                                                     strides, box);
          Args a{kv, blocks, tiles, pairs, mode, cycles};
          std::vector<float> ms;
          for (int rep = 0; rep < 7; ++rep) {
            CHECK(cudaEventRecord(e0));
            fill<<<ctas, kThreads, smem>>>(map, a);
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
          const double bytes_cta = static_cast<double>(tiles) * kChunks * kBox;
          std::printf("%-13s %-5d %-5s %-6s %10.1f %12.2f %14.1f\n", modes[mode], ctas, l2 ? "L2" : "DRAM",
                      pairs ? "yes" : "no", ms[3] * 1e3, bytes_cta * ctas / (ms[3] * 1e-3) / 1e12,
                      bytes_cta / static_cast<double>(cyc[ctas / 2]));
        }
      }
    }
  }
  return 0;
}
