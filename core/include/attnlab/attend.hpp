#pragma once
// The one door the host calls a backend through (as flash-attention's mha_fwd is its one host
// entry): it checks the inputs, calls backend.forward, and checks what comes back, so that a
// wrong shape, dtype or device fails here with the backend's name rather than deep inside a
// plugin or a kernel.
//
//   attend(backend, q, k, v, n_heads):  q [B, H, T, D], k [B, H, S, D], v [B, H, S, D] -> [B, H, T, D]
//
// Checked: every input has rank 4; q, k, v agree on B, H and D, and k, v on S; S == T (causal
// self-attention); H == n_heads (the head count the backend was built for, BackendInit::n_heads);
// q, k, v share one floating dtype and one device, and so do the backend's parameters; the
// output has q's shape and dtype. A failure throws std::invalid_argument (std::logic_error for
// the backend's output) whose message starts with "attention backend '<its name>': ".
#include <attnlab/backend.hpp>
#include <attnlab/export.hpp>

#include <cstdint>

namespace attnlab {

ATTNLAB_API torch::Tensor attend(AttentionBackend& backend, const torch::Tensor& q, const torch::Tensor& k,
                                 const torch::Tensor& v, std::int64_t n_heads);

}  // namespace attnlab
