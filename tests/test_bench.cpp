// The bench trial's accounting: peak memory of a forward+backward pass includes the gradients
// it creates, and the FLOP figures count exactly the elements a mask allows (useful) or the
// whole non-empty tiles (upper bound), with the sgemm fraction taken from the useful ones.
#include "trials/bench/measure.hpp"

#include <attnlab/masks.hpp>
#include <attnlab/registry.hpp>

#include <ATen/ATen.h>

#include "catch.hpp"

#include "support.hpp"

using namespace attnlab;

namespace {

using attnlab::test::MemorySink;
using attnlab::test::registry;

constexpr double kMiB = 1024.0 * 1024.0;

std::shared_ptr<AttentionBackend> make(const std::string& name, const std::map<std::string, ParamValue>& params,
                                       std::int64_t heads, std::int64_t dim) {
  BackendInit init;
  init.n_heads = heads;
  init.head_dim = dim;
  return registry().create(name, init, params);
}

BenchOptions small(const std::string& pass) {
  BenchOptions o;
  o.batch = 1;
  o.heads = 4;
  o.seq_len = 512;
  o.head_dim = 32;
  o.pass = pass;
  o.warmup = 1;
  o.repeats = 2;
  return o;
}

}  // namespace

TEST_CASE("a forward+backward peak holds at least the new q, k, v gradients, a forward at least its output",
          "[bench][memory]") {
  for (const std::string execution : {"block_sparse", "math", "sdpa"}) {
    INFO("dense execution = " << execution);
    const auto o = small("fwd+bwd");
    const double tensor_bytes = double(o.batch * o.heads * o.seq_len * o.head_dim) * sizeof(float);
    MemorySink sink;
    run_bench(*make("dense", {{"execution", execution}}, o.heads, o.head_dim), o, sink);
    // dq, dk and dv are three new tensors of q's size, alive at the end of the pass.
    REQUIRE(sink.final("memory/peak_tensor_mib") * kMiB >= 3 * tensor_bytes);

    MemorySink forward_sink;
    run_bench(*make("dense", {{"execution", execution}}, o.heads, o.head_dim), small("fwd"), forward_sink);
    REQUIRE(forward_sink.final("memory/peak_tensor_mib") * kMiB >= tensor_bytes);
    // Backward needs what the forward needed, and the gradients on top.
    REQUIRE(sink.final("memory/peak_tensor_mib") > forward_sink.final("memory/peak_tensor_mib"));
  }
}

TEST_CASE("bench FLOPs: useful counts the mask's allowed elements, tiles the whole non-empty tiles", "[bench][flops]") {
  const std::int64_t T = 100, W = 7, tile = 16;
  std::int64_t allowed = 0;
  for (std::int64_t t = 0; t < T; ++t) allowed += std::min(t + 1, W);
  const auto layout = masks::block_layout("window:7", T, tile);

  for (const std::string pass : {"fwd", "fwd+bwd"}) {
    INFO("pass = " << pass);
    BenchOptions o = small(pass);
    o.seq_len = T;
    o.sgemm_gflops = 100.0;
    MemorySink sink;
    run_bench(*make("masks", {{"pattern", "window:7"}, {"execution", "block_sparse"}, {"tile", tile}}, o.heads,
                    o.head_dim),
              o, sink);
    const double per_element = 4.0 * double(o.batch * o.heads * o.head_dim) * (pass == "fwd" ? 1.0 : 3.5);
    REQUIRE(sink.final("flops/useful") == Approx(per_element * double(allowed)));
    REQUIRE(sink.final("flops/tiles") == Approx(per_element * double(layout->nnz() * tile * tile)));
    const double seconds = sink.final("time/median_ms") / 1e3;
    REQUIRE(sink.final("flops/gflops") == Approx(per_element * double(allowed) / seconds / 1e9));
    REQUIRE(sink.final("flops/fraction_of_sgemm") == Approx(sink.final("flops/gflops") / 100.0));
  }
}

TEST_CASE("bench mode = hard runs the backend hard mode and topk block selection reports its time",
          "[bench][mode]") {
  auto o = small("fwd");
  o.seq_len = 512;  // 8 tiles of 64: the causal layout keeps 36 of 64
  const std::map<std::string, ParamValue> moba{{"granularity", std::string("block")}, {"block", std::int64_t{64}},
                                               {"k", std::int64_t{2}}, {"execution", std::string("block_sparse")}};
  MemorySink soft, hard;
  o.mode = "soft";
  run_bench(*make("topk", moba, o.heads, o.head_dim), o, soft);
  o.mode = "hard";
  run_bench(*make("topk", moba, o.heads, o.head_dim), o, hard);
  // Soft topk is masked T x T math (every score computed), so it reports dense cost (what
  // executed, not its mask); hard runs the kernel on the causal tiles its selection touches
  // (per-query MoBA choices unioned per tile: most of them here).
  CHECK(soft.final("density/block") == Approx(1.0));
  CHECK(hard.final("density/block") <= 36.0 / 64.0 + 1e-9);
  CHECK(hard.final("flops/computed") < 0.75 * soft.final("flops/computed"));
  CHECK(soft.metrics.count("time/select_ms") == 0);

  MemorySink selected;
  const std::map<std::string, ParamValue> blocks{{"granularity", std::string("query_block")}, {"k", std::int64_t{2}},
                                                 {"execution", std::string("block_sparse")}};
  run_bench(*make("topk", blocks, o.heads, o.head_dim), o, selected);
  CHECK(selected.final("density/block") == Approx(15.0 / 64.0));  // the diagonal + 1 earlier tile per row
  CHECK(selected.final("time/select_ms") > 0.0);
  CHECK(selected.final("time/select_ms") < selected.final("time/max_ms"));  // part of the timed pass
}
