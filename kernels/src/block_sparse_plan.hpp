#pragma once
// Shared plumbing of the CPU block-sparse kernels (internal header):
//   - LayoutView: raw pointers into one BlockLayout (CSR over query tiles) and, for the
//     backward pass, its transpose (CSR over key tiles);
//   - check_inputs: shape / layout validation with messages that name the violated constraint;
//   - split_by_cost: contiguous, cost-balanced chunks of a work list, one per thread, so the
//     causal triangle (query tile i costs i+1 tiles) does not leave one thread idle.
#include <attnlab/kernels/block_layout.hpp>

#include <ATen/ATen.h>

#include "cpu_gemm.hpp"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <tuple>
#include <vector>

namespace attnlab::kernels::cpu {

struct LayoutView {
  std::int64_t T = 0, S = 0, tile = 0, n_q_tiles = 0, n_k_tiles = 0;
  const std::int64_t* row_ptr = nullptr;    // [n_q_tiles + 1]
  const std::int64_t* col_idx = nullptr;    // [nnz]
  const std::int64_t* tile_mask = nullptr;  // [nnz], -1 = full
  const bool* masks = nullptr;              // [n_partial, tile, tile]
  // Transpose (built on demand for the backward pass): query tiles of key tile j are
  // t_row_idx[t_col_ptr[j] .. t_col_ptr[j+1]), ascending, with their tile masks.
  std::vector<std::int64_t> t_col_ptr, t_row_idx, t_tile_mask;
  // Where a partial tile has work: row r of mask i allows only columns in
  // [row_lo[i*tile + r], row_hi[i*tile + r]) (lo = tile, hi = 0 for a row with none); col_lo /
  // col_hi the same per column (built with the transpose). The kernels compute a partial tile
  // in blocks of rows and skip the columns no row of a block uses, e.g. most of the upper
  // half of a causal diagonal tile. t_masks: the partial masks transposed, [n_partial, key,
  // query] (built with the transpose): the forward keeps its scores key-major and masks them a
  // key row at a time. Shared, not copied, by views of layouts with the same masks (hard
  // gating's B*H composed layouts all point into its candidates' masks).
  struct MaskIndex {
    std::vector<std::int64_t> row_lo, row_hi, col_lo, col_hi;
    std::vector<unsigned char> t_masks;
  };
  std::shared_ptr<const MaskIndex> partial_index = std::make_shared<const MaskIndex>();

