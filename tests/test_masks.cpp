// Candidate mask library: grammar, every atom against a brute-force loop on odd T,
// unions/intersections, densities, cache identity, block layout round trip.
#include <attnlab/masks.hpp>

#include <ATen/ATen.h>
#include "catch.hpp"

#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace masks = attnlab::masks;

namespace {

using Rule = std::function<bool(std::int64_t t, std::int64_t s)>;

// The brute-force spelling of each atom, straight from the grammar comment in masks.hpp.
Rule causal() { return [](std::int64_t t, std::int64_t s) { return s <= t; }; }
Rule window(std::int64_t W) { return [W](std::int64_t t, std::int64_t s) { return s <= t && t - W < s; }; }
Rule stride(std::int64_t S, std::int64_t W = 0) {
  return [S, W](std::int64_t t, std::int64_t s) { return s <= t && (t - s) % S == 0 && (W == 0 || t - s < W); };
}
Rule sink(std::int64_t N) { return [N](std::int64_t t, std::int64_t s) { return s <= t && s < N; }; }
Rule block(std::int64_t B) { return [B](std::int64_t t, std::int64_t s) { return s <= t && t / B == s / B; }; }
Rule any_of(Rule a, Rule b) { return [a, b](std::int64_t t, std::int64_t s) { return a(t, s) || b(t, s); }; }
Rule all_of(Rule a, Rule b) { return [a, b](std::int64_t t, std::int64_t s) { return a(t, s) && b(t, s); }; }

// Compares element by element through a float copy (a different path than the bool ops).
void require_matches(const std::string& expression, const Rule& rule, std::int64_t T) {
  const at::Tensor m = masks::dense(expression, T);
  REQUIRE(m.dtype() == at::kBool);
  REQUIRE(m.sizes() == at::IntArrayRef({T, T}));
  const at::Tensor f = m.to(at::kFloat).contiguous();
  const float* p = f.data_ptr<float>();
  std::int64_t mismatches = 0;
  for (std::int64_t t = 0; t < T; ++t)
    for (std::int64_t s = 0; s < T; ++s)
      if ((p[t * T + s] != 0.0f) != rule(t, s)) ++mismatches;
  INFO(expression << " at T=" << T);
  REQUIRE(mismatches == 0);
}

std::string error_of(const std::string& expression) {
  try {
    masks::canonical(expression);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("canonical spelling sorts, deduplicates and simplifies", "[masks][grammar]") {
  CHECK(masks::canonical("window:256|sink:4") == "sink:4|window:256");
  CHECK(masks::canonical(" sink : 4 | window:256 ") == "sink:4|window:256");
  CHECK(masks::canonical("window:8|window:8") == "window:8");
  CHECK(masks::canonical("causal&window:8") == "window:8");
  CHECK(masks::canonical("window:8|causal") == "causal");
  CHECK(masks::canonical("block:32&stride:4|sink:2") == "sink:2|stride:4&block:32");
  CHECK(masks::canonical("stride:64:1024|window:64") == "window:64|stride:64:1024");
  CHECK(masks::canonical("random:0.25") == "random:0.25:64:0");
  CHECK(masks::canonical("random:0.1:16:7") == "random:0.1:16:7");
  // Same mask, same key: canonical is idempotent.
  const std::string c = masks::canonical("stride:8:64 & block:32 | sink:2 | window:3");
  CHECK(masks::canonical(c) == c);
  CHECK(masks::parse_list("causal, window:64 ,sink:4|window:16") ==
        std::vector<std::string>{"causal", "window:64", "sink:4|window:16"});
}

TEST_CASE("bad expressions are refused with a message naming the part", "[masks][grammar]") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "is empty"},
      {"windw:4", "windw:4: unknown mask 'windw'"},
      {"window:0", "window:0: W must be >= 1"},
      {"window", "window: expected window:W"},
      {"window:4:2", "expected window:W"},
      {"window:x", "W must be an integer"},
      {"stride:0", "stride:0: S must be >= 1"},
      {"stride:4:0", "W must be >= 1"},
      {"sink:-1", "N must be an integer"},
      {"block:0", "B must be >= 1"},
      {"random:1.5", "P must be a probability in [0, 1]"},
      {"random:abc", "P must be a probability"},
      {"random:0.5:0", "B must be >= 1"},
      {"causal||window:4", "empty operand of '|'"},
      {"sink:4&", "empty operand of '&'"},
      {"causal|windw:3", "unknown mask 'windw'"},
      {"window:4;", "unexpected character ';'"},
      {"causal:1", "'causal' without arguments"},
  };
  for (const auto& [expression, expected] : cases) {
    INFO("expression '" << expression << "'");
    CHECK_THAT(error_of(expression), Catch::Contains(expected));
  }
  CHECK_THROWS_WITH(masks::parse_list("causal,,window:4"), Catch::Contains("empty entry"));
  CHECK_THROWS_AS(masks::dense("causal", 0), std::invalid_argument);
  CHECK_THROWS_AS(masks::density("causal", 16, 0), std::invalid_argument);
}

