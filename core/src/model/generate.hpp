#pragma once
// Text generation from a GPT2: greedy (argmax) or sampled (softmax(logits / temperature) with a
// seeded generator, so teacher and student given the same seed draw from the same random stream).
#include "model/gpt2.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace attnlab::model {

struct GenerateOptions {
  std::int64_t new_tokens = 48;
  bool greedy = true;
  double temperature = 0.8;  // sampled only
  std::uint64_t seed = 0;    // sampled only
};

// Returns only the new ids. The context is cropped to the model's last n_positions tokens.
std::vector<std::int64_t> generate(GPT2& model, const std::vector<std::int64_t>& prompt, const GenerateOptions& options);

// Bytes that are not valid UTF-8 (a generation can stop inside a character) become U+FFFD,
// so samples store as text.
std::string to_valid_utf8(const std::string& bytes);

}  // namespace attnlab::model
