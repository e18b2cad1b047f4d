// flash_mla._C: the Python binding of the torch-free C++ API (nanobind). It includes no torch header: the Python
// layer (flash_mla/_ops.py) allocates tensors with torch's caching allocator, picks the current stream and passes each
// tensor here as a descriptor tuple (data_ptr, dtype code, shape, strides in elements, device index or -1 for host).
//
// Exceptions: flashmla::Unsupported -> NotImplementedError, flashmla::InvalidArgument -> ValueError,
// flashmla::CudaError and anything else -> RuntimeError. Every message names the offending argument.
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "flashmla/dense_decode.h"
#include "flashmla/errors.h"
#include "flashmla/reference.h"
#include "flashmla/validate.h"
#include "flashmla/version.h"

namespace nb = nanobind;
using namespace flashmla;

namespace {

// (data_ptr, dtype code = int(flashmla::DType), shape, strides, device or -1)
using TensorDesc = std::tuple<uintptr_t, int, std::vector<int64_t>, std::vector<int64_t>, int>;

TensorView view(const TensorDesc& d, const char* arg) {
  const auto& [ptr, dtype, shape, strides, device] = d;
  if (shape.size() != strides.size() || shape.size() > TensorView::kMaxDims) {
    throw InvalidArgument(std::string(arg) + ": rank " + std::to_string(shape.size()) + " is not supported");
  }
  if (dtype < static_cast<int>(DType::kBFloat16) || dtype > static_cast<int>(DType::kInt8)) {
    throw InvalidArgument(std::string(arg) + ": unknown dtype code " + std::to_string(dtype));
  }
  TensorView t;
  t.data = reinterpret_cast<void*>(ptr);
  t.dtype = static_cast<DType>(dtype);
  t.ndim = static_cast<int>(shape.size());
  for (int i = 0; i < t.ndim; ++i) t.shape[i] = shape[i], t.stride[i] = strides[i];
  t.device = device;
  return t;
}

TensorView view(const std::optional<TensorDesc>& d, const char* arg) { return d ? view(*d, arg) : TensorView{}; }

void* stream_of(uintptr_t s) { return reinterpret_cast<void*>(s); }

/// A validated, planned dense decode call: the views of its tensors and the plan.
struct DenseDecodeCall {
  DenseDecodeParams params;
  DenseDecodePlan plan;
};

}  // namespace