TEST_CASE("every atom matches its brute-force definition on odd T", "[masks][atoms]") {
  for (std::int64_t T : {1, 97, 130}) {
    require_matches("causal", causal(), T);
    require_matches("window:1", window(1), T);
    require_matches("window:17", window(17), T);
    require_matches("window:500", window(500), T);
    require_matches("stride:7", stride(7), T);
    require_matches("stride:5:23", stride(5, 23), T);
    require_matches("sink:4", sink(4), T);
    require_matches("sink:300", sink(300), T);
    require_matches("block:32", block(32), T);
    require_matches("block:13", block(13), T);
  }
}

TEST_CASE("unions and intersections combine like the brute-force rules", "[masks][atoms]") {
  for (std::int64_t T : {1, 97, 130}) {
    require_matches("sink:4|window:16", any_of(sink(4), window(16)), T);
    require_matches("window:40&stride:3", all_of(window(40), stride(3)), T);
    require_matches("stride:8:64&block:32|sink:2", any_of(all_of(stride(8, 64), block(32)), sink(2)), T);
    require_matches("sink:2&window:3", all_of(sink(2), window(3)), T);  // rows past t=3 are empty
    require_matches("causal&block:20|window:5", any_of(block(20), window(5)), T);
  }
}

TEST_CASE("random blocks: seeded, tile-constant, diagonal kept, prefix-stable", "[masks][atoms]") {
  const std::int64_t T = 130, B = 16, n = (T + B - 1) / B;
  const at::Tensor m = masks::dense("random:0.5:16:3", T);
  const at::Tensor c = m.to(at::kFloat);
  std::int64_t kept_offdiag = 0, offdiag = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t j = 0; j <= i; ++j) {
      // Within the causal part of a tile, either all or nothing.
      const at::Tensor tile = c.narrow(0, i * B, std::min(B, T - i * B)).narrow(1, j * B, std::min(B, T - j * B));
      const at::Tensor causal_part = masks::dense("causal", T).to(at::kFloat)
                                         .narrow(0, i * B, tile.size(0)).narrow(1, j * B, tile.size(1));
      const bool kept = tile.sum().item<float>() > 0;
      REQUIRE(at::equal(tile, kept ? causal_part : at::zeros_like(tile)));
      if (i == j) REQUIRE(kept);
      else {
        ++offdiag;
        kept_offdiag += kept;
      }
    }
  }
  // 28 off-diagonal causal tiles at p = 0.5: anything in [4, 24] is overwhelmingly likely.
  CHECK(kept_offdiag >= 4);
  CHECK(kept_offdiag <= offdiag - 4);
  CHECK(at::equal(masks::dense("random:0.5:16:3", 97), m.narrow(0, 0, 97).narrow(1, 0, 97)));
  CHECK_FALSE(at::equal(masks::dense("random:0.5:16:4", T), m));
  CHECK(at::equal(masks::dense("random:0:16", T), masks::dense("block:16", T)));
  CHECK(at::equal(masks::dense("random:1:16", T), masks::dense("causal", T)));
}

