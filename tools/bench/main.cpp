// flashmla-bench: runs the operations on DeepSeek-shaped inputs, checks them, prints a table and optionally JSON.
// Without a GPU it runs the CPU reference (float32) on a small dense decode and checks it against the float64 mode.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <thread>
#include <string>
#include <vector>

#include "core/numeric.h"
#include "flashmla/flashmla.h"
#ifdef FLASHMLA_WITH_CUDA
#include "tools/bench/dense_gpu.h"
#endif

namespace {

using flashmla::DType;
using flashmla::TensorView;

struct DenseCaseSpec {
  int64_t b, s_q, h_q, h_kv, s_k, page;
  bool causal;
  std::string name() const {
    return "b=" + std::to_string(b) + " s_q=" + std::to_string(s_q) + " s_k=" + std::to_string(s_k) +
           " h_q=" + std::to_string(h_q) + " causal=" + std::to_string(causal);
  }
};

struct Result {
  std::string name, device;
  double us, gflops, gbps, max_abs_err;
};

// One dense decode on the CPU reference: random bf16 inputs, the timed float32 run, the float64 run as the check.
Result run_cpu_dense(const DenseCaseSpec& s, int reps) {
  constexpr int64_t d_qk = 576, d_v = 512;
  std::mt19937 gen(42);
  std::normal_distribution<float> nd(0.f, 0.1f);
  const int64_t blocks_per_seq = (s.s_k + s.page - 1) / s.page, num_blocks = s.b * blocks_per_seq;
  std::vector<uint16_t> q(s.b * s.s_q * s.h_q * d_qk), cache(num_blocks * s.page * s.h_kv * d_qk);
  for (auto& x : q) x = flashmla::float_to_bf16(nd(gen));
  for (auto& x : cache) x = flashmla::float_to_bf16(nd(gen));
  std::vector<int32_t> block_table(num_blocks), seqlens(s.b, static_cast<int32_t>(s.s_k));
  for (int64_t i = 0; i < num_blocks; ++i) block_table[i] = static_cast<int32_t>(i);
  std::vector<uint16_t> out(s.b * s.s_q * s.h_q * d_v), out64(out.size());
  std::vector<float> lse(s.b * s.h_q * s.s_q), lse64(lse.size());

  flashmla::DenseDecodeParams p;
  p.q = TensorView::contiguous(q.data(), DType::kBFloat16, {s.b, s.s_q, s.h_q, d_qk});
  p.k_cache = TensorView::contiguous(cache.data(), DType::kBFloat16, {num_blocks, s.page, s.h_kv, d_qk});
  p.block_table = TensorView::contiguous(block_table.data(), DType::kInt32, {s.b, blocks_per_seq});
  p.cache_seqlens = TensorView::contiguous(seqlens.data(), DType::kInt32, {s.b});
  p.softmax_scale = static_cast<float>(1.0 / std::sqrt(double(d_qk)));
  p.causal = s.causal;
  p.out = TensorView::contiguous(out64.data(), DType::kBFloat16, {s.b, s.s_q, s.h_q, d_v});
  p.lse = TensorView::contiguous(lse64.data(), DType::kFloat32, {s.b, s.h_q, s.s_q});
  flashmla::ref::dense_decode(p, {flashmla::ref::Accum::kFloat64});
  p.out.data = out.data();
  p.lse.data = lse.data();

  std::vector<double> times;
  for (int r = 0; r < reps; ++r) {
    std::fill(out.begin(), out.end(), 0x7fc1);  // poison
    const auto t0 = std::chrono::steady_clock::now();
    flashmla::ref::dense_decode(p);
    times.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(times.begin(), times.end());
  double err = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    const double e = std::fabs(double(flashmla::bf16_to_float(out[i])) - flashmla::bf16_to_float(out64[i]));
    err = std::isnan(e) ? INFINITY : std::max(err, e);
  }
  const double us = times[times.size() / 2];
  const double flop = 2.0 * s.b * s.s_q * s.h_q * s.s_k * (d_qk + d_v);
  const double bytes = 2.0 * (s.b * s.s_k * s.h_kv * d_qk + s.b * s.s_q * s.h_q * (d_qk + d_v));
  return {s.name(), "cpu", us, flop / us * 1e-3, bytes / us * 1e-3, err};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"flashmla-bench: FlashMLA-C++ benchmark (dense decode; GPU when present, CPU reference otherwise)"};
  std::string json_path;
  std::string device = "auto";
  int reps = 5;
  DenseCaseSpec cpu_case{2, 1, 16, 1, 1024, 64, false};
  app.add_option("--json", json_path, "write the results as JSON to this file");
  app.add_option("--device", device, "auto | cpu | gpu")->check(CLI::IsMember({"auto", "cpu", "gpu"}));
  app.add_option("--reps", reps, "timed repetitions (median reported)")->check(CLI::Range(1, 1000));
  app.add_option("--b", cpu_case.b, "batch size of the CPU case")->check(CLI::Range(1, 4096));
  app.add_option("--s-k", cpu_case.s_k, "KV length of the CPU case")->check(CLI::Range(1, 1 << 20));
  app.add_option("--h-q", cpu_case.h_q, "query heads of the CPU case")->check(CLI::Range(1, 128));
  int contexts = 3;
  app.add_option("--contexts", contexts, "GPU: fresh CUDA contexts per case (the median of their medians is reported)")
      ->check(CLI::Range(1, 100));
  std::string filter;
  app.add_option("--case", filter,
                 "GPU: run only the cases whose name contains this text (several: separated by '|'), e.g. "
                 "\"b=128 s_q=1 s_k=8192 h_q=16\"");
  CLI11_PARSE(app, argc, argv);

