#pragma once
// Raw CUDA block-sparse attention kernels (no torch here; block_sparse_cuda_launcher.cpp
// validates inputs with ATen, fills one BlockSparseParams and calls these).
//
//   out = softmax(scale q k^T | layout) v,  lse = log-sum-exp of the allowed scores
//   q, dout, out, dq [B*H, T, D]; k, v, dk, dv [B*H, S, D]; lse, delta [B*H, T]
//   (row-major, every (b, h) slice contiguous after the previous one)
//
// Layouts live on the device as concatenated CSR arrays, one entry of `meta` per layout:
//   meta[6*i + 0] tile, 1 number of CSR rows, 2 offset into ptr, 3 offset into idx/tmask,
//   4 offset into masks (bytes), 5 unused.
// For the forward and dq kernels a CSR row is a query tile and idx holds key tiles; for the
// dk/dv kernel the CSR is transposed (row = key tile, idx = query tiles). masks are always
// [tile (query), tile (key)] bytes, 1 = attend. n_layouts is 1 (shared) or B*H.
#include <cstdint>

namespace attnlab::kernels::cuda {

struct DeviceLayouts {
  const std::int64_t* meta = nullptr;
  const std::int64_t* ptr = nullptr;
  const std::int64_t* idx = nullptr;
  const std::int64_t* tmask = nullptr;
  const std::uint8_t* masks = nullptr;
  std::int64_t n_layouts = 1;
};

constexpr int kMaxHeadDim = 256;

// Everything one forward or backward launch needs, filled at one place in the launcher (as
// flash-attention's host API fills its Flash_fwd_params) instead of 12-14 positional
// arguments that a refactor could silently swap. The kernels take it by value. Pointers a
// pass does not use stay null: the forward reads q, k, v and writes out, lse; the backward
// reads q, k, v, dout, lse, delta and writes dq, dk, dv.
template <typename scalar_t>
struct BlockSparseParams {
  const scalar_t* q = nullptr;
  const scalar_t* k = nullptr;
  const scalar_t* v = nullptr;
  const scalar_t* dout = nullptr;
  scalar_t* out = nullptr;
  scalar_t* lse = nullptr;          // written by the forward, read by the backward
  const scalar_t* delta = nullptr;  // rowsum(dout * out) - dlse, [B*H, T]
  scalar_t* dq = nullptr;
  scalar_t* dk = nullptr;
  scalar_t* dv = nullptr;
  std::int64_t BH = 0, T = 0, S = 0, D = 0;
  double scale = 1.0;
  DeviceLayouts rows;  // query-tile CSR: forward and dq
  DeviceLayouts cols;  // key-tile (transposed) CSR: dk and dv
  void* stream = nullptr;  // cudaStream_t
};

// out, lse from q, k, v over `rows` (lse -inf and out 0 for rows with no allowed key).
template <typename scalar_t>
void launch_forward(const BlockSparseParams<scalar_t>& params);

// dq over `rows`, then dk and dv over `cols`; each output row has exactly one writer.
template <typename scalar_t>
void launch_backward(const BlockSparseParams<scalar_t>& params);

// The last CUDA error as text, or nullptr when there was none.
const char* last_error();

}  // namespace attnlab::kernels::cuda
