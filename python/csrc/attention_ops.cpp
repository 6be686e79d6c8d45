// torch.ops.attnlab: block-sparse attention and its layouts, for Python (torch.ops.load_library)
// and TorchScript. Every op takes layouts as four tensor lists (layout_args.hpp).
//
//   attention(q, k, v, layout..., scale?) -> out
//     q [B, H, T, D], k [B, H, S, D], v [B, H, S, D]  ->  out [B, H, T, D]
//     out[b,h,t] = sum_s softmax_s(q[b,h,t]·k[b,h,s] * scale  over s allowed by the layout of
//     (b, h)) v[b,h,s]; scale defaults to 1/sqrt(D). A query row with no allowed key gives 0,
//     with zero gradient. Differentiable in q, k, v (the kernel's FlashAttention-2 backward).
//   attention_lse(...) -> (out, lse [B, H, T])    lse = log sum_s exp(score) over allowed s,
//     -inf for an empty row; both outputs differentiable.
//   layout_from_mask(mask [T, S] bool, tile) -> layout        tiles with no True dropped,
//     full tiles marked full, every other tile keeps its element mask (any mask, any T, S)
//   layout_from_expr(expression, T, tile) -> layout           the `masks` grammar (masks.hpp)
//   layout_to_mask(layout, T, S) -> bool [T, S]               the inverse, for checks
//
// Dispatch: `attention` and `attention_lse` have an Autograd kernel (the kernels' autograd
// function) and a CPU kernel (forward only, for inference mode and for no-grad calls below
// autograd); with ATTNLAB_WITH_CUDA the CUDA key too (the kernels route CUDA tensors to their
// CUDA path). Layout ops run on the CPU: layouts are small CPU tensors.
#include "layout_args.hpp"

#include <attnlab/kernels/attention.hpp>
#include <attnlab/masks.hpp>

#include <torch/library.h>

#include <stdexcept>

namespace attnlab::ops {
namespace {

kernels::LayoutSet layouts_for(const char* who, const at::Tensor& q, const at::Tensor& k,
                               at::TensorList row_ptr, at::TensorList col_idx,
                               at::TensorList tile_mask, at::TensorList masks) {
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4, who, ": q and k must be [B, H, T|S, D], got q ",
              q.sizes(), ", k ", k.sizes());
  return to_layouts(who, row_ptr, col_idx, tile_mask, masks, q.size(2), k.size(2));
}

std::tuple<at::Tensor, at::Tensor> attention_lse_autograd(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, at::TensorList row_ptr,
    at::TensorList col_idx, at::TensorList tile_mask, at::TensorList masks,
    c10::optional<double> scale) {
  auto layouts = layouts_for("attnlab::attention", q, k, row_ptr, col_idx, tile_mask, masks);
  return kernels::block_sparse_attention_lse(q, k, v, std::move(layouts), scale_or_default(scale, q));
}

at::Tensor attention_autograd(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                              at::TensorList row_ptr, at::TensorList col_idx,
                              at::TensorList tile_mask, at::TensorList masks,
                              c10::optional<double> scale) {
  auto layouts = layouts_for("attnlab::attention", q, k, row_ptr, col_idx, tile_mask, masks);
  return kernels::block_sparse_attention(q, k, v, std::move(layouts), scale_or_default(scale, q));
}

std::tuple<at::Tensor, at::Tensor> attention_lse_forward(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, at::TensorList row_ptr,
    at::TensorList col_idx, at::TensorList tile_mask, at::TensorList masks,
    c10::optional<double> scale) {
  auto layouts = layouts_for("attnlab::attention", q, k, row_ptr, col_idx, tile_mask, masks);
  return kernels::block_sparse_forward(q, k, v, layouts, scale_or_default(scale, q));
}

at::Tensor attention_forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                             at::TensorList row_ptr, at::TensorList col_idx,
                             at::TensorList tile_mask, at::TensorList masks,
                             c10::optional<double> scale) {
  return std::get<0>(attention_lse_forward(q, k, v, row_ptr, col_idx, tile_mask, masks, scale));
}

