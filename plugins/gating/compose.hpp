#pragma once
// Hard gating's layouts without a T x T mask: per (b, h), query-tile row i of the result is
// row i of the chosen candidate's precomputed layout (CSR over query tiles, same T and tile).
//
//   candidates  K layouts at one (T, tile), e.g. masks::block_layout(candidate_k, T, tile)
//   choice      int64 [n_rows, n_q_tiles] on the CPU: the candidate of each query tile, or -1
//               for none (that row attends to nothing: out = 0)
//   -> n_rows layouts; O(nnz) each, all sharing the candidates' concatenated partial masks.
#include <attnlab/kernels/block_layout.hpp>

#include <ATen/ATen.h>

#include <memory>
#include <vector>

namespace attnlab_gating {

class LayoutComposer {
 public:
  // Concatenates the candidates' partial masks once; every composed layout refers to them.
  explicit LayoutComposer(std::vector<std::shared_ptr<const attnlab::kernels::BlockLayout>> candidates);

  attnlab::kernels::LayoutSet compose(const at::Tensor& choice) const;

  std::int64_t T() const { return candidates_.front()->T; }
  std::int64_t tile() const { return candidates_.front()->tile; }

 private:
  std::shared_ptr<const attnlab::kernels::BlockLayout> compose_row(const std::int64_t* choice) const;

  std::vector<std::shared_ptr<const attnlab::kernels::BlockLayout>> candidates_;
  std::vector<std::int64_t> mask_offset_;  // candidate k's partial masks start here in all_masks_
  at::Tensor all_masks_;                   // bool [sum_k n_partial_k, tile, tile]
};

}  // namespace attnlab_gating
