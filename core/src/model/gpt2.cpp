// GPT-2 with pluggable attention; the architecture is written out in gpt2.hpp.
#include "model/gpt2.hpp"

#include "model/safetensors.hpp"

#include <attnlab/attend.hpp>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/nn/functional/activation.h>
#include <torch/nn/functional/linear.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

namespace attnlab::model {
namespace fs = std::filesystem;

namespace {

std::string shape_str(at::IntArrayRef shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

constexpr const char* kBackendInfix = ".attn.backend.";
constexpr const char* kConfigKey = "attnlab.gpt2_config";

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot open");
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {  // parse_error, out_of_range (5e5555)
    throw std::runtime_error(path + ": not valid JSON: " + e.what());
  }
}

}  // namespace

// ---------------------------------------------------------------------------------- config

void GPT2Config::validate() const {
  auto require = [](bool ok, const std::string& what) {
    if (!ok) throw std::invalid_argument("GPT-2 config: " + what);
  };
  require(vocab_size >= 1, "vocab_size = " + std::to_string(vocab_size) + " must be >= 1");
  require(n_positions >= 1, "n_positions = " + std::to_string(n_positions) + " must be >= 1");
  require(n_layer >= 1, "n_layer = " + std::to_string(n_layer) + " must be >= 1");
  require(n_head >= 1, "n_head = " + std::to_string(n_head) + " must be >= 1");
  require(n_embd >= 1 && n_embd % n_head == 0,
          "n_embd = " + std::to_string(n_embd) + " must be a positive multiple of n_head = " + std::to_string(n_head));
  require(layer_norm_epsilon > 0, "layer_norm_epsilon must be > 0");
  require(positions == "learned" || positions == "rope",
          "positions = \"" + positions + "\" must be \"learned\" or \"rope\"");
  require(!rotary() || head_dim() % 2 == 0,
          "positions = \"rope\" needs an even head_dim (n_embd / n_head = " + std::to_string(head_dim()) + ")");
  require(shifted_key_heads >= 0 && shifted_key_heads <= n_head,
          "shifted_key_heads = " + std::to_string(shifted_key_heads) + " must be in [0, n_head = " +
              std::to_string(n_head) + "]");
}

nlohmann::json GPT2Config::to_json() const {
  nlohmann::json j = {{"vocab_size", vocab_size}, {"n_positions", n_positions}, {"n_embd", n_embd},
                      {"n_layer", n_layer},       {"n_head", n_head},           {"layer_norm_epsilon", layer_norm_epsilon}};
  // Only when not GPT-2's own, so configs (and the teacher cache keys hashed from them) written
  // before the option existed stay the same.
  if (rotary()) j["positions"] = positions;
  if (qk_norm) j["qk_norm"] = true;
  if (shifted_key_heads > 0) j["shifted_key_heads"] = shifted_key_heads;
  return j;
}

GPT2Config GPT2Config::from_json(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) throw std::invalid_argument(where + ": config is not a JSON object");
  auto integer = [&](const char* key, std::int64_t& out, const char* alias = nullptr) {
    const char* found = j.contains(key) ? key : (alias && j.contains(alias) ? alias : nullptr);
    if (!found) throw std::invalid_argument(where + ": config lacks \"" + key + "\"");
    if (!j[found].is_number_integer()) throw std::invalid_argument(where + ": \"" + found + "\" must be an integer");
    out = j[found].get<std::int64_t>();
  };
  GPT2Config c;
  integer("vocab_size", c.vocab_size);
  integer("n_positions", c.n_positions, "n_ctx");
  integer("n_embd", c.n_embd);
  integer("n_layer", c.n_layer);
  integer("n_head", c.n_head);
  auto expect = [&](const char* key, bool ok, const char* type) {
    if (!ok) throw std::invalid_argument(where + ": \"" + key + "\" = " + j[key].dump() + " must be " + type);
  };
  if (j.contains("layer_norm_epsilon")) {
    expect("layer_norm_epsilon", j["layer_norm_epsilon"].is_number(), "a number");
    c.layer_norm_epsilon = j["layer_norm_epsilon"].get<double>();
  }
  // Variants this implementation does not compute must be refused, not silently misread.
  if (j.contains("n_inner") && !j["n_inner"].is_null()) {
    expect("n_inner", j["n_inner"].is_number_integer(), "an integer or null");
    if (j["n_inner"].get<std::int64_t>() != 4 * c.n_embd)
      throw std::invalid_argument(where + ": n_inner = " + j["n_inner"].dump() + " unsupported (only 4 * n_embd)");
  }
  if (j.contains("activation_function")) {
    expect("activation_function", j["activation_function"].is_string(), "a string");
    const auto act = j["activation_function"].get<std::string>();
    if (act != "gelu_new" && act != "gelu_pytorch_tanh")
      throw std::invalid_argument(where + ": activation_function \"" + act + "\" unsupported (gelu_new only)");
  }
  if (j.contains("positions")) {
    expect("positions", j["positions"].is_string(), "a string");
    c.positions = j["positions"].get<std::string>();
  }
  if (j.contains("qk_norm")) {
    expect("qk_norm", j["qk_norm"].is_boolean(), "true or false");
    c.qk_norm = j["qk_norm"].get<bool>();
  }
  if (j.contains("shifted_key_heads")) integer("shifted_key_heads", c.shifted_key_heads);
  if (j.contains("model_type") && j["model_type"] != "gpt2")
    throw std::invalid_argument(where + ": model_type " + j["model_type"].dump() + " is not \"gpt2\"");
  try {
    c.validate();
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(where + ": " + e.what());
  }
  return c;
}

