// Sweep files: good ones expand into the right trials; each kind of mistake is refused with
// file:line and the key, before anything runs.
#include "runtime/config.hpp"
#include "trials/kind.hpp"
#include "trials/schemas.hpp"

#include <attnlab/registry.hpp>

#include "catch.hpp"

#include "support.hpp"

#include <fstream>
#include <set>

using namespace attnlab;

namespace {

using attnlab::test::registry;


std::string sweep_file(const std::string& name) { return std::string(ATTNLAB_TEST_DATA) + "/sweeps/" + name; }

std::string error_of(const std::string& name, const std::vector<std::string>& overrides = {}) {
  try {
    load_sweep(sweep_file(name), registry(), trials::all_schemas(), overrides);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("a good sweep expands into the cartesian product, backend axes included", "[config]") {
  const auto sweep = load_sweep(sweep_file("good.toml"), registry(), trials::all_schemas());
  REQUIRE(sweep.name == "test-good");
  REQUIRE(sweep.repeats == 2);
  const auto trials = expand_trials(sweep, registry());
  // seq_len (2) x pass (2) x execution (2)
  REQUIRE(trials.size() == 8);
  std::set<std::string> keys, names;
  for (const auto& t : trials) {
    keys.insert(t.key);
    names.insert(t.name);
    REQUIRE(t.backend == "dense");
    REQUIRE(t.backend_params.count("tile") == 1);  // defaults resolved into the trial
  }
  REQUIRE(keys.size() == 8);
  REQUIRE(names.count("dense/seq_len:16/pass:fwd/execution:sdpa") == 1);
  // File order: seq_len is the outer axis, pass next, the backend's own axis innermost.
  REQUIRE(trials[0].name == "dense/seq_len:16/pass:fwd/execution:sdpa");
  REQUIRE(trials[1].name == "dense/seq_len:16/pass:fwd/execution:math");
  REQUIRE(trials[2].name == "dense/seq_len:16/pass:fwd+bwd/execution:sdpa");
}

TEST_CASE("trial keys are stable across loads and change with any setting", "[config]") {
  const auto a = expand_trials(load_sweep(sweep_file("good.toml"), registry(), trials::all_schemas()), registry());
  const auto b = expand_trials(load_sweep(sweep_file("good.toml"), registry(), trials::all_schemas()), registry());
  for (size_t i = 0; i < a.size(); ++i) REQUIRE(a[i].key == b[i].key);
  const auto c = expand_trials(load_sweep(sweep_file("good.toml"), registry(), trials::all_schemas(), {"sweep.repeats=3"}), registry());
  REQUIRE(c[0].key != a[0].key);
}

TEST_CASE("bench mode is a [grid] axis like any other", "[config]") {
  const auto plain = expand_trials(load_sweep(sweep_file("good.toml"), registry(), trials::all_schemas()), registry());
  const auto both = expand_trials(
      load_sweep(sweep_file("good.toml"), registry(), trials::all_schemas(), {"grid.mode=[\"soft\", \"hard\"]"}), registry());
  CHECK(both.size() == 2 * plain.size());
  CHECK_THROWS_WITH(load_sweep(sweep_file("good.toml"), registry(), trials::all_schemas(), {"grid.mode=\"deployed\""}),
                    Catch::Contains("mode"));
}

TEST_CASE("min_time_s enters a trial's key only when set", "[config]") {
  const auto plain = expand_trials(load_sweep(sweep_file("good.toml"), registry(), trials::all_schemas()), registry());
  const auto zero = expand_trials(load_sweep(sweep_file("good.toml"), registry(), trials::all_schemas(), {"sweep.min_time_s=0"}), registry());
  const auto timed = expand_trials(load_sweep(sweep_file("good.toml"), registry(), trials::all_schemas(), {"sweep.min_time_s=0.5"}), registry());
  REQUIRE(zero[0].key == plain[0].key);  // databases of sweeps written before it stay valid
  REQUIRE(timed[0].key != plain[0].key);
  REQUIRE(load_sweep(sweep_file("min_time.toml"), registry(), trials::all_schemas()).min_time_s == Approx(0.1));
  REQUIRE_THAT(error_of("good.toml", {"sweep.min_time_s=-1"}), Catch::Contains("min_time_s") && Catch::Contains("3600"));
}

TEST_CASE("syntax errors carry file, line and column", "[config]") {
  const auto e = error_of("syntax.toml");
  REQUIRE_THAT(e, Catch::Contains("syntax.toml:4:"));
}

TEST_CASE("unknown keys are refused with the known ones listed", "[config]") {
  const auto e = error_of("unknown_key.toml");
  REQUIRE_THAT(e, Catch::Contains("unknown_key.toml:9:"));
  REQUIRE_THAT(e, Catch::Contains("head_dims"));
  REQUIRE_THAT(e, Catch::Contains("head_dim"));
}

TEST_CASE("out-of-range values name the key and the allowed range", "[config]") {
  const auto e = error_of("out_of_range.toml");
  REQUIRE_THAT(e, Catch::Contains("out_of_range.toml:7:"));
  REQUIRE_THAT(e, Catch::Contains("seq_len"));
  REQUIRE_THAT(e, Catch::Contains("[1, 1048576]"));
}

TEST_CASE("wrong types and unknown kinds are refused", "[config]") {
  REQUIRE_THAT(error_of("wrong_type.toml"), Catch::Contains("wrong_type.toml:4:") && Catch::Contains("repeats"));
  REQUIRE_THAT(error_of("bad_kind.toml"), Catch::Contains("bad_kind.toml:3:") && Catch::Contains("bench|distill"));
}

TEST_CASE("unknown backends are refused with the available ones listed", "[config]") {
  const auto e = error_of("unknown_backend.toml");
  REQUIRE_THAT(e, Catch::Contains("unknown_backend.toml:6:"));
  REQUIRE_THAT(e, Catch::Contains("desne"));
  REQUIRE_THAT(e, Catch::Contains("dense"));
}

TEST_CASE("backend parameters are checked against the plugin's schema", "[config]") {
  const auto e = error_of("bad_param.toml");
  REQUIRE_THAT(e, Catch::Contains("bad_param.toml:10:"));
  REQUIRE_THAT(e, Catch::Contains("execution"));
  REQUIRE_THAT(e, Catch::Contains("sdpa"));
}

TEST_CASE("command-line overrides are validated like the file", "[config]") {
  REQUIRE_THAT(error_of("good.toml", {"grid.seq_len=0"}), Catch::Contains("seq_len"));
  const auto sweep = load_sweep(sweep_file("good.toml"), registry(), trials::all_schemas(), {"grid.seq_len=[8]"});
  REQUIRE(expand_trials(sweep, registry()).size() == 4);
}

TEST_CASE("a plugin's validate hook refuses bad mask expressions while the sweep loads", "[config][plugins]") {
  // The schema only says "string"; the masks plugin's validate hook knows the grammar. The
  // error points at the offending value of the axis (line 10, its second entry).
  const auto sweep = load_sweep(sweep_file("bad_mask.toml"), registry(), trials::all_schemas());
  try {
    expand_trials(sweep, registry());
    FAIL("windw:64 was not refused");
  } catch (const ConfigError& e) {
    const std::string what = e.what();
    REQUIRE_THAT(what, Catch::Contains("bad_mask.toml:10:24:"));
    REQUIRE_THAT(what, Catch::Contains("unknown mask 'windw'"));
    REQUIRE_THAT(what, Catch::Contains("pattern"));
  }
  try {
    expand_trials(load_sweep(sweep_file("bad_candidates.toml"), registry(), trials::all_schemas()), registry());
    FAIL("an empty candidate was not refused");
  } catch (const ConfigError& e) {
    REQUIRE_THAT(std::string(e.what()), Catch::Contains("bad_candidates.toml:10:") && Catch::Contains("candidates") &&
                                            Catch::Contains("empty entry"));
  }
}

TEST_CASE("a declared range is the only check: lr = 0 is refused before anything runs", "[config][keys]") {
  const auto e = error_of("distill_lr0.toml");
  REQUIRE_THAT(e, Catch::Contains("distill_lr0.toml:7:") && Catch::Contains("[grid] lr") && Catch::Contains("(0, 10]"));
}

TEST_CASE("docs/CONFIG.md is the declarations' own listing, and every kind declares a schema", "[config][keys]") {
  const auto listing = attnlab::test::shell(attnlab::test::cli() + " keys --markdown");
  REQUIRE(listing.status == 0);
  const std::string committed = attnlab::test::file_bytes(std::string(ATTNLAB_SOURCE_DIR) + "/docs/CONFIG.md");
  INFO("regenerate with: build/bin/attnlab keys --markdown > docs/CONFIG.md");
  REQUIRE(listing.out == committed);
  std::vector<std::string> schema_names;
  for (const auto& schema : trials::all_schemas()) schema_names.push_back(schema.name);
  REQUIRE(schema_names == trials::trial_kind_names());
  for (const auto& name : trials::trial_kind_names()) REQUIRE(trials::trial_kind(name).schema().name == name);
}

TEST_CASE("non-ASCII text outside strings and comments is refused before toml++ sees it", "[config][fuzz]") {
  // Found by tests/fuzz: toml++ 3.3 reaches __builtin_unreachable on most non-ASCII characters
  // where it expects a key or value (this input starts with U+FE7F).
  const std::string finding = std::string(ATTNLAB_TEST_DATA) + "/fuzz_findings/sweep_toml_unreachable.toml";
  REQUIRE_THROWS_WITH(load_sweep(finding, registry(), trials::all_schemas()), Catch::Contains(":1:1: a non-ASCII character"));
  REQUIRE_THAT(error_of("non_ascii_bad.toml"), Catch::Contains("non_ascii_bad.toml:7:3: a non-ASCII character"));
  // A quote inside a malformed bare value opens no string: the ASCII stand-in fails where the
  // value does, and toml++ never sees the character.
  const std::string in_value = std::string(ATTNLAB_TEST_DATA) + "/fuzz_findings/sweep_toml_unreachable_in_value.toml";
  REQUIRE_THROWS_WITH(load_sweep(in_value, registry(), trials::all_schemas()),
                      Catch::Contains("sweep_toml_unreachable_in_value.toml:2:8: Error while parsing value"));
  // Found by tools/fuzz.sh 120 (issue 20): U+029B after a '[' inside a malformed bare value.
  // toml++ now reads only an ASCII stand-in of such a text, and refuses it at line 2.
  const std::string after_bracket =
      std::string(ATTNLAB_TEST_DATA) + "/fuzz_findings/sweep_toml_unreachable_after_bracket.toml";
  REQUIRE_THROWS_WITH(load_sweep(after_bracket, registry(), trials::all_schemas()),
                      Catch::Contains("sweep_toml_unreachable_after_bracket.toml:2:"));
  // In strings and comments it is text like any other.
  REQUIRE(load_sweep(sweep_file("non_ascii_ok.toml"), registry(), trials::all_schemas()).description ==
          "na\xc3\xafve \xef\xb9\xbf in a string");
}

TEST_CASE("an axis may not hold one value twice, and a sweep of more than a million trials is refused",
          "[config][fuzz]") {
  REQUIRE_THAT(error_of("good.toml", {"grid.seq_len=[16, 16]"}), Catch::Contains("16 appears twice"));
  const std::string big = "[" + [] {
    std::string v;
    for (int i = 1; i <= 101; ++i) v += (i > 1 ? "," : "") + std::to_string(i);
    return v;
  }() + "]";
  const auto sweep = load_sweep(sweep_file("good.toml"), registry(), trials::all_schemas(),
                                {"grid.seq_len=" + big, "grid.batch=" + big, "grid.heads=" + big});
  REQUIRE_THROWS_WITH(expand_trials(sweep, registry()), Catch::Contains("more than the 1000000 allowed"));
}
