// Device buffers and the GPU run of a DenseCase for the GPU tests.
#pragma once

#include <cuda_runtime.h>

#include "flashmla/dense_decode.h"
#include "tests/cpu/test_util.h"

namespace flashmla::test {

#define CUDA_OK(call) ASSERT_EQ((call), cudaSuccess) << #call

struct DeviceBuffer {
  void* ptr = nullptr;
  size_t bytes = 0;
  explicit DeviceBuffer(size_t n) : bytes(n) {
    if (cudaMalloc(&ptr, n ? n : 1) != cudaSuccess) throw std::runtime_error("cudaMalloc failed");
  }
  ~DeviceBuffer() { cudaFree(ptr); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  template <typename T>
  static std::unique_ptr<DeviceBuffer> from(const std::vector<T>& v) {
    auto b = std::make_unique<DeviceBuffer>(v.size() * sizeof(T));
    if (cudaMemcpy(b->ptr, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice) != cudaSuccess) {
      throw std::runtime_error("cudaMemcpy failed");
    }
    return b;
  }
};

inline TensorView on_device(TensorView host_view, void* dev) {
  host_view.data = dev;
  host_view.device = 0;
  return host_view;
}

/// Device copy of a DenseCase; outputs poisoned with NaN bytes before every run. out_shift > 0 places out that many
/// elements past the start of its allocation (an odd shift: a data pointer that is 2- but not 4-byte aligned).
struct GpuDense {
  std::unique_ptr<DeviceBuffer> q, cache, bt, lens, out, lse, ws, meta, splits;
  DenseDecodeParams p;
  DenseDecodePlan plan;
  DenseDecodeSchedule sched;

  int64_t out_shift = 0;
  explicit GpuDense(DenseCase& c, int num_parts = 0, int64_t out_shift_elems = 0) : out_shift(out_shift_elems) {
    DenseDecodeParams h = c.params();
    q = DeviceBuffer::from(c.q), cache = DeviceBuffer::from(c.cache), bt = DeviceBuffer::from(c.block_table);
    lens = DeviceBuffer::from(c.seqlens);
    out = std::make_unique<DeviceBuffer>((c.out.size() + out_shift) * 2);
    lse = std::make_unique<DeviceBuffer>(c.lse.size() * 4);
    p = h;
    p.q = on_device(h.q, q->ptr), p.k_cache = on_device(h.k_cache, cache->ptr);
    p.block_table = on_device(h.block_table, bt->ptr), p.cache_seqlens = on_device(h.cache_seqlens, lens->ptr);
    p.out = on_device(h.out, static_cast<char*>(out->ptr) + out_shift * 2), p.lse = on_device(h.lse, lse->ptr);
    plan = plan_dense_decode(p, num_parts);
    ws = std::make_unique<DeviceBuffer>(plan.workspace_bytes);
    meta = std::make_unique<DeviceBuffer>(plan.num_parts * 8 * sizeof(int32_t));
    splits = std::make_unique<DeviceBuffer>((plan.batch + 1) * sizeof(int32_t));
    sched.tile_scheduler_metadata = TensorView::contiguous(meta->ptr, DType::kInt32, {plan.num_parts, 8}, 0);
    sched.num_splits = TensorView::contiguous(splits->ptr, DType::kInt32, {plan.batch + 1}, 0);
  }
  void poison(cudaStream_t s = nullptr) {
    cudaMemsetAsync(out->ptr, 0xff, out->bytes, s);
    cudaMemsetAsync(lse->ptr, 0xff, lse->bytes, s);
    cudaMemsetAsync(ws->ptr, 0xff, ws->bytes, s);  // NaN: a run must never read workspace it did not write
  }
  void run(cudaStream_t s = nullptr) {
    poison(s);
    dense_decode_schedule(p.cache_seqlens, sched, s);
    dense_decode_run(p, plan, sched, ws->ptr, s);
  }
  void fetch(std::vector<uint16_t>& o, std::vector<float>& l) {
    o.resize(out->bytes / 2 - out_shift), l.resize(lse->bytes / 4);
    cudaMemcpy(o.data(), p.out.data, o.size() * 2, cudaMemcpyDeviceToHost);
    cudaMemcpy(l.data(), lse->ptr, lse->bytes, cudaMemcpyDeviceToHost);
  }
};

}  // namespace flashmla::test
