#pragma once

#include <nlohmann/json.hpp>

namespace flashmla::bench {

/// Runs every dense decode case of the H200 target table on GPU 0, prints the table, returns the JSON "cases".
nlohmann::json run_gpu_dense(int reps);

}  // namespace flashmla::bench