// ---------------------------------------------------------------------------------- modules

CausalSelfAttentionImpl::CausalSelfAttentionImpl(const GPT2Config& config, std::shared_ptr<AttentionBackend> backend)
    : n_head_(config.n_head),
      rotary_(config.rotary()),
      shifted_heads_(config.shifted_key_heads),
      eps_(config.layer_norm_epsilon) {
  c_attn = register_module("c_attn", torch::nn::Linear(config.n_embd, 3 * config.n_embd));
  c_proj = register_module("c_proj", torch::nn::Linear(config.n_embd, config.n_embd));
  if (config.qk_norm) {
    q_norm = register_parameter("q_norm", at::ones({config.head_dim()}));
    k_norm = register_parameter("k_norm", at::ones({config.head_dim()}));
  }
  set_backend(std::move(backend));
}

void CausalSelfAttentionImpl::set_backend(std::shared_ptr<AttentionBackend> backend) {
  if (!backend) throw std::invalid_argument("attention factory returned no backend");
  backend_ = backend_ ? replace_module("backend", std::move(backend)) : register_module("backend", std::move(backend));
}

namespace {
// Rotary positions, "rotate half" layout: q and k [B, H, T, D] at position t, pair
// (x_i, x_{i+D/2}) turned by angle t * 10000^(-2i/D); one angle table serves both.
// Angles in float64: t * freq at t ~ 1e4 loses digits in fp32.
void rotate_positions(torch::Tensor& q, torch::Tensor& k) {
  const auto T = q.size(2), half = q.size(3) / 2;
  const auto f64 = q.options().dtype(at::kDouble);
  auto inv_freq = at::pow(10000.0, at::arange(half, f64) * (-2.0 / double(2 * half)));
  auto angles = at::arange(T, f64).unsqueeze(1) * inv_freq.unsqueeze(0);  // [T, D/2]
  const auto cos = angles.cos().to(q.scalar_type()), sin = angles.sin().to(q.scalar_type());
  auto rotate = [&](const torch::Tensor& x) {
    auto x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
    return at::cat({x1 * cos - x2 * sin, x1 * sin + x2 * cos}, -1);
  };
  q = rotate(q);
  k = rotate(k);
}
}  // namespace

torch::Tensor CausalSelfAttentionImpl::forward(const torch::Tensor& x) {
  const auto B = x.size(0), T = x.size(1), C = x.size(2), D = C / n_head_;
  auto qkv = c_attn->forward(x).split(C, /*dim=*/2);  // 3 x [B, T, C]
  auto heads = [&](const torch::Tensor& t) { return t.view({B, T, n_head_, D}).transpose(1, 2); };
  auto q = heads(qkv[0]), k = heads(qkv[1]);
  if (shifted_heads_ > 0) {  // the last heads' keys one position later: still causal
    const auto n = shifted_heads_;
    auto later = at::constant_pad_nd(k.narrow(1, n_head_ - n, n).narrow(2, 0, T - 1), {0, 0, 1, 0});
    k = at::cat({k.narrow(1, 0, n_head_ - n), later}, 1);
  }
  if (q_norm.defined()) {
    auto rms_normed = [&](const torch::Tensor& t, const torch::Tensor& gain) {
      return t * at::rsqrt(t.pow(2).mean(-1, /*keepdim=*/true) + eps_) * gain;
    };
    q = rms_normed(q, q_norm);
    k = rms_normed(k, k_norm);
  }
  if (rotary_) rotate_positions(q, k);
  const auto start = attention_seconds ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
  auto y = attend(*backend_, q, k, heads(qkv[2]), n_head_);  // [B, H, T, D]
  if (attention_seconds)
    *attention_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return c_proj->forward(y.transpose(1, 2).contiguous().view({B, T, C}));
}

