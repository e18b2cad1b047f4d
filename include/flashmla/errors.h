// Error types thrown by every FlashMLA-C++ entry point.
//
// InvalidArgument: an argument breaks the documented contract (shape, dtype, stride, value). The message names the
//                  argument, what was expected and what was found, e.g.
//                  "q: expected dtype bf16 or fp16, got float32".
// CudaError:       a CUDA runtime/driver call failed; the message names the call and the CUDA error string.
// Unsupported:     the arguments are valid but no backend implements this combination (yet), e.g. a GPU
//                  architecture without a kernel. Derives from InvalidArgument so callers that only distinguish
//                  "my input" from "CUDA failed" still can.
#pragma once

#include <stdexcept>
#include <string>

namespace flashmla {

class InvalidArgument : public std::invalid_argument {
 public:
  explicit InvalidArgument(const std::string& what) : std::invalid_argument(what) {}
};

class Unsupported : public InvalidArgument {
 public:
  explicit Unsupported(const std::string& what) : InvalidArgument(what) {}
};

class CudaError : public std::runtime_error {
 public:
  CudaError(const std::string& call, int code, const std::string& message)
      : std::runtime_error(call + " failed with CUDA error " + std::to_string(code) + ": " + message), code_(code) {}
  int code() const noexcept { return code_; }

 private:
  int code_;
};

}  // namespace flashmla
