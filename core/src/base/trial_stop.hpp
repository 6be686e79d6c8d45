#pragma once
// A trial that must end now for a reason that is no bug of attnlab's, keeping what it logged:
//   status "failed": it diverged (a non-finite loss or gradient); a rerun would diverge again,
//                    so it is not retried;
//   status "pruned": a pruner found it hopeless against the finished trials (engine/pruner).
// The child process records the status, the reason and the curves so far (trial_job.cpp).
#include <cmath>
#include <cstdint>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>

namespace attnlab {

struct TrialStopped : std::runtime_error {
  TrialStopped(std::string status_, const std::string& why) : std::runtime_error(why), status(std::move(status_)) {}
  std::string status;  // "failed" | "pruned"
};

// Watches the quantities of a training loop step by step; the first non-finite one stops the
// trial with the step, the quantity and its last finite value.
class DivergenceGuard {
 public:
  explicit DivergenceGuard(std::string what) : what_(std::move(what)) {}

  void check(std::int64_t step, const std::string& quantity, double value) {
    if (std::isfinite(value)) {
      last_[quantity] = {step, value};
      return;
    }
    std::ostringstream why;
    // Spelled out: printf's "nan" or "-nan" depends on a sign bit that means nothing here.
    why << "diverged: " << what_ << " " << quantity << " is " << (std::isnan(value) ? "NaN" : value > 0 ? "+inf" : "-inf")
        << " at step " << step;
    if (auto it = last_.find(quantity); it != last_.end())
      why << " (last finite value " << it->second.second << " at step " << it->second.first << ")";
    else
      why << " (no finite value before it)";
    throw TrialStopped("failed", why.str());
  }

 private:
  std::string what_;
  std::map<std::string, std::pair<std::int64_t, double>> last_;
};

}  // namespace attnlab
