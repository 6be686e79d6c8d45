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

// The header's dtype names as LibTorch scalar types (sizes: safetensors_header.cpp).
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

}  // namespace

Header read_header(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open for reading");
  std::error_code ec;
  const std::uint64_t file_size = std::filesystem::file_size(path, ec);
  if (ec) fail(path, "cannot read the file size: " + ec.message());
  // The 8-byte length, then as much of the header as it announces (bounded by the limit).
  std::string start(std::min<std::uint64_t>(file_size, 8), '\0');
  in.read(start.data(), static_cast<std::streamsize>(start.size()));
  if (start.size() == 8) {
    std::uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<unsigned char>(start[i]);
    const std::uint64_t wanted = std::min({header_len, kMaxHeaderBytes, file_size - 8});
    start.resize(8 + wanted);
    in.read(start.data() + 8, static_cast<std::streamsize>(wanted));
  }
  return parse_header(path, start, file_size);
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
