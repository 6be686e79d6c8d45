#include "trials/kind.hpp"

#include <stdexcept>

namespace attnlab::trials {

#define ATTNLAB_TRIAL_KIND(name) const TrialKind& name##_kind();
#include "trials/kinds.def"
#undef ATTNLAB_TRIAL_KIND

namespace {

// An explicit list made from kinds.def (a static library drops self-registering objects that
// nobody references), then the kinds registered at run time.
std::vector<const TrialKind*>& kinds() {
  static std::vector<const TrialKind*> list = {
#define ATTNLAB_TRIAL_KIND(name) &name##_kind(),
#include "trials/kinds.def"
#undef ATTNLAB_TRIAL_KIND
  };
  return list;
}

}  // namespace

const TrialKind& trial_kind(const std::string& name) {
  for (const auto* kind : kinds())
    if (kind->tables().name() == name) return *kind;
  std::string known;
  for (const auto& n : trial_kind_names()) known += (known.empty() ? "" : "|") + n;
  throw std::invalid_argument("unknown trial kind '" + name + "' (known: " + known + ")");
}

std::vector<std::string> trial_kind_names() {
  std::vector<std::string> names;
  for (const auto* kind : kinds()) names.push_back(kind->tables().name());
  return names;
}

void register_trial_kind(const TrialKind& kind) {
  register_kind_tables(kind.tables());  // throws when the name is taken
  kinds().push_back(&kind);
}

}  // namespace attnlab::trials
