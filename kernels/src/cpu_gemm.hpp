#pragma once
// Row-major tile GEMM for the CPU flash kernels, on raw pointers:
//   gemm_nn:   C[m, n] = alpha * A[m, k] B[k, n] + beta * C      (beta == 0: C is not read)
//   gemm_tn:   C[m, n] = alpha * A^T B + beta * C, A stored [k, m] (the backward's dV = P^T dO
//              and dK = dS^T Q from the P and dS it holds, without transposing them)
// B operands that need transposing (K, V) are packed into 16-column panels instead
// (block_sparse_plan.hpp's pack_panels, gemm_nn_panels).
// float uses a register-blocked kernel chosen at run time: AVX-512 (6 rows x 64 columns,
// cpu_gemm_avx512.cpp) where the CPU has it, else AVX2+FMA (6 x 16); double (and CPUs
// without AVX2) use plain loops.
#include <cstdint>

namespace attnlab::kernels::cpu {

constexpr std::int64_t kPanelWidth = 16;

// Rows of the micro-kernel (6 for both ISAs): callers that compute a partial tile in blocks
// of rows use this block height, so no block leaves a short tail.
std::int64_t gemm_block_rows();

namespace detail {
bool cpu_has_avx512();
template <bool kTransA>
void gemm_avx512(std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a,
                 std::int64_t lda, const float* b, std::int64_t ldb, std::int64_t block_stride,
                 float beta, float* c, std::int64_t ldc);
}  // namespace detail

void gemm_nn(std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a,
             std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c,
             std::int64_t ldc);
void gemm_nn(std::int64_t m, std::int64_t n, std::int64_t k, double alpha, const double* a,
             std::int64_t lda, const double* b, std::int64_t ldb, double beta, double* c,
             std::int64_t ldc);

void gemm_tn(std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a,
             std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c,
             std::int64_t ldc);
void gemm_tn(std::int64_t m, std::int64_t n, std::int64_t k, double alpha, const double* a,
             std::int64_t lda, const double* b, std::int64_t ldb, double beta, double* c,
             std::int64_t ldc);

// Same product with B stored as 16-column panels ([ceil(n/16)][k][16], zero padded), the
// layout pack_panels() produces: a panel is contiguous, so the kernel streams it from L1 instead
// of striding through a long row-major B (a K^T of 4096 columns puts every row of a 16-wide
// strip 16 KiB apart, all in one L1 set: measured 2.5x slower).
void gemm_nn_panels(std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a,
                    std::int64_t lda, const float* b_panels, float beta, float* c,
                    std::int64_t ldc);
void gemm_nn_panels(std::int64_t m, std::int64_t n, std::int64_t k, double alpha,
                    const double* a, std::int64_t lda, const double* b_panels, double beta,
                    double* c, std::int64_t ldc);

}  // namespace attnlab::kernels::cpu
