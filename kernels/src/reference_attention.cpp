// Naive reference attention: the definition every other kernel is checked against.
//
//   q [B, H, T, D], k [B, H, S, D], v [B, H, S, D], allowed bool broadcastable to [B, H, T, S]
//   scores = q k^T * scale            (materialized: [B, H, T, S])
//   out    = softmax_s(scores | allowed) v
// A row with no allowed key gives out = 0 with finite gradients (no NaN): its scores are
// replaced by zeros before the softmax and its probabilities multiplied by the mask.
// Any floating dtype; float64 is what the tests use as ground truth.
#include <attnlab/kernels/attention.hpp>

#include <limits>

namespace attnlab::kernels {

at::Tensor reference_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                               const at::Tensor& allowed, double scale) {
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4,
              "reference_attention: q, k, v must be [B, H, T|S, D]");
  TORCH_CHECK(at::isFloatingType(q.scalar_type()), "reference_attention: q must be floating");
  at::Tensor scores = at::matmul(q, k.transpose(-2, -1)) * scale;
  if (!allowed.defined()) return at::matmul(at::softmax(scores, -1), v);

  at::Tensor keep = allowed.to(q.device()).to(at::kBool);
  at::Tensor row_has_key = keep.any(-1, /*keepdim=*/true);
  at::Tensor neg_inf = at::full({}, -std::numeric_limits<double>::infinity(), scores.options());
  scores = at::where(keep, scores, neg_inf);
  scores = at::where(row_has_key, scores, at::zeros({}, scores.options()));
  at::Tensor probs = at::softmax(scores, -1) * keep.to(scores.scalar_type());
  return at::matmul(probs, v);
}

at::Tensor masked_softmax(const at::Tensor& scores, const at::Tensor& allowed) {
  at::Tensor filled = scores.masked_fill(allowed.logical_not(), -std::numeric_limits<double>::infinity());
  // Shifting by the (detached) row max changes nothing mathematically, so gradients stay exact.
  at::Tensor row_max = std::get<0>(filled.max(-1, /*keepdim=*/true)).detach();
  row_max = row_max.masked_fill(at::isinf(row_max), 0.0);
  at::Tensor e = at::exp(filled - row_max);
  at::Tensor total = e.sum(-1, /*keepdim=*/true);
  return e / total.masked_fill(total == 0, 1.0);
}

}  // namespace attnlab::kernels
