// Tile GEMM for the CPU flash kernels; see cpu_gemm.hpp.
//
// Versions tried (this 2-vCPU AMD EPYC (Zen 3) machine, shared with other builds):
//   1. sgemm_ of the process's OpenBLAS (openmp build), one call per 64..256-wide tile run:
//      256x64x64 took 0.6-20 ms per call (0.1-3.7 GFLOP/s): 85% of the time was libgomp
//      spin-waiting, because OpenBLAS opens its own OpenMP team per call even for tiny
//      products, and on a loaded machine the team's threads are descheduled. Unusable.
//   2. This register-blocked AVX2 kernel: no threads, no packing (the B operand of a tile
//      product is at most 256 x 128 floats and stays in L2). Numbers: see
//      block_sparse_forward.cpp.
#include "cpu_gemm.hpp"

#include <immintrin.h>

namespace attnlab::kernels::cpu {

namespace {

constexpr int kRows = 6;   // 6 x 16 = 12 accumulators: enough independent FMAs for 2 pipes
constexpr int kCols = 16;

// C[R, 16] block; `lo`/`hi` mask the columns actually present (tail blocks).
template <int R, bool kFull>
__attribute__((target("avx2,fma"))) void micro_kernel(std::int64_t k, const float* a,
                                                      std::int64_t lda, const float* b,
                                                      std::int64_t ldb, float alpha, float beta,
                                                      float* c, std::int64_t ldc, __m256i lo,
                                                      __m256i hi) {
  __m256 acc[R][2];
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  for (std::int64_t p = 0; p < k; ++p) {
    const float* b_row = b + p * ldb;
    const __m256 b0 = kFull ? _mm256_loadu_ps(b_row) : _mm256_maskload_ps(b_row, lo);
    const __m256 b1 = kFull ? _mm256_loadu_ps(b_row + 8) : _mm256_maskload_ps(b_row + 8, hi);
    for (int r = 0; r < R; ++r) {
      const __m256 a_rp = _mm256_broadcast_ss(a + r * lda + p);
      acc[r][0] = _mm256_fmadd_ps(a_rp, b0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(a_rp, b1, acc[r][1]);
    }
  }
  const __m256 alpha_v = _mm256_set1_ps(alpha), beta_v = _mm256_set1_ps(beta);
  for (int r = 0; r < R; ++r) {
    float* c_row = c + r * ldc;
    __m256 out0 = _mm256_mul_ps(acc[r][0], alpha_v), out1 = _mm256_mul_ps(acc[r][1], alpha_v);
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
}

template <bool kFull>
__attribute__((target("avx2,fma"))) void row_block(int rows, std::int64_t k, const float* a,
                                                   std::int64_t lda, const float* b,
                                                   std::int64_t ldb, float alpha, float beta,
                                                   float* c, std::int64_t ldc, __m256i lo,
                                                   __m256i hi) {
  switch (rows) {
    case 6: micro_kernel<6, kFull>(k, a, lda, b, ldb, alpha, beta, c, ldc, lo, hi); break;
    case 5: micro_kernel<5, kFull>(k, a, lda, b, ldb, alpha, beta, c, ldc, lo, hi); break;
    case 4: micro_kernel<4, kFull>(k, a, lda, b, ldb, alpha, beta, c, ldc, lo, hi); break;
    case 3: micro_kernel<3, kFull>(k, a, lda, b, ldb, alpha, beta, c, ldc, lo, hi); break;
    case 2: micro_kernel<2, kFull>(k, a, lda, b, ldb, alpha, beta, c, ldc, lo, hi); break;
    default: micro_kernel<1, kFull>(k, a, lda, b, ldb, alpha, beta, c, ldc, lo, hi); break;
  }
}

__attribute__((target("avx2,fma"))) void gemm_nn_avx2(std::int64_t m, std::int64_t n,
                                                      std::int64_t k, float alpha, const float* a,
                                                      std::int64_t lda, const float* b,
                                                      std::int64_t ldb, float beta, float* c,
                                                      std::int64_t ldc) {
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
        row_block<true>(rows, k, a + i * lda, lda, b + j, ldb, alpha, beta, c + i * ldc + j, ldc,
                        lo, hi);
      else
        row_block<false>(rows, k, a + i * lda, lda, b + j, ldb, alpha, beta, c + i * ldc + j,
                         ldc, lo, hi);
    }
  }
}

template <typename scalar_t>
void gemm_nn_plain(std::int64_t m, std::int64_t n, std::int64_t k, scalar_t alpha,
                   const scalar_t* a, std::int64_t lda, const scalar_t* b, std::int64_t ldb,
                   scalar_t beta, scalar_t* c, std::int64_t ldc) {
  for (std::int64_t i = 0; i < m; ++i) {
    scalar_t* c_row = c + i * ldc;
    for (std::int64_t j = 0; j < n; ++j) c_row[j] = beta == scalar_t(0) ? scalar_t(0) : beta * c_row[j];
    for (std::int64_t p = 0; p < k; ++p) {
      const scalar_t a_ip = alpha * a[i * lda + p];
      const scalar_t* b_row = b + p * ldb;
      for (std::int64_t j = 0; j < n; ++j) c_row[j] += a_ip * b_row[j];
    }
  }
}

bool cpu_has_avx2() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}

}  // namespace

void gemm_nn(std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a,
             std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c,
             std::int64_t ldc) {
  if (cpu_has_avx2()) gemm_nn_avx2(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  else gemm_nn_plain(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void gemm_nn(std::int64_t m, std::int64_t n, std::int64_t k, double alpha, const double* a,
             std::int64_t lda, const double* b, std::int64_t ldb, double beta, double* c,
             std::int64_t ldc) {
  gemm_nn_plain(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

bool gemm_uses_avx2() { return cpu_has_avx2(); }

}  // namespace attnlab::kernels::cpu
