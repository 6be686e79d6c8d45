#pragma once
// Row-wise softmax pieces for the CPU flash kernels, on raw pointers (n = row length):
//   row_max(x)            = max_i x_i                     (-inf for an all -inf row)
//   exp_shift_sum(x, m)   : x_i <- exp(x_i - m), returns sum_i x_i   (x_i = -inf -> 0; m = +inf
//                           gives all 0: the backward's lse for rows with no allowed key)
//   softmax_grad_row(p, dp, d): p_i <- p_i * (dp_i - d)      (dS = P o (dP - D), one row)
//   mask_row(x, allowed)  : x_i <- allowed_i ? x_i : -inf    (element mask of a partial tile)
// and the same softmax pieces down the columns of a [n, ld] block (scores stored key-major,
// one column per query, as the forward keeps them), over its first w columns:
//   col_max(x, n, ld, w, m)          : m_i <- max(m_i, max_j x[j, i])
//   exp_shift_cols(x, n, ld, w, m, l): x[j, i] <- exp(x[j, i] - m_i), l_i += sum_j x[j, i]
//                                      (m_i finite, or +inf for a column that stays all 0)
// float has AVX-512 and AVX2+FMA versions chosen at run time (the library is built for plain
// x86-64, so the compiler alone would only use SSE2); double uses plain loops (checks only).
#include <cstdint>

namespace attnlab::kernels::cpu {

float row_max(const float* x, std::int64_t n);
float exp_shift_sum(float* x, std::int64_t n, float m);
void softmax_grad_row(float* p, const float* dp, float d, std::int64_t n);
void mask_row(float* x, const bool* allowed, std::int64_t n);
void col_max(const float* x, std::int64_t n, std::int64_t ld, std::int64_t w, float* m);
void exp_shift_cols(float* x, std::int64_t n, std::int64_t ld, std::int64_t w, const float* m,
                    float* l);

double row_max(const double* x, std::int64_t n);
double exp_shift_sum(double* x, std::int64_t n, double m);
void softmax_grad_row(double* p, const double* dp, double d, std::int64_t n);
void mask_row(double* x, const bool* allowed, std::int64_t n);
void col_max(const double* x, std::int64_t n, std::int64_t ld, std::int64_t w, double* m);
void exp_shift_cols(double* x, std::int64_t n, std::int64_t ld, std::int64_t w, const double* m,
                    double* l);

}  // namespace attnlab::kernels::cpu
