// attnlab report and attnlab compare on a fixture database written with ResultStore: the
// tables in index.md carry the inserted numbers (formatted as docs/REPORTS.md says), compare's
// ratios are the inserted numbers divided, and every figure is a real PNG and SVG.
#include "report/compare.hpp"
#include "report/gnuplot.hpp"
#include "report/sweep_data.hpp"
#include "runtime/store.hpp"
#include "trials/report.hpp"
#include "trials/tables.hpp"

#include "catch.hpp"

#include "support.hpp"

#include <sys/wait.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

using namespace attnlab;
namespace fs = std::filesystem;

namespace {

using attnlab::test::cli;
using attnlab::test::file_bytes;
using attnlab::test::fresh_dir;
using attnlab::test::shell;

std::string f(const char* format, double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, format, value);
  return buffer;
}

// The bench fixture's numbers: distinct, with digits beyond the printed precision.
struct BenchPoint {
  std::string backend, pass;
  int seq_len;
  double median_ms, cv, peak_mib, gflops, block_density;
};

BenchPoint bench_point(const std::string& backend, int seq_len, const std::string& pass) {
  const double scale = (seq_len / 128.0) * (seq_len / 128.0) * (pass == "fwd" ? 1.0 : 2.7);
  const bool dense = backend == "dense";
  return {backend, pass, seq_len, (dense ? 1.23456 : 0.51234) * scale + 0.0007 * seq_len, dense ? 0.0314 : 0.0671,
          (dense ? 4.4444 : 1.2345) * scale, dense ? 12.3456 : 23.4567, dense ? (seq_len == 128 ? 0.625 : 0.5625) : 0.2468};
}

struct EvalPoint {
  double teacher_ppl, student_ppl, kl, agreement, density, block_density, peak_mib;
  // What the report's distill table shows: the deployed mode (blend's hard mode here).
  double teacher_bpb, student_bpb, rel, rel_lo, rel_hi, causal_fraction, speedup, attention_speedup;
};
EvalPoint eval_point(const std::string& backend, int T) {
  const bool dense = backend == "dense";
  return {30.12345 + T / 64.0, (dense ? 30.12345 : 33.98765) + T / 64.0, dense ? 0.00012 : 0.21098,
          dense ? 1.0 : 0.8765, dense ? 1.0 : 0.4321, dense ? 1.0 : 0.5555, 100.25 + T,
          2.5 + T / 1024.0, dense ? 2.5 + T / 1024.0 : 2.61 + T / 1024.0, dense ? 0.0 : 0.01234,
          dense ? 0.0 : 0.0101, dense ? 0.0 : 0.0145, dense ? 1.0 : 0.375, dense ? 1.0 : 1.234, dense ? 1.0 : 1.876};
}
double ms_per_step(const std::string& backend) { return backend == "dense" ? 123.45 : 234.56; }

struct Fixture {
  fs::path dir;
  std::string db;
  std::map<std::string, std::int64_t> ids;  // trial name -> id
};

