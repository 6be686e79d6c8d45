#pragma once
// attnlab merge: shard databases (one per Slurm array task, `attnlab run --shard`) folded
// into one, keyed by each trial's stable key, so merging twice changes nothing:
//   a key the target lacks is copied, with its results and its run;
//   a better status replaces a worse one (done > failed > running > pending), results too;
//   otherwise the target keeps its own.
// One transaction per shard: a merge that fails leaves the target as it was.
#include "runtime/store.hpp"

#include <string>

namespace attnlab {

struct MergeSummary {
  int added = 0, replaced = 0, kept = 0;
};

MergeSummary merge_into(ResultStore& target, const std::string& shard_path);

}  // namespace attnlab
