// AVX-512 tile GEMM for the CPU flash kernels (see cpu_gemm.hpp for the contract):
//
//   C[m, n] = alpha * A B + beta * C,  A [m, k] row-major (or stored [k, m] with kTransA),
//   B column block j (16 columns) at b + (j / 16) * block_stride, its rows ldb apart.
//
// Register block: 8 rows x 32 columns = 16 zmm accumulators, two B vectors and one broadcast
// per step (19 of 32 registers); per k step 2 B loads and 8 broadcasts feed 16 FMAs, so the
// two FMA ports, not the loads, are the limit. 8 rows divide the 64-row tiles the kernels use
// (a 12-row block would leave a 4-row tail on every tile). Column tails are masked lanes.
// Why it exists: on an AVX-512 CPU (Intel Sapphire/Emerald Rapids here) the AVX2 6x16 kernel
// does half the work per instruction of OpenBLAS's and LibTorch 2.x's AVX-512 code, and the
// kernel measured 0.6-0.9x LibTorch 2.6's flash SDPA with it.
#include "cpu_gemm.hpp"

// GCC 12's AVX-512 intrinsics read an "undefined" vector (_mm512_undefined_*) and warn about
// it wherever they are inlined (GCC bug 105593); the values are never used.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

namespace attnlab::kernels::cpu::detail {

namespace {

constexpr int kRows = 8;
constexpr int kCols = 32;

#define ATTNLAB_AVX512 __attribute__((target("avx512f,fma")))

ATTNLAB_AVX512 inline void store_row(float* c_row, __m512 acc0, __m512 acc1, float alpha, float beta,
                                     __mmask16 lo, __mmask16 hi) {
  const __m512 alpha_v = _mm512_set1_ps(alpha);
  __m512 out0 = _mm512_mul_ps(acc0, alpha_v), out1 = _mm512_mul_ps(acc1, alpha_v);
  if (beta != 0.0f) {
    const __m512 beta_v = _mm512_set1_ps(beta);
    out0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(lo, c_row), beta_v, out0);
    out1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(hi, c_row + 16), beta_v, out1);
  }
  _mm512_mask_storeu_ps(c_row, lo, out0);
  _mm512_mask_storeu_ps(c_row + 16, hi, out1);
}

// C[R, 32] from A rows (a + r * row_step, element p at p * col_step) and two 16-column B
// blocks b0, b1 (rows ldb apart). Named accumulators: GCC keeps them in registers.
template <int R, bool kTransA>
ATTNLAB_AVX512 void micro_kernel(std::int64_t k, const float* a, std::int64_t lda, const float* b0,
                                 const float* b1, std::int64_t ldb, float alpha, float beta, float* c,
                                 std::int64_t ldc, __mmask16 lo, __mmask16 hi) {
  __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00,
         c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00, c60 = c00, c61 = c00, c70 = c00, c71 = c00;
  const std::int64_t row_step = kTransA ? 1 : lda, col_step = kTransA ? lda : 1;
  for (std::int64_t p = 0; p < k; ++p) {
    const __m512 x0 = _mm512_maskz_loadu_ps(lo, b0 + p * ldb);
    const __m512 x1 = _mm512_maskz_loadu_ps(hi, b1 + p * ldb);
    const float* ap = a + p * col_step;
    __m512 s = _mm512_set1_ps(ap[0]);
    c00 = _mm512_fmadd_ps(s, x0, c00);
    c01 = _mm512_fmadd_ps(s, x1, c01);
    if constexpr (R > 1) {
      s = _mm512_set1_ps(ap[row_step]);
      c10 = _mm512_fmadd_ps(s, x0, c10);
      c11 = _mm512_fmadd_ps(s, x1, c11);
    }
    if constexpr (R > 2) {
      s = _mm512_set1_ps(ap[2 * row_step]);
      c20 = _mm512_fmadd_ps(s, x0, c20);
      c21 = _mm512_fmadd_ps(s, x1, c21);
    }
    if constexpr (R > 3) {
      s = _mm512_set1_ps(ap[3 * row_step]);
      c30 = _mm512_fmadd_ps(s, x0, c30);
      c31 = _mm512_fmadd_ps(s, x1, c31);
    }
    if constexpr (R > 4) {
      s = _mm512_set1_ps(ap[4 * row_step]);
      c40 = _mm512_fmadd_ps(s, x0, c40);
      c41 = _mm512_fmadd_ps(s, x1, c41);
    }
    if constexpr (R > 5) {
      s = _mm512_set1_ps(ap[5 * row_step]);
      c50 = _mm512_fmadd_ps(s, x0, c50);
      c51 = _mm512_fmadd_ps(s, x1, c51);
    }
    if constexpr (R > 6) {
      s = _mm512_set1_ps(ap[6 * row_step]);
      c60 = _mm512_fmadd_ps(s, x0, c60);
      c61 = _mm512_fmadd_ps(s, x1, c61);
    }
    if constexpr (R > 7) {
      s = _mm512_set1_ps(ap[7 * row_step]);
      c70 = _mm512_fmadd_ps(s, x0, c70);
      c71 = _mm512_fmadd_ps(s, x1, c71);
    }
  }
  store_row(c, c00, c01, alpha, beta, lo, hi);
  if constexpr (R > 1) store_row(c + ldc, c10, c11, alpha, beta, lo, hi);
  if constexpr (R > 2) store_row(c + 2 * ldc, c20, c21, alpha, beta, lo, hi);
  if constexpr (R > 3) store_row(c + 3 * ldc, c30, c31, alpha, beta, lo, hi);
  if constexpr (R > 4) store_row(c + 4 * ldc, c40, c41, alpha, beta, lo, hi);
  if constexpr (R > 5) store_row(c + 5 * ldc, c50, c51, alpha, beta, lo, hi);
  if constexpr (R > 6) store_row(c + 6 * ldc, c60, c61, alpha, beta, lo, hi);
  if constexpr (R > 7) store_row(c + 7 * ldc, c70, c71, alpha, beta, lo, hi);
}

