// Element access on host TensorViews for the CPU reference: offsets from indices and strides, bit-exact decode of the
// storage dtypes to float, rounding stores.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include "core/checks.h"
#include "core/numeric.h"
#include "flashmla/types.h"

namespace flashmla::ref {

template <typename... I>
inline int64_t offset_of(const TensorView& t, I... idx) {
  const int64_t v[] = {static_cast<int64_t>(idx)...};
  int64_t o = 0;
  for (size_t d = 0; d < sizeof...(I); ++d) o += v[d] * t.stride[d];
  return o;
}

/// Decodes element `off` (in elements) of a bf16 / fp16 / float32 tensor.
inline float load_float(const TensorView& t, int64_t off) {
  switch (t.dtype) {
    case DType::kBFloat16: return bf16_to_float(t.ptr<const uint16_t>()[off]);
    case DType::kFloat16: return fp16_to_float(t.ptr<const uint16_t>()[off]);
    case DType::kFloat32: return t.ptr<const float>()[off];
    default: detail::fail(std::string("internal: load_float on dtype ") + dtype_name(t.dtype));
  }
}

/// Stores v rounded to nearest even into a bf16 / fp16 / float32 element.
inline void store_float(const TensorView& t, int64_t off, double v) {
  const float f = static_cast<float>(v);
  switch (t.dtype) {
    case DType::kBFloat16: t.ptr<uint16_t>()[off] = float_to_bf16(f); break;
    case DType::kFloat16: t.ptr<uint16_t>()[off] = float_to_fp16(f); break;
    case DType::kFloat32: t.ptr<float>()[off] = f; break;
    default: detail::fail(std::string("internal: store_float on dtype ") + dtype_name(t.dtype));
  }
}

inline int32_t load_i32(const TensorView& t, int64_t off) { return t.ptr<const int32_t>()[off]; }

/// Every tensor the reference touches must be in host memory.
inline void expect_host(const TensorView& t, const char* arg) {
  if (t.present() && t.is_cuda()) {
    detail::fail(std::string(arg) + ": the CPU reference needs host tensors, got cuda:" + std::to_string(t.device));
  }
}

}  // namespace flashmla::ref
