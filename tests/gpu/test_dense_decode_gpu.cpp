// Dense decode on the GPU against the CPU reference (float32), with NaN-poisoned unused cache slots, block_table
// tails of 2147480000 and outputs poisoned before each run (a NaN left behind fails the comparison).
#include "tests/gpu/gpu_util.h"

namespace flashmla::test {
namespace {

struct HeadPair {
  int64_t h_q, h_kv;
};
const std::vector<HeadPair> kAllPairs = {{1, 1},  {3, 1},  {3, 3},  {9, 1},   {9, 3},   {16, 1},  {16, 2},
                                         {16, 8}, {63, 1}, {63, 3}, {64, 1},  {64, 2},  {64, 8},  {126, 1},
                                         {126, 2}, {126, 3}, {128, 1}, {128, 2}, {128, 8}};
::testing::AssertionResult check_case(DenseCase& c, int num_parts = 0, int64_t out_shift = 0) {
  GpuDense g(c, num_parts, out_shift);  // first: params() re-poisons the host outputs
  ref::dense_decode(c.params());
  g.run();
  if (cudaDeviceSynchronize() != cudaSuccess) return ::testing::AssertionFailure() << "CUDA error";
  std::vector<uint16_t> out;
  std::vector<float> lse;
  g.fetch(out, lse);
  auto r = all_close(widen(out, c.dtype), widen(c.out, c.dtype), kDenseOutTol);
  if (!r) return r << " (out)";
  r = all_close(widen(lse), widen(c.lse), kDenseLseTol);
  if (!r) return r << " (lse)";
  return ::testing::AssertionSuccess();
}

struct GridPoint {
  int64_t b, s_q, s_k;
};
class DenseDecodeGrid : public ::testing::TestWithParam<GridPoint> {};

TEST_P(DenseDecodeGrid, MatchesReference) {
  const GridPoint gp = GetParam();
  // The largest shapes (b = 64, s_k = 4096) run every head pair with one (varlen, causal) combination each, rotating
  // through the four; the others run all four combinations. The CPU reference would dominate the run otherwise.
  const bool heavy = gp.b * gp.s_k > 100000;
  int n = 0;
  for (size_t pi = 0; pi < kAllPairs.size(); ++pi) {
    const HeadPair& hp = kAllPairs[pi];
    for (int combo = 0; combo < 4; ++combo) {
      if (heavy && combo != static_cast<int>(pi % 4)) continue;
      const bool varlen = combo & 1, causal = combo >> 1;
      Rng r(gp.b * 1000003 + gp.s_q * 10007 + gp.s_k * 101 + hp.h_q * 7 + hp.h_kv * 3 + varlen * 2 + causal);
      DenseCase c = make_dense_case(r, gp.b, gp.s_q, hp.h_q, hp.h_kv, 64, gp.s_k, varlen, causal, DType::kBFloat16);
      EXPECT_TRUE(check_case(c)) << "h_q=" << hp.h_q << " h_kv=" << hp.h_kv << " varlen=" << varlen
                                 << " causal=" << causal;
      ++n;
    }
  }
  RecordProperty("cases", n);
}

std::vector<GridPoint> grid() {
  std::vector<GridPoint> g;
  for (int64_t b : {1, 2, 6, 64})
    for (int64_t s_q : {1, 2, 4})
      for (int64_t s_k : {20, 140, 4096}) g.push_back({b, s_q, s_k});
  return g;
}
INSTANTIATE_TEST_SUITE_P(Grid, DenseDecodeGrid, ::testing::ValuesIn(grid()), [](const auto& info) {
  return "b" + std::to_string(info.param.b) + "_sq" + std::to_string(info.param.s_q) + "_sk" + std::to_string(info.param.s_k);
});

TEST(DenseDecodeGpu, ZeroLengthRequestsCorner) {
  Rng r(11);
  for (const HeadPair& hp : {HeadPair{16, 1}, HeadPair{128, 1}}) {
    DenseCase c = make_dense_case(r, 128, 2, hp.h_q, hp.h_kv, 64, 4096, true, true, DType::kBFloat16, true, 2);
    EXPECT_TRUE(check_case(c)) << hp.h_q << "/" << hp.h_kv;
  }
}

TEST(DenseDecodeGpu, Fp16) {
  Rng r(12);
  DenseCase c = make_dense_case(r, 6, 2, 64, 1, 64, 700, true, true, DType::kFloat16);
  EXPECT_TRUE(check_case(c));
}

TEST(DenseDecodeGpu, NonContiguousQAndPaddedBlockStride) {
  Rng r(13);
  DenseCase c = make_dense_case(r, 4, 2, 32, 2, 64, 500, true, true, DType::kBFloat16);
  pad_strides(c, 8, 64);
  EXPECT_TRUE(check_case(c));
}

TEST(DenseDecodeGpu, OutputOffSixteenByteBoundary) {
  // out one element past a 256-byte boundary (only 2-byte aligned: elements, no column pairs as 4-byte words) and two
  // elements past it (4-byte aligned only: the column-pair words). With the default schedule the requests are split
  // (the combine kernel writes out); with 2 parts each part holds one whole request (the main kernel's epilogue does).
  for (int64_t shift : {1, 2}) {
    Rng r(16);
    DenseCase c = make_dense_case(r, 2, 1, 64, 1, 64, 300, false, false, DType::kBFloat16);
    EXPECT_TRUE(check_case(c, 0, shift)) << shift;
    EXPECT_TRUE(check_case(c, 2, shift)) << shift;
  }
}

TEST(DenseDecodeGpu, OtherPageSizes) {
  // TMA loader: multiples of 8 that divide 64 or are multiples of 64 (several boxes per tile, or a tile inside a
  // page); the fallback kernel: everything else.
  for (int64_t page : {1, 8, 16, 32, 33, 128, 256}) {
    Rng r(14 + page);
    DenseCase c = make_dense_case(r, 3, 2, 16, 1, page, 300, true, true, DType::kBFloat16);
    const bool tma = page % 8 == 0 && (64 % page == 0 || page % 64 == 0);
    EXPECT_EQ(GpuDense(c).plan.kernel, tma ? DenseDecodeKernel::kWgmmaTma : DenseDecodeKernel::kFallback) << page;
    EXPECT_TRUE(check_case(c)) << "page " << page;
  }
}

TEST(DenseDecodeGpu, BitwiseDeterministic) {
  Rng r(15);
  DenseCase c = make_dense_case(r, 8, 2, 128, 1, 64, 3000, true, false, DType::kBFloat16);
  GpuDense g(c);
  std::vector<uint16_t> o1, o2;
  std::vector<float> l1, l2;
  g.run();
  g.fetch(o1, l1);
  g.run();
  g.fetch(o2, l2);
  EXPECT_EQ(o1, o2);
  EXPECT_EQ(l1, l2);
}

TEST(DenseDecodeGpu, GraphReplayEqualsEager) {
  Rng r(16);
  DenseCase c = make_dense_case(r, 16, 1, 64, 1, 64, 2000, true, false, DType::kBFloat16);
  GpuDense g(c);
  std::vector<uint16_t> eager, replay;
  std::vector<float> le, lr;
  g.run();
  g.fetch(eager, le);
  cudaStream_t s;
  CUDA_OK(cudaStreamCreate(&s));
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  CUDA_OK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
  g.run(s);
  CUDA_OK(cudaStreamEndCapture(s, &graph));
  CUDA_OK(cudaGraphInstantiate(&exec, graph, 0));
  g.poison();
  CUDA_OK(cudaDeviceSynchronize());
  CUDA_OK(cudaGraphLaunch(exec, s));
  CUDA_OK(cudaStreamSynchronize(s));
  g.fetch(replay, lr);
  EXPECT_EQ(eager, replay);
  EXPECT_EQ(le, lr);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(s);
}

// A reset context (cudaDeviceReset; the benchmark resets between measurements) has lost the kernels' dynamic shared
// memory attribute: the next plan sets it again, and the call still gives the reference result (before, the library
// set it once per device and every launch after a reset failed).
TEST(DenseDecodeGpu, RunsAfterDeviceReset) {
  Rng r(19);
  DenseCase c = make_dense_case(r, 3, 1, 16, 1, 64, 500, true, false, DType::kBFloat16);
  EXPECT_TRUE(check_case(c));
  CUDA_OK(cudaDeviceReset());
  EXPECT_TRUE(check_case(c));
}

// A schedule may have any number of parts (FlashMLA's old eager metadata is built before the page size is known):
// fewer parts than SMs, one part, and more parts than requests x blocks all give the reference result.
TEST(DenseDecodeGpu, AnyNumPartsMatchesReference) {
  for (int num_parts : {1, 3, 17, 400}) {
    Rng r(18 + num_parts);
    DenseCase c = make_dense_case(r, 5, 2, 16, 1, 64, 700, true, true, DType::kBFloat16);
    EXPECT_TRUE(check_case(c, num_parts)) << "num_parts " << num_parts;
  }
}

TEST(DenseDecodeGpu, ScheduleArgumentsAreChecked) {
  Rng r(19);
  DenseCase c = make_dense_case(r, 3, 1, 16, 1, 64, 100, false, false, DType::kBFloat16);
  GpuDense g(c);
  auto expect_error = [&](DenseDecodeSchedule s, const char* text) {
    try {
      dense_decode_run(g.p, g.plan, s, g.ws->ptr, nullptr);
      ADD_FAILURE() << "accepted a bad schedule: " << text;
    } catch (const InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
    }
  };
  DenseDecodeSchedule s = g.sched;
  s.tile_scheduler_metadata.shape[0] += 1;  // built for another number of parts
  expect_error(s, "tile_scheduler_metadata: dim 0 (num_parts)");
  s = g.sched;
  s.num_splits.shape[0] = 3;  // b, not b + 1
  expect_error(s, "num_splits: dim 0 (b + 1)");
  s = g.sched;
  s.num_splits.dtype = DType::kFloat32;
  expect_error(s, "num_splits: expected dtype int32");
  s = g.sched;
  s.tile_scheduler_metadata.device = kCpuDevice;
  expect_error(s, "tile_scheduler_metadata: expected a tensor on cuda:0");
}

TEST(DenseDecodeGpu, HostTensorsAreRejected) {
  Rng r(17);
  DenseCase c = make_dense_case(r, 1, 1, 16, 1, 64, 100, false, false, DType::kBFloat16);
  try {
    plan_dense_decode(c.params());
    ADD_FAILURE() << "accepted host tensors";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("q: dense decode on the GPU needs CUDA tensors"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace flashmla::test
