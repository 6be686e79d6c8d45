// safetensors headers: any bytes are refused with safetensors::Error or parsed into entries
// that tile the data region exactly.
#include "model/safetensors_header.hpp"

#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    const auto header = attnlab::safetensors::parse_header("fuzz.safetensors", bytes, size);
    std::uint64_t cursor = 0;
    for (const auto& e : header.entries) {
      if (e.begin != cursor || e.end < e.begin) std::abort();
      cursor = e.end;
    }
    if (header.data_start + cursor != size) std::abort();
  } catch (const attnlab::safetensors::Error&) {
  }
  return 0;
}
