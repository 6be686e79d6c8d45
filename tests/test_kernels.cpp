// Kernels against the naive reference: BlockLayout round trips, block-sparse forward on odd
// sizes and many layouts (random tiles, causal diagonals, empty rows, dense), per-(b,h)
// layouts, gradients in float64 (and fp32 at T = 1025), finite differences on a tiny case,
// and refusals of bad input. Layouts are built from dense bool masks made here (not through
// attnlab::masks) so these tests depend on the kernels alone.
#include <attnlab/kernels/attention.hpp>

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/autograd.h>

#include "catch.hpp"

#include "kernel_support.hpp"

#include <cmath>
#include <memory>
#include <string>
#include <vector>

using namespace attnlab::kernels;

namespace {

using attnlab::test::causal_mask;
using attnlab::test::finite_or_zero;
using attnlab::test::max_abs_diff;
using attnlab::test::one_layout;
using attnlab::test::random_layout_mask;
using attnlab::test::reference_lse;

struct Qkv {
  at::Tensor q, k, v;
};
Qkv random_qkv(std::int64_t B, std::int64_t H, std::int64_t T, std::int64_t S, std::int64_t D,
               at::ScalarType dtype) {
  return {at::randn({B, H, T, D}, at::kDouble).to(dtype),
          at::randn({B, H, S, D}, at::kDouble).to(dtype),
          at::randn({B, H, S, D}, at::kDouble).to(dtype)};
}

}  // namespace

TEST_CASE("BlockLayout round-trips dense masks and counts densities", "[kernels][layout]") {
  at::manual_seed(1);
  for (std::int64_t tile : {32, 64, 128}) {
    for (auto [T, S] : {std::pair<std::int64_t, std::int64_t>{1, 1}, {97, 97}, {200, 75},
                        {257, 300}}) {
      INFO("tile " << tile << " T " << T << " S " << S);
      at::Tensor allowed = random_layout_mask(T, S, tile, 0.5);
      BlockLayout layout = BlockLayout::from_dense(allowed, tile);
      REQUIRE(layout.to_dense().equal(allowed));
      CHECK(layout.element_density() ==
            Approx(allowed.sum().item<double>() / static_cast<double>(T * S)));
      // Block density: fraction of tiles holding at least one allowed element.
      const std::int64_t nq = layout.n_q_tiles(), nk = layout.n_k_tiles();
      at::Tensor padded = at::zeros({nq * tile, nk * tile}, at::kBool);
      padded.slice(0, 0, T).slice(1, 0, S).copy_(allowed);
      const double nonempty =
          padded.view({nq, tile, nk, tile}).any(3).any(1).sum().item<double>();
      CHECK(layout.block_density() == Approx(nonempty / static_cast<double>(nq * nk)));
      CHECK(layout.row_ptr.numel() == nq + 1);
    }
  }
}

TEST_CASE("BlockLayout marks causal off-diagonal tiles full and diagonal tiles partial",
          "[kernels][layout]") {
  BlockLayout layout = BlockLayout::from_dense(causal_mask(256, 256), 64);
  REQUIRE(layout.nnz() == 10);  // 4 + 3 + 2 + 1 tiles
  CHECK(layout.masks.size(0) == 4);
  const auto* tm = layout.tile_mask.data_ptr<std::int64_t>();
  const auto* ci = layout.col_idx.data_ptr<std::int64_t>();
  const auto* rp = layout.row_ptr.data_ptr<std::int64_t>();
  for (std::int64_t i = 0; i < 4; ++i)
    for (std::int64_t e = rp[i]; e < rp[i + 1]; ++e) CHECK((tm[e] >= 0) == (ci[e] == i));
  CHECK(layout.block_density() == Approx(10.0 / 16.0));
  // An edge tile whose valid part is all allowed is full even though it is padded.
  BlockLayout dense = BlockLayout::from_dense(at::ones({97, 70}, at::kBool), 64);
  CHECK(dense.masks.size(0) == 0);
  CHECK(dense.nnz() == 4);
  CHECK(dense.element_density() == Approx(1.0));
}

