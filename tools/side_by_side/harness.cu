// Side-by-side timing of DeepSeek's FlashMLA sm90 dense decode (main kernel + combine), for comparisons on the same
// GPU in the same session as flashmla-bench. Built by build.sh against a FlashMLA checkout given on its command line;
// nothing of FlashMLA is in this repository. Not part of the library, its build or its CI.
//
// usage: flashmla-harness b s_q s_k h_q [reps=50] [varlen=0]
//   q (b, s_q, h_q, 576) and a paged KV cache (page 64, h_kv = 1) of random bf16, a shuffled block table; the schedule
//   is built once (as an engine reuses it across layers); each call is preceded by a 512 MiB memset (L2 flush) and
//   timed with CUDA events; prints the median main-kernel and main + combine times. varlen=1 draws the lengths from
//   N(s_k, s_k / 2) clipped at s_q, like the targets' "v" cases, and shifts them to the total of FlashMLA's run in the
//   target table, as flashmla-bench does (tools/bench/varlen.h; a different draw, the same work).
#include <cuda_runtime.h>
#include <cutlass/bfloat16.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "params.h"
#include "tools/bench/varlen.h"
#include "sm90/decode/dense/splitkv_mla.h"
#include "smxx/decode/combine/combine.h"
#include "smxx/decode/get_decoding_sched_meta/get_decoding_sched_meta.h"

