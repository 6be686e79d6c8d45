#pragma once
// topk's block gates (granularity = query_block): a score per (query block i, key block j),
// [B, H, nq, nq], higher = keep; kernels::select_blocks turns it into the block list.
//
//   q, k [B, H, T, D], blocks of `tile` positions (the last may be short), nq = ceil(T / tile)
//   mean     qbar_i · kbar_j * scale (kernels::pooled_block_scores): kbar = the mean of k over
//            the block (MoBA), qbar = the mean of q over the tile positions ending at the block's
//            first query, so that no query's choice depends on a later token (causal)
//   learned  (qbar_i Wq_h) · (kbar_j Wk_h) * scale,  Wq, Wk [H, D, G] (SeerAttention's AttnGate
//            on pooled q / k; init: the first G columns of the identity, so G = D starts as
//            `mean`), inputs detached; trained by
//            KL(A_i ‖ softmax_{j <= i} gate_ij) averaged over (b, h, i), A = block_mass below
//   oracle   A itself: the true attention mass, computed densely (T x T) — an upper bound,
//            not deployable and not causal (block i's mass uses all its queries, so an early
//            query's tiles depend on later tokens of its block; `attnlab check` fails it)
//   random   uniform noise from a generator seeded afresh every forward (seed, layer): the
//            same tiles for the same T, the lower-bound control
//   block_mass  A[b,h,i,j] = mean_{t in block i} sum_{s in block j} softmax_s(q_t·k_s*scale, s <= t)
#include <attnlab/kernels/attention.hpp>

#include <ATen/ATen.h>

#include <cstdint>
#include <limits>

namespace attnlab::topk_gate {

// Sum (or mean) of x over blocks of `tile` along dim, the last block possibly short.
inline at::Tensor pool(const at::Tensor& x, std::int64_t dim, std::int64_t tile, bool mean) {
  const std::int64_t n = x.size(dim), nb = (n + tile - 1) / tile, pad = nb * tile - n;
  std::vector<std::int64_t> padding(2 * (x.dim() - 1 - dim) + 2, 0);
  padding.back() = pad;  // constant_pad_nd pads the last dims first: this pads `dim` at its end
  const at::Tensor padded = pad ? at::constant_pad_nd(x, padding) : x;
  std::vector<std::int64_t> shape(padded.sizes().begin(), padded.sizes().end());
  shape[dim] = tile;
  shape.insert(shape.begin() + dim, nb);
  at::Tensor sums = padded.reshape(shape).sum(dim + 1);
  if (!mean) return sums;
  at::Tensor counts = at::clamp_max(n - at::arange(nb, x.options().dtype(at::kLong)) * tile, tile).to(x.scalar_type());
  std::vector<std::int64_t> view(x.dim(), 1);
  view[dim] = nb;
  return sums / counts.view(view);
}

// The learned gate's query side: as pooled_block_scores' qbar, [B, H, nq, D].
inline at::Tensor causal_query_means(const at::Tensor& q, std::int64_t tile) {
  const std::int64_t T = q.size(2), nq = (T + tile - 1) / tile;
  const at::Tensor first = q.narrow(2, 0, 1);
  if (nq == 1) return first;
  return at::cat({first, pool(q.narrow(2, 1, T - 1), 2, tile, /*mean=*/true).narrow(2, 0, nq - 1)}, 2);
}

// A [B, H, nq, nq]: each row a distribution over key blocks j <= i (dense T x T softmax).
inline at::Tensor block_mass(const at::Tensor& q, const at::Tensor& k, std::int64_t tile, double scale) {
  const std::int64_t T = q.size(2);
  const at::Tensor causal = at::ones({T, T}, q.options().dtype(at::kBool)).tril();
  const at::Tensor p = at::softmax(
      (at::matmul(q, k.transpose(-2, -1)) * scale).masked_fill(causal.logical_not(), -INFINITY), -1);
  return pool(pool(p, 3, tile, /*mean=*/false), 2, tile, /*mean=*/true);
}

// KL(target ‖ softmax over causal blocks of logits), mean over (b, h, query block).
inline at::Tensor gate_kl(const at::Tensor& target, const at::Tensor& logits) {
  const std::int64_t nq = logits.size(-1);
  const at::Tensor future = at::ones({nq, nq}, logits.options().dtype(at::kBool)).triu(1);
  const at::Tensor log_p = at::log_softmax(logits.masked_fill(future, -INFINITY), -1);
  const at::Tensor terms = at::where(target > 0, target * (at::log(target.clamp_min(1e-30)) - log_p.masked_fill(future, 0)),
                                     at::zeros({}, target.options()));
  return terms.sum(-1).mean();
}

}  // namespace attnlab::topk_gate