TEST_CASE("BlockLayout::from_block_selection builds what from_dense builds from the expanded mask",
          "[kernels][layout]") {
  at::manual_seed(12);
  for (std::int64_t T : {1, 37, 64, 200}) {
    for (std::int64_t tile : {16, 64}) {
      INFO("T " << T << " tile " << tile);
      const std::int64_t nk = (T + tile - 1) / tile;
      at::Tensor selected = at::rand({T, nk}) < 0.4;
      // Every query keeps its own block, as a selection would (and one row keeps every block).
      const at::Tensor own = at::arange(T, at::kLong).div(tile, "floor");
      selected.index_put_({at::arange(T, at::kLong), own}, true);
      selected[T - 1].fill_(true);
      const at::Tensor key_block = at::arange(T, at::kLong).div(tile, "floor");
      const at::Tensor expanded = selected.index_select(1, key_block) & at::ones({T, T}, at::kBool).tril();
      const BlockLayout fast = BlockLayout::from_block_selection(selected, T, tile);
      REQUIRE(fast.to_dense().equal(expanded));
      const BlockLayout slow = BlockLayout::from_dense(expanded, tile);
      REQUIRE(fast.nnz() == slow.nnz());
      REQUIRE(fast.block_density() == Approx(slow.block_density()));
      REQUIRE(fast.element_density() == Approx(slow.element_density()));
      Qkv x = random_qkv(1, 1, T, T, 16, at::kFloat);
      auto [a, lse_a] = block_sparse_forward(x.q, x.k, x.v, {std::make_shared<const BlockLayout>(fast)}, 0.25);
      auto [b, lse_b] = block_sparse_forward(x.q, x.k, x.v, {std::make_shared<const BlockLayout>(slow)}, 0.25);
      REQUIRE(max_abs_diff(a, b) < 1e-6);
    }
  }
}

TEST_CASE("block_sparse_forward matches the reference on odd sizes and layouts",
          "[kernels][forward]") {
  at::manual_seed(2);
  at::set_num_threads(2);
  const std::int64_t tiles[] = {32, 64, 128};
  const char* patterns[] = {"random", "causal", "dense"};
  int case_index = 0;
  for (std::int64_t T : {1, 97, 1025}) {
    for (std::int64_t D : {59, 64, 128}) {
      const std::int64_t tile = tiles[case_index % 3];
      const std::string pattern = patterns[(case_index / 3 + case_index) % 3];
      ++case_index;
      const std::int64_t S = T == 97 ? 131 : T;  // one non-square shape
      at::Tensor allowed = pattern == "dense"    ? at::ones({T, S}, at::kBool)
                           : pattern == "causal" ? causal_mask(T, S)
                                                 : random_layout_mask(T, S, tile, 0.4);
      INFO("T " << T << " S " << S << " D " << D << " tile " << tile << " " << pattern);
      Qkv x = random_qkv(1, 2, T, S, D, at::kDouble);
      const double scale = 1.0 / std::sqrt(static_cast<double>(D));
      at::Tensor expected = reference_attention(x.q, x.k, x.v, allowed, scale);
      LayoutSet layouts = one_layout(allowed, tile);

      auto [out32, lse32] = block_sparse_forward(x.q.to(at::kFloat), x.k.to(at::kFloat),
                                                 x.v.to(at::kFloat), layouts, scale);
      CHECK(out32.scalar_type() == at::kFloat);
      CHECK(max_abs_diff(out32, expected) < 1e-4);
      // lse against the reference's log-sum-exp (-inf on rows with no allowed key).
      at::Tensor ref_lse = reference_lse(x.q, x.k, allowed, scale);
      at::Tensor finite = at::isfinite(ref_lse);
      CHECK(at::isfinite(lse32).equal(finite));
      CHECK(max_abs_diff(at::where(finite, lse32.to(at::kDouble), at::zeros_like(ref_lse)),
                         at::where(finite, ref_lse, at::zeros_like(ref_lse))) < 1e-4);
      if (T <= 97) {  // float64 path on the small cases (plain loops: slow on big ones)
        auto [out64, lse64] = block_sparse_forward(x.q, x.k, x.v, layouts, scale);
        CHECK(max_abs_diff(out64, expected) < 1e-12);
      }
    }
  }
}

