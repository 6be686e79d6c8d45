#pragma once
// Options of a distill trial, as plain structs with defaults. The sweep config fills them
// from TOML ([data], [teacher], [distill] tables); every field name here is its TOML key.
#include <attnlab/params.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace attnlab::model {

struct DataSpec {
  std::string corpus = "brown";     // "brown" | "wikitext:<dir>" | "text:<path>"
  std::string tokenizer = "bytes";  // "bytes" | "gpt2"
};

// checkpoint empty => train a small dense teacher on the corpus (cached under
// <results>/teachers/<config hash>/); otherwise an HF GPT-2 directory or an attnlab file and the
// model fields below are ignored (the checkpoint's config.json rules).
struct TeacherSpec {
  std::string checkpoint;
  std::int64_t n_layer = 2, n_head = 4, n_embd = 128, block_size = 512;
  std::int64_t steps = 300, batch = 16, seq_len = 128;
  double lr = 3e-3;
  std::uint64_t seed = 0;
};

struct DistillSpec {
  std::string backend;                                   // plugin name of the student's attention
  std::map<std::string, attnlab::ParamValue> backend_params;
  std::int64_t seq_len = 128, batch = 8, steps = 100, log_every = 10;
  double lr = 1e-2, weight_decay = 0.0, warmup_frac = 0.1, grad_clip = 1.0;  // grad_clip <= 0: off
  // loss = alpha_ce * CE + alpha_kl * temperature^2 * KL(teacher || student at temperature) + lambda * reg
  double alpha_ce = 0.0, alpha_kl = 1.0, temperature = 1.0, lambda = 0.01;
  std::string train = "backend";                          // "backend" | "all"
  std::uint64_t seed = 0;
  std::vector<std::int64_t> eval_seq_lens = {128, 256};
  std::int64_t eval_batches = 4;                          // of `batch` windows each
  std::vector<std::string> prompts = {"The jury said", "It was a"};
  std::int64_t sample_tokens = 48;
  double sample_temperature = 0.8;
};

}  // namespace attnlab::model
