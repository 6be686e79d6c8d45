#pragma once
// Row-major tile GEMM for the CPU flash kernels, on raw pointers:
//   gemm_nn:   C[m, n] = alpha * A[m, k] B[k, n] + beta * C      (beta == 0: C is not read)
//   gemm_tn:   C[m, n] = alpha * A^T B + beta * C, A stored [k, m] (the backward's dQ = dS K
//              from the dS^T it holds, without transposing dS or K)
//   transpose: dst[c, r] = src[r, c]                              (rows x cols -> cols x rows)
// Callers transpose the small operand that needs it (a K or V tile, a P tile) into scratch
// so only one product shape needs a fast kernel; the copy is 1/(2m) of the GEMM's work.
// float uses an AVX2+FMA register-blocked kernel (6 rows x 16 columns) chosen at run time;
// double (and CPUs without AVX2) use plain loops.
#include <cstdint>

namespace attnlab::kernels::cpu {

constexpr std::int64_t kPanelWidth = 16;

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

template <typename scalar_t>
void transpose(std::int64_t rows, std::int64_t cols, const scalar_t* src, std::int64_t ld_src,
               scalar_t* dst, std::int64_t ld_dst) {
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) dst[c * ld_dst + r] = src[r * ld_src + c];
}

// Whether gemm_nn<float> runs the AVX2 kernel on this CPU (for reports).
bool gemm_uses_avx2();

}  // namespace attnlab::kernels::cpu