TEST_CASE("block_sparse_forward takes one layout per (b, h)", "[kernels][forward]") {
  at::manual_seed(3);
  const std::int64_t B = 2, H = 3, T = 150, D = 40;
  Qkv x = random_qkv(B, H, T, T, D, at::kDouble);
  LayoutSet layouts;
  std::vector<at::Tensor> masks;
  for (std::int64_t bh = 0; bh < B * H; ++bh) {
    const std::int64_t tile = bh % 2 ? 32 : 64;  // tiles may differ between heads too
    masks.push_back(bh == 0 ? at::ones({T, T}, at::kBool) : random_layout_mask(T, T, tile, 0.5));
    layouts.push_back(std::make_shared<const BlockLayout>(BlockLayout::from_dense(masks.back(), tile)));
  }
  at::Tensor allowed = at::stack(masks).view({B, H, T, T});
  at::Tensor expected = reference_attention(x.q, x.k, x.v, allowed, 0.2);
  auto [out, lse] = block_sparse_forward(x.q, x.k, x.v, layouts, 0.2);
  CHECK(max_abs_diff(out, expected) < 1e-12);
  auto [out32, lse32] = block_sparse_forward(x.q.to(at::kFloat), x.k.to(at::kFloat),
                                             x.v.to(at::kFloat), layouts, 0.2);
  CHECK(max_abs_diff(out32, expected) < 1e-5);
}

// Hard gating's composed layouts all point into one masks tensor (their tile_mask indices
// offset into it), and the kernel indexes a shared masks tensor once per call: each (b, h) must
// still read its own partial tiles, forward and backward.
TEST_CASE("per-(b, h) layouts that share one masks tensor match the reference, with gradients",
          "[kernels][backward]") {
  at::manual_seed(13);
  const std::int64_t B = 2, H = 2, T = 143, D = 24, tile = 32;
  Qkv x = random_qkv(B, H, T, T, D, at::kDouble);
  std::vector<at::Tensor> allowed, own_masks;
  std::vector<BlockLayout> own;
  for (std::int64_t bh = 0; bh < B * H; ++bh) {
    allowed.push_back(random_layout_mask(T, T, tile, 0.6).logical_and(causal_mask(T, T)).logical_or(at::eye(T, at::kBool)));
    own.push_back(BlockLayout::from_dense(allowed.back(), tile));
    own_masks.push_back(own.back().masks);
  }
  const at::Tensor shared = at::cat(own_masks).contiguous();
  LayoutSet layouts;
  std::int64_t offset = 0;
  for (const BlockLayout& layout : own) {
    auto composed = std::make_shared<BlockLayout>(layout);
    composed->tile_mask = at::where(layout.tile_mask >= 0, layout.tile_mask + offset, layout.tile_mask);
    composed->masks = shared;
    offset += layout.masks.size(0);
    layouts.push_back(composed);
  }
  REQUIRE(offset > B * H);  // every layout has partial tiles of its own
  for (auto& t : {&x.q, &x.k, &x.v}) t->requires_grad_(true);
  const at::Tensor expected = reference_attention(x.q, x.k, x.v, at::stack(allowed).view({B, H, T, T}), 0.3);
  const at::Tensor out = block_sparse_attention(x.q, x.k, x.v, layouts, 0.3);
  CHECK(max_abs_diff(out, expected) < 1e-12);
  const at::Tensor g = at::randn_like(expected);
  const auto want = torch::autograd::grad({expected}, {x.q, x.k, x.v}, {g});
  const auto got = torch::autograd::grad({out}, {x.q, x.k, x.v}, {g});
  for (int i = 0; i < 3; ++i) CHECK(max_abs_diff(got[i], want[i]) < 1e-10);
}

TEST_CASE("rows with no allowed key give zero output, -inf lse and zero gradients",
          "[kernels][empty]") {
  at::manual_seed(4);
  const std::int64_t T = 70, D = 16;
  at::Tensor allowed = causal_mask(T, T);
  allowed.slice(0, 10, 40).fill_(false);
  Qkv x = random_qkv(1, 1, T, T, D, at::kDouble);
  for (auto& t : {&x.q, &x.k, &x.v}) t->requires_grad_(true);
  at::Tensor out = block_sparse_attention(x.q, x.k, x.v, one_layout(allowed, 32), 0.25);
  CHECK(out.slice(2, 10, 40).abs().max().item<double>() == 0.0);
  auto [out_nograd, lse] = block_sparse_forward(x.q.detach(), x.k.detach(), x.v.detach(),
                                                one_layout(allowed, 32), 0.25);
  CHECK(at::isneginf(lse.slice(2, 10, 40)).all().item<bool>());
  auto grads = torch::autograd::grad({out}, {x.q, x.k, x.v}, {at::randn_like(out)});
  for (const auto& g : grads) CHECK(at::isfinite(g).all().item<bool>());
  CHECK(grads[0].slice(2, 10, 40).abs().max().item<double>() == 0.0);
  // An all-false layout: everything zero, nothing NaN.
  at::Tensor none = at::zeros({T, T}, at::kBool);
  at::Tensor out_none = block_sparse_attention(x.q, x.k, x.v, one_layout(none, 64), 0.25);
  CHECK(out_none.abs().max().item<double>() == 0.0);
  auto grads_none = torch::autograd::grad({out_none.sum()}, {x.q, x.k, x.v});
  for (const auto& g : grads_none) CHECK(g.abs().max().item<double>() == 0.0);
}

