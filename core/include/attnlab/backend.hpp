#pragma once
// The attention backend interface (plugin API 2): what a plugin implements and what the host
// calls.
//
//   forward:  q [B, H, T, D], k [B, H, S, D], v [B, H, S, D]  ->  out [B, H, T, D]
//             causal: query t may only see keys s <= t (self-attention, S == T).
//
// Everything but forward is optional; the defaults below are what the host assumes when a
// backend does not override them.
#include <attnlab/density.hpp>
#include <attnlab/export.hpp>
#include <attnlab/kernels/block_layout.hpp>
#include <attnlab/params.hpp>

#include <torch/nn/module.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace attnlab {

// What a backend is built with. Model trials fill the shape fields from the model config;
// bench trials from the sweep grid.
struct BackendInit {
  Params params;              // resolved against the plugin's schema (and its validate hook)
  std::int64_t n_heads = 1;   // H
  std::int64_t head_dim = 64; // D
  std::int64_t max_seq_len = 1024;
  int layer_index = 0;        // which transformer layer this instance serves
  int n_layers = 1;
  std::uint64_t seed = 0;     // for any randomness in initialisation or masks
};

// A named number a backend reports for logging (density, a blend weight, gate usage...).
// Names are flat and stable, e.g. "weight/h3/window:64".
struct Statistic {
  std::string name;
  double value = 0.0;
};

// The shape of one attention call, for cost().
struct AttentionShape {
  std::int64_t batch = 1, heads = 1, seq_len = 1, head_dim = 64;  // B, H, T (= S), D
};

// FLOPs one call computes (a multiply-add counts 2).
struct Cost {
  double forward_flops = 0.0;
  double backward_flops = 0.0;  // the backward alone
};

class ATTNLAB_API AttentionBackend : public torch::nn::Module {
 public:
  explicit AttentionBackend(std::string name) : torch::nn::Module(std::move(name)) {}
  ~AttentionBackend() override;  // out of line: the key function keeps vtable+typeinfo in core

  // Required. Shapes as above; must be causal and differentiable w.r.t. q, k, v and the
  // backend's own parameters.
  virtual torch::Tensor forward(const torch::Tensor& q, const torch::Tensor& k,
                                const torch::Tensor& v) = 0;

  // Penalty added to the training loss as lambda * regularizer().
  // Default: an undefined tensor, meaning "no term".
  virtual torch::Tensor regularizer();

  // Numbers worth logging at this point of training. Default: none. A backend that chooses
  // what it computes from its input reports "select_ms": the wall time (ms) of its last
  // forward's selection (scoring and building the block list); bench trials record its median
  // over the timed passes as time/select_ms.
  virtual std::vector<Statistic> statistics();

  // Called once per optimizer step, before forward (annealing schedules). Default: nothing.
  virtual void on_step(std::int64_t step, std::int64_t total_steps);

  // Hard/eval mode: a learned soft mask becomes a fixed sparse one and executes sparsely.
  // Default: remember the flag, change nothing (a backend with nothing to harden).
  virtual void set_hard(bool hard);
  bool hard() const { return hard_; }

  // The block layout(s) the current mode computes at T, at the backend's own tile size: one
  // shared by every (b, h), one per head (H) or one per (b, h) (B*H), as the kernels take
  // them. A backend whose selection depends on its input reports its last forward's (at
  // this T; before any, its best guess). In hard mode the output must be the softmax
  // attention restricted to these layouts' element masks: `attnlab check` holds it to that.
  // Default: the causal layout at tile 64.
  virtual kernels::LayoutSet layouts(std::int64_t T) const;

  // Whether hard mode's output is exactly the softmax attention over layouts()'s element masks
  // (what `attnlab check` compares with the float64 reference). Default: true. A backend that
  // mixes several masked softmaxes even in hard mode (sigmoid gates that keep two candidates)
  // says false, and the check reports that comparison as not applicable.
  virtual bool exact_in_hard_mode() const;

  // What one call computes. Default: mask_cost(layouts(T), shape), i.e. Q K^T and P V over
  // the allowed elements. Override when the cost is not mask-shaped: masked T x T math
  // (full_cost), a mixture of several kernel passes, linear attention.
  virtual Cost cost(const AttentionShape& shape) const;

 private:
  bool hard_ = false;
};

// 4·D FLOPs per allowed element of `layouts` (Q K^T and P V, 2·D each), B·H times; the
// backward 2.5x the forward (dV, dP, dQ, dK and the recomputed scores, as FlashAttention
// counts it). A shared layout counts for every (b, h), one per head for every batch.
ATTNLAB_API Cost mask_cost(const kernels::LayoutSet& layouts, const AttentionShape& shape);
// The same for every element of the T x T matrix: what masked T x T math computes.
ATTNLAB_API Cost full_cost(const AttentionShape& shape);
// A soft mixture that runs every candidate mask in its own kernel pass: the sum of mask_cost
// over one block layout per expression (masks.hpp), at tile `tile`.
ATTNLAB_API Cost mixture_cost(const std::vector<std::string>& expressions, const AttentionShape& shape,
                              std::int64_t tile);

// Element and block density of a layout set (the mean over its layouts), and of a backend's
// layouts(T).
ATTNLAB_API Density density_of(const kernels::LayoutSet& layouts);
ATTNLAB_API Density density_of(const AttentionBackend& backend, std::int64_t T);

// The density one call executes, as the host reports it (bench density/*, distill
// causal_fraction): {1, 1} when cost() is at least full_cost (masked T x T math computes every
// element and tile, whatever its mask says), else density_of(layouts(T)). cost() may add work
// that is not attention tiles (topk's scoring, gating's mixing); only the attention counts here.
// Where the CPU kernel ran, the bench and distill evaluation take the block density from the
// kernel's own tile count instead (kernels::forward_tiles_computed), which also counts every
// pass of a mixture; the `accounting` check (check/contract.hpp) holds hard mode to both.
ATTNLAB_API Density executed_density(const AttentionBackend& backend, const AttentionShape& shape);
// The same with layouts(T) already at hand: an input-dependent backend rebuilds them per call.
ATTNLAB_API Density executed_density(const AttentionBackend& backend, const AttentionShape& shape,
                                     const kernels::LayoutSet& layouts);

}  // namespace attnlab
