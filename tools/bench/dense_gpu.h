#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace flashmla::bench {

/// Runs the dense decode cases of the H200 target table whose name contains `filter` (all if empty) on GPU 0, prints
/// the table, returns the JSON "cases".
nlohmann::json run_gpu_dense(int reps, const std::string& filter);

}  // namespace flashmla::bench
