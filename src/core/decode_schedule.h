// Split-KV schedule of the decode kernels: which KV blocks of which requests each "SM part" (a persistent CTA slot)
// processes, and where each request's split partials go. One definition, compiled for the host (CPU tests, CPU
// planning) and for the device (the scheduler kernel builds it from device-resident cache_seqlens, no host sync).
//
// Model: request i has n_i = ceil(L_i / block_size_n) KV blocks (0 for an empty request) and costs n_i + overhead,
// where `overhead` models a request's prologue/epilogue in units of blocks so that tiny requests get packed. Every
// part gets a payload of ceil(total / num_parts) + overhead. Parts are filled greedily in request order: a request
// that fits whole is taken whole; otherwise the part takes as many blocks as fit (leaving room for one overhead) and
// the rest continues in the next part. Hence:
//   - each block of each request is assigned to exactly one part; a request's splits sit in consecutive parts;
//   - a part's load never exceeds the ideal ceil(total / num_parts) by more than one overhead;
//   - total splits <= b + num_parts - 1 (each part ends at most one request early), which sizes the partial buffers.
#pragma once

#include <cstdint>

#include "core/host_device.h"

namespace flashmla {

/// One part's range, 8 x int32 (32 bytes). Requests [begin_req, end_req] inclusive; blocks [begin_block, ...) of
/// begin_req and [..., end_block) of end_req. begin_split = split ordinal of begin_req's first split in this part.
/// A part with begin_req >= b has no work.
struct DecodeSchedEntry {
  int32_t begin_req;
  int32_t begin_block;
  int32_t begin_split;
  int32_t end_req;
  int32_t end_block;
  int32_t pad[3];
};
static_assert(sizeof(DecodeSchedEntry) == 32, "DecodeSchedEntry is 8 x int32");

struct DecodeSchedConfig {
  int32_t block_size_n = 64;  // KV tokens per block
  int32_t overhead = 5;       // fixed cost of a request, in blocks
  int32_t num_parts = 1;      // persistent CTA slots per (m-block, kv head)
};

FLASHMLA_HD int32_t sched_num_blocks(int32_t len, int32_t block_size_n) {
  return len <= 0 ? 0 : (len + block_size_n - 1) / block_size_n;
}

/// The request whose first split (split ordinal 0) is part e's last segment: e.end_req when that one starts in this
/// part, else -1 (also for a part without work). Each request the schedule splits is returned by exactly one part, the
/// first of its consecutive parts (checked by the CPU tests); the combine's grid by part relies on it.
FLASHMLA_HD int32_t sched_request_opened(const DecodeSchedEntry& e) {
  if (e.end_req < e.begin_req) return -1;  // no work
  return e.end_req != e.begin_req || e.begin_split == 0 ? e.end_req : -1;
}

/// Upper bound of split slots for b requests: every request once, plus one per part boundary.
FLASHMLA_HD int64_t sched_max_splits(int64_t b, int32_t num_parts) { return b + num_parts; }

/// Block counts ceil(len / block_size_n) by a shift when block_size_n is a power of two (64 for every kernel so far):
/// the walk below is one thread's serial chain, and a run-time division put ~20 dependent instructions on it per
/// request (the schedule kernel was 15-22% slower).
struct SchedBlockCounter {
  int32_t block_size_n, shift;
  bool pow2;
  FLASHMLA_HD explicit SchedBlockCounter(int32_t bs) : block_size_n(bs), shift(0), pow2(false) {
    while (shift < 30 && (int32_t{1} << shift) < bs) ++shift;
    pow2 = (int32_t{1} << shift) == bs;
  }
  FLASHMLA_HD int32_t operator()(int32_t len) const {
    return len <= 0 ? 0 : (pow2 ? ((len - 1) >> shift) + 1 : sched_num_blocks(len, block_size_n));
  }
};

/// Sequential walk over the requests' block counts: blocks_of(i) = n_i for i in [0, b). entries: num_parts;
/// split_offsets: b + 1 prefix sums (request i owns partial slots [split_offsets[i], split_offsets[i+1]); a request
/// with one slot is written directly as final output). `total_cost` = sum_i (n_i + overhead), computed by the caller
/// (in parallel on the device).
template <typename BlocksOf>
FLASHMLA_HD void build_decode_schedule_from(const BlocksOf& blocks_of, int32_t b, int64_t total_cost,
                                            DecodeSchedConfig cfg, DecodeSchedEntry* entries, int32_t* split_offsets) {
  const int64_t payload = (total_cost + cfg.num_parts - 1) / cfg.num_parts + cfg.overhead;
  int32_t req = 0, offset = 0, ordinal = 0;
  split_offsets[0] = 0;
  for (int32_t part = 0; part < cfg.num_parts; ++part) {
    DecodeSchedEntry e{req, offset, ordinal, 0, 0, {0, 0, 0}};
    int64_t remaining = payload;
    int32_t last_req = -1, last_end = 0;
    while (req < b) {
      const int32_t n = blocks_of(req);
      const int64_t rest = n - offset;
      if (rest + cfg.overhead <= remaining) {  // the rest of this request fits
        remaining -= rest + cfg.overhead;
        split_offsets[req + 1] = split_offsets[req] + ordinal + 1;
        last_req = req, last_end = n;
        ++req, offset = 0, ordinal = 0;
        continue;
      }
      const int64_t take = remaining - cfg.overhead;
      if (take > 0) {  // a split: the first `take` remaining blocks here, the rest in the next part
        offset += static_cast<int32_t>(take);
        last_req = req, last_end = offset;
        ++ordinal;
      }
      break;
    }
    if (last_req < 0) {  // nothing assigned (requests exhausted, or no room)
      e.begin_req = b;
      e.end_req = b - 1;
    } else {
      e.end_req = last_req;
      e.end_block = last_end;
    }
    entries[part] = e;
  }
}

/// The walk over per-request lengths seqlens (b values).
FLASHMLA_HD void build_decode_schedule(const int32_t* seqlens, int32_t b, int64_t total_cost, DecodeSchedConfig cfg,
                                       DecodeSchedEntry* entries, int32_t* split_offsets) {
  const SchedBlockCounter count(cfg.block_size_n);
  build_decode_schedule_from([&](int32_t i) { return count(seqlens[i]); }, b, total_cost, cfg, entries,
                             split_offsets);
}

/// Host convenience: total cost, then the walk.
inline int64_t decode_schedule_total_cost(const int32_t* seqlens, int32_t b, DecodeSchedConfig cfg) {
  int64_t total = 0;
  for (int32_t i = 0; i < b; ++i) total += sched_num_blocks(seqlens[i], cfg.block_size_n) + cfg.overhead;
  return total;
}

}  // namespace flashmla
