#pragma once
// Just enough Unicode for GPT-2's pre-tokenizer: UTF-8 decoding and the three code point
// classes its regex uses (\p{L} letters, \p{N} numbers, \s white space). The class tables
// in unicode_tables.cpp are generated from node's regex engine, the reference we must match.
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace attnlab::text {

struct CodePointRange {
  char32_t first, last;  // inclusive
};

namespace tables {
extern const CodePointRange letter[];
extern const std::size_t letter_count;
extern const CodePointRange number[];
extern const std::size_t number_count;
extern const CodePointRange space[];
extern const std::size_t space_count;
}  // namespace tables

bool is_letter(char32_t cp);  // \p{L}
bool is_number(char32_t cp);  // \p{N}
bool is_space(char32_t cp);   // JavaScript's \s

// One decoded UTF-8 sequence. Bytes that do not start a valid, shortest-form sequence of a
// non-surrogate code point decode as one byte with valid = false, so that every input splits
// into pieces that concatenate back to it exactly.
struct Utf8Char {
  char32_t code_point = 0;
  std::size_t length = 1;  // bytes consumed, 1..4
  bool valid = false;
};
Utf8Char decode_utf8(std::string_view text, std::size_t pos);

}  // namespace attnlab::text
