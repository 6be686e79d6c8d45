#pragma once
// Learning rate: linear warmup over the first warmup_frac of the steps, then cosine decay to 0.
//   step < W:  lr * (step + 1) / W
//   else:      lr * 0.5 * (1 + cos(pi * (step - W) / (total - W)))
#include <algorithm>
#include <cmath>
#include <cstdint>

namespace attnlab::model {

inline double warmup_cosine_lr(double lr, std::int64_t step, std::int64_t total, double warmup_frac) {
  const auto warmup = static_cast<std::int64_t>(std::ceil(std::clamp(warmup_frac, 0.0, 1.0) * double(total)));
  if (step < warmup) return lr * double(step + 1) / double(warmup);
  const auto decay = std::max<std::int64_t>(1, total - warmup);
  const double progress = std::min(1.0, double(step - warmup) / double(decay));
  return lr * 0.5 * (1.0 + std::cos(M_PI * progress));
}

}  // namespace attnlab::model
