// Tile shapes, shared-memory layouts and MMA atoms of the sm_90 dense decode kernel (docs/kernels/dense_decode.md).
#pragma once

#include <cute/tensor.hpp>
#include <cute/atom/mma_traits_sm90_gmma.hpp>
#include <cutlass/numeric_types.h>

#include <cstdint>

#include "kernels/sm90/dense_decode/common_params.h"

namespace flashmla::sm90::dense_decode {

using namespace cute;

constexpr int kBlockM = 64;              // query rows per CTA (s_q x heads of one KV head)
constexpr int kBlockN = kDecodeBlockN;   // KV tokens per tile (the schedule's block_size_n)
constexpr int kDqk = 576;
constexpr int kDv = 512;
constexpr int kChunk = 64;               // dims per TMA box / per K chunk barrier (128 bytes, the swizzle span)
constexpr int kChunks = kDqk / kChunk;   // 9
constexpr int kStages = 2;               // KV tiles in flight
constexpr int kMathWarpgroups = 2;       // warpgroups 0 and 1: wgmma, softmax, epilogue
constexpr int kProducerWg = 2;           // warpgroup 2: lane 0 of warp s issues stage s's KV loads; the rest leave
constexpr int kThreads = 128 * (kMathWarpgroups + 1);
// Registers per thread after setmaxnreg (the launch gives 65536 / 384 = 170): the producer gives most of its share to
// the math warpgroups. 128 * (kProducerRegs + 2 * kMathRegs) must not exceed 65536.
constexpr int kProducerRegs = 40;
constexpr int kMathRegs = 232;
static_assert(128 * (kProducerRegs + kMathWarpgroups * kMathRegs) <= 65536, "register file of an SM");
// A stage's chunks go back to the producer in two groups of four warps' arrivals (one per warp, after its wgmma
// completed). Warpgroup s computes QK^T of stage s and applies that stage's P from registers to its own half of V
// first: kGroupOwn is that half (chunks 4s..4s+3), free after that PV; kGroupOther is the other half and chunk 8,
// which holds the stage's P after QK^T, free after the other warpgroup's PV with that P from smem.
enum ChunkGroup : int { kGroupOwn = 0, kGroupOther = 1, kGroups = 2 };
constexpr int kGroupReaders = 4;  // warps that arrive on a group's kv_empty barrier
/// First of the four V chunks of group `grp` of `stage` (the group kGroupOther also holds chunk kPChunk).
__host__ __device__ constexpr int group_v_chunk0(int stage, int grp) { return 4 * (stage ^ grp); }
constexpr int kHalfDv = kDv / 2;         // output columns per math warpgroup

// Hardware named-barrier ids (0 is __syncthreads). Most handoffs are one direction: the signalling warpgroup arrives, the
// consumer warpgroup syncs (docs/kernels/dense_decode.md, "Barriers").
enum BarrierId : uint32_t {
  // ids 1 and 2 are free: the row handoffs use mbarriers (rows_a_full, rows_b_full)
  kBarPA = 3,        // wg0 -> wg1: P_A in smem (chunk 8 of stage 0), V_A tail rows zeroed
  kBarPB = 4,        // wg1 -> wg0: P_B in smem (chunk 8 of stage 1), V_B tail rows zeroed; also for a phantom B
  kBarQReady = 5,    // wg0 -> wg1: Q of the segment is in smem (plain-load path; the TMA path uses q_full)
  kBarWg0 = 6,       // warpgroup 0 alone
  kBarWg1 = 7,       // warpgroup 1 alone
};

template <typename E>  // cutlass::bfloat16_t or cutlass::half_t
struct Config {
  // Q and a KV tile: (row, dim) K-major with 128-byte swizzle. Dim chunk c (64 dims) of all 64 rows is one
  // contiguous 8 KB block, which is exactly what one TMA box of 64 dims x 64 tokens writes.
  using LayoutQ = decltype(tile_to_shape(GMMA::Layout_K_SW128_Atom<E>{}, Shape<Int<kBlockM>, Int<kDqk>>{}));
  using LayoutKV = decltype(tile_to_shape(GMMA::Layout_K_SW128_Atom<E>{}, Shape<Int<kBlockN>, Int<kDqk>, Int<kStages>>{}));
  // V = the first 512 dims of the same tile, seen as (dim, token, stage): MN-major for the PV wgmma. Same bytes.
  using LayoutV = decltype(composition(
      LayoutKV{}, make_layout(Shape<Int<kHalfDv>, Int<kBlockN>, Int<kStages>>{},
                              Stride<Int<kBlockN>, _1, Int<kBlockN * kDqk>>{})));
  // P: (row, token) K-major, the A operand of PV; the same layout as one 64-dim chunk of a KV stage.
  using LayoutP = decltype(tile_to_shape(GMMA::Layout_K_SW128_Atom<E>{}, Shape<Int<kBlockM>, Int<kBlockN>>{}));

