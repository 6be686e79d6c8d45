// BlockLayout: which tiles of a T x S score matrix the block-sparse kernels compute.
//
//   from_dense: allowed bool [T, S] -> CSR over query tiles of the non-empty tiles.
//     A tile whose valid elements (inside T x S) are all allowed is "full" (tile_mask -1);
//     any other non-empty tile is "partial" and keeps its element mask [tile, tile], padded
//     false past the T / S edges. Only partial tiles pay for element masking in the kernels.
//   to_dense: the inverse, bool [T, S].
//   block_density = nnz / (n_q_tiles * n_k_tiles); element_density = allowed / (T * S).
#include <attnlab/kernels/block_layout.hpp>

#include <algorithm>
#include <vector>

namespace attnlab::kernels {

namespace {
std::int64_t valid_extent(std::int64_t index, std::int64_t tile, std::int64_t size) {
  return std::min(tile, size - index * tile);
}
}  // namespace

BlockLayout BlockLayout::from_dense(const at::Tensor& allowed, std::int64_t tile) {
  TORCH_CHECK(allowed.dim() == 2, "BlockLayout::from_dense: `allowed` must be a [T, S] mask, got ",
              allowed.dim(), " dims");
  TORCH_CHECK(tile >= 1 && tile <= 512, "BlockLayout::from_dense: tile must be in [1, 512], got ",
              tile);
  BlockLayout layout;
  layout.T = allowed.size(0);
  layout.S = allowed.size(1);
  layout.tile = tile;
  const std::int64_t nq = layout.n_q_tiles(), nk = layout.n_k_tiles();

  // [nq*tile, nk*tile] padded with false, viewed as [nq, nk, tile, tile] tiles.
  at::Tensor padded = at::zeros({nq * tile, nk * tile}, at::kBool);
  padded.slice(0, 0, layout.T).slice(1, 0, layout.S).copy_(allowed.to(at::kCPU).to(at::kBool));
  at::Tensor tiles = padded.view({nq, tile, nk, tile}).permute({0, 2, 1, 3}).contiguous();
  at::Tensor counts = tiles.sum({2, 3}).to(at::kLong).contiguous();  // [nq, nk]
  const auto* count = counts.data_ptr<std::int64_t>();

  std::vector<std::int64_t> row_ptr(nq + 1, 0), col_idx, tile_mask, partial_tiles;
  for (std::int64_t i = 0; i < nq; ++i) {
    const std::int64_t rows = valid_extent(i, tile, layout.T);
    for (std::int64_t j = 0; j < nk; ++j) {
      const std::int64_t c = count[i * nk + j];
      if (c == 0) continue;
      col_idx.push_back(j);
      if (c == rows * valid_extent(j, tile, layout.S)) {
        tile_mask.push_back(-1);
      } else {
        tile_mask.push_back(static_cast<std::int64_t>(partial_tiles.size()));
        partial_tiles.push_back(i * nk + j);
      }
    }
    row_ptr[i + 1] = static_cast<std::int64_t>(col_idx.size());
  }
  auto to_tensor = [](const std::vector<std::int64_t>& values) {
    return at::tensor(at::ArrayRef<std::int64_t>(values), at::kLong);
  };
  layout.row_ptr = to_tensor(row_ptr);
  layout.col_idx = to_tensor(col_idx);
  layout.tile_mask = to_tensor(tile_mask);
  layout.masks = partial_tiles.empty()
                     ? at::zeros({0, tile, tile}, at::kBool)
                     : tiles.view({nq * nk, tile, tile}).index_select(0, to_tensor(partial_tiles))
                           .contiguous();
  return layout;
}

BlockLayout BlockLayout::from_block_selection(const at::Tensor& selected_in, std::int64_t S, std::int64_t tile) {
  TORCH_CHECK(selected_in.dim() == 2, "BlockLayout::from_block_selection: `selected` must be [T, n_blocks]");
  BlockLayout layout;
  layout.T = selected_in.size(0);
  layout.S = S;
  layout.tile = tile;
  const std::int64_t nq = layout.n_q_tiles(), nk = layout.n_k_tiles();
  TORCH_CHECK(selected_in.size(1) == nk, "BlockLayout::from_block_selection: `selected` has ", selected_in.size(1),
              " blocks, S = ", S, " at tile ", tile, " has ", nk);
  const at::Tensor selected = selected_in.to(at::kCPU).to(at::kBool).contiguous();
  const bool* sel = selected.data_ptr<bool>();
  std::vector<std::int64_t> row_ptr(nq + 1, 0), col_idx, tile_mask;
  std::vector<bool> masks;  // n_partial x tile x tile
  for (std::int64_t i = 0; i < nq; ++i) {
    const std::int64_t r0 = i * tile, rows = valid_extent(i, tile, layout.T);
    for (std::int64_t j = 0; j <= std::min(i, nk - 1) && j * tile < r0 + rows; ++j) {
      const std::int64_t c0 = j * tile, cols = valid_extent(j, tile, S);
      // Which rows attend which keys of block j: chosen, and causal (key <= query).
      std::int64_t chosen = 0;
      bool full = true;
      for (std::int64_t r = 0; r < rows; ++r) {
        const bool pick = sel[(r0 + r) * nk + j];
        chosen += pick;
        full = full && pick && c0 + cols - 1 <= r0 + r;
      }
      if (chosen == 0) continue;
      col_idx.push_back(j);
      if (full) {
        tile_mask.push_back(-1);
        continue;
      }
      tile_mask.push_back(static_cast<std::int64_t>(masks.size() / static_cast<std::size_t>(tile * tile)));
      for (std::int64_t r = 0; r < tile; ++r)
        for (std::int64_t c = 0; c < tile; ++c)
          masks.push_back(r < rows && c < cols && sel[(r0 + r) * nk + j] && c0 + c <= r0 + r);
    }
    row_ptr[i + 1] = static_cast<std::int64_t>(col_idx.size());
  }
  auto to_tensor = [](const std::vector<std::int64_t>& values) {
    return at::tensor(at::ArrayRef<std::int64_t>(values), at::kLong);
  };
  layout.row_ptr = to_tensor(row_ptr);
  layout.col_idx = to_tensor(col_idx);
  layout.tile_mask = to_tensor(tile_mask);
  const auto n_partial = static_cast<std::int64_t>(masks.size()) / (tile * tile);
  layout.masks = at::empty({n_partial, tile, tile}, at::kBool);
  bool* out = layout.masks.data_ptr<bool>();
  for (std::size_t e = 0; e < masks.size(); ++e) out[e] = masks[e];
  return layout;
}

at::Tensor BlockLayout::to_dense() const {
  const std::int64_t nq = n_q_tiles(), nk = n_k_tiles();
  at::Tensor padded = at::zeros({nq * tile, nk * tile}, at::kBool);
  const auto* rp = row_ptr.data_ptr<std::int64_t>();
  const auto* ci = col_idx.data_ptr<std::int64_t>();
  const auto* tm = tile_mask.data_ptr<std::int64_t>();
  for (std::int64_t i = 0; i < nq; ++i) {
    for (std::int64_t e = rp[i]; e < rp[i + 1]; ++e) {
      at::Tensor block = padded.slice(0, i * tile, (i + 1) * tile)
                             .slice(1, ci[e] * tile, (ci[e] + 1) * tile);
      if (tm[e] < 0) block.fill_(true); else block.copy_(masks[tm[e]]);
    }
  }
  return padded.slice(0, 0, T).slice(1, 0, S).contiguous();
}

double BlockLayout::block_density() const {
  const std::int64_t total = n_q_tiles() * n_k_tiles();
  return total == 0 ? 0.0 : static_cast<double>(nnz()) / static_cast<double>(total);
}

double BlockLayout::element_density() const {
  if (T * S == 0) return 0.0;
  const auto* rp = row_ptr.data_ptr<std::int64_t>();
  const auto* ci = col_idx.data_ptr<std::int64_t>();
  const auto* tm = tile_mask.data_ptr<std::int64_t>();
  std::int64_t allowed = masks.defined() && masks.numel() > 0 ? masks.sum().item<std::int64_t>() : 0;
  for (std::int64_t i = 0; i < n_q_tiles(); ++i)
    for (std::int64_t e = rp[i]; e < rp[i + 1]; ++e)
      if (tm[e] < 0) allowed += valid_extent(i, tile, T) * valid_extent(ci[e], tile, S);
  return static_cast<double>(allowed) / static_cast<double>(T * S);
}

}  // namespace attnlab::kernels
