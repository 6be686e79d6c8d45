#pragma once
// The attention backend interface: what a plugin implements and what the host calls.
//
//   forward:  q [B, H, T, D], k [B, H, S, D], v [B, H, S, D]  ->  out [B, H, T, D]
//             causal: query t may only see keys s <= t (self-attention, S == T).
//
// Everything but forward is optional; the defaults below are what the host assumes when a
// backend does not override them.
#include <attnlab/export.hpp>
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
  Params params;              // resolved against the plugin's schema
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

// Fraction of the T x S score matrix a backend computes: per element, and per tile of
// `tile` x `tile` (a tile counts when any element in it is computed). Speed follows blocks.
struct Density {
  double element = 0.0;
  double block = 0.0;
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

  // Numbers worth logging at this point of training. Default: none.
  virtual std::vector<Statistic> statistics();

  // Called once per optimizer step, before forward (annealing schedules). Default: nothing.
  virtual void on_step(std::int64_t step, std::int64_t total_steps);

  // Hard/eval mode: a learned soft mask becomes a fixed sparse one and executes sparsely.
  // Default: remember the flag, change nothing (a backend with nothing to harden).
  virtual void set_hard(bool hard);
  bool hard() const { return hard_; }

  // Fraction of the causal T x T work this backend does in its current state, at `tile`.
  // Default: the causal mask (about half of all elements).
  virtual Density density(std::int64_t T, std::int64_t tile) const;

 private:
  bool hard_ = false;
};

// The causal mask's density at T (element and tile level), the default above.
ATTNLAB_API Density causal_density(std::int64_t T, std::int64_t tile);

}  // namespace attnlab
