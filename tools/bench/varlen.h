// Variable-length draws of the benchmark (tools/bench) and of the side-by-side harness (tools/side_by_side), so that
// both compare equal work with FlashMLA's target table.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <numeric>
#include <vector>

namespace flashmla::bench {

// The mean length of FlashMLA's varlen runs in the target table, from its GB/s and us columns (bytes = 2 (b mean_s_k
// 576 + b s_q h_q 1088); the TFLOP/s column agrees to 0.1%): its draw of N(s_k, s_k / 2) came out 0.5% above s_k,
// the same draw at s_q = 1 and 2. A draw of 128 lengths has a mean within +-4.4% of s_k (one sigma), and the time
// follows the total length: our own draw at the same seed differed from FlashMLA's by -9% to +4% of the work, which
// moved the time ratios by as much. So the varlen lengths are drawn the same way and then shifted to FlashMLA's total
// (match_total): the ratio compares equal work.
inline double flashmla_varlen_mean(int s_k) {
  switch (s_k) {
    case 4096: return 4118;
    case 8192: return 8234;
    case 16384: return 16470;
    case 32768: return 32940;
    default: return s_k;
  }
}

// Moves every length by the same amount (the remainder by one token on the first requests), none below `lo`, until
// they sum to `total`.
inline void match_total(std::vector<int32_t>& lens, int64_t total, int32_t lo) {
  for (int iter = 0; iter < 64; ++iter) {
    const int64_t diff = total - std::accumulate(lens.begin(), lens.end(), int64_t{0});
    if (diff == 0) return;
    std::vector<size_t> movable;
    for (size_t i = 0; i < lens.size(); ++i) {
      if (diff > 0 || lens[i] > lo) movable.push_back(i);
    }
    if (movable.empty()) return;
    const int64_t n = static_cast<int64_t>(movable.size()), step = diff / n, rem = diff % n;
    for (int64_t k = 0; k < n; ++k) {
      int32_t& l = lens[movable[k]];
      l = static_cast<int32_t>(std::max<int64_t>(lo, l + step + (k < std::abs(rem) ? (rem > 0 ? 1 : -1) : 0)));
    }
  }
}

}  // namespace flashmla::bench