MLPImpl::MLPImpl(const GPT2Config& config) {
  c_fc = register_module("c_fc", torch::nn::Linear(config.n_embd, 4 * config.n_embd));
  c_proj = register_module("c_proj", torch::nn::Linear(4 * config.n_embd, config.n_embd));
}

torch::Tensor MLPImpl::forward(const torch::Tensor& x) {
  return c_proj->forward(at::gelu(c_fc->forward(x), "tanh"));
}

BlockImpl::BlockImpl(const GPT2Config& config, std::shared_ptr<AttentionBackend> backend) {
  auto ln = torch::nn::LayerNormOptions({config.n_embd}).eps(config.layer_norm_epsilon);
  ln_1 = register_module("ln_1", torch::nn::LayerNorm(ln));
  attn = register_module("attn", CausalSelfAttention(config, std::move(backend)));
  ln_2 = register_module("ln_2", torch::nn::LayerNorm(ln));
  mlp = register_module("mlp", MLP(config));
}

torch::Tensor BlockImpl::forward(const torch::Tensor& x) {
  auto y = x + attn->forward(ln_1->forward(x));
  return y + mlp->forward(ln_2->forward(y));
}

// ---------------------------------------------------------------------------------- GPT2

BackendInit GPT2::backend_init(int layer, std::uint64_t seed) const {
  BackendInit init;
  init.n_heads = config_.n_head;
  init.head_dim = config_.head_dim();
  init.max_seq_len = config_.n_positions;
  init.layer_index = layer;
  init.n_layers = static_cast<int>(config_.n_layer);
  init.seed = seed;  // the same for every layer; backends that want variety mix in layer_index
  return init;
}

GPT2::GPT2(const GPT2Config& config, const AttentionFactory& attention, std::uint64_t seed) : config_(config) {
  config_.validate();
  wte = register_module("wte", torch::nn::Embedding(config.vocab_size, config.n_embd));
  if (!config.rotary()) wpe = register_module("wpe", torch::nn::Embedding(config.n_positions, config.n_embd));
  h = register_module("h", torch::nn::ModuleList());
  for (int i = 0; i < config.n_layer; ++i) h->push_back(Block(config, attention(backend_init(i, seed))));
  ln_f = register_module("ln_f", torch::nn::LayerNorm(
                                     torch::nn::LayerNormOptions({config.n_embd}).eps(config.layer_norm_epsilon)));
  init_weights(seed);
}

void GPT2::init_weights(std::uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const double residual_std = 0.02 / std::sqrt(2.0 * static_cast<double>(config_.n_layer));
  for (auto& [name, p] : weights()) {
    // Draw on CPU with our generator, so the same seed gives the same model on every device.
    if (ends_with(name, ".bias")) {
      p.zero_();
    } else if (name.find("ln_") != std::string::npos || ends_with(name, "_norm")) {
      p.fill_(1.0);  // layer norms and the qk_norm gains
    } else {
      const double std = ends_with(name, "c_proj.weight") ? residual_std : 0.02;
      p.copy_(at::empty(p.sizes(), p.options().device(at::kCPU)).normal_(0.0, std, gen));
    }
  }
}

torch::Tensor GPT2::forward(const torch::Tensor& idx) {
  const auto T = idx.size(1);
  TORCH_CHECK(T <= config_.n_positions, "GPT-2: sequence length ", T, " exceeds n_positions = ", config_.n_positions);
  auto x = wte->forward(idx);
  if (wpe) x = x + wpe->forward(torch::arange(T, idx.options().dtype(torch::kLong)));
  for (const auto& block : *h) x = block->as<BlockImpl>()->forward(x);
  return torch::nn::functional::linear(ln_f->forward(x), wte->weight);  // tied head
}

