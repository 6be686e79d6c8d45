#include "runtime/context.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>
#include <torch/version.h>

#include <unistd.h>

#ifdef ATTNLAB_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#ifndef ATTNLAB_VERSION
#define ATTNLAB_VERSION "unknown"
#endif
#ifndef ATTNLAB_SOURCE_DIR
#define ATTNLAB_SOURCE_DIR "."
#endif

namespace attnlab {

const char* compiled_build_sha();  // generated: cmake/write_build_info.cmake

namespace {

std::string run_command(const std::string& command) {
  std::array<char, 256> buffer{};
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return out;
  while (fgets(buffer.data(), buffer.size(), pipe)) out += buffer.data();
  pclose(pipe);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

std::string cpu_model() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

// Which libblas.so.3 the dynamic linker resolves (Debian alternatives).
std::string blas_in_use() {
  std::error_code ec;
  auto target = std::filesystem::canonical("/etc/alternatives/libblas.so.3-x86_64-linux-gnu", ec);
  if (!ec) return target.string();
  return "unknown";
}

// Which implementation LibTorch's scaled_dot_product_attention runs for the bench's usual
// causal fp32 shape on the CPU: the dense baseline is only as strong as this answer.
std::string sdpa_backend() {
#if TORCH_VERSION_MAJOR >= 2
  c10::NoGradGuard no_grad;
  const auto q = at::randn({1, 8, 256, 64});
  // at::SDPBackend's values (its header is not in every 2.x): -1 error, 0 math, 1 flash, ...
  switch (at::_fused_sdp_choice(q, q, q, {}, 0.0, /*is_causal=*/true)) {
    case 0: return "math (composite matmul + softmax)";
    case 1: return "flash_attention (aten::_scaled_dot_product_flash_attention_for_cpu)";
    case 2: return "efficient_attention";
    case 3: return "cudnn_attention";
    default: return "other";
  }
#else
  return "math (LibTorch 1.x composite _scaled_dot_product_attention: full QK^T, T x T weights)";
#endif
}

}  // namespace

std::string build_sha() { return compiled_build_sha(); }

int configure_threads(int requested) {
  int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // Inside a Slurm allocation, "all cores" means the task's: the machine's would oversubscribe.
  if (const char* slurm = std::getenv("SLURM_CPUS_PER_TASK"); slurm && std::atoi(slurm) > 0) cores = std::atoi(slurm);
  const int threads = requested > 0 ? requested : cores;
  at::set_num_threads(threads);
  return threads;
}

double measure_sgemm_gflops(int n, int repeats) {
  c10::NoGradGuard no_grad;
  auto a = at::randn({n, n}), b = at::randn({n, n});
  auto c = at::mm(a, b);  // warm the BLAS threads and caches
  std::vector<double> seconds;
  for (int i = 0; i < repeats; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    at::mm_out(c, a, b);
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(seconds.begin(), seconds.end());
  return 2.0 * n * static_cast<double>(n) * n / seconds[seconds.size() / 2] / 1e9;
}

// Every visible GPU: name, memory, compute capability, with the driver's and the runtime's
// CUDA versions (12040 = 12.4). Empty without a CUDA build or without a device.
static nlohmann::json gpu_devices() {
  nlohmann::json devices = nlohmann::json::array();
#ifdef ATTNLAB_WITH_CUDA
  int count = 0, driver = 0, runtime = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) return devices;
  cudaDriverGetVersion(&driver);
  cudaRuntimeGetVersion(&runtime);
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
    devices.push_back({{"name", p.name},
                       {"memory_gib", static_cast<double>(p.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0)},
                       {"compute_capability", std::to_string(p.major) + "." + std::to_string(p.minor)},
                       {"driver_cuda_version", driver},
                       {"runtime_cuda_version", runtime}});
  }
#endif
  return devices;
}

// "NVIDIA H100 80GB HBM3 (79.1 GiB, sm_90, driver CUDA 12.4, runtime 12.4)", one per device.
static std::string describe_gpus(const nlohmann::json& devices) {
  std::string out;
  auto version = [](int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); };
  for (const auto& d : devices) {
    char memory[32];
    std::snprintf(memory, sizeof memory, "%.1f GiB", d["memory_gib"].get<double>());
    std::string cc = d["compute_capability"];
    cc.erase(std::remove(cc.begin(), cc.end(), '.'), cc.end());
    out += (out.empty() ? "" : "; ") + d["name"].get<std::string>() + " (" + memory + ", sm_" + cc +
           ", driver CUDA " + version(d["driver_cuda_version"]) + ", runtime " + version(d["runtime_cuda_version"]) +
           ")";
  }
  return out;
}

nlohmann::json collect_context(bool measure_sgemm) {
  nlohmann::json c;
  const std::string src = ATTNLAB_SOURCE_DIR;
  c["git_sha"] = run_command("git -C '" + src + "' rev-parse HEAD 2>/dev/null");
  c["git_dirty"] = !run_command("git -C '" + src + "' status --porcelain --untracked-files=no 2>/dev/null").empty();
  c["build_sha"] = build_sha();
  c["attnlab_version"] = ATTNLAB_VERSION;
  c["torch_version"] = std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
                       std::to_string(TORCH_VERSION_PATCH);
  c["sdpa_backend"] = sdpa_backend();
  c["blas"] = blas_in_use();
  c["threads"] = at::get_num_threads();
  c["cpu"] = cpu_model();
  c["cores"] = std::thread::hardware_concurrency();
  c["gpu_devices"] = gpu_devices();
  c["gpu"] = describe_gpus(c["gpu_devices"]);
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  c["hostname"] = host;
  c["parallel_info"] = at::get_parallel_info();
  if (measure_sgemm) c["sgemm_gflops"] = measure_sgemm_gflops();
  return c;
}

}  // namespace attnlab
