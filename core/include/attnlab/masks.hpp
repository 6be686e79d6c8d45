#pragma once
// Candidate attention masks, shared by backends and kernels. A mask says which keys s each
// query t may attend to; every mask is intersected with causality (s <= t).
//
// Expression grammar (whitespace ignored):
//   expr  := term ('|' term)*          union
//   term  := atom ('&' atom)*          intersection (binds tighter than '|')
//   atom  := causal                    every s <= t
//          | window:W                  t - W < s <= t                   (W >= 1)
//          | stride:S                  (t - s) % S == 0                 (S >= 1, dilated)
//          | stride:S:W                strided, only within t - s < W
//          | sink:N                    s < N (global/sink tokens)
//          | block:B                   s, t in the same block of B      (block-local)
//          | random:P[:B[:SEED]]       each B x B tile (default 64) kept with probability P,
//                                      seeded (default 0); the diagonal tile always kept
// e.g. "sink:4|window:256", "stride:64:1024|window:64", "block:128".
//
// Parsing and canonical spelling: attnlab/mask_expr.hpp (no tensors). Every result here is
// cached per (canonical expression, T, tile); tensors returned are shared and must not be
// modified.
#include <attnlab/density.hpp>
#include <attnlab/export.hpp>
#include <attnlab/kernels/block_layout.hpp>
#include <attnlab/mask_expr.hpp>

#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace attnlab::masks {

// The masks of `expressions` stacked as 0/1 numbers: [K, T, T] in `like`'s dtype and device.
ATTNLAB_API at::Tensor stack(const std::vector<std::string>& expressions, std::int64_t T,
                             const at::TensorOptions& like);

// stack() for a backend's fixed candidate list, rebuilt only when T, dtype or device change
// (the per-mask bool tensors are cached by the library; this saves the stack and the cast).
class ATTNLAB_API StackCache {
 public:
  const at::Tensor& get(const std::vector<std::string>& expressions, std::int64_t T, const at::TensorOptions& like);

 private:
  at::Tensor stack_;
};

// bool [T, T] on CPU, true = attend, causal.
ATTNLAB_API at::Tensor dense(const std::string& expression, std::int64_t T);

// Block layout at tile size `tile` (see kernels/block_layout.hpp).
ATTNLAB_API std::shared_ptr<const kernels::BlockLayout> block_layout(const std::string& expression,
                                                                     std::int64_t T, std::int64_t tile);

// Element density (allowed / T*T) and block density (non-empty tiles / all tiles).
ATTNLAB_API Density density(const std::string& expression, std::int64_t T, std::int64_t tile);

}  // namespace attnlab::masks
