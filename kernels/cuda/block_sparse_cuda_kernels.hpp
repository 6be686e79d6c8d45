#pragma once
// Raw CUDA block-sparse attention kernels (no torch here; block_sparse_cuda_launcher.cpp
// validates inputs with ATen and calls these). Shapes per (b·h) slice, row-major:
//   q, dout, out [T, D]; k, v [S, D]; lse, delta [T]      (all B*H slices contiguous)
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

// out = softmax(q k^T * scale | layout) v; lse = log-sum-exp (-inf, out 0 for empty rows).
template <typename scalar_t>
void launch_forward(const scalar_t* q, const scalar_t* k, const scalar_t* v, scalar_t* out,
                    scalar_t* lse, std::int64_t BH, std::int64_t T, std::int64_t S,
                    std::int64_t D, double scale, DeviceLayouts rows, void* stream);

// dq = scale * sum_s dS[t, s] k[s] over the row layout.
template <typename scalar_t>
void launch_backward_dq(const scalar_t* q, const scalar_t* k, const scalar_t* v,
                        const scalar_t* dout, const scalar_t* lse, const scalar_t* delta,
                        scalar_t* dq, std::int64_t BH, std::int64_t T, std::int64_t S,
                        std::int64_t D, double scale, DeviceLayouts rows, void* stream);

// dv = sum_t P[t, s] dout[t]; dk = scale * sum_t dS[t, s] q[t] over the transposed layout.
template <typename scalar_t>
void launch_backward_dkdv(const scalar_t* q, const scalar_t* k, const scalar_t* v,
                          const scalar_t* dout, const scalar_t* lse, const scalar_t* delta,
                          scalar_t* dk, scalar_t* dv, std::int64_t BH, std::int64_t T,
                          std::int64_t S, std::int64_t D, double scale, DeviceLayouts cols,
                          void* stream);

// The last CUDA error as text, or nullptr when there was none.
const char* last_error();

}  // namespace attnlab::kernels::cuda
