#pragma once
// safetensors: the weight format of Hugging Face checkpoints and of attnlab's own.
//
//   file = u64 little-endian N | N bytes of JSON header | data region
//   header = { "__metadata__": {str: str}?,
//              "<tensor>": {"dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end]} ... }
//   offsets are relative to the data region; tensors are row-major, little-endian, and together
//   cover the data region exactly (no overlap, no hole).
//
// The reader checks every one of those facts before it copies a byte and names the file and
// the tensor in each error, so a truncated download or a corrupt file says what is wrong.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace attnlab::safetensors {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// One tensor's header entry, validated.
struct Entry {
  std::string name;
  std::string dtype;  // "F32", "F16", "BF16", "F64", "I64", "I32", "I16", "I8", "U8", "BOOL"
  std::vector<std::int64_t> shape;
  std::uint64_t begin = 0, end = 0;  // byte range inside the data region
};

struct Header {
  std::vector<Entry> entries;                    // in data order
  std::map<std::string, std::string> metadata;   // "__metadata__", empty when absent
  std::uint64_t data_start = 0;                  // 8 + header length
};

struct ReadOptions {
  bool to_float32 = false;  // convert every floating tensor (F16, BF16, F64) to float32
};

struct File {
  std::map<std::string, at::Tensor> tensors;  // CPU, contiguous
  std::map<std::string, std::string> metadata;
};

// Largest header accepted (the format's own readers use 100 MB).
constexpr std::uint64_t kMaxHeaderBytes = 100u * 1024u * 1024u;

Header read_header(const std::string& path);
File read(const std::string& path, const ReadOptions& options = {});

// Writes tensors (any device/layout; copied to contiguous CPU) in name order; the header is
// padded with spaces to a multiple of 8 bytes so data stays aligned. Written to path + ".tmp"
// and renamed, so a reader never sees half a file.
void write(const std::string& path, const std::map<std::string, at::Tensor>& tensors,
           const std::map<std::string, std::string>& metadata = {});

}  // namespace attnlab::safetensors
