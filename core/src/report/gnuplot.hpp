#pragma once
// Plots through gnuplot (Debian package gnuplot-nox): each figure becomes <name>.dat (the
// numbers, one gnuplot index block per series), <name>.gp (the script, rerunnable by hand),
// <name>.png (pngcairo when available, else libgd png) and <name>.svg.
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace attnlab::report {

struct Series {
  std::string title;
  std::vector<std::pair<double, double>> points;  // (x, y), drawn in this order
  std::string style = "linespoints";              // gnuplot style: lines | points | linespoints
  bool reference = false;                         // a dashed black guide line (e.g. the ideal)
  std::vector<std::pair<double, double>> ranges = {};  // optional (low, high) of y per point: error bars
};

struct Plot {
  std::string title, xlabel, ylabel;
  bool logx = false, logy = false;
  int logx_base = 10;  // 2 for sequence lengths
  std::vector<Series> series;
};

struct Figure {
  std::string name;      // file stem, [A-Za-z0-9_.-]
  std::string title;     // multiplot title (single-panel figures use the panel's title)
  std::vector<Plot> panels;
  int columns = 1;       // multiplot layout columns
  int width = 900, height = 560;
};

class Gnuplot {
 public:
  // Finds gnuplot on PATH; throws std::runtime_error naming the package when it is missing.
  static Gnuplot locate();

  // Writes and renders the figure into `dir`. Points that a log axis cannot show (<= 0) and
  // non-finite points are left out; empty series and panels are dropped. Returns false (and
  // writes nothing) when no panel has data. Throws with gnuplot's messages when it fails.
  bool render(const Figure& figure, const std::filesystem::path& dir) const;

  bool has_pngcairo() const { return pngcairo_; }

 private:
  bool pngcairo_ = false;
};

// "fwd+bwd" -> "fwd_bwd": a string made safe for file names.
std::string file_stem(const std::string& text);

}  // namespace attnlab::report
