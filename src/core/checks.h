// Building blocks of argument validation. Every failure throws InvalidArgument with a message that starts with the
// argument's name, then says what was expected and what was found.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>

#include "flashmla/errors.h"
#include "flashmla/types.h"

namespace flashmla::detail {

struct Dim {
  const char* name;
  int64_t expected;  // < 0: any size
};

[[noreturn]] void fail(const std::string& message);

/// Present, with exactly dims.size() dims of the given sizes, non-negative strides, a non-null pointer when it has
/// elements, and an addressable extent (largest offset in bytes fits in int64).
void expect_shape(const TensorView& t, const char* arg, std::initializer_list<Dim> dims);
void expect_dtype(const TensorView& t, const char* arg, std::initializer_list<DType> allowed);
void expect_last_dim_contiguous(const TensorView& t, const char* arg);
void expect_contiguous(const TensorView& t, const char* arg);
void expect_same_device(const TensorView& t, const char* arg, const TensorView& ref, const char* ref_arg);
void expect_absent(const TensorView& t, const char* arg, const char* why);
void expect_value(int64_t actual, int64_t expected, const char* what);
void expect_positive(int64_t actual, const char* what);

}  // namespace flashmla::detail
