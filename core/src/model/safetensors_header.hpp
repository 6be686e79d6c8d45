#pragma once
// The safetensors header, parsed and checked without LibTorch (so a fuzzer can drive it):
//
//   file = u64 little-endian N | N bytes of JSON header | data region
//   header = { "__metadata__": {str: str}?,
//              "<tensor>": {"dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end]} ... }
//   offsets are relative to the data region; tensors together cover it exactly (no overlap,
//   no hole). Every error names the file and the tensor.
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
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

// Largest header accepted (the format's own readers use 100 MB).
constexpr std::uint64_t kMaxHeaderBytes = 100u * 1024u * 1024u;

// Bytes per element of a dtype name, 0 for a name safetensors (here) does not know.
std::uint64_t itemsize(const std::string& dtype);
std::string supported_dtypes();  // "F64|F32|..."

// The header of a file of `file_size` bytes whose first bytes are `start` (at least the
// 8-byte length and the header itself, when the file has them). `path` names it in errors.
Header parse_header(const std::string& path, std::string_view start, std::uint64_t file_size);

}  // namespace attnlab::safetensors
