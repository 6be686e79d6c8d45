#include "report/document.hpp"

#include <cctype>
#include <cstdlib>
#include <sstream>

namespace attnlab::report {
namespace {

std::string html_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

// Escaped text with `code spans` turned into <code>.
std::string html_inline(const std::string& text) {
  std::string out;
  bool code = false;
  size_t start = 0;
  for (size_t i = 0; i <= text.size(); ++i) {
    if (i < text.size() && text[i] != '`') continue;
    out += html_escape(text.substr(start, i - start));
    if (i < text.size()) out += code ? "</code>" : "<code>";
    code = !code;
    start = i + 1;
  }
  return out;
}

std::string markdown_cell(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '|') out += "\\|";
    else if (c == '\n') out += "<br>";
    else if (c != '\r') out += c;
  }
  return out;
}

bool numeric_cell(const std::string& text) {
  if (text.empty()) return false;
  char* end = nullptr;
  std::strtod(text.c_str(), &end);
  if (end == text.c_str()) return false;
  const std::string rest(end);
  return rest.empty() || rest == "%" || rest == "x";
}

// Right-align a column when every non-empty cell in it reads as a number.
std::vector<bool> numeric_columns(const Block& b) {
  std::vector<bool> numeric(b.header.size(), true);
  std::vector<bool> any(b.header.size(), false);
  for (const auto& row : b.rows)
    for (size_t c = 0; c < row.size() && c < numeric.size(); ++c)
      if (!row[c].empty()) {
        any[c] = true;
        numeric[c] = numeric[c] && numeric_cell(row[c]);
      }
  for (size_t c = 0; c < numeric.size(); ++c) numeric[c] = numeric[c] && any[c];
  return numeric;
}

const char* kCss = R"CSS(
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
h1, h2, h3 { border-bottom: 1px solid #ddd; padding-bottom: .2em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 90%; }
th, td { border: 1px solid #ccc; padding: .25em .6em; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.text { white-space: pre-wrap; max-width: 40em; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 90%; color: #555; }
pre { background: #f6f6f6; padding: .6em; overflow-x: auto; white-space: pre-wrap; }
code { background: #f3f3f3; padding: 0 .2em; }
)CSS";

}  // namespace

void Document::heading(int level, std::string text) {
  Block b;
  b.kind = Block::Kind::heading;
  b.level = level;
  b.text = std::move(text);
  blocks_.push_back(std::move(b));
}

void Document::paragraph(std::string text) {
  Block b;
  b.kind = Block::Kind::paragraph;
  b.text = std::move(text);
  blocks_.push_back(std::move(b));
}

void Document::table(std::vector<std::string> header, std::vector<std::vector<std::string>> rows) {
  Block b;
  b.kind = Block::Kind::table;
  b.header = std::move(header);
  b.rows = std::move(rows);
  blocks_.push_back(std::move(b));
}

void Document::image(std::string caption, std::string png, std::string svg) {
  Block b;
  b.kind = Block::Kind::image;
  b.text = std::move(caption);
  b.png = std::move(png);
  b.svg = std::move(svg);
  blocks_.push_back(std::move(b));
}

void Document::preformatted(std::string text) {
  Block b;
  b.kind = Block::Kind::preformatted;
  b.text = std::move(text);
  blocks_.push_back(std::move(b));
}

std::string Document::markdown() const {
  std::ostringstream out;
  for (const auto& b : blocks_) {
    switch (b.kind) {
      case Block::Kind::heading: out << std::string(b.level, '#') << " " << b.text << "\n\n"; break;
      case Block::Kind::paragraph: out << b.text << "\n\n"; break;
      case Block::Kind::preformatted: out << "```\n" << b.text << (b.text.empty() || b.text.back() != '\n' ? "\n" : "") << "```\n\n"; break;
      case Block::Kind::image:
        out << "![" << b.text << "](" << b.png << ")\n";
        if (!b.svg.empty()) out << "*" << b.text << "* ([SVG](" << b.svg << "))\n";
        out << "\n";
        break;
      case Block::Kind::table: {
        const auto numeric = numeric_columns(b);
        out << "|";
        for (const auto& h : b.header) out << " " << markdown_cell(h) << " |";
        out << "\n|";
        for (size_t c = 0; c < b.header.size(); ++c) out << (numeric[c] ? "---:|" : "---|");
        out << "\n";
        for (const auto& row : b.rows) {
          out << "|";
          for (size_t c = 0; c < b.header.size(); ++c) out << " " << (c < row.size() ? markdown_cell(row[c]) : "") << " |";
          out << "\n";
        }
        out << "\n";
        break;
      }
    }
  }
  return out.str();
}

std::string Document::html(const std::string& title) const {
  std::ostringstream out;
  out << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>" << html_escape(title)
      << "</title>\n<style>" << kCss << "</style></head>\n<body>\n";
  for (const auto& b : blocks_) {
    switch (b.kind) {
      case Block::Kind::heading:
        out << "<h" << b.level << ">" << html_inline(b.text) << "</h" << b.level << ">\n";
        break;
      case Block::Kind::paragraph: out << "<p>" << html_inline(b.text) << "</p>\n"; break;
      case Block::Kind::preformatted: out << "<pre>" << html_escape(b.text) << "</pre>\n"; break;
      case Block::Kind::image:
        out << "<figure><img src=\"" << html_escape(b.png) << "\" alt=\"" << html_escape(b.text) << "\"><figcaption>"
            << html_inline(b.text);
        if (!b.svg.empty()) out << " (<a href=\"" << html_escape(b.svg) << "\">SVG</a>)";
        out << "</figcaption></figure>\n";
        break;
      case Block::Kind::table: {
        const auto numeric = numeric_columns(b);
        out << "<table>\n<tr>";
        for (const auto& h : b.header) out << "<th>" << html_escape(h) << "</th>";
        out << "</tr>\n";
        for (const auto& row : b.rows) {
          out << "<tr>";
          for (size_t c = 0; c < b.header.size(); ++c)
            out << "<td class=\"" << (numeric[c] ? "num" : "text") << "\">" << html_escape(c < row.size() ? row[c] : "")
                << "</td>";
          out << "</tr>\n";
        }
        out << "</table>\n";
        break;
      }
    }
  }
  out << "</body></html>\n";
  return out.str();
}

}  // namespace attnlab::report
