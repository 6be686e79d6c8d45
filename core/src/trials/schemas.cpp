#include "trials/schemas.hpp"

namespace attnlab::trials {

std::vector<KindSchema> all_schemas() {
  return {
#define ATTNLAB_TRIAL_KIND(name) name##_schema(),
#include "trials/kinds.def"
#undef ATTNLAB_TRIAL_KIND
  };
}

}  // namespace attnlab::trials
