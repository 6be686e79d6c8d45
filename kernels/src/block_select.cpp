// Block-selection path of the CPU block-sparse kernel: the tiles come as a per-(b, h) block
// list (FlexAttention's BlockMask shape), not as BlockLayouts.
//
//   q [B, H, T, D], k [B, H, S, D], v [B, H, S, D], S == T (causal self-attention)
//   nq = ceil(T / tile) query tiles = key tiles
//   kv_num_blocks int32 [B, H, nq]        how many key tiles query tile i computes
//   kv_indices    int32 [B, H, nq, kmax]  which: the first kv_num_blocks[b,h,i] entries, each in
//                                         [0, i] (no future tile), no repeats, any order
//   out[t] = sum_s softmax_s(q[t]·k[s] * scale over s in the chosen tiles of t's tile, s <= t) v[s]
//   The diagonal tile (j == i) is masked causally (s <= t); earlier tiles are computed full.
//   A row whose tile chose nothing gives out = 0, lse = -inf, as in every kernel.
//
// Host work per call: O(nnz) per (b, h) (a CSR row per query tile, sorted, and for the backward
// its per-key-tile transpose) plus one causal triangle (and one for a last tile cut by T), tile²
// each, shared by all (b, h): nothing of size T x T or per-layout tile². The tile loops are the
// block_sparse kernel's own (cpu::forward_views / backward_views).
#include <attnlab/kernels/attention.hpp>

#include "block_sparse_plan.hpp"
#include "plan_autograd.hpp"

#include <algorithm>
#include <limits>

