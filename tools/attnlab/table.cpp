#include "table.hpp"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <vector>

namespace attnlab::cli {
namespace {

bool parse_number(const std::string& text, double& value) {
  if (text.empty()) return false;
  char* end = nullptr;
  value = std::strtod(text.c_str(), &end);
  return end == text.c_str() + text.size();
}

// Display form for the text table: real numbers to 4 significant digits, the rest as is.
std::string display(const std::optional<std::string>& cell) {
  if (!cell) return "";
  double value;
  const bool looks_real = cell->find_first_of(".eE") != std::string::npos;
  if (looks_real && parse_number(*cell, value)) {
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%.4g", value);
    return buffer;
  }
  return *cell;
}

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n\r") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

}  // namespace

void print_table(std::ostream& out, const ResultStore::Table& table) {
  std::vector<size_t> width(table.columns.size());
  std::vector<std::vector<std::string>> cells;
  for (size_t c = 0; c < table.columns.size(); ++c) width[c] = table.columns[c].size();
  for (const auto& row : table.rows) {
    std::vector<std::string> line;
    for (size_t c = 0; c < row.size(); ++c) {
      line.push_back(display(row[c]));
      width[c] = std::max(width[c], line.back().size());
    }
    cells.push_back(std::move(line));
  }
  auto emit = [&](const std::vector<std::string>& line) {
    for (size_t c = 0; c < line.size(); ++c) {
      double ignored;
      const bool numeric = parse_number(line[c], ignored);
      const std::string pad(width[c] - line[c].size(), ' ');
      out << (c ? "  " : "") << (numeric ? pad + line[c] : line[c] + (c + 1 < line.size() ? pad : ""));
    }
    out << "\n";
  };
  emit(table.columns);
  std::vector<std::string> rule;
  for (size_t w : width) rule.push_back(std::string(w, '-'));
  emit(rule);
  for (const auto& line : cells) emit(line);
  out << "(" << table.rows.size() << " row" << (table.rows.size() == 1 ? "" : "s") << ")\n";
}

void print_csv(std::ostream& out, const ResultStore::Table& table) {
  for (size_t c = 0; c < table.columns.size(); ++c) out << (c ? "," : "") << csv_field(table.columns[c]);
  out << "\n";
  for (const auto& row : table.rows) {
    for (size_t c = 0; c < row.size(); ++c) out << (c ? "," : "") << (row[c] ? csv_field(*row[c]) : "");
    out << "\n";
  }
}

void print_json(std::ostream& out, const ResultStore::Table& table) {
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& row : table.rows) {
    nlohmann::json object = nlohmann::json::object();
    for (size_t c = 0; c < row.size(); ++c) {
      double value;
      if (!row[c]) object[table.columns[c]] = nullptr;
      else if (parse_number(*row[c], value)) object[table.columns[c]] = value;
      else object[table.columns[c]] = *row[c];
    }
    rows.push_back(std::move(object));
  }
  out << rows.dump(2) << "\n";
}

void print_result(std::ostream& out, const ResultStore::Table& table, const std::string& format) {
  if (format == "csv") print_csv(out, table);
  else if (format == "json") print_json(out, table);
  else print_table(out, table);
}

}  // namespace attnlab::cli
