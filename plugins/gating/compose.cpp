// LayoutComposer (compose.hpp): hard gating's per-(b, h) layouts from the candidates' CSR rows.
#include "compose.hpp"

#include <c10/util/Exception.h>

namespace attnlab_gating {

using attnlab::kernels::BlockLayout;

LayoutComposer::LayoutComposer(std::vector<std::shared_ptr<const BlockLayout>> candidates)
    : candidates_(std::move(candidates)) {
  TORCH_CHECK(!candidates_.empty(), "gating: no candidate layouts to compose");
  std::vector<at::Tensor> masks;
  std::int64_t offset = 0;
  for (const auto& c : candidates_) {
    TORCH_CHECK(c->T == T() && c->S == T() && c->tile == tile(), "gating: candidate layouts differ in T, S or tile");
    mask_offset_.push_back(offset);
    const std::int64_t n = c->masks.defined() ? c->masks.size(0) : 0;
    if (n > 0) masks.push_back(c->masks);
    offset += n;
  }
  all_masks_ = masks.empty() ? at::zeros({0, tile(), tile()}, at::kBool) : at::cat(masks).contiguous();
}

attnlab::kernels::LayoutSet LayoutComposer::compose(const at::Tensor& choice) const {
  const at::Tensor c = choice.to(at::kCPU).to(at::kLong).contiguous();
  const std::int64_t nq = (T() + tile() - 1) / tile();
  TORCH_CHECK(c.dim() == 2 && c.size(1) == nq, "gating: choice must be [rows, ", nq, "], got ", c.sizes());
  attnlab::kernels::LayoutSet out;
  for (std::int64_t r = 0; r < c.size(0); ++r) out.push_back(compose_row(c.data_ptr<std::int64_t>() + r * nq));
  return out;
}

// Row i of the result = row i of candidate choice[i]. Every composed layout points at the one
// concatenation of the candidates' partial masks (a partial tile's index is shifted into it):
// no mask is copied, and the kernel indexes that shared masks tensor once per call.
std::shared_ptr<const BlockLayout> LayoutComposer::compose_row(const std::int64_t* choice) const {
  auto layout = std::make_shared<BlockLayout>();
  layout->T = layout->S = T();
  layout->tile = tile();
  const std::int64_t nq = layout->n_q_tiles();
  std::vector<std::int64_t> row_ptr(nq + 1, 0), col_idx, tile_mask;
  for (std::int64_t i = 0; i < nq; ++i) {
    const std::int64_t k = choice[i];
    TORCH_CHECK(k >= -1 && k < static_cast<std::int64_t>(candidates_.size()), "gating: choice ", k, " out of range");
    if (k >= 0) {
      const BlockLayout& L = *candidates_[k];
      const auto* rp = L.row_ptr.data_ptr<std::int64_t>();
      const auto* ci = L.col_idx.data_ptr<std::int64_t>();
      const auto* tm = L.tile_mask.data_ptr<std::int64_t>();
      for (std::int64_t e = rp[i]; e < rp[i + 1]; ++e) {
        col_idx.push_back(ci[e]);
        tile_mask.push_back(tm[e] < 0 ? -1 : mask_offset_[k] + tm[e]);
      }
    }
    row_ptr[i + 1] = static_cast<std::int64_t>(col_idx.size());
  }
  auto to_tensor = [](const std::vector<std::int64_t>& v) { return at::tensor(at::ArrayRef<std::int64_t>(v), at::kLong); };
  layout->row_ptr = to_tensor(row_ptr);
  layout->col_idx = to_tensor(col_idx);
  layout->tile_mask = to_tensor(tile_mask);
  layout->masks = all_masks_;
  return layout;
}

}  // namespace attnlab_gating
