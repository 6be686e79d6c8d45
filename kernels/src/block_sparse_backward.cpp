// Block-sparse flash-style attention, CPU backward (FlashAttention-2 style).
//
//   inputs: dout, q, out [B, H, T, D]; k, v [B, H, S, D]; lse [B, H, T]; layout(s)
//   D_t  = sum_d dout[t,d] out[t,d]                                       [B, H, T]
//   P    = exp(scale·Q K^T - lse)      recomputed tile by tile, 0 off the layout / mask
//   dV   = P^T dO,   dP = dO V^T,   dS = P o (dP - D),
//   dK   = scale · dS^T Q,   dQ = scale · dS K                  -> (dq, dk, dv), shapes of q, k, v
//
// Work items are (b·h, key tile): each owns its dK/dV rows, so those need no locking. dQ rows
// are shared between key tiles: a (b·h) whose key tiles all fall in one thread chunk adds
// into dq directly, one cut by a chunk boundary through that chunk's private buffer (one
// pass, 5 GEMMs per tile, instead of a second query-tile pass that would recompute S and dP:
// 7 GEMMs per tile). Scores are handled transposed (keys x queries) so four products are
// row-major GEMMs on operands packed once per call and dQ reads dS^T as a transposed A.
// Full query tiles of a key tile are visited in runs of consecutive tiles (up to kChunkRows
// rows) so the GEMMs are taller; a partial tile is computed in blocks of 6 keys (queries for
// dQ) over the span its mask allows. fp32 and fp64 natively; other dtypes run in fp32.
//
// Versions and measured results (setup as in block_sparse_forward.cpp's header): the backward
// runs at about the forward's efficiency, 57-73 GFLOP/s per CPU-second on one thread counting
// 2.5x the forward's FLOPs (5 products instead of 2); fwd+bwd at T=4096 is 3.4-3.9x faster
// than sdpa's fwd+bwd. The per-thread dQ buffers cost 2 x |q| of memory and one sum.
// v5: dQ through gemm_tn (no K^T copy, no dq transposes), dq straight into the output
// (private buffers only for cut (b·h)s), delta without a [B,H,T,D] temporary, parallel
// AVX2 packing, partial tiles over their spans. One thread, CPU time, T=2048, fwd+bwd:
// 1/16 density 55.4 -> 40.7 ms, causal-full 234 -> 208 ms; peak memory of a causal
// fwd+bwd at T=4096 48.4 -> 24.7 MiB (kernel_density sweep).
#include <attnlab/kernels/attention.hpp>

#include "block_sparse_cuda.hpp"
#include "block_sparse_plan.hpp"
#include "cpu_gemm.hpp"
#include "cpu_row_math.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace attnlab::kernels {

