// Block-sparse flash-style attention, CPU forward.
//
//   q [B, H, T, D], k [B, H, S, D], v [B, H, S, D], layout(s) of non-empty tiles
//   out[t] = sum_s softmax_s(q[t]·k[s] * scale over allowed s) v[s]      [B, H, T, D]
//   lse[t] = log sum_s exp(q[t]·k[s] * scale)  over allowed s           [B, H, T]
//   Empty rows: out = 0, lse = -inf.
//
// Per (b·h, query tile) work item, never materializing T x S: walk the tile row of the CSR
// layout in chunks of up to kChunkKeys keys (adjacent tiles or not), S^T_chunk = scale·K Q_i^T
// kept key-major (Q_i^T packed into 16-query panels once per work item; K read in place),
// element mask only on partial tiles (computed per 6-key block over the queries those keys
// allow), online softmax down the columns (running max m, sum l, rescaled accumulator O)
// once per chunk, O += P V; finally out = O / l, lse = m + log l. Extra memory beyond out and
// lse: ~100 KiB of scratch per thread. Tile products: cpu_gemm.hpp (AVX-512 or AVX2, chosen
// at run time); exp: cpu_row_math.hpp.
// Work items are split into one cost-balanced contiguous chunk per thread
// (cpu::parallel_chunks: at::parallel_for when built with OpenMP, else std::thread).
// fp32 and fp64 natively; other floating dtypes run in fp32 and are cast back.
//
// Versions (the measurements, machines and peers of each: docs/KERNEL_HISTORY.md):
//   v1  tile products through OpenBLAS sgemm_ (an OpenMP team per tiny call: 0.29x math SDPA)
//   v2  own AVX2 6x16 micro-kernel: 0.37-0.41 of the sgemm ceiling
//   v3  named accumulators, K^T in 16-key panels: 0.63-0.89 of sgemm (measured 1 thread: v4)
//   v4  cpu::parallel_chunks (at::parallel_for was serial without -fopenmp): 0.73-0.90 of sgemm
//   v5  fixed costs that did not shrink with the layout (chunks of non-adjacent tiles, AVX2 masks)
//   v7  AVX-512 6x64 GEMM and row math, key-major scores: 1.03-1.27x LibTorch 2.6 flash SDPA
// The official numbers come from experiments/kernel_density.toml (docs/BENCHMARKS.md).
#include <attnlab/kernels/attention.hpp>

#include "block_sparse_cuda.hpp"
#include "block_sparse_plan.hpp"
#include "cpu_gemm.hpp"
#include "cpu_row_math.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

