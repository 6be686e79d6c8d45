// Block-sparse attention on CUDA: forward, and backward as two race-free kernels.
//
//   q [B, H, T, D], k/v [B, H, S, D], layout tiles  ->  out [B, H, T, D], lse [B, H, T]
//   forward : out[t] = sum_s softmax_s(scale q[t]·k[s] | allowed) v[s]     (online softmax)
//   dq      : dq[t]  = scale sum_s P[t,s] (dO[t]·v[s] - D[t]) k[s]         (row CSR)
//   dk, dv  : dv[s]  = sum_t P[t,s] dO[t];  dk[s] = scale sum_t dS[t,s] q[t]  (transposed CSR)
//   P[t,s] = exp(scale q[t]·k[s] - lse[t]) recomputed, D[t] = dO[t]·O[t] (from the launcher).
//
// One warp per output row (a query row, or a key row for dk/dv), four warps per block: lanes
// take 32 columns of a tile at a time for the dot products (the row itself sits in shared
// memory), then the row's accumulators are spread over lanes by head dimension
// (d = lane + 32 i, D <= 256) and updated with shuffled probabilities. No atomics: each
// output row has exactly one writer. Only the tiles of the layout are visited, and element
// masks only on partial tiles, so work follows block density as on the CPU.
//
// Launches take one BlockSparseParams (block_sparse_cuda_kernels.hpp), passed by value.
//
// Versions: this first version is written for clarity and was compiled (nvcc 13 and Debian
// 13's nvcc 12.4, sm_80/90; CI builds it with the latter) but not yet run: no GPU was at hand.
// Validate with tools/gpu_check.sh (tests/test_kernels_cuda.cpp, compute-sanitizer, timings
// against SDPA and FlexAttention) on a GPU machine.
#include "block_sparse_cuda_kernels.hpp"

#include <cuda_runtime.h>

#include <cmath>

