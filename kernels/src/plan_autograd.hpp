#pragma once
// The one autograd function of the sparse CPU/CUDA kernels, for any plan of which tiles to
// compute (a LayoutSet, a BlockSelection):
//
//   (out, lse) = Plan::forward(q, k, v, plan, scale)   both differentiable; saves q, k, v, out, lse
//   (dq, dk, dv) = Plan::backward(dout, q, k, v, out, lse, plan, scale, dlse)
//                                                      no gradient for the plan or the scale
// An unused output's gradient stays undefined (no dlse work then; dout = 0 when only lse is
// used). The plan rides in the autograd context through Plan::save / Plan::load, since
// saved_data holds only IValues.
#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

namespace attnlab::kernels {

template <typename Plan>
struct PlanAttentionFunction : public torch::autograd::Function<PlanAttentionFunction<Plan>> {
  using AutogradContext = torch::autograd::AutogradContext;
  using variable_list = torch::autograd::variable_list;

  static variable_list forward(AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k,
                               const at::Tensor& v, const typename Plan::Type& plan, double scale) {
    auto [out, lse] = Plan::forward(q, k, v, plan, scale);
    ctx->save_for_backward({q, k, v, out, lse});
    Plan::save(ctx, plan);
    ctx->saved_data["scale"] = scale;
    ctx->set_materialize_grads(false);
    return {out, lse};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list saved = ctx->get_saved_variables();
    at::Tensor dout = grad_outputs[0];
    if (!dout.defined()) dout = at::zeros_like(saved[3]);
    auto [dq, dk, dv] = Plan::backward(dout, saved[0], saved[1], saved[2], saved[3], saved[4], Plan::load(ctx),
                                       ctx->saved_data["scale"].toDouble(), grad_outputs[1]);
    return {dq, dk, dv, at::Tensor(), at::Tensor()};
  }
};

}  // namespace attnlab::kernels
