// Timeline trace of the sm_90 dense decode kernel: a diagnostic build only (-DFLASHMLA_TRACE), never in the library.
//
// The first kTraceCtas CTAs record events of five roles into a device array: the first thread of each math warpgroup,
// the producer thread of each KV stage, and an observer thread (warp 3 of the producer warpgroup, idle otherwise) that
// waits on every kv_full barrier and records when each chunk's TMA landed. An event is one 64-bit word: the event id
// in bits 48-63 and the SM's cycle counter (clock64) in bits 0-47. tools/trace_timeline.py turns a dump into the
// latencies of the refills (release -> issue -> landed -> used) and the waits of each role.
#pragma once

#include <cstdint>

namespace flashmla::sm90::dense_decode::trace {

constexpr int kCtas = 2;
constexpr int kRoles = 5;  // 0, 1: math warpgroups; 2, 3: producer of stage 0, 1; 4: observer
constexpr int kCap = 16384;

// Event ids.
enum : uint32_t {
  kPairStart = 1,
  kSegEnd = 2,
  kQkIssue = 3,        // a math warpgroup starts issuing the next pair's QK^T
  kPvOwnIssued = 4,    // its PV with its own P (registers) is issued
  kPvOtherIssued = 5,  // its PV with the other warpgroup's P (smem) is issued
  kMark = 8,           // + 0..2: a math warpgroup's softmax steps: row max done, m published, exp done
  kQkWaitBegin = 16,   // + chunk: before the kv_full wait of a QK^T chunk
  kQkWaitEnd = 32,     // + chunk
  kRelease = 48,       // + 2 * stage + group
  kSyncBegin = 64,     // + named barrier id (or kRowsA, kRowsB: the row handoffs)
  kSyncEnd = 72,       // + named barrier id
  kPvWaitBegin = 80,
  kPvWaitEnd = 81,
  kEmptyWaitBegin = 84,  // + group (producer)
  kEmptyWaitEnd = 86,    // + group
  kIssued = 88,          // + group: the group's TMAs are issued
  kLanded = 96,          // + 16 * stage + chunk (observer)
  kSlot = 128,           // + stage: the observer starts a slot
};
constexpr uint32_t kRowsA = 1, kRowsB = 2;

}  // namespace flashmla::sm90::dense_decode::trace

#ifdef FLASHMLA_TRACE
// Defined here: one translation unit (dense_decode.cu) includes the kernel.
__device__ unsigned long long flashmla_dense_decode_trace[flashmla::sm90::dense_decode::trace::kCtas]
                                                                [flashmla::sm90::dense_decode::trace::kRoles]
                                                                [flashmla::sm90::dense_decode::trace::kCap];

namespace flashmla::sm90::dense_decode::trace {

/// One role's recorder; `on` only in the traced CTAs, for the role's recording thread.
struct Recorder {
  unsigned long long* buf = nullptr;
  int n = 0;
  __device__ Recorder(int role, bool thread_records) {
    if (blockIdx.x < kCtas && thread_records) buf = flashmla_dense_decode_trace[blockIdx.x][role];
  }
  __device__ __forceinline__ void operator()(uint32_t ev) {
    if (buf != nullptr && n < kCap - 1) {
      buf[n++] = static_cast<unsigned long long>(ev) << 48 | (clock64() & 0xFFFFFFFFFFFFull);
      buf[n] = 0;  // terminator
    }
  }
};

}  // namespace flashmla::sm90::dense_decode::trace
#define FLASHMLA_TRACE_EVENT(rec, ev) (rec)(ev)
#else
#define FLASHMLA_TRACE_EVENT(rec, ev) ((void)0)
#endif

// CTA spans: a diagnostic build only (-DFLASHMLA_CTA_SPAN), never in the library. Every CTA records when it started
// and when each math warpgroup finished (globaltimer, comparable across SMs, and the SM's clock64), its SM and how
// many tiles and segments it had, so that the spread of the CTAs' end times (the schedule's balance) can be read
// next to the kernel's span; and, for its first kSpanSegs segments, the clock64 of the math warpgroups' first threads
// at the points that split a segment's cost into prologue, pairs and epilogue: warpgroup 0 at 0 segment begin, 1 Q
// acquired, 2 first QK^T over, 3 last pair over, 4 row sums exchanged, 5 O stored, 6 lse stored (7: the segment's
// tiles); warpgroup 1 at 8 last pair over, 9 row sums exchanged, 10 O stored. kSpanWords words per CTA: gt_start,
// gt_end_wg0, gt_end_wg1, clk_start, clk_end_wg0, clk_end_wg1, info = smid << 48 | segments << 32 | tiles, 0; then
// 12 per segment.
namespace flashmla::sm90::dense_decode::trace {
constexpr int kSpanCtas = 2048;
constexpr int kSpanSegs = 6;
constexpr int kSpanWords = 8 + 12 * kSpanSegs;
}  // namespace flashmla::sm90::dense_decode::trace
#ifdef FLASHMLA_CTA_SPAN
__device__ unsigned long long flashmla_dense_decode_span[flashmla::sm90::dense_decode::trace::kSpanCtas]
                                                               [flashmla::sm90::dense_decode::trace::kSpanWords];
namespace flashmla::sm90::dense_decode::trace {
__device__ __forceinline__ unsigned long long global_ns() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}
__device__ __forceinline__ void span_start() {
  if (threadIdx.x == 0 && blockIdx.x < kSpanCtas) {
    unsigned long long* w = flashmla_dense_decode_span[blockIdx.x];
    w[0] = global_ns(), w[3] = clock64();
  }
}
__device__ __forceinline__ void span_end(int wg, int tiles, int segments) {
  if (threadIdx.x % 128 == 0 && blockIdx.x < kSpanCtas) {
    unsigned long long* w = flashmla_dense_decode_span[blockIdx.x];
    w[1 + wg] = global_ns(), w[4 + wg] = clock64();
    if (wg == 0) {
      unsigned smid;
      asm volatile("mov.u32 %0, %%smid;" : "=r"(smid));
      w[6] = static_cast<unsigned long long>(smid) << 48 | static_cast<unsigned long long>(segments) << 32 |
             static_cast<unsigned>(tiles);
    }
  }
}
/// Point `point` of segment `seg`, by the calling warpgroup's first thread; point 7 stores `value` (the tiles).
__device__ __forceinline__ void span_seg(int seg, int point, int value) {
  if (threadIdx.x % 128 == 0 && blockIdx.x < kSpanCtas && seg < kSpanSegs) {
    unsigned long long* w = flashmla_dense_decode_span[blockIdx.x] + 8 + 12 * seg;
    w[point] = point == 7 ? static_cast<unsigned long long>(value) : clock64();
  }
}
}  // namespace flashmla::sm90::dense_decode::trace
#define FLASHMLA_SPAN_START() trace::span_start()
#define FLASHMLA_SPAN_END(wg, tiles, segments) trace::span_end(wg, tiles, segments)
#define FLASHMLA_SPAN_SEG(seg, point, tiles) trace::span_seg(seg, point, tiles)
#else
#define FLASHMLA_SPAN_START() ((void)0)
#define FLASHMLA_SPAN_END(wg, tiles, segments) ((void)0)
#define FLASHMLA_SPAN_SEG(seg, point, tiles) ((void)0)
#endif