namespace attnlab::kernels::cuda {

namespace {

constexpr int kWarps = 4;
constexpr int kLanes = 32;
constexpr int kSlots = kMaxHeadDim / kLanes;  // accumulators per lane

template <typename scalar_t>
__device__ __forceinline__ scalar_t neg_infinity() {
  return -static_cast<scalar_t>(INFINITY);
}
__device__ __forceinline__ float dev_exp(float x) { return __expf(x); }
__device__ __forceinline__ double dev_exp(double x) { return exp(x); }
__device__ __forceinline__ float dev_log(float x) { return __logf(x); }
__device__ __forceinline__ double dev_log(double x) { return log(x); }

template <typename scalar_t>
__device__ __forceinline__ scalar_t warp_max(scalar_t x) {
  for (int offset = kLanes / 2; offset > 0; offset /= 2)
    x = fmax(x, __shfl_xor_sync(0xffffffffu, x, offset));
  return x;
}
template <typename scalar_t>
__device__ __forceinline__ scalar_t warp_sum(scalar_t x) {
  for (int offset = kLanes / 2; offset > 0; offset /= 2) x += __shfl_xor_sync(0xffffffffu, x, offset);
  return x;
}

// Dot product of a shared-memory row with a global row of length D.
template <typename scalar_t>
__device__ __forceinline__ scalar_t dot(const scalar_t* shared_row, const scalar_t* row,
                                        std::int64_t D) {
  scalar_t acc = 0;
  for (std::int64_t d = 0; d < D; ++d) acc += shared_row[d] * row[d];
  return acc;
}

struct LayoutRef {
  std::int64_t tile, n_rows;
  const std::int64_t *ptr, *idx, *tmask;
  const std::uint8_t* masks;
  __device__ LayoutRef(const DeviceLayouts& L, std::int64_t bh) {
    const std::int64_t* meta = L.meta + 6 * (L.n_layouts == 1 ? 0 : bh);
    tile = meta[0];
    n_rows = meta[1];
    ptr = L.ptr + meta[2];
    idx = L.idx + meta[3];
    tmask = L.tmask + meta[3];
    masks = L.masks + meta[4];
  }
  // Whether query-local row r may attend key-local column c in partial tile `mask_index`.
  __device__ bool allowed(std::int64_t mask_index, std::int64_t r, std::int64_t c) const {
    return mask_index < 0 || masks[(mask_index * tile + r) * tile + c] != 0;
  }
};

template <typename scalar_t>
__global__ void forward_kernel(const BlockSparseParams<scalar_t> args) {
  const scalar_t* __restrict__ q = args.q;
  const scalar_t* __restrict__ k = args.k;
  const scalar_t* __restrict__ v = args.v;
  scalar_t* __restrict__ out = args.out;
  scalar_t* __restrict__ lse = args.lse;
  const std::int64_t T = args.T, S = args.S, D = args.D;
  const scalar_t scale = static_cast<scalar_t>(args.scale);
  extern __shared__ unsigned char shared_bytes[];
  const int lane = threadIdx.x % kLanes, warp = threadIdx.x / kLanes;
  const std::int64_t bh = blockIdx.y, t = static_cast<std::int64_t>(blockIdx.x) * kWarps + warp;
  if (t >= T) return;  // whole warp leaves together; no block-wide barriers below
  const LayoutRef L(args.rows, bh);
  scalar_t* q_row = reinterpret_cast<scalar_t*>(shared_bytes) + warp * D;
  for (std::int64_t d = lane; d < D; d += kLanes) q_row[d] = q[(bh * T + t) * D + d];
  __syncwarp();
  const scalar_t* k_bh = k + bh * S * D;
  const scalar_t* v_bh = v + bh * S * D;

  scalar_t m = neg_infinity<scalar_t>(), l = 0, acc[kSlots];
  for (int i = 0; i < kSlots; ++i) acc[i] = 0;
  const std::int64_t qt = t / L.tile, r_local = t - qt * L.tile;
  for (std::int64_t e = L.ptr[qt]; e < L.ptr[qt + 1]; ++e) {
    const std::int64_t s_begin = L.idx[e] * L.tile, s_end = min(S, s_begin + L.tile);
    const std::int64_t mask_index = L.tmask[e];
    for (std::int64_t s0 = s_begin; s0 < s_end; s0 += kLanes) {
      const std::int64_t s = s0 + lane;
      scalar_t score = neg_infinity<scalar_t>();
      if (s < s_end && L.allowed(mask_index, r_local, s - s_begin))
        score = scale * dot(q_row, k_bh + s * D, D);
      const scalar_t m_new = fmax(m, warp_max(score));
      if (m_new == neg_infinity<scalar_t>()) continue;  // warp-uniform
      const scalar_t p = score == neg_infinity<scalar_t>() ? scalar_t(0) : dev_exp(score - m_new);
      const scalar_t alpha = m == neg_infinity<scalar_t>() ? scalar_t(0) : dev_exp(m - m_new);
      l = l * alpha + warp_sum(p);
      for (int i = 0; i < kSlots; ++i) acc[i] *= alpha;
      const int n_cols = static_cast<int>(min(static_cast<std::int64_t>(kLanes), s_end - s0));
      for (int j = 0; j < n_cols; ++j) {
        const scalar_t p_j = __shfl_sync(0xffffffffu, p, j);
        if (p_j == scalar_t(0)) continue;  // warp-uniform
        const scalar_t* v_row = v_bh + (s0 + j) * D;
        for (int i = 0; i < kSlots; ++i) {
          const std::int64_t d = lane + i * kLanes;
          if (d < D) acc[i] += p_j * v_row[d];
        }
      }
      m = m_new;
    }
  }
  const scalar_t inv = l > 0 ? scalar_t(1) / l : scalar_t(0);
  for (int i = 0; i < kSlots; ++i) {
    const std::int64_t d = lane + i * kLanes;
    if (d < D) out[(bh * T + t) * D + d] = acc[i] * inv;
  }
  if (lane == 0) lse[bh * T + t] = l > 0 ? m + dev_log(l) : neg_infinity<scalar_t>();
}

template <typename scalar_t>
__global__ void backward_dq_kernel(const BlockSparseParams<scalar_t> args) {
  const scalar_t* __restrict__ q = args.q;
  const scalar_t* __restrict__ k = args.k;
  const scalar_t* __restrict__ v = args.v;
  const scalar_t* __restrict__ dout = args.dout;
  const scalar_t* __restrict__ lse = args.lse;
  const scalar_t* __restrict__ delta = args.delta;
  scalar_t* __restrict__ dq = args.dq;
  const std::int64_t T = args.T, S = args.S, D = args.D;
  const scalar_t scale = static_cast<scalar_t>(args.scale);
  extern __shared__ unsigned char shared_bytes[];
  const int lane = threadIdx.x % kLanes, warp = threadIdx.x / kLanes;
  const std::int64_t bh = blockIdx.y, t = static_cast<std::int64_t>(blockIdx.x) * kWarps + warp;
  if (t >= T) return;
  const LayoutRef L(args.rows, bh);
  scalar_t* q_row = reinterpret_cast<scalar_t*>(shared_bytes) + warp * 2 * D;
  scalar_t* do_row = q_row + D;
  for (std::int64_t d = lane; d < D; d += kLanes) {
    q_row[d] = q[(bh * T + t) * D + d];
    do_row[d] = dout[(bh * T + t) * D + d];
  }
  __syncwarp();
  const scalar_t row_lse = lse[bh * T + t], row_delta = delta[bh * T + t];
  const scalar_t* k_bh = k + bh * S * D;
  const scalar_t* v_bh = v + bh * S * D;
  scalar_t acc[kSlots];
  for (int i = 0; i < kSlots; ++i) acc[i] = 0;
  const std::int64_t qt = t / L.tile, r_local = t - qt * L.tile;
  if (row_lse != neg_infinity<scalar_t>()) {
    for (std::int64_t e = L.ptr[qt]; e < L.ptr[qt + 1]; ++e) {
      const std::int64_t s_begin = L.idx[e] * L.tile, s_end = min(S, s_begin + L.tile);
      const std::int64_t mask_index = L.tmask[e];
      for (std::int64_t s0 = s_begin; s0 < s_end; s0 += kLanes) {
        const std::int64_t s = s0 + lane;
        scalar_t ds = 0;
        if (s < s_end && L.allowed(mask_index, r_local, s - s_begin)) {
          const scalar_t p = dev_exp(scale * dot(q_row, k_bh + s * D, D) - row_lse);
          ds = p * (dot(do_row, v_bh + s * D, D) - row_delta);
        }
        const int n_cols = static_cast<int>(min(static_cast<std::int64_t>(kLanes), s_end - s0));
        for (int j = 0; j < n_cols; ++j) {
          const scalar_t ds_j = __shfl_sync(0xffffffffu, ds, j);
          if (ds_j == scalar_t(0)) continue;
          const scalar_t* k_row = k_bh + (s0 + j) * D;
          for (int i = 0; i < kSlots; ++i) {
            const std::int64_t d = lane + i * kLanes;
            if (d < D) acc[i] += ds_j * k_row[d];
          }
        }
      }
    }
  }
  for (int i = 0; i < kSlots; ++i) {
    const std::int64_t d = lane + i * kLanes;
    if (d < D) dq[(bh * T + t) * D + d] = scale * acc[i];
  }
}

template <typename scalar_t>
__global__ void backward_dkdv_kernel(const BlockSparseParams<scalar_t> args) {
  const scalar_t* __restrict__ q = args.q;
  const scalar_t* __restrict__ k = args.k;
  const scalar_t* __restrict__ v = args.v;
  const scalar_t* __restrict__ dout = args.dout;
  const scalar_t* __restrict__ lse = args.lse;
  const scalar_t* __restrict__ delta = args.delta;
  scalar_t* __restrict__ dk = args.dk;
  scalar_t* __restrict__ dv = args.dv;
  const std::int64_t T = args.T, S = args.S, D = args.D;
  const scalar_t scale = static_cast<scalar_t>(args.scale);
  extern __shared__ unsigned char shared_bytes[];
  const int lane = threadIdx.x % kLanes, warp = threadIdx.x / kLanes;
  const std::int64_t bh = blockIdx.y, s = static_cast<std::int64_t>(blockIdx.x) * kWarps + warp;
  if (s >= S) return;
  const LayoutRef L(args.cols, bh);  // transposed: CSR rows are key tiles
  scalar_t* k_row = reinterpret_cast<scalar_t*>(shared_bytes) + warp * 2 * D;
  scalar_t* v_row = k_row + D;
  for (std::int64_t d = lane; d < D; d += kLanes) {
    k_row[d] = k[(bh * S + s) * D + d];
    v_row[d] = v[(bh * S + s) * D + d];
  }
  __syncwarp();
  const scalar_t* q_bh = q + bh * T * D;
  const scalar_t* do_bh = dout + bh * T * D;
  scalar_t dk_acc[kSlots], dv_acc[kSlots];
  for (int i = 0; i < kSlots; ++i) dk_acc[i] = dv_acc[i] = 0;
  const std::int64_t kt = s / L.tile, c_local = s - kt * L.tile;
  for (std::int64_t e = L.ptr[kt]; e < L.ptr[kt + 1]; ++e) {
    const std::int64_t t_begin = L.idx[e] * L.tile, t_end = min(T, t_begin + L.tile);
    const std::int64_t mask_index = L.tmask[e];
    for (std::int64_t t0 = t_begin; t0 < t_end; t0 += kLanes) {
      const std::int64_t t = t0 + lane;
      scalar_t p = 0, ds = 0;
      if (t < t_end && L.allowed(mask_index, t - t_begin, c_local)) {
        const scalar_t row_lse = lse[bh * T + t];
        if (row_lse != neg_infinity<scalar_t>()) {
          p = dev_exp(scale * dot(k_row, q_bh + t * D, D) - row_lse);
          ds = p * (dot(v_row, do_bh + t * D, D) - delta[bh * T + t]);
        }
      }
      const int n_rows = static_cast<int>(min(static_cast<std::int64_t>(kLanes), t_end - t0));
      for (int j = 0; j < n_rows; ++j) {
        const scalar_t p_j = __shfl_sync(0xffffffffu, p, j);
        const scalar_t ds_j = __shfl_sync(0xffffffffu, ds, j);
        if (p_j == scalar_t(0)) continue;
        const scalar_t* q_t = q_bh + (t0 + j) * D;
        const scalar_t* do_t = do_bh + (t0 + j) * D;
        for (int i = 0; i < kSlots; ++i) {
          const std::int64_t d = lane + i * kLanes;
          if (d < D) {
            dv_acc[i] += p_j * do_t[d];
            dk_acc[i] += ds_j * q_t[d];
          }
        }
      }
    }
  }
  for (int i = 0; i < kSlots; ++i) {
    const std::int64_t d = lane + i * kLanes;
    if (d < D) {
      dk[(bh * S + s) * D + d] = scale * dk_acc[i];
      dv[(bh * S + s) * D + d] = dv_acc[i];
    }
  }
}

dim3 grid_for(std::int64_t rows, std::int64_t BH) {
  return dim3(static_cast<unsigned>((rows + kWarps - 1) / kWarps), static_cast<unsigned>(BH));
}

}  // namespace

template <typename scalar_t>
void launch_forward(const BlockSparseParams<scalar_t>& p) {
  if (p.T == 0 || p.BH == 0) return;
  const size_t shared = sizeof(scalar_t) * kWarps * p.D;  // one q row per warp
  forward_kernel<scalar_t><<<grid_for(p.T, p.BH), kWarps * kLanes, shared,
                             static_cast<cudaStream_t>(p.stream)>>>(p);
}

template <typename scalar_t>
void launch_backward(const BlockSparseParams<scalar_t>& p) {
  if (p.BH == 0) return;
  const size_t shared = sizeof(scalar_t) * kWarps * 2 * p.D;  // two rows per warp
  const auto stream = static_cast<cudaStream_t>(p.stream);
  if (p.T > 0)
    backward_dq_kernel<scalar_t><<<grid_for(p.T, p.BH), kWarps * kLanes, shared, stream>>>(p);
  if (p.S > 0)
    backward_dkdv_kernel<scalar_t><<<grid_for(p.S, p.BH), kWarps * kLanes, shared, stream>>>(p);
}

const char* last_error() {
  const cudaError_t error = cudaGetLastError();
  return error == cudaSuccess ? nullptr : cudaGetErrorString(error);
}

template void launch_forward<float>(const BlockSparseParams<float>&);
template void launch_forward<double>(const BlockSparseParams<double>&);
template void launch_backward<float>(const BlockSparseParams<float>&);
template void launch_backward<double>(const BlockSparseParams<double>&);

}  // namespace attnlab::kernels::cuda
