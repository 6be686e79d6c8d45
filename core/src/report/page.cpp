#include "report/page.hpp"

#include "base/text.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

namespace attnlab::report {
namespace fs = std::filesystem;

std::string format_number(const char* format, std::optional<double> value) {
  if (!value || !std::isfinite(*value)) return "";
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, format, *value);
  return buffer;
}

std::string join(const std::vector<std::string>& parts, const std::string& separator) {
  return base::join(parts, separator);
}

double as_number(const std::string& text) {
  try {
    return std::stod(text);
  } catch (const std::exception&) {
    return std::nan("");
  }
}

Page::Page(ResultStore& store_, const ReportOptions& options_)
    : store(store_), options(options_), sweep(load_sweep_data(store_, options_.sweep)),
      baseline(parse_baseline(options_.baseline)) {
  for (const auto& t : sweep.trials) has_baseline = has_baseline || t.backend == baseline.backend;
  if (options.plots) gnuplot_ = Gnuplot::locate();
  fs::create_directories(options.out);
  if (options.plots) fs::create_directories(options.out / "plots");
}

void Page::figure(const Figure& f, const std::string& caption) {
  if (!gnuplot_) return;
  if (!gnuplot_->render(f, options.out / "plots")) return;
  const std::string stem = "plots/" + file_stem(f.name);
  doc.image(caption, stem + ".png", stem + ".svg");
  files_.pngs.push_back(options.out / (stem + ".png"));
  files_.svgs.push_back(options.out / (stem + ".svg"));
}

std::vector<std::string> Page::group_axes(const std::set<std::string>& except) const {
  std::vector<std::string> out;
  for (const auto& name : sweep.varying_params())
    if (!is_backend_param(name) && !except.count(name)) out.push_back(name);
  return out;
}

TrialGroups Page::grouped(const std::vector<std::string>& axes) const {
  auto group_of = [&](const TrialData& t) {
    std::vector<std::string> parts;
    for (const auto& a : axes) parts.push_back(a + "=" + t.param(a));
    return join(parts, ", ");
  };
  TrialGroups out;
  for (const auto& t : sweep.trials) {
    const std::string g = group_of(t);
    auto it = std::find_if(out.begin(), out.end(), [&](const auto& e) { return e.first == g; });
    if (it == out.end()) out.push_back({g, {&t}});
    else it->second.push_back(&t);
  }
  return out;
}

std::vector<std::string> Page::variants() const {
  std::vector<std::string> out;
  for (const auto& t : sweep.trials) {
    const auto label = sweep.variant_label(t);
    if (std::find(out.begin(), out.end(), label) == out.end()) out.push_back(label);
  }
  return out;
}

std::string Page::name_placeholders() const {
  std::vector<std::string> marks;
  for (std::size_t i = 1; i <= sweep.names.size(); ++i) marks.push_back("?" + std::to_string(i));
  return join(marks, ", ");
}

void Page::header() {
  doc.heading(1, "attnlab report: " + sweep.name);
  std::map<std::string, int> by_status;
  for (const auto& t : sweep.trials) by_status[t.status]++;
  std::vector<std::string> counts;
  for (const auto& [status, n] : by_status) counts.push_back(std::to_string(n) + " " + status);
  doc.paragraph("Sweep `" + sweep.name + "` (kind `" + sweep.kind + "`): " + std::to_string(sweep.trials.size()) +
                " trials (" + join(counts, ", ") + "). Generated " + base::utc_now("%Y-%m-%d %H:%M:%S UTC") + ".");
  std::vector<std::string> fixed;
  const auto varying = sweep.varying_params();
  std::map<std::string, std::string> common;
  if (!sweep.trials.empty())
    for (const auto& [name, value] : sweep.trials.front().params)
      if (!is_backend_param(name) && std::find(varying.begin(), varying.end(), name) == varying.end())
        fixed.push_back(name + "=" + value);
  if (!fixed.empty()) doc.paragraph("Fixed for every trial: " + join(fixed, ", ") + ".");
}

// The comment a sweep file opens with is where its author says what it asks; a study's
// success criteria belong there, written before the numbers (the stored source is the file as
// it was when last run).
void Page::purpose() {
  for (const auto& row : sweep_sources().rows) {
    std::string comment, line;
    std::istringstream source(row[1].value_or(""));
    while (std::getline(source, line) && !line.empty() && line[0] == '#')
      comment += (line.size() > 1 && line[1] == ' ' ? line.substr(2) : line.substr(1)) + "\n";
    if (comment.empty()) continue;
    doc.heading(2, "What `" + row[0].value_or("") + "` asks");
    doc.preformatted(comment);
  }
}

