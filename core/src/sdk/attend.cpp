#include <attnlab/attend.hpp>

#include <c10/util/Exception.h>

#include <stdexcept>
#include <string>

namespace attnlab {
namespace {

std::string shape_text(const torch::Tensor& t) { return c10::str(t.sizes()); }

[[noreturn]] void refuse(const AttentionBackend& backend, const std::string& why) {
  throw std::invalid_argument("attention backend '" + backend.name() + "': " + why);
}

void check_inputs(const AttentionBackend& backend, const torch::Tensor& q, const torch::Tensor& k,
                  const torch::Tensor& v, std::int64_t n_heads) {
  const char* names[] = {"q", "k", "v"};
  const torch::Tensor* inputs[] = {&q, &k, &v};
  for (int i = 0; i < 3; ++i) {
    if (!inputs[i]->defined()) refuse(backend, std::string(names[i]) + " is an undefined tensor");
    if (inputs[i]->dim() != 4)
      refuse(backend, std::string(names[i]) + " has rank " + std::to_string(inputs[i]->dim()) + " (shape " +
                          shape_text(*inputs[i]) + "), expected 4: [B, H, T, D]");
  }
  const char* dims = "BHTD";
  for (int d : {0, 1, 3})
    for (int i = 1; i < 3; ++i)
      if (inputs[i]->size(d) != q.size(d))
        refuse(backend, std::string(names[i]) + " " + shape_text(*inputs[i]) + " and q " + shape_text(q) +
                            " disagree on " + dims[d]);
  if (v.size(2) != k.size(2))
    refuse(backend, "k " + shape_text(k) + " and v " + shape_text(v) + " disagree on S");
  if (k.size(2) != q.size(2))
    refuse(backend, "k has S = " + std::to_string(k.size(2)) + " keys for T = " + std::to_string(q.size(2)) +
                        " queries: causal self-attention needs S == T");
  if (q.size(1) != n_heads)
    refuse(backend, "q has H = " + std::to_string(q.size(1)) + " heads, the backend was built for n_heads = " +
                        std::to_string(n_heads));
  if (!at::isFloatingType(q.scalar_type()))
    refuse(backend, std::string("q is ") + c10::toString(q.scalar_type()) + ", expected a floating dtype");
  for (int i = 1; i < 3; ++i) {
    if (inputs[i]->scalar_type() != q.scalar_type())
      refuse(backend, std::string(names[i]) + " is " + c10::toString(inputs[i]->scalar_type()) + ", q is " +
                          c10::toString(q.scalar_type()));
    if (inputs[i]->device() != q.device())
      refuse(backend, std::string(names[i]) + " is on " + inputs[i]->device().str() + ", q on " + q.device().str());
  }
  for (const auto& p : backend.parameters(/*recurse=*/true))
    if (p.device() != q.device())
      refuse(backend, "its parameters are on " + p.device().str() + ", the inputs on " + q.device().str() +
                          " (move it with backend.to(device))");
}

}  // namespace

torch::Tensor attend(AttentionBackend& backend, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                     std::int64_t n_heads) {
  check_inputs(backend, q, k, v, n_heads);
  torch::Tensor out = backend.forward(q, k, v);
  if (!out.defined() || out.sizes() != q.sizes() || out.scalar_type() != q.scalar_type())
    throw std::logic_error("attention backend '" + backend.name() + "': forward returned " +
                           (out.defined() ? std::string(c10::toString(out.scalar_type())) + " " + shape_text(out)
                                          : std::string("an undefined tensor")) +
                           " for q " + std::string(c10::toString(q.scalar_type())) + " " + shape_text(q) +
                           ": expected q's shape and dtype");
  return out;
}

}  // namespace attnlab
