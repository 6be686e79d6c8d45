// torch.ops.attnlab._time_cxx: the same kernel call as attnlab.attention, timed from C++, so
// tools/python_bench.py can put a number on the Python call's overhead in one process.
//
//   _time_cxx(q, k, v, layout..., scale, dout?, reps) -> float[reps]   milliseconds per call
//     each call: out = kernels::block_sparse_attention(q, k, v, layouts, scale)  [B, H, T, D]
//     and, when dout is given, torch::autograd::backward({out}, {dout}) (gradients accumulate
//     into q.grad, k.grad, v.grad exactly as out.backward(dout) does from Python).
// The layouts are rebuilt from the tensors once per call, as the Python op does, so the two
// sides differ only by what Python and the dispatcher add.
#include "layout_args.hpp"

#include <attnlab/kernels/attention.hpp>

#include <torch/csrc/autograd/autograd.h>
#include <torch/library.h>

#include <chrono>
#include <vector>

namespace attnlab::ops {
namespace {

std::vector<double> time_cxx(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                             at::TensorList row_ptr, at::TensorList col_idx,
                             at::TensorList tile_mask, at::TensorList masks, double scale,
                             const c10::optional<at::Tensor>& dout, std::int64_t reps) {
  TORCH_CHECK(reps >= 1, "attnlab::_time_cxx: reps must be >= 1, got ", reps);
  std::vector<double> ms;
  ms.reserve(static_cast<std::size_t>(reps));
  for (std::int64_t r = 0; r < reps; ++r) {
    const auto start = std::chrono::steady_clock::now();
    auto layouts = to_layouts("attnlab::_time_cxx", row_ptr, col_idx, tile_mask, masks, q.size(2), k.size(2));
    at::Tensor out = kernels::block_sparse_attention(q, k, v, std::move(layouts), scale);
    if (dout.has_value()) torch::autograd::backward({out}, {*dout});
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  return ms;
}

}  // namespace
}  // namespace attnlab::ops

TORCH_LIBRARY_FRAGMENT(attnlab, m) {
  m.def("_time_cxx(Tensor q, Tensor k, Tensor v, Tensor[] row_ptr, Tensor[] col_idx, "
        "Tensor[] tile_mask, Tensor[] masks, float scale, Tensor? dout, int reps) -> float[]",
        TORCH_FN(attnlab::ops::time_cxx));
}
