#include "core/checks.h"

#include <sstream>

namespace flashmla::detail {

void fail(const std::string& message) { throw InvalidArgument(message); }

static std::string dims_string(std::initializer_list<Dim> dims) {
  std::string s = "(";
  int i = 0;
  for (const Dim& d : dims) s += std::string(i++ ? ", " : "") + d.name;
  return s + ")";
}

void expect_shape(const TensorView& t, const char* arg, std::initializer_list<Dim> dims) {
  const std::string a(arg);
  if (!t.present()) fail(a + ": required tensor " + dims_string(dims) + " is missing");
  if (t.ndim != static_cast<int>(dims.size())) {
    fail(a + ": expected " + std::to_string(dims.size()) + " dims " + dims_string(dims) + ", got " +
         std::to_string(t.ndim) + " dims with shape " + t.shape_string());
  }
  int i = 0;
  for (const Dim& d : dims) {
    if (t.shape[i] < 0) fail(a + ": size of dim " + std::to_string(i) + " (" + d.name + ") is negative: " + t.shape_string());
    if (d.expected >= 0 && t.shape[i] != d.expected) {
      fail(a + ": dim " + std::to_string(i) + " (" + d.name + ") expected " + std::to_string(d.expected) + ", got " +
           std::to_string(t.shape[i]) + " (shape " + t.shape_string() + ")");
    }
    if (t.stride[i] < 0) fail(a + ": negative stride " + t.stride_string() + " is not supported");
    ++i;
  }
  // Largest byte offset must be representable; it is what every kernel adds to the base pointer.
  int64_t extent = 0;
  bool overflow = false;
  bool empty = false;
  for (int d = 0; d < t.ndim; ++d) {
    if (t.shape[d] == 0) empty = true;
    int64_t term;
    overflow |= __builtin_mul_overflow(t.shape[d] > 0 ? t.shape[d] - 1 : 0, t.stride[d], &term);
    overflow |= __builtin_add_overflow(extent, term, &extent);
  }
  int64_t bytes;
  overflow |= __builtin_mul_overflow(extent + 1, static_cast<int64_t>(dtype_size(t.dtype)), &bytes);
  if (overflow) {
    fail(a + ": shape " + t.shape_string() + " with strides " + t.stride_string() +
         " addresses more than 2^63 bytes (stride product overflows)");
  }
  if (!empty && t.data == nullptr) fail(a + ": data pointer is null for a tensor with shape " + t.shape_string());
}

void expect_dtype(const TensorView& t, const char* arg, std::initializer_list<DType> allowed) {
  std::string names;
  int i = 0;
  for (DType d : allowed) {
    if (t.dtype == d) return;
    names += std::string(i++ ? " or " : "") + dtype_name(d);
  }
  fail(std::string(arg) + ": expected dtype " + names + ", got " + dtype_name(t.dtype));
}

void expect_last_dim_contiguous(const TensorView& t, const char* arg) {
  if (t.ndim > 0 && t.shape[t.ndim - 1] != 1 && t.stride[t.ndim - 1] != 1) {
    fail(std::string(arg) + ": last dim must be contiguous (stride 1), got strides " + t.stride_string());
  }
}

void expect_contiguous(const TensorView& t, const char* arg) {
  if (!t.is_contiguous()) {
    fail(std::string(arg) + ": must be contiguous, got shape " + t.shape_string() + " with strides " +
         t.stride_string());
  }
}

void expect_same_device(const TensorView& t, const char* arg, const TensorView& ref, const char* ref_arg) {
  if (t.present() && t.device != ref.device) {
    auto dev = [](int d) { return d < 0 ? std::string("cpu") : "cuda:" + std::to_string(d); };
    fail(std::string(arg) + ": expected on the device of " + ref_arg + " (" + dev(ref.device) + "), got " +
         dev(t.device));
  }
}

void expect_absent(const TensorView& t, const char* arg, const char* why) {
  if (t.present()) fail(std::string(arg) + ": must not be given " + why);
}

void expect_value(int64_t actual, int64_t expected, const char* what) {
  if (actual != expected) fail(std::string(what) + ": expected " + std::to_string(expected) + ", got " + std::to_string(actual));
}

void expect_positive(int64_t actual, const char* what) {
  if (actual <= 0) fail(std::string(what) + ": expected > 0, got " + std::to_string(actual));
}

}  // namespace flashmla::detail
