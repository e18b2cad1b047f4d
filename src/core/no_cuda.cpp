// Built when the CUDA kernels are switched off: the GPU entry points exist and say why they cannot run.
#include "flashmla/dense_decode.h"
#include "flashmla/errors.h"
#include "flashmla/version.h"

namespace flashmla {
namespace {
[[noreturn]] void no_cuda(const char* what) {
  throw Unsupported(std::string(what) + ": this build of FlashMLA-C++ has no CUDA kernels (built without nvcc)");
}
}  // namespace

bool built_with_cuda() { return false; }
int cuda_device_count() { return 0; }

int dense_decode_num_parts(int, int64_t, int64_t, int64_t) { no_cuda("dense_decode_num_parts"); }
DenseDecodePlan plan_dense_decode(const DenseDecodeParams&, int) { no_cuda("plan_dense_decode"); }
void dense_decode_schedule(const TensorView&, const DenseDecodeSchedule&, void*) { no_cuda("dense_decode_schedule"); }
void dense_decode_run(const DenseDecodeParams&, const DenseDecodePlan&, const DenseDecodeSchedule&, void*, void*) {
  no_cuda("dense_decode_run");
}

}  // namespace flashmla
