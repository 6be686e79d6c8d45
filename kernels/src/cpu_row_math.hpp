#pragma once
// Row-wise softmax pieces for the CPU flash kernels, on raw pointers (n = row length):
//   row_max(x)            = max_i x_i                     (-inf for an all -inf row)
//   exp_shift_sum(x, m)   : x_i <- exp(x_i - m), returns sum_i x_i   (m finite; -inf -> 0)
//   exp_shift_each(x, m)  : x_i <- exp(x_i - m_i)   (m_i = +inf gives 0: pass lse with -inf
//                           replaced by +inf for rows that have no allowed key)
//   softmax_grad_each(p, dp, d): p_i <- p_i * (dp_i - d_i)   (dS^T = P^T o (dP^T - D))
//   softmax_grad_row(p, dp, d): p_i <- p_i * (dp_i - d)      (dS = P o (dP - D), one row)
//   mask_row(x, allowed)  : x_i <- allowed_i ? x_i : -inf    (element mask of a partial tile)
// float has an AVX2+FMA version chosen at run time (the library itself is built for plain
// x86-64, so the compiler alone would only use SSE2); double uses plain loops (checks only).
#include <cstdint>

namespace attnlab::kernels::cpu {

float row_max(const float* x, std::int64_t n);
float exp_shift_sum(float* x, std::int64_t n, float m);
void exp_shift_each(float* x, const float* m, std::int64_t n);
void softmax_grad_each(float* p, const float* dp, const float* d, std::int64_t n);
void softmax_grad_row(float* p, const float* dp, float d, std::int64_t n);
void mask_row(float* x, const bool* allowed, std::int64_t n);

double row_max(const double* x, std::int64_t n);
double exp_shift_sum(double* x, std::int64_t n, double m);
void exp_shift_each(double* x, const double* m, std::int64_t n);
void softmax_grad_each(double* p, const double* dp, const double* d, std::int64_t n);
void softmax_grad_row(double* p, const double* dp, double d, std::int64_t n);
void mask_row(double* x, const bool* allowed, std::int64_t n);

// Whether the AVX2 path is in use on this CPU (for reports).
bool row_math_uses_avx2();

}  // namespace attnlab::kernels::cpu
