// Tile GEMM for the CPU flash kernels; see cpu_gemm.hpp.
//
// Versions tried (this 2-vCPU AMD EPYC (Zen 3) machine, shared with other builds):
//   1. sgemm_ of the process's OpenBLAS (openmp build), one call per 64..256-wide tile run:
//      256x64x64 took 0.6-20 ms per call (0.1-3.7 GFLOP/s): 85% of the time was libgomp
//      spin-waiting, because OpenBLAS opens its own OpenMP team per call even for tiny
//      products, and on a loaded machine the team's threads are descheduled. Unusable.
//   2. A register-blocked AVX2 6x16 kernel with the accumulators in an __m256 array:
//      ~30 GFLOP/s per CPU-second (GCC spilled the array to the stack every iteration).
//   3. This kernel (named accumulators): 84-88 GFLOP/s per CPU-second on one thread for
//      64x256x64, 64x64x256 and 256x256x256 products, vs 78-80 for OpenBLAS at::mm 1024^3
//      measured the same way (thread CPU time, so other builds on the machine matter less).
//      16-key panels for K^T add ~3% here and avoid L1 set conflicts for long rows.
//   No threads, no packing of A: the B operand of a tile product (at most 256 x 128 floats)
//   stays in L2.
#include "cpu_gemm.hpp"

#include <immintrin.h>

