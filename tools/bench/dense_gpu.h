#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace flashmla::bench {

/// Runs the dense decode cases of the H200 target table selected by `filter` ('|'-separated substrings of the case
/// names; all if empty) on GPU 0, each in `contexts` fresh CUDA contexts of `reps` timed calls, prints the table and
/// returns the JSON "cases". Resets the device between measurements (cudaDeviceReset).
nlohmann::json run_gpu_dense(int reps, int contexts, const std::string& filter);

}  // namespace flashmla::bench
