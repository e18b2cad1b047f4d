#include <sstream>

#include "flashmla/errors.h"
#include "flashmla/types.h"
#include "flashmla/version.h"

namespace flashmla {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::kBFloat16: return "bf16";
    case DType::kFloat16: return "fp16";
    case DType::kFloat8E4M3: return "fp8_e4m3";
    case DType::kFloat8E8M0: return "fp8_e8m0";
    case DType::kFloat32: return "float32";
    case DType::kInt32: return "int32";
    case DType::kUInt8: return "uint8";
    case DType::kInt8: return "int8";
  }
  return "unknown";
}

const char* version() { return "0.1.0"; }

static TensorView make_view(void* data, DType dtype, std::initializer_list<int64_t> shape, int device) {
  if (shape.size() > TensorView::kMaxDims) {
    throw InvalidArgument("TensorView: at most " + std::to_string(TensorView::kMaxDims) + " dims, got " +
                          std::to_string(shape.size()));
  }
  TensorView t;
  t.data = data;
  t.dtype = dtype;
  t.device = device;
  t.ndim = static_cast<int>(shape.size());
  int i = 0;
  for (int64_t s : shape) t.shape[i++] = s;
  return t;
}

TensorView TensorView::contiguous(void* data, DType dtype, std::initializer_list<int64_t> shape, int device) {
  TensorView t = make_view(data, dtype, shape, device);
  int64_t s = 1;
  for (int d = t.ndim - 1; d >= 0; --d) {
    t.stride[d] = s;
    s *= t.shape[d] > 0 ? t.shape[d] : 1;
  }
  return t;
}

TensorView TensorView::strided(void* data, DType dtype, std::initializer_list<int64_t> shape,
                               std::initializer_list<int64_t> strides, int device) {
  if (strides.size() != shape.size()) {
    throw InvalidArgument("TensorView: " + std::to_string(shape.size()) + " sizes but " +
                          std::to_string(strides.size()) + " strides");
  }
  TensorView t = make_view(data, dtype, shape, device);
  int i = 0;
  for (int64_t s : strides) t.stride[i++] = s;
  return t;
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int d = 0; d < ndim; ++d) n *= shape[d];
  return n;
}

bool TensorView::is_contiguous() const {
  int64_t s = 1;
  for (int d = ndim - 1; d >= 0; --d) {
    if (shape[d] != 1 && stride[d] != s) return false;
    s *= shape[d];
  }
  return true;
}

static std::string join(const int64_t* v, int n) {
  std::ostringstream os;
  os << "(";
  for (int i = 0; i < n; ++i) os << (i ? ", " : "") << v[i];
  os << (n == 1 ? ",)" : ")");
  return os.str();
}

std::string TensorView::shape_string() const { return join(shape, ndim); }
std::string TensorView::stride_string() const { return join(stride, ndim); }

}  // namespace flashmla
