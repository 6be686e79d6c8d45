// Mask expressions (attnlab/masks.hpp grammar): any text is either refused with
// std::invalid_argument or spelled canonically, and the canonical spelling is a fixed point.
#include <attnlab/mask_expr.hpp>

#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::string canonical;
  try {
    canonical = attnlab::masks::canonical(text);
  } catch (const std::invalid_argument&) {
    return 0;
  }
  if (attnlab::masks::canonical(canonical) != canonical) std::abort();
  try {
    attnlab::masks::parse_list(text);
  } catch (const std::invalid_argument&) {
  }
  return 0;
}
