#pragma once
// The dense teacher of a distill trial: a checkpoint (real GPT-2 or an attnlab file), or a
// small GPT-2 trained here on the corpus and cached under <results>/teachers/<key>/ so every
// trial of a sweep (and the next sweep) distills against the very same weights.
//
// Identity stored with each trial: the weights file, its sha256, the model config (and for a
// trained teacher the recipe), the tokenizer.
#include "model/gpt2.hpp"
#include "model/specs.hpp"
#include "text/recall.hpp"

#include <ATen/core/Tensor.h>

#include <functional>
#include <memory>
#include <string>

namespace attnlab {
struct TrialSink;
}

namespace attnlab::model {

struct TeacherIdentity {
  std::string path;         // the weights file read
  std::string sha256;       // of that file
  std::string config_json;  // model config, plus the training recipe for a trained teacher
  std::string tokenizer;    // tokenizer fingerprint (name + vocabulary hash)
};

struct Teacher {
  std::shared_ptr<GPT2> model;
  TeacherIdentity identity;
};

// Random training windows [B, T + 1] of token ids (int64), from the train split, each carrying a
// recall record with probability record_fraction (answer all false when the task is off).
using BatchSource =
    std::function<text::RecallBatch(std::int64_t batch, std::int64_t seq_len, double record_fraction)>;

struct TeacherContext {
  std::string corpus;                  // DataSpec::corpus, part of the cache key
  std::string tokenizer_name;          // "bytes" | "gpt2"
  std::string tokenizer_fingerprint;   // part of the cache key
  std::int64_t vocab_size = 0;         // the model's: the tokenizer's plus reserved recall ids
  text::RecallSpec recall;             // part of the cache key when enabled
  std::string results_dir = "results";
  AttentionFactory dense;              // attention of the teacher
  BatchSource train_batches;           // only used when training
  TrialSink* sink = nullptr;           // progress and info while training; may be null
};

// Directory a trained teacher with this recipe is cached in.
std::string teacher_cache_dir(const TeacherSpec& spec, const TeacherContext& context);

// Loads spec.checkpoint, or the cached trained teacher, or trains and caches one. The model
// comes back in eval mode with requires_grad off everywhere.
Teacher obtain_teacher(const TeacherSpec& spec, const TeacherContext& context);

}  // namespace attnlab::model
