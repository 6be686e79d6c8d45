// attnlab_kernel_bench: the block-sparse kernel against LibTorch's own attention, side by
// side in one process, on the CPU or a CUDA device. Needs only attnlab_kernels, so it runs
// where the rest of attnlab cannot be built (a lent GPU machine: tools/gpu_check.sh). The
// CPU numbers of record come from experiments/kernel_density.toml; this is the same grid.
//
//   q, k, v ~ N(0, 1) [B=1, H, T, D] (fp32 unless --dtype); layouts: causal tiles kept with probability P
//   (diagonal tiles always kept; P = 1 is the causal-full layout), tile 64
//   kernel = block_sparse_attention(q, k, v, layout),  sdpa = LibTorch's causal attention
//   fwd: one call under no_grad;  fwd+bwd: the call and the gradients of q, k, v
// Every layout's output is first checked against the float64 reference (validate_or_exit).
// Prints one row per (T, pass, P): median ms over `reps` calls after one warm-up, block
// density, time / causal-full time with the target's bound 1.2 x density / causal density,
// and for P = 1 the speedup over sdpa.
//
//   attnlab_kernel_bench [--device cpu|cuda] [--seq 1024,2048,4096] [--keep 1,0.5,0.25,0.125]
//                        [--heads 8] [--head-dim 64] [--reps 10] [--threads N]
//                        [--pass fwd|fwd+bwd|both] [--sdpa 1|0]  (0: the kernel alone, for a profiler)
//                        [--dtype fp32|fp64|bf16|fp16] [--max-ms M]
//                        [--layout-files a.txt,b.txt]
// --dtype: the inputs' dtype. The kernel computes in fp64 for fp64 and in fp32 otherwise
// (bf16/fp16 inputs are cast to fp32 and the output back, and that cast is timed too).
// --max-ms: fewer reps (at least 1) when reps x the warm-up call would exceed M ms.
// --layout-files: time the kernel alone on given layouts instead of the random grid (the
// peers with the same layouts are timed by tools/gpu_bench.py). Each file is a causal tile
// grid: a line "T tile", then n = ceil(T / tile) lines of n characters, '1' = tile kept;
// within kept tiles a query sees the keys <= itself (the diagonal tiles are triangles).
// One row per (file, pass): device, dtype, H, D, T, layout, block_density, pass, kernel_ms, reps.
#include <attnlab/kernels/attention.hpp>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

using namespace attnlab::kernels;

namespace {

struct Options {
  std::string device = "cpu";
  std::vector<std::int64_t> seq = {1024, 2048, 4096};
  std::vector<double> keep = {1.0, 0.5, 0.25, 0.125};
  std::int64_t heads = 8, head_dim = 64, tile = 64, reps = 10, threads = 0;
  std::string pass = "both", dtype = "fp32";
  bool sdpa = true;
  double max_ms = 0.0;  // 0: no cap
  std::vector<std::string> layout_files;
};

template <typename T>
std::vector<T> parse_list(const std::string& text) {
  std::vector<T> values;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) values.push_back(static_cast<T>(std::stod(item)));
  return values;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; i += 2) {
    const std::string key = argv[i], value = i + 1 < argc ? argv[i + 1] : "";
    if (key == "--device") o.device = value;
    else if (key == "--seq") o.seq = parse_list<std::int64_t>(value);
    else if (key == "--keep") o.keep = parse_list<double>(value);
    else if (key == "--heads") o.heads = std::stoll(value);
    else if (key == "--head-dim") o.head_dim = std::stoll(value);
    else if (key == "--reps") o.reps = std::stoll(value);
    else if (key == "--threads") o.threads = std::stoll(value);
    else if (key == "--pass") o.pass = value;
    else if (key == "--sdpa") o.sdpa = value != "0";
    else if (key == "--dtype") o.dtype = value;
    else if (key == "--max-ms") o.max_ms = std::stod(value);
    else if (key == "--layout-files") {
      std::stringstream in(value);
      for (std::string item; std::getline(in, item, ',');) o.layout_files.push_back(item);
    }
    else {
      std::fprintf(stderr, "attnlab_kernel_bench: unknown option '%s' (options: see kernels/bench/kernel_bench.cpp)\n",
                   key.c_str());
      std::exit(2);
    }
  }
  // Causal-full first: the other layouts' time ratios are taken against it.
  std::sort(o.keep.rbegin(), o.keep.rend());
  if (o.keep.empty() || o.keep.front() < 1.0) o.keep.insert(o.keep.begin(), 1.0);
  return o;
}

at::Tensor sdpa_causal(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
#if TORCH_VERSION_MAJOR >= 2
  return at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/true);
#else
  return std::get<0>(at::_scaled_dot_product_attention(q, k, v, {}, 0.0, false, /*is_causal=*/true));
#endif
}

