// Building a block list (kernels' BlockSelection) from block scores, batched over (b, h).
//
//   q, k [B, H, T, D]; nq = ceil(T / tile) blocks of `tile` positions (the last may be short)
//   pooled_block_scores:  kbar[j] = mean_{s in block j} k[s]  (mean pooling, MoBA's)
//                         qbar[i] = mean of q over the `tile` positions ending at block i's
//                                   first query, (i·tile - tile, i·tile] (q[0] for i = 0)
//                         scores[b,h,i,j] = qbar[i]·kbar[j] * scale        [B, H, nq, nq]
//                         (one batched matmul over B·H). Why the query window is shifted: every
//                         query t of block i is >= i·tile, so its choice of key blocks depends
//                         only on tokens <= t (the block's own mean would let a later token of
//                         the block change an earlier token's output: not causal).
//   select_blocks:        per query block i keep the diagonal block i, the sink blocks j < sink
//                         (j <= i), then the best-scoring earlier blocks j < i until `k_blocks`
//                         blocks in all (rows with fewer causal blocks keep them all);
//                         future blocks j > i get a static -inf, forced blocks +inf; top-k,
//                         then an ascending sort: kv_num_blocks [B,H,nq], kv_indices [B,H,nq,kmax]
//                         int32, kmax = min(nq, max(k_blocks, sink + 1)), padding entries 0.
// Every step is one LibTorch op over all (b, h): no per-(b, h) loop of small ops.
#include <attnlab/kernels/attention.hpp>

#include <algorithm>
#include <limits>

namespace attnlab::kernels {

namespace {

// Mean of x [B, H, T, D] over blocks of `tile` rows: [B, H, nq, D]. A view and a sum where T
// is a multiple of tile; otherwise the last short block separately (no padded copy of x).
at::Tensor block_means(const at::Tensor& x, std::int64_t tile) {
  const std::int64_t T = x.size(2), full = T / tile, rest = T % tile;
  std::vector<at::Tensor> parts;
  if (full)
    parts.push_back(x.narrow(2, 0, full * tile).reshape({x.size(0), x.size(1), full, tile, x.size(3)}).mean(3));
  if (rest) parts.push_back(x.narrow(2, full * tile, rest).mean(2, /*keepdim=*/true));
  return parts.size() == 1 ? parts[0] : at::cat(parts, 2);
}

// qbar as above: [B, H, nq, D]. Block i >= 1's window is block i - 1 of q[1:].
at::Tensor causal_query_means(const at::Tensor& q, std::int64_t tile) {
  const std::int64_t T = q.size(2), nq = (T + tile - 1) / tile;
  const at::Tensor first = q.narrow(2, 0, 1);
  if (nq == 1) return first;
  return at::cat({first, block_means(q.narrow(2, 1, T - 1), tile).narrow(2, 0, nq - 1)}, 2);
}

}  // namespace

at::Tensor pooled_block_scores(const at::Tensor& q, const at::Tensor& k, std::int64_t tile, double scale) {
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && q.size(2) == k.size(2), "pooled_block_scores: q and k must be ",
              "[B, H, T, D] with T == S, got ", q.sizes(), " and ", k.sizes());
  TORCH_CHECK(tile >= 1, "pooled_block_scores: tile must be >= 1, got ", tile);
  return at::matmul(causal_query_means(q, tile), block_means(k, tile).transpose(-2, -1)) * scale;
}

BlockSelection select_blocks(const at::Tensor& block_scores, std::int64_t k_blocks, std::int64_t sink_blocks,
                             std::int64_t tile) {
  TORCH_CHECK(block_scores.dim() == 4 && block_scores.size(2) == block_scores.size(3),
              "select_blocks: block_scores must be [B, H, nq, nq], got ", block_scores.sizes());
  TORCH_CHECK(k_blocks >= 1 && sink_blocks >= 0, "select_blocks: k_blocks must be >= 1 and sink_blocks >= 0, got ",
              k_blocks, " and ", sink_blocks);
  const std::int64_t nq = block_scores.size(2);
  const std::int64_t kmax = std::min(nq, std::max(k_blocks, sink_blocks + 1));
  const auto long_opts = at::TensorOptions().dtype(at::kLong).device(block_scores.device());
  const at::Tensor i = at::arange(nq, long_opts).unsqueeze(1), j = at::arange(nq, long_opts).unsqueeze(0);
  const at::Tensor future = j > i, forced = (j == i).logical_or((j < sink_blocks).logical_and(j <= i));
  const at::Tensor scores = block_scores.to(at::kFloat)
                                .masked_fill(future, -std::numeric_limits<float>::infinity())
                                .masked_fill(forced, std::numeric_limits<float>::infinity());
  auto [values, chosen] = scores.topk(kmax, -1, /*largest=*/true, /*sorted=*/false);
  const at::Tensor valid = values > -std::numeric_limits<float>::infinity();
  // Invalid picks (a row with fewer than kmax causal blocks) sort to the end as nq, then 0.
  at::Tensor sorted = std::get<0>(chosen.masked_fill(valid.logical_not(), nq).sort(-1));
  sorted = sorted.masked_fill(sorted == nq, 0);
  return {valid.sum(-1).to(at::kInt).contiguous(), sorted.to(at::kInt).contiguous(), tile};
}

at::Tensor block_list_to_dense(const BlockSelection& sel, std::int64_t T) {
  const std::int64_t nq = sel.kv_num_blocks.size(-1), kmax = sel.kv_indices.size(-1);
  const at::Tensor slot = at::arange(kmax, sel.kv_indices.options().dtype(at::kLong));
  const at::Tensor used = slot < sel.kv_num_blocks.to(at::kLong).unsqueeze(-1);  // [B, H, nq, kmax]
  at::Tensor blocks = at::zeros({sel.kv_indices.size(0), sel.kv_indices.size(1), nq, nq + 1}, used.options());
  // Unused slots scatter into the spare column nq, dropped below.
  blocks.scatter_(-1, at::where(used, sel.kv_indices.to(at::kLong), at::full({}, nq, slot.options())), used);
  blocks = blocks.narrow(-1, 0, nq);
  const at::Tensor expanded = blocks.repeat_interleave(sel.tile, 2).repeat_interleave(sel.tile, 3)
                                  .narrow(2, 0, T).narrow(3, 0, T);
  return expanded.logical_and(at::ones({T, T}, used.options()).tril());
}

}  // namespace attnlab::kernels