namespace attnlab::kernels::cpu {

namespace {

constexpr int kRows = 6;   // 6 x 16 = 12 accumulators: enough independent FMAs for 2 pipes
constexpr int kCols = static_cast<int>(kPanelWidth);

// Writes one finished row of the block: C = alpha * acc + beta * C (C not read when beta == 0).
template <bool kFull>
__attribute__((target("avx2,fma"))) inline void store_row(float* c_row, __m256 acc0, __m256 acc1,
                                                          float alpha, float beta, __m256i lo,
                                                          __m256i hi) {
  const __m256 alpha_v = _mm256_set1_ps(alpha), beta_v = _mm256_set1_ps(beta);
  __m256 out0 = _mm256_mul_ps(acc0, alpha_v), out1 = _mm256_mul_ps(acc1, alpha_v);
  if (kFull) {
    if (beta != 0.0f) {
      out0 = _mm256_fmadd_ps(_mm256_loadu_ps(c_row), beta_v, out0);
      out1 = _mm256_fmadd_ps(_mm256_loadu_ps(c_row + 8), beta_v, out1);
    }
    _mm256_storeu_ps(c_row, out0);
    _mm256_storeu_ps(c_row + 8, out1);
  } else {
    if (beta != 0.0f) {
      out0 = _mm256_fmadd_ps(_mm256_maskload_ps(c_row, lo), beta_v, out0);
      out1 = _mm256_fmadd_ps(_mm256_maskload_ps(c_row + 8, hi), beta_v, out1);
    }
    _mm256_maskstore_ps(c_row, lo, out0);
    _mm256_maskstore_ps(c_row + 8, hi, out1);
  }
}

// C[R, 16] block; `lo`/`hi` mask the columns actually present (tail blocks). A is read as
// a[r * lda + p] (row-major) or, with kTransA, as a[p * lda + r] (A stored [k, m]). The twelve
// accumulators are named variables, not an array: GCC kept an array on the stack and stored
// it every iteration (12 stores per 12 FMAs), which capped the kernel at ~30 GFLOP/s.
template <int R, bool kFull, bool kTransA>
__attribute__((target("avx2,fma"))) void micro_kernel(std::int64_t k, const float* a,
                                                      std::int64_t lda, const float* b,
                                                      std::int64_t ldb, float alpha, float beta,
                                                      float* c, std::int64_t ldc, __m256i lo,
                                                      __m256i hi) {
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
         c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  const std::int64_t row_step = kTransA ? 1 : lda, col_step = kTransA ? lda : 1;
  const float* a0 = a;
  const float* a1 = a + row_step;
  const float* a2 = a + 2 * row_step;
  const float* a3 = a + 3 * row_step;
  const float* a4 = a + 4 * row_step;
  const float* a5 = a + 5 * row_step;
  for (std::int64_t p = 0; p < k; ++p) {
    const float* b_row = b + p * ldb;
    const std::int64_t ap = p * col_step;
    const __m256 b0 = kFull ? _mm256_loadu_ps(b_row) : _mm256_maskload_ps(b_row, lo);
    const __m256 b1 = kFull ? _mm256_loadu_ps(b_row + 8) : _mm256_maskload_ps(b_row + 8, hi);
    __m256 x = _mm256_broadcast_ss(a0 + ap);
    c00 = _mm256_fmadd_ps(x, b0, c00);
    c01 = _mm256_fmadd_ps(x, b1, c01);
    if constexpr (R > 1) {
      x = _mm256_broadcast_ss(a1 + ap);
      c10 = _mm256_fmadd_ps(x, b0, c10);
      c11 = _mm256_fmadd_ps(x, b1, c11);
    }
    if constexpr (R > 2) {
      x = _mm256_broadcast_ss(a2 + ap);
      c20 = _mm256_fmadd_ps(x, b0, c20);
      c21 = _mm256_fmadd_ps(x, b1, c21);
    }
    if constexpr (R > 3) {
      x = _mm256_broadcast_ss(a3 + ap);
      c30 = _mm256_fmadd_ps(x, b0, c30);
      c31 = _mm256_fmadd_ps(x, b1, c31);
    }
    if constexpr (R > 4) {
      x = _mm256_broadcast_ss(a4 + ap);
      c40 = _mm256_fmadd_ps(x, b0, c40);
      c41 = _mm256_fmadd_ps(x, b1, c41);
    }
    if constexpr (R > 5) {
      x = _mm256_broadcast_ss(a5 + ap);
      c50 = _mm256_fmadd_ps(x, b0, c50);
      c51 = _mm256_fmadd_ps(x, b1, c51);
    }
  }
  store_row<kFull>(c, c00, c01, alpha, beta, lo, hi);
  if constexpr (R > 1) store_row<kFull>(c + ldc, c10, c11, alpha, beta, lo, hi);
  if constexpr (R > 2) store_row<kFull>(c + 2 * ldc, c20, c21, alpha, beta, lo, hi);
  if constexpr (R > 3) store_row<kFull>(c + 3 * ldc, c30, c31, alpha, beta, lo, hi);
  if constexpr (R > 4) store_row<kFull>(c + 4 * ldc, c40, c41, alpha, beta, lo, hi);
  if constexpr (R > 5) store_row<kFull>(c + 5 * ldc, c50, c51, alpha, beta, lo, hi);
}

template <bool kFull, bool kTransA>
__attribute__((target("avx2,fma"))) void row_block(int rows, std::int64_t k, const float* a,
                                                   std::int64_t lda, const float* b,
                                                   std::int64_t ldb, float alpha, float beta,
                                                   float* c, std::int64_t ldc, __m256i lo,
                                                   __m256i hi) {
  switch (rows) {
    case 6: micro_kernel<6, kFull, kTransA>(k, a, lda, b, ldb, alpha, beta, c, ldc, lo, hi); break;
    case 5: micro_kernel<5, kFull, kTransA>(k, a, lda, b, ldb, alpha, beta, c, ldc, lo, hi); break;
    case 4: micro_kernel<4, kFull, kTransA>(k, a, lda, b, ldb, alpha, beta, c, ldc, lo, hi); break;
    case 3: micro_kernel<3, kFull, kTransA>(k, a, lda, b, ldb, alpha, beta, c, ldc, lo, hi); break;
    case 2: micro_kernel<2, kFull, kTransA>(k, a, lda, b, ldb, alpha, beta, c, ldc, lo, hi); break;
    default: micro_kernel<1, kFull, kTransA>(k, a, lda, b, ldb, alpha, beta, c, ldc, lo, hi); break;
  }
}

// Column block j of B starts at b + (j / 16) * block_stride; rows are ldb apart. Row-major B:
// block_stride 16; packed panels: block_stride k * 16, ldb 16.
template <bool kTransA>
__attribute__((target("avx2,fma"))) void gemm_avx2(std::int64_t m, std::int64_t n,
                                                   std::int64_t k, float alpha, const float* a,
                                                   std::int64_t lda, const float* b,
                                                   std::int64_t ldb, std::int64_t block_stride,
                                                   float beta, float* c, std::int64_t ldc) {
  const std::int64_t a_row_step = kTransA ? 1 : lda;
  const __m256i all = _mm256_set1_epi32(-1);
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  // Column blocks outermost: one 16-wide strip of B (k x 16) stays in L1 across row blocks.
  for (std::int64_t j = 0; j < n; j += kCols) {
    const std::int64_t width = n - j < kCols ? n - j : kCols;
    const bool full = width == kCols;
    const __m256i lo = full ? all : _mm256_cmpgt_epi32(_mm256_set1_epi32(int(width)), lane);
    const __m256i hi = full ? all : _mm256_cmpgt_epi32(_mm256_set1_epi32(int(width) - 8), lane);
    for (std::int64_t i = 0; i < m; i += kRows) {
      const int rows = m - i < kRows ? int(m - i) : kRows;
      if (full)
        row_block<true, kTransA>(rows, k, a + i * a_row_step, lda, b + (j / kCols) * block_stride,
                                 ldb, alpha, beta, c + i * ldc + j, ldc, lo, hi);
      else
        row_block<false, kTransA>(rows, k, a + i * a_row_step, lda,
                                  b + (j / kCols) * block_stride, ldb, alpha, beta,
                                  c + i * ldc + j, ldc, lo, hi);
    }
  }
}

// Plain loops, same A and B addressing as gemm_avx2 (j-blocks of 16 columns).
template <bool kTransA, typename scalar_t>
void gemm_plain(std::int64_t m, std::int64_t n, std::int64_t k, scalar_t alpha,
                const scalar_t* a, std::int64_t lda, const scalar_t* b, std::int64_t ldb,
                std::int64_t block_stride, scalar_t beta, scalar_t* c, std::int64_t ldc) {
  const std::int64_t row_step = kTransA ? 1 : lda, col_step = kTransA ? lda : 1;
  for (std::int64_t i = 0; i < m; ++i) {
    scalar_t* c_row = c + i * ldc;
    for (std::int64_t j = 0; j < n; ++j) c_row[j] = beta == scalar_t(0) ? scalar_t(0) : beta * c_row[j];
    for (std::int64_t p = 0; p < k; ++p) {
      const scalar_t a_ip = alpha * a[i * row_step + p * col_step];
      for (std::int64_t j0 = 0; j0 < n; j0 += kCols) {
        const scalar_t* b_row = b + (j0 / kCols) * block_stride + p * ldb;
        const std::int64_t width = n - j0 < kCols ? n - j0 : kCols;
        for (std::int64_t j = 0; j < width; ++j) c_row[j0 + j] += a_ip * b_row[j];
      }
    }
  }
}

bool cpu_has_avx2() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}

// The fastest kernel this CPU runs, for one addressing of B (see gemm_avx2).
template <bool kTransA>
void gemm_float(std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a,
                std::int64_t lda, const float* b, std::int64_t ldb, std::int64_t block_stride,
                float beta, float* c, std::int64_t ldc) {
  if (detail::cpu_has_avx512())
    detail::gemm_avx512<kTransA>(m, n, k, alpha, a, lda, b, ldb, block_stride, beta, c, ldc);
  else if (cpu_has_avx2())
    gemm_avx2<kTransA>(m, n, k, alpha, a, lda, b, ldb, block_stride, beta, c, ldc);
  else
    gemm_plain<kTransA>(m, n, k, alpha, a, lda, b, ldb, block_stride, beta, c, ldc);
}

}  // namespace