LayoutTensors layout_from_mask(const at::Tensor& mask, std::int64_t tile) {
  TORCH_CHECK(mask.dim() == 2, "attnlab::layout_from_mask: mask must be [T, S], got ",
              mask.dim(), "-D ", mask.sizes());
  TORCH_CHECK(mask.scalar_type() == at::kBool,
              "attnlab::layout_from_mask: mask must be bool (True = may attend), got ",
              mask.scalar_type());
  TORCH_CHECK(tile >= 8 && tile <= 512, "attnlab::layout_from_mask: tile must be in [8, 512], got ", tile);
  return to_tensors(kernels::BlockLayout::from_dense(mask, tile));
}

LayoutTensors layout_from_expr(const std::string& expression, std::int64_t T, std::int64_t tile) {
  TORCH_CHECK(T >= 1, "attnlab::layout_from_expr: T must be >= 1, got ", T);
  TORCH_CHECK(tile >= 8 && tile <= 512, "attnlab::layout_from_expr: tile must be in [8, 512], got ", tile);
  try {
    return to_tensors(*masks::block_layout(expression, T, tile));
  } catch (const std::invalid_argument& e) {
    TORCH_CHECK(false, "attnlab::layout_from_expr: bad mask expression '", expression, "': ", e.what());
  }
}

at::Tensor layout_to_mask(const at::Tensor& row_ptr, const at::Tensor& col_idx,
                          const at::Tensor& tile_mask, const at::Tensor& masks, std::int64_t T,
                          std::int64_t S) {
  const auto layouts = to_layouts("attnlab::layout_to_mask", {row_ptr}, {col_idx}, {tile_mask},
                                  {masks}, T, S);
  TORCH_CHECK(row_ptr.numel() == layouts[0]->n_q_tiles() + 1, "attnlab::layout_to_mask: row_ptr has ",
              row_ptr.numel(), " entries, T = ", T, " at tile ", layouts[0]->tile, " needs ",
              layouts[0]->n_q_tiles() + 1);
  return layouts[0]->to_dense();
}

}  // namespace
}  // namespace attnlab::ops

TORCH_LIBRARY(attnlab, m) {
  using namespace attnlab::ops;
  m.def("attention(Tensor q, Tensor k, Tensor v, Tensor[] row_ptr, Tensor[] col_idx, "
        "Tensor[] tile_mask, Tensor[] masks, float? scale=None) -> Tensor");
  m.def("attention_lse(Tensor q, Tensor k, Tensor v, Tensor[] row_ptr, Tensor[] col_idx, "
        "Tensor[] tile_mask, Tensor[] masks, float? scale=None) -> (Tensor, Tensor)");
  m.def("layout_from_mask(Tensor mask, int tile=64) -> (Tensor, Tensor, Tensor, Tensor)",
        TORCH_FN(layout_from_mask));
  m.def("layout_from_expr(str expression, int T, int tile=64) -> (Tensor, Tensor, Tensor, Tensor)",
        TORCH_FN(layout_from_expr));
  m.def("layout_to_mask(Tensor row_ptr, Tensor col_idx, Tensor tile_mask, Tensor masks, int T, "
        "int S) -> Tensor",
        TORCH_FN(layout_to_mask));
}

TORCH_LIBRARY_IMPL(attnlab, Autograd, m) {
  m.impl("attention", TORCH_FN(attnlab::ops::attention_autograd));
  m.impl("attention_lse", TORCH_FN(attnlab::ops::attention_lse_autograd));
}

TORCH_LIBRARY_IMPL(attnlab, CPU, m) {
  m.impl("attention", TORCH_FN(attnlab::ops::attention_forward));
  m.impl("attention_lse", TORCH_FN(attnlab::ops::attention_lse_forward));
}

#ifdef ATTNLAB_WITH_CUDA
TORCH_LIBRARY_IMPL(attnlab, CUDA, m) {
  m.impl("attention", TORCH_FN(attnlab::ops::attention_forward));
  m.impl("attention_lse", TORCH_FN(attnlab::ops::attention_lse_forward));
}
#endif