namespace {

constexpr std::int64_t kChunkRows = 256;
constexpr std::int64_t kRowBlock = 6;  // rows of the GEMM micro-kernel

template <typename scalar_t>
struct BackwardPointers {
  const scalar_t *q, *k, *v, *dout, *lse_safe, *delta;
  const cpu::TransposedOperand<scalar_t>*q_t, *dout_t;  // Q^T, dO^T (panels when tiles allow)
  std::int64_t bh;
  scalar_t *dk, *dv;
  std::int64_t T, S, D;
  scalar_t scale;
};

template <typename scalar_t>
struct BackwardScratch {
  std::vector<scalar_t> p_t, dp_t, dk_acc, dv_acc;
  BackwardScratch(std::int64_t max_rows, std::int64_t tile, std::int64_t D)
      : p_t(max_rows * tile), dp_t(max_rows * tile), dk_acc(tile * D), dv_acc(tile * D) {}
};

// Keys [c0, c0 + cols) against queries [r0, r0 + m), every element allowed (full tiles).
template <typename scalar_t>
void backward_full_run(const BackwardPointers<scalar_t>& x, std::int64_t c0, std::int64_t cols,
                       std::int64_t r0, std::int64_t m, scalar_t* dq,
                       BackwardScratch<scalar_t>& scratch) {
  const std::int64_t D = x.D;
  const scalar_t* k_tile = x.k + c0 * D;
  const scalar_t* v_tile = x.v + c0 * D;
  scalar_t* p_t = scratch.p_t.data();    // [cols, m]
  scalar_t* dp_t = scratch.dp_t.data();  // [cols, m]
  // P^T = exp(scale K_j Q^T - lse).
  cpu::gemm_transposed_b(*x.q_t, x.bh, r0, cols, m, x.scale, k_tile, D, scalar_t(0), p_t, m);
  for (std::int64_t c = 0; c < cols; ++c) cpu::exp_shift_each(p_t + c * m, x.lse_safe + r0, m);
  // dV_j += P^T dO;  dP^T = V_j dO^T;  dS^T = P^T o (dP^T - D)  (in place of P^T).
  cpu::gemm_nn(cols, D, m, scalar_t(1), p_t, m, x.dout + r0 * D, D, scalar_t(1),
               scratch.dv_acc.data(), D);
  cpu::gemm_transposed_b(*x.dout_t, x.bh, r0, cols, m, scalar_t(1), v_tile, D, scalar_t(0), dp_t, m);
  for (std::int64_t c = 0; c < cols; ++c)
    cpu::softmax_grad_each(p_t + c * m, dp_t + c * m, x.delta + r0, m);
  // dK_j += scale dS^T Q;  dQ[r0 : r0 + m] += scale dS K_j  (dS read through dS^T).
  cpu::gemm_nn(cols, D, m, x.scale, p_t, m, x.q + r0 * D, D, scalar_t(1), scratch.dk_acc.data(), D);
  cpu::gemm_tn(m, D, cols, x.scale, p_t, m, k_tile, D, scalar_t(1), dq + r0 * D, D);
}

// The same products for one partial tile (mask `mask_index`, m <= tile queries), in blocks of
// kRowBlock keys (and of queries for dQ), each over only the queries (keys) its mask allows:
// a causal diagonal tile costs ~60% of a full one. Elements outside a block's span are never
// computed; masking and the span limits keep them out of every product.
template <typename scalar_t>
void backward_partial_tile(const cpu::LayoutView& L, std::int64_t mask_index,
                           const BackwardPointers<scalar_t>& x, std::int64_t c0, std::int64_t cols,
                           std::int64_t r0, std::int64_t m, scalar_t* dq,
                           BackwardScratch<scalar_t>& scratch) {
  const std::int64_t D = x.D, tile = L.tile;
  const scalar_t* k_tile = x.k + c0 * D;
  const scalar_t* v_tile = x.v + c0 * D;
  scalar_t* p_t = scratch.p_t.data();    // [cols, m]
  scalar_t* dp_t = scratch.dp_t.data();  // [cols, m]
  const bool* mask_t = L.transposed_mask_of(mask_index);  // [key, query]
  for (std::int64_t b0 = 0; b0 < cols; b0 += kRowBlock) {
    const std::int64_t b1 = std::min(cols, b0 + kRowBlock), keys = b1 - b0;
    const auto span = L.col_span(mask_index, b0, b1);  // queries these keys allow
    // P^T rows of these keys; masking clears everything outside the allowed elements,
    // including columns the GEMM did not write, so exp gives exact zeros there.
    const std::int64_t lo = span.lo / 16 * 16;  // Q^T / dO^T panels start on 16-query boundaries
    if (span.lo < span.hi)
      cpu::gemm_transposed_b(*x.q_t, x.bh, r0 + lo, keys, span.hi - lo, x.scale, k_tile + b0 * D,
                             D, scalar_t(0), p_t + b0 * m + lo, m);
    for (std::int64_t c = b0; c < b1; ++c) {
      cpu::mask_row(p_t + c * m, mask_t + c * tile, m);
      cpu::exp_shift_each(p_t + c * m, x.lse_safe + r0, m);
    }
    if (span.lo >= span.hi) continue;
    const std::int64_t n = span.hi - span.lo;
    cpu::gemm_nn(keys, D, n, scalar_t(1), p_t + b0 * m + span.lo, m, x.dout + (r0 + span.lo) * D,
                 D, scalar_t(1), scratch.dv_acc.data() + b0 * D, D);
    cpu::gemm_transposed_b(*x.dout_t, x.bh, r0 + lo, keys, span.hi - lo, scalar_t(1),
                           v_tile + b0 * D, D, scalar_t(0), dp_t + b0 * m + lo, m);
    for (std::int64_t c = b0; c < b1; ++c)  // only where dP^T was computed (P^T is 0 elsewhere)
      cpu::softmax_grad_each(p_t + c * m + lo, dp_t + c * m + lo, x.delta + r0 + lo, span.hi - lo);
    cpu::gemm_nn(keys, D, n, x.scale, p_t + b0 * m + span.lo, m, x.q + (r0 + span.lo) * D, D,
                 scalar_t(1), scratch.dk_acc.data() + b0 * D, D);
  }
  // dQ rows in blocks of queries, each over the keys its rows allow.
  for (std::int64_t b0 = 0; b0 < m; b0 += kRowBlock) {
    const std::int64_t b1 = std::min(m, b0 + kRowBlock);
    const auto span = L.row_span(mask_index, b0, b1);
    if (span.lo < span.hi)
      cpu::gemm_tn(b1 - b0, D, span.hi - span.lo, x.scale, p_t + span.lo * m + b0, m,
                   k_tile + span.lo * D, D, scalar_t(1), dq + (r0 + b0) * D, D);
  }
}

// One key tile `kt` of one (b, h): dk, dv rows of that tile, and its dq contributions added
// into `dq` ([T, D] of that (b, h), owned by this thread chunk; see backward_cpu).
// Scores are handled transposed (keys x queries), so each product is a plain row-major GEMM
// on operands packed once per call (Q^T, dO^T), or reads dS^T as a transposed A (gemm_tn):
//   S^T = K_j Q^T,  P^T = exp(S^T - lse),  dV_j += P^T dO,  dP^T = V_j dO^T,
//   dS^T = P^T o (dP^T - D),  dK_j += scale dS^T Q,  dQ += scale (dS^T)^T K_j.
template <typename scalar_t>
void backward_key_tile(const cpu::LayoutView& L, std::int64_t kt,
                       const BackwardPointers<scalar_t>& x, scalar_t* dq,
                       BackwardScratch<scalar_t>& scratch) {
  const std::int64_t tile = L.tile, D = x.D, T = x.T, c0 = kt * tile;
  const std::int64_t cols = std::min(tile, x.S - c0);
  std::fill(scratch.dk_acc.begin(), scratch.dk_acc.begin() + cols * D, scalar_t(0));
  std::fill(scratch.dv_acc.begin(), scratch.dv_acc.begin() + cols * D, scalar_t(0));

  const std::int64_t e_end = L.t_col_ptr[kt + 1];
  const std::int64_t max_run = std::max(kChunkRows, tile);
  for (std::int64_t e0 = L.t_col_ptr[kt]; e0 < e_end;) {
    // Consecutive full query tiles share their GEMMs; a partial tile goes alone.
    std::int64_t e1 = e0 + 1;
    if (L.t_tile_mask[e0] < 0)
      while (e1 < e_end && L.t_tile_mask[e1] < 0 && L.t_row_idx[e1] == L.t_row_idx[e1 - 1] + 1 &&
             (e1 - e0 + 1) * tile <= max_run)
        ++e1;
    const std::int64_t r0 = L.t_row_idx[e0] * tile;
    const std::int64_t m = std::min(T, (L.t_row_idx[e1 - 1] + 1) * tile) - r0;
    if (L.t_tile_mask[e0] < 0)
      backward_full_run(x, c0, cols, r0, m, dq, scratch);
    else
      backward_partial_tile(L, L.t_tile_mask[e0], x, c0, cols, r0, m, dq, scratch);
    e0 = e1;
  }
  std::copy(scratch.dk_acc.begin(), scratch.dk_acc.begin() + cols * D, x.dk + c0 * D);
  std::copy(scratch.dv_acc.begin(), scratch.dv_acc.begin() + cols * D, x.dv + c0 * D);
}

// delta[i] = sum_d dout[i, d] out[i, d] over rows i of [rows, D], in one parallel pass (the
// ATen expression (dout * out).sum(-1) allocated and filled a full [B, H, T, D] temporary).
template <typename scalar_t>
void row_dots(const scalar_t* dout, const scalar_t* out, scalar_t* delta, std::int64_t rows,
              std::int64_t D) {
  const std::int64_t n_chunks = std::max<std::int64_t>(1, std::min<std::int64_t>(at::get_num_threads(), rows));
  cpu::parallel_chunks(n_chunks, [&](std::int64_t chunk) {
    for (std::int64_t i = rows * chunk / n_chunks; i < rows * (chunk + 1) / n_chunks; ++i) {
      scalar_t sum = 0;
      for (std::int64_t d = 0; d < D; ++d) sum += dout[i * D + d] * out[i * D + d];
      delta[i] = sum;
    }
  });
}

template <typename scalar_t>
at::Tensor backward_cpu(const at::Tensor& dout, const at::Tensor& q, const at::Tensor& k,
                        const at::Tensor& v, const at::Tensor& lse, const at::Tensor& delta,
                        const std::vector<cpu::LayoutView>& views, double scale, at::Tensor& dk,
                        at::Tensor& dv) {
  const std::int64_t BH = q.size(0) * q.size(1), T = q.size(2), S = k.size(2), D = q.size(3);
  auto view_of = [&](std::int64_t bh) -> const cpu::LayoutView& {
    return views.size() == 1 ? views[0] : views[bh];
  };
  std::vector<std::int64_t> item_bh, item_kt, costs;
  for (std::int64_t bh = 0; bh < BH; ++bh) {
    const auto& L = view_of(bh);
    for (std::int64_t kt = 0; kt < L.n_k_tiles; ++kt) {
      item_bh.push_back(bh);
      item_kt.push_back(kt);
      costs.push_back(L.t_col_ptr[kt + 1] - L.t_col_ptr[kt]);
    }
  }
  const std::int64_t n_chunks = std::max<std::int64_t>(1, at::get_num_threads());
  const std::vector<std::int64_t> bounds = cpu::split_by_cost(costs, n_chunks);
  std::int64_t max_tile = 0;
  for (const auto& L : views) max_tile = std::max(max_tile, L.tile);

  // dq rows of a (b, h) collect contributions from all its key tiles. Chunks are contiguous
  // in (b, h)-major order, so only a (b, h) cut by a chunk boundary is shared: each chunk
  // accumulates such a (b, h) into a private [T, D] slot (at most two per chunk: its first and
  // last), summed into dq after the join; every other (b, h) goes straight into dq.
  std::vector<std::int64_t> chunks_of_bh(BH, 0);
  for (std::int64_t chunk = 0; chunk < n_chunks; ++chunk)
    if (bounds[chunk] < bounds[chunk + 1])
      for (std::int64_t bh = item_bh[bounds[chunk]]; bh <= item_bh[bounds[chunk + 1] - 1]; ++bh)
        ++chunks_of_bh[bh];
  const bool any_shared = std::any_of(chunks_of_bh.begin(), chunks_of_bh.end(),
                                      [](std::int64_t n) { return n > 1; });
  at::Tensor dq = at::zeros({BH, T, D}, q.options());
  at::Tensor dq_private = any_shared ? at::zeros({n_chunks, 2, T, D}, q.options()) : at::Tensor();
  auto dq_slot = [&](std::int64_t chunk, std::int64_t bh) -> scalar_t* {
    if (chunks_of_bh[bh] == 1) return dq.data_ptr<scalar_t>() + bh * T * D;
    const std::int64_t slot = bh == item_bh[bounds[chunk]] ? 0 : 1;
    return dq_private.data_ptr<scalar_t>() + (chunk * 2 + slot) * T * D;
  };

  // Operands packed once per call (O(T·D) each), so every tile product is row-major.
  const bool panels = cpu::all_tiles_multiple_of_16(views);
  const auto q_t = cpu::transposed_operand<scalar_t>(q, panels);
  const auto dout_t = cpu::transposed_operand<scalar_t>(dout, panels);
  // Rows without any allowed key have lse = -inf; +inf makes their P exactly 0.
  at::Tensor lse_safe = at::where(at::isinf(lse), at::full({}, INFINITY, lse.options()), lse)
                            .contiguous();
  BackwardPointers<scalar_t> x{q.data_ptr<scalar_t>(),     k.data_ptr<scalar_t>(),
                               v.data_ptr<scalar_t>(),     dout.data_ptr<scalar_t>(),
                               lse_safe.data_ptr<scalar_t>(), delta.data_ptr<scalar_t>(),
                               &q_t,                       &dout_t,
                               0,                          dk.data_ptr<scalar_t>(),
                               dv.data_ptr<scalar_t>(),    T,
                               S,                          D,
                               static_cast<scalar_t>(scale)};

  cpu::parallel_chunks(n_chunks, [&](std::int64_t chunk) {
    BackwardScratch<scalar_t> scratch(max_tile * (std::max(kChunkRows, max_tile) / max_tile + 1),
                                      max_tile, D);
    for (std::int64_t item = bounds[chunk]; item < bounds[chunk + 1]; ++item) {
      const std::int64_t bh = item_bh[item];
      BackwardPointers<scalar_t> xb = x;
      xb.bh = bh;
      xb.q += bh * T * D;
      xb.dout += bh * T * D;
      xb.lse_safe += bh * T;
      xb.delta += bh * T;
      xb.k += bh * S * D;
      xb.v += bh * S * D;
      xb.dk += bh * S * D;
      xb.dv += bh * S * D;
      backward_key_tile<scalar_t>(view_of(bh), item_kt[item], xb, dq_slot(chunk, bh), scratch);
    }
  });
  if (any_shared)
    for (std::int64_t chunk = 0; chunk < n_chunks; ++chunk)
      for (std::int64_t slot = 0; slot < 2; ++slot) {
        if (bounds[chunk] == bounds[chunk + 1]) continue;
        const std::int64_t bh = item_bh[slot == 0 ? bounds[chunk] : bounds[chunk + 1] - 1];
        if (chunks_of_bh[bh] > 1 && (slot == 0 || bh != item_bh[bounds[chunk]]))
          dq[bh].add_(dq_private[chunk][slot]);
      }
  return dq;  // [BH, T, D]
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> block_sparse_backward(
    const at::Tensor& dout, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
    const at::Tensor& out, const at::Tensor& lse, const LayoutSet& layouts, double scale,
    const at::Tensor& dlse) {
#ifdef ATTNLAB_WITH_CUDA
  if (q.is_cuda()) return cuda::block_sparse_backward_cuda(dout, q, k, v, out, lse, layouts, scale, dlse);
#endif
  TORCH_CHECK(q.device().is_cpu(), "block_sparse_backward: tensors must be on the CPU (this build "
                                   "has no CUDA kernels)");
  const auto views = cpu::check_inputs("block_sparse_backward", q, k, v, layouts, true);
  TORCH_CHECK(dout.sizes() == q.sizes() && out.sizes() == q.sizes(),
              "block_sparse_backward: dout and out must have q's shape ", q.sizes());
  TORCH_CHECK(lse.dim() == 3 && lse.size(0) == q.size(0) && lse.size(1) == q.size(1) &&
                  lse.size(2) == q.size(2),
              "block_sparse_backward: lse must be [B, H, T]");
  const at::ScalarType compute = q.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  auto prep = [&](const at::Tensor& t) { return t.to(compute).contiguous(); };
  at::Tensor qc = prep(q), kc = prep(k), vc = prep(v), doc = prep(dout), lsec = prep(lse);
  at::Tensor outc = prep(out);
  at::Tensor delta = at::empty({q.size(0), q.size(1), q.size(2)}, doc.options());
  if (compute == at::kDouble)
    row_dots<double>(doc.data_ptr<double>(), outc.data_ptr<double>(), delta.data_ptr<double>(),
                     delta.numel(), q.size(3));
  else
    row_dots<float>(doc.data_ptr<float>(), outc.data_ptr<float>(), delta.data_ptr<float>(),
                    delta.numel(), q.size(3));
  if (dlse.defined()) {
    TORCH_CHECK(dlse.sizes() == lse.sizes(), "block_sparse_backward: dlse must be [B, H, T] like lse");
    // Rows without keys have lse = -inf and take no gradient through it.
    delta = delta - at::where(at::isfinite(lse), prep(dlse), at::zeros({}, delta.options()));
  }
  delta = delta.contiguous();
  at::Tensor dk = at::empty(kc.sizes(), kc.options()), dv = at::empty(vc.sizes(), vc.options());
  at::Tensor dq = compute == at::kDouble
                      ? backward_cpu<double>(doc, qc, kc, vc, lsec, delta, views, scale, dk, dv)
                      : backward_cpu<float>(doc, qc, kc, vc, lsec, delta, views, scale, dk, dv);
  return {dq.reshape(q.sizes()).to(q.scalar_type()), dk.to(k.scalar_type()), dv.to(v.scalar_type())};
}

}  // namespace attnlab::kernels
