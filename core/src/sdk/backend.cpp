#include <attnlab/backend.hpp>

namespace attnlab {

AttentionBackend::~AttentionBackend() = default;

torch::Tensor AttentionBackend::regularizer() { return {}; }
std::vector<Statistic> AttentionBackend::statistics() { return {}; }
void AttentionBackend::on_step(std::int64_t, std::int64_t) {}
void AttentionBackend::set_hard(bool hard) { hard_ = hard; }
Density AttentionBackend::density(std::int64_t T, std::int64_t tile) const { return causal_density(T, tile); }

Density causal_density(std::int64_t T, std::int64_t tile) {
  if (T <= 0 || tile <= 0) return {};
  const double n = static_cast<double>(T);
  const double tiles = static_cast<double>((T + tile - 1) / tile);
  return {(n * (n + 1) / 2) / (n * n), (tiles * (tiles + 1) / 2) / (tiles * tiles)};
}

}  // namespace attnlab