  using MmaQK = decltype(make_tiled_mma(GMMA::ss_op_selector<E, E, float, Shape<Int<kBlockM>, Int<kBlockN>, _16>>()));
  using MmaPV = decltype(make_tiled_mma(GMMA::ss_op_selector<E, E, float, Shape<Int<kBlockM>, Int<kHalfDv>, _16>,
                                                               GMMA::Major::K, GMMA::Major::MN>()));
  // A warpgroup's own P from registers (register-A wgmma). The accumulator of a 64x64 QK^T, element pairs packed to
  // E, is already the A fragment of a 64x64 (4 k-blocks of 16) PV: ((2, 2, 2), 1, 4) with the same element order.
  using MmaPVrs = decltype(make_tiled_mma(GMMA::rs_op_selector<E, E, float, Shape<Int<kBlockM>, Int<kHalfDv>, _16>,
                                                               GMMA::Major::K, GMMA::Major::MN>()));
  using LayoutPreg = Layout<Shape<Shape<_2, _2, _2>, _1, _4>, Stride<Stride<_1, _2, _4>, _0, _8>>;
};

// The 64x64 P tile of stage s lives in chunk 8 (the RoPE dims) of that stage's K tile: the chunk is dead once the
// stage's QK^T has completed; only the other warpgroup reads P from there, and the chunk is in the group it releases.
constexpr int kPChunk = kChunks - 1;

/// The P store (kernel.cuh store_p) writes a warpgroup's 64 x 64 P, held in the QK^T accumulator's register order, to
/// LayoutP with four stmatrix.x4 per warp. In store q (0-3), matrix m (0-3) is the 8 x 8 block of rows (m % 2) * 8 +
/// [0, 8) of the warp's 16 and of columns 8 * (2q + m / 2) + [0, 8): exactly the registers 4q + m of every thread
/// (element pairs 2(4q + m), 2(4q + m) + 1 of S). Lane l addresses row l % 8 of matrix l / 8. Returns that row's
/// element offset in the tile: 128-byte rows, 16-byte unit u of row r at unit u ^ (r % 8).
__host__ __device__ constexpr int p_stsm_offset(int t128, int q) {
  const int lane = t128 % 32, m = lane / 8, r = lane % 8;
  const int row = (t128 / 32) * 16 + (m % 2) * 8 + r;
  return row * kBlockN + (((2 * q + m / 2) ^ r) * 8);
}

template <typename E>
struct alignas(1024) SharedStorage {
  alignas(1024) E q[kBlockM * kDqk];                 //  73,728 B
  alignas(1024) E kv[kStages][kBlockN * kDqk];       // 147,456 B (P_A, P_B in chunk 8 of stage 0, 1)
  // Per-row values handed from warpgroup 0 to 1 (rows_a) and from 1 to 0 (rows_b): the running max after tile A and
  // after tile B of each pair, and at the end of a segment each warpgroup's row sums.
  float rows_a[kBlockM], rows_b[kBlockM];
  uint64_t rows_a_full, rows_b_full;   // the row handoffs: 128 arrivals each (a math warpgroup)
  uint64_t kv_full[kStages][kChunks];  // TMA transaction barriers, one per 64-dim chunk
  uint64_t kv_empty[kStages][kGroups];  // math -> producer: a chunk group of the stage may be refilled
  uint64_t q_full;                      // TMA transaction barrier of the segment's Q (TMA path)
  uint64_t q_empty;                     // math -> Q producer: the segment's last QK^T is over
};

/// Dynamic shared memory to request: the storage plus room to align its start to 1024 bytes.
template <typename E>
constexpr int kSmemBytes = static_cast<int>(sizeof(SharedStorage<E>)) + 1024;
static_assert(kSmemBytes<cutlass::bfloat16_t> <= 227 * 1024, "exceeds the 227 KB of shared memory of an sm_90 CTA");

}  // namespace flashmla::sm90::dense_decode