TEST_CASE("block_sparse_attention gradients match the reference in float64",
          "[kernels][backward]") {
  at::manual_seed(5);
  struct Case { std::int64_t T, S, D, tile; const char* pattern; };
  const Case cases[] = {{1, 1, 59, 32, "causal"},      {97, 97, 64, 32, "random"},
                        {97, 131, 59, 64, "random"},   {200, 200, 64, 64, "causal"},
                        {130, 130, 128, 128, "dense"}, {257, 257, 32, 32, "random"}};
  for (const Case& c : cases) {
    INFO("T " << c.T << " S " << c.S << " D " << c.D << " tile " << c.tile << " " << c.pattern);
    const std::string pattern = c.pattern;
    at::Tensor allowed = pattern == "dense"    ? at::ones({c.T, c.S}, at::kBool)
                         : pattern == "causal" ? causal_mask(c.T, c.S)
                                               : random_layout_mask(c.T, c.S, c.tile, 0.5);
    Qkv x = random_qkv(2, 2, c.T, c.S, c.D, at::kDouble);
    for (auto& t : {&x.q, &x.k, &x.v}) t->requires_grad_(true);
    const double scale = 0.7 / std::sqrt(static_cast<double>(c.D));
    at::Tensor expected = reference_attention(x.q, x.k, x.v, allowed, scale);
    at::Tensor out = block_sparse_attention(x.q, x.k, x.v, one_layout(allowed, c.tile), scale);
    CHECK(max_abs_diff(out, expected) < 1e-12);
    at::Tensor g = at::randn_like(expected);
    auto want = torch::autograd::grad({expected}, {x.q, x.k, x.v}, {g});
    auto got = torch::autograd::grad({out}, {x.q, x.k, x.v}, {g});
    CHECK(max_abs_diff(got[0], want[0]) < 1e-10);
    CHECK(max_abs_diff(got[1], want[1]) < 1e-10);
    CHECK(max_abs_diff(got[2], want[2]) < 1e-10);
  }
}

TEST_CASE("block_sparse_attention_lse: a loss on out and lse has the reference gradients",
          "[kernels][backward]") {
  // The blend mixture trains through lse (its weights are w_k e^lse_k): the lse gradient
  // enters the backward as dS = P (dP - delta + dlse). Rows with no allowed key (lse = -inf)
  // take no gradient through lse.
  at::manual_seed(9);
  const std::int64_t T = 161, D = 40, tile = 32;
  const at::Tensor allowed = random_layout_mask(T, T, tile, 0.5);
  Qkv x = random_qkv(2, 1, T, T, D, at::kDouble);
  for (auto& t : {&x.q, &x.k, &x.v}) t->requires_grad_(true);
  const at::Tensor g = at::randn({2, 1, T, D}, at::kDouble), h = at::randn({2, 1, T}, at::kDouble);
  const double scale = 0.3;
  at::Tensor want_loss = (reference_attention(x.q, x.k, x.v, allowed, scale) * g).sum() +
                         (finite_or_zero(reference_lse(x.q, x.k, allowed, scale)) * h).sum();
  auto want = torch::autograd::grad({want_loss}, {x.q, x.k, x.v});
  auto [out, lse] = block_sparse_attention_lse(x.q, x.k, x.v, one_layout(allowed, tile), scale);
  CHECK(at::isneginf(lse).any().item<bool>());  // the case has empty rows
  auto got = torch::autograd::grad({(out * g).sum() + (finite_or_zero(lse) * h).sum()},
                                   {x.q, x.k, x.v});
  for (int i = 0; i < 3; ++i) {
    INFO("gradient " << "qkv"[i]);
    CHECK(max_abs_diff(got[i], want[i]) < 1e-10);
  }
}

