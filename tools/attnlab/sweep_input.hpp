#pragma once
// The sweep file as `attnlab run` and `attnlab submit` read it: loaded, validated against the
// installed plugins and the trial kinds, and expanded into trials, or refused.
#include "runtime/config.hpp"
#include "trials/schemas.hpp"

#include <iostream>
#include <string>
#include <vector>

namespace attnlab::cli {

// False on bad input: the file:line:column message on stderr, exit code 2, nothing touched.
inline bool read_sweep_file(const std::string& path, const BackendCatalog& backends,
                            const std::vector<std::string>& overrides, SweepSpec& sweep,
                            std::vector<TrialSpec>& trials, int& exit_code) {
  try {
    sweep = load_sweep(path, backends, trials::all_schemas(), overrides);
    trials = expand_trials(sweep, backends);
    return true;
  } catch (const std::exception& e) {
    std::cerr << "attnlab: " << e.what() << "\n";
    exit_code = 2;
    return false;
  }
}

}  // namespace attnlab::cli
