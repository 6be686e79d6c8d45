#pragma once
// How a block layout crosses the op boundary: four tensors per layout, the BlockLayout fields
// (kernels/block_layout.hpp), in four parallel lists (one entry per layout: 1, H or B*H).
//
//   row_ptr   int64 [n_q_tiles + 1]      CSR over query tiles
//   col_idx   int64 [nnz]                key tile of each stored tile
//   tile_mask int64 [nnz]                -1 = full tile, else an index into masks
//   masks     bool  [n_partial, tile, tile]  element masks of the partial tiles
// T and S come from the tensors the layout is used with; the tile from masks.size(1), so the
// four tensors describe a layout completely (masks is [0, tile, tile] when nothing is partial).
#include <attnlab/kernels/block_layout.hpp>

#include <ATen/ATen.h>

#include <tuple>

namespace attnlab::ops {

using LayoutTensors = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

// Checks the lists (same length, at least one, masks 3-D) and rebuilds the layouts for a
// T x S score matrix; the kernels check the rest (CSR bounds, T and S). `who` names the op.
kernels::LayoutSet to_layouts(const char* who, at::TensorList row_ptr, at::TensorList col_idx,
                              at::TensorList tile_mask, at::TensorList masks, std::int64_t T,
                              std::int64_t S);

LayoutTensors to_tensors(const kernels::BlockLayout& layout);

// 1 / sqrt(D) unless given.
double scale_or_default(const c10::optional<double>& scale, const at::Tensor& q);

}  // namespace attnlab::ops
