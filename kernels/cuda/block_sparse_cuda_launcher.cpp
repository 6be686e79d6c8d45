// Host side of the CUDA block-sparse kernels: validates inputs (same checks as the CPU path),
// uploads the layouts as concatenated CSR arrays, and launches block_sparse_cuda.cu's kernels
// on the current stream. Shapes: q [B, H, T, D], k/v [B, H, S, D] -> out, lse [B, H, T].
// fp32 and fp64 natively; other floating dtypes run in fp32 and are cast back. D <= 256.
#include "block_sparse_cuda.hpp"
#include "block_sparse_cuda_kernels.hpp"
#include "block_sparse_plan.hpp"

#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <vector>

namespace attnlab::kernels::cuda {

namespace {

// Device copies of one CSR direction of every layout (the tensors keep the memory alive).
struct UploadedLayouts {
  at::Tensor meta, ptr, idx, tmask, masks;
  DeviceLayouts view() const {
    DeviceLayouts d;
    d.meta = meta.data_ptr<std::int64_t>();
    d.ptr = ptr.data_ptr<std::int64_t>();
    d.idx = idx.data_ptr<std::int64_t>();
    d.tmask = tmask.data_ptr<std::int64_t>();
    d.masks = masks.data_ptr<std::uint8_t>();
    d.n_layouts = meta.size(0);
    return d;
  }
};

UploadedLayouts upload(const LayoutSet& layouts, const std::vector<cpu::LayoutView>& views,
                       bool transposed, const at::Device& device) {
  std::vector<std::int64_t> meta, ptr, idx, tmask;
  std::vector<at::Tensor> masks;
  std::int64_t mask_offset = 0;
  for (std::size_t i = 0; i < views.size(); ++i) {
    const cpu::LayoutView& L = views[i];
    const std::int64_t n_rows = transposed ? L.n_k_tiles : L.n_q_tiles;
    const std::int64_t nnz = layouts[i]->nnz();
    meta.insert(meta.end(), {L.tile, n_rows, static_cast<std::int64_t>(ptr.size()),
                             static_cast<std::int64_t>(idx.size()), mask_offset, 0});
    if (transposed) {
      ptr.insert(ptr.end(), L.t_col_ptr.begin(), L.t_col_ptr.end());
      idx.insert(idx.end(), L.t_row_idx.begin(), L.t_row_idx.end());
      tmask.insert(tmask.end(), L.t_tile_mask.begin(), L.t_tile_mask.end());
    } else {
      ptr.insert(ptr.end(), L.row_ptr, L.row_ptr + n_rows + 1);
      idx.insert(idx.end(), L.col_idx, L.col_idx + nnz);
      tmask.insert(tmask.end(), L.tile_mask, L.tile_mask + nnz);
    }
    const at::Tensor& m = layouts[i]->masks;
    if (m.defined() && m.numel()) {
      masks.push_back(m.reshape({-1}).to(at::kByte));
      mask_offset += m.numel();
    }
  }
  auto to_device = [&](const std::vector<std::int64_t>& values) {
    std::vector<std::int64_t> padded = values.empty() ? std::vector<std::int64_t>{0} : values;
    return at::tensor(at::ArrayRef<std::int64_t>(padded), at::kLong).to(device);
  };
  UploadedLayouts up;
  up.meta = to_device(meta).view({static_cast<std::int64_t>(views.size()), 6});
  up.ptr = to_device(ptr);
  up.idx = to_device(idx);
  up.tmask = to_device(tmask);
  up.masks = (masks.empty() ? at::zeros({1}, at::kByte) : at::cat(masks)).to(device);
  return up;
}

void check_cuda_inputs(const char* who, const at::Tensor& q, const at::Tensor& k,
                       const at::Tensor& v) {
  TORCH_CHECK(k.device() == q.device() && v.device() == q.device(), who,
              ": q, k, v must be on one CUDA device");
  TORCH_CHECK(q.size(3) <= kMaxHeadDim, who, ": head dim D must be <= ", kMaxHeadDim,
              " on CUDA, got ", q.size(3));
}

// Sizes, scale and stream, common to both passes; the caller adds the pointers.
template <typename scalar_t>
BlockSparseParams<scalar_t> shape_params(const at::Tensor& q, const at::Tensor& k, double scale) {
  BlockSparseParams<scalar_t> params;
  params.BH = q.size(0) * q.size(1);
  params.T = q.size(2);
  params.S = k.size(2);
  params.D = q.size(3);
  params.scale = scale;
  params.stream = c10::cuda::getCurrentCUDAStream().stream();
  return params;
}

void throw_if_failed(const char* who) {
  const char* error = last_error();
  TORCH_CHECK(error == nullptr, who, ": CUDA kernel failed: ", error ? error : "");
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> block_sparse_forward_cuda(const at::Tensor& q,
                                                             const at::Tensor& k,
                                                             const at::Tensor& v,
                                                             const LayoutSet& layouts,
                                                             double scale) {
  const char* who = "block_sparse_forward (CUDA)";
  // The device code indexes layouts by (b, h): a per-head set is repeated for each batch entry.
  const LayoutSet slices = cpu::per_slice(layouts, q.size(0), q.size(1));
  const auto views = cpu::check_inputs(who, q, k, v, slices, false).each();
  check_cuda_inputs(who, q, k, v);
  const c10::cuda::CUDAGuard guard(q.device());
  const at::ScalarType compute = q.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor qc = q.to(compute).contiguous(), kc = k.to(compute).contiguous(),
             vc = v.to(compute).contiguous();
  at::Tensor out = at::empty(qc.sizes(), qc.options());
  at::Tensor lse = at::empty({q.size(0), q.size(1), q.size(2)}, qc.options());
  const UploadedLayouts rows = upload(slices, views, false, q.device());
  auto run = [&](auto tag) {
    using scalar_t = decltype(tag);
    BlockSparseParams<scalar_t> params = shape_params<scalar_t>(q, k, scale);
    params.q = qc.data_ptr<scalar_t>();
    params.k = kc.data_ptr<scalar_t>();
    params.v = vc.data_ptr<scalar_t>();
    params.out = out.data_ptr<scalar_t>();
    params.lse = lse.data_ptr<scalar_t>();
    params.rows = rows.view();
    launch_forward(params);
  };
  if (compute == at::kDouble) run(double{}); else run(float{});
  throw_if_failed(who);
  return {out.to(q.scalar_type()), lse};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> block_sparse_backward_cuda(
    const at::Tensor& dout, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
    const at::Tensor& out, const at::Tensor& lse, const LayoutSet& layouts, double scale,
    const at::Tensor& dlse) {
  const char* who = "block_sparse_backward (CUDA)";
  const LayoutSet slices = cpu::per_slice(layouts, q.size(0), q.size(1));
  const auto views = cpu::check_inputs(who, q, k, v, slices, true).each();
  check_cuda_inputs(who, q, k, v);
  TORCH_CHECK(dout.sizes() == q.sizes() && out.sizes() == q.sizes(), who,
              ": dout and out must have q's shape ", q.sizes());
  const c10::cuda::CUDAGuard guard(q.device());
  const at::ScalarType compute = q.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  auto prep = [&](const at::Tensor& t) { return t.to(q.device()).to(compute).contiguous(); };
  at::Tensor qc = prep(q), kc = prep(k), vc = prep(v), doc = prep(dout), lsec = prep(lse);
  at::Tensor delta = (doc * prep(out)).sum(-1);
  if (dlse.defined()) {  // as on the CPU: dS = P (dP - delta + dlse); empty rows take none
    TORCH_CHECK(dlse.sizes() == lse.sizes(), who, ": dlse must be [B, H, T] like lse");
    delta = delta - at::where(at::isfinite(lsec), prep(dlse), at::zeros({}, delta.options()));
  }
  delta = delta.contiguous();
  at::Tensor dq = at::empty(qc.sizes(), qc.options()), dk = at::empty(kc.sizes(), kc.options()),
             dv = at::empty(vc.sizes(), vc.options());
  const UploadedLayouts rows = upload(slices, views, false, q.device());
  const UploadedLayouts cols = upload(slices, views, true, q.device());
  auto run = [&](auto tag) {
    using scalar_t = decltype(tag);
    BlockSparseParams<scalar_t> params = shape_params<scalar_t>(q, k, scale);
    params.q = qc.data_ptr<scalar_t>();
    params.k = kc.data_ptr<scalar_t>();
    params.v = vc.data_ptr<scalar_t>();
    params.dout = doc.data_ptr<scalar_t>();
    params.lse = lsec.data_ptr<scalar_t>();
    params.delta = delta.data_ptr<scalar_t>();
    params.dq = dq.data_ptr<scalar_t>();
    params.dk = dk.data_ptr<scalar_t>();
    params.dv = dv.data_ptr<scalar_t>();
    params.rows = rows.view();
    params.cols = cols.view();
    launch_backward(params);
  };
  if (compute == at::kDouble) run(double{}); else run(float{});
  throw_if_failed(who);
  return {dq.to(q.scalar_type()), dk.to(k.scalar_type()), dv.to(v.scalar_type())};
}

}  // namespace attnlab::kernels::cuda
