#pragma once
// Distill trial: a student that is the teacher with every layer's attention swapped for the
// trial's backend, trained to match the teacher, then evaluated side by side.
//
//   loss = alpha_ce * CE(student, next token)
//        + alpha_kl * tau^2 * KL(softmax(teacher / tau) || softmax(student / tau))   (mean per token)
//        + lambda * sum over layers of backend->regularizer()                        (undefined = 0)
//        + answer_weight * tau^2 * KL at the recall answer positions (their mean; [data] recall_pairs > 0)
//
// By default only backend parameters train (train = "backend"; the teacher's weights stay
// frozen in the student); train = "all" trains the whole student. AdamW, warmup + cosine,
// gradient clipping. A backend with nothing to train under train = "backend" (dense: the
// control) skips the optimizer and is only evaluated.
//
// What lands in the sink (docs/RESULTS.md):
//   train/{loss,ce,kl,reg,lr} and stat/L{layer}/{name} every log_every steps; train/ms_per_step;
//   eval/T{T}/{teacher_ppl,student_ppl,delta_ppl,kl,agreement,tokens_per_s,peak_mib,density,
//   block_density} and, where hard mode changes the output, eval/T{T}/{hard_student_ppl,hard_kl,
//   hard_density,hard_block_density}; with the recall task (text/recall.hpp, recall_eval.hpp)
//   eval/T{T}/{teacher_recall_acc,recall_chance,[hard_]recall_acc,[hard_]recall_acc_d<lo>} with
//   _lo/_hi, and teacher/gate_* (the teacher's gates, before the student trains); greedy and sampled generations of teacher and student per
//   prompt; info: teacher identity, tokenizer, corpus.
#include "model/specs.hpp"

#include <attnlab/backend.hpp>

#include <functional>
#include <map>
#include <memory>
#include <string>

namespace attnlab {
struct TrialSink;
}

namespace attnlab::model {

// Builds one backend by plugin name (the runner's PluginRegistry::create).
using BackendFactory = std::function<std::shared_ptr<AttentionBackend>(
    const std::string& name, const BackendInit&, const std::map<std::string, ParamValue>& params)>;

// Checks every field against its key's declaration (specs.hpp); throws std::invalid_argument
// naming the key, the value and what is allowed.
void check_distill_spec(const DistillSpec& spec);

struct LossParts {
  torch::Tensor loss;  // differentiable total
  double ce = 0, kl = 0, reg = 0;
};

// KL(teacher || student) = sum_v p_t (log p_t - log p_s) per position: log-probabilities
// [B, T, V] -> [B, T]. The distillation loss's term, and what the per-head search measures.
torch::Tensor kl_per_position(const torch::Tensor& teacher_logp, const torch::Tensor& student_logp);

// The mean of kl_at [B, T] over the recall answer positions (answer [B, T] bool), which
// answer_weight weighs; undefined when answer_weight is 0 or the batch has no answer position.
torch::Tensor answer_kl(const torch::Tensor& kl_at, const torch::Tensor& answer, double answer_weight);

// logits [B, T, V], targets [B, T], regularizer a scalar or undefined. kl is the plain KL (without tau^2).
// answer [B, T] bool (or undefined): the recall answer positions, where answer_weight adds
// answer_weight * tau^2 * (mean KL over them).
LossParts distill_loss(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits,
                       const torch::Tensor& targets, const torch::Tensor& regularizer, const DistillSpec& spec,
                       const torch::Tensor& answer = {});

// results_dir holds teachers/ and cache/ (tokenized corpora).
void run_distill(const DataSpec& data, const TeacherSpec& teacher, const DistillSpec& distill,
                 const BackendFactory& backends, const std::string& results_dir, TrialSink& sink);

}  // namespace attnlab::model

// The runner speaks of these as attnlab::DataSpec, attnlab::run_distill, ...
namespace attnlab {
using model::BackendFactory;
using model::DataSpec;
using model::DistillSpec;
using model::run_distill;
using model::TeacherSpec;
}  // namespace attnlab
