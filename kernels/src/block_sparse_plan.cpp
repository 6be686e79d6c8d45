// Shared plumbing of the CPU block-sparse kernels; see block_sparse_plan.hpp.
#include "block_sparse_plan.hpp"

#include <cstring>

#include <immintrin.h>

#include <algorithm>

namespace attnlab::kernels::cpu {

LayoutView LayoutView::of(const BlockLayout& layout, bool with_transpose, const LayoutView* same_masks) {
  LayoutView view;
  view.T = layout.T;
  view.S = layout.S;
  view.tile = layout.tile;
  view.n_q_tiles = layout.n_q_tiles();
  view.n_k_tiles = layout.n_k_tiles();
  view.row_ptr = layout.row_ptr.data_ptr<std::int64_t>();
  view.col_idx = layout.nnz() ? layout.col_idx.data_ptr<std::int64_t>() : nullptr;
  view.tile_mask = layout.nnz() ? layout.tile_mask.data_ptr<std::int64_t>() : nullptr;
  view.masks = layout.masks.defined() && layout.masks.numel() ? layout.masks.data_ptr<bool>()
                                                               : nullptr;
  if (same_masks != nullptr) {  // built in the same call, so with the same with_transpose
    view.partial_index = same_masks->partial_index;
  } else {
    view.index_masks(view.masks ? layout.masks.size(0) : 0, with_transpose);
  }
  if (with_transpose) view.build_transpose();
  return view;
}

void LayoutView::index_masks(std::int64_t n_partial, bool with_transpose) {
  // First and last allowed element of every tile-long line (a mask row, or a column via the
  // transpose), found with memchr / memrchr (SIMD in glibc): with a branch per element this
  // pass cost as much as the tiles' math when hard gating brought many masks per call.
  auto spans = [&](const unsigned char* lines, std::vector<std::int64_t>& lo, std::vector<std::int64_t>& hi) {
    lo.assign(n_partial * tile, tile);
    hi.assign(n_partial * tile, 0);
    for (std::int64_t line = 0; line < n_partial * tile; ++line) {
      const unsigned char* begin = lines + line * tile;
      const void* first = std::memchr(begin, 1, static_cast<std::size_t>(tile));
      if (first == nullptr) continue;
      const void* last = memrchr(begin, 1, static_cast<std::size_t>(tile));
      lo[line] = static_cast<const unsigned char*>(first) - begin;
      hi[line] = static_cast<const unsigned char*>(last) - begin + 1;
    }
  };
  static_assert(sizeof(bool) == 1, "masks are read as bytes of 0 / 1");
  auto index = std::make_shared<MaskIndex>();
  auto& t_masks = index->t_masks;
  spans(reinterpret_cast<const unsigned char*>(masks), index->row_lo, index->row_hi);
  partial_index = index;
  if (!with_transpose) return;
  t_masks.resize(n_partial * tile * tile);
  for (std::int64_t i = 0; i < n_partial; ++i) {
    const auto* m = reinterpret_cast<const unsigned char*>(mask_of(i));
    unsigned char* t = t_masks.data() + i * tile * tile;
    for (std::int64_t r = 0; r < tile; ++r)
      for (std::int64_t c = 0; c < tile; ++c) t[c * tile + r] = m[r * tile + c];
  }
  spans(t_masks.data(), index->col_lo, index->col_hi);  // a column of a mask is a row of its transpose
}

void LayoutView::build_transpose() {
  const std::int64_t nnz = row_ptr[n_q_tiles];
  t_col_ptr.assign(n_k_tiles + 1, 0);
  for (std::int64_t e = 0; e < nnz; ++e) ++t_col_ptr[col_idx[e] + 1];
  for (std::int64_t j = 0; j < n_k_tiles; ++j) t_col_ptr[j + 1] += t_col_ptr[j];
  t_row_idx.resize(nnz);
  t_tile_mask.resize(nnz);
  std::vector<std::int64_t> fill(t_col_ptr.begin(), t_col_ptr.end() - 1);
  for (std::int64_t i = 0; i < n_q_tiles; ++i) {
    for (std::int64_t e = row_ptr[i]; e < row_ptr[i + 1]; ++e) {
      const std::int64_t slot = fill[col_idx[e]]++;
      t_row_idx[slot] = i;
      t_tile_mask[slot] = tile_mask[e];
    }
  }
}

namespace {
void check_layout(const char* who, const BlockLayout& layout, std::int64_t T, std::int64_t S) {
  TORCH_CHECK(layout.T == T && layout.S == S, who, ": layout is for T=", layout.T, ", S=",
              layout.S, " but q has T=", T, " and k has S=", S);
  TORCH_CHECK(layout.tile >= 1, who, ": layout tile must be >= 1, got ", layout.tile);
  TORCH_CHECK(layout.row_ptr.defined() && layout.row_ptr.numel() == layout.n_q_tiles() + 1 &&
                  layout.row_ptr.scalar_type() == at::kLong && layout.row_ptr.is_contiguous() &&
                  layout.row_ptr.device().is_cpu(),
              who, ": layout.row_ptr must be a contiguous CPU int64 tensor of n_q_tiles+1 = ",
              layout.n_q_tiles() + 1, " entries");
  const std::int64_t nnz = layout.nnz();
  TORCH_CHECK(layout.row_ptr[-1].item<std::int64_t>() == nnz, who,
              ": layout.row_ptr must end at nnz = ", nnz);
  if (nnz == 0) return;
  TORCH_CHECK(layout.col_idx.scalar_type() == at::kLong && layout.col_idx.is_contiguous() &&
                  layout.tile_mask.defined() && layout.tile_mask.numel() == nnz &&
                  layout.tile_mask.scalar_type() == at::kLong &&
                  layout.tile_mask.is_contiguous() && layout.col_idx.device().is_cpu() &&
                  layout.tile_mask.device().is_cpu(),
              who, ": layout.col_idx and layout.tile_mask must be contiguous CPU int64 [nnz]");
  TORCH_CHECK(layout.col_idx.min().item<std::int64_t>() >= 0 &&
                  layout.col_idx.max().item<std::int64_t>() < layout.n_k_tiles(),
              who, ": layout.col_idx entries must be in [0, n_k_tiles = ", layout.n_k_tiles(), ")");
  const std::int64_t n_partial =
      layout.masks.defined() && layout.masks.numel() ? layout.masks.size(0) : 0;
  TORCH_CHECK(layout.tile_mask.max().item<std::int64_t>() < n_partial &&
                  layout.tile_mask.min().item<std::int64_t>() >= -1,
              who, ": layout.tile_mask entries must be -1 or in [0, n_partial = ", n_partial, ")");
  if (n_partial) {
    TORCH_CHECK(layout.masks.dim() == 3 && layout.masks.size(1) == layout.tile &&
                    layout.masks.size(2) == layout.tile &&
                    layout.masks.scalar_type() == at::kBool && layout.masks.is_contiguous() &&
                    layout.masks.device().is_cpu(),
                who, ": layout.masks must be a contiguous CPU bool [n_partial, tile, tile]");
  }
}
}  // namespace

LayoutViews check_inputs(const char* who, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                         const LayoutSet& layouts, bool with_transpose) {
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, who,
              ": q, k, v must be [B, H, T|S, D], got dims ", q.dim(), ", ", k.dim(), ", ",
              v.dim());
  TORCH_CHECK(k.sizes() == v.sizes(), who, ": k and v must have the same shape, got ", k.sizes(),
              " and ", v.sizes());
  TORCH_CHECK(q.size(0) == k.size(0) && q.size(1) == k.size(1) && q.size(3) == k.size(3), who,
              ": q ", q.sizes(), " and k ", k.sizes(), " must agree on B, H and D");
  TORCH_CHECK(q.scalar_type() == k.scalar_type() && q.scalar_type() == v.scalar_type(), who,
              ": q, k, v must have one dtype");
  const std::int64_t H = q.size(1), BH = q.size(0) * H, n = static_cast<std::int64_t>(layouts.size());
  TORCH_CHECK(n == 1 || n == H || n == BH, who, ": layouts must hold 1 layout (shared), H = ", H,
              " (one per head) or B*H = ", BH, " (one per (b, h)), got ", n);
  LayoutViews views;
  views.index.resize(BH);
  std::vector<const BlockLayout*> seen;
  // Layouts that share one masks tensor (hard gating's composed rows point into the candidates'
  // masks) have their masks indexed once per call.
  struct Indexed {
    const void* data;
    std::int64_t n;
    std::size_t view;
  };
  std::vector<Indexed> indexed_masks;
  for (std::int64_t bh = 0; bh < BH; ++bh) {
    const auto& layout = layouts[n == 1 ? 0 : n == BH ? bh : bh % H];
    TORCH_CHECK(layout != nullptr, who, ": layouts must not contain null pointers");
    const auto it = std::find(seen.begin(), seen.end(), layout.get());
    if (it != seen.end()) {
      views.index[bh] = it - seen.begin();
      continue;
    }
    check_layout(who, *layout, q.size(2), k.size(2));
    views.index[bh] = static_cast<std::int64_t>(seen.size());
    seen.push_back(layout.get());
    const bool has_masks = layout->masks.defined() && layout->masks.numel() > 0;
    const void* data = has_masks ? layout->masks.data_ptr() : nullptr;
    const std::int64_t n_masks = has_masks ? layout->masks.size(0) : 0;
    const auto same = std::find_if(indexed_masks.begin(), indexed_masks.end(),
                                   [&](const Indexed& e) { return e.data == data && e.n == n_masks; });
    const bool reuse = has_masks && same != indexed_masks.end();
    views.distinct.push_back(LayoutView::of(*layout, with_transpose, reuse ? &views.distinct[same->view] : nullptr));
    if (has_masks && !reuse) indexed_masks.push_back({data, n_masks, views.distinct.size() - 1});
  }
  return views;
}

