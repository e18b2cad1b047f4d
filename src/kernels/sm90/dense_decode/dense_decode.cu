// Host side of dense decode on sm_90: plan (validation, capability checks, workspace layout), schedule, run.
#include <cuda_runtime.h>

#include <algorithm>
#include <string>

#include "core/checks.h"
#include "flashmla/dense_decode.h"
#include "flashmla/validate.h"
#include "kernels/sm90/combine/combine.cuh"
#include "kernels/sm90/common/cuda_check.h"
#include "kernels/sm90/common/tma.h"
#include "kernels/sm90/dense_decode/fallback_kernel.cuh"
#include "kernels/sm90/dense_decode/kernel.cuh"
#include "kernels/sm90/sched/decode_sched.h"

namespace flashmla {
namespace {

constexpr int kOverheadBlocks = 5;

int64_t align256(int64_t x) { return (x + 255) / 256 * 256; }

// True when every row of `t` (all but the last dim) starts on 16 bytes: aligned base, strides multiples of 8 elements.
bool vec16_ok(const TensorView& t) {
  if (reinterpret_cast<uintptr_t>(t.data) % 16 != 0) return false;
  for (int d = 0; d < t.ndim - 1; ++d) {
    if (t.shape[d] > 1 && t.stride[d] % 8 != 0) return false;
  }
  return true;
}

void expect_16b(const TensorView& t, const char* arg) {
  if (!vec16_ok(t)) {
    throw Unsupported(std::string(arg) + ": the sm_90 kernel needs a 16-byte aligned data pointer and strides that " +
                      "are multiples of 8 elements (16 bytes), got strides " + t.stride_string());
  }
}

// Fills the fields both main kernels share.
void fill_common(sm90::dense_decode::CommonParams& k, const DenseDecodeParams& p, const DenseDecodePlan& plan, char* ws) {
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
  k.sched = reinterpret_cast<const DecodeSchedEntry*>(ws + plan.sched_offset);
  k.split_offsets = reinterpret_cast<const int32_t*>(ws + plan.split_offsets_offset);
  k.b = static_cast<int>(plan.batch), k.s_q = static_cast<int>(plan.s_q), k.h_q = static_cast<int>(plan.h_q);
  k.h_kv = static_cast<int>(plan.h_kv), k.hpg = static_cast<int>(plan.h_q / plan.h_kv);
  k.m_blocks = plan.m_blocks;
  k.scale_log2 = p.softmax_scale * 1.4426950408889634f;
  k.causal = p.causal;
}

// T: CUDA type of q (__nv_bfloat16 / __half); E: the CUTLASS type of the same format.
template <typename T, typename E>
void launch(const DenseDecodeParams& p, const DenseDecodePlan& plan, void* workspace, cudaStream_t stream) {
  char* ws = static_cast<char*>(workspace);
  const unsigned grid = static_cast<unsigned>(static_cast<int64_t>(plan.m_blocks) * plan.h_kv * plan.num_parts);
  const int64_t page = p.k_cache.shape[1];
  if (plan.kernel == DenseDecodeKernel::kWgmmaTma) {
    namespace dd = sm90::dense_decode;
    dd::Params k{};
    fill_common(k, p, plan, ws);
    k.q_vec16 = vec16_ok(p.q);
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
    // Several m-blocks read the same tile: keep it in L2 for the others; otherwise it is read once.
    k.kv.cache_hint = static_cast<uint64_t>(plan.m_blocks > 1 ? cute::TMA::CacheHintSm90::EVICT_NORMAL
                                                              : cute::TMA::CacheHintSm90::EVICT_FIRST);
    dd::dense_decode_kernel<E><<<grid, dd::kThreads, dd::kSmemBytes<E>, stream>>>(k);
  } else {
    namespace fb = sm90::dense_decode::fallback;
    fb::Params k{};
    fill_common(k, p, plan, ws);
    k.k = p.k_cache.data;
    k.k_stride_block = p.k_cache.stride[0], k.k_stride_tok = p.k_cache.stride[1], k.k_stride_head = p.k_cache.stride[2];
    k.page = static_cast<int>(page);
    fb::dense_decode_kernel<T><<<grid, fb::kThreads, sizeof(fb::Smem<T>), stream>>>(k);
  }
  FLASHMLA_CUDA_CHECK(cudaGetLastError());

  sm90::combine::Params c{};
  c.o_accum = reinterpret_cast<float*>(ws + plan.o_accum_offset);
  c.lse_accum = reinterpret_cast<float*>(ws + plan.lse_accum_offset);
  c.split_offsets = reinterpret_cast<const int32_t*>(ws + plan.split_offsets_offset);
  c.attn_sink = nullptr;
  c.out = p.out.data, c.o_stride_b = p.out.stride[0], c.o_stride_s = p.out.stride[1], c.o_stride_h = p.out.stride[2];
  c.lse = p.lse.ptr<float>(), c.lse_stride_b = p.lse.stride[0], c.lse_stride_h = p.lse.stride[1];
  c.lse_stride_s = p.lse.stride[2];
  c.s_q = static_cast<int>(plan.s_q), c.h_q = static_cast<int>(plan.h_q);
  // Programmatic dependent launch: the combine grid is scheduled while the main kernel drains and waits for it with
  // griddepcontrol.wait (all of the main kernel's writes visible), so its launch latency is hidden.
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(static_cast<unsigned>(plan.batch * plan.s_q),
                     static_cast<unsigned>((plan.h_q + sm90::combine::kRowsPerCta - 1) / sm90::combine::kRowsPerCta));
  cfg.blockDim = dim3(256);
  cfg.stream = stream;
  cudaLaunchAttribute attr{};
  attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr.val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = &attr;
  cfg.numAttrs = 1;
  FLASHMLA_CUDA_CHECK(cudaLaunchKernelEx(&cfg, sm90::combine::combine_kernel<T>, c));
  FLASHMLA_CUDA_CHECK(cudaGetLastError());
}

// Opt in to more than 48 KB of dynamic shared memory, once per process and device-independent attribute.
void set_smem_attributes() {
  namespace dd = sm90::dense_decode;
  namespace fb = sm90::dense_decode::fallback;
  auto set = [](const void* fn, int bytes) {
    FLASHMLA_CUDA_CHECK(cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
  };
  set(reinterpret_cast<const void*>(dd::dense_decode_kernel<cutlass::bfloat16_t>), dd::kSmemBytes<cutlass::bfloat16_t>);
  set(reinterpret_cast<const void*>(dd::dense_decode_kernel<cutlass::half_t>), dd::kSmemBytes<cutlass::half_t>);
  set(reinterpret_cast<const void*>(fb::dense_decode_kernel<__nv_bfloat16>), static_cast<int>(sizeof(fb::Smem<__nv_bfloat16>)));
  set(reinterpret_cast<const void*>(fb::dense_decode_kernel<__half>), static_cast<int>(sizeof(fb::Smem<__half>)));
}

}  // namespace

DenseDecodePlan plan_dense_decode(const DenseDecodeParams& p) {
  validate(p);
  if (!p.q.is_cuda()) detail::fail("q: dense decode on the GPU needs CUDA tensors, got host memory (use ref::dense_decode)");
  DenseDecodePlan plan;
  plan.device = p.q.device;
  sm90::DeviceGuard guard(plan.device);
  cudaDeviceProp prop;
  FLASHMLA_CUDA_CHECK(cudaGetDeviceProperties(&prop, plan.device));
  if (prop.major != 9 || prop.minor != 0) {
    throw Unsupported("dense decode: needs an sm_90 GPU (H100/H200/H800/H20); device " + std::to_string(plan.device) +
                      " (" + prop.name + ") is sm_" + std::to_string(prop.major) + std::to_string(prop.minor));
  }
  if (p.q.shape[3] != 576) throw Unsupported("q: the sm_90 dense decode kernel supports d_qk = 576 only, got " + std::to_string(p.q.shape[3]));
  expect_16b(p.k_cache, "k_cache");
  plan.num_sms = prop.multiProcessorCount;
  plan.batch = p.q.shape[0], plan.s_q = p.q.shape[1], plan.h_q = p.q.shape[2], plan.h_kv = p.k_cache.shape[2];
  plan.kernel = sm90::dense_decode::PagedTmaKvLoader::supports(p.k_cache.shape[1]) ? DenseDecodeKernel::kWgmmaTma
                                                                                  : DenseDecodeKernel::kFallback;
  plan.rows_per_cta = plan.kernel == DenseDecodeKernel::kWgmmaTma ? sm90::dense_decode::kBlockM
                                                                  : sm90::dense_decode::fallback::kRows;
  const int64_t rows = plan.s_q * (plan.h_q / plan.h_kv);
  plan.m_blocks = static_cast<int>((rows + plan.rows_per_cta - 1) / plan.rows_per_cta);
  plan.num_parts = static_cast<int>(std::max<int64_t>(plan.num_sms / plan.h_kv / plan.m_blocks, 1));
  plan.max_splits = sched_max_splits(plan.batch, plan.num_parts);
  int64_t off = 0;
  plan.sched_offset = off, off = align256(off + plan.num_parts * static_cast<int64_t>(sizeof(DecodeSchedEntry)));
  plan.split_offsets_offset = off, off = align256(off + (plan.batch + 1) * 4);
  plan.lse_accum_offset = off, off = align256(off + plan.max_splits * plan.s_q * plan.h_q * 4);
  plan.o_accum_offset = off, off = align256(off + plan.max_splits * plan.s_q * plan.h_q * 512 * 4);
  plan.workspace_bytes = off;
  set_smem_attributes();
  return plan;
}

void dense_decode_schedule(const DenseDecodeParams& p, const DenseDecodePlan& plan, void* workspace, void* stream) {
  sm90::DeviceGuard guard(plan.device);
  char* ws = static_cast<char*>(workspace);
  DecodeSchedConfig cfg;
  cfg.block_size_n = sm90::dense_decode::kBlockN;
  cfg.overhead = kOverheadBlocks;
  cfg.num_parts = plan.num_parts;
  sm90::launch_decode_sched(p.cache_seqlens.ptr<const int32_t>(), static_cast<int32_t>(plan.batch), cfg,
                            reinterpret_cast<DecodeSchedEntry*>(ws + plan.sched_offset),
                            reinterpret_cast<int32_t*>(ws + plan.split_offsets_offset), static_cast<cudaStream_t>(stream));
  FLASHMLA_CUDA_CHECK(cudaGetLastError());
}

void dense_decode_run(const DenseDecodeParams& p, const DenseDecodePlan& plan, void* workspace, void* stream) {
  if (p.q.shape[0] != plan.batch || p.q.shape[1] != plan.s_q || p.q.shape[2] != plan.h_q ||
      p.k_cache.shape[2] != plan.h_kv || p.q.device != plan.device) {
    detail::fail("plan: made for b=" + std::to_string(plan.batch) + " s_q=" + std::to_string(plan.s_q) + " h_q=" +
                 std::to_string(plan.h_q) + " h_kv=" + std::to_string(plan.h_kv) + " on cuda:" +
                 std::to_string(plan.device) + ", called with other shapes or device");
  }
  if (workspace == nullptr) detail::fail("workspace: null; allocate plan.workspace_bytes on the device");
  sm90::DeviceGuard guard(plan.device);
  if (p.q.dtype == DType::kBFloat16) {
    launch<__nv_bfloat16, cutlass::bfloat16_t>(p, plan, workspace, static_cast<cudaStream_t>(stream));
  } else {
    launch<__half, cutlass::half_t>(p, plan, workspace, static_cast<cudaStream_t>(stream));
  }
}

}  // namespace flashmla