  static LayoutView of(const BlockLayout& layout, bool with_transpose, const LayoutView* same_masks = nullptr);
  // Pieces of of(), also used by views built from a block list (block_select.cpp):
  // row/column spans (and, with_transpose, the transposed masks) of the n_partial masks at
  // `masks`; the CSR transpose of row_ptr / col_idx / tile_mask, O(nnz + n_k_tiles).
  void index_masks(std::int64_t n_partial, bool with_transpose);
  void build_transpose();
  const bool* mask_of(std::int64_t mask_index) const { return masks + mask_index * tile * tile; }
  const bool* t_mask_of(std::int64_t mask_index) const {
    return reinterpret_cast<const bool*>(partial_index->t_masks.data()) + mask_index * tile * tile;
  }
  struct Span {
    std::int64_t lo, hi;  // empty when lo >= hi
  };
  // Columns used by rows [r0, r1) of partial tile `mask_index` (rows of the mask).
  Span row_span(std::int64_t mask_index, std::int64_t r0, std::int64_t r1) const {
    return span_of(partial_index->row_lo, partial_index->row_hi, mask_index * tile, r0, r1);
  }
  // Rows used by columns [c0, c1) of partial tile `mask_index`.
  Span col_span(std::int64_t mask_index, std::int64_t c0, std::int64_t c1) const {
    return span_of(partial_index->col_lo, partial_index->col_hi, mask_index * tile, c0, c1);
  }
  static Span span_of(const std::vector<std::int64_t>& lo, const std::vector<std::int64_t>& hi,
                      std::int64_t base, std::int64_t i0, std::int64_t i1) {
    Span span{lo[base + i0], hi[base + i0]};
    for (std::int64_t i = i0 + 1; i < i1; ++i) {
      span.lo = std::min(span.lo, lo[base + i]);
      span.hi = std::max(span.hi, hi[base + i]);
    }
    return span;
  }
};

// The views of a layout set, one per distinct layout (a layout shared by several (b, h), as a
// per-head set is across the batch, is viewed once), and which one each (b, h) uses.
struct LayoutViews {
  std::vector<LayoutView> distinct;
  std::vector<std::int64_t> index;  // [B * H]
  // What views built from a block list point into (their CSR arrays and partial masks);
  // shared, so a copy of the views stays valid.
  std::shared_ptr<const std::vector<std::int64_t>> csr;
  at::Tensor masks;
  const LayoutView& of(std::int64_t bh) const { return distinct[index[bh]]; }
  std::vector<LayoutView> each() const;  // one per (b, h), or one if all share it
};

// Validates q/k/v [B,H,T|S,D] and the layout set: 1 layout (shared), H (one per head, the
// same for every batch entry) or B*H (one per (b, h), row-major).
LayoutViews check_inputs(const char* who, const at::Tensor& q, const at::Tensor& k,
                         const at::Tensor& v, const LayoutSet& layouts, bool with_transpose);

// The kernels' bodies behind their public entries (block_sparse_* and block_select_*), on views
// already checked against q, k, v (forward: built with_transpose for the mask transposes;
// backward: with the CSR transpose too).
std::tuple<at::Tensor, at::Tensor> forward_views(const at::Tensor& q, const at::Tensor& k,
                                                 const at::Tensor& v, const LayoutViews& views,
                                                 double scale);
std::tuple<at::Tensor, at::Tensor, at::Tensor> backward_views(
    const at::Tensor& dout, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
    const at::Tensor& out, const at::Tensor& lse, const LayoutViews& views, double scale,
    const at::Tensor& dlse);

// The set as one layout per (b, h) (a single shared layout stays single): for code that
// indexes layouts by slice.
LayoutSet per_slice(const LayoutSet& layouts, std::int64_t B, std::int64_t H);

// x [rows, D] (row-major) into 16-column panels of x^T, [ceil(rows/16)][D][16] zero padded:
// the B operand layout of gemm_nn_panels (the backward packs one K and one V tile at a time).
template <typename scalar_t>
void pack_panels(const scalar_t* x, std::int64_t rows, std::int64_t D, scalar_t* out);

// Splits items [0, costs.size()) into `n_chunks` contiguous ranges of about equal total cost.
// Returns n_chunks + 1 boundaries.
std::vector<std::int64_t> split_by_cost(const std::vector<std::int64_t>& costs,
                                        std::int64_t n_chunks);


// Work items (bh, tile) in (b, h)-major order — query tiles for the forward, key tiles
// (by_key_tile, needs the views' transpose) for the backward — costed by the tiles each one
// computes, split into one contiguous chunk per thread (at::get_num_threads()).
struct WorkList {
  std::vector<std::int64_t> bh, tile;  // per item
  std::vector<std::int64_t> bounds;    // chunk c runs items [bounds[c], bounds[c + 1])
  std::int64_t n_chunks = 1, max_tile = 0;
  static WorkList of(const LayoutViews& views, std::int64_t BH, bool by_key_tile);
};

// Runs fn(chunk) for every chunk in [0, n_chunks), in parallel. ATen 1.13's at::parallel_for
// is an inline `#pragma omp parallel`: in a file compiled without -fopenmp (LibTorch's CMake
// config does not add it) it silently runs serially — measured: 2 threads gave the same time
// as 1. kernels/CMakeLists.txt adds OpenMP when the compiler has it, and at::parallel_for is
// used; otherwise one std::thread per extra chunk (tens of microseconds per call, against
// milliseconds of work; the two measured equal at T = 4096 on 2 threads).
// Inside another parallel region the chunks run serially, as at::parallel_for would.
template <typename F>
void parallel_chunks(std::int64_t n_chunks, const F& fn) {
#ifdef _OPENMP
  at::parallel_for(0, n_chunks, 1, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t chunk = begin; chunk < end; ++chunk) fn(chunk);
  });
#else
  if (n_chunks <= 1 || at::in_parallel_region()) {
    for (std::int64_t chunk = 0; chunk < n_chunks; ++chunk) fn(chunk);
    return;
  }
  std::exception_ptr failure;
  std::mutex failure_mutex;
  auto guarded = [&](std::int64_t chunk) {
    try {
      fn(chunk);
    } catch (...) {
      std::lock_guard<std::mutex> lock(failure_mutex);
      if (!failure) failure = std::current_exception();
    }
  };
  std::vector<std::thread> workers;
  workers.reserve(n_chunks - 1);
  for (std::int64_t chunk = 1; chunk < n_chunks; ++chunk) workers.emplace_back(guarded, chunk);
  guarded(0);
  for (auto& worker : workers) worker.join();
  if (failure) std::rethrow_exception(failure);
#endif
}

}  // namespace attnlab::kernels::cpu