std::vector<LayoutView> LayoutViews::each() const {
  if (distinct.size() == 1) return {distinct[0]};
  std::vector<LayoutView> out;
  for (std::int64_t i : index) out.push_back(distinct[i]);
  return out;
}

LayoutSet per_slice(const LayoutSet& layouts, std::int64_t B, std::int64_t H) {
  if (layouts.size() == 1 || static_cast<std::int64_t>(layouts.size()) == B * H) return layouts;
  LayoutSet out;
  for (std::int64_t b = 0; b < B; ++b) out.insert(out.end(), layouts.begin(), layouts.end());
  return out;
}

namespace {

// One 16-column panel: out[d][lane] = in[lane][d] for lane < width, 0 for the padding lanes.
template <typename scalar_t>
void pack_panel_plain(const scalar_t* in, scalar_t* out, std::int64_t width, std::int64_t D,
                      std::int64_t d_begin = 0) {
  for (std::int64_t lane = 0; lane < kPanelWidth; ++lane)
    for (std::int64_t d = d_begin; d < D; ++d)
      out[d * kPanelWidth + lane] = lane < width ? in[lane * D + d] : scalar_t(0);
}

// float, full panels: 8 x 8 register transposes (the scalar loop above, a strided store per
// element, took ~4% of a sparse forward; this is ~4x faster).
__attribute__((target("avx2,fma"))) void pack_panel_avx2(const float* in, float* out,
                                                         std::int64_t D) {
  const std::int64_t d_vec = D / 8 * 8;
  for (std::int64_t lane0 = 0; lane0 < kPanelWidth; lane0 += 8)
    for (std::int64_t d0 = 0; d0 < d_vec; d0 += 8) {
      __m256 r[8];
      for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(in + (lane0 + i) * D + d0);
      const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
      const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
      const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
      const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
      const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
      const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
      const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
      const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
      const __m256 c[8] = {_mm256_permute2f128_ps(u0, u4, 0x20), _mm256_permute2f128_ps(u1, u5, 0x20),
                           _mm256_permute2f128_ps(u2, u6, 0x20), _mm256_permute2f128_ps(u3, u7, 0x20),
                           _mm256_permute2f128_ps(u0, u4, 0x31), _mm256_permute2f128_ps(u1, u5, 0x31),
                           _mm256_permute2f128_ps(u2, u6, 0x31), _mm256_permute2f128_ps(u3, u7, 0x31)};
      for (int i = 0; i < 8; ++i) _mm256_storeu_ps(out + (d0 + i) * kPanelWidth + lane0, c[i]);
    }
  if (d_vec < D) pack_panel_plain(in, out, kPanelWidth, D, d_vec);
}

void pack_panel(const float* in, float* out, std::int64_t width, std::int64_t D) {
  static const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (avx2 && width == kPanelWidth) pack_panel_avx2(in, out, D);
  else pack_panel_plain(in, out, width, D);
}
void pack_panel(const double* in, double* out, std::int64_t width, std::int64_t D) {
  pack_panel_plain(in, out, width, D);
}

}  // namespace

