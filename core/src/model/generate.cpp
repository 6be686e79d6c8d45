// Autoregressive generation without a KV cache: every token reruns the (short) context, so
// any backend works unchanged.
#include "model/generate.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <stdexcept>

namespace attnlab::model {

std::vector<std::int64_t> generate(GPT2& model, const std::vector<std::int64_t>& prompt, const GenerateOptions& options) {
  if (prompt.empty()) throw std::invalid_argument("generate: the prompt encodes to no tokens");
  torch::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(options.seed);
  const auto device = model.wte->weight.device();
  std::vector<std::int64_t> context = prompt, out;
  const auto window = model.config().n_positions;
  for (std::int64_t i = 0; i < options.new_tokens; ++i) {
    const auto begin = context.size() > size_t(window) ? context.end() - window : context.begin();
    const std::vector<std::int64_t> cropped(begin, context.end());
    auto idx = at::tensor(cropped, at::kLong).view({1, -1}).to(device);
    auto last = model.forward(idx).select(1, idx.size(1) - 1).squeeze(0).to(at::kCPU, at::kFloat);  // [V]
    std::int64_t next;
    if (options.greedy) {
      next = last.argmax().item<std::int64_t>();
    } else {
      auto probs = at::softmax(last / options.temperature, -1);
      next = at::multinomial(probs, 1, /*replacement=*/false, gen).item<std::int64_t>();
    }
    context.push_back(next);
    out.push_back(next);
  }
  return out;
}

std::string to_valid_utf8(const std::string& s) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    bool ok = len > 0 && i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(s[i + k]) >> 6) == 0x2;
    if (ok && len > 1) {
      // Overlong forms and surrogates are not valid UTF-8 either.
      const auto c1 = static_cast<unsigned char>(s[i + 1]);
      if ((len == 2 && c < 0xc2) || (len == 3 && c == 0xe0 && c1 < 0xa0) || (len == 3 && c == 0xed && c1 >= 0xa0) ||
          (len == 4 && c == 0xf0 && c1 < 0x90) || (len == 4 && (c > 0xf4 || (c == 0xf4 && c1 >= 0x90))))
        ok = false;
    }
    if (ok) {
      out.append(s, i, len);
      i += len;
    } else {
      out += "\xef\xbf\xbd";
      i += 1;
    }
  }
  return out;
}

}  // namespace attnlab::model
