#pragma once
// The run context: everything needed to reproduce or explain a number, recorded once per
// `attnlab run` (git sha and dirty flag, versions, BLAS, threads, CPU/GPU, host) plus the
// sgemm ceiling measured in the same run, so achieved GFLOP/s can be read as a fraction.
#include <nlohmann/json.hpp>

#include <string>

namespace attnlab {

// Sets the intra-op thread count (0 = all cores: LibTorch 1.13 defaults to half).
int configure_threads(int requested);

// Median GFLOP/s of an n x n x n fp32 matmul (at::mm) on this machine, now.
double measure_sgemm_gflops(int n = 2048, int repeats = 5);

nlohmann::json collect_context(bool measure_sgemm);

// The git sha this attnlab was built from ("-dirty" with uncommitted changes then), fixed at
// compile time; the run context's git_sha is the checkout's at run time.
std::string build_sha();

}  // namespace attnlab