// Causal tiles kept with probability `keep`, diagonal tiles always (as masks' random:P).
std::shared_ptr<const BlockLayout> random_causal_layout(std::int64_t T, std::int64_t tile, double keep) {
  const std::int64_t n = (T + tile - 1) / tile;
  at::Tensor tiles = (at::rand({n, n}) < keep) | at::eye(n, at::kBool);
  at::Tensor allowed = tiles.repeat_interleave(tile, 0).repeat_interleave(tile, 1)
                           .slice(0, 0, T).slice(1, 0, T) & at::ones({T, T}, at::kBool).tril();
  return std::make_shared<const BlockLayout>(BlockLayout::from_dense(allowed, tile));
}

at::ScalarType parse_dtype(const std::string& name) {
  if (name == "fp32") return at::kFloat;
  if (name == "fp64") return at::kDouble;
  if (name == "bf16") return at::kBFloat16;
  if (name == "fp16") return at::kHalf;
  std::fprintf(stderr, "attnlab_kernel_bench: --dtype must be fp32, fp64, bf16 or fp16, got '%s'\n",
               name.c_str());
  std::exit(2);
}

// A layout file (format above) as a causal block selection: row t of the [T, n] selection is
// the tile row of t's query tile.
std::shared_ptr<const BlockLayout> read_layout_file(const std::string& path) {
  std::ifstream in(path);
  std::int64_t T = 0, tile = 0;
  if (!(in >> T >> tile) || T <= 0 || tile <= 0) {
    std::fprintf(stderr, "attnlab_kernel_bench: %s: first line must be 'T tile'\n", path.c_str());
    std::exit(2);
  }
  const std::int64_t n = (T + tile - 1) / tile;
  at::Tensor tiles = at::zeros({n, n}, at::kBool);
  auto* data = tiles.data_ptr<bool>();
  for (std::int64_t i = 0; i < n; ++i) {
    std::string row;
    if (!(in >> row) || static_cast<std::int64_t>(row.size()) != n) {
      std::fprintf(stderr, "attnlab_kernel_bench: %s: tile row %lld must have %lld characters\n",
                   path.c_str(), static_cast<long long>(i), static_cast<long long>(n));
      std::exit(2);
    }
    for (std::int64_t j = 0; j < n; ++j) data[i * n + j] = row[j] == '1';
  }
  at::Tensor selected = tiles.repeat_interleave(tile, 0).slice(0, 0, T);
  return std::make_shared<const BlockLayout>(BlockLayout::from_block_selection(selected, T, tile));
}

double median_ms(const std::function<void()>& call, std::int64_t reps, bool cuda,
                 double max_ms = 0.0, std::int64_t* reps_done = nullptr) {
  auto sync = [&] { if (cuda) torch::cuda::synchronize(); };
  const auto w0 = std::chrono::steady_clock::now();
  call();  // warm-up
  sync();
  const double warm_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - w0).count();
  if (max_ms > 0 && warm_ms * reps > max_ms)
    reps = std::max<std::int64_t>(1, static_cast<std::int64_t>(max_ms / warm_ms));
  if (reps_done) *reps_done = reps;
  std::vector<double> ms;
  for (std::int64_t i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    call();
    sync();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

using Attention = std::function<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&)>;

// Validation before timing (as llm.c's dev kernels do): the kernel's output on the first head
// against the float64 reference over the layout's element mask; exits 1 on a mismatch, so no
// number is printed for a kernel that computes something else.
void validate_or_exit(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const LayoutSet& layouts,
                      double scale, const std::string& what) {
  c10::NoGradGuard no_grad;
  auto head = [](const at::Tensor& x) { return x.narrow(1, 0, 1); };
  const at::Tensor got = block_sparse_attention(head(q), head(k), head(v), {layouts[0]}, scale).to(at::kDouble).cpu();
  auto cpu64 = [&](const at::Tensor& x) { return head(x).to(at::kDouble).cpu(); };
  const at::Tensor want = reference_attention(cpu64(q), cpu64(k), cpu64(v), layouts[0]->to_dense(), scale);
  // fp32 accumulation over up to T keys; bf16/fp16 inputs were rounded before the kernel saw them.
  const double tolerance = q.scalar_type() == at::kDouble ? 1e-9 : q.element_size() == 2 ? 5e-2 : 1e-3;
  const double error = (got - want).abs().max().item<double>();
  if (error > tolerance) {
    std::fprintf(stderr, "attnlab_kernel_bench: %s: kernel output differs from the reference by %.3g (> %.0e)\n",
                 what.c_str(), error, tolerance);
    std::exit(1);
  }
}

