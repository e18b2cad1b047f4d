// KV tile loader of the sm_90 dense decode kernel: fills one stage (64 tokens x 576 dims, swizzled) of shared memory
// from the paged cache with TMA, signalling one transaction barrier per 64-dim chunk so that QK^T can start on the
// first chunk while the others are in flight.
//
// This is the one part that knows the cache's storage format. It takes page sizes that are multiples of 8 and either
// divide 64 or are multiples of 64: a tile is then made of whole boxes of min(page, 64) tokens, each landing on a
// 1024-byte boundary of the swizzled tile. Other formats (other page sizes, the FP8 cache) replace this struct.
#pragma once

#include <cuda.h>

#include <cute/arch/copy_sm90_tma.hpp>
#include <cutlass/arch/barrier.h>

#include "kernels/sm90/dense_decode/config.cuh"

namespace flashmla::sm90::dense_decode {

struct PagedTmaKvLoader {
  // Tensor map over k_cache seen as (dim 576, token in page, kv head, block), innermost first; box (64, rows, 1, 1).
  CUtensorMap map;
  int page;       // page_block_size
  int box_rows;   // min(page, 64)
  // L2 policy of the loads: KV tiles are streamed, evict them first. Also when several m-blocks read the same tile:
  // their CTAs are neighbours in the grid and read it at about the same time; EVICT_NORMAL measured 0-6% slower there
  // (b=8 s_k=8192 h_q=128: 63.3 vs 59.5 us; docs/results/raw/2026-11-21-racecheck-experiments.txt).
  static constexpr uint64_t kCacheHint = static_cast<uint64_t>(cute::TMA::CacheHintSm90::EVICT_FIRST);

  /// True when this loader can serve `page` (see the file comment).
  static constexpr bool supports(int64_t page) {
    return page > 0 && page % 8 == 0 && (kBlockN % page == 0 || page % kBlockN == 0);
  }

  /// Boxes per tile: one when a page holds the whole tile (page >= 64), up to 8 at the smallest page (8 tokens).
  /// The kernel is instantiated for both bounds (tile_boxes below): with room for eight, the producer's tile reference
  /// and its loop over boxes cost registers and instructions on every page's refill path; the one-box kernel measured
  /// 2.0-2.5% faster end to end at b=128 h_q=128 and 5% at b=32 h_q=128 (page 64; its SASS also differs in the math
  /// warpgroups' schedule; docs/results/raw/2026-11-22-session20-experiments.txt, section 3).
  static constexpr int kMaxBoxes = kBlockN / 8;
  /// The boxes per tile the kernel must be built for at page size `page`.
  static constexpr int tile_boxes(int64_t page) { return page >= kBlockN ? 1 : kMaxBoxes; }

  /// Where the boxes of one tile live: the page of each box (block_table entries) and the row inside the page where
  /// the first box starts (the same for every box: pages below 64 tokens start their boxes at row 0). pieces = 0: a
  /// tile that loads nothing. kBoxes: at least the tile's number of boxes (tile_boxes).
  template <int kBoxes>
  struct TileRef {
    int block[kBoxes];
    int in_page;
    int pieces;
  };

  /// Reads the pages of tokens [tok0, tok0 + valid) of one request (block_table row `bt`). Kept apart from the loads
  /// so that the producer can read them before it waits for the stage to be free: the read's latency then hides
  /// behind the wait instead of delaying the refill.
  template <int kBoxes>
  __device__ TileRef<kBoxes> locate(const int32_t* bt, int tok0, int valid) const {
    TileRef<kBoxes> t;
    t.pieces = (valid + box_rows - 1) / box_rows;
    t.in_page = tok0 % page;
#pragma unroll
    for (int j = 0; j < kBoxes; ++j) t.block[j] = j < t.pieces ? bt[(tok0 + j * box_rows) / page] : 0;
    return t;
  }

  /// Issues the loads of dim chunks [c0, c1) of tile `t` for KV head `g` into `dst` (one stage, element type E),
  /// then arms `full[c]` with the bytes chunk c receives. Single thread. Tokens past the valid ones inside a loaded
  /// box are copied too (they are in bounds of their page); boxes entirely past them are not loaded, so their rows
  /// keep stale data. Either way the math masks those rows.
  ///
  /// The loads go out before the barriers are armed: arming first put four or five mbarrier arrivals in front of
  /// every refill, and issuing first is 1.3-1.6% faster at b=128 h_q=128 (docs/results/raw/2026-11-21-session12-
  /// experiments.txt, section 7). Bytes that land before the arming only take the barrier's transaction count below
  /// zero; its phase cannot complete before this thread's arrival, the only one it expects (init count 1).
  template <typename E, int kBoxes>
  __device__ void load_chunks(E* dst, uint64_t* full, const TileRef<kBoxes>& t, int g, int c0, int c1) const {
    if (t.pieces == 0) return;  // a phantom slot: its barriers are not armed either
    const uint32_t bytes = static_cast<uint32_t>(t.pieces * box_rows * kChunk * sizeof(E));
#pragma unroll
    for (int j = 0; j < kBoxes; ++j) {
      if (j >= t.pieces) break;
#pragma unroll 1
      for (int c = c0; c < c1; ++c) {
        // Chunk c of the tile is rows 0..63 x dims [64c, 64c + 64); piece j starts at row j * box_rows.
        cute::SM90_TMA_LOAD_4D::copy(&map, &full[c], kCacheHint, dst + c * kBlockN * kChunk + j * box_rows * kChunk,
                                     c * kChunk, t.in_page, g, t.block[j]);
      }
    }
#pragma unroll 1
    for (int c = c0; c < c1; ++c) cutlass::arch::ClusterTransactionBarrier::arrive_and_expect_tx(&full[c], bytes);
  }
};

}  // namespace flashmla::sm90::dense_decode
