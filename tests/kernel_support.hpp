#pragma once
// What the CPU and CUDA kernel tests share: the masks they build layouts from, a one-layout
// LayoutSet, the reference log-sum-exp and the max-abs-difference they compare with.
#include <attnlab/kernels/block_layout.hpp>

#include <ATen/ATen.h>

#include <cstdint>
#include <memory>

namespace attnlab::test {

// Causal for T == S; for T != S the last query sees every key (offset S - T).
inline at::Tensor causal_mask(std::int64_t T, std::int64_t S) {
  return at::ones({T, S}, at::kBool).tril(S - T);
}

// Random tiles kept with probability `keep` intersected with causal (so diagonal tiles are
// partial), a sprinkle of single allowed elements (scattered partial tiles), and a few rows
// with no allowed key at all.
inline at::Tensor random_layout_mask(std::int64_t T, std::int64_t S, std::int64_t tile, double keep) {
  const std::int64_t nq = (T + tile - 1) / tile, nk = (S + tile - 1) / tile;
  at::Tensor tiles = at::rand({nq, nk}) < keep;
  at::Tensor expanded = tiles.repeat_interleave(tile, 0).repeat_interleave(tile, 1)
                            .slice(0, 0, T).slice(1, 0, S);
  at::Tensor allowed = (expanded & causal_mask(T, S)) | (at::rand({T, S}) < 0.01);
  for (std::int64_t row = 3; row < T; row += 37) allowed[row].fill_(false);
  return allowed;
}

// One layout from a bool [T, S] mask, shared by every (b, h).
inline kernels::LayoutSet one_layout(const at::Tensor& allowed, std::int64_t tile) {
  return {std::make_shared<const kernels::BlockLayout>(kernels::BlockLayout::from_dense(allowed, tile))};
}

// Largest absolute difference, in float64 on the CPU (either tensor may be on a GPU).
inline double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.cpu().to(at::kDouble) - b.cpu().to(at::kDouble)).abs().max().item<double>();
}

// log sum_s exp(q k^T * scale) over allowed s, [B, H, T]; -inf on rows with no allowed key.
// Differentiable; use finite_or_zero() before putting it into a loss.
inline at::Tensor reference_lse(const at::Tensor& q, const at::Tensor& k, const at::Tensor& allowed,
                                double scale) {
  at::Tensor scores = at::matmul(q, k.transpose(-2, -1)) * scale;
  return at::logsumexp(at::where(allowed.to(q.device()), scores,
                                 at::full({}, -INFINITY, scores.options())), -1);
}

inline at::Tensor finite_or_zero(const at::Tensor& x) {
  return at::where(at::isfinite(x), x, at::zeros({}, x.options()));
}

}  // namespace attnlab::test
