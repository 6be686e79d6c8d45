#pragma once
// Row-wise softmax pieces for the CPU flash kernels, on raw pointers (n = row length):
//   row_max(x)            = max_i x_i                     (-inf for an all -inf row)
//   exp_shift_sum(x, m)   : x_i <- exp(x_i - m), returns sum_i x_i   (x_i = -inf -> 0; m = +inf
//                           gives all 0: the backward's lse for rows with no allowed key)
//   softmax_grad_row(p, dp, d): p_i <- p_i * (dp_i - d)      (dS = P o (dP - D), one row)
//   mask_row(x, allowed)  : x_i <- allowed_i ? x_i : -inf    (element mask of a partial tile)
// float has an AVX2+FMA version chosen at run time (the library itself is built for plain
// x86-64, so the compiler alone would only use SSE2); double uses plain loops (checks only).
#include <cstdint>

namespace attnlab::kernels::cpu {

float row_max(const float* x, std::int64_t n);
float exp_shift_sum(float* x, std::int64_t n, float m);
void softmax_grad_row(float* p, const float* dp, float d, std::int64_t n);
void mask_row(float* x, const bool* allowed, std::int64_t n);

double row_max(const double* x, std::int64_t n);
double exp_shift_sum(double* x, std::int64_t n, double m);
void softmax_grad_row(double* p, const double* dp, double d, std::int64_t n);
void mask_row(double* x, const bool* allowed, std::int64_t n);

}  // namespace attnlab::kernels::cpu