namespace attnlab::kernels {

namespace {

constexpr std::int64_t kChunkKeys = 256;

std::atomic<std::int64_t> g_forward_tiles{0};  // forward_tiles_computed()

// Keys [s0, s0 + width) at row `offset` of the chunk's scores: consecutive full tiles
// (mask -1) or one partial tile (mask = its mask index).
struct KeyRun {
  std::int64_t s0, width, offset, mask;
};

// Per thread: the query tile's Q^T in 16-query panels, the chunk's scores S^T [keys, queries],
// the output accumulator O [queries, D], running max m, sum l and the chunk's max m_new.
template <typename scalar_t>
struct ForwardScratch {
  std::vector<scalar_t> q_panels, scores, acc, row_m, row_l, chunk_m, shift;
  std::vector<KeyRun> runs;
  ForwardScratch(std::int64_t tile, std::int64_t D)
      : q_panels((tile + cpu::kPanelWidth - 1) / cpu::kPanelWidth * cpu::kPanelWidth * D),
        scores(std::max(kChunkKeys, tile) * tile), acc(tile * D), row_m(tile), row_l(tile),
        chunk_m(tile), shift(tile) {}
};

// The scores S^T = scale K_run Q_i^T of one chunk of query tile `qt`'s row, from entry `e`:
// runs of tiles into x.scores (key-major, one column per query) and x.runs, up to chunk_keys
// keys. Runs of consecutive full tiles share one product; a partial tile is computed in
// blocks of the micro-kernel's rows of keys, each over the queries those keys allow, then
// masked. Returns the entry after the chunk and the keys gathered.
template <typename scalar_t>
std::pair<std::int64_t, std::int64_t> score_chunk(const cpu::LayoutView& L, std::int64_t qt, std::int64_t e,
                                                  std::int64_t rows, const scalar_t* k, std::int64_t D,
                                                  scalar_t scale, ForwardScratch<scalar_t>& x) {
  const std::int64_t tile = L.tile, ld = tile, chunk_keys = std::max(kChunkKeys, tile);
  const std::int64_t row_block = cpu::gemm_block_rows(), e_end = L.row_ptr[qt + 1];
  scalar_t* s = x.scores.data();
  std::int64_t n = 0;  // keys gathered in this chunk
  while (e < e_end && n + tile <= chunk_keys) {
    std::int64_t e1 = e + 1;
    if (L.tile_mask[e] < 0)
      while (e1 < e_end && L.tile_mask[e1] < 0 && L.col_idx[e1] == L.col_idx[e1 - 1] + 1 &&
             n + (e1 - e + 1) * tile <= chunk_keys)
        ++e1;
    const std::int64_t s0 = L.col_idx[e] * tile;
    const KeyRun run{s0, std::min(L.S, (L.col_idx[e1 - 1] + 1) * tile) - s0, n, L.tile_mask[e]};
    if (run.mask < 0) {
      cpu::gemm_nn_panels(run.width, rows, D, scale, k + s0 * D, D, x.q_panels.data(), scalar_t(0), s + n * ld, ld);
    } else {
      for (std::int64_t b0 = 0; b0 < run.width; b0 += row_block) {
        const std::int64_t b1 = std::min(run.width, b0 + row_block);
        const auto span = L.col_span(run.mask, b0, b1);  // queries these keys allow
        const std::int64_t lo = span.lo / cpu::kPanelWidth * cpu::kPanelWidth;  // panel start
        if (span.lo < span.hi)
          cpu::gemm_nn_panels(b1 - b0, std::min(span.hi, rows) - lo, D, scale, k + (s0 + b0) * D, D,
                              x.q_panels.data() + lo * D, scalar_t(0), s + (n + b0) * ld + lo, ld);
      }
      // Clears everything not allowed, computed or not; everything allowed was computed.
      const bool* mask_t = L.t_mask_of(run.mask);
      for (std::int64_t j = 0; j < run.width; ++j) cpu::mask_row(s + (n + j) * ld, mask_t + j * tile, rows);
    }
    x.runs.push_back(run);
    n += run.width;
    e = e1;
  }
  return {e, n};
}

// Online softmax over a chunk of n keys, one column per query: m_new = max(m, chunk max),
// P = exp(S - m_new), O and l rescaled by exp(m - m_new). A query with no allowed key yet keeps
// m = -inf and is shifted by +inf instead, so its P is exactly 0.
template <typename scalar_t>
void softmax_chunk(std::int64_t n, std::int64_t ld, std::int64_t rows, std::int64_t D, ForwardScratch<scalar_t>& x) {
  constexpr scalar_t neg_inf = -std::numeric_limits<scalar_t>::infinity();
  scalar_t* s = x.scores.data();
  std::copy(x.row_m.begin(), x.row_m.begin() + rows, x.chunk_m.begin());
  cpu::col_max(s, n, ld, rows, x.chunk_m.data());
  for (std::int64_t r = 0; r < rows; ++r) {
    const scalar_t m_new = x.chunk_m[r];
    x.shift[r] = m_new == neg_inf ? -neg_inf : m_new;
    if (m_new != x.row_m[r]) {
      const scalar_t alpha = std::exp(x.row_m[r] - m_new);  // 0 when row_m was -inf
      scalar_t* acc_row = x.acc.data() + r * D;
      for (std::int64_t d = 0; d < D; ++d) acc_row[d] *= alpha;
      x.row_l[r] *= alpha;
      x.row_m[r] = m_new;
    }
  }
  cpu::exp_shift_cols(s, n, ld, rows, x.shift.data(), x.row_l.data());
}

// O += P V per run of the chunk, as O += (S^T)^T V (gemm_tn reads S^T transposed); a partial
// tile's blocks of queries only over the keys they allow.
template <typename scalar_t>
void accumulate_chunk(const cpu::LayoutView& L, std::int64_t rows, const scalar_t* v, std::int64_t D,
                      ForwardScratch<scalar_t>& x) {
  const std::int64_t ld = L.tile, row_block = cpu::gemm_block_rows();
  const scalar_t* s = x.scores.data();
  for (const KeyRun& run : x.runs) {
    if (run.mask < 0) {
      cpu::gemm_tn(rows, D, run.width, scalar_t(1), s + run.offset * ld, ld, v + run.s0 * D, D, scalar_t(1),
                   x.acc.data(), D);
      continue;
    }
    for (std::int64_t b0 = 0; b0 < rows; b0 += row_block) {
      const std::int64_t b1 = std::min(rows, b0 + row_block);
      const auto span = L.row_span(run.mask, b0, b1);  // keys these queries allow
      if (span.lo < span.hi)
        cpu::gemm_tn(b1 - b0, D, span.hi - span.lo, scalar_t(1), s + (run.offset + span.lo) * ld + b0, ld,
                     v + (run.s0 + span.lo) * D, D, scalar_t(1), x.acc.data() + b0 * D, D);
    }
  }
  x.runs.clear();
}

// One query tile `qt` of one (b, h). Scores are kept key-major, S^T = scale K_run Q_i^T, so
// the B operand of every score product is this tile's Q^T, packed once here, and K is read
// in place: nothing of the whole sequence is copied (the forward's peak memory is out + lse).
// The row's tiles are taken in chunks of up to kChunkKeys keys, adjacent or not: one
// online-softmax update (max, exp, rescale of O) per chunk, vectorized across queries, then
// O += P V. A causal diagonal tile costs ~60% of a full one.
template <typename scalar_t>
void forward_query_tile(const cpu::LayoutView& L, std::int64_t qt, const scalar_t* q,
                        const scalar_t* k, const scalar_t* v, scalar_t* out, scalar_t* lse,
                        std::int64_t D, scalar_t scale, ForwardScratch<scalar_t>& x) {
  constexpr scalar_t neg_inf = -std::numeric_limits<scalar_t>::infinity();
  const std::int64_t tile = L.tile, r0 = qt * tile, rows = std::min(tile, L.T - r0);
  cpu::pack_panels(q + r0 * D, rows, D, x.q_panels.data());
  std::fill(x.acc.begin(), x.acc.begin() + rows * D, scalar_t(0));
  std::fill(x.row_m.begin(), x.row_m.begin() + rows, neg_inf);
  std::fill(x.row_l.begin(), x.row_l.begin() + rows, scalar_t(0));
  for (std::int64_t e = L.row_ptr[qt]; e < L.row_ptr[qt + 1];) {
    const auto [next, n] = score_chunk(L, qt, e, rows, k, D, scale, x);
    softmax_chunk(n, tile, rows, D, x);
    accumulate_chunk(L, rows, v, D, x);
    e = next;
  }
  for (std::int64_t r = 0; r < rows; ++r) {
    const scalar_t l = x.row_l[r];
    const scalar_t inv = l > 0 ? scalar_t(1) / l : scalar_t(0);
    scalar_t* out_row = out + (r0 + r) * D;
    const scalar_t* acc_row = x.acc.data() + r * D;
    for (std::int64_t d = 0; d < D; ++d) out_row[d] = acc_row[d] * inv;
    lse[r0 + r] = l > 0 ? x.row_m[r] + std::log(l) : neg_inf;
  }
}

template <typename scalar_t>
void forward_cpu(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                 const cpu::LayoutViews& views, double scale, at::Tensor& out,
                 at::Tensor& lse) {
  const std::int64_t BH = q.size(0) * q.size(1), T = q.size(2), S = v.size(2), D = q.size(3);
  const scalar_t* q_ptr = q.data_ptr<scalar_t>();
  const scalar_t* k_ptr = k.data_ptr<scalar_t>();
  const scalar_t* v_ptr = v.data_ptr<scalar_t>();
  scalar_t* out_ptr = out.data_ptr<scalar_t>();
  scalar_t* lse_ptr = lse.data_ptr<scalar_t>();
  const auto work = cpu::WorkList::of(views, BH, /*by_key_tile=*/false);

  cpu::parallel_chunks(work.n_chunks, [&](std::int64_t chunk) {
    ForwardScratch<scalar_t> scratch(work.max_tile, D);
    std::int64_t tiles = 0;
    for (std::int64_t item = work.bounds[chunk]; item < work.bounds[chunk + 1]; ++item) {
      const std::int64_t bh = work.bh[item];
      tiles += views.of(bh).row_ptr[work.tile[item] + 1] - views.of(bh).row_ptr[work.tile[item]];
      forward_query_tile<scalar_t>(views.of(bh), work.tile[item], q_ptr + bh * T * D,
                                   k_ptr + bh * S * D, v_ptr + bh * S * D, out_ptr + bh * T * D,
                                   lse_ptr + bh * T, D, static_cast<scalar_t>(scale), scratch);
    }
    g_forward_tiles.fetch_add(tiles, std::memory_order_relaxed);
  });
}

}  // namespace

std::int64_t forward_tiles_computed() { return g_forward_tiles.load(std::memory_order_relaxed); }
void reset_forward_tiles_computed() { g_forward_tiles.store(0, std::memory_order_relaxed); }

std::tuple<at::Tensor, at::Tensor> block_sparse_forward(const at::Tensor& q, const at::Tensor& k,
                                                        const at::Tensor& v,
                                                        const LayoutSet& layouts, double scale) {
#ifdef ATTNLAB_WITH_CUDA
  if (q.is_cuda()) return cuda::block_sparse_forward_cuda(q, k, v, layouts, scale);
#endif
  TORCH_CHECK(q.device().is_cpu() && k.device().is_cpu() && v.device().is_cpu(),
              "block_sparse_forward: q, k, v must be on the CPU (this build has no CUDA kernels)");
  TORCH_CHECK(at::isFloatingType(q.scalar_type()), "block_sparse_forward: q must be floating");
  const auto views = cpu::check_inputs("block_sparse_forward", q, k, v, layouts, /*with_transpose=*/true);
  return cpu::forward_views(q, k, v, views, scale);
}

namespace cpu {

std::tuple<at::Tensor, at::Tensor> forward_views(const at::Tensor& q, const at::Tensor& k,
                                                 const at::Tensor& v, const LayoutViews& views,
                                                 double scale) {
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

}  // namespace cpu

}  // namespace attnlab::kernels
