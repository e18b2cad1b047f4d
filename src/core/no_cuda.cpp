// Built when the CUDA kernels are switched off.
#include "flashmla/version.h"

namespace flashmla {
bool built_with_cuda() { return false; }
}  // namespace flashmla
namespace flashmla {
int cuda_device_count() { return 0; }
}  // namespace flashmla
