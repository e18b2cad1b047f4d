// Every class of bad input is rejected with InvalidArgument whose message names the argument and the expectation.
#include <functional>

#include "tests/cpu/sparse_cases.h"

namespace flashmla::test {
namespace {

template <typename P>
struct BadInput {
  const char* what;
  std::function<void(P&)> mutate;
  const char* message;  // must appear in the error text
};

template <typename P, typename Run>
void expect_all_rejected(const P& good, const std::vector<BadInput<P>>& cases, Run run) {
  ASSERT_NO_THROW(run(good)) << "the unmodified arguments must be accepted";
  for (const auto& c : cases) {
    P p = good;
    c.mutate(p);
    try {
      run(p);
      ADD_FAILURE() << c.what << ": accepted";
    } catch (const InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find(c.message), std::string::npos)
          << c.what << ": message \"" << e.what() << "\" lacks \"" << c.message << "\"";
    } catch (const std::exception& e) {
      ADD_FAILURE() << c.what << ": wrong exception type: " << e.what();
    }
  }
}

TEST(Validation, DenseDecodeRejectsBadArguments) {
  Rng r(1);
  DenseCase c = make_dense_case(r, 2, 2, 4, 2, 16, 30, false, true, DType::kBFloat16);
  using P = DenseDecodeParams;
  std::vector<BadInput<P>> cases = {
      {"q dtype", [&](P& p) { p.q.dtype = DType::kFloat32; }, "q: expected dtype bf16 or fp16, got float32"},
      {"k_cache dtype differs from q", [&](P& p) { p.k_cache.dtype = DType::kFloat16; }, "k_cache: expected dtype bf16, got fp16"},
      {"q rank", [&](P& p) { p.q.ndim = 3; }, "q: expected 4 dims (b, s_q, h_q, d_qk), got 3"},
      {"q last dim strided", [&](P& p) { p.q.stride[3] = 2; }, "q: last dim must be contiguous"},
      {"k_cache last dim strided", [&](P& p) { p.k_cache.stride[3] = 2; }, "k_cache: last dim must be contiguous"},
      {"d_qk", [&](P& p) { p.q.shape[3] = 128; }, "q: d_qk (last dim) must be 576 or 512, got 128"},
      {"d_v", [&](P& p) { p.d_v = 256; }, "d_v: expected 512, got 256"},
      {"h_q % h_kv", [&](P& p) { p.k_cache.shape[2] = 3; }, "h_q (4) must be a multiple of h_kv (3)"},
      {"batch 0", [&](P& p) { p.q.shape[0] = 0; }, "q: batch size b: expected > 0, got 0"},
      {"s_q 0", [&](P& p) { p.q.shape[1] = 0; }, "q: s_q: expected > 0, got 0"},
      {"page 0", [&](P& p) { p.k_cache.shape[1] = 0; }, "k_cache: page_block_size: expected > 0"},
      {"k_cache head dim", [&](P& p) { p.k_cache.shape[3] = 512; }, "k_cache: dim 3 (d_qk) expected 576, got 512"},
      {"block_table dtype", [&](P& p) { p.block_table.dtype = DType::kFloat32; }, "block_table: expected dtype int32"},
      {"block_table batch", [&](P& p) { p.block_table.shape[0] = 3; }, "block_table: dim 0 (b) expected 2, got 3"},
      {"cache_seqlens strided", [&](P& p) { p.cache_seqlens.stride[0] = 2; }, "cache_seqlens: must be contiguous"},
      {"cache_seqlens rank", [&](P& p) { p.cache_seqlens.ndim = 2; }, "cache_seqlens: expected 1 dims (b)"},
      {"out dtype", [&](P& p) { p.out.dtype = DType::kFloat16; }, "out: expected dtype bf16, got fp16"},
      {"out shape", [&](P& p) { p.out.shape[2] = 8; }, "out: dim 2 (h_q) expected 4, got 8"},
      {"lse shape", [&](P& p) { p.lse.shape[1] = 2; }, "lse: dim 1 (h_q) expected 4, got 2"},
      {"lse dtype", [&](P& p) { p.lse.dtype = DType::kBFloat16; }, "lse: expected dtype float32"},
      {"missing lse", [&](P& p) { p.lse = TensorView{}; }, "lse: required tensor (b, h_q, s_q) is missing"},
      {"null q", [&](P& p) { p.q.data = nullptr; }, "q: data pointer is null"},
      {"negative size", [&](P& p) { p.block_table.shape[1] = -4; }, "block_table: size of dim 1 (max_blocks_per_seq) is negative"},
      {"negative stride", [&](P& p) { p.k_cache.stride[0] = -1; }, "k_cache: negative stride"},
      {"stride overflow", [&](P& p) { p.k_cache.stride[0] = int64_t{1} << 62; }, "k_cache: shape"},
      {"device mismatch", [&](P& p) { p.k_cache.device = 0; }, "k_cache: expected on the device of q (cpu), got cuda:0"},
      {"scale NaN", [&](P& p) { p.softmax_scale = NAN; }, "softmax_scale: expected a finite non-zero value"},
      {"scale 0", [&](P& p) { p.softmax_scale = 0.f; }, "softmax_scale: expected a finite non-zero value"},
  };
  expect_all_rejected<P>(c.params(), cases, [](const P& p) { validate(p); });

  // Contents, which only the reference (or the GPU checked mode) reads.
  std::vector<BadInput<P>> contents = {
      {"negative length", [&](P&) { c.seqlens[1] = -5; }, "cache_seqlens[1] = -5 is negative"},
      {"length past block table", [&](P&) { c.seqlens[0] = 1000; }, "cache_seqlens[0] = 1000 exceeds what block_table holds"},
      {"block id out of range", [&](P&) { c.block_table[0] = 1 << 20; }, "block_table[0][0] = 1048576 is not a block of k_cache"},
      {"device tensors to the CPU reference",
       [&](P& p) {
         for (TensorView* t : {&p.q, &p.k_cache, &p.block_table, &p.cache_seqlens, &p.out, &p.lse}) t->device = 0;
       },
       "q: the CPU reference needs host tensors, got cuda:0"},
  };
  const DenseCase saved = c;
  for (const auto& bad : contents) {
    c = saved;
    P p = c.params();
    bad.mutate(p);
    try {
      ref::dense_decode(p);
      ADD_FAILURE() << bad.what << ": accepted";
    } catch (const InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find(bad.message), std::string::npos) << bad.what << ": " << e.what();
    }
  }
}