TEST_CASE("densities count elements and non-empty tiles", "[masks][density]") {
  for (std::int64_t T : {1, 97, 130}) {
    for (std::int64_t tile : {16, 64}) {
      for (const std::string expression : {"causal", "sink:4|window:16", "stride:8:64&block:32|sink:2", "block:13"}) {
        const at::Tensor m = masks::dense(expression, T).to(at::kFloat);
        const float* p = m.contiguous().data_ptr<float>();
        double allowed = 0;
        for (std::int64_t i = 0; i < T * T; ++i) allowed += p[i];
        const std::int64_t n = (T + tile - 1) / tile;
        double tiles = 0;
        for (std::int64_t i = 0; i < n; ++i)
          for (std::int64_t j = 0; j < n; ++j) {
            bool any = false;
            for (std::int64_t t = i * tile; t < std::min(T, (i + 1) * tile); ++t)
              for (std::int64_t s = j * tile; s < std::min(T, (j + 1) * tile); ++s) any = any || p[t * T + s] != 0;
            tiles += any;
          }
        const attnlab::Density d = masks::density(expression, T, tile);
        INFO(expression << " T=" << T << " tile=" << tile);
        CHECK(d.element == Approx(allowed / double(T * T)));
        CHECK(d.block == Approx(tiles / double(n * n)));
      }
    }
  }
  // The causal mask agrees with the SDK's closed form.
  const attnlab::Density causal = masks::density("causal", 1000, 64);
  const attnlab::Density closed = attnlab::causal_density(1000, 64);
  CHECK(causal.element == Approx(closed.element));
  CHECK(causal.block == Approx(closed.block));
}

TEST_CASE("large T builds with tensor ops and counts like the closed form", "[masks][density]") {
  const std::int64_t T = 8192, W = 256, N = 4;
  double allowed = 0;
  for (std::int64_t t = 0; t < T; ++t) allowed += std::min(t + 1, W) + std::max<std::int64_t>(0, std::min(N, t + 1 - W));
  CHECK(masks::density("sink:4|window:256", T, 64).element == Approx(allowed / double(T * T)));
}

TEST_CASE("the cache hands out one shared tensor per canonical key", "[masks][cache]") {
  const at::Tensor a = masks::dense("window:9|sink:3", 77);
  const at::Tensor b = masks::dense("sink:3 | window:9", 77);
  CHECK(a.is_same(b));
  CHECK_FALSE(a.is_same(masks::dense("sink:3|window:9", 78)));
  std::vector<at::Tensor> seen(4);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) threads.emplace_back([&seen, i] { seen[i] = masks::dense("stride:3:33|block:11", 333); });
  for (auto& t : threads) t.join();
  for (int i = 1; i < 4; ++i) CHECK(seen[i].is_same(seen[0]));
}

TEST_CASE("block layouts round-trip to the dense mask", "[masks][layout]") {
  for (std::int64_t T : {1, 97, 130}) {
    for (std::int64_t tile : {16, 64}) {
      for (const std::string expression : {"causal", "sink:4|window:16", "stride:8:64&block:32|sink:2", "random:0.3:16:1"}) {
        INFO(expression << " T=" << T << " tile=" << tile);
        const auto layout = masks::block_layout(expression, T, tile);
        REQUIRE(layout->T == T);
        REQUIRE(layout->tile == tile);
        CHECK(at::equal(layout->to_dense(), masks::dense(expression, T)));
        const attnlab::Density d = masks::density(expression, T, tile);
        CHECK(layout->element_density() == Approx(d.element));
        CHECK(layout->block_density() == Approx(d.block));
        CHECK(layout.get() == masks::block_layout(masks::canonical(expression), T, tile).get());
      }
    }
  }
}
