#pragma once
// Mask expressions as text (grammar in attnlab/masks.hpp): checked and spelled canonically
// without building any tensor, so a backend's validate hook can refuse a bad one cheaply.
#include <attnlab/export.hpp>

#include <string>
#include <vector>

namespace attnlab::masks {

// Throws std::invalid_argument naming the offending part ("window:0: W must be >= 1").
// Returns the canonical spelling (used as cache key and in the database).
ATTNLAB_API std::string canonical(const std::string& expression);

// Splits a comma-separated candidate list ("causal, window:64, sink:4|window:16") and
// canonicalizes each entry; throws like canonical().
ATTNLAB_API std::vector<std::string> parse_list(const std::string& comma_separated);

// parse_list for a backend parameter: a bad entry throws ParamError naming `key`.
ATTNLAB_API std::vector<std::string> parse_list_param(const std::string& key, const std::string& comma_separated);

// canonical() for a backend parameter: a bad expression throws ParamError naming `key`.
ATTNLAB_API std::string canonical_param(const std::string& key, const std::string& expression);

}  // namespace attnlab::masks
