#pragma once
// The bench kind's verdicts, declared once for its summary, report and compare tables.

namespace attnlab::trials::bench {

// A trial whose timed repeats spread by more than this (time/cv, stddev / mean) is flagged
// noisy: its ratios are suspect.
inline constexpr double kNoisyCv = 0.1;

}  // namespace attnlab::trials::bench
