#pragma once
// Which tiles of a T x S score matrix a block-sparse kernel computes.
//
//   tile (t_tile, s_tile) covers queries [t_tile*tile, ...+tile) x keys [s_tile*tile, ...+tile)
//   stored CSR over query tiles: keys of query tile i are col_idx[row_ptr[i] .. row_ptr[i+1])
//   a tile is "full" (every element computed) or "partial" (an element mask, e.g. the causal
//   diagonal or a window edge): only partial tiles pay for element masking.
#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <vector>

#define ATTNLAB_KERNELS_API __attribute__((visibility("default")))

namespace attnlab::kernels {

struct ATTNLAB_KERNELS_API BlockLayout {
  std::int64_t T = 0, S = 0, tile = 64;
  at::Tensor row_ptr;    // int64 [n_q_tiles + 1]
  at::Tensor col_idx;    // int64 [nnz], ascending within a row
  at::Tensor tile_mask;  // int64 [nnz]: -1 = full tile, else index into `masks`
  at::Tensor masks;      // bool [n_partial, tile, tile], true = attend (edge tiles padded false)

  std::int64_t n_q_tiles() const { return (T + tile - 1) / tile; }
  std::int64_t n_k_tiles() const { return (S + tile - 1) / tile; }
  std::int64_t nnz() const { return col_idx.defined() ? col_idx.numel() : 0; }
  double block_density() const;    // nnz / (n_q_tiles * n_k_tiles)
  double element_density() const;  // allowed elements / (T * S)

  // From a bool [T, S] mask (true = attend). Tiles with no true element are dropped.
  static BlockLayout from_dense(const at::Tensor& allowed, std::int64_t tile);
  // From key blocks chosen per query (MoBA-style selection): selected bool [T, ceil(S/tile)],
  // block j = keys [j*tile, (j+1)*tile); query t attends the keys <= t of its chosen blocks
  // (causal). Built in O(T * S/tile), without a T x S mask: rows that chose a past block make
  // it full (all rows) or partial (some), the own-diagonal block is the causal triangle.
  static BlockLayout from_block_selection(const at::Tensor& selected, std::int64_t S, std::int64_t tile);
  // Back to bool [T, S] (for checks and for the reference kernel).
  at::Tensor to_dense() const;
};

// One layout shared by all (b, h) (size 1), one per head shared across the batch (size H),
// or one per (b, h) in row-major order (size B*H).
using LayoutSet = std::vector<std::shared_ptr<const BlockLayout>>;

}  // namespace attnlab::kernels
