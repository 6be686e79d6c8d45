// AVX-512 tile GEMM for the CPU flash kernels (see cpu_gemm.hpp for the contract):
//
//   C[m, n] = alpha * A B + beta * C,  A [m, k] row-major (or stored [k, m] with kTransA),
//   B column block j (16 columns) at b + (j / 16) * block_stride, its rows ldb apart.
//
// Register block: 6 rows x 64 columns = 24 zmm accumulators, four B vectors and one broadcast
// per step (29 of 32 registers); per k step 4 B loads and 6 broadcasts feed 24 FMAs. 64
// columns are one query tile of scores (the forward's S^T = K Q^T) and one head of D = 64
// (P V), so the common products have no column tail; narrower tails use 48, 32 or 16
// columns, the last vector masked. Measured on one thread of this Sapphire-Rapids-class VM
// for 240x64x64 (scores) and 60x64x256 (P V): 6x64 113 and 99-131 GFLOP/s, against 95 and
// 81-96 for an 8x32 block and 95-97 / 93-116 for 12x32 (OpenBLAS sgemm 1024^3: ~96).
// Why it exists: with AVX2's 6x16 block the kernel measured 0.6-0.9x LibTorch 2.6's flash
// SDPA on this AVX-512 CPU, whose OpenBLAS and SDPA both run AVX-512 code.
#include "cpu_gemm.hpp"

// GCC 12's AVX-512 intrinsics read an "undefined" vector (_mm512_undefined_*) and warn about
// it wherever they are inlined (GCC bug 105593); the values are never used.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

namespace attnlab::kernels::cpu::detail {

namespace {

constexpr int kRows = 6;

#define ATTNLAB_AVX512 __attribute__((target("avx512f,fma")))

// C[R, 16 * NV] from A rows (row r at a + r * row_step, element p at p * col_step) and NV
// 16-column blocks of B (block j at b + j * block_stride, rows ldb apart); the last block's
// lanes are `last`. Accumulators are a fully unrolled array, which GCC keeps in registers
// (checked: same speed as named variables).
template <int R, int NV, bool kTransA>
ATTNLAB_AVX512 void micro_kernel(std::int64_t k, const float* a, std::int64_t lda, const float* b,
                                 std::int64_t ldb, std::int64_t block_stride, float alpha, float beta,
                                 float* c, std::int64_t ldc, __mmask16 last) {
  const std::int64_t row_step = kTransA ? 1 : lda, col_step = kTransA ? lda : 1;
  __m512 acc[R][NV];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[r][j] = _mm512_setzero_ps();
  for (std::int64_t p = 0; p < k; ++p) {
    __m512 x[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j)
      x[j] = j + 1 < NV ? _mm512_loadu_ps(b + j * block_stride + p * ldb)
                        : _mm512_maskz_loadu_ps(last, b + j * block_stride + p * ldb);
    const float* ap = a + p * col_step;
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512 s = _mm512_set1_ps(ap[r * row_step]);
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[r][j] = _mm512_fmadd_ps(s, x[j], acc[r][j]);
    }
  }
  const __m512 alpha_v = _mm512_set1_ps(alpha), beta_v = _mm512_set1_ps(beta);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) {
      float* c_at = c + r * ldc + j * 16;
      const __mmask16 lanes = j + 1 < NV ? __mmask16(0xFFFF) : last;
      __m512 out = _mm512_mul_ps(acc[r][j], alpha_v);
      if (beta != 0.0f) out = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(lanes, c_at), beta_v, out);
      _mm512_mask_storeu_ps(c_at, lanes, out);
    }
}

template <int NV, bool kTransA>
ATTNLAB_AVX512 void row_block(int rows, std::int64_t k, const float* a, std::int64_t lda, const float* b,
                              std::int64_t ldb, std::int64_t block_stride, float alpha, float beta, float* c,
                              std::int64_t ldc, __mmask16 last) {
  switch (rows) {
    case 6: micro_kernel<6, NV, kTransA>(k, a, lda, b, ldb, block_stride, alpha, beta, c, ldc, last); break;
    case 5: micro_kernel<5, NV, kTransA>(k, a, lda, b, ldb, block_stride, alpha, beta, c, ldc, last); break;
    case 4: micro_kernel<4, NV, kTransA>(k, a, lda, b, ldb, block_stride, alpha, beta, c, ldc, last); break;
    case 3: micro_kernel<3, NV, kTransA>(k, a, lda, b, ldb, block_stride, alpha, beta, c, ldc, last); break;
    case 2: micro_kernel<2, NV, kTransA>(k, a, lda, b, ldb, block_stride, alpha, beta, c, ldc, last); break;
    default: micro_kernel<1, NV, kTransA>(k, a, lda, b, ldb, block_stride, alpha, beta, c, ldc, last); break;
  }
}

// All rows of one column strip of NV blocks.
template <int NV, bool kTransA>
ATTNLAB_AVX512 void strip(std::int64_t m, std::int64_t k, const float* a, std::int64_t lda, const float* b,
                          std::int64_t ldb, std::int64_t block_stride, float alpha, float beta, float* c,
                          std::int64_t ldc, __mmask16 last) {
  const std::int64_t a_row_step = kTransA ? 1 : lda;
  for (std::int64_t i = 0; i < m; i += kRows) {
    const int rows = m - i < kRows ? int(m - i) : kRows;
    row_block<NV, kTransA>(rows, k, a + i * a_row_step, lda, b, ldb, block_stride, alpha, beta, c + i * ldc, ldc,
                           last);
  }
}

}  // namespace

template <bool kTransA>
ATTNLAB_AVX512 void gemm_avx512(std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a,
                                std::int64_t lda, const float* b, std::int64_t ldb, std::int64_t block_stride,
                                float beta, float* c, std::int64_t ldc) {
  // Column strips outermost: a strip of B (k x 64 at most) stays in L1 across row blocks.
  for (std::int64_t j = 0; j < n;) {
    const std::int64_t width = n - j < 64 ? n - j : 64;
    const int blocks = int((width + 15) / 16);
    const std::int64_t tail = width - 16 * (blocks - 1);
    const __mmask16 last = tail >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << tail) - 1u);
    const float* b_strip = b + (j / 16) * block_stride;
    float* c_strip = c + j;
    switch (blocks) {
      case 4: strip<4, kTransA>(m, k, a, lda, b_strip, ldb, block_stride, alpha, beta, c_strip, ldc, last); break;
      case 3: strip<3, kTransA>(m, k, a, lda, b_strip, ldb, block_stride, alpha, beta, c_strip, ldc, last); break;
      case 2: strip<2, kTransA>(m, k, a, lda, b_strip, ldb, block_stride, alpha, beta, c_strip, ldc, last); break;
      default: strip<1, kTransA>(m, k, a, lda, b_strip, ldb, block_stride, alpha, beta, c_strip, ldc, last); break;
    }
    j += width;
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