template <typename scalar_t>
void pack_panels(const scalar_t* x, std::int64_t rows, std::int64_t D, scalar_t* out) {
  for (std::int64_t row0 = 0; row0 < rows; row0 += kPanelWidth)
    pack_panel(x + row0 * D, out + row0 * D, std::min(kPanelWidth, rows - row0), D);
}
template void pack_panels<float>(const float*, std::int64_t, std::int64_t, float*);
template void pack_panels<double>(const double*, std::int64_t, std::int64_t, double*);


WorkList WorkList::of(const LayoutViews& views, std::int64_t BH, bool by_key_tile) {
  WorkList work;
  std::vector<std::int64_t> costs;
  for (std::int64_t bh = 0; bh < BH; ++bh) {
    const LayoutView& L = views.of(bh);
    const std::int64_t n_tiles = by_key_tile ? L.n_k_tiles : L.n_q_tiles;
    for (std::int64_t t = 0; t < n_tiles; ++t) {
      work.bh.push_back(bh);
      work.tile.push_back(t);
      costs.push_back(by_key_tile ? L.t_col_ptr[t + 1] - L.t_col_ptr[t] : L.row_ptr[t + 1] - L.row_ptr[t]);
    }
  }
  work.n_chunks = std::max<std::int64_t>(1, at::get_num_threads());
  work.bounds = split_by_cost(costs, work.n_chunks);
  for (const LayoutView& L : views.distinct) work.max_tile = std::max(work.max_tile, L.tile);
  return work;
}

std::vector<std::int64_t> split_by_cost(const std::vector<std::int64_t>& costs,
                                        std::int64_t n_chunks) {
  const std::int64_t n = static_cast<std::int64_t>(costs.size());
  std::int64_t total = 0;
  for (auto c : costs) total += c + 1;  // +1: every item has a fixed cost too
  std::vector<std::int64_t> bounds(n_chunks + 1, n);
  bounds[0] = 0;
  std::int64_t item = 0, acc = 0;
  for (std::int64_t chunk = 1; chunk < n_chunks; ++chunk) {
    const std::int64_t target = total * chunk / n_chunks;
    while (item < n && acc + costs[item] + 1 <= target) acc += costs[item++] + 1;
    bounds[chunk] = item;
  }
  return bounds;
}

}  // namespace attnlab::kernels::cpu
