// Block-sparse flash-style attention, CPU forward.
//
//   q [B, H, T, D], k [B, H, S, D], v [B, H, S, D], layout(s) of non-empty tiles
//   out[t] = sum_s softmax_s(q[t]·k[s] * scale over allowed s) v[s]      [B, H, T, D]
//   lse[t] = log sum_s exp(q[t]·k[s] * scale)  over allowed s           [B, H, T]
//   Empty rows: out = 0, lse = -inf.
//
// Per (b·h, query tile) work item, never materializing T x S: walk the tile row of the CSR
// layout in chunks of up to kChunkKeys keys (adjacent tiles or not), S_chunk = scale·Q_i K^T
// (K^T packed into 16-key panels once per call), element mask only on partial tiles (which
// are computed per 6-row block over the columns their rows allow), online softmax (running
// max m, sum l, rescaled accumulator O) once per chunk, O += P V; finally out = O / l,
// lse = m + log l. Tile products: cpu_gemm.hpp's AVX2 kernel; exp: cpu_row_math.hpp.
// Work items are split into one cost-balanced contiguous chunk per thread
// (cpu::parallel_chunks: at::parallel_for when built with OpenMP, else std::thread).
// fp32 and fp64 natively; other floating dtypes run in fp32 and are cast back.
//
// Versions and measured results. Causal-full layout, B=1 H=8 T=4096 D=64, tile 64, fp32,
// at::set_num_threads(2), on this project's 2-vCPU AMD EPYC (Zen 3) VM while other engineers
// compiled (load 5-9). Ratios are taken side by side in one process, median of 3, against
// std::get<0>(at::_scaled_dot_product_attention(q,k,v,{},0,false,/*is_causal=*/true)) and
// at::mm 2048x2048 (the sgemm ceiling, same run). GFLOP/s count computed tiles (4·D per
// element). "per CPU-s" divides by process CPU time, which removes most of the load noise.
//   v1  tile products through OpenBLAS sgemm_:        T=2048 fwd 1.1 GFLOP/s, 0.29x sdpa
//       (OpenBLAS opens an OpenMP team per tiny call and spin-waits; see cpu_gemm.cpp)
//   v2  own AVX2 6x16 kernel, accumulators in an array: fwd 30 GFLOP/s per CPU-s,
//       fwd 3.0x sdpa, fwd+bwd 1.9-2.5x sdpa, 0.37-0.41 of the sgemm ceiling
//   v3  named accumulators + K^T in 16-key panels (this file):
//       fwd 319-325 ms = 54-55 GFLOP/s = 0.86-0.89 of sgemm (61-62 GFLOP/s in that run);
//       5.4-5.6x faster than sdpa forward, fwd+bwd 1004-1015 ms = 3.8x faster than sdpa;
//       peak CPU-allocator bytes: fwd 24 MiB vs 1096 MiB (1/45), fwd+bwd 72 vs 1560 (1/21.6).
//       Same at T=2048: fwd 88-92 ms, 6.0-6.3x sdpa, fwd+bwd 3.7x sdpa, 0.63-0.68 of sgemm
//       (75-77 GFLOP/s in that run); peak fwd+bwd 36 vs 396 MiB (1/11).
//       Runs under heavier load (8 on 2 vCPUs) ranged 0.52-0.78 of sgemm, fwd+bwd 2.2-4.6x.
//   tile 32 / 64 / 128 (v3, load 4, one run each): fwd 339 / 319-325 / 300 ms, fwd+bwd
//       1128 / 1004-1015 / 1048 ms (5.5 / 5.4-5.6 / 6.1x sdpa fwd; 4.0 / 3.8 / 3.6x fwd+bwd).
//   v4  v3 measured single-threaded by accident: at::parallel_for was serial here (no
//       -fopenmp, see block_sparse_plan.hpp); with cpu::parallel_chunks (std::thread), T=4096:
//       fwd 143-319 ms, 0.73-0.90 of sgemm (one run 1.16 when both vCPUs were free: 122 vs 105
//       GFLOP/s), 5.0-6.3x sdpa forward (11.5x in that run), fwd+bwd 3.5-3.7x; T=2048: fwd
//       4.8-6.2x, fwd+bwd 3.7-3.8x, 0.51-0.64 of sgemm. Another engineer's compiler held one
//       vCPU through most runs (top: cc1plus 99%), so both sides often had one core.
//   kChunkKeys 128 / 256 / 512: equal within noise (62-68 GFLOP/s per CPU-s, 1 thread).
//   v5  fixed costs that did not shrink with the layout, found with perf at T=2048 and 1/16
//       block density (a quarter of the time outside the tile products): chunks of
//       non-adjacent tiles (one softmax update per chunk), AVX2 masking, one parallel
//       AVX2 pack of K^T (was ATen pad + permute: two copies, two fresh allocations),
//       partial tiles only over their rows' spans. One thread, CPU time, T=2048:
//       1/16 density 14.9 -> 11.5 ms, causal-full 67.7 -> 64.0 ms (ratio 0.22 -> 0.18).
//       Gathering a chunk's V rows for one deeper P V product: no faster, not kept.
// The official numbers come from experiments/kernel_density.toml (docs/BENCHMARKS.md).
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