void Page::run_context() {
  auto runs = store.query(
      "SELECT id, started_at, git_sha, git_dirty, attnlab_version, torch_version, blas, threads, cpu, gpu, hostname, "
      "sgemm_gflops FROM runs WHERE id IN (SELECT DISTINCT t.run_id FROM trials t JOIN sweeps s ON s.id = t.sweep_id "
      "WHERE s.name IN (" + name_placeholders() + ")) ORDER BY id",
      sweep.names);
  doc.heading(2, "Run context");
  if (runs.rows.empty()) {
    doc.paragraph("No run has recorded a trial of this sweep yet.");
    return;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : runs.rows) {
    auto get = [&](size_t i) { return r[i].value_or(""); };
    std::string git = get(2).substr(0, 12);
    if (get(3) == "1") git += " (dirty)";
    std::string cpu = get(8);
    if (!get(9).empty()) cpu += "; GPU " + get(9);
    rows.push_back({get(0), get(1), git, get(4), get(5), get(6), get(7), cpu, get(10),
                    format_number("%.1f", r[11] ? std::optional<double>(as_number(*r[11])) : std::nullopt)});
  }
  doc.table({"run", "started (UTC)", "git", "attnlab", "LibTorch", "BLAS", "threads", "CPU", "host", "sgemm GFLOP/s"},
            std::move(rows));
}

void Page::samples() {
  bool any = false;
  for (const auto& t : sweep.trials) {
    // Sampled text before greedy: a small model's greedy decoding falls into loops ("the state of
    // the state of ..."), which says more about greedy decoding than about the model.
    auto rows = store.query("SELECT prompt, who, mode, text FROM samples WHERE trial_id = " + std::to_string(t.id) +
                            " ORDER BY mode = 'greedy', id");
    if (rows.rows.empty()) continue;
    if (!any) {
      doc.heading(2, "Samples: teacher and student side by side");
      doc.paragraph("Sampled text (at the sweep's temperature) first, then greedy: greedy decoding of a small model "
                    "repeats itself, which says more about greedy decoding than about the model.");
      any = true;
    }
    doc.heading(3, t.name);
    // Pair each student sample with the teacher's for the same prompt and mode.
    std::vector<std::vector<std::string>> table;
    std::map<std::pair<std::string, std::string>, size_t> at;
    for (const auto& r : rows.rows) {
      const auto key = std::make_pair(r[0].value_or(""), r[2].value_or(""));
      if (!at.count(key)) {
        at[key] = table.size();
        table.push_back({key.first, key.second, "", ""});
      }
      auto& row = table[at[key]];
      (r[1].value_or("") == "teacher" ? row[2] : row[3]) += r[3].value_or("");
    }
    doc.table({"prompt", "mode", "teacher", "student"}, std::move(table));
  }
}

void Page::failures() {
  std::vector<std::vector<std::string>> failed;
  std::vector<std::string> unfinished;
  for (const auto& t : sweep.trials) {
    if (t.status == "failed") failed.push_back({t.name, t.backend, t.error});
    if (t.status == "pending" || t.status == "running") unfinished.push_back("`" + t.name + "` (" + t.status + ")");
  }
  if (failed.empty() && unfinished.empty()) return;
  doc.heading(2, "Failed and unfinished trials");
  if (!failed.empty()) doc.table({"trial", "backend", "error"}, std::move(failed));
  if (!unfinished.empty())
    doc.paragraph("Not finished (rerun `attnlab run` on the sweep to complete them): " + join(unfinished, ", ") + ".");
}

ResultStore::Table Page::sweep_sources() const {
  return store.query("SELECT path, source FROM sweeps WHERE name IN (" + name_placeholders() + ") ORDER BY id",
                     sweep.names);
}

void Page::sweep_file() {
  const auto rows = sweep_sources();
  bool first = true;
  for (const auto& row : rows.rows) {
    if (!row[1] || row[1]->empty()) continue;
    if (first) doc.heading(2, rows.rows.size() > 1 ? "Sweep files" : "Sweep file");
    first = false;
    doc.paragraph("`" + row[0].value_or("") + "` as it was when last run:");
    doc.preformatted(*row[1]);
  }
}

ReportFiles Page::write() {
  files_.markdown = options.out / "index.md";
  files_.html = options.out / "index.html";
  std::ofstream(files_.markdown) << doc.markdown();
  std::ofstream(files_.html) << doc.html("attnlab report: " + options.sweep);
  return files_;
}

}  // namespace attnlab::report
