// Host side of dense decode on sm_90: plan (validation, capability checks, workspace layout), schedule, run.
#include <cuda_runtime.h>

#include <algorithm>
#include <limits>
#include <mutex>
#include <set>
#include <string>

#include "core/checks.h"
#include "flashmla/dense_decode.h"
#include "flashmla/validate.h"
#include "kernels/sm90/combine/combine.cuh"
#include "kernels/sm90/common/context.h"
#include "kernels/sm90/common/cuda_check.h"
#include "kernels/sm90/common/tma.h"
#include "kernels/sm90/dense_decode/fallback_kernel.cuh"
#include "kernels/sm90/dense_decode/kernel.cuh"
#include "kernels/sm90/sched/decode_sched.h"

#if defined(FLASHMLA_TRACE) || defined(FLASHMLA_CTA_SPAN)
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {
// Writes a diagnostic device array (trace.cuh) of the last launch to the file named by $env at exit. Created at the
// first launch, after the CUDA runtime's own exit handler was registered, so that it runs before the runtime is torn
// down.
struct DeviceArrayDump {
  const void* symbol;
  size_t bytes;
  const char* env;
  ~DeviceArrayDump() {
    const char* path = std::getenv(env);
    if (path == nullptr) return;
    std::vector<unsigned long long> h(bytes / 8);
    if (cudaMemcpyFromSymbol(h.data(), symbol, bytes) != cudaSuccess) {
      std::fprintf(stderr, "%s: copy failed\n", env);
      return;
    }
    if (FILE* f = std::fopen(path, "wb")) {
      std::fwrite(h.data(), 8, h.size(), f);
      std::fclose(f);
    }
  }
};
}  // namespace
#endif

