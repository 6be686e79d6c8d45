// The block-selection path (kv_num_blocks / kv_indices) against the float64 reference and
// against the BlockLayout path on the same selection, with gradients, on sizes that are not
// multiples of the tile; and the batched builder (pooled scores, forced diagonal and sinks,
// top-k) against a per-(b, h) loop written plainly here.
#include <attnlab/kernels/attention.hpp>

#include <torch/csrc/autograd/autograd.h>

#include "catch.hpp"

#include "kernel_support.hpp"

#include <cmath>
#include <set>
#include <vector>

using namespace attnlab::kernels;
using attnlab::test::max_abs_diff;

namespace {

// A random valid block list: each query tile keeps its diagonal with probability 0.8 and each
// earlier tile with probability `keep`, in shuffled order, padded with garbage past the count.
BlockSelection random_selection(std::int64_t B, std::int64_t H, std::int64_t T, std::int64_t tile, double keep) {
  const std::int64_t nq = (T + tile - 1) / tile;
  at::Tensor num = at::zeros({B, H, nq}, at::kInt), idx = at::full({B, H, nq, nq}, 7, at::kInt);
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t h = 0; h < H; ++h)
      for (std::int64_t i = 0; i < nq; ++i) {
        std::vector<std::int32_t> chosen;
        for (std::int64_t j = i; j >= 0; --j)
          if (at::rand({1}).item<double>() < (j == i ? 0.8 : keep)) chosen.push_back(static_cast<std::int32_t>(j));
        num[b][h][i] = static_cast<std::int32_t>(chosen.size());
        for (std::size_t e = 0; e < chosen.size(); ++e) idx[b][h][i][e] = chosen[e];
      }
  return {num, idx, tile};
}

// The same selection as one BlockLayout per (b, h), through the dense mask.
LayoutSet as_layouts(const BlockSelection& sel, std::int64_t T) {
  const at::Tensor dense = block_list_to_dense(sel, T);
  LayoutSet out;
  for (std::int64_t b = 0; b < dense.size(0); ++b)
    for (std::int64_t h = 0; h < dense.size(1); ++h)
      out.push_back(std::make_shared<const BlockLayout>(BlockLayout::from_dense(dense[b][h].contiguous(), sel.tile)));
  return out;
}

}  // namespace

TEST_CASE("block_select_attention matches the float64 reference with gradients on odd sizes",
          "[kernels][select]") {
  at::manual_seed(17);
  struct Case { std::int64_t T, D, tile; double keep; };
  const Case cases[] = {{1, 16, 32, 0.5}, {97, 59, 32, 0.5}, {200, 64, 64, 0.3}, {257, 32, 16, 0.4}, {130, 64, 64, 1.0}};
  for (const Case& c : cases) {
    INFO("T " << c.T << " D " << c.D << " tile " << c.tile);
    const BlockSelection sel = random_selection(2, 3, c.T, c.tile, c.keep);
    at::Tensor q = at::randn({2, 3, c.T, c.D}, at::kDouble).requires_grad_(true);
    at::Tensor k = at::randn({2, 3, c.T, c.D}, at::kDouble).requires_grad_(true);
    at::Tensor v = at::randn({2, 3, c.T, c.D}, at::kDouble).requires_grad_(true);
    const double scale = 0.8 / std::sqrt(static_cast<double>(c.D));
    const at::Tensor allowed = block_list_to_dense(sel, c.T);
    const at::Tensor expected = reference_attention(q, k, v, allowed, scale);
    const auto [out, lse] = block_select_attention_lse(q, k, v, sel, scale);
    CHECK(max_abs_diff(out, expected) < 1e-12);
    const at::Tensor ref_lse = attnlab::test::reference_lse(q, k, allowed, scale);
    CHECK(at::equal(at::isinf(lse), at::isinf(ref_lse)));  // rows of tiles that chose nothing
    CHECK(max_abs_diff(attnlab::test::finite_or_zero(lse), attnlab::test::finite_or_zero(ref_lse)) < 1e-12);
    const at::Tensor g = at::randn_like(expected), g_lse = at::randn_like(ref_lse);
    const auto want = torch::autograd::grad({expected, attnlab::test::finite_or_zero(ref_lse)}, {q, k, v},
                                            {g, g_lse});
    const auto got = torch::autograd::grad({out, lse}, {q, k, v}, {g, g_lse});
    for (int i = 0; i < 3; ++i) CHECK(max_abs_diff(got[i], want[i]) < 1e-10);
  }
}

TEST_CASE("block_select_attention equals the BlockLayout path on the same selection in fp32",
          "[kernels][select]") {
  at::manual_seed(3);
  for (std::int64_t T : {1000, 1024, 333}) {
    INFO("T " << T);
    const BlockSelection sel = random_selection(1, 4, T, 64, 0.3);
    at::Tensor q = at::randn({1, 4, T, 64}).requires_grad_(true);
    at::Tensor k = at::randn({1, 4, T, 64}).requires_grad_(true);
    at::Tensor v = at::randn({1, 4, T, 64}).requires_grad_(true);
    const at::Tensor a = block_select_attention(q, k, v, sel, 0.125);
    const at::Tensor b = block_sparse_attention(q, k, v, as_layouts(sel, T), 0.125);
    CHECK(max_abs_diff(a, b) < 1e-5);
    // The O(nnz) layouts a backend reports compute the same thing as the dense round trip.
    const at::Tensor c = block_sparse_attention(q, k, v, block_list_layouts(sel, T), 0.125);
    CHECK(max_abs_diff(a, c) < 1e-5);
    const auto reported = block_list_layouts(sel, T);
    CHECK(at::equal(reported[2]->to_dense(), block_list_to_dense(sel, T)[0][2]));
    const at::Tensor g = at::randn_like(a);
    const auto ga = torch::autograd::grad({a}, {q, k, v}, {g});
    const auto gb = torch::autograd::grad({b}, {q, k, v}, {g});
    for (int i = 0; i < 3; ++i) CHECK(max_abs_diff(ga[i], gb[i]) < 1e-4);
  }
}