#define CK(x)                                                                     \
  do {                                                                            \
    cudaError_t e_ = (x);                                                         \
    if (e_ != cudaSuccess) {                                                      \
      std::fprintf(stderr, "%s: %s\n", #x, cudaGetErrorString(e_));               \
      std::exit(1);                                                               \
    }                                                                             \
  } while (0)

__global__ void fill_random(cutlass::bfloat16_t* p, size_t n, uint32_t seed) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    uint32_t h = static_cast<uint32_t>(i) * 2654435761u ^ seed;
    h ^= h >> 13, h *= 0x5bd1e995u, h ^= h >> 15;
    p[i] = cutlass::bfloat16_t((h & 0xffff) / 65536.f - 0.5f);
  }
}

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s b s_q s_k h_q [reps=50] [varlen=0]\n", argv[0]);
    return 2;
  }
  const int b = std::atoi(argv[1]), s_q = std::atoi(argv[2]), s_k = std::atoi(argv[3]), h_q = std::atoi(argv[4]);
  const int reps = argc > 5 ? std::atoi(argv[5]) : 50, varlen = argc > 6 ? std::atoi(argv[6]) : 0;
  const int h_k = 1, d = 576, dv = 512, page = 64;

  std::mt19937 rng(1);
  std::normal_distribution<float> len_dist(s_k, s_k / 2.f);
  std::vector<int> lens(b);
  for (int& l : lens) l = varlen ? std::max(s_q, static_cast<int>(len_dist(rng))) : s_k;
  if (varlen) flashmla::bench::match_total(lens, std::llround(flashmla::bench::flashmla_varlen_mean(s_k) * b), s_q);
  const int max_blocks = (*std::max_element(lens.begin(), lens.end()) + page - 1) / page;
  const int num_blocks = b * max_blocks;
  std::vector<int> block_table(num_blocks);
  for (int i = 0; i < num_blocks; ++i) block_table[i] = i;
  std::shuffle(block_table.begin(), block_table.end(), rng);

  int sms = 0;
  CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  const int q_seq_per_hk = s_q * h_q / h_k;
  const int num_sm_parts = std::max(sms / h_k / ((q_seq_per_hk + 63) / 64), 1);
  const int total_splits = b + num_sm_parts;

  cutlass::bfloat16_t *q, *k, *o;
  float *lse, *lse_accum, *o_accum;
  int *d_block_table, *d_lens, *num_splits;
  DecodingSchedMeta* meta;
  void* flush;
  const size_t flush_bytes = size_t{512} << 20;
  CK(cudaMalloc(&q, size_t{2} * b * s_q * h_q * d));
  CK(cudaMalloc(&k, size_t{2} * num_blocks * page * d));
  CK(cudaMalloc(&o, size_t{2} * b * s_q * h_q * dv));
  CK(cudaMalloc(&lse, size_t{4} * b * s_q * h_q));
  CK(cudaMalloc(&lse_accum, size_t{4} * total_splits * h_q * s_q));
  CK(cudaMalloc(&o_accum, size_t{4} * total_splits * h_q * s_q * dv));
  CK(cudaMalloc(&d_block_table, sizeof(int) * num_blocks));
  CK(cudaMalloc(&d_lens, sizeof(int) * b));
  CK(cudaMalloc(&num_splits, sizeof(int) * (b + 1)));
  CK(cudaMalloc(&meta, sizeof(DecodingSchedMeta) * num_sm_parts));
  CK(cudaMalloc(&flush, flush_bytes));
  CK(cudaMemcpy(d_block_table, block_table.data(), sizeof(int) * num_blocks, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(d_lens, lens.data(), sizeof(int) * b, cudaMemcpyHostToDevice));
  fill_random<<<1024, 256>>>(q, size_t{1} * b * s_q * h_q * d, 1);
  fill_random<<<1024, 256>>>(k, size_t{1} * num_blocks * page * d, 2);
  cudaStream_t stream;
  CK(cudaStreamCreate(&stream));

  GetDecodeSchedMetaParams sched = {b, s_q, 64, 5, -1, -1, nullptr, nullptr, d_lens, meta, num_splits, num_sm_parts,
                                    stream};
  DenseAttnDecodeParams p{};
  p.b = b, p.s_q = s_q, p.q_seq_per_hk = q_seq_per_hk, p.d = d, p.d_v = dv, p.h_q = h_q, p.h_k = h_k;
  p.num_blocks = num_blocks, p.q_head_per_hk = h_q / h_k, p.is_causal = false;
  p.scale_softmax = 1.f / std::sqrt(static_cast<float>(d));
  p.scale_softmax_log2 = p.scale_softmax * 1.4426950408889634f;
  p.q_ptr = q, p.k_ptr = k, p.o_ptr = o, p.softmax_lse_ptr = lse;
  // q as (b, q_seq_per_hk, h_k, d) and out as (b, h_k, q_seq_per_hk, dv), contiguous (h_k = 1)
  p.q_batch_stride = int64_t{1} * s_q * h_q * d, p.q_row_stride = d, p.q_head_stride = d;
  p.k_batch_stride = int64_t{1} * page * h_k * d, p.k_row_stride = h_k * d, p.k_head_stride = d;
  p.o_batch_stride = int64_t{1} * h_k * q_seq_per_hk * dv, p.o_row_stride = dv;
  p.o_head_stride = int64_t{1} * q_seq_per_hk * dv;
  p.block_table = d_block_table, p.block_table_batch_stride = max_blocks, p.page_block_size = page;
  p.seqlens_k_ptr = d_lens, p.tile_scheduler_metadata_ptr = meta, p.num_sm_parts = num_sm_parts;
  p.num_splits_ptr = num_splits, p.total_num_splits = total_splits;
  p.softmax_lseaccum_ptr = lse_accum, p.oaccum_ptr = o_accum, p.stream = stream;
  CombineParams combine = {b, s_q, h_q, dv, lse, o, h_k * q_seq_per_hk, h_q, h_q * s_q * dv, h_q * dv, dv,
                           lse_accum, o_accum, h_k * q_seq_per_hk, h_q, h_q * s_q * dv, h_q * dv, dv,
                           meta, num_splits, num_sm_parts, nullptr, stream};

  smxx::decode::run_get_decoding_sched_meta_kernel(sched);
  CK(cudaStreamSynchronize(stream));
  cudaEvent_t e0, e1, e2;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  CK(cudaEventCreate(&e2));
  std::vector<float> main_us, total_us;
  for (int r = 0; r < reps + 3; ++r) {  // 3 warm-up calls
    CK(cudaMemsetAsync(flush, r, flush_bytes, stream));
    CK(cudaEventRecord(e0, stream));
    sm90::run_flash_splitkv_mla_kernel<cutlass::bfloat16_t>(p);
    CK(cudaEventRecord(e1, stream));
    smxx::decode::run_flash_mla_combine_kernel<cutlass::bfloat16_t>(combine);
    CK(cudaEventRecord(e2, stream));
    CK(cudaStreamSynchronize(stream));
    float a = 0, c = 0;
    CK(cudaEventElapsedTime(&a, e0, e1));
    CK(cudaEventElapsedTime(&c, e0, e2));
    if (r >= 3) main_us.push_back(a * 1000), total_us.push_back(c * 1000);
  }
  std::sort(main_us.begin(), main_us.end()), std::sort(total_us.begin(), total_us.end());
  std::printf("flashmla b=%d s_q=%d s_k=%d%s h_q=%d parts=%d: main %.1f us, main+combine %.1f us (median of %d)\n", b,
              s_q, s_k, varlen ? "v" : "", h_q, num_sm_parts, main_us[main_us.size() / 2],
              total_us[total_us.size() / 2], reps);
  return 0;
}