Fixture make_fixture(const std::string& tag) {
  Fixture fx;
  fx.dir = fresh_dir("report_" + tag);
  fx.db = (fx.dir / "r.sqlite").string();
  ResultStore store(fx.db);
  const auto run = store.begin_run({{"git_sha", "0123456789abcdef"}, {"git_dirty", true}, {"attnlab_version", "0.1.0"},
                                    {"torch_version", "1.13.0"}, {"blas", "openblas-openmp"}, {"threads", 2},
                                    {"cpu", "Test CPU"}, {"hostname", "fixture-host"}, {"sgemm_gflops", 150.25}},
                                   "attnlab run fixture");

  // Bench: 2 backends x 2 seq_len x 2 pass, plus one failed trial with no dense partner.
  const auto bench = store.upsert_sweep("fixture-bench", "bench", "bench.toml", "[sweep]\nname = \"fixture-bench\"\n");
  int ordinal = 0;
  for (const std::string backend : {"dense", "masks"})
    for (int seq_len : {128, 256})
      for (const std::string pass : {"fwd", "fwd+bwd"}) {
        const auto p = bench_point(backend, seq_len, pass);
        nlohmann::json config = {
            {"grid", {{"backend", backend}, {"seq_len", seq_len}, {"pass", pass}, {"batch", 1}}},
            {"backend_params", backend == "dense" ? nlohmann::json{{"execution", "sdpa"}} : nlohmann::json{{"pattern", "window:32"}}}};
        const std::string name = backend + "/seq_len:" + std::to_string(seq_len) + "/pass:" + pass;
        const auto id = store.ensure_trial(bench, "b" + std::to_string(ordinal), name, backend, ordinal, config).first;
        ++ordinal;
        store.start_trial(id, run);
        TrialRecord r;
        r.metrics = {{"time/median_ms", -1, p.median_ms}, {"time/cv", -1, p.cv}, {"memory/peak_tensor_mib", -1, p.peak_mib},
                     {"flops/gflops", -1, p.gflops}, {"density/block", -1, p.block_density}};
        store.finish_trial(id, r);
        fx.ids[name] = id;
      }
  {
    nlohmann::json config = {{"grid", {{"backend", "topk"}, {"seq_len", 512}, {"pass", "fwd"}, {"batch", 1}}},
                             {"backend_params", {{"fraction", 0.25}}}};
    const auto id = store.ensure_trial(bench, "b-failed", "topk/seq_len:512/pass:fwd", "topk", ordinal, config).first;
    store.start_trial(id, run);
    store.fail_trial(id, "topk: fraction | too small\nsecond line");
    fx.ids["topk/seq_len:512/pass:fwd"] = id;
  }

  // Distill: dense and blend students, two eval lengths, curves, blend weights, samples.
  const auto distill = store.upsert_sweep("fixture-distill", "distill", "distill.toml",
                                          "# Does blend keep recall?\n# Success: recall >= 0.9.\n[sweep]\nkind = \"distill\"\n");
  for (const std::string backend : {"dense", "blend"}) {
    nlohmann::json config = {{"grid", {{"backend", backend}, {"seq_len", 128}}}, {"backend_params", nlohmann::json::object()}};
    const auto id = store.ensure_trial(distill, "d-" + backend, backend, backend, 0, config).first;
    store.start_trial(id, run);
    TrialRecord r;
    for (int T : {64, 128}) {
      const auto e = eval_point(backend, T);
      const std::string m = "eval/T" + std::to_string(T) + "/";
      r.metrics.push_back({m + "teacher_ppl", -1, e.teacher_ppl});
      r.metrics.push_back({m + "student_ppl", -1, e.student_ppl});
      r.metrics.push_back({m + "delta_ppl", -1, e.student_ppl - e.teacher_ppl});
      r.metrics.push_back({m + "kl", -1, e.kl});
      r.metrics.push_back({m + "agreement", -1, e.agreement});
      r.metrics.push_back({m + "density", -1, e.density});
      r.metrics.push_back({m + "block_density", -1, e.block_density});
      r.metrics.push_back({m + "peak_mib", -1, e.peak_mib});
      r.metrics.push_back({m + "teacher_bpb", -1, e.teacher_bpb});
      // blend: the soft mode's numbers differ from the hard (deployed) ones the table shows.
      const std::string p = backend == "blend" ? "hard_" : "";
      const double soft_offset = backend == "blend" ? 0.5 : 0.0;
      for (const auto& [name, value] : std::vector<std::pair<std::string, double>>{
               {"student_bpb", e.student_bpb}, {"rel_delta_ppl", e.rel}, {"rel_delta_ppl_lo", e.rel_lo},
               {"rel_delta_ppl_hi", e.rel_hi}, {"causal_fraction", e.causal_fraction}, {"speedup", e.speedup},
               {"attention_speedup", e.attention_speedup}}) {
        r.metrics.push_back({m + p + name, -1, value});
        if (!p.empty()) r.metrics.push_back({m + name, -1, value + soft_offset});
      }
      if (T == 128) {  // the recall task at the longer length: the report plots it against density
        r.metrics.push_back({m + p + "recall_acc", -1, backend == "dense" ? 0.95 : 0.93});
        r.metrics.push_back({m + p + "recall_acc_lo", -1, backend == "dense" ? 0.9 : 0.9});
        r.metrics.push_back({m + p + "recall_acc_hi", -1, backend == "dense" ? 1.0 : 0.96});
        r.metrics.push_back({m + "teacher_recall_acc", -1, 0.95});
        r.metrics.push_back({m + "recall_chance", -1, 1.0 / 64});
      }
      if (!p.empty()) {
        r.metrics.push_back({m + "hard_kl", -1, e.kl});
        r.metrics.push_back({m + "hard_agreement", -1, e.agreement});
      }
    }
    r.metrics.push_back({"train/ms_per_step", -1, ms_per_step(backend)});
    for (int step = 0; step < 10; ++step) {
      r.metrics.push_back({"train/loss", step, 3.0 - 0.1 * step});
      r.metrics.push_back({"train/kl", step, 0.5 / (1 + step)});
      if (backend == "blend")
        for (int h = 0; h < 2; ++h) {
          r.metrics.push_back({"stat/L0/weight/h" + std::to_string(h) + "/causal", step, 1.0 - 0.05 * step});
          r.metrics.push_back({"stat/L0/weight/h" + std::to_string(h) + "/window:16", step, 0.2 + 0.03 * step * (h + 1)});
          r.metrics.push_back({"stat/L0/density/hard_element", step, 0.9 - 0.02 * step});
        }
    }
    r.samples = {{"Once upon", "teacher", "greedy", "Once upon a time there was"},
                 {"Once upon", "student", "greedy", backend == "dense" ? "Once upon a time there was" : "Once upon a hill"}};
    store.finish_trial(id, r);
    fx.ids["d-" + backend] = id;
  }
  store.finish_run(run);
  return fx;
}

