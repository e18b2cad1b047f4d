// Host-side checks of the sm_90 dense decode kernel's shared-memory layouts (no GPU needed; compiled by nvcc).
//
// The kernel relies on three facts that are not visible in its types:
//   1. a TMA box of 64 dims x R tokens written with 128-byte swizzle lands exactly where the CuTe layout of the KV
//      tile expects each element (TMA swizzle: byte offset bits [4:6] ^= bits [7:9] within a 1024-byte-aligned span,
//      CUDA programming guide, "TMA swizzle");
//   2. the V view (dim, token) used by the PV wgmma addresses the same bytes as the K view (token, dim), and the
//      second warpgroup's half is the first half moved by a plain element offset;
//   3. the stmatrix P store (p_stsm_offset) puts every element of a warpgroup's P where LayoutP expects it;
//   4. a warpgroup's QK^T accumulator, read in register order, is the A operand of its register-A PV wgmma
//      (LayoutPreg): element i of S and element i of P are the same (row, token).
#include <gtest/gtest.h>

#include <vector>

#include "kernels/sm90/dense_decode/config.cuh"

namespace flashmla::sm90::dense_decode {
namespace {

using E = cutlass::bfloat16_t;
using C = Config<E>;

// CuTe applies the 128-byte swizzle of a GMMA layout to the shared-memory *address* (the layout carries a
// smem_ptr_flag), as the hardware does, so offsets are read back from a tensor over a 1024-byte-aligned base.
alignas(1024) E g_smem[kStages * kBlockN * kDqk];

template <typename Layout, typename... Coord>
int offset_of(const Layout& layout, Coord... coord) {
  auto t = make_tensor(make_smem_ptr(g_smem), layout);
  return static_cast<int>(&t(coord...) - g_smem);
}

// Element offset that TMA's 128-byte swizzle gives element e of 16-byte unit u of row r of a box based at a
// 1024-byte boundary (2-byte elements: 64 per 128-byte row, 8 per unit).
int tma_sw128_offset(int r, int u, int e) { return r * 64 + ((u ^ (r % 8)) * 8) + e; }

TEST(Sm90SmemLayouts, KvTileMatchesTmaBoxes) {
  const auto kv = C::LayoutKV{};
  for (int s = 0; s < kStages; ++s)
    for (int c = 0; c < kChunks; ++c)
      for (int k = 0; k < kBlockN; ++k)
        for (int u = 0; u < 8; ++u)
          for (int e = 0; e < 8; ++e) {
            // Chunk c of stage s is one 64-row box at element s * 64 * 576 + c * 64 * 64 (8 KB, 1024-byte aligned).
            const int expect = s * kBlockN * kDqk + c * kBlockN * kChunk + tma_sw128_offset(k, u, e);
            ASSERT_EQ(offset_of(kv, k, c * kChunk + u * 8 + e, s), expect) << s << " " << c << " " << k;
          }
}

TEST(Sm90SmemLayouts, QMatchesTheKvTileLayoutAndKeeps16ByteUnits) {
  const auto q = C::LayoutQ{};
  const auto kv = C::LayoutKV{};
  for (int r = 0; r < kBlockM; ++r)
    for (int d = 0; d < kDqk; ++d) {
      ASSERT_EQ(offset_of(q, r, d), offset_of(kv, r, d, 0));
      // load_q and zero_tail_rows write 8 elements from &tensor(r, d) for d % 8 == 0.
      if (d % 8) ASSERT_EQ(offset_of(q, r, d), offset_of(q, r, d - d % 8) + d % 8);
    }
}

TEST(Sm90SmemLayouts, VViewAliasesTheKTile) {
  const auto kv = C::LayoutKV{};
  const auto v = C::LayoutV{};
  for (int half = 0; half < 2; ++half)
    for (int s = 0; s < kStages; ++s)
      for (int d = 0; d < kHalfDv; ++d)
        for (int k = 0; k < kBlockN; ++k) {
          // Warpgroup `half` builds its V tensor at element offset half * kHalfDv * kBlockN.
          ASSERT_EQ(half * kHalfDv * kBlockN + offset_of(v, d, k, s), offset_of(kv, k, half * kHalfDv + d, s));
        }
}

// A model of stmatrix.sync.aligned.m8n8.x4.b16 (PTX ISA, "stmatrix"): matrix m of the instruction takes register m of
// each lane l as the two elements of its row l / 4, columns 2 (l % 4) and 2 (l % 4) + 1, and writes row r of the
// matrix (8 elements) to the address that lane 8 m + r supplies.
TEST(Sm90SmemLayouts, PStoreWithStmatrixMatchesLayoutP) {
  const auto lp = C::LayoutP{};
  const auto id = make_identity_tensor(Shape<Int<kBlockM>, Int<kBlockN>>{});
  std::vector<int> written(kBlockM * kBlockN, 0);
  for (int t = 0; t < 128; ++t) {
    typename C::MmaQK mma_qk;
    const auto c_s = mma_qk.get_thread_slice(t).partition_C(id);  // (row, token) of accumulator element i
    const int warp = t / 32, l = t % 32;
    for (int q = 0; q < 4; ++q)
      for (int m = 0; m < 4; ++m) {
        const int addressing_lane = 8 * m + l / 4;
        for (int e = 0; e < 2; ++e) {
          const int i = 2 * (4 * q + m) + e;  // register 4q + m holds accumulator elements i (e = 0, 1)
          const int dst = p_stsm_offset(warp * 32 + addressing_lane, q) + 2 * (l % 4) + e;
          ASSERT_EQ(dst, offset_of(lp, get<0>(c_s(i)), get<1>(c_s(i)))) << "thread " << t << " q " << q << " m " << m;
          ++written[dst];
        }
      }
  }
  for (int v : written) ASSERT_EQ(v, 1);  // every element of the tile, once
}

TEST(Sm90SmemLayouts, QkAccumulatorIsTheRegisterAOperandOfPv) {
  const auto id = make_identity_tensor(Shape<Int<kBlockM>, Int<kBlockN>>{});
  const auto preg = typename C::LayoutPreg{};
  int checked = 0;
  for (int t = 0; t < 128; ++t) {
    typename C::MmaQK mma_qk;
    typename C::MmaPVrs mma_pv;
    const auto c_s = mma_qk.get_thread_slice(t).partition_C(id);  // (row, token) of accumulator element i
    const auto c_a = mma_pv.get_thread_slice(t).partition_A(id);  // (row, token) the PV reads at fragment slot j
    ASSERT_EQ(size(c_s), size(preg));
    ASSERT_EQ(size(c_a), size(preg));
    for (int j = 0; j < size(c_a); ++j) {
      const int i = preg(j);  // the register that holds fragment slot j
      ASSERT_EQ(get<0>(c_a(j)), get<0>(c_s(i))) << "thread " << t << " slot " << j;
      ASSERT_EQ(get<1>(c_a(j)), get<1>(c_s(i))) << "thread " << t << " slot " << j;
      ++checked;
    }
  }
  EXPECT_EQ(checked, kBlockM * kBlockN);  // every element of P, once
}

}  // namespace
}  // namespace flashmla::sm90::dense_decode