std::int64_t gemm_block_rows() { return kRows; }  // the AVX-512 block is 6 rows high too

void gemm_nn(std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a,
             std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c,
             std::int64_t ldc) {
  gemm_float<false>(m, n, k, alpha, a, lda, b, ldb, kCols, beta, c, ldc);
}

void gemm_tn(std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a,
             std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c,
             std::int64_t ldc) {
  gemm_float<true>(m, n, k, alpha, a, lda, b, ldb, kCols, beta, c, ldc);
}

void gemm_nn_panels(std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a,
                    std::int64_t lda, const float* b_panels, float beta, float* c,
                    std::int64_t ldc) {
  gemm_float<false>(m, n, k, alpha, a, lda, b_panels, kCols, k * kCols, beta, c, ldc);
}

void gemm_nn_panels(std::int64_t m, std::int64_t n, std::int64_t k, double alpha,
                    const double* a, std::int64_t lda, const double* b_panels, double beta,
                    double* c, std::int64_t ldc) {
  gemm_plain<false>(m, n, k, alpha, a, lda, b_panels, kCols, k * kCols, beta, c, ldc);
}

void gemm_nn(std::int64_t m, std::int64_t n, std::int64_t k, double alpha, const double* a,
             std::int64_t lda, const double* b, std::int64_t ldb, double beta, double* c,
             std::int64_t ldc) {
  gemm_plain<false>(m, n, k, alpha, a, lda, b, ldb, kCols, beta, c, ldc);
}

void gemm_tn(std::int64_t m, std::int64_t n, std::int64_t k, double alpha, const double* a,
             std::int64_t lda, const double* b, std::int64_t ldb, double beta, double* c,
             std::int64_t ldc) {
  gemm_plain<true>(m, n, k, alpha, a, lda, b, ldb, kCols, beta, c, ldc);
}


}  // namespace attnlab::kernels::cpu
