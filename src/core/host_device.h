// FLASHMLA_HD marks functions compiled for both host and device, so the CPU tests and the CUDA kernels share one
// definition (numeric formats, scheduler).
#pragma once

#if defined(__CUDACC__)
#define FLASHMLA_HD __host__ __device__ __forceinline__
#else
#define FLASHMLA_HD inline
#endif
