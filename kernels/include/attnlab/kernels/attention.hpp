#pragma once
// Attention kernels (ATen only). Shapes:
//   q [B, H, T, D], k [B, H, S, D], v [B, H, S, D]  ->  out [B, H, T, D]
//   out[t] = sum_s softmax_s(q[t]·k[s] * scale  over allowed s) v[s]
// A row with no allowed key yields 0 (and log-sum-exp -inf), in every kernel alike.
#include <attnlab/kernels/block_layout.hpp>

#include <ATen/ATen.h>

#include <memory>
#include <tuple>

namespace attnlab::kernels {

// Naive reference: materializes the [B, H, T, S] scores. Any floating dtype (float64 for
// checks). `allowed` is bool, broadcastable to [B, H, T, S] (true = attend); undefined
// means every key is allowed. Differentiable through ordinary autograd.
ATTNLAB_KERNELS_API at::Tensor reference_attention(const at::Tensor& q, const at::Tensor& k,
                                                   const at::Tensor& v, const at::Tensor& allowed,
                                                   double scale);

// softmax over the allowed entries of each row of `scores` (bool `allowed` broadcastable to
// it); a row with none gives zeros instead of NaN, with finite gradients. For backends that
// compute their own scores (masked T x T math).
ATTNLAB_KERNELS_API at::Tensor masked_softmax(const at::Tensor& scores, const at::Tensor& allowed);

// Block-sparse flash-style attention: never materializes T x S; computes only the tiles in
// `layout` (one layout for all (b, h), one per head, or one per (b, h): layouts.size() == 1,
// H or B*H).
// Forward returns (out [B,H,T,D], lse [B,H,T] in the compute dtype: float32, or float64).
ATTNLAB_KERNELS_API std::tuple<at::Tensor, at::Tensor> block_sparse_forward(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const LayoutSet& layouts,
    double scale);

// Backward, FlashAttention-2 style: recomputes scores tile by tile from q, k, lse.
// Returns (dq, dk, dv). `dlse` [B, H, T] (optional) is the gradient of a loss that also
// depends on lse: since d lse / d s = P, it enters as dS = P (dP - rowsum(dO·O) + dlse).
ATTNLAB_KERNELS_API std::tuple<at::Tensor, at::Tensor, at::Tensor> block_sparse_backward(
    const at::Tensor& dout, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
    const at::Tensor& out, const at::Tensor& lse, const LayoutSet& layouts, double scale,
    const at::Tensor& dlse = {});

// Autograd wrapper around the two above: what backends call for execution = "block_sparse".
ATTNLAB_KERNELS_API at::Tensor block_sparse_attention(const at::Tensor& q, const at::Tensor& k,
                                                      const at::Tensor& v, LayoutSet layouts,
                                                      double scale);

// The same, returning (out, lse) with both differentiable: for backends that mix several
// masked attentions by their normalizers (a mixture over masks M_k weighted by w_k is
// sum_k w_k e^{lse_k} out_k / sum_k w_k e^{lse_k}).
ATTNLAB_KERNELS_API std::tuple<at::Tensor, at::Tensor> block_sparse_attention_lse(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, LayoutSet layouts, double scale);

// Tiles the CPU forward kernel has computed since the last reset: one per layout entry
// (b·h, query tile, key tile) it walked, summed over every call in this process. A relaxed
// atomic added to once per thread chunk, so it costs nothing measurable; it lets a test hold
// a backend's reported layouts to what actually ran (CUDA calls are not counted).
ATTNLAB_KERNELS_API std::int64_t forward_tiles_computed();
ATTNLAB_KERNELS_API void reset_forward_tiles_computed();

}  // namespace attnlab::kernels