  const int gpus = flashmla::cuda_device_count();
  if (device == "gpu" || (device == "auto" && gpus > 0)) {
    if (gpus == 0) {
      std::fprintf(stderr, "flashmla-bench: --device gpu but no CUDA GPU is visible (built with CUDA: %s)\n",
                   flashmla::built_with_cuda() ? "yes" : "no");
      return 2;
    }
#ifdef FLASHMLA_WITH_CUDA
    const nlohmann::json cases = flashmla::bench::run_gpu_dense(std::max(reps, 30), contexts, filter);
    if (!json_path.empty()) {
      nlohmann::json j = {{"version", flashmla::version()}, {"device", "gpu"}, {"op", "dense_decode"}, {"cases", cases}};
      std::ofstream(json_path) << j.dump(2) << "\n";
      std::printf("wrote %s\n", json_path.c_str());
    }
    return 0;
#endif
  }
  std::printf("flashmla-bench %s: running on the CPU (reference backend, float32 accumulation, %u threads); "
              "no GPU kernel was run.\n", flashmla::version(), std::max(1u, std::thread::hardware_concurrency()));
  const Result r = run_cpu_dense(cpu_case, reps);
  std::printf("\n| op | case | device | time (us, median of %d) | GFLOP/s | GB/s | max |err| vs float64 |\n", reps);
  std::printf("|---|---|---|---|---|---|---|\n");
  std::printf("| dense_decode | %s | %s | %.1f | %.2f | %.2f | %.2e |\n", r.name.c_str(), r.device.c_str(), r.us,
              r.gflops, r.gbps, r.max_abs_err);
  const bool ok = r.max_abs_err <= 2.0 / 128;
  std::printf("\ncheck against float64 reference: %s\n", ok ? "passed" : "FAILED");
  if (!json_path.empty()) {
    nlohmann::json j = {{"version", flashmla::version()},
                        {"device", "cpu"},
                        {"op", "dense_decode"},
                        {"cases", {{{"name", r.name}, {"us", r.us}, {"gflops", r.gflops}, {"gbps", r.gbps},
                                    {"max_abs_err", r.max_abs_err}, {"passed", ok}}}}};
    std::ofstream(json_path) << j.dump(2) << "\n";
    std::printf("wrote %s\n", json_path.c_str());
  }
  return ok ? 0 : 1;
}
