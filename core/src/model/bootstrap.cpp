// Bootstrap intervals over held-out windows (bootstrap.hpp).
#include "model/bootstrap.hpp"

#include <algorithm>
#include <cmath>
#include <random>

namespace attnlab::model {
namespace {

struct Figures {
  double delta_ppl, rel_delta_ppl, kl, agreement;
};

Figures figures(const WindowStats& sum) {
  const double tokens = std::max(sum.tokens, 1.0);
  const double teacher = std::exp(sum.teacher_nll / tokens), student = std::exp(sum.student_nll / tokens);
  return {student - teacher, student / teacher - 1.0, sum.kl / tokens, sum.agree / tokens};
}

void add(WindowStats& into, const WindowStats& w) {
  into.teacher_nll += w.teacher_nll;
  into.student_nll += w.student_nll;
  into.kl += w.kl;
  into.agree += w.agree;
  into.tokens += w.tokens;
  into.bytes += w.bytes;
}

double percentile(std::vector<double> values, double p) {
  std::sort(values.begin(), values.end());
  const double rank = p * static_cast<double>(values.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(rank)), hi = static_cast<std::size_t>(std::ceil(rank));
  return values[lo] + (values[hi] - values[lo]) * (rank - static_cast<double>(lo));
}

}  // namespace

EvalSummary summarize(const std::vector<WindowStats>& windows, int resamples, std::uint64_t seed) {
  EvalSummary s;
  WindowStats total;
  for (const auto& w : windows) add(total, w);
  s.windows = static_cast<int>(windows.size());
  s.tokens = total.tokens;
  s.bytes = total.bytes;
  const double tokens = std::max(total.tokens, 1.0), bytes = std::max(total.bytes, 1.0);
  s.teacher_ppl = std::exp(total.teacher_nll / tokens);
  s.student_ppl = std::exp(total.student_nll / tokens);
  s.teacher_bpb = total.teacher_nll / std::log(2.0) / bytes;
  s.student_bpb = total.student_nll / std::log(2.0) / bytes;
  const Figures point = figures(total);
  s.delta_ppl = {point.delta_ppl, point.delta_ppl, point.delta_ppl};
  s.rel_delta_ppl = {point.rel_delta_ppl, point.rel_delta_ppl, point.rel_delta_ppl};
  s.kl = {point.kl, point.kl, point.kl};
  s.agreement = {point.agreement, point.agreement, point.agreement};
  if (windows.size() < 2 || resamples < 1) return s;

  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<std::size_t> pick(0, windows.size() - 1);
  std::vector<double> delta, rel, kl, agree;
  for (int r = 0; r < resamples; ++r) {
    WindowStats sum;
    for (std::size_t i = 0; i < windows.size(); ++i) add(sum, windows[pick(rng)]);
    const Figures f = figures(sum);
    delta.push_back(f.delta_ppl);
    rel.push_back(f.rel_delta_ppl);
    kl.push_back(f.kl);
    agree.push_back(f.agreement);
  }
  auto bounds = [](Interval& i, const std::vector<double>& v) {
    i.lo = percentile(v, 0.025);
    i.hi = percentile(v, 0.975);
  };
  bounds(s.delta_ppl, delta);
  bounds(s.rel_delta_ppl, rel);
  bounds(s.kl, kl);
  bounds(s.agreement, agree);
  return s;
}

Interval bootstrap_ratio(const std::vector<double>& num, const std::vector<double>& den, int resamples,
                         std::uint64_t seed) {
  auto ratio = [](double n, double d) { return d > 0 ? n / d : 0.0; };
  double n = 0, d = 0;
  for (std::size_t i = 0; i < num.size(); ++i) n += num[i], d += den[i];
  Interval out{ratio(n, d), ratio(n, d), ratio(n, d)};
  if (num.size() < 2 || resamples < 1) return out;
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<std::size_t> pick(0, num.size() - 1);
  std::vector<double> values;
  for (int r = 0; r < resamples; ++r) {
    double rn = 0, rd = 0;
    for (std::size_t i = 0; i < num.size(); ++i) {
      const auto j = pick(rng);
      rn += num[j], rd += den[j];
    }
    values.push_back(ratio(rn, rd));
  }
  out.lo = percentile(values, 0.025);
  out.hi = percentile(values, 0.975);
  return out;
}

}  // namespace attnlab::model
