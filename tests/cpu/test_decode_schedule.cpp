// Invariants of the split-KV decode schedule (the same function the GPU scheduler kernel runs).
#include <map>

#include "core/decode_schedule.h"
#include "tests/cpu/test_util.h"

namespace flashmla::test {
namespace {

struct Built {
  std::vector<DecodeSchedEntry> entries;
  std::vector<int32_t> offsets;
  int64_t total;
};

Built build(const std::vector<int32_t>& lens, DecodeSchedConfig cfg) {
  Built r;
  const int32_t b = static_cast<int32_t>(lens.size());
  r.entries.resize(cfg.num_parts);
  r.offsets.assign(b + 1, -1);
  r.total = decode_schedule_total_cost(lens.data(), b, cfg);
  build_decode_schedule(lens.data(), b, r.total, cfg, r.entries.data(), r.offsets.data());
  return r;
}

// Expands the schedule the way a kernel walks it and checks every invariant.
void check_invariants(const std::vector<int32_t>& lens, DecodeSchedConfig cfg) {
  const int32_t b = static_cast<int32_t>(lens.size());
  const Built s = build(lens, cfg);
  const int64_t payload = (s.total + cfg.num_parts - 1) / cfg.num_parts + cfg.overhead;
  std::vector<std::vector<int>> covered(b);         // per request, per block: times assigned
  std::vector<std::vector<int32_t>> parts_of(b);   // parts touching each request, in order
  std::vector<std::vector<int32_t>> slots_of(b);   // split slot used by each touch
  for (int32_t i = 0; i < b; ++i) covered[i].assign(sched_num_blocks(lens[i], cfg.block_size_n), 0);
  for (int32_t p = 0; p < cfg.num_parts; ++p) {
    const DecodeSchedEntry& e = s.entries[p];
    if (e.begin_req >= b) continue;
    ASSERT_LE(e.begin_req, e.end_req) << "part " << p;
    int64_t load = 0;
    for (int32_t r = e.begin_req; r <= e.end_req; ++r) {
      const int32_t n = sched_num_blocks(lens[r], cfg.block_size_n);
      const int32_t start = r == e.begin_req ? e.begin_block : 0, end = r == e.end_req ? e.end_block : n;
      ASSERT_LE(0, start);
      ASSERT_LE(start, end) << "part " << p << " request " << r;
      ASSERT_LE(end, n);
      for (int32_t k = start; k < end; ++k) ++covered[r][k];
      parts_of[r].push_back(p);
      slots_of[r].push_back(s.offsets[r] + (r == e.begin_req ? e.begin_split : 0));
      load += (end - start) + cfg.overhead;
    }
    EXPECT_LE(load, payload) << "part " << p << " exceeds the ideal by more than one request's overhead";
  }
  for (int32_t i = 0; i < b; ++i) {
    for (size_t k = 0; k < covered[i].size(); ++k) ASSERT_EQ(covered[i][k], 1) << "request " << i << " block " << k;
    ASSERT_FALSE(parts_of[i].empty()) << "request " << i << " (length " << lens[i] << ") is in no part";
    for (size_t k = 1; k < parts_of[i].size(); ++k) ASSERT_EQ(parts_of[i][k], parts_of[i][k - 1] + 1) << "request " << i;
    const int32_t n_splits = s.offsets[i + 1] - s.offsets[i];
    ASSERT_EQ(n_splits, static_cast<int32_t>(parts_of[i].size())) << "request " << i;
    for (int32_t k = 0; k < n_splits; ++k) ASSERT_EQ(slots_of[i][k], s.offsets[i] + k) << "request " << i;
    if (lens[i] == 0) {
      EXPECT_EQ(n_splits, 1) << "an empty request is never split";
    }
    if (n_splits > 1) {  // the combine's grid by part: the request is opened by its first part and no other
      for (int32_t p = 0; p < cfg.num_parts; ++p) {
        EXPECT_EQ(sched_request_opened(s.entries[p]) == i, p == parts_of[i][0]) << "request " << i << " part " << p;
      }
    }
  }
  EXPECT_LE(s.offsets[b], sched_max_splits(b, cfg.num_parts));
}

TEST(DecodeSchedule, InvariantsOnRandomBatches) {
  Rng r(1);
  for (int iter = 0; iter < 300; ++iter) {
    const int32_t b = static_cast<int32_t>(r.integer(1, 200));
    DecodeSchedConfig cfg;
    cfg.num_parts = static_cast<int32_t>(r.integer(1, 140));
    cfg.overhead = static_cast<int32_t>(r.integer(0, 8));
    cfg.block_size_n = iter % 2 ? 64 : static_cast<int32_t>(r.integer(1, 256));
    const int64_t mean = r.integer(0, 20000);
    std::vector<int32_t> lens(b);
    for (auto& l : lens) l = r.integer(0, 3) == 0 ? 0 : static_cast<int32_t>(r.integer(0, 2 * mean));
    SCOPED_TRACE("iteration " + std::to_string(iter));
    check_invariants(lens, cfg);
    if (HasFatalFailure()) return;
  }
}

TEST(DecodeSchedule, AllRequestsEmpty) {
  for (int32_t parts : {1, 7, 132}) check_invariants(std::vector<int32_t>(50, 0), {64, 5, parts});
}

TEST(DecodeSchedule, OneLongRequestIsSplitAcrossEveryPart) {
  const DecodeSchedConfig cfg{64, 5, 66};
  const Built s = build({32768}, cfg);
  // 512 blocks over 66 parts: ideal 517 / 66 -> 8 blocks a part, so the request spreads over (nearly) all parts.
  EXPECT_GE(s.offsets[1], 60);
  EXPECT_LE(s.offsets[1], 66);
  check_invariants({32768}, cfg);
}

TEST(DecodeSchedule, BalancedBatchIsNotSplit) {
  // 132 equal requests on 132 parts: one request per part, no splits.
  const DecodeSchedConfig cfg{64, 5, 132};
  const Built s = build(std::vector<int32_t>(132, 4096), cfg);
  EXPECT_EQ(s.offsets[132], 132);
  for (int32_t p = 0; p < 132; ++p) EXPECT_EQ(s.entries[p].begin_req, s.entries[p].end_req);
}

}  // namespace
}  // namespace flashmla::test
