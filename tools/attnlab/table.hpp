#pragma once
// Printing query results: aligned text table, CSV (RFC 4180 quoting, header row first), or
// JSON (an array of objects; numbers stay numbers).
#include "runtime/store.hpp"

#include <ostream>
#include <string>

namespace attnlab::cli {

void print_table(std::ostream& out, const ResultStore::Table& table);
void print_csv(std::ostream& out, const ResultStore::Table& table);
void print_json(std::ostream& out, const ResultStore::Table& table);
// format: "table" | "csv" | "json"
void print_result(std::ostream& out, const ResultStore::Table& table, const std::string& format);

}  // namespace attnlab::cli
