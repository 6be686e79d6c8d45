// masks: causal attention restricted to one fixed candidate mask expression (a union or
// intersection of windows, strides, sinks, blocks, random tiles; grammar in masks.hpp):
// the fixed-pattern family of Longformer / BigBird / StreamingLLM configurations.
//
//   A = masks::dense(pattern, T)                       bool [T, T], causal, true = attend
//   out[b,h,t] = sum_{s: A[t,s]} softmax_s(q[b,h,t]·k[b,h,s] / sqrt(D)) v[b,h,s]
//   q [B, H, T, D], k [B, H, S, D], v [B, H, S, D] -> out [B, H, T, D]   (S == T)
//   a query row with no allowed key yields 0 (as in every attnlab kernel)
//
// execution = "reference"    scores, masked_fill -inf, softmax, matmul (materializes T x T)
//           = "block_sparse" attnlab's flash-style kernel over the mask's block layout
#include <attnlab/kernels/attention.hpp>
#include <attnlab/masks.hpp>
#include <attnlab/plugin.hpp>

#include <cmath>

namespace {

class MaskedAttention : public attnlab::AttentionBackend {
 public:
  explicit MaskedAttention(const attnlab::BackendInit& init)
      : AttentionBackend("MaskedAttention"),
        pattern_(attnlab::masks::canonical(init.params.get_string("pattern"))),
        execution_(init.params.get_string("execution")),
        tile_(init.params.get_int("tile")) {}

  static std::vector<attnlab::ParamSpec> schema() {
    return {attnlab::ParamSpec::text("pattern", "sink:4|window:256",
                                     "mask expression, e.g. sink:4|window:256 (atoms causal, window:W, "
                                     "stride:S[:W], sink:N, block:B, random:P[:B[:SEED]]; '&' and, '|' or)"),
            attnlab::param::execution({"reference", "block_sparse"},
                                      "masked T x T math, or the block-sparse kernel over the mask's layout"),
            attnlab::param::tile()};
  }

  // A malformed pattern is refused while the sweep loads, not when its trial runs.
  static void validate(const attnlab::Params& params) {
    attnlab::masks::canonical_param("pattern", params.get_string("pattern"));
  }

  attnlab::kernels::LayoutSet layouts(std::int64_t T) const override {
    return {attnlab::masks::block_layout(pattern_, T, tile_)};
  }

  // reference: masked T x T math computes every element; block_sparse: the mask's tiles.
  attnlab::Cost cost(const attnlab::AttentionShape& shape) const override {
    if (execution_ == "reference") return attnlab::full_cost(shape);
    return attnlab::mask_cost(layouts(shape.seq_len), shape);
  }

  torch::Tensor forward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) override {
    const std::int64_t T = q.size(2);
    const double scale = attnlab::kernels::softmax_scale(q.size(-1));
    if (execution_ == "block_sparse")
      return attnlab::kernels::block_sparse_attention(q, k, v, {attnlab::masks::block_layout(pattern_, T, tile_)}, scale);
    const auto allowed = attnlab::masks::dense(pattern_, T).to(q.device());
    auto scores = torch::matmul(q, k.transpose(-2, -1)) * scale;
    return torch::matmul(attnlab::kernels::masked_softmax(scores, allowed), v);
  }

 private:
  std::string pattern_;
  std::string execution_;
  std::int64_t tile_;
};

}  // namespace

ATTNLAB_PLUGIN(MaskedAttention, "masks", "2.0.0",
               "causal attention restricted to one fixed mask expression (windows, strides, sinks, blocks, random)")
