// Layout lists <-> kernels::LayoutSet (see layout_args.hpp).
#include "layout_args.hpp"

#include <attnlab/kernels/attention.hpp>

#include <memory>

namespace attnlab::ops {

kernels::LayoutSet to_layouts(const char* who, at::TensorList row_ptr, at::TensorList col_idx,
                              at::TensorList tile_mask, at::TensorList masks, std::int64_t T,
                              std::int64_t S) {
  const std::size_t n = row_ptr.size();
  TORCH_CHECK(n >= 1, who, ": the layout lists are empty (give 1, H or B*H layouts)");
  TORCH_CHECK(col_idx.size() == n && tile_mask.size() == n && masks.size() == n, who,
              ": row_ptr, col_idx, tile_mask and masks must list the same number of layouts, got ",
              n, ", ", col_idx.size(), ", ", tile_mask.size(), ", ", masks.size());
  kernels::LayoutSet layouts;
  layouts.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    TORCH_CHECK(masks[i].dim() == 3 && masks[i].size(1) == masks[i].size(2) && masks[i].size(1) >= 1,
                who, ": layout ", i, ": masks must be [n_partial, tile, tile], got ", masks[i].sizes());
    auto layout = std::make_shared<kernels::BlockLayout>();
    layout->T = T;
    layout->S = S;
    layout->tile = masks[i].size(1);
    layout->row_ptr = row_ptr[i];
    layout->col_idx = col_idx[i];
    layout->tile_mask = tile_mask[i];
    layout->masks = masks[i];
    layouts.push_back(std::move(layout));
  }
  return layouts;
}

LayoutTensors to_tensors(const kernels::BlockLayout& layout) {
  at::Tensor masks = layout.masks.defined() ? layout.masks
                                            : at::zeros({0, layout.tile, layout.tile}, at::kBool);
  return {layout.row_ptr, layout.col_idx, layout.tile_mask, masks};
}

double scale_or_default(const c10::optional<double>& scale, const at::Tensor& q) {
  if (scale.has_value()) return *scale;
  TORCH_CHECK(q.dim() == 4 && q.size(3) > 0, "attnlab: q must be [B, H, T, D] with D > 0, got ",
              q.sizes());
  return kernels::softmax_scale(q.size(3));
}

}  // namespace attnlab::ops
