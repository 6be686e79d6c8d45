// The safetensors header parser (safetensors_header.hpp).
#include "model/safetensors_header.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>

namespace attnlab::safetensors {
namespace {

struct DType {
  const char* name;
  std::uint64_t itemsize;
};
constexpr DType kDTypes[] = {{"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8},
                             {"I32", 4}, {"I16", 2}, {"I8", 1},  {"U8", 1},   {"BOOL", 1}};

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw Error(path + ": " + what);
}

std::uint64_t read_u64_le(const unsigned char* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

Entry parse_entry(const std::string& path, const std::string& name, const nlohmann::json& j,
                  std::uint64_t data_size) {
  const std::string where = "tensor '" + name + "'";
  if (!j.is_object()) fail(path, where + ": header entry is not an object");
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!j.contains(key)) fail(path, where + ": header entry lacks \"" + key + "\"");
  Entry e;
  e.name = name;
  if (!j["dtype"].is_string()) fail(path, where + ": \"dtype\" is not a string");
  e.dtype = j["dtype"].get<std::string>();
  const std::uint64_t size = itemsize(e.dtype);
  if (size == 0) fail(path, where + ": unsupported dtype \"" + e.dtype + "\" (supported: " + supported_dtypes() + ")");

  const auto& shape = j["shape"];
  if (!shape.is_array()) fail(path, where + ": \"shape\" is not an array");
  std::uint64_t bytes = size;
  for (const auto& d : shape) {
    if (!d.is_number_unsigned()) fail(path, where + ": shape " + shape.dump() + " has an entry that is not a non-negative integer");
    const std::uint64_t dim = d.get<std::uint64_t>();
    if (dim > static_cast<std::uint64_t>(INT64_MAX) || __builtin_mul_overflow(bytes, dim, &bytes))
      fail(path, where + ": shape " + shape.dump() + " overflows 64-bit byte counts");
    e.shape.push_back(static_cast<std::int64_t>(dim));
  }

  const auto& off = j["data_offsets"];
  if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
    fail(path, where + ": \"data_offsets\" must be [begin, end] with non-negative integers, got " + off.dump());
  e.begin = off[0].get<std::uint64_t>();
  e.end = off[1].get<std::uint64_t>();
  if (e.begin > e.end) fail(path, where + ": data_offsets " + off.dump() + " has begin > end");
  if (e.end > data_size)
    fail(path, where + ": data_offsets " + off.dump() + " reach outside the data region of " +
                   std::to_string(data_size) + " bytes (file truncated?)");
  if (e.end - e.begin != bytes)
    fail(path, where + ": " + e.dtype + " " + shape.dump() + " needs " + std::to_string(bytes) +
                   " bytes but data_offsets " + off.dump() + " span " + std::to_string(e.end - e.begin));
  return e;
}

}  // namespace

std::uint64_t itemsize(const std::string& dtype) {
  for (const auto& d : kDTypes)
    if (dtype == d.name) return d.itemsize;
  return 0;
}

std::string supported_dtypes() {
  std::string out;
  for (const auto& d : kDTypes) out += (out.empty() ? "" : "|") + std::string(d.name);
  return out;
}

Header parse_header(const std::string& path, std::string_view start, std::uint64_t file_size) {
  if (file_size < 8 || start.size() < 8)
    fail(path, "only " + std::to_string(file_size) + " bytes; a safetensors file starts with an 8-byte header length");
  const std::uint64_t header_len = read_u64_le(reinterpret_cast<const unsigned char*>(start.data()));
  if (header_len > kMaxHeaderBytes)
    fail(path, "header length " + std::to_string(header_len) + " exceeds the limit of " +
                   std::to_string(kMaxHeaderBytes) + " bytes (not a safetensors file, or corrupt)");
  if (header_len > file_size - 8)
    fail(path, "header length " + std::to_string(header_len) + " exceeds the " + std::to_string(file_size - 8) +
                   " bytes after it (file truncated or not safetensors)");
  if (start.size() < 8 + header_len) fail(path, "could not read the " + std::to_string(header_len) + "-byte header");
  const std::string text(start.substr(8, header_len));

  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {  // parse_error, and out_of_range for numbers like 5e5555
    fail(path, std::string("header is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) fail(path, "header JSON is not an object");

  Header h;
  h.data_start = 8 + header_len;
  const std::uint64_t data_size = file_size - h.data_start;
  for (const auto& [key, value] : j.items()) {
    if (key == "__metadata__") {
      if (!value.is_object()) fail(path, "\"__metadata__\" is not an object");
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string()) fail(path, "\"__metadata__\" entry '" + mk + "' is not a string");
        h.metadata[mk] = mv.get<std::string>();
      }
      continue;
    }
    h.entries.push_back(parse_entry(path, key, value, data_size));
  }

  // The data region must be covered exactly: sorted by offset, each tensor starts where the
  // previous one ended, and the last one ends at the end of the file.
  std::sort(h.entries.begin(), h.entries.end(),
            [](const Entry& a, const Entry& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  std::uint64_t cursor = 0;
  const Entry* previous = nullptr;
  for (const auto& e : h.entries) {
    if (e.begin < cursor)
      fail(path, "tensor '" + e.name + "' bytes [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                     ") overlap tensor '" + previous->name + "' ending at " + std::to_string(cursor));
    if (e.begin > cursor)
      fail(path, "tensor '" + e.name + "' starts at " + std::to_string(e.begin) + ", leaving a hole of " +
                     std::to_string(e.begin - cursor) + " bytes before it");
    cursor = e.end;
    previous = &e;
  }
  if (cursor != data_size)
    fail(path, std::to_string(data_size - cursor) + " bytes after the last tensor are not described by the header");
  return h;
}

}  // namespace attnlab::safetensors