namespace flashmla {
namespace {

constexpr int kOverheadBlocks = 5;

int64_t align256(int64_t x) { return (x + 255) / 256 * 256; }

// True when t's data pointer and the strides of its dimensions longer than 1 (but the last, contiguous one) are
// multiples of `elems` 2-byte elements, so that `elems` consecutive elements of a row move as one access.
bool vec_ok(const TensorView& t, int elems) {
  if (reinterpret_cast<uintptr_t>(t.data) % (2 * elems) != 0) return false;
  for (int d = 0; d < t.ndim - 1; ++d) {
    if (t.shape[d] > 1 && t.stride[d] % elems != 0) return false;
  }
  return true;
}
// True when every row of `t` (all but the last dim) starts on 16 bytes: aligned base, strides multiples of 8 elements.
bool vec16_ok(const TensorView& t) { return vec_ok(t, 8); }

void expect_16b(const TensorView& t, const char* arg) {
  if (!vec16_ok(t)) {
    throw Unsupported(std::string(arg) + ": the sm_90 kernel needs a 16-byte aligned data pointer and strides that " +
                      "are multiples of 8 elements (16 bytes), got strides " + t.stride_string());
  }
}

// Fills the fields both main kernels share.
void fill_common(sm90::dense_decode::CommonParams& k, const DenseDecodeParams& p, const DenseDecodePlan& plan,
                 const DenseDecodeSchedule& sched, char* ws) {
  k.q = p.q.data;
  k.q_stride_b = p.q.stride[0], k.q_stride_s = p.q.stride[1], k.q_stride_h = p.q.stride[2];
  k.block_table = p.block_table.ptr<const int32_t>();
  k.bt_stride = p.block_table.stride[0];
  k.seqlens = p.cache_seqlens.ptr<const int32_t>();
  k.out = p.out.data;
  k.o_stride_b = p.out.stride[0], k.o_stride_s = p.out.stride[1], k.o_stride_h = p.out.stride[2];
  k.lse = p.lse.ptr<float>();
  k.lse_stride_b = p.lse.stride[0], k.lse_stride_h = p.lse.stride[1], k.lse_stride_s = p.lse.stride[2];
  k.o_accum = reinterpret_cast<float*>(ws + plan.o_accum_offset);
  k.lse_accum = reinterpret_cast<float*>(ws + plan.lse_accum_offset);
  k.sched = static_cast<const DecodeSchedEntry*>(sched.tile_scheduler_metadata.data);
  k.split_offsets = sched.num_splits.ptr<const int32_t>();
  k.b = static_cast<int>(plan.batch), k.s_q = static_cast<int>(plan.s_q), k.h_q = static_cast<int>(plan.h_q);
  k.h_kv = static_cast<int>(plan.h_kv), k.hpg = static_cast<int>(plan.h_q / plan.h_kv);
  k.m_blocks = plan.m_blocks;
  k.scale_log2 = p.softmax_scale * 1.4426950408889634f;
  k.causal = p.causal;
}

// T: CUDA type of q (__nv_bfloat16 / __half); E: the CUTLASS type of the same format.
template <typename T, typename E>
void launch(const DenseDecodeParams& p, const DenseDecodePlan& plan, const DenseDecodeSchedule& sched, void* workspace,
            cudaStream_t stream) {
  char* ws = static_cast<char*>(workspace);
  const unsigned grid = static_cast<unsigned>(static_cast<int64_t>(plan.m_blocks) * plan.h_kv * plan.num_parts);
  const int64_t page = p.k_cache.shape[1];
  if (plan.kernel == DenseDecodeKernel::kWgmmaTma) {
    namespace dd = sm90::dense_decode;
    dd::Params k{};
    fill_common(k, p, plan, sched, ws);
    k.q_vec16 = vec16_ok(p.q);
    k.o_pairs = vec_ok(p.out, 2);
    // Q by TMA when an m-block's 64 rows are one box: (64 dims, min(hpg, 64) heads, 64 / hpg query tokens).
    const int hpg = k.hpg;
    k.q_tma = k.q_vec16 && (hpg % dd::kBlockM == 0 || dd::kBlockM % hpg == 0);
    if (k.q_tma) {
      const uint64_t q_dims[4] = {576, static_cast<uint64_t>(plan.h_q), static_cast<uint64_t>(plan.s_q),
                                  static_cast<uint64_t>(plan.batch)};
      // Byte strides of head, s, b; a dimension of extent 1 gets the contiguous stride (its own is never used and
      // may not be a multiple of 16).
      uint64_t q_strides[3];
      uint64_t inner = 576 * 2;
      for (int d = 0; d < 3; ++d) {
        const int dim = 2 - d;  // q's dims b, s, h are 0, 1, 2
        q_strides[d] = p.q.shape[dim] > 1 ? static_cast<uint64_t>(p.q.stride[dim]) * 2 : inner;
        inner = q_strides[d] * q_dims[d + 1];
      }
      const uint32_t q_box[4] = {dd::kChunk, static_cast<uint32_t>(std::min(hpg, dd::kBlockM)),
                                 static_cast<uint32_t>(std::max(1, dd::kBlockM / hpg)), 1};
      k.q_map = sm90::make_tma_map_sw128(p.q.dtype == DType::kBFloat16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16
                                                                       : CU_TENSOR_MAP_DATA_TYPE_FLOAT16,
                                         p.q.data, 4, q_dims, q_strides, q_box);
    }
    // k_cache as (dim, token in page, kv head, block), innermost first.
    const uint64_t dims[4] = {576, static_cast<uint64_t>(page), static_cast<uint64_t>(plan.h_kv),
                              static_cast<uint64_t>(p.k_cache.shape[0])};
    const uint64_t strides[3] = {static_cast<uint64_t>(p.k_cache.stride[1]) * 2, static_cast<uint64_t>(p.k_cache.stride[2]) * 2,
                                 static_cast<uint64_t>(p.k_cache.stride[0]) * 2};
    k.kv.page = static_cast<int>(page);
    k.kv.box_rows = static_cast<int>(std::min<int64_t>(page, dd::kBlockN));
    const uint32_t box[4] = {dd::kChunk, static_cast<uint32_t>(k.kv.box_rows), 1, 1};
    k.kv.map = sm90::make_tma_map_sw128(p.q.dtype == DType::kBFloat16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16
                                                                      : CU_TENSOR_MAP_DATA_TYPE_FLOAT16,
                                        p.k_cache.data, 4, dims, strides, box);
#ifdef FLASHMLA_TRACE
    static DeviceArrayDump trace_dump{flashmla_dense_decode_trace, sizeof(flashmla_dense_decode_trace),
                                      "FLASHMLA_TRACE_FILE"};
#endif
#ifdef FLASHMLA_CTA_SPAN
    static DeviceArrayDump span_dump{flashmla_dense_decode_span, sizeof(flashmla_dense_decode_span),
                                     "FLASHMLA_SPAN_FILE"};
#endif
    // One TMA box per tile at pages of 64 tokens or more: that kernel's producer keeps one block_table entry per tile.
    using Loader = dd::PagedTmaKvLoader;
    const auto kernel =
        Loader::tile_boxes(page) == 1 ? dd::dense_decode_kernel<E, 1> : dd::dense_decode_kernel<E, Loader::kMaxBoxes>;
    kernel<<<grid, dd::kThreads, dd::kSmemBytes<E>, stream>>>(k);
  } else {
    namespace fb = sm90::dense_decode::fallback;
    fb::Params k{};
    fill_common(k, p, plan, sched, ws);
    k.k = p.k_cache.data;
    k.k_stride_block = p.k_cache.stride[0], k.k_stride_tok = p.k_cache.stride[1], k.k_stride_head = p.k_cache.stride[2];
    k.page = static_cast<int>(page);
    fb::dense_decode_kernel<T><<<grid, fb::kThreads, sizeof(fb::Smem<T>), stream>>>(k);
  }
  FLASHMLA_CUDA_CHECK(cudaGetLastError());
#ifdef FLASHMLA_ABLATION_NO_COMBINE  // timing experiment only (wrong results for split requests): no combine
  return;
#endif

  sm90::combine::Params c{};
  c.o_accum = reinterpret_cast<float*>(ws + plan.o_accum_offset);
  c.lse_accum = reinterpret_cast<float*>(ws + plan.lse_accum_offset);
  c.split_offsets = sched.num_splits.ptr<const int32_t>();
  c.attn_sink = nullptr;
  c.out = p.out.data, c.o_stride_b = p.out.stride[0], c.o_stride_s = p.out.stride[1], c.o_stride_h = p.out.stride[2];
  c.lse = p.lse.ptr<float>(), c.lse_stride_b = p.lse.stride[0], c.lse_stride_h = p.lse.stride[1];
  c.lse_stride_s = p.lse.stride[2];
  c.s_q = static_cast<int>(plan.s_q), c.h_q = static_cast<int>(plan.h_q);
  c.o_pairs = vec_ok(p.out, 2);
  // Programmatic dependent launch: the combine grid is scheduled while the main kernel drains and waits for it with
  // griddepcontrol.wait (all of the main kernel's writes visible), so its launch latency is hidden.
  // Many splits per request (num_parts >= 4 b: small batches) -> 4 warps per row, so that each warp's chain over the
  // splits is short; otherwise one warp per row (fewer CTAs; b=32 h_q=128: 3-6 us less than 4 warps per row, b=1
  // h_q=16: 3.7 us more).
  const int warps_per_row = plan.num_parts >= 4 * plan.batch ? 4 : 1;
  // Fewer parts than requests: one CTA row per part (each opens at most one split request) instead of per request.
  c.sched = static_cast<const DecodeSchedEntry*>(sched.tile_scheduler_metadata.data);
  c.by_part = plan.num_parts < plan.batch;
  const int64_t units = c.by_part ? plan.num_parts : plan.batch;
  cudaLaunchConfig_t cfg{};
  const int rows = sm90::combine::rows_per_cta(warps_per_row);
  cfg.gridDim = dim3(static_cast<unsigned>(units * plan.s_q), static_cast<unsigned>((plan.h_q + rows - 1) / rows));
  cfg.blockDim = dim3(32 * sm90::combine::kWarps);
  cfg.stream = stream;
  cudaLaunchAttribute attr{};
  attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr.val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = &attr;
  cfg.numAttrs = 1;
  if (warps_per_row == 4) {
    FLASHMLA_CUDA_CHECK(cudaLaunchKernelEx(&cfg, sm90::combine::combine_kernel<T, 4>, c));
  } else {
    FLASHMLA_CUDA_CHECK(cudaLaunchKernelEx(&cfg, sm90::combine::combine_kernel<T, 1>, c));
  }
  FLASHMLA_CUDA_CHECK(cudaGetLastError());
}

struct DeviceInfo {
  int major = 0, minor = 0, num_sms = 0;
};

// Attribute queries are cheap (unlike cudaGetDeviceProperties); the smem opt-in is done once per device.
DeviceInfo device_info(int device) {
  DeviceInfo d;
  FLASHMLA_CUDA_CHECK(cudaDeviceGetAttribute(&d.major, cudaDevAttrComputeCapabilityMajor, device));
  FLASHMLA_CUDA_CHECK(cudaDeviceGetAttribute(&d.minor, cudaDevAttrComputeCapabilityMinor, device));
  FLASHMLA_CUDA_CHECK(cudaDeviceGetAttribute(&d.num_sms, cudaDevAttrMultiProcessorCount, device));
  return d;
}

void expect_sm90(int device, const DeviceInfo& d) {
  if (d.major == 9 && d.minor == 0) return;
  cudaDeviceProp prop;
  const std::string name = cudaGetDeviceProperties(&prop, device) == cudaSuccess ? prop.name : "unknown";
  throw Unsupported("dense decode: needs an sm_90 GPU (H100/H200/H800/H20); device " + std::to_string(device) + " (" +
                    name + ") is sm_" + std::to_string(d.major) + std::to_string(d.minor));
}

int rows_per_cta(DenseDecodeKernel kernel) {
  return kernel == DenseDecodeKernel::kWgmmaTma ? sm90::dense_decode::kBlockM : sm90::dense_decode::fallback::kRows;
}

DenseDecodeKernel kernel_for_page(int64_t page_block_size) {
  return sm90::dense_decode::PagedTmaKvLoader::supports(page_block_size) ? DenseDecodeKernel::kWgmmaTma
                                                                         : DenseDecodeKernel::kFallback;
}

int default_num_parts(int num_sms, int64_t m_blocks, int64_t h_kv) {
  return static_cast<int>(std::max<int64_t>(num_sms / h_kv / m_blocks, 1));
}

// The shapes, dtype, device and contiguity of a schedule for b requests (and num_parts parts, when >= 0).
void expect_schedule(const DenseDecodeSchedule& s, int64_t b, int64_t num_parts, int device) {
  detail::expect_shape(s.tile_scheduler_metadata, "tile_scheduler_metadata", {{"num_parts", num_parts}, {"8", 8}});
  detail::expect_dtype(s.tile_scheduler_metadata, "tile_scheduler_metadata", {DType::kInt32});
  detail::expect_contiguous(s.tile_scheduler_metadata, "tile_scheduler_metadata");
  detail::expect_positive(s.tile_scheduler_metadata.shape[0], "tile_scheduler_metadata: num_parts");
  detail::expect_shape(s.num_splits, "num_splits", {{"b + 1", b + 1}});
  detail::expect_dtype(s.num_splits, "num_splits", {DType::kInt32});
  detail::expect_contiguous(s.num_splits, "num_splits");
  for (auto [t, name] : {std::pair{&s.tile_scheduler_metadata, "tile_scheduler_metadata"}, {&s.num_splits, "num_splits"}}) {
    if (t->device != device) {
      detail::fail(std::string(name) + ": expected a tensor on cuda:" + std::to_string(device) + ", got " +
                   (t->is_cuda() ? "cuda:" + std::to_string(t->device) : std::string("host memory")));
    }
  }
  if (reinterpret_cast<uintptr_t>(s.tile_scheduler_metadata.data) % 16 != 0) {
    detail::fail("tile_scheduler_metadata: needs a 16-byte aligned data pointer");
  }
}

// Opt in to more than 48 KB of dynamic shared memory: a function attribute of the current context, set once per
// context (the device's primary context is current here, DeviceGuard). Keyed by the context's id, not by the device:
// after cudaDeviceReset the new context has lost the attribute, and every launch failed until it was set again.
void set_smem_attributes(int device) {
  static std::mutex mutex;
  static std::set<std::pair<int, uint64_t>> done;
  const std::lock_guard<std::mutex> lock(mutex);
  if (!done.insert({device, sm90::current_context_id()}).second) return;
  namespace dd = sm90::dense_decode;
  namespace fb = sm90::dense_decode::fallback;
  auto set = [](const void* fn, int bytes) {
    FLASHMLA_CUDA_CHECK(cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
  };
  using BF16 = cutlass::bfloat16_t;
  using FP16 = cutlass::half_t;
  constexpr int kBoxes = dd::PagedTmaKvLoader::kMaxBoxes;
  set(reinterpret_cast<const void*>(dd::dense_decode_kernel<BF16, 1>), dd::kSmemBytes<BF16>);
  set(reinterpret_cast<const void*>(dd::dense_decode_kernel<BF16, kBoxes>), dd::kSmemBytes<BF16>);
  set(reinterpret_cast<const void*>(dd::dense_decode_kernel<FP16, 1>), dd::kSmemBytes<FP16>);
  set(reinterpret_cast<const void*>(dd::dense_decode_kernel<FP16, kBoxes>), dd::kSmemBytes<FP16>);
  set(reinterpret_cast<const void*>(fb::dense_decode_kernel<__nv_bfloat16>), static_cast<int>(sizeof(fb::Smem<__nv_bfloat16>)));
  set(reinterpret_cast<const void*>(fb::dense_decode_kernel<__half>), static_cast<int>(sizeof(fb::Smem<__half>)));
}

}  // namespace

int dense_decode_num_parts(int device, int64_t q_rows_per_kv_head, int64_t h_kv, int64_t page_block_size) {
  detail::expect_positive(q_rows_per_kv_head, "num_q_tokens_per_head_k");
  detail::expect_positive(h_kv, "num_heads_k");
  detail::expect_positive(page_block_size, "page_block_size");
  const int rows = rows_per_cta(kernel_for_page(page_block_size));
  return default_num_parts(device_info(device).num_sms, (q_rows_per_kv_head + rows - 1) / rows, h_kv);
}

DenseDecodePlan plan_dense_decode(const DenseDecodeParams& p, int num_parts) {
  validate(p);
  if (!p.q.is_cuda()) detail::fail("q: dense decode on the GPU needs CUDA tensors, got host memory (use ref::dense_decode)");
  if (num_parts < 0) detail::fail("num_parts: must be 0 (automatic) or positive, got " + std::to_string(num_parts));
  DenseDecodePlan plan;
  plan.device = p.q.device;
  const DeviceInfo dev = device_info(plan.device);
  expect_sm90(plan.device, dev);
  if (p.q.shape[3] != 576) throw Unsupported("q: the sm_90 dense decode kernel supports d_qk = 576 only, got " + std::to_string(p.q.shape[3]));
  expect_16b(p.k_cache, "k_cache");
  plan.num_sms = dev.num_sms;
  plan.batch = p.q.shape[0], plan.s_q = p.q.shape[1], plan.h_q = p.q.shape[2], plan.h_kv = p.k_cache.shape[2];
  plan.kernel = kernel_for_page(p.k_cache.shape[1]);
  plan.rows_per_cta = rows_per_cta(plan.kernel);
  const int64_t rows = plan.s_q * (plan.h_q / plan.h_kv);
  plan.m_blocks = static_cast<int>((rows + plan.rows_per_cta - 1) / plan.rows_per_cta);
  plan.num_parts = num_parts > 0 ? num_parts : default_num_parts(plan.num_sms, plan.m_blocks, plan.h_kv);
  if (static_cast<int64_t>(plan.m_blocks) * plan.h_kv * plan.num_parts > std::numeric_limits<int32_t>::max()) {
    detail::fail("num_parts: " + std::to_string(plan.num_parts) + " parts x " + std::to_string(plan.m_blocks) +
                 " m-blocks x h_kv " + std::to_string(plan.h_kv) + " CTAs exceed the grid limit");
  }
  plan.max_splits = sched_max_splits(plan.batch, plan.num_parts);
  int64_t off = 0;
  plan.lse_accum_offset = off, off = align256(off + plan.max_splits * plan.s_q * plan.h_q * 4);
  plan.o_accum_offset = off, off = align256(off + plan.max_splits * plan.s_q * plan.h_q * 512 * 4);
  plan.workspace_bytes = off;
  sm90::DeviceGuard guard(plan.device);
  set_smem_attributes(plan.device);
  return plan;
}

void dense_decode_schedule(const TensorView& cache_seqlens, const DenseDecodeSchedule& sched, void* stream) {
  detail::expect_shape(cache_seqlens, "cache_seqlens", {{"b", -1}});
  detail::expect_dtype(cache_seqlens, "cache_seqlens", {DType::kInt32});
  detail::expect_contiguous(cache_seqlens, "cache_seqlens");
  detail::expect_positive(cache_seqlens.shape[0], "cache_seqlens: batch size b");
  if (!cache_seqlens.is_cuda()) detail::fail("cache_seqlens: the schedule is built on the GPU, got host memory");
  if (cache_seqlens.shape[0] > std::numeric_limits<int32_t>::max() - 1) detail::fail("cache_seqlens: batch size too large");
  expect_schedule(sched, cache_seqlens.shape[0], -1, cache_seqlens.device);
  const int64_t num_parts = sched.tile_scheduler_metadata.shape[0];
  if (num_parts > std::numeric_limits<int32_t>::max()) detail::fail("tile_scheduler_metadata: too many parts");
  sm90::DeviceGuard guard(cache_seqlens.device);
  DecodeSchedConfig cfg;
  cfg.block_size_n = sm90::dense_decode::kBlockN;
  cfg.overhead = kOverheadBlocks;
  cfg.num_parts = static_cast<int32_t>(num_parts);
  sm90::launch_decode_sched(cache_seqlens.ptr<const int32_t>(), static_cast<int32_t>(cache_seqlens.shape[0]), cfg,
                            static_cast<DecodeSchedEntry*>(sched.tile_scheduler_metadata.data),
                            sched.num_splits.ptr<int32_t>(), static_cast<cudaStream_t>(stream));
  FLASHMLA_CUDA_CHECK(cudaGetLastError());
}

void dense_decode_run(const DenseDecodeParams& p, const DenseDecodePlan& plan, const DenseDecodeSchedule& sched,
                      void* workspace, void* stream) {
  if (p.q.shape[0] != plan.batch || p.q.shape[1] != plan.s_q || p.q.shape[2] != plan.h_q ||
      p.k_cache.shape[2] != plan.h_kv || p.q.device != plan.device) {
    detail::fail("plan: made for b=" + std::to_string(plan.batch) + " s_q=" + std::to_string(plan.s_q) + " h_q=" +
                 std::to_string(plan.h_q) + " h_kv=" + std::to_string(plan.h_kv) + " on cuda:" +
                 std::to_string(plan.device) + ", called with other shapes or device");
  }
  expect_schedule(sched, plan.batch, plan.num_parts, plan.device);
  if (workspace == nullptr) detail::fail("workspace: null; allocate plan.workspace_bytes on the device");
  sm90::DeviceGuard guard(plan.device);
  if (p.q.dtype == DType::kBFloat16) {
    launch<__nv_bfloat16, cutlass::bfloat16_t>(p, plan, sched, workspace, static_cast<cudaStream_t>(stream));
  } else {
    launch<__half, cutlass::half_t>(p, plan, sched, workspace, static_cast<cudaStream_t>(stream));
  }
}

}  // namespace flashmla