TEST(Validation, SparseDecodeRejectsBadArguments) {
  Rng r(2);
  SparseDecodeCase c = make_sparse_decode_case(r, KvCacheFormat::kModel1, 2, 1, 4, 64, 100, 16,
                                               {.extra = true, .topk_length = true, .sink = true}, 64, 8);
  using P = SparseDecodeParams;
  std::vector<BadInput<P>> cases = {
      {"q fp16", [](P& p) { p.q.dtype = DType::kFloat16; }, "q: expected dtype bf16, got fp16"},
      {"format/d_qk", [](P& p) { p.format = KvCacheFormat::kV32; }, "q: d_qk (last dim) must be 576 for format V32, got 512"},
      {"kv h_kv", [](P& p) { p.kv_cache.shape[2] = 2; }, "kv_cache: h_kv must be 1 (MQA), got 2"},
      {"kv bytes per token", [](P& p) { p.kv_cache.shape[3] = 656; }, "kv_cache: last dim must be 584 bytes per token"},
      {"kv dtype", [](P& p) { p.kv_cache.dtype = DType::kBFloat16; }, "kv_cache: expected dtype uint8 or int8 or fp8_e4m3"},
      {"kv token stride", [](P& p) { p.kv_cache.stride[1] = 600; }, "kv_cache: token stride (stride(1)) must be 584 bytes"},
      {"kv overlapping blocks", [](P& p) { p.kv_cache.stride[0] = 584; }, "kv_cache: block stride (stride(0)) must be at least"},
      {"indices dtype", [](P& p) { p.indices.dtype = DType::kFloat32; }, "indices: expected dtype int32"},
      {"indices batch", [](P& p) { p.indices.shape[0] = 1; }, "indices: dim 0 (b) expected 2, got 1"},
      {"topk 0", [](P& p) { p.indices.shape[2] = 0; }, "indices: topk: expected > 0, got 0"},
      {"topk_length shape", [](P& p) { p.topk_length.shape[0] = 5; }, "topk_length: dim 0 (b) expected 2, got 5"},
      {"attn_sink dtype", [](P& p) { p.attn_sink.dtype = DType::kBFloat16; }, "attn_sink: expected dtype float32"},
      {"attn_sink shape", [](P& p) { p.attn_sink.shape[0] = 8; }, "attn_sink: dim 0 (h_q) expected 4, got 8"},
      {"extra cache without indices", [](P& p) { p.extra_indices = TensorView{}; }, "extra_indices: required when extra_kv_cache is given"},
      {"extra indices without cache", [](P& p) { p.extra_kv_cache = TensorView{}; }, "extra_indices: must not be given without extra_kv_cache"},
      {"extra cache format", [](P& p) { p.extra_kv_cache.shape[3] = 600; }, "extra_kv_cache: last dim must be 584"},
      {"out dtype", [](P& p) { p.out.dtype = DType::kFloat16; }, "out: expected dtype bf16, got fp16"},
      {"lse shape", [](P& p) { p.lse.shape[2] = 3; }, "lse: dim 2 (s_q) expected 1, got 3"},
      {"device mismatch", [](P& p) { p.indices.device = 1; }, "indices: expected on the device of q (cpu), got cuda:1"},
  };
  expect_all_rejected<P>(c.params(), cases, [](const P& p) { validate(p); });

  std::vector<BadInput<P>> contents = {
      {"index out of range", [&](P&) { c.indices[0] = 1 << 24; c.topk_length[0] = 64; }, "is neither -1 nor a token of kv_cache"},
      {"topk_length > topk", [&](P&) { c.topk_length[1] = 65; }, "topk_length[1] = 65 is outside [0, 64]"},
  };
  const SparseDecodeCase saved = c;
  for (const auto& bad : contents) {
    c = saved;
    P p = c.params();
    bad.mutate(p);
    try {
      ref::sparse_decode(p);
      ADD_FAILURE() << bad.what << ": accepted";
    } catch (const InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find(bad.message), std::string::npos) << bad.what << ": " << e.what();
    }
  }
}

