#pragma once
// GPT-2 in LibTorch, with the attention of every layer delegated to an AttentionBackend.
//
//   idx [B, T] -> x = wte[idx] + wpe[0..T)                          x [B, T, C], C = n_embd
//   per layer:  x = x + c_proj(backend(split(c_attn(ln_1(x)))))      q, k, v [B, H, T, D], D = C / H
//               x = x + mlp(ln_2(x)),  mlp = c_proj(gelu_tanh(c_fc(.)))  hidden 4C
//   logits = ln_f(x) @ wte^T                                        [B, T, V] (tied LM head)
//   positions = "rope" (attnlab's own teachers only): no wpe; q and k are rotated instead,
//               pair (i, i + D/2) at position t by angle t * 10000^(-2i/D) (RoFormer), so
//               q_t . k_s depends on t - s alone and a head can find "the previous token"
//               without learning one position vector per index
//   shifted_key_heads = n (attnlab's own teachers only): heads H-n .. H-1 use k[t-1] at position
//               t (zeros at t = 0), so their scores compare a query with the token *before* each key
//   qk_norm = true (attnlab's own teachers only): q <- q / rms(q) * q_norm, k likewise with
//               k_norm (rms over the head's D channels; gains [D] shared by the heads, init 1)
//
// Parameter names follow Hugging Face GPT-2 ("h.3.attn.c_attn.weight"), so checkpoints map by
// name; only HF's Conv1D weights are stored transposed ([in, out]) and are flipped on load.
#include <attnlab/backend.hpp>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace attnlab::model {

struct GPT2Config {
  std::int64_t vocab_size = 50257;
  std::int64_t n_positions = 1024;  // longest sequence the position table covers
  std::int64_t n_embd = 768;
  std::int64_t n_layer = 12;
  std::int64_t n_head = 12;
  double layer_norm_epsilon = 1e-5;
  std::string positions = "learned";  // "learned": GPT-2's wpe table; "rope": rotary q and k, no table
  // RMS-normalise q and k per head (times a learned gain per channel) before the scores: the
  // score scale is then set by the gains, not by how large the residual stream has grown.
  bool qk_norm = false;
  // The last shifted_key_heads heads of every layer take their keys from the previous position
  // ("smeared keys", Olsson et al. 2022): a query then finds "the token after an x" in one layer,
  // the induction step recall needs, instead of waiting for two layers to compose one.
  std::int64_t shifted_key_heads = 0;

  bool rotary() const { return positions == "rope"; }
  std::int64_t head_dim() const { return n_embd / n_head; }
  // Throws std::invalid_argument naming the field and its allowed range.
  void validate() const;
  nlohmann::json to_json() const;
  // Reads HF config.json keys (n_ctx accepted for n_positions); `where` names the source in errors.
  static GPT2Config from_json(const nlohmann::json& j, const std::string& where);
};

// Builds the attention backend of one layer; BackendInit comes with layer_index, n_layers,
// n_heads, head_dim and max_seq_len filled from the model config.
using AttentionFactory = std::function<std::shared_ptr<AttentionBackend>(const BackendInit&)>;

class CausalSelfAttentionImpl : public torch::nn::Module {
 public:
  CausalSelfAttentionImpl(const GPT2Config& config, std::shared_ptr<AttentionBackend> backend);
  torch::Tensor forward(const torch::Tensor& x);  // [B, T, C] -> [B, T, C]
  void set_backend(std::shared_ptr<AttentionBackend> backend);
  const std::shared_ptr<AttentionBackend>& backend() const { return backend_; }
  // When set, every backend call adds its wall time here (the eval's attention milliseconds).
  double* attention_seconds = nullptr;

  torch::nn::Linear c_attn{nullptr}, c_proj{nullptr};
  torch::Tensor q_norm, k_norm;  // qk_norm gains [D]; undefined without qk_norm

 private:
  std::int64_t n_head_;
  bool rotary_;
  std::int64_t shifted_heads_;
  double eps_;
  std::shared_ptr<AttentionBackend> backend_;
};
TORCH_MODULE(CausalSelfAttention);

class MLPImpl : public torch::nn::Module {
 public:
  explicit MLPImpl(const GPT2Config& config);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear c_fc{nullptr}, c_proj{nullptr};
};
TORCH_MODULE(MLP);

class BlockImpl : public torch::nn::Module {
 public:
  BlockImpl(const GPT2Config& config, std::shared_ptr<AttentionBackend> backend);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::LayerNorm ln_1{nullptr}, ln_2{nullptr};
  CausalSelfAttention attn{nullptr};
  MLP mlp{nullptr};
};
TORCH_MODULE(Block);

class GPT2 : public torch::nn::Module {
 public:
  GPT2(const GPT2Config& config, const AttentionFactory& attention, std::uint64_t seed = 0);

  torch::Tensor forward(const torch::Tensor& idx);  // [B, T] int64 -> logits [B, T, V]

  const GPT2Config& config() const { return config_; }
  std::vector<std::shared_ptr<AttentionBackend>> backends() const;
  // Every layer adds the wall time of its attention backend to *seconds (nullptr: off).
  void set_attention_clock(double* seconds);

  // Replaces every layer's backend with a fresh one from `attention` (the student recipe).
  void swap_attention(const AttentionFactory& attention, std::uint64_t seed = 0);
  // A new model with the same config and a deep copy of these weights, attention from `attention`.
  std::shared_ptr<GPT2> copy_with_attention(const AttentionFactory& attention, std::uint64_t seed = 0) const;

  // Weights outside the backends, by name ("wte.weight", "h.0.ln_1.bias", ...).
  std::map<std::string, torch::Tensor> weights() const;
  std::vector<torch::Tensor> backend_parameters() const;
  // Copies `tensors` into the weights; every weight must be present with its exact shape.
  // `where` names the source in errors.
  void load_weights(const std::map<std::string, torch::Tensor>& tensors, const std::string& where);

  // GPT-2's initialisation: N(0, 0.02), residual projections scaled by 1/sqrt(2 n_layer).
  void init_weights(std::uint64_t seed);

  torch::nn::Embedding wte{nullptr}, wpe{nullptr};  // wpe stays null with positions = "rope"
  torch::nn::ModuleList h{nullptr};
  torch::nn::LayerNorm ln_f{nullptr};

 private:
  BackendInit backend_init(int layer, std::uint64_t seed) const;
  GPT2Config config_;
};

// Hugging Face layout: a directory with config.json and model.safetensors (keys with or without
// a "transformer." prefix; Conv1D weights [in, out]). Shapes are checked against config.json.
std::shared_ptr<GPT2> load_hf_gpt2(const std::string& directory, const AttentionFactory& attention);

// attnlab's own checkpoint: one safetensors file, config JSON in __metadata__["attnlab.gpt2_config"].
// Backend parameters are stored too, under "h.<i>.attn.backend.<name>".
void save_checkpoint(const GPT2& model, const std::string& path,
                     const std::map<std::string, std::string>& extra_metadata = {});
std::shared_ptr<GPT2> load_checkpoint(const std::string& path, const AttentionFactory& attention);

// A directory => HF layout; a file => attnlab checkpoint (or an HF model.safetensors whose
// directory holds config.json). Errors name the path and what was expected.
std::shared_ptr<GPT2> load_any(const std::string& path, const AttentionFactory& attention);

// The weights file load_any reads for `path` (for hashing the teacher's identity).
std::string weights_file(const std::string& path);

}  // namespace attnlab::model
