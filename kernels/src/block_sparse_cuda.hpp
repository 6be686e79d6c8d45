#pragma once
// CUDA entry points of the block-sparse kernels (internal header). Defined in
// kernels/cuda/block_sparse_cuda_launcher.cpp, which is compiled only when the CUDA CMake
// option is on (it then defines ATTNLAB_WITH_CUDA for this library); the CPU entry points in
// block_sparse_forward.cpp / block_sparse_backward.cpp dispatch here when q.is_cuda().
#include <attnlab/kernels/block_layout.hpp>

#include <ATen/ATen.h>

#include <tuple>

namespace attnlab::kernels::cuda {

std::tuple<at::Tensor, at::Tensor> block_sparse_forward_cuda(const at::Tensor& q,
                                                             const at::Tensor& k,
                                                             const at::Tensor& v,
                                                             const LayoutSet& layouts,
                                                             double scale);

std::tuple<at::Tensor, at::Tensor, at::Tensor> block_sparse_backward_cuda(
    const at::Tensor& dout, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
    const at::Tensor& out, const at::Tensor& lse, const LayoutSet& layouts, double scale,
    const at::Tensor& dlse);

}  // namespace attnlab::kernels::cuda