// The kernel alone on the layouts of --layout-files, both passes.
int bench_layout_files(const Options& o, bool cuda) {
  const auto options = at::TensorOptions().dtype(parse_dtype(o.dtype)).device(at::Device(o.device));
  const double scale = softmax_scale(o.head_dim);
  std::printf("device\tdtype\tH\tD\tT\tlayout\tblock_density\tpass\tkernel_ms\treps\n");
  for (const std::string& path : o.layout_files) {
    const LayoutSet layouts{read_layout_file(path)};
    const std::int64_t T = layouts[0]->T;
    at::manual_seed(0);
    const std::vector<std::int64_t> shape{1, o.heads, T, o.head_dim};
    const at::Tensor q = at::randn(shape, options), k = at::randn(shape, options),
                     v = at::randn(shape, options), dout = at::randn(shape, options);
    const std::string name = path.substr(path.find_last_of('/') + 1);
    validate_or_exit(q, k, v, layouts, scale, name);
    for (const std::string pass : {"fwd", "fwd+bwd"}) {
      if (o.pass != "both" && o.pass != pass) continue;
      std::int64_t reps = 0;
      const double ms = median_ms([&] {
        if (pass == "fwd") {
          c10::NoGradGuard no_grad;
          block_sparse_attention(q, k, v, layouts, scale);
          return;
        }
        at::Tensor qg = q.detach().requires_grad_(true), kg = k.detach().requires_grad_(true),
                   vg = v.detach().requires_grad_(true);
        torch::autograd::grad({block_sparse_attention(qg, kg, vg, layouts, scale)}, {qg, kg, vg}, {dout});
      }, o.reps, cuda, o.max_ms, &reps);
      std::printf("%s\t%s\t%lld\t%lld\t%lld\t%s\t%.4f\t%s\t%.3f\t%lld\n", o.device.c_str(),
                  o.dtype.c_str(), static_cast<long long>(o.heads), static_cast<long long>(o.head_dim),
                  static_cast<long long>(T), name.c_str(), layouts[0]->block_density(), pass.c_str(),
                  ms, static_cast<long long>(reps));
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  if (o.threads > 0) at::set_num_threads(static_cast<int>(o.threads));
  const bool cuda = o.device == "cuda";
  if (cuda && !torch::cuda::is_available()) {
    std::fprintf(stderr, "attnlab_kernel_bench: --device cuda, but no CUDA device (or a CPU-only LibTorch)\n");
    return 2;
  }
  if (!o.layout_files.empty()) return bench_layout_files(o, cuda);
  const auto options = at::TensorOptions().dtype(parse_dtype(o.dtype)).device(at::Device(o.device));
  const double scale = softmax_scale(o.head_dim);
  std::printf("device\tT\tpass\tkeep\tblock_density\tkernel_ms\tsdpa_ms\ttime_vs_causal\tbound\tspeedup_vs_sdpa\n");
  for (std::int64_t T : o.seq) {
    at::manual_seed(0);
    const std::vector<std::int64_t> shape{1, o.heads, T, o.head_dim};
    const at::Tensor q = at::randn(shape, options), k = at::randn(shape, options),
                     v = at::randn(shape, options), dout = at::randn(shape, options);
    std::vector<LayoutSet> layouts;  // one per keep, shared by both passes
    for (double keep : o.keep) layouts.push_back({random_causal_layout(T, o.tile, keep)});
    for (std::size_t i = 0; i < layouts.size(); ++i)
      validate_or_exit(q, k, v, layouts[i], scale, "T = " + std::to_string(T) + ", keep " + std::to_string(o.keep[i]));
    for (const std::string pass : {"fwd", "fwd+bwd"}) {
      if (o.pass != "both" && o.pass != pass) continue;
      auto timed = [&](const Attention& attention) {
        return median_ms([&] {
          if (pass == "fwd") {
            c10::NoGradGuard no_grad;
            attention(q, k, v);
            return;
          }
          at::Tensor qg = q.detach().requires_grad_(true), kg = k.detach().requires_grad_(true),
                     vg = v.detach().requires_grad_(true);
          torch::autograd::grad({attention(qg, kg, vg)}, {qg, kg, vg}, {dout});
        }, o.reps, cuda, o.max_ms);
      };
      const double sdpa_ms = o.sdpa ? timed(sdpa_causal) : NAN;
      double causal_ms = 0.0, causal_density = 0.0;
      for (std::size_t i = 0; i < o.keep.size(); ++i) {
        const double keep = o.keep[i];
        const double ms = timed([&](const at::Tensor& a, const at::Tensor& b, const at::Tensor& c) {
          return block_sparse_attention(a, b, c, layouts[i], scale);
        });
        const double density = layouts[i][0]->block_density();
        if (keep >= 1.0) causal_ms = ms, causal_density = density;
        std::printf("%s\t%lld\t%s\t%.3f\t%.4f\t%.3f\t%.3f\t%.3f\t%.3f\t%.2f\n", o.device.c_str(),
                    static_cast<long long>(T), pass.c_str(), keep, density, ms, sdpa_ms,
                    ms / causal_ms, 1.2 * density / causal_density, sdpa_ms / ms);
        std::fflush(stdout);
      }
    }
  }
  return 0;
}