namespace attnlab::kernels {

namespace {

void check_block_list(const char* who, const at::Tensor& q, const at::Tensor& k,
                      const at::Tensor& kv_num_blocks, const at::Tensor& kv_indices,
                      std::int64_t tile) {
  TORCH_CHECK(tile >= 1, who, ": tile must be >= 1, got ", tile);
  TORCH_CHECK(q.dim() == 4 && q.size(2) == k.size(2), who,
              ": the block-selection path is causal self-attention, q and k need T == S, got q ",
              q.sizes(), " and k ", k.sizes());
  const std::int64_t nq = (q.size(2) + tile - 1) / tile;
  TORCH_CHECK(kv_num_blocks.scalar_type() == at::kInt && kv_indices.scalar_type() == at::kInt, who,
              ": kv_num_blocks and kv_indices must be int32");
  TORCH_CHECK(kv_num_blocks.device().is_cpu() && kv_indices.device().is_cpu(), who,
              ": kv_num_blocks and kv_indices must be on the CPU");
  TORCH_CHECK(kv_num_blocks.dim() == 3 && kv_num_blocks.size(0) == q.size(0) &&
                  kv_num_blocks.size(1) == q.size(1) && kv_num_blocks.size(2) == nq,
              who, ": kv_num_blocks must be [B, H, nq = ceil(T / tile) = ", nq, "], got ",
              kv_num_blocks.sizes());
  TORCH_CHECK(kv_indices.dim() == 4 && kv_indices.size(0) == q.size(0) &&
                  kv_indices.size(1) == q.size(1) && kv_indices.size(2) == nq,
              who, ": kv_indices must be [B, H, nq = ", nq, ", kmax], got ", kv_indices.sizes());
}

// One causal triangle per distinct diagonal tile size: [n, tile, tile], mask 0 for full-size
// diagonal tiles, mask 1 (when T % tile != 0) for the last one, padded false past T as
// BlockLayout::from_dense pads edge tiles.
at::Tensor diagonal_masks(std::int64_t T, std::int64_t tile) {
  const std::int64_t rest = T % tile;
  at::Tensor masks = at::ones({rest ? 2 : 1, tile, tile}, at::kBool).tril();
  if (rest) {
    masks[1].slice(0, rest).fill_(false);
    masks[1].slice(1, rest).fill_(false);
  }
  return masks;
}

}  // namespace

namespace cpu {

// The kernel's views of a block list: per (b, h), a CSR row per query tile (its chosen key
// tiles ascending; the diagonal one partial, the others full) in one shared array.
LayoutViews block_list_views(const char* who, const at::Tensor& q, const at::Tensor& k,
                             const at::Tensor& kv_num_blocks, const at::Tensor& kv_indices,
                             std::int64_t tile, bool with_transpose) {
  check_block_list(who, q, k, kv_num_blocks, kv_indices, tile);
  const std::int64_t BH = q.size(0) * q.size(1), T = q.size(2), nq = (T + tile - 1) / tile;
  const std::int64_t kmax = kv_indices.size(3), last_mask = T % tile ? 1 : 0;
  const at::Tensor num = kv_num_blocks.contiguous(), idx = kv_indices.contiguous();
  const std::int32_t* num_ptr = num.data_ptr<std::int32_t>();
  const std::int32_t* idx_ptr = idx.data_ptr<std::int32_t>();
  std::int64_t nnz = 0;
  for (std::int64_t r = 0; r < BH * nq; ++r) {
    TORCH_CHECK(num_ptr[r] >= 0 && num_ptr[r] <= kmax, who, ": kv_num_blocks entries must be in [0, kmax = ",
                kmax, "], got ", num_ptr[r]);
    nnz += num_ptr[r];
  }
  // Per (b, h): row_ptr [nq + 1], col_idx [nnz_bh], tile_mask [nnz_bh], one after another.
  auto csr = std::make_shared<std::vector<std::int64_t>>(BH * (nq + 1) + 2 * nnz);
  LayoutViews views;
  views.masks = diagonal_masks(T, tile);
  LayoutView proto;
  proto.T = proto.S = T;
  proto.tile = tile;
  proto.n_q_tiles = proto.n_k_tiles = nq;
  proto.masks = views.masks.data_ptr<bool>();
  proto.index_masks(views.masks.size(0), /*with_transpose=*/true);  // the forward reads t_masks too
  std::int64_t* at = csr->data();
  for (std::int64_t bh = 0; bh < BH; ++bh) {
    LayoutView view = proto;
    const std::int32_t* nums = num_ptr + bh * nq;
    std::int64_t n_bh = 0;
    for (std::int64_t i = 0; i < nq; ++i) n_bh += nums[i];
    std::int64_t *row_ptr = at, *col_idx = at + nq + 1, *tile_mask = col_idx + n_bh;
    at = tile_mask + n_bh;
    row_ptr[0] = 0;
    for (std::int64_t i = 0; i < nq; ++i) {
      std::int64_t* cols = col_idx + row_ptr[i];
      const std::int32_t* chosen = idx_ptr + (bh * nq + i) * kmax;
      std::copy(chosen, chosen + nums[i], cols);
      std::sort(cols, cols + nums[i]);
      for (std::int64_t e = 0; e < nums[i]; ++e) {
        TORCH_CHECK(cols[e] >= 0 && cols[e] <= i, who, ": kv_indices of query tile ", i,
                    " must be in [0, ", i, "] (no future tile), got ", cols[e]);
        TORCH_CHECK(e == 0 || cols[e] != cols[e - 1], who, ": kv_indices of query tile ", i,
                    " repeat tile ", cols[e]);
        tile_mask[row_ptr[i] + e] = cols[e] < i ? -1 : i == nq - 1 ? last_mask : 0;
      }
      row_ptr[i + 1] = row_ptr[i] + nums[i];
    }
    view.row_ptr = row_ptr;
    view.col_idx = col_idx;
    view.tile_mask = tile_mask;
    if (with_transpose) view.build_transpose();
    views.index.push_back(bh);
    views.distinct.push_back(std::move(view));
  }
  views.csr = std::move(csr);
  return views;
}

}  // namespace cpu

LayoutSet block_list_layouts(const BlockSelection& sel, std::int64_t T) {
  const std::int64_t tile = sel.tile, nq = (T + tile - 1) / tile;
  TORCH_CHECK(sel.kv_num_blocks.dim() == 3 && sel.kv_num_blocks.size(2) == nq,
              "block_list_layouts: kv_num_blocks must be [B, H, nq = ", nq, "]");
  const at::Tensor num = sel.kv_num_blocks.to(at::kLong).cpu().contiguous();
  const at::Tensor idx = sel.kv_indices.to(at::kLong).cpu().contiguous();
  const std::int64_t BH = num.size(0) * num.size(1), kmax = idx.size(-1);
  const at::Tensor masks = diagonal_masks(T, tile);
  LayoutSet out;
  for (std::int64_t bh = 0; bh < BH; ++bh) {
    const std::int64_t* nums = num.data_ptr<std::int64_t>() + bh * nq;
    auto layout = std::make_shared<BlockLayout>();
    layout->T = layout->S = T;
    layout->tile = tile;
    layout->masks = masks;
    layout->row_ptr = at::zeros({nq + 1}, at::kLong);
    std::int64_t* row_ptr = layout->row_ptr.data_ptr<std::int64_t>();
    for (std::int64_t i = 0; i < nq; ++i) row_ptr[i + 1] = row_ptr[i] + nums[i];
    layout->col_idx = at::empty({row_ptr[nq]}, at::kLong);
    layout->tile_mask = at::empty({row_ptr[nq]}, at::kLong);
    for (std::int64_t i = 0; i < nq; ++i) {
      std::int64_t* cols = layout->col_idx.data_ptr<std::int64_t>() + row_ptr[i];
      const std::int64_t* chosen = idx.data_ptr<std::int64_t>() + (bh * nq + i) * kmax;
      std::copy(chosen, chosen + nums[i], cols);
      std::sort(cols, cols + nums[i]);
      std::int64_t* kinds = layout->tile_mask.data_ptr<std::int64_t>() + row_ptr[i];
      for (std::int64_t e = 0; e < nums[i]; ++e) kinds[e] = cols[e] < i ? -1 : i == nq - 1 && T % tile ? 1 : 0;
    }
    out.push_back(std::move(layout));
  }
  return out;
}

std::tuple<at::Tensor, at::Tensor> block_select_forward(const at::Tensor& q, const at::Tensor& k,
                                                        const at::Tensor& v, const BlockSelection& sel,
                                                        double scale) {
  TORCH_CHECK(q.device().is_cpu() && k.device().is_cpu() && v.device().is_cpu(),
              "block_select_forward: q, k, v must be on the CPU (the block-selection path is CPU only)");
  TORCH_CHECK(at::isFloatingType(q.scalar_type()), "block_select_forward: q must be floating");
  const auto views = cpu::block_list_views("block_select_forward", q, k, sel.kv_num_blocks,
                                           sel.kv_indices, sel.tile, /*with_transpose=*/false);
  TORCH_CHECK(k.sizes() == v.sizes() && q.sizes() == k.sizes() && q.scalar_type() == k.scalar_type() &&
                  q.scalar_type() == v.scalar_type(),
              "block_select_forward: q, k, v must be [B, H, T, D] of one shape and dtype");
  return cpu::forward_views(q, k, v, views, scale);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> block_select_backward(
    const at::Tensor& dout, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
    const at::Tensor& out, const at::Tensor& lse, const BlockSelection& sel, double scale,
    const at::Tensor& dlse) {
  TORCH_CHECK(q.device().is_cpu(), "block_select_backward: tensors must be on the CPU");
  TORCH_CHECK(k.sizes() == v.sizes() && q.sizes() == k.sizes(),
              "block_select_backward: q, k, v must be [B, H, T, D] of one shape");
  const auto views = cpu::block_list_views("block_select_backward", q, k, sel.kv_num_blocks,
                                           sel.kv_indices, sel.tile, /*with_transpose=*/true);
  return cpu::backward_views(dout, q, k, v, out, lse, views, scale, dlse);
}

namespace {

// A block list as a plan of PlanAttentionFunction: its two tensors and tile ride in the
// context as saved data (no gradient).
struct SelectionPlan {
  using Type = BlockSelection;
  static constexpr auto forward = &block_select_forward;
  static constexpr auto backward = &block_select_backward;

  static void save(torch::autograd::AutogradContext* ctx, const BlockSelection& sel) {
    ctx->saved_data["kv_num_blocks"] = sel.kv_num_blocks;
    ctx->saved_data["kv_indices"] = sel.kv_indices;
    ctx->saved_data["tile"] = sel.tile;
  }
  static BlockSelection load(torch::autograd::AutogradContext* ctx) {
    return {ctx->saved_data["kv_num_blocks"].toTensor(), ctx->saved_data["kv_indices"].toTensor(),
            ctx->saved_data["tile"].toInt()};
  }
};

}  // namespace

std::tuple<at::Tensor, at::Tensor> block_select_attention_lse(const at::Tensor& q, const at::Tensor& k,
                                                              const at::Tensor& v, const BlockSelection& sel,
                                                              double scale) {
  auto outputs = PlanAttentionFunction<SelectionPlan>::apply(q, k, v, sel, scale);
  return {outputs[0], outputs[1]};
}

at::Tensor block_select_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                  const BlockSelection& sel, double scale) {
  return std::get<0>(block_select_attention_lse(q, k, v, sel, scale));
}

}  // namespace attnlab::kernels