template <bool kTransA>
ATTNLAB_AVX512 void row_block(int rows, std::int64_t k, const float* a, std::int64_t lda, const float* b0,
                              const float* b1, std::int64_t ldb, float alpha, float beta, float* c,
                              std::int64_t ldc, __mmask16 lo, __mmask16 hi) {
  switch (rows) {
    case 8: micro_kernel<8, kTransA>(k, a, lda, b0, b1, ldb, alpha, beta, c, ldc, lo, hi); break;
    case 7: micro_kernel<7, kTransA>(k, a, lda, b0, b1, ldb, alpha, beta, c, ldc, lo, hi); break;
    case 6: micro_kernel<6, kTransA>(k, a, lda, b0, b1, ldb, alpha, beta, c, ldc, lo, hi); break;
    case 5: micro_kernel<5, kTransA>(k, a, lda, b0, b1, ldb, alpha, beta, c, ldc, lo, hi); break;
    case 4: micro_kernel<4, kTransA>(k, a, lda, b0, b1, ldb, alpha, beta, c, ldc, lo, hi); break;
    case 3: micro_kernel<3, kTransA>(k, a, lda, b0, b1, ldb, alpha, beta, c, ldc, lo, hi); break;
    case 2: micro_kernel<2, kTransA>(k, a, lda, b0, b1, ldb, alpha, beta, c, ldc, lo, hi); break;
    default: micro_kernel<1, kTransA>(k, a, lda, b0, b1, ldb, alpha, beta, c, ldc, lo, hi); break;
  }
}

inline __mmask16 lanes(std::int64_t width) {
  return width >= 16 ? __mmask16(0xFFFF) : width <= 0 ? __mmask16(0) : __mmask16((1u << width) - 1u);
}

}  // namespace

template <bool kTransA>
ATTNLAB_AVX512 void gemm_avx512(std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a,
                                std::int64_t lda, const float* b, std::int64_t ldb, std::int64_t block_stride,
                                float beta, float* c, std::int64_t ldc) {
  const std::int64_t a_row_step = kTransA ? 1 : lda;
  // Column blocks outermost: a 32-wide strip of B (k x 32) stays in L1 across row blocks.
  for (std::int64_t j = 0; j < n; j += kCols) {
    const std::int64_t width = n - j < kCols ? n - j : kCols;
    const __mmask16 lo = lanes(width), hi = lanes(width - 16);
    const float* b0 = b + (j / 16) * block_stride;
    const float* b1 = width > 16 ? b + (j / 16 + 1) * block_stride : b0;  // unread when hi == 0
    for (std::int64_t i = 0; i < m; i += kRows) {
      const int rows = m - i < kRows ? int(m - i) : kRows;
      row_block<kTransA>(rows, k, a + i * a_row_step, lda, b0, b1, ldb, alpha, beta, c + i * ldc + j, ldc, lo,
                         hi);
    }
  }
}

template void gemm_avx512<false>(std::int64_t, std::int64_t, std::int64_t, float, const float*, std::int64_t,
                                 const float*, std::int64_t, std::int64_t, float, float*, std::int64_t);
template void gemm_avx512<true>(std::int64_t, std::int64_t, std::int64_t, float, const float*, std::int64_t,
                                const float*, std::int64_t, std::int64_t, float, float*, std::int64_t);

bool cpu_has_avx512() {
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
  return has;
}

}  // namespace attnlab::kernels::cpu::detail