TEST(Validation, SparsePrefillRejectsBadArguments) {
  Rng r(3);
  SparsePrefillCase c = make_sparse_prefill_case(r, 3, 8, 576, 100, 128, true, true);
  using P = SparsePrefillParams;
  std::vector<BadInput<P>> cases = {
      {"q rank", [](P& p) { p.q.ndim = 4; }, "q: expected 3 dims (s_q, h_q, d_qk)"},
      {"kv dtype", [](P& p) { p.kv.dtype = DType::kFloat16; }, "kv: expected dtype bf16, got fp16"},
      {"kv h_kv", [](P& p) { p.kv.shape[1] = 2; }, "kv: h_kv must be 1 (MQA), got 2"},
      {"kv d_qk", [](P& p) { p.kv.shape[2] = 512; }, "kv: dim 2 (d_qk) expected 576, got 512"},
      {"indices s_q", [](P& p) { p.indices.shape[0] = 2; }, "indices: dim 0 (s_q) expected 3, got 2"},
      {"indices strided", [](P& p) { p.indices.stride[2] = 2; }, "indices: last dim must be contiguous"},
      {"topk_length dtype", [](P& p) { p.topk_length.dtype = DType::kUInt8; }, "topk_length: expected dtype int32, got uint8"},
      {"max_logits shape", [](P& p) { p.max_logits.shape[1] = 4; }, "max_logits: dim 1 (h_q) expected 8, got 4"},
      {"d_v", [](P& p) { p.d_v = 576; }, "d_v: expected 512, got 576"},
  };
  expect_all_rejected<P>(c.params(), cases, [](const P& p) { validate(p); });
}

TEST(Validation, KvQuantizeRejectsBadArguments) {
  Rng r(4);
  Fp8Cache c = make_fp8_cache(r, KvCacheFormat::kV32, 2, 4);
  using P = KvQuantizeParams;
  std::vector<BadInput<P>> cases = {
      {"kv head dim", [](P& p) { p.kv.shape[3] = 512; }, "kv: dim 3 (d_qk) expected 576, got 512"},
      {"kv dtype", [](P& p) { p.kv.dtype = DType::kFloat16; }, "kv: expected dtype bf16, got fp16"},
      {"block count", [](P& p) { p.kv_fp8.shape[0] = 1; }, "kv_fp8: num_blocks (dim 0, must match kv): expected 2, got 1"},
      {"format", [](P& p) { p.format = KvCacheFormat::kModel1; }, "kv: dim 3 (d_qk) expected 512, got 576"},
  };
  expect_all_rejected<P>(KvQuantizeParams{c.bf16_view(), c.view(), c.format}, cases, [](const P& p) { validate(p); });
}

}  // namespace
}  // namespace flashmla::test