std::vector<std::shared_ptr<AttentionBackend>> GPT2::backends() const {
  std::vector<std::shared_ptr<AttentionBackend>> out;
  for (const auto& block : *h) out.push_back(block->as<BlockImpl>()->attn->backend());
  return out;
}

void GPT2::set_attention_clock(double* seconds) {
  for (const auto& block : *h) block->as<BlockImpl>()->attn->attention_seconds = seconds;
}

void GPT2::swap_attention(const AttentionFactory& attention, std::uint64_t seed) {
  const auto device = wte->weight.device();
  for (size_t i = 0; i < h->size(); ++i) {
    auto backend = attention(backend_init(static_cast<int>(i), seed));
    if (backend) backend->to(device);
    h->ptr(i)->as<BlockImpl>()->attn->set_backend(std::move(backend));
  }
}

std::shared_ptr<GPT2> GPT2::copy_with_attention(const AttentionFactory& attention, std::uint64_t seed) const {
  auto copy = std::make_shared<GPT2>(config_, attention, seed);
  copy->to(wte->weight.device());
  copy->load_weights(weights(), "copy of a GPT-2 model");
  return copy;
}

std::map<std::string, torch::Tensor> GPT2::weights() const {
  std::map<std::string, torch::Tensor> out;
  for (const auto& item : named_parameters(/*recurse=*/true))
    if (item.key().find(kBackendInfix) == std::string::npos) out.emplace(item.key(), item.value());
  return out;
}

std::vector<torch::Tensor> GPT2::backend_parameters() const {
  std::vector<torch::Tensor> out;
  for (const auto& backend : backends())
    for (const auto& p : backend->parameters(/*recurse=*/true)) out.push_back(p);
  return out;
}

void GPT2::load_weights(const std::map<std::string, torch::Tensor>& tensors, const std::string& where) {
  torch::NoGradGuard no_grad;
  std::vector<std::string> missing;
  for (auto& [name, param] : weights()) {
    auto it = tensors.find(name);
    if (it == tensors.end()) {
      missing.push_back(name);
      continue;
    }
    if (it->second.sizes() != param.sizes())
      throw std::runtime_error(where + ": tensor '" + name + "' has shape " + shape_str(it->second.sizes()) +
                               ", the model config needs " + shape_str(param.sizes()));
    param.copy_(it->second);
  }
  if (!missing.empty()) {
    std::string list;
    for (size_t i = 0; i < missing.size() && i < 8; ++i) list += (i ? ", " : "") + missing[i];
    if (missing.size() > 8) list += ", ... (" + std::to_string(missing.size()) + " in all)";
    throw std::runtime_error(where + ": missing weights: " + list);
  }
}

// ---------------------------------------------------------------------------------- files

std::shared_ptr<GPT2> load_hf_gpt2(const std::string& directory, const AttentionFactory& attention) {
  const fs::path dir(directory);
  const auto config_path = (dir / "config.json").string();
  if (!fs::exists(config_path))
    throw std::runtime_error(directory + ": no config.json (expected a Hugging Face GPT-2 directory)");
  const auto config = GPT2Config::from_json(read_json(config_path), config_path);

  // Single file, or shards listed by model.safetensors.index.json (gpt2-xl and up may be sharded).
  std::vector<std::string> files;
  const auto index_path = dir / "model.safetensors.index.json";
  if (fs::exists(dir / "model.safetensors")) {
    files.push_back((dir / "model.safetensors").string());
  } else if (fs::exists(index_path)) {
    std::set<std::string> shards;
    const auto index = read_json(index_path.string());  // named: items() would outlive a temporary
    for (const auto& [name, file] : index.at("weight_map").items())
      shards.insert((dir / file.get<std::string>()).string());
    files.assign(shards.begin(), shards.end());
  } else {
    throw std::runtime_error(directory + ": no model.safetensors (pytorch_model.bin is not read; convert it with "
                                         "safetensors' convert script)");
  }

  auto model = std::make_shared<GPT2>(config, attention);
  const auto expected = model->weights();
  std::map<std::string, torch::Tensor> mapped;
  for (const auto& file : files) {
    for (auto& [raw_name, tensor] : safetensors::read(file, {/*to_float32=*/true}).tensors) {
      std::string name = raw_name.rfind("transformer.", 0) == 0 ? raw_name.substr(12) : raw_name;
      // Causal-mask buffers and the tied LM head carry no weights of their own.
      if (ends_with(name, ".attn.bias") || ends_with(name, ".attn.masked_bias") || name == "lm_head.weight") continue;
      auto it = expected.find(name);
      if (it == expected.end())
        throw std::runtime_error(file + ": unexpected tensor '" + raw_name + "' for GPT-2 with n_layer = " +
                                 std::to_string(config.n_layer) + " (config.json and weights disagree?)");
      // HF's Conv1D stores [in, out]; torch Linear wants [out, in].
      const bool conv1d = ends_with(name, ".c_attn.weight") || ends_with(name, ".c_proj.weight") ||
                          ends_with(name, ".c_fc.weight");
      if (conv1d) {
        const auto want = it->second.sizes();
        if (tensor.dim() != 2 || tensor.size(0) != want[1] || tensor.size(1) != want[0])
          throw std::runtime_error(file + ": tensor '" + raw_name + "' has shape " + shape_str(tensor.sizes()) +
                                   ", config.json needs Conv1D [in, out] = [" + std::to_string(want[1]) + ", " +
                                   std::to_string(want[0]) + "]");
        tensor = tensor.t().contiguous();
      }
      mapped[name] = tensor;
    }
  }
  model->load_weights(mapped, directory);
  return model;
}

