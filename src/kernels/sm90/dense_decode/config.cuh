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
constexpr int kProducerWg = 2;           // warpgroup 2: one thread issues the KV loads; its other warps leave
constexpr int kThreads = 128 * (kMathWarpgroups + 1);
// Registers per thread after setmaxnreg (the launch gives 65536 / 384 = 170): the producer gives most of its share to
// the math warpgroups. 128 * (kProducerRegs + 2 * kMathRegs) must not exceed 65536.
constexpr int kProducerRegs = 40;
constexpr int kMathRegs = 232;
static_assert(128 * (kProducerRegs + kMathWarpgroups * kMathRegs) <= 65536, "register file of an SM");
// kv_empty arrivals per use of a stage: one per warp that read the chunks (after its wgmma completed).
constexpr int kEmptyLoArrivals = 4;   // chunks 0-3 (V dims 0-255): warpgroup 0's PV
constexpr int kEmptyHiArrivals = 8;   // chunks 4-8 (V dims 256-511, P in chunk 8): both warpgroups' PV
constexpr int kHalfDv = kDv / 2;         // output columns per math warpgroup

// Hardware named-barrier ids (0 is __syncthreads). Most handoffs are one direction: the signalling warpgroup arrives, the
// consumer warpgroup syncs (docs/kernels/dense_decode.md, "Barriers").
enum BarrierId : uint32_t {
  kBarP0Ready = 1,   // wg0 -> wg1: P0 in smem, m0 and scale0 published, V0 tail rows zeroed
  kBarP1Ready = 2,   // wg1 -> wg0: P1 in smem, m1 and scale1 published, V1 tail rows zeroed
  kBarQReady = 3,    // wg0 -> wg1: Q of the segment is in smem
  kBarL1Ready = 4,   // wg1 -> wg0: wg1's row sums of the segment (both sync)
  kBarInvL = 5,      // wg0 -> wg1: 1 / l of the segment's rows (both sync)
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
};

// The 64x64 P tile of stage s lives in chunk 8 (the RoPE dims) of that stage's K tile: the chunk is dead once the
// stage's QK^T has completed and is reloaded only after both warpgroups' PV have read P (see kernel.cuh).
constexpr int kPChunk = kChunks - 1;

template <typename E>
struct alignas(1024) SharedStorage {
  alignas(1024) E q[kBlockM * kDqk];                 //  73,728 B
  alignas(1024) E kv[kStages][kBlockN * kDqk];       // 147,456 B (P0, P1 in chunk 8 of each stage)
  float m0[kBlockM], scale0[kBlockM];  // wg0 -> wg1 per pair: running max after tile 0, its rescale factor
  float m1[kBlockM], scale1[kBlockM];  // wg1 -> wg0 per pair: running max after tile 1, its rescale factor
  float l1[kBlockM], inv_l[kBlockM];   // per segment: wg1's row sums; 1 / l
  uint64_t kv_full[kStages][kChunks];  // TMA transaction barriers, one per 64-dim chunk
  uint64_t kv_empty[kStages][2];       // math -> producer: chunks 0-3 / 4-8 of the stage may be refilled
};

/// Dynamic shared memory to request: the storage plus room to align its start to 1024 bytes.
template <typename E>
constexpr int kSmemBytes = static_cast<int>(sizeof(SharedStorage<E>)) + 1024;
static_assert(kSmemBytes<cutlass::bfloat16_t> <= 227 * 1024, "exceeds the 227 KB of shared memory of an sm_90 CTA");

}  // namespace flashmla::sm90::dense_decode