void require_png_and_svg(const fs::path& png) {
  INFO(png.string());
  REQUIRE(fs::exists(png));
  REQUIRE(fs::file_size(png) > 100);
  REQUIRE(file_bytes(png).rfind("\x89PNG\r\n\x1a\n", 0) == 0);
  fs::path svg = png;
  svg.replace_extension(".svg");
  REQUIRE(fs::exists(svg));
  REQUIRE(file_bytes(svg).find("<svg") != std::string::npos);
}

bool has_line(const std::string& text, const std::string& line) { return text.find("\n" + line + "\n") != std::string::npos; }

}  // namespace

TEST_CASE("report: bench tables carry the database's numbers, figures are PNG and SVG", "[report]") {
  const auto fx = make_fixture("bench");
  ResultStore store(fx.db, /*read_only=*/true);
  report::ReportOptions options;
  options.sweep = "fixture-bench";
  options.out = fx.dir / "report";
  const auto files = trials::write_report(store, options);
  const std::string md = file_bytes(files.markdown);
  const std::string html = file_bytes(files.html);

  for (const std::string backend : {"dense", "masks"})
    for (int seq_len : {128, 256})
      for (const std::string pass : {"fwd", "fwd+bwd"}) {
        const auto p = bench_point(backend, seq_len, pass);
        const auto base = bench_point("dense", seq_len, pass);
        const std::string row = "| " + backend + " | " + std::to_string(seq_len) + " | done | " + f("%.3f", p.median_ms) +
                                " | " + f("%.1f%%", 100 * p.cv) + " | " + f("%.1f", p.peak_mib) + " | " +
                                f("%.2f", p.gflops) + " | " + f("%.3f", p.block_density) + " | " +
                                f("%.3f", p.median_ms / base.median_ms) + " |";
        INFO(row);
        CHECK(has_line(md, row));
        CHECK(html.find("<td class=\"num\">" + f("%.3f", p.median_ms) + "</td>") != std::string::npos);
      }
  CHECK(md.find("### pass=fwd+bwd") != std::string::npos);
  // Run context and the failed trial with its (escaped) error.
  CHECK(md.find("| 0123456789ab (dirty) | 0.1.0 | 1.13.0 | openblas-openmp | 2 | Test CPU | fixture-host | 150.2 |") !=
        std::string::npos);
  CHECK(has_line(md, "| topk/seq_len:512/pass:fwd | topk | topk: fraction \\| too small<br>second line |"));
  CHECK(html.find("topk: fraction | too small\nsecond line") != std::string::npos);

  for (const char* stem : {"latency_pass_fwd", "latency_pass_fwd_bwd", "memory_pass_fwd", "memory_pass_fwd_bwd",
                           "density_pass_fwd", "density_pass_fwd_bwd"}) {
    require_png_and_svg(options.out / "plots" / (std::string(stem) + ".png"));
    CHECK(md.find("(plots/" + std::string(stem) + ".png)") != std::string::npos);
    CHECK(html.find("<img src=\"plots/" + std::string(stem) + ".png\"") != std::string::npos);
  }
  REQUIRE(files.pngs.size() == 6);
  // The figure's data file holds the inserted numbers.
  const std::string dat = file_bytes(options.out / "plots" / "latency_pass_fwd.dat");
  std::ostringstream expected;
  expected.precision(10);
  expected << 256 << "\t" << bench_point("masks", 256, "fwd").median_ms;
  CHECK(dat.find(expected.str()) != std::string::npos);
  fs::remove_all(fx.dir);  // left in place when a REQUIRE stops the test, for inspection
}