TEST_CASE("gradients do not depend on how (b, h) slices are split between threads",
          "[kernels][backward]") {
  // The backward accumulates dq straight into the output for a (b, h) one thread chunk owns
  // and through private buffers for a (b, h) cut by a chunk boundary: with B*H = 1 and 3 and
  // 1-3 threads every combination of owned and cut slices occurs.
  at::manual_seed(11);
  const std::int64_t T = 257, D = 33, tile = 32;
  const at::Tensor causal = causal_mask(T, T);
  const at::Tensor sparse = random_layout_mask(T, T, tile, 0.4);
  const int threads_before = at::get_num_threads();
  for (std::int64_t heads : {1, 3}) {
    LayoutSet layouts;
    std::vector<at::Tensor> allowed_per_head;
    for (std::int64_t h = 0; h < heads; ++h) {
      const at::Tensor& allowed = h % 2 ? sparse : causal;
      layouts.push_back(std::make_shared<const BlockLayout>(BlockLayout::from_dense(allowed, tile)));
      allowed_per_head.push_back(allowed);
    }
    const at::Tensor allowed = at::stack(allowed_per_head).view({1, heads, T, T});
    Qkv x = random_qkv(1, heads, T, T, D, at::kDouble);
    for (auto& t : {&x.q, &x.k, &x.v}) t->requires_grad_(true);
    const at::Tensor g = at::randn({1, heads, T, D}, at::kDouble);
    auto want = torch::autograd::grad({reference_attention(x.q, x.k, x.v, allowed, 0.2)},
                                      {x.q, x.k, x.v}, {g});
    for (int threads : {1, 2, 3}) {
      INFO("heads " << heads << " threads " << threads);
      at::set_num_threads(threads);
      auto got = torch::autograd::grad({block_sparse_attention(x.q, x.k, x.v, layouts, 0.2)},
                                       {x.q, x.k, x.v}, {g});
      for (int i = 0; i < 3; ++i) {
        INFO("gradient " << "qkv"[i]);
        CHECK(max_abs_diff(got[i], want[i]) < 1e-10);
      }
    }
  }
  at::set_num_threads(threads_before);
}

TEST_CASE("block_sparse_attention fp32 gradients at T = 1025 with per-head layouts",
          "[kernels][backward]") {
  at::manual_seed(6);
  at::set_num_threads(2);
  const std::int64_t T = 1025, D = 128, tile = 128;
  at::Tensor causal = causal_mask(T, T);
  at::Tensor sparse = random_layout_mask(T, T, tile, 0.3);
  LayoutSet layouts = {std::make_shared<const BlockLayout>(BlockLayout::from_dense(causal, tile)),
                       std::make_shared<const BlockLayout>(BlockLayout::from_dense(sparse, tile))};
  at::Tensor allowed = at::stack({causal, sparse}).view({1, 2, T, T});
  Qkv x = random_qkv(1, 2, T, T, D, at::kDouble);
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  at::Tensor g = at::randn({1, 2, T, D}, at::kDouble);
  for (auto& t : {&x.q, &x.k, &x.v}) t->requires_grad_(true);
  auto want = torch::autograd::grad({reference_attention(x.q, x.k, x.v, allowed, scale)},
                                    {x.q, x.k, x.v}, {g});
  at::Tensor q32 = x.q.detach().to(at::kFloat).requires_grad_(true);
  at::Tensor k32 = x.k.detach().to(at::kFloat).requires_grad_(true);
  at::Tensor v32 = x.v.detach().to(at::kFloat).requires_grad_(true);
  at::Tensor out = block_sparse_attention(q32, k32, v32, layouts, scale);
  auto got = torch::autograd::grad({out}, {q32, k32, v32}, {g.to(at::kFloat)});
  for (int i = 0; i < 3; ++i) {
    INFO("gradient " << "qkv"[i]);
    CHECK(max_abs_diff(got[i], want[i]) < 2e-3 * want[i].abs().max().item<double>());
  }
}

