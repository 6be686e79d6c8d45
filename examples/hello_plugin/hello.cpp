// hello: causal softmax attention with a temperature, the smallest useful backend an
// out-of-tree plugin can be.
//
//   out[b,h,t] = sum_{s<=t} softmax_s(q[b,h,t]·k[b,h,s] / (sqrt(D) * temperature)) v[b,h,s]
//   q [B, H, T, D], k [B, H, S, D], v [B, H, S, D] -> out [B, H, T, D]   (S == T)
#include <attnlab/plugin.hpp>

#include <ATen/ATen.h>

#include <cmath>
#include <limits>

namespace {

class HelloAttention : public attnlab::AttentionBackend {
 public:
  explicit HelloAttention(const attnlab::BackendInit& init)
      : AttentionBackend("HelloAttention"), temperature_(init.params.get_float("temperature")) {}

  // The host checks every trial's values against this before building the backend.
  static std::vector<attnlab::ParamSpec> schema() {
    return {attnlab::ParamSpec::real("temperature", 1.0, 0.05, 20.0, "divides the scores; > 1 flattens attention")};
  }

  torch::Tensor forward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) override {
    const double scale = 1.0 / (std::sqrt(static_cast<double>(q.size(-1))) * temperature_);
    auto scores = at::matmul(q, k.transpose(-2, -1)) * scale;                         // [B, H, T, S]
    auto future = at::ones({q.size(2), k.size(2)}, q.options().dtype(at::kBool)).triu(1);  // s > t
    scores = scores.masked_fill(future, -std::numeric_limits<double>::infinity());
    return at::matmul(at::softmax(scores, -1), v);                                    // [B, H, T, D]
  }

 private:
  double temperature_;
};

}  // namespace

ATTNLAB_PLUGIN(HelloAttention, "hello", "1.0.0", "out-of-tree example: causal softmax attention with a temperature")