TEST_CASE("report: distill tables, curves, blend weights and samples side by side", "[report]") {
  const auto fx = make_fixture("distill");
  const fs::path out = fx.dir / "distill report";  // a space in the path must survive the shell
  const auto r = shell(cli() + " report --db '" + fx.db + "' --sweep fixture-distill --out '" + out.string() + "'");
  REQUIRE(r.status == 0);
  CHECK(r.out == (out / "index.md").string() + "\n" + (out / "index.html").string() + "\n");
  const std::string md = file_bytes(out / "index.md");

  for (int T : {64, 128}) {
    CHECK(md.find("### Evaluation at T = " + std::to_string(T)) != std::string::npos);
    for (const std::string backend : {"dense", "blend"}) {
      const auto e = eval_point(backend, T);
      const std::string row = "| " + backend + " | " + backend + " | done | " + f("%.3f", e.teacher_bpb) + " | " +
                              f("%.3f", e.student_bpb) + " | " + f("%+.2f%%", 100 * e.rel) + " | [" +
                              f("%+.2f", 100 * e.rel_lo) + ", " + f("%+.2f", 100 * e.rel_hi) + "] | " +
                              f("%.4f", e.kl) + " | " + f("%.3f", e.agreement) + " | " + f("%.3f", e.causal_fraction) +
                              " | " + f("%.2f", e.speedup) + " | " + f("%.2f", e.attention_speedup) + " | " +
                              f("%.1f", ms_per_step(backend)) + " |";
      INFO(row);
      CHECK(has_line(md, row));
    }
  }
  CHECK(has_line(md, "| Once upon | greedy | Once upon a time there was | Once upon a hill |"));
  // The sweep file's opening comment, where its criteria are stated before any number.
  CHECK(md.find("## What `distill.toml` asks") != std::string::npos);
  CHECK(md.find("Does blend keep recall?\nSuccess: recall >= 0.9.\n") != std::string::npos);
  // At step 9 head 0 weights causal 0.55 over window 0.47, head 1 window 0.74 over causal 0.55.
  CHECK(has_line(md, "| blend | 1 | 2 | L0 h0 (1/1) |"));
  // Recall against density at T = 128, with each point's interval; a dashed line at chance.
  const std::string recall = file_bytes(out / "plots" / "recall_vs_density.dat");
  std::ostringstream recall_point;
  recall_point.precision(10);
  recall_point << eval_point("blend", 128).causal_fraction << "\t0.93\t0.9\t0.96\n";
  CHECK(recall.find(recall_point.str()) != std::string::npos);
  CHECK(recall.find("# T = 128 | chance\n") != std::string::npos);
  require_png_and_svg(out / "plots" / "bpb_vs_density.png");
  {
    // The run's closing words name the students that keep the teacher's recall (blend's
    // interval reaches 0.96 >= 0.95 - 0.05, at 0.375 of the causal tiles).
    ResultStore store(fx.db);
    trials::define_views(store);
    const auto words = trials::kind_tables("distill").findings(store, "fixture-distill");
    INFO(words);
    CHECK(words.find("What this sweep found at T = 128 ") != std::string::npos);
    CHECK(words.find("Long-range recall kept (interval reaching within 0.05 of the teacher's) by sparse student(s): "
                     "blend (38% of the tiles).") != std::string::npos);
    CHECK(words.find("At chance on recall") == std::string::npos);
  }
  const std::string weights = "weights_trial" + std::to_string(fx.ids.at("d-blend")) + "_L0";
  const std::string stats = "stats_trial" + std::to_string(fx.ids.at("d-blend"));
  for (const std::string& stem : {std::string("train_loss"), std::string("train_kl"), std::string("density_vs_delta_ppl"),
                                 std::string("speedup_vs_density"), weights, stats}) {
    require_png_and_svg(out / "plots" / (stem + ".png"));
    CHECK(md.find("(plots/" + stem + ".png)") != std::string::npos);
  }
  // One line per candidate in the weights figure: the .dat holds both heads' curves.
  const std::string dat = file_bytes(out / "plots" / (weights + ".dat"));
  CHECK(dat.find("# layer 0, head 1 | window:16") != std::string::npos);
  CHECK(dat.find("9\t" + f("%g", 0.2 + 0.03 * 9 * 2)) != std::string::npos);
  // The frontier carries each point's interval: x, y, low, high (percent).
  const std::string frontier = file_bytes(out / "plots" / "density_vs_delta_ppl.dat");
  const auto b = eval_point("blend", 128);
  std::ostringstream point;
  point.precision(10);
  point << b.causal_fraction << "\t" << 100 * b.rel << "\t" << 100 * b.rel_lo << "\t" << 100 * b.rel_hi << "\n";
  CHECK(frontier.find(point.str()) != std::string::npos);
  fs::remove_all(fx.dir);  // left in place when a REQUIRE stops the test, for inspection
}

