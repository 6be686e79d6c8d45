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
// 7 GEMMs per tile). A work item packs its key tile's K and V rows into 16-key panels once
// (the B operands of S = Q K_j^T and dP = dO V_j^T); P and dS stay [queries, keys] and the
// products that need them transposed (dV, dK) read them through gemm_tn, so nothing of the
// whole sequence is transposed or copied. Full query tiles of a key tile are visited in runs
// of consecutive tiles (up to kChunkRows rows) so the GEMMs are taller; a partial tile is
// computed in blocks of 6 queries (keys for dV, dK) over the span its mask allows.
// fp32 and fp64 natively; other dtypes run in fp32.
//
// Versions and measured results (setup as in block_sparse_forward.cpp's header): the backward
// runs at about the forward's efficiency, 57-73 GFLOP/s per CPU-second on one thread counting
// 2.5x the forward's FLOPs (5 products instead of 2); fwd+bwd at T=4096 was 3.4-3.9x faster
// than LibTorch 1.13's math-path sdpa fwd+bwd (a weak peer); against 2.6's flash SDPA the
// kernel's fwd+bwd is 0.97-1.75x (docs/BENCHMARKS.md). The per-thread dQ buffers cost
// 2 x |q| of memory and one sum.
// v5: dQ through gemm_tn (no K^T copy, no dq transposes), dq straight into the output
// (private buffers only for cut (b·h)s), delta without a [B,H,T,D] temporary, parallel
// AVX2 packing, partial tiles over their spans. One thread, CPU time, T=2048, fwd+bwd:
// 1/16 density 55.4 -> 40.7 ms, causal-full 234 -> 208 ms; peak memory of a causal
// fwd+bwd at T=4096 48.4 -> 24.7 MiB (kernel_density sweep).
// v6: per-key-tile K/V panels instead of whole-sequence Q^T and dO^T (scores no longer
// transposed): two |q|-sized copies fewer per call. attnlab_kernel_bench, 2 threads, one run
// of each build side by side: fwd+bwd T=2048 causal 111.1 -> 110.2 ms, 1/16 24.0 -> 23.5;
// T=4096 causal 437 -> 428, 1/16 73.5 -> 70.1. (One thread, CPU time, the 1/16 case at
// T=2048 read 40.7 -> 48.8 ms in a harness that allocates fresh inputs every call: more
// page faults there, as glibc no longer reuses the freed 4 MiB pack buffers.)
#include <attnlab/kernels/attention.hpp>

#include "block_sparse_cuda.hpp"
#include "block_sparse_plan.hpp"
#include "cpu_gemm.hpp"
#include "cpu_row_math.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