NB_MODULE(_C, m) {
  m.doc() = "FlashMLA-C++ binding (torch-free); use the flash_mla package, not this module directly.";

  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const Unsupported& e) {
      PyErr_SetString(PyExc_NotImplementedError, e.what());
    } catch (const InvalidArgument& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const CudaError& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    }
  });

  m.def("version", [] { return std::string(flashmla::version()); });
  m.def("built_with_cuda", &flashmla::built_with_cuda);
  m.def("cuda_device_count", &flashmla::cuda_device_count);

  // DType codes, so that the Python side never hard-codes the enum's values.
  nb::dict codes;
  codes["bfloat16"] = static_cast<int>(DType::kBFloat16);
  codes["float16"] = static_cast<int>(DType::kFloat16);
  codes["float8_e4m3fn"] = static_cast<int>(DType::kFloat8E4M3);
  codes["float8_e8m0fnu"] = static_cast<int>(DType::kFloat8E8M0);
  codes["float32"] = static_cast<int>(DType::kFloat32);
  codes["int32"] = static_cast<int>(DType::kInt32);
  codes["uint8"] = static_cast<int>(DType::kUInt8);
  codes["int8"] = static_cast<int>(DType::kInt8);
  m.attr("dtype_codes") = codes;

  m.def("dense_decode_num_parts", &dense_decode_num_parts, nb::arg("device"), nb::arg("q_rows_per_kv_head"),
        nb::arg("h_kv"), nb::arg("page_block_size") = 64);

  m.def(
      "dense_decode_schedule",
      [](const TensorDesc& cache_seqlens, const TensorDesc& tile_scheduler_metadata, const TensorDesc& num_splits,
         uintptr_t stream) {
        const DenseDecodeSchedule s{view(tile_scheduler_metadata, "tile_scheduler_metadata"),
                                    view(num_splits, "num_splits")};
        dense_decode_schedule(view(cache_seqlens, "cache_seqlens"), s, stream_of(stream));
      },
      nb::arg("cache_seqlens"), nb::arg("tile_scheduler_metadata"), nb::arg("num_splits"), nb::arg("stream"));

  nb::class_<DenseDecodeCall>(m, "DenseDecodeCall")
      .def_prop_ro("workspace_bytes", [](const DenseDecodeCall& c) { return c.plan.workspace_bytes; })
      .def_prop_ro("num_parts", [](const DenseDecodeCall& c) { return c.plan.num_parts; })
      .def_prop_ro("kernel", [](const DenseDecodeCall& c) {
        return c.plan.kernel == DenseDecodeKernel::kWgmmaTma ? "wgmma_tma" : "fallback";
      });

  m.def(
      "plan_dense_decode",
      [](const TensorDesc& q, const TensorDesc& k_cache, const TensorDesc& block_table, const TensorDesc& cache_seqlens,
         const TensorDesc& out, const TensorDesc& lse, int head_dim_v, float softmax_scale, bool causal,
         int num_parts) {
        DenseDecodeCall c;
        c.params.q = view(q, "q");
        c.params.k_cache = view(k_cache, "k_cache");
        c.params.block_table = view(block_table, "block_table");
        c.params.cache_seqlens = view(cache_seqlens, "cache_seqlens");
        c.params.out = view(out, "out");
        c.params.lse = view(lse, "lse");
        c.params.d_v = head_dim_v;
        c.params.softmax_scale = softmax_scale;
        c.params.causal = causal;
        c.plan = plan_dense_decode(c.params, num_parts);
        return c;
      },
      nb::arg("q"), nb::arg("k_cache"), nb::arg("block_table"), nb::arg("cache_seqlens"), nb::arg("out"),
      nb::arg("lse"), nb::arg("head_dim_v"), nb::arg("softmax_scale"), nb::arg("causal"), nb::arg("num_parts"));

  m.def(
      "dense_decode_run",
      [](const DenseDecodeCall& c, const TensorDesc& tile_scheduler_metadata, const TensorDesc& num_splits,
         uintptr_t workspace, uintptr_t stream) {
        const DenseDecodeSchedule s{view(tile_scheduler_metadata, "tile_scheduler_metadata"),
                                    view(num_splits, "num_splits")};
        dense_decode_run(c.params, c.plan, s, reinterpret_cast<void*>(workspace), stream_of(stream));
      },
      nb::arg("call"), nb::arg("tile_scheduler_metadata"), nb::arg("num_splits"), nb::arg("workspace"),
      nb::arg("stream"));

  // The CPU reference (host tensors), so that the Python test suite can check flash_mla.testing against the C++
  // oracle without a GPU.
  m.def(
      "ref_dense_decode",
      [](const TensorDesc& q, const TensorDesc& k_cache, const TensorDesc& block_table, const TensorDesc& cache_seqlens,
         const TensorDesc& out, const TensorDesc& lse, int head_dim_v, float softmax_scale, bool causal) {
        DenseDecodeParams p;
        p.q = view(q, "q"), p.k_cache = view(k_cache, "k_cache"), p.block_table = view(block_table, "block_table");
        p.cache_seqlens = view(cache_seqlens, "cache_seqlens"), p.out = view(out, "out"), p.lse = view(lse, "lse");
        p.d_v = head_dim_v, p.softmax_scale = softmax_scale, p.causal = causal;
        nb::gil_scoped_release release;
        ref::dense_decode(p);
      },
      nb::arg("q"), nb::arg("k_cache"), nb::arg("block_table"), nb::arg("cache_seqlens"), nb::arg("out"),
      nb::arg("lse"), nb::arg("head_dim_v"), nb::arg("softmax_scale"), nb::arg("causal"));

  m.def(
      "ref_sparse_prefill",
      [](const TensorDesc& q, const TensorDesc& kv, const TensorDesc& indices, const std::optional<TensorDesc>& attn_sink,
         const std::optional<TensorDesc>& topk_length, const TensorDesc& out, const TensorDesc& max_logits,
         const TensorDesc& lse, int d_v, float softmax_scale) {
        SparsePrefillParams p;
        p.q = view(q, "q"), p.kv = view(kv, "kv"), p.indices = view(indices, "indices");
        p.attn_sink = view(attn_sink, "attn_sink"), p.topk_length = view(topk_length, "topk_length");
        p.out = view(out, "out"), p.max_logits = view(max_logits, "max_logits"), p.lse = view(lse, "lse");
        p.d_v = d_v, p.softmax_scale = softmax_scale;
        nb::gil_scoped_release release;
        ref::sparse_prefill(p);
      },
      nb::arg("q"), nb::arg("kv"), nb::arg("indices"), nb::arg("attn_sink").none(), nb::arg("topk_length").none(),
      nb::arg("out"), nb::arg("max_logits"), nb::arg("lse"), nb::arg("d_v"), nb::arg("softmax_scale"));

  m.def(
      "ref_sparse_decode",
      [](const TensorDesc& q, const TensorDesc& kv_cache, const TensorDesc& indices,
         const std::optional<TensorDesc>& topk_length, const std::optional<TensorDesc>& attn_sink,
         const std::optional<TensorDesc>& extra_kv_cache, const std::optional<TensorDesc>& extra_indices,
         const std::optional<TensorDesc>& extra_topk_length, const TensorDesc& out, const TensorDesc& lse, int d_v,
         float softmax_scale) {
        SparseDecodeParams p;
        p.q = view(q, "q"), p.kv_cache = view(kv_cache, "kv_cache"), p.indices = view(indices, "indices");
        p.topk_length = view(topk_length, "topk_length"), p.attn_sink = view(attn_sink, "attn_sink");
        p.extra_kv_cache = view(extra_kv_cache, "extra_kv_cache");
        p.extra_indices = view(extra_indices, "extra_indices");
        p.extra_topk_length = view(extra_topk_length, "extra_topk_length");
        p.out = view(out, "out"), p.lse = view(lse, "lse");
        p.format = p.q.ndim == 4 && p.q.shape[3] == head_dim_qk(KvCacheFormat::kModel1) ? KvCacheFormat::kModel1
                                                                                        : KvCacheFormat::kV32;
        p.d_v = d_v, p.softmax_scale = softmax_scale;
        nb::gil_scoped_release release;
        ref::sparse_decode(p);
      },
      nb::arg("q"), nb::arg("kv_cache"), nb::arg("indices"), nb::arg("topk_length").none(),
      nb::arg("attn_sink").none(), nb::arg("extra_kv_cache").none(), nb::arg("extra_indices").none(),
      nb::arg("extra_topk_length").none(), nb::arg("out"), nb::arg("lse"), nb::arg("d_v"), nb::arg("softmax_scale"));

  m.def(
      "ref_quantize_kv_cache",
      [](const TensorDesc& kv, const TensorDesc& kv_fp8) {
        KvQuantizeParams p;
        p.kv = view(kv, "kv"), p.kv_fp8 = view(kv_fp8, "kv_fp8");
        p.format = p.kv.ndim == 4 && p.kv.shape[3] == head_dim_qk(KvCacheFormat::kModel1) ? KvCacheFormat::kModel1
                                                                                          : KvCacheFormat::kV32;
        nb::gil_scoped_release release;
        ref::quantize_kv_cache(p);
      },
      nb::arg("kv"), nb::arg("kv_fp8"));
}
