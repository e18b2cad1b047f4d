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
