#pragma once

#include <cuda_runtime.h>

#include "core/decode_schedule.h"

namespace flashmla::sm90 {

/// Builds the schedule of core/decode_schedule.h on the device (one CTA). seqlens: b int32 on the device.
void launch_decode_sched(const int32_t* seqlens, int32_t b, DecodeSchedConfig cfg, DecodeSchedEntry* entries,
                         int32_t* split_offsets, cudaStream_t stream);

}  // namespace flashmla::sm90
