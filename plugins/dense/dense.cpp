// dense: standard causal softmax attention, the baseline every other backend is held to.
//
//   out[b,h,t] = sum_{s<=t} softmax_s(q[b,h,t]·k[b,h,s] / sqrt(D)) v[b,h,s]
//   q [B, H, T, D], k [B, H, S, D], v [B, H, S, D] -> out [B, H, T, D]   (S == T)
//
// execution = "sdpa"         LibTorch's own attention, whatever it dispatches to. On 2.x CPU
//                            (at::scaled_dot_product_attention) that is a flash kernel,
//                            aten::_scaled_dot_product_flash_attention_for_cpu: the strong
//                            peer. On 1.13 (at::_scaled_dot_product_attention) it is a
//                            composite *math* path: full Q K^T, a float mask, T x T weights.
//                            The run context's sdpa_backend says which one a run measured.
//           = "math"         matmul, masked_fill, softmax, matmul: what a notebook writes
//           = "block_sparse" attnlab's flash-style kernel with the causal block layout
#include <attnlab/kernels/attention.hpp>
#include <attnlab/masks.hpp>
#include <attnlab/plugin.hpp>

#include <torch/version.h>

#include <cmath>

namespace {

class DenseAttention : public attnlab::AttentionBackend {
 public:
  explicit DenseAttention(const attnlab::BackendInit& init)
      : AttentionBackend("DenseAttention"),
        execution_(init.params.get_string("execution")),
        tile_(init.params.get_int("tile")) {}

  static std::vector<attnlab::ParamSpec> schema() {
    return {attnlab::param::execution({"sdpa", "math", "block_sparse"},
                                      "sdpa: LibTorch's attention (2.x CPU: flash; 1.13: math), math: notebook "
                                      "matmul+softmax, block_sparse: attnlab's kernel"),
            attnlab::param::tile()};
  }

  attnlab::kernels::LayoutSet layouts(std::int64_t T) const override {
    return {attnlab::masks::block_layout("causal", T, tile_)};
  }

  // The notebook math, and 1.13's composite sdpa, compute every element of T x T; flash sdpa
  // and the kernel compute the causal half.
  attnlab::Cost cost(const attnlab::AttentionShape& shape) const override {
    const bool full = execution_ == "math" || (execution_ == "sdpa" && TORCH_VERSION_MAJOR < 2);
    return full ? attnlab::full_cost(shape) : attnlab::mask_cost(layouts(shape.seq_len), shape);
  }

  torch::Tensor forward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) override {
    const double scale = attnlab::kernels::softmax_scale(q.size(-1));
    if (execution_ == "block_sparse")
      return attnlab::kernels::block_sparse_attention(q, k, v, {attnlab::masks::block_layout("causal", q.size(2), tile_)},
                                                      scale);
    if (execution_ == "math") {
      auto scores = torch::matmul(q, k.transpose(-2, -1)) * scale;
      auto future = torch::ones({q.size(2), k.size(2)}, q.options().dtype(torch::kBool)).triu(1);
      return torch::matmul(torch::softmax(scores.masked_fill(future, -INFINITY), -1), v);
    }
#if TORCH_VERSION_MAJOR >= 2
    return at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/true);
#else
    return std::get<0>(at::_scaled_dot_product_attention(q, k, v, {}, 0.0, /*need_attn_weights=*/false,
                                                         /*is_causal=*/true));
#endif
  }

 private:
  std::string execution_;
  std::int64_t tile_;
};

}  // namespace

ATTNLAB_PLUGIN(DenseAttention, "dense", "2.0.0", "causal softmax attention (baseline): LibTorch sdpa (flash on 2.x CPU, math on 1.13), notebook math, or attnlab's block-sparse kernel")