constexpr std::int64_t kChunkKeys = 256;

constexpr std::int64_t kRowBlock = 6;  // rows of the GEMM micro-kernel

// Keys [s0, s0 + width) at column `offset` of the scores: consecutive full tiles (mask -1)
// or one partial tile (mask = its mask index).
struct KeyRun {
  std::int64_t s0, width, offset, mask;
};

template <typename scalar_t>
void forward_query_tile(const cpu::LayoutView& L, std::int64_t qt, const scalar_t* q,
                        const cpu::TransposedOperand<scalar_t>& k_t, std::int64_t bh,
                        const scalar_t* v, scalar_t* out, scalar_t* lse,
                        std::int64_t D, scalar_t scale, std::vector<scalar_t>& scores,
                        std::vector<scalar_t>& acc, std::vector<scalar_t>& row_m,
                        std::vector<scalar_t>& row_l, std::vector<KeyRun>& runs) {
  constexpr scalar_t neg_inf = -std::numeric_limits<scalar_t>::infinity();
  const std::int64_t tile = L.tile, r0 = qt * tile, rows = std::min(tile, L.T - r0);
  const scalar_t* q_tile = q + r0 * D;
  std::fill(acc.begin(), acc.begin() + rows * D, scalar_t(0));
  std::fill(row_m.begin(), row_m.begin() + rows, neg_inf);
  std::fill(row_l.begin(), row_l.begin() + rows, scalar_t(0));

  // The row's tiles are taken in chunks of up to kChunkKeys keys, adjacent or not: one
  // online-softmax update (max, exp, rescale of O) per chunk instead of per tile, which is
  // what keeps sparse rows (isolated tiles) as cheap per tile as dense ones. Inside a chunk,
  // runs of consecutive full tiles share one wide score GEMM and one P V GEMM; a partial tile
  // is computed in blocks of kRowBlock rows, each over only the columns its rows allow (a
  // causal diagonal tile then costs ~60% of a full one, which matters at low density where
  // diagonal tiles are a third of the work).
  const std::int64_t ld = std::max(kChunkKeys, tile);  // row stride of `scores`
  const std::int64_t e_end = L.row_ptr[qt + 1];
  for (std::int64_t e_chunk = L.row_ptr[qt]; e_chunk < e_end;) {
    scalar_t* s = scores.data();
    std::int64_t n = 0;  // keys gathered in this chunk
    std::int64_t e = e_chunk;
    while (e < e_end && n + tile <= ld) {
      std::int64_t e1 = e + 1;
      if (L.tile_mask[e] < 0)
        while (e1 < e_end && L.tile_mask[e1] < 0 && L.col_idx[e1] == L.col_idx[e1 - 1] + 1 &&
               n + (e1 - e + 1) * tile <= ld)
          ++e1;
      const std::int64_t s0 = L.col_idx[e] * tile;
      const KeyRun run{s0, std::min(L.S, (L.col_idx[e1 - 1] + 1) * tile) - s0, n, L.tile_mask[e]};
      if (run.mask < 0) {
        cpu::gemm_transposed_b(k_t, bh, s0, rows, run.width, scale, q_tile, D, scalar_t(0), s + n, ld);
      } else {
        for (std::int64_t b0 = 0; b0 < rows; b0 += kRowBlock) {
          const std::int64_t b1 = std::min(rows, b0 + kRowBlock);
          const auto span = L.row_span(run.mask, b0, b1);
          // Start on a 16-key boundary (K^T panels); masking below clears what is not allowed.
          const std::int64_t lo = span.lo / 16 * 16;
          if (span.lo < span.hi)
            cpu::gemm_transposed_b(k_t, bh, s0 + lo, b1 - b0, span.hi - lo, scale, q_tile + b0 * D,
                                   D, scalar_t(0), s + b0 * ld + n + lo, ld);
        }
        const bool* mask = L.mask_of(run.mask);
        for (std::int64_t r = 0; r < rows; ++r)
          cpu::mask_row(s + r * ld + n, mask + r * tile, run.width);
      }
      runs.push_back(run);
      n += run.width;
      e = e1;
    }
    for (std::int64_t r = 0; r < rows; ++r) {
      scalar_t* s_row = s + r * ld;
      const scalar_t m_new = std::max(row_m[r], cpu::row_max(s_row, n));
      if (m_new == neg_inf) {  // nothing allowed in this row yet
        std::fill(s_row, s_row + n, scalar_t(0));
        continue;
      }
      const scalar_t row_sum = cpu::exp_shift_sum(s_row, n, m_new);
      if (m_new != row_m[r]) {
        const scalar_t alpha = std::exp(row_m[r] - m_new);  // 0 when row_m was -inf
        scalar_t* acc_row = acc.data() + r * D;
        for (std::int64_t d = 0; d < D; ++d) acc_row[d] *= alpha;
        row_l[r] *= alpha;
        row_m[r] = m_new;
      }
      row_l[r] += row_sum;
    }
    // P V per run (gathering the runs' V rows into one deeper product measured no faster);
    // a partial tile's blocks of rows only over the keys they allow (P is 0 elsewhere).
    for (const KeyRun& run : runs) {
      if (run.mask < 0) {
        cpu::gemm_nn(rows, D, run.width, scalar_t(1), s + run.offset, ld, v + run.s0 * D, D,
                     scalar_t(1), acc.data(), D);
        continue;
      }
      for (std::int64_t b0 = 0; b0 < rows; b0 += kRowBlock) {
        const std::int64_t b1 = std::min(rows, b0 + kRowBlock);
        const auto span = L.row_span(run.mask, b0, b1);
        if (span.lo < span.hi)
          cpu::gemm_nn(b1 - b0, D, span.hi - span.lo, scalar_t(1), s + b0 * ld + run.offset + span.lo,
                       ld, v + (run.s0 + span.lo) * D, D, scalar_t(1), acc.data() + b0 * D, D);
      }
    }
    runs.clear();
    e_chunk = e;
  }

  for (std::int64_t r = 0; r < rows; ++r) {
    const scalar_t l = row_l[r];
    const scalar_t inv = l > 0 ? scalar_t(1) / l : scalar_t(0);
    scalar_t* out_row = out + (r0 + r) * D;
    const scalar_t* acc_row = acc.data() + r * D;
    for (std::int64_t d = 0; d < D; ++d) out_row[d] = acc_row[d] * inv;
    lse[r0 + r] = l > 0 ? row_m[r] + std::log(l) : neg_inf;
  }
}