void save_checkpoint(const GPT2& model, const std::string& path, const std::map<std::string, std::string>& extra_metadata) {
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& item : model.named_parameters(/*recurse=*/true)) tensors.emplace(item.key(), item.value());
  for (const auto& item : model.named_buffers(/*recurse=*/true)) tensors.emplace(item.key(), item.value());
  auto metadata = extra_metadata;
  metadata[kConfigKey] = model.config().to_json().dump();
  metadata["format"] = "pt";  // what HF tools expect to find
  safetensors::write(path, tensors, metadata);
}

std::shared_ptr<GPT2> load_checkpoint(const std::string& path, const AttentionFactory& attention) {
  auto file = safetensors::read(path, {/*to_float32=*/true});
  auto it = file.metadata.find(kConfigKey);
  if (it == file.metadata.end())
    throw std::runtime_error(path + ": not an attnlab checkpoint (no __metadata__[\"" + kConfigKey + "\"])");
  nlohmann::json config_json;
  try {
    config_json = nlohmann::json::parse(it->second);
  } catch (const nlohmann::json::exception& e) {  // parse_error, out_of_range (5e5555)
    throw std::runtime_error(path + ": __metadata__[\"" + kConfigKey + "\"] is not valid JSON: " + e.what());
  }
  auto model = std::make_shared<GPT2>(GPT2Config::from_json(config_json, path), attention);
  model->load_weights(file.tensors, path);
  // Backend parameters load only where this model's backend has the same ones (a checkpoint
  // saved from a blend student restores into a blend student; a dense one has none).
  torch::NoGradGuard no_grad;
  for (auto& item : model->named_parameters(true)) {
    if (item.key().find(kBackendInfix) == std::string::npos) continue;
    auto t = file.tensors.find(item.key());
    if (t != file.tensors.end() && t->second.sizes() == item.value().sizes()) item.value().copy_(t->second);
  }
  return model;
}

std::string weights_file(const std::string& path) {
  if (fs::is_directory(path)) {
    const auto single = fs::path(path) / "model.safetensors";
    return fs::exists(single) ? single.string() : (fs::path(path) / "model.safetensors.index.json").string();
  }
  return path;
}

std::shared_ptr<GPT2> load_any(const std::string& path, const AttentionFactory& attention) {
  if (!fs::exists(path)) throw std::runtime_error(path + ": no such file or directory (teacher checkpoint)");
  if (fs::is_directory(path)) return load_hf_gpt2(path, attention);
  const auto header = safetensors::read_header(path);
  if (header.metadata.count(kConfigKey)) return load_checkpoint(path, attention);
  const auto parent = fs::path(path).parent_path();
  if (fs::exists(parent / "config.json") && fs::path(path).filename() == "model.safetensors")
    return load_hf_gpt2(parent.string(), attention);
  throw std::runtime_error(path + ": neither an attnlab checkpoint nor a Hugging Face model.safetensors with a "
                                  "config.json beside it");
}

}  // namespace attnlab::model
