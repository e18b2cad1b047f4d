// Element types and the strided tensor view that every FlashMLA-C++ entry point takes.
//
// A TensorView does not own memory. Shapes and strides are in *elements* of `dtype`; for the FP8 KV cache
// (dtype kUInt8, one byte per element) strides are therefore in bytes. `device` is -1 for host memory and the CUDA
// device ordinal otherwise. An absent optional tensor is a default-constructed TensorView (data == nullptr,
// ndim == 0); see TensorView::present().
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>

namespace flashmla {

enum class DType : int {
  kBFloat16,     // bfloat16 (1-8-7), stored as uint16_t
  kFloat16,      // IEEE binary16 (1-5-10), stored as uint16_t
  kFloat8E4M3,   // float8_e4m3fn (OCP FP8 E4M3, no inf, 0x7f/0xff = NaN, max 448)
  kFloat8E8M0,   // float8_e8m0fnu (unsigned power of two 2^(e-127), 0xff = NaN), used for MODEL1 scales
  kFloat32,
  kInt32,
  kUInt8,        // raw bytes: the FP8 KV cache formats are byte-addressed
  kInt8,
};

/// Size of one element in bytes.
constexpr int dtype_size(DType t) {
  switch (t) {
    case DType::kBFloat16:
    case DType::kFloat16:
      return 2;
    case DType::kFloat32:
    case DType::kInt32:
      return 4;
    default:
      return 1;
  }
}

/// Short lowercase name ("bf16", "fp16", "fp8_e4m3", "fp8_e8m0", "float32", "int32", "uint8", "int8").
const char* dtype_name(DType t);

/// Host memory marker for TensorView::device.
constexpr int kCpuDevice = -1;

struct TensorView {
  static constexpr int kMaxDims = 6;

  void* data = nullptr;
  DType dtype = DType::kFloat32;
  int ndim = 0;
  int64_t shape[kMaxDims] = {};
  int64_t stride[kMaxDims] = {};  // in elements
  int device = kCpuDevice;

  /// A view with the given shape and row-major (C-contiguous) strides.
  static TensorView contiguous(void* data, DType dtype, std::initializer_list<int64_t> shape, int device = kCpuDevice);
  /// A view with explicit strides (in elements). shape and strides must have the same length.
  static TensorView strided(void* data, DType dtype, std::initializer_list<int64_t> shape,
                            std::initializer_list<int64_t> strides, int device = kCpuDevice);

  bool present() const { return data != nullptr || ndim > 0; }
  int64_t size(int d) const { return shape[d < 0 ? d + ndim : d]; }
  int64_t stride_of(int d) const { return stride[d < 0 ? d + ndim : d]; }
  int64_t numel() const;
  bool is_contiguous() const;
  bool is_cuda() const { return device >= 0; }
  /// "(2, 64, 1, 576)"
  std::string shape_string() const;
  std::string stride_string() const;

  template <typename T>
  T* ptr() const {
    return static_cast<T*>(data);
  }
};

}  // namespace flashmla
