#include "trials/kind.hpp"

#include <stdexcept>
#include <utility>

namespace attnlab::trials {

// Defined in their own files.
const TrialKind& bench_kind();
const TrialKind& distill_kind();

namespace {
// The registry: an explicit list (a static library drops self-registering objects nobody
// references).
const std::vector<std::pair<std::string, const TrialKind*>>& kinds() {
  static const std::vector<std::pair<std::string, const TrialKind*>> list = {{"bench", &bench_kind()},
                                                                             {"distill", &distill_kind()}};
  return list;
}
}  // namespace

const TrialKind& trial_kind(const std::string& name) {
  for (const auto& [n, kind] : kinds())
    if (n == name) return *kind;
  std::string known;
  for (const auto& [n, kind] : kinds()) known += (known.empty() ? "" : "|") + n;
  throw std::invalid_argument("unknown trial kind '" + name + "' (known: " + known + ")");
}

std::vector<std::string> trial_kind_names() {
  std::vector<std::string> names;
  for (const auto& [n, kind] : kinds()) names.push_back(n);
  return names;
}

}  // namespace attnlab::trials