namespace attnlab::kernels {

namespace {

constexpr std::int64_t kChunkRows = 256;

template <typename scalar_t>
struct BackwardPointers {
  const scalar_t *q, *k, *v, *dout, *lse_safe, *delta;  // of one (b, h)
  std::int64_t bh;
  scalar_t *dk, *dv;
  std::int64_t T, S, D;
  scalar_t scale;
};

// Per thread: P / dS and dP of up to kChunkRows queries x one key tile, the key tile's K^T and
// V^T in 16-key panels (packed once per key tile, shared by all its query tiles), and its
// dK, dV accumulators.
template <typename scalar_t>
struct BackwardScratch {
  std::vector<scalar_t> p, dp, k_panels, v_panels, dk_acc, dv_acc;
  BackwardScratch(std::int64_t max_rows, std::int64_t tile, std::int64_t D)
      : p(max_rows * tile), dp(max_rows * tile),
        k_panels((tile + cpu::kPanelWidth - 1) / cpu::kPanelWidth * cpu::kPanelWidth * D),
        v_panels(k_panels.size()), dk_acc(tile * D), dv_acc(tile * D) {}
};

// Queries [r0, r0 + m) against keys [c0, c0 + cols), every element allowed (full tiles).
// P and dS are [m, cols] row-major; the products that need P^T or dS^T read them through
// gemm_tn, so nothing of the whole sequence is transposed.
template <typename scalar_t>
void backward_full_run(const BackwardPointers<scalar_t>& x, std::int64_t c0, std::int64_t cols,
                       std::int64_t r0, std::int64_t m, scalar_t* dq,
                       BackwardScratch<scalar_t>& scratch) {
  const std::int64_t D = x.D;
  scalar_t* p = scratch.p.data();
  scalar_t* dp = scratch.dp.data();
  const scalar_t* q_rows = x.q + r0 * D;
  const scalar_t* dout_rows = x.dout + r0 * D;
  // P = exp(scale Q K_j^T - lse);  dV_j += P^T dO.
  cpu::gemm_nn_panels(m, cols, D, x.scale, q_rows, D, scratch.k_panels.data(), scalar_t(0), p, cols);
  for (std::int64_t r = 0; r < m; ++r) cpu::exp_shift_sum(p + r * cols, cols, x.lse_safe[r0 + r]);
  cpu::gemm_tn(cols, D, m, scalar_t(1), p, cols, dout_rows, D, scalar_t(1), scratch.dv_acc.data(), D);
  // dP = dO V_j^T;  dS = P o (dP - delta)  (in place of P).
  cpu::gemm_nn_panels(m, cols, D, scalar_t(1), dout_rows, D, scratch.v_panels.data(), scalar_t(0), dp, cols);
  for (std::int64_t r = 0; r < m; ++r)
    cpu::softmax_grad_row(p + r * cols, dp + r * cols, x.delta[r0 + r], cols);
  // dK_j += scale dS^T Q;  dQ += scale dS K_j.
  cpu::gemm_tn(cols, D, m, x.scale, p, cols, q_rows, D, scalar_t(1), scratch.dk_acc.data(), D);
  cpu::gemm_nn(m, D, cols, x.scale, p, cols, x.k + c0 * D, D, scalar_t(1), dq + r0 * D, D);
}

// The same products for one partial tile (mask `mask_index`, m <= tile queries), in blocks of
// the micro-kernel's rows of queries (keys for dV and dK), each over only the keys (queries) its mask allows:
// a causal diagonal tile costs ~60% of a full one. Elements outside a block's span are never
// computed; the mask clears them before exp, so P and dS are exact zeros there.
template <typename scalar_t>
void backward_partial_tile(const cpu::LayoutView& L, std::int64_t mask_index,
                           const BackwardPointers<scalar_t>& x, std::int64_t c0, std::int64_t cols,
                           std::int64_t r0, std::int64_t m, scalar_t* dq,
                           BackwardScratch<scalar_t>& scratch) {
  const std::int64_t D = x.D, tile = L.tile;
  scalar_t* p = scratch.p.data();
  scalar_t* dp = scratch.dp.data();
  const bool* mask = L.mask_of(mask_index);  // [query, key]
  const scalar_t* q_rows = x.q + r0 * D;
  const scalar_t* dout_rows = x.dout + r0 * D;
  const std::int64_t row_block = cpu::gemm_block_rows();
  auto for_blocks = [row_block](std::int64_t n, auto&& body) {
    for (std::int64_t b0 = 0; b0 < n; b0 += row_block) body(b0, std::min(n, b0 + row_block));
  };
  // 16-key panel boundaries: K^T / V^T panels of this tile start at its first key.
  auto panel_start = [](std::int64_t key) { return key / cpu::kPanelWidth * cpu::kPanelWidth; };
  // P, by blocks of queries.
  for_blocks(m, [&](std::int64_t b0, std::int64_t b1) {
    const auto span = L.row_span(mask_index, b0, b1);
    const std::int64_t lo = panel_start(span.lo);
    if (span.lo < span.hi)
      cpu::gemm_nn_panels(b1 - b0, span.hi - lo, D, x.scale, q_rows + b0 * D, D,
                          scratch.k_panels.data() + lo * D, scalar_t(0), p + b0 * cols + lo, cols);
    for (std::int64_t r = b0; r < b1; ++r) {
      cpu::mask_row(p + r * cols, mask + r * tile, cols);
      cpu::exp_shift_sum(p + r * cols, cols, x.lse_safe[r0 + r]);
    }
  });
  // dV_j += P^T dO, by blocks of keys over the queries they allow.
  for_blocks(cols, [&](std::int64_t b0, std::int64_t b1) {
    const auto span = L.col_span(mask_index, b0, b1);
    if (span.lo < span.hi)
      cpu::gemm_tn(b1 - b0, D, span.hi - span.lo, scalar_t(1), p + span.lo * cols + b0, cols,
                   dout_rows + span.lo * D, D, scalar_t(1), scratch.dv_acc.data() + b0 * D, D);
  });
  // dP = dO V_j^T, dS = P o (dP - delta) and dQ += scale dS K_j, by blocks of queries.
  for_blocks(m, [&](std::int64_t b0, std::int64_t b1) {
    const auto span = L.row_span(mask_index, b0, b1);
    if (span.lo >= span.hi) return;
    const std::int64_t lo = panel_start(span.lo);
    cpu::gemm_nn_panels(b1 - b0, span.hi - lo, D, scalar_t(1), dout_rows + b0 * D, D,
                        scratch.v_panels.data() + lo * D, scalar_t(0), dp + b0 * cols + lo, cols);
    for (std::int64_t r = b0; r < b1; ++r)  // only where dP was computed (P is 0 elsewhere)
      cpu::softmax_grad_row(p + r * cols + lo, dp + r * cols + lo, x.delta[r0 + r], span.hi - lo);
    cpu::gemm_nn(b1 - b0, D, span.hi - span.lo, x.scale, p + b0 * cols + span.lo, cols,
                 x.k + (c0 + span.lo) * D, D, scalar_t(1), dq + (r0 + b0) * D, D);
  });
  // dK_j += scale dS^T Q, by blocks of keys.
  for_blocks(cols, [&](std::int64_t b0, std::int64_t b1) {
    const auto span = L.col_span(mask_index, b0, b1);
    if (span.lo < span.hi)
      cpu::gemm_tn(b1 - b0, D, span.hi - span.lo, x.scale, p + span.lo * cols + b0, cols,
                   q_rows + span.lo * D, D, scalar_t(1), scratch.dk_acc.data() + b0 * D, D);
  });
}

// One key tile `kt` of one (b, h): dk, dv rows of that tile, and its dq contributions added
// into `dq` ([T, D] of that (b, h), owned by this thread chunk; see backward_cpu). Its K and
// V rows are packed into panels once, then every query tile that sees it is visited: runs
// of consecutive full tiles together, partial tiles alone.
template <typename scalar_t>
void backward_key_tile(const cpu::LayoutView& L, std::int64_t kt,
                       const BackwardPointers<scalar_t>& x, scalar_t* dq,
                       BackwardScratch<scalar_t>& scratch) {
  const std::int64_t tile = L.tile, D = x.D, T = x.T, c0 = kt * tile;
  const std::int64_t cols = std::min(tile, x.S - c0);
  std::fill(scratch.dk_acc.begin(), scratch.dk_acc.begin() + cols * D, scalar_t(0));
  std::fill(scratch.dv_acc.begin(), scratch.dv_acc.begin() + cols * D, scalar_t(0));
  cpu::pack_panels(x.k + c0 * D, cols, D, scratch.k_panels.data());
  cpu::pack_panels(x.v + c0 * D, cols, D, scratch.v_panels.data());

  const std::int64_t e_end = L.t_col_ptr[kt + 1];
  const std::int64_t max_run = std::max(kChunkRows, tile);
  for (std::int64_t e0 = L.t_col_ptr[kt]; e0 < e_end;) {
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
                        const cpu::LayoutViews& views, double scale, at::Tensor& dk,
                        at::Tensor& dv) {
  const std::int64_t BH = q.size(0) * q.size(1), T = q.size(2), S = k.size(2), D = q.size(3);
  const auto work = cpu::WorkList::of(views, BH, /*by_key_tile=*/true);
  const std::int64_t n_chunks = work.n_chunks, max_tile = work.max_tile;

  // dq rows of a (b, h) collect contributions from all its key tiles. Chunks are contiguous
  // in (b, h)-major order, so only a (b, h) cut by a chunk boundary is shared: each chunk
  // accumulates such a (b, h) into a private [T, D] slot (at most two per chunk: its first and
  // last), summed into dq after the join; every other (b, h) goes straight into dq.
  auto has_items = [&](std::int64_t c) { return work.bounds[c] < work.bounds[c + 1]; };
  auto first_bh = [&](std::int64_t c) { return work.bh[work.bounds[c]]; };
  auto last_bh = [&](std::int64_t c) { return work.bh[work.bounds[c + 1] - 1]; };
  std::vector<std::int64_t> chunks_of_bh(BH, 0);
  for (std::int64_t chunk = 0; chunk < n_chunks; ++chunk)
    if (has_items(chunk))
      for (std::int64_t bh = first_bh(chunk); bh <= last_bh(chunk); ++bh) ++chunks_of_bh[bh];
  // Private slots only for the (chunk, cut (b, h)) pairs: at most 2 per chunk, each [T, D].
  struct Slot {
    std::int64_t chunk, bh;
  };
  std::vector<Slot> slots;
  std::vector<std::array<std::int64_t, 2>> slot_of(n_chunks, {-1, -1});  // chunk: first, last
  for (std::int64_t chunk = 0; chunk < n_chunks; ++chunk) {
    if (!has_items(chunk)) continue;
    for (int end : {0, 1}) {
      const std::int64_t bh = end == 0 ? first_bh(chunk) : last_bh(chunk);
      if (chunks_of_bh[bh] == 1 || (end == 1 && bh == first_bh(chunk))) continue;
      slot_of[chunk][end] = static_cast<std::int64_t>(slots.size());
      slots.push_back({chunk, bh});
    }
  }
  at::Tensor dq = at::zeros({BH, T, D}, q.options());
  at::Tensor dq_private = slots.empty() ? at::Tensor()
                                        : at::zeros({static_cast<std::int64_t>(slots.size()), T, D}, q.options());
  auto dq_slot = [&](std::int64_t chunk, std::int64_t bh) -> scalar_t* {
    if (chunks_of_bh[bh] == 1) return dq.data_ptr<scalar_t>() + bh * T * D;
    return dq_private.data_ptr<scalar_t>() + slot_of[chunk][bh == first_bh(chunk) ? 0 : 1] * T * D;
  };

  // Rows without any allowed key have lse = -inf; +inf makes their P exactly 0.
  at::Tensor lse_safe = at::where(at::isinf(lse), at::full({}, INFINITY, lse.options()), lse)
                            .contiguous();
  BackwardPointers<scalar_t> x{q.data_ptr<scalar_t>(),        k.data_ptr<scalar_t>(),
                               v.data_ptr<scalar_t>(),        dout.data_ptr<scalar_t>(),
                               lse_safe.data_ptr<scalar_t>(), delta.data_ptr<scalar_t>(),
                               0,                             dk.data_ptr<scalar_t>(),
                               dv.data_ptr<scalar_t>(),       T,
                               S,                             D,
                               static_cast<scalar_t>(scale)};

  cpu::parallel_chunks(n_chunks, [&](std::int64_t chunk) {
    BackwardScratch<scalar_t> scratch(max_tile * (std::max(kChunkRows, max_tile) / max_tile + 1),
                                      max_tile, D);
    for (std::int64_t item = work.bounds[chunk]; item < work.bounds[chunk + 1]; ++item) {
      const std::int64_t bh = work.bh[item];
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
      backward_key_tile<scalar_t>(views.of(bh), work.tile[item], xb, dq_slot(chunk, bh), scratch);
    }
  });
  for (std::size_t i = 0; i < slots.size(); ++i) dq[slots[i].bh].add_(dq_private[i]);
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
  return cpu::backward_views(dout, q, k, v, out, lse, views, scale, dlse);
}

namespace cpu {

std::tuple<at::Tensor, at::Tensor, at::Tensor> backward_views(
    const at::Tensor& dout, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
    const at::Tensor& out, const at::Tensor& lse, const LayoutViews& views, double scale,
    const at::Tensor& dlse) {
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

}  // namespace cpu

}  // namespace attnlab::kernels
