#include "report/gnuplot.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace attnlab::report {
namespace {

namespace fs = std::filesystem;

// Single-quoted gnuplot string: no escapes are processed, a quote is doubled.
std::string quoted(const std::string& text) {
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

std::string shell_quoted(const std::string& text) {
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

bool drawable(const Plot& plot, double x, double y) {
  if (!std::isfinite(x) || !std::isfinite(y)) return false;
  return !(plot.logx && x <= 0) && !(plot.logy && y <= 0);
}

// The panels with their undrawable points and empty series removed.
std::vector<Plot> drawable_panels(const Figure& figure) {
  std::vector<Plot> out;
  for (const auto& panel : figure.panels) {
    Plot kept = panel;
    kept.series.clear();
    for (const auto& s : panel.series) {
      Series copy = s;
      copy.points.clear();
      copy.ranges.clear();
      for (std::size_t i = 0; i < s.points.size(); ++i) {
        const auto [x, y] = s.points[i];
        if (!drawable(panel, x, y)) continue;
        copy.points.emplace_back(x, y);
        if (i < s.ranges.size()) copy.ranges.push_back(s.ranges[i]);
      }
      if (copy.ranges.size() != copy.points.size()) copy.ranges.clear();
      if (!copy.points.empty()) kept.series.push_back(std::move(copy));
    }
    // A panel of guide lines only says nothing.
    bool has_data = false;
    for (const auto& s : kept.series) has_data = has_data || !s.reference;
    if (has_data) out.push_back(std::move(kept));
  }
  return out;
}

std::string plot_commands(const Figure& figure, const std::vector<Plot>& panels, const std::string& data_file) {
  std::ostringstream gp;
  const bool multi = panels.size() > 1;
  if (multi) {
    const int columns = std::max(1, std::min<int>(figure.columns, static_cast<int>(panels.size())));
    const int rows = (static_cast<int>(panels.size()) + columns - 1) / columns;
    gp << "set multiplot layout " << rows << "," << columns << " title " << quoted(figure.title) << "\n";
  }
  // gnuplot cycles 8 colours: the point shape changes every 8 series, so that no two series of
  // a panel look alike (the study's frontier has 17).
  auto point_type = [](size_t series) {
    static const int filled[] = {7, 5, 9, 11, 13, 15};  // circle, square, triangles, diamond, pentagon
    return "pt " + std::to_string(filled[(series / 8) % 6]);
  };
  auto with_point_type = [&](std::string style, size_t series) {
    const auto at = style.find("pt 7");
    return at == std::string::npos ? style : style.replace(at, 4, point_type(series));
  };
  int index = 0;
  for (const auto& panel : panels) {
    gp << "unset logscale\nset grid\nset autoscale\n";
    gp << "set title " << quoted(panel.title) << "\n";
    gp << "set xlabel " << quoted(panel.xlabel) << "\nset ylabel " << quoted(panel.ylabel) << "\n";
    if (panel.logx) gp << "set logscale x " << panel.logx_base << "\n";
    if (panel.logy) gp << "set logscale y 10\n";
    gp << "set format x '%g'\nset format y '%g'\n";
    gp << (multi ? "set key top left font ',8'\n" : "set key outside right top\n");
    // Headroom above linear panels' data for the key inside them (it hid the top points).
    gp << (multi && !panel.logy ? "set offsets 0, 0, graph 0.45, 0\n" : "set offsets 0, 0, 0, 0\n");
    gp << "plot ";
    for (size_t s = 0; s < panel.series.size(); ++s, ++index) {
      const auto& series = panel.series[s];
      const bool bars = !series.ranges.empty();
      gp << (s ? ", \\\n     " : "") << quoted(data_file) << " index " << index << (bars ? " using 1:2:3:4" : " using 1:2")
         << " with "
         << (series.reference ? "lines dt 2 lw 1.5 lc rgb 'black'"
             : bars           ? "yerrorbars " + point_type(s) + " ps 1.2 lw 1.5"
             : series.style == "linespoints" ? "linespoints lw 2 " + point_type(s) + " ps 0.8"
                                             : with_point_type(series.style, s) + " lw 2")
         << " title " << quoted(series.title);
    }
    gp << "\n";
  }
  if (multi) gp << "unset multiplot\n";
  return gp.str();
}

}  // namespace

std::string file_stem(const std::string& text) {
  std::string out;
  for (char c : text) out += std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' ? c : '_';
  return out.empty() ? "plot" : out;
}

Gnuplot Gnuplot::locate() {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0)
    throw std::runtime_error(
        "gnuplot not found on PATH: the report's plots need it. Install the Debian package gnuplot-nox "
        "(sudo apt-get install gnuplot-nox), or pass --no-plots for tables only");
  Gnuplot g;
  g.pngcairo_ = std::system("gnuplot -e 'set terminal pngcairo' >/dev/null 2>&1") == 0;
  return g;
}

bool Gnuplot::render(const Figure& figure, const fs::path& dir) const {
  const auto panels = drawable_panels(figure);
  if (panels.empty()) return false;
  fs::create_directories(dir);
  const std::string stem = file_stem(figure.name);

  {
    std::ofstream dat(dir / (stem + ".dat"));
    dat.precision(10);
    bool first = true;
    for (const auto& panel : panels)
      for (const auto& series : panel.series) {
        if (!first) dat << "\n\n";  // two blank lines end a gnuplot index block
        first = false;
        dat << "# " << panel.title << " | " << series.title << "\n# " << panel.xlabel << "\t" << panel.ylabel << "\n";
        for (std::size_t i = 0; i < series.points.size(); ++i) {
          dat << series.points[i].first << "\t" << series.points[i].second;
          if (!series.ranges.empty()) dat << "\t" << series.ranges[i].first << "\t" << series.ranges[i].second;
          dat << "\n";
        }
      }
  }

  const std::string body = plot_commands(figure, panels, stem + ".dat");
  const std::string size = " size " + std::to_string(figure.width) + "," + std::to_string(figure.height);
  {
    std::ofstream gp(dir / (stem + ".gp"));
    gp << "# Generated by attnlab report; rerun with: gnuplot " << stem << ".gp\n";
    gp << (pngcairo_ ? "set terminal pngcairo" : "set terminal png") << size << " noenhanced font 'sans,10'\n";
    gp << "set output " << quoted(stem + ".png") << "\n" << body << "unset output\n";
    gp << "set terminal svg" << size << " dynamic noenhanced font 'sans,10' background '#ffffff'\n";
    gp << "set output " << quoted(stem + ".svg") << "\n" << body << "unset output\n";
  }
  const fs::path log = dir / (stem + ".log");
  const std::string command =
      "cd " + shell_quoted(dir.string()) + " && gnuplot " + shell_quoted(stem + ".gp") + " >" + shell_quoted(log.filename().string()) + " 2>&1";
  const int rc = std::system(command.c_str());
  const bool made = fs::exists(dir / (stem + ".png")) && fs::file_size(dir / (stem + ".png")) > 0 &&
                    fs::exists(dir / (stem + ".svg")) && fs::file_size(dir / (stem + ".svg")) > 0;
  if (rc != 0 || !made)
    throw std::runtime_error("gnuplot failed on " + (dir / (stem + ".gp")).string() + ":\n" + read_text(log));
  // Keep gnuplot's warnings only when it had something to say.
  if (fs::exists(log) && fs::file_size(log) == 0) fs::remove(log);
  return true;
}

}  // namespace attnlab::report