template <typename scalar_t>
void forward_cpu(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                 const std::vector<cpu::LayoutView>& views, double scale, at::Tensor& out,
                 at::Tensor& lse) {
  const std::int64_t BH = q.size(0) * q.size(1), T = q.size(2), S = v.size(2), D = q.size(3);
  const scalar_t* q_ptr = q.data_ptr<scalar_t>();
  // K^T once per call (in 16-key panels when tiles allow): every score tile is then a
  // plain row-major product that streams its B operand contiguously.
  const auto k_t = cpu::transposed_operand<scalar_t>(k, cpu::all_tiles_multiple_of_16(views));
  const scalar_t* v_ptr = v.data_ptr<scalar_t>();
  scalar_t* out_ptr = out.data_ptr<scalar_t>();
  scalar_t* lse_ptr = lse.data_ptr<scalar_t>();
  const auto work = cpu::WorkList::of(views, BH, /*by_key_tile=*/false);
  const std::int64_t max_tile = work.max_tile;

  cpu::parallel_chunks(work.n_chunks, [&](std::int64_t chunk) {
    std::vector<scalar_t> scores(max_tile * std::max(kChunkKeys, max_tile)), acc(max_tile * D),
        row_m(max_tile), row_l(max_tile);
    std::vector<KeyRun> runs;
    for (std::int64_t item = work.bounds[chunk]; item < work.bounds[chunk + 1]; ++item) {
      const std::int64_t bh = work.bh[item];
      forward_query_tile<scalar_t>(cpu::view_for(views, bh), work.tile[item], q_ptr + bh * T * D, k_t, bh,
                                   v_ptr + bh * S * D, out_ptr + bh * T * D, lse_ptr + bh * T, D,
                                   static_cast<scalar_t>(scale), scores, acc, row_m, row_l, runs);
    }
  });
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> block_sparse_forward(const at::Tensor& q, const at::Tensor& k,
                                                        const at::Tensor& v,
                                                        const LayoutSet& layouts, double scale) {
#ifdef ATTNLAB_WITH_CUDA
  if (q.is_cuda()) return cuda::block_sparse_forward_cuda(q, k, v, layouts, scale);
#endif
  TORCH_CHECK(q.device().is_cpu() && k.device().is_cpu() && v.device().is_cpu(),
              "block_sparse_forward: q, k, v must be on the CPU (this build has no CUDA kernels)");
  TORCH_CHECK(at::isFloatingType(q.scalar_type()), "block_sparse_forward: q must be floating");
  const auto views = cpu::check_inputs("block_sparse_forward", q, k, v, layouts, false);
  const at::ScalarType compute =
      q.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor qc = q.to(compute).contiguous(), kc = k.to(compute).contiguous(),
             vc = v.to(compute).contiguous();
  at::Tensor out = at::empty(qc.sizes(), qc.options());
  at::Tensor lse = at::empty({q.size(0), q.size(1), q.size(2)}, qc.options());
  if (compute == at::kDouble)
    forward_cpu<double>(qc, kc, vc, views, scale, out, lse);
  else
    forward_cpu<float>(qc, kc, vc, views, scale, out, lse);
  return {out.to(q.scalar_type()), lse};
}

}  // namespace attnlab::kernels