TEST_CASE("fp32 kernels on tiles and head sizes that are not multiples of 16", "[kernels][backward]") {
  // The SIMD products work in 16-lane panels: tiles of 24 or 40 and D = 37 or 80 leave
  // partial panels in the scores, in P V and in every backward product.
  at::manual_seed(8);
  at::set_num_threads(2);
  struct Case { std::int64_t T, D, tile; const char* pattern; };
  const Case cases[] = {{100, 37, 24, "causal"}, {131, 80, 40, "random"}, {77, 64, 24, "random"},
                        {200, 37, 40, "causal"}};
  for (const Case& c : cases) {
    INFO("T " << c.T << " D " << c.D << " tile " << c.tile << " " << c.pattern);
    const std::string pattern = c.pattern;
    at::Tensor allowed = pattern == "causal" ? causal_mask(c.T, c.T) : random_layout_mask(c.T, c.T, c.tile, 0.5);
    Qkv x = random_qkv(1, 3, c.T, c.T, c.D, at::kDouble);
    for (auto& t : {&x.q, &x.k, &x.v}) t->requires_grad_(true);
    const double scale = 1.0 / std::sqrt(static_cast<double>(c.D));
    at::Tensor expected = reference_attention(x.q, x.k, x.v, allowed, scale);
    at::Tensor g = at::randn_like(expected);
    auto want = torch::autograd::grad({expected}, {x.q, x.k, x.v}, {g});
    at::Tensor q32 = x.q.detach().to(at::kFloat).requires_grad_(true);
    at::Tensor k32 = x.k.detach().to(at::kFloat).requires_grad_(true);
    at::Tensor v32 = x.v.detach().to(at::kFloat).requires_grad_(true);
    at::Tensor out = block_sparse_attention(q32, k32, v32, one_layout(allowed, c.tile), scale);
    CHECK(max_abs_diff(out, expected) < 1e-4);
    auto got = torch::autograd::grad({out}, {q32, k32, v32}, {g.to(at::kFloat)});
    for (int i = 0; i < 3; ++i) {
      INFO("gradient " << "qkv"[i]);
      CHECK(max_abs_diff(got[i], want[i]) < 1e-3 * (1 + want[i].abs().max().item<double>()));
    }
  }
}

TEST_CASE("block_sparse_attention gradients agree with finite differences",
          "[kernels][backward]") {
  at::manual_seed(7);
  const std::int64_t T = 5, S = 7, D = 3;
  at::Tensor allowed = causal_mask(T, S);
  allowed[1].fill_(false);
  LayoutSet layouts = one_layout(allowed, 4);  // tiny tile: full, partial and edge tiles
  Qkv x = random_qkv(1, 1, T, S, D, at::kDouble);
  at::Tensor weights = at::randn({1, 1, T, D}, at::kDouble);
  auto loss = [&](const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
    return (block_sparse_attention(q, k, v, layouts, 0.9) * weights).sum();
  };
  for (auto& t : {&x.q, &x.k, &x.v}) t->requires_grad_(true);
  auto grads = torch::autograd::grad({loss(x.q, x.k, x.v)}, {x.q, x.k, x.v});
  const double eps = 1e-6;
  for (int which = 0; which < 3; ++which) {
    at::Tensor base = (which == 0 ? x.q : which == 1 ? x.k : x.v).detach();
    at::Tensor numeric = at::zeros_like(base);
    for (std::int64_t i = 0; i < base.numel(); ++i) {
      at::Tensor plus = base.clone(), minus = base.clone();
      plus.view(-1)[i] += eps;
      minus.view(-1)[i] -= eps;
      auto eval = [&](const at::Tensor& t) {
        return loss(which == 0 ? t : x.q.detach(), which == 1 ? t : x.k.detach(),
                    which == 2 ? t : x.v.detach()).item<double>();
      };
      numeric.view(-1)[i] = (eval(plus) - eval(minus)) / (2 * eps);
    }
    INFO("gradient " << "qkv"[which]);
    CHECK(max_abs_diff(grads[which], numeric) < 1e-7);
  }
}

TEST_CASE("block-sparse kernels refuse bad input with messages naming the constraint",
          "[kernels][errors]") {
  Qkv x = random_qkv(1, 2, 10, 10, 8, at::kFloat);
  LayoutSet wrong_T = one_layout(causal_mask(12, 10), 32);
  CHECK_THROWS_WITH(block_sparse_forward(x.q, x.k, x.v, wrong_T, 1.0),
                    Catch::Contains("layout is for T=12"));
  LayoutSet three = one_layout(causal_mask(10, 10), 32);
  three.push_back(three[0]);
  three.push_back(three[0]);
  CHECK_THROWS_WITH(block_sparse_forward(x.q, x.k, x.v, three, 1.0),
                    Catch::Contains("B*H = 2"));
  CHECK_THROWS_WITH(BlockLayout::from_dense(at::ones({4}, at::kBool), 32),
                    Catch::Contains("[T, S]"));
  CHECK_THROWS_WITH(BlockLayout::from_dense(at::ones({4, 4}, at::kBool), 0),
                    Catch::Contains("tile must be in [1, 512]"));
}