TEST_CASE("report: several sweeps of one kind read as one, names prefixed by their sweep", "[report]") {
  const auto fx = make_fixture("multi");
  ResultStore store(fx.db, /*read_only=*/true);
  const auto one = report::load_sweep_data(store, "fixture-distill");
  const auto both = report::load_sweep_data(store, "fixture-distill,fixture-distill");
  REQUIRE(both.trials.size() == 2 * one.trials.size());
  CHECK(both.trials.front().name == "fixture-distill: " + one.trials.front().name);
  CHECK((both.names == std::vector<std::string>{"fixture-distill", "fixture-distill"}));
  auto error_of = [&](const std::string& sweeps) {
    try {
      report::load_sweep_data(store, sweeps);
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(error_of("fixture-distill,fixture-bench").find("one report holds one kind") != std::string::npos);
  CHECK(error_of("fixture-distill,nope").find("no sweep named 'nope'") != std::string::npos);
  fs::remove_all(fx.dir);
}

TEST_CASE("compare: ratios to the baseline at the same grid point, empty without one", "[report]") {
  const auto fx = make_fixture("compare");
  const auto r = shell(cli() + " compare --db '" + fx.db + "' --sweep fixture-bench --baseline dense --format json");
  REQUIRE(r.status == 0);
  const auto rows = nlohmann::json::parse(r.out);
  REQUIRE(rows.size() == 9);
  int checked = 0;
  for (const auto& row : rows) {
    const std::string trial = row["trial"];
    if (row["backend"] == "topk") {
      CHECK(row["ratio_median_ms"].is_null());
      CHECK(row["baseline_trial_id"].is_null());
      continue;
    }
    const int seq_len = std::stoi(trial.substr(trial.find("seq_len:") + 8));
    const std::string pass = trial.substr(trial.find("pass:") + 5);
    const auto p = bench_point(row["backend"], seq_len, pass), base = bench_point("dense", seq_len, pass);
    INFO(trial);
    CHECK(row["baseline_trial_id"].get<double>() == fx.ids.at("dense/seq_len:" + std::to_string(seq_len) + "/pass:" + pass));
    CHECK(row["ratio_median_ms"].get<double>() == Approx(p.median_ms / base.median_ms).epsilon(1e-5));
    CHECK(row["ratio_peak_mib"].get<double>() == Approx(p.peak_mib / base.peak_mib).epsilon(1e-5));
    ++checked;
  }
  CHECK(checked == 8);

  // Distill: one row per (trial, eval length), student ppl and KL ratios.
  ResultStore store(fx.db, /*read_only=*/true);
  const auto sweep = report::load_sweep_data(store, "fixture-distill");
  const auto table = trials::compare_table(sweep, report::parse_baseline("dense"));
  REQUIRE(table.rows.size() == 4);
  // Index of a column of `t`; REQUIREs it exists (an absent name would index past the row).
  auto column_of = [](const ResultStore::Table& t, const std::string& name) {
    const auto at = std::find(t.columns.begin(), t.columns.end(), name);
    REQUIRE(at != t.columns.end());
    return at - t.columns.begin();
  };
  auto column = [&](const std::string& name) { return column_of(table, name); };
  for (const auto& row : table.rows) {
    const std::string backend = *row[column("backend")];
    const int T = std::stoi(*row[column("eval_len")]);
    const auto e = eval_point(backend, T), base = eval_point("dense", T);
    CHECK(std::stod(*row[column("ratio_student_ppl")]) == Approx(e.student_ppl / base.student_ppl).epsilon(1e-5));
    CHECK(std::stod(*row[column("ratio_kl")]) == Approx(e.kl / base.kl).epsilon(1e-5));
    CHECK(std::stod(*row[column("ratio_ms_per_step")]) == Approx(ms_per_step(backend) / ms_per_step("dense")).epsilon(1e-5));
  }

  // A pinned baseline that no trial matches leaves every ratio empty.
  const auto none = trials::compare_table(report::load_sweep_data(store, "fixture-bench"),
                                          report::parse_baseline("dense/execution=math"));
  REQUIRE_FALSE(none.rows.empty());
  for (const auto& row : none.rows) CHECK_FALSE(row[column_of(none, "ratio_median_ms")].has_value());
  CHECK_THROWS_WITH(report::parse_baseline("dense/execution"), Catch::Contains("not param=value"));
  fs::remove_all(fx.dir);  // left in place when a REQUIRE stops the test, for inspection
}

TEST_CASE("figures: past gnuplot's 8 colours the point shape changes, so no two series look alike", "[report]") {
  report::Figure figure;
  figure.name = "many";
  report::Plot panel;
  panel.title = "many series";
  for (int i = 0; i < 10; ++i) {
    report::Series series{"s" + std::to_string(i), {{double(i), double(i)}}, "points pt 7 ps 1.2", false};
    series.ranges = {{i - 0.5, i + 0.5}};
    panel.series.push_back(series);
  }
  figure.panels = {panel, panel};  // two panels: the shapes restart in each
  const auto dir = fresh_dir("report_shapes");
  REQUIRE(report::Gnuplot::locate().render(figure, dir));
  std::vector<std::string> plotted;
  std::istringstream script(file_bytes((dir / "many.gp").string()));
  for (std::string line; std::getline(script, line);)
    if (line.find(" index ") != std::string::npos) plotted.push_back(line);
  REQUIRE(plotted.size() == 40);  // each panel's plot, once for the PNG and once for the SVG
  for (int i = 0; i < 40; ++i) {
    INFO(plotted[i]);
    CHECK(plotted[i].find(i % 10 < 8 ? "pt 7 " : "pt 5 ") != std::string::npos);
  }
  fs::remove_all(dir);
}

TEST_CASE("report: unknown sweep and missing gnuplot are clear errors", "[report]") {
  const auto fx = make_fixture("errors");
  auto r = shell(cli() + " report --db '" + fx.db + "' --sweep nope --out '" + (fx.dir / "x").string() + "' 2>&1");
  CHECK(r.status == 1);
  CHECK(r.out.find("no sweep named 'nope'") != std::string::npos);
  CHECK(r.out.find("fixture-bench") != std::string::npos);

  r = shell("PATH=/nonexistent " + cli() + " report --db '" + fx.db + "' --sweep fixture-bench --out '" +
            (fx.dir / "y").string() + "' 2>&1");
  CHECK(r.status == 1);
  CHECK(r.out.find("gnuplot-nox") != std::string::npos);

  // Tables only: no gnuplot needed, no figures.
  r = shell("PATH=/nonexistent " + cli() + " report --no-plots --db '" + fx.db + "' --sweep fixture-bench --out '" +
            (fx.dir / "z").string() + "'");
  CHECK(r.status == 0);
  CHECK(fs::exists(fx.dir / "z" / "index.md"));
  CHECK_FALSE(fs::exists(fx.dir / "z" / "plots"));
  fs::remove_all(fx.dir);  // left in place when a REQUIRE stops the test, for inspection
}

TEST_CASE("compare: a baseline that matches two variants of its backend is an error listing them", "[report]") {
  report::SweepData sweep;
  for (const std::string execution : {"sdpa", "math"}) {
    report::TrialData t;
    t.backend = "dense";
    t.status = "done";
    t.params = {{"backend", "dense"}, {"backend.execution", execution}, {"seq_len", "128"}};
    sweep.trials.push_back(t);
  }
  CHECK_THROWS_WITH(report::require_one_baseline_variant(sweep, report::parse_baseline("dense"), "dense"),
                    Catch::Contains("--baseline dense matches 2 variants of 'dense': dense/execution=math, "
                                    "dense/execution=sdpa; pin one, e.g. --baseline dense/execution=math"));
  CHECK_NOTHROW(report::require_one_baseline_variant(sweep, report::parse_baseline("dense/execution=sdpa"),
                                                     "dense/execution=sdpa"));
}
