#pragma once
// Attention kernels (ATen only). Shapes:
//   q [B, H, T, D], k [B, H, S, D], v [B, H, S, D]  ->  out [B, H, T, D]
//   out[t] = sum_s softmax_s(q[t]·k[s] * scale  over allowed s) v[s]
// A row with no allowed key yields 0 (and log-sum-exp -inf), in every kernel alike.
#include <attnlab/kernels/block_layout.hpp>

#include <ATen/ATen.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <tuple>

namespace attnlab::kernels {

// The scale of scaled dot-product attention, 1 / sqrt(D): what every backend, kernel and
// check in attnlab passes as `scale` below.
inline double softmax_scale(std::int64_t head_dim) { return 1.0 / std::sqrt(static_cast<double>(head_dim)); }

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

// ---- Block-selection path (block_select.cpp): causal self-attention (S == T) over a per-(b, h)
// block list in FlexAttention's BlockMask shape, one row per query tile of `tile` queries:
//   kv_num_blocks int32 [B, H, nq], kv_indices int32 [B, H, nq, kmax], nq = ceil(T / tile);
//   query tile i computes key tiles kv_indices[b,h,i,:kv_num_blocks[b,h,i]] (each in [0, i],
//   no repeats, any order), the diagonal one (j == i) masked causally. No T x T or per-(b, h)
//   tile² structure is built: O(nnz) host work per (b, h). CPU only.
struct ATTNLAB_KERNELS_API BlockSelection {
  at::Tensor kv_num_blocks, kv_indices;
  std::int64_t tile = 64;
};

ATTNLAB_KERNELS_API std::tuple<at::Tensor, at::Tensor> block_select_forward(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const BlockSelection& sel, double scale);
ATTNLAB_KERNELS_API std::tuple<at::Tensor, at::Tensor, at::Tensor> block_select_backward(
    const at::Tensor& dout, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
    const at::Tensor& out, const at::Tensor& lse, const BlockSelection& sel, double scale,
    const at::Tensor& dlse = {});
// Autograd wrappers (no gradient for the selection), as block_sparse_attention(_lse).
ATTNLAB_KERNELS_API at::Tensor block_select_attention(const at::Tensor& q, const at::Tensor& k,
                                                      const at::Tensor& v, const BlockSelection& sel,
                                                      double scale);
ATTNLAB_KERNELS_API std::tuple<at::Tensor, at::Tensor> block_select_attention_lse(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const BlockSelection& sel, double scale);

// ---- Building a block list, batched over (b, h) (block_select_build.cpp).
// Mean-pooled block scores: qbar_i · kbar_j * scale, [B, H, nq, nq], one batched matmul; kbar_j
// the mean of k over block j (the last may be short), qbar_i the mean of q over the `tile`
// positions ending at block i's first query (causal: no query of block i sees a later token).
ATTNLAB_KERNELS_API at::Tensor pooled_block_scores(const at::Tensor& q, const at::Tensor& k,
                                                   std::int64_t tile, double scale);
// From any block scores [B, H, nq, nq] (higher = keep): per query block the diagonal block,
// the `sink_blocks` leading blocks, then the best earlier blocks, `k_blocks` blocks in all
// (forced ones included; future blocks never). Top-k and sort over all (b, h) at once.
ATTNLAB_KERNELS_API BlockSelection select_blocks(const at::Tensor& block_scores, std::int64_t k_blocks,
                                                 std::int64_t sink_blocks, std::int64_t tile);
// The selection as one BlockLayout per (b, h) (B*H, row-major), built in O(nnz) each: what a
// backend reports as layouts() for the selection it executed.
ATTNLAB_KERNELS_API LayoutSet block_list_layouts(const BlockSelection& sel, std::int64_t T);
// The selection as a bool [B, H, T, T] element mask (causal within the chosen tiles): for
// checks and the reference kernel only (it is T x T).
ATTNLAB_KERNELS_API at::Tensor block_list_to_dense(const BlockSelection& sel, std::int64_t T);

// Tiles the CPU forward kernel has computed since the last reset: one per layout entry
// (b·h, query tile, key tile) it walked, summed over every call in this process. A relaxed
// atomic added to once per thread chunk, so it costs nothing measurable; it lets a test hold
// a backend's reported layouts to what actually ran (CUDA calls are not counted).
ATTNLAB_KERNELS_API std::int64_t forward_tiles_computed();
ATTNLAB_KERNELS_API void reset_forward_tiles_computed();

}  // namespace attnlab::kernels
