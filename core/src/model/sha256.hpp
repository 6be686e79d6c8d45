#pragma once
// SHA-256 (FIPS 180-4), for the identity of teacher weights: a file's digest as 64 hex chars.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace attnlab::model {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, std::size_t size);
  std::string hex_digest();  // finishes the hash; call once

 private:
  void compress(const unsigned char* block);
  std::uint32_t state_[8];
  unsigned char buffer_[64];
  std::size_t buffered_ = 0;
  std::uint64_t total_bytes_ = 0;
};

std::string sha256_hex(std::string_view data);
// Streams the file; throws std::runtime_error naming it when it cannot be read.
std::string sha256_file(const std::string& path);

}  // namespace attnlab::model