TEST_CASE("select_blocks keeps the diagonal, the sinks and the best earlier blocks, batched",
          "[kernels][select]") {
  at::manual_seed(11);
  const std::int64_t B = 2, H = 3, T = 700, D = 16, tile = 64, nq = 11;  // the last block is short
  const at::Tensor q = at::randn({B, H, T, D}), k = at::randn({B, H, T, D});
  const at::Tensor scores = pooled_block_scores(q, k, tile, 0.25);
  REQUIRE(scores.sizes() == at::IntArrayRef({B, H, nq, nq}));
  // Mean pooling: keys over their block (the short last one over its 60 positions), queries over
  // the 64 positions ending at their block's first query (577..640 for block 10; q[0] for 0).
  const at::Tensor qbar = q[1][2].narrow(0, 577, 64).mean(0), kbar = k[1][2].narrow(0, 640, 60).mean(0);
  CHECK(std::abs(scores[1][2][10][10].item<double>() - 0.25 * qbar.dot(kbar).item<double>()) < 1e-5);
  CHECK(std::abs(scores[0][1][0][0].item<double>() - 0.25 * q[0][1][0].dot(k[0][1].narrow(0, 0, 64).mean(0)).item<double>()) < 1e-5);
  // Causal: a later token of block 3 does not change block 3's scores.
  at::Tensor q2 = q.clone();
  q2[0][0][200].add_(5.0);
  const at::Tensor scores2 = pooled_block_scores(q2, k, tile, 0.25);
  CHECK(at::equal(scores2.narrow(2, 0, 4), scores.narrow(2, 0, 4)));

  for (std::int64_t sink : {0, 2}) {
    const std::int64_t k_blocks = 4;
    const BlockSelection sel = select_blocks(scores, k_blocks, sink, tile);
    REQUIRE(sel.kv_indices.size(-1) == k_blocks);
    for (std::int64_t b = 0; b < B; ++b)
      for (std::int64_t h = 0; h < H; ++h)
        for (std::int64_t i = 0; i < nq; ++i) {
          INFO("sink " << sink << " b " << b << " h " << h << " i " << i);
          // The plain way: forced blocks, then earlier blocks by descending score.
          std::set<std::int64_t> want{i};
          for (std::int64_t j = 0; j < std::min(sink, i + 1); ++j) want.insert(j);
          std::vector<std::pair<float, std::int64_t>> rest;
          for (std::int64_t j = 0; j < i; ++j)
            if (!want.count(j)) rest.push_back({scores[b][h][i][j].item<float>(), j});
          std::sort(rest.rbegin(), rest.rend());
          for (const auto& [score, j] : rest)
            if (static_cast<std::int64_t>(want.size()) < k_blocks) want.insert(j);
          const std::int64_t n = sel.kv_num_blocks[b][h][i].item<std::int64_t>();
          REQUIRE(n == static_cast<std::int64_t>(want.size()));
          std::vector<std::int64_t> got;
          for (std::int64_t e = 0; e < n; ++e) got.push_back(sel.kv_indices[b][h][i][e].item<std::int64_t>());
          CHECK(got == std::vector<std::int64_t>(want.begin(), want.end()));  // ascending
        }
  }
}

TEST_CASE("block-selection path refuses bad block lists with messages naming the constraint",
          "[kernels][select]") {
  const at::Tensor q = at::randn({1, 2, 100, 8});
  const at::Tensor num = at::ones({1, 2, 2}, at::kInt), idx = at::zeros({1, 2, 2, 1}, at::kInt);
  CHECK_NOTHROW(block_select_forward(q, q, q, {num, idx, 64}, 1.0));
  CHECK_THROWS_WITH(block_select_forward(q, q, q, {num.to(at::kLong), idx, 64}, 1.0), Catch::Contains("int32"));
  CHECK_THROWS_WITH(block_select_forward(q, q, q, {num, idx, 32}, 1.0), Catch::Contains("nq = ceil(T / tile)"));
  CHECK_THROWS_WITH(block_select_forward(q, q, q, {num * 2, idx, 64}, 1.0), Catch::Contains("[0, kmax = 1]"));
  at::Tensor future = idx.clone();
  future[0][1][0][0] = 1;
  CHECK_THROWS_WITH(block_select_forward(q, q, q, {num, future, 64}, 1.0), Catch::Contains("no future tile"));
  const at::Tensor twice = at::zeros({1, 2, 2, 2}, at::kInt);
  CHECK_THROWS_WITH(block_select_forward(q, q, q, {num * 2, twice, 64}, 1.0), Catch::Contains("repeat"));
}
