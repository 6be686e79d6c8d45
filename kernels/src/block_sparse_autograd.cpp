// block_sparse_attention: the autograd function backends call for execution = "block_sparse".
//
//   q [B, H, T, D], k [B, H, S, D], v [B, H, S, D], layouts (1, H or B*H)  ->  out [B, H, T, D]
//   forward  = block_sparse_forward   (saves q, k, v, out, lse — O(B·H·T·D), never T x S)
//   backward = block_sparse_backward  (dq, dk, dv; no gradient for layouts or scale)
// One autograd function serves both entry points (plan_autograd.hpp): it returns (out, lse),
// lse differentiable. The layouts ride along in the autograd context as their tensors,
// rebuilt into BlockLayouts for the backward pass.
#include <attnlab/kernels/attention.hpp>

#include "plan_autograd.hpp"

#include <vector>

namespace attnlab::kernels {

namespace {

using torch::autograd::AutogradContext;

void save_layouts(AutogradContext* ctx, const LayoutSet& layouts) {
  std::vector<at::Tensor> tensors;
  std::vector<std::int64_t> dims;
  for (const auto& layout : layouts) {
    tensors.insert(tensors.end(), {layout->row_ptr, layout->col_idx, layout->tile_mask,
                                   layout->masks.defined() ? layout->masks : at::Tensor()});
    dims.insert(dims.end(), {layout->T, layout->S, layout->tile});
  }
  ctx->saved_data["layout_tensors"] = tensors;
  ctx->saved_data["layout_dims"] = dims;
}

LayoutSet load_layouts(AutogradContext* ctx) {
  const std::vector<at::Tensor> tensors = ctx->saved_data["layout_tensors"].toTensorVector();
  const std::vector<std::int64_t> dims = ctx->saved_data["layout_dims"].toIntVector();
  LayoutSet layouts;
  for (std::size_t i = 0; i * 3 < dims.size(); ++i) {
    auto layout = std::make_shared<BlockLayout>();
    layout->T = dims[3 * i];
    layout->S = dims[3 * i + 1];
    layout->tile = dims[3 * i + 2];
    layout->row_ptr = tensors[4 * i];
    layout->col_idx = tensors[4 * i + 1];
    layout->tile_mask = tensors[4 * i + 2];
    layout->masks = tensors[4 * i + 3];
    layouts.push_back(std::move(layout));
  }
  return layouts;
}

// LayoutSets as a plan of PlanAttentionFunction.
struct LayoutPlan {
  using Type = LayoutSet;
  static constexpr auto forward = &block_sparse_forward;
  static constexpr auto backward = &block_sparse_backward;
  static constexpr auto save = &save_layouts;
  static constexpr auto load = &load_layouts;
};

}  // namespace

std::tuple<at::Tensor, at::Tensor> block_sparse_attention_lse(const at::Tensor& q, const at::Tensor& k,
                                                              const at::Tensor& v, LayoutSet layouts,
                                                              double scale) {
  auto outputs = PlanAttentionFunction<LayoutPlan>::apply(q, k, v, layouts, scale);
  return {outputs[0], outputs[1]};
}

at::Tensor block_sparse_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                  LayoutSet layouts, double scale) {
  return std::get<0>(block_sparse_attention_lse(q, k, v, std::move(layouts), scale));
}

}  // namespace attnlab::kernels
