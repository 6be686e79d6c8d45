// UTF-8 decoding and code point classification for the GPT-2 pre-tokenizer (see unicode.hpp).
#include "text/unicode.hpp"

#include <algorithm>

namespace attnlab::text {
namespace {

bool in_ranges(const CodePointRange* ranges, std::size_t count, char32_t cp) {
  const CodePointRange* end = ranges + count;
  const CodePointRange* it =
      std::upper_bound(ranges, end, cp, [](char32_t c, const CodePointRange& r) { return c < r.first; });
  return it != ranges && cp <= (it - 1)->last;
}

}  // namespace

bool is_letter(char32_t cp) { return in_ranges(tables::letter, tables::letter_count, cp); }
bool is_number(char32_t cp) { return in_ranges(tables::number, tables::number_count, cp); }
bool is_space(char32_t cp) { return in_ranges(tables::space, tables::space_count, cp); }

Utf8Char decode_utf8(std::string_view text, std::size_t pos) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(pos);
  Utf8Char invalid{lead, 1, false};
  if (lead < 0x80) return {lead, 1, true};
  std::size_t length;
  char32_t cp;
  char32_t min_cp;  // below this the sequence is an overlong form
  if ((lead & 0xE0) == 0xC0) {
    length = 2, cp = lead & 0x1F, min_cp = 0x80;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3, cp = lead & 0x0F, min_cp = 0x800;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4, cp = lead & 0x07, min_cp = 0x10000;
  } else {
    return invalid;
  }
  if (pos + length > text.size()) return invalid;
  for (std::size_t i = 1; i < length; ++i) {
    const unsigned char b = byte(pos + i);
    if ((b & 0xC0) != 0x80) return invalid;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min_cp || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return invalid;
  return {cp, length, true};
}

}  // namespace attnlab::text
