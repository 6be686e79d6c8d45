// safetensors reader and writer; the format is described in safetensors.hpp.
#include "model/safetensors.hpp"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data is little-endian; this reader copies bytes as they are");

namespace attnlab::safetensors {
namespace {

struct DType {
  const char* name;
  at::ScalarType type;
  std::uint64_t itemsize;
};

constexpr DType kDTypes[] = {
    {"F64", at::kDouble, 8}, {"F32", at::kFloat, 4}, {"F16", at::kHalf, 2},  {"BF16", at::kBFloat16, 2},
    {"I64", at::kLong, 8},   {"I32", at::kInt, 4},   {"I16", at::kShort, 2}, {"I8", at::kChar, 1},
    {"U8", at::kByte, 1},    {"BOOL", at::kBool, 1},
};

std::string supported_dtypes() {
  std::string out;
  for (const auto& d : kDTypes) out += (out.empty() ? "" : "|") + std::string(d.name);
  return out;
}

const DType* find_dtype(const std::string& name) {
  for (const auto& d : kDTypes)
    if (name == d.name) return &d;
  return nullptr;
}

const DType& dtype_of(at::ScalarType type, const std::string& path, const std::string& tensor) {
  for (const auto& d : kDTypes)
    if (d.type == type) return d;
  throw Error(path + ": tensor '" + tensor + "' has dtype " + std::string(c10::toString(type)) +
              ", which safetensors cannot store here (supported: " + supported_dtypes() + ")");
}

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
  const DType* dtype = find_dtype(e.dtype);
  if (!dtype) fail(path, where + ": unsupported dtype \"" + e.dtype + "\" (supported: " + supported_dtypes() + ")");

  const auto& shape = j["shape"];
  if (!shape.is_array()) fail(path, where + ": \"shape\" is not an array");
  std::uint64_t bytes = dtype->itemsize;
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

Header read_header(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open for reading");
  std::error_code ec;
  const std::uint64_t file_size = std::filesystem::file_size(path, ec);
  if (ec) fail(path, "cannot read the file size: " + ec.message());
  if (file_size < 8) fail(path, "only " + std::to_string(file_size) + " bytes; a safetensors file starts with an 8-byte header length");

  unsigned char len_bytes[8];
  in.read(reinterpret_cast<char*>(len_bytes), 8);
  const std::uint64_t header_len = read_u64_le(len_bytes);
  if (header_len > kMaxHeaderBytes)
    fail(path, "header length " + std::to_string(header_len) + " exceeds the limit of " +
                   std::to_string(kMaxHeaderBytes) + " bytes (not a safetensors file, or corrupt)");
  if (header_len > file_size - 8)
    fail(path, "header length " + std::to_string(header_len) + " exceeds the " + std::to_string(file_size - 8) +
                   " bytes after it (file truncated or not safetensors)");

  std::string text(header_len, '\0');
  in.read(text.data(), static_cast<std::streamsize>(header_len));
  if (!in) fail(path, "could not read the " + std::to_string(header_len) + "-byte header");

  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
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

File read(const std::string& path, const ReadOptions& options) {
  const Header header = read_header(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open for reading");
  File file;
  file.metadata = header.metadata;
  for (const auto& e : header.entries) {
    at::Tensor t = at::empty(e.shape, at::TensorOptions().dtype(find_dtype(e.dtype)->type));
    const auto bytes = static_cast<std::streamsize>(e.end - e.begin);
    in.seekg(static_cast<std::streamoff>(header.data_start + e.begin));
    in.read(static_cast<char*>(t.data_ptr()), bytes);
    if (!in || in.gcount() != bytes) fail(path, "tensor '" + e.name + "': could not read its " + std::to_string(bytes) + " bytes");
    if (options.to_float32 && at::isFloatingType(t.scalar_type()) && t.scalar_type() != at::kFloat) t = t.to(at::kFloat);
    file.tensors.emplace(e.name, std::move(t));
  }
  return file;
}

void write(const std::string& path, const std::map<std::string, at::Tensor>& tensors,
           const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<at::Tensor> data;
  std::uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (name == "__metadata__") fail(path, "'__metadata__' is reserved and cannot name a tensor");
    if (!tensor.defined()) fail(path, "tensor '" + name + "' is undefined");
    const DType& dtype = dtype_of(tensor.scalar_type(), path, name);
    at::Tensor t = tensor.detach().to(at::kCPU).contiguous();
    const std::uint64_t bytes = static_cast<std::uint64_t>(t.numel()) * dtype.itemsize;
    header[name] = {{"dtype", dtype.name}, {"shape", t.sizes().vec()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    data.push_back(std::move(t));
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');

  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail(tmp, "cannot open for writing");
    unsigned char len_bytes[8];
    std::uint64_t n = text.size();
    for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<unsigned char>((n >> (8 * i)) & 0xff);
    out.write(reinterpret_cast<const char*>(len_bytes), 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const auto& t : data)
      out.write(static_cast<const char*>(t.data_ptr()), static_cast<std::streamsize>(t.nbytes()));
    if (!out.flush()) fail(tmp, "write failed (disk full?)");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) fail(path, "cannot rename " + tmp + " into place: " + ec.message());
}

}  // namespace attnlab::safetensors
