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
#include "model/safetensors_header.hpp"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace attnlab::safetensors {

struct ReadOptions {
  bool to_float32 = false;  // convert every floating tensor (F16, BF16, F64) to float32
};

struct File {
  std::map<std::string, at::Tensor> tensors;  // CPU, contiguous
  std::map<std::string, std::string> metadata;
};

Header read_header(const std::string& path);
File read(const std::string& path, const ReadOptions& options = {});

// Writes tensors (any device/layout; copied to contiguous CPU) in name order; the header is
// padded with spaces to a multiple of 8 bytes so data stays aligned. Written to path + ".tmp"
// and renamed, so a reader never sees half a file.
void write(const std::string& path, const std::map<std::string, at::Tensor>& tensors,
           const std::map<std::string, std::string>& metadata = {});

}  // namespace attnlab::safetensors
