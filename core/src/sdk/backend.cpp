// AttentionBackend's defaults (backend.hpp), HeadSearchable's key function and the cost and density helpers.
#include <attnlab/backend.hpp>
#include <attnlab/head_search.hpp>
#include <attnlab/masks.hpp>

#include <cmath>

namespace attnlab {

AttentionBackend::~AttentionBackend() = default;
HeadSearchable::~HeadSearchable() = default;

torch::Tensor AttentionBackend::regularizer() { return {}; }
std::vector<Statistic> AttentionBackend::statistics() { return {}; }
void AttentionBackend::on_step(std::int64_t, std::int64_t) {}
void AttentionBackend::set_hard(bool hard) { hard_ = hard; }
kernels::LayoutSet AttentionBackend::layouts(std::int64_t T) const { return {masks::block_layout("causal", T, 64)}; }
bool AttentionBackend::exact_in_hard_mode() const { return true; }
Cost AttentionBackend::cost(const AttentionShape& shape) const { return mask_cost(layouts(shape.seq_len), shape); }

Density causal_density(std::int64_t T, std::int64_t tile) {
  if (T <= 0 || tile <= 0) return {};
  const double n = static_cast<double>(T);
  const double tiles = static_cast<double>((T + tile - 1) / tile);
  return {(n * (n + 1) / 2) / (n * n), (tiles * (tiles + 1) / 2) / (tiles * tiles)};
}

namespace {
Cost from_elements(double elements, const AttentionShape& shape) {
  const double forward = 4.0 * static_cast<double>(shape.head_dim) * elements;
  return {forward, 2.5 * forward};
}
}  // namespace

Cost mask_cost(const kernels::LayoutSet& layouts, const AttentionShape& shape) {
  if (layouts.empty()) return {};
  double elements = 0.0;  // over all (b, h)
  for (const auto& layout : layouts)
    elements += layout->element_density() * static_cast<double>(layout->T * layout->S);
  // One layout per (b, h) covers every slice once; a shared one, or one per head, repeats.
  const double slices = static_cast<double>(shape.batch * shape.heads);
  elements *= slices / static_cast<double>(layouts.size());
  return from_elements(elements, shape);
}

Cost full_cost(const AttentionShape& shape) {
  const double T = static_cast<double>(shape.seq_len);
  return from_elements(static_cast<double>(shape.batch * shape.heads) * T * T, shape);
}

Cost mixture_cost(const std::vector<std::string>& expressions, const AttentionShape& shape, std::int64_t tile) {
  Cost total;
  for (const auto& expression : expressions) {
    const auto one = mask_cost({masks::block_layout(expression, shape.seq_len, tile)}, shape);
    total.forward_flops += one.forward_flops;
    total.backward_flops += one.backward_flops;
  }
  return total;
}

Density density_of(const AttentionBackend& backend, std::int64_t T) { return density_of(backend.layouts(T)); }

Density density_of(const kernels::LayoutSet& layouts) {
  Density mean;
  for (const auto& layout : layouts) {
    mean.element += layout->element_density() / static_cast<double>(layouts.size());
    mean.block += layout->block_density() / static_cast<double>(layouts.size());
  }
  return mean;
}

Density executed_density(const AttentionBackend& backend, const AttentionShape& shape) {
  return executed_density(backend, shape, backend.layouts(shape.seq_len));
}

Density executed_density(const AttentionBackend& backend, const AttentionShape& shape,
                         const kernels::LayoutSet& layouts) {
  const double full = full_cost(shape).forward_flops;
  if (full > 0.0 && backend.cost(shape).forward_flops >= full * (1.0 - 1e-9)) return {1.0, 1.0};
  return density_of(layouts);
}

}  // namespace attnlab
