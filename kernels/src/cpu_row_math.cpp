// Row-wise softmax pieces for the CPU flash kernels; see cpu_row_math.hpp.
//
// exp is the Cephes single-precision polynomial (as in avx_mathfun / ATen's Sleef-free path):
// |rel err| < 2e-7 on [-87, 88]; inputs below -87 return exactly 0 so masked (-inf) scores
// give exactly zero probability and zero gradient. Measured share of the forward (perf,
// causal T=2048 D=64, one thread): exp_shift_sum 2.5% of samples against 35% in the tile GEMM
// (with the slower v2 GEMM), so exp is not the limit at D=64.
// The AVX2 functions call only intrinsics: no inline function from a header is ever
// instantiated with AVX2 code (the linker could otherwise pick that copy for other callers).
#include "cpu_row_math.hpp"

// GCC 12's AVX-512 intrinsics read an "undefined" vector (_mm512_undefined_*) and warn about
// it wherever they are inlined (GCC bug 105593); the values are never used.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cmath>
#include <limits>

namespace attnlab::kernels::cpu {

namespace {

__attribute__((target("avx2,fma"))) inline __m256 exp256(__m256 x) {
  const __m256 too_small = _mm256_cmp_ps(x, _mm256_set1_ps(-87.0f), _CMP_LT_OQ);
  x = _mm256_min_ps(x, _mm256_set1_ps(88.3762626647949f));
  x = _mm256_max_ps(x, _mm256_set1_ps(-88.3762626647949f));
  __m256 fx = _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f));
  fx = _mm256_floor_ps(fx);
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
  __m256 y = _mm256_set1_ps(1.9875691500E-4f);
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507E-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073E-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894E-2f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459E-1f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201E-1f));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
  __m256i e = _mm256_add_epi32(_mm256_cvttps_epi32(fx), _mm256_set1_epi32(127));
  y = _mm256_mul_ps(y, _mm256_castsi256_ps(_mm256_slli_epi32(e, 23)));
  return _mm256_andnot_ps(too_small, y);
}

__attribute__((target("avx2,fma"))) float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma"))) float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

// Scalar tail uses the same polynomial through a one-lane vector, so all lanes agree.
__attribute__((target("avx2,fma"))) float exp1(float x) {
  return _mm256_cvtss_f32(exp256(_mm256_set1_ps(x)));
}

__attribute__((target("avx2,fma"))) float row_max_avx2(const float* x, std::int64_t n) {
  __m256 acc = _mm256_set1_ps(-__builtin_inff());
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) acc = _mm256_max_ps(acc, _mm256_loadu_ps(x + i));
  float m = hmax(acc);
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

__attribute__((target("avx2,fma"))) float exp_shift_sum_avx2(float* x, std::int64_t n, float m) {
  const __m256 shift = _mm256_set1_ps(m);
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  std::int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256 a = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), shift));
    __m256 b = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), shift));
    _mm256_storeu_ps(x + i, a);
    _mm256_storeu_ps(x + i + 8, b);
    acc0 = _mm256_add_ps(acc0, a);
    acc1 = _mm256_add_ps(acc1, b);
  }
  float sum = hsum(_mm256_add_ps(acc0, acc1));
  for (; i < n; ++i) {
    x[i] = exp1(x[i] - m);
    sum += x[i];
  }
  return sum;
}

__attribute__((target("avx2,fma"))) void softmax_grad_row_avx2(float* p, const float* dp, float d,
                                                               std::int64_t n) {
  const __m256 shift = _mm256_set1_ps(d);
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(p + i, _mm256_mul_ps(_mm256_loadu_ps(p + i),
                                          _mm256_sub_ps(_mm256_loadu_ps(dp + i), shift)));
  for (; i < n; ++i) p[i] *= dp[i] - d;
}

// 8 mask bytes widened to 8 lanes, blended with -inf: the scalar branchy loop it replaces was
// ~4% of a 1/16-density forward, where a third of the computed tiles are causal diagonals.
__attribute__((target("avx2,fma"))) void mask_row_avx2(float* x, const bool* allowed,
                                                       std::int64_t n) {
  const __m256 neg_inf = _mm256_set1_ps(-__builtin_inff());
  const __m256i zero = _mm256_setzero_si256();
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    long long bytes;
    __builtin_memcpy(&bytes, allowed + i, 8);
    const __m256i lanes = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(bytes));
    const __m256 blocked = _mm256_castsi256_ps(_mm256_cmpeq_epi32(lanes, zero));
    _mm256_storeu_ps(x + i, _mm256_blendv_ps(_mm256_loadu_ps(x + i), neg_inf, blocked));
  }
  for (; i < n; ++i)
    if (!allowed[i]) x[i] = -__builtin_inff();
}

// AVX-512 versions of the four (same polynomial, 16 lanes): on an AVX-512 CPU the tile GEMMs
// run twice as wide, and the AVX2 exp then took 15% of a causal forward (perf, T=4096).
#define ATTNLAB_AVX512 __attribute__((target("avx512f,fma")))

ATTNLAB_AVX512 inline __m512 exp512(__m512 x) {
  const __mmask16 too_small = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.0f), _CMP_LT_OQ);
  x = _mm512_min_ps(x, _mm512_set1_ps(88.3762626647949f));
  x = _mm512_max_ps(x, _mm512_set1_ps(-88.3762626647949f));
  __m512 fx = _mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), _mm512_set1_ps(0.5f));
  fx = _mm512_roundscale_ps(fx, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(0.693359375f), x);
  x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(-2.12194440e-4f), x);
  __m512 y = _mm512_set1_ps(1.9875691500E-4f);
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.3981999507E-3f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(8.3334519073E-3f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(4.1665795894E-2f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.6666665459E-1f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(5.0000001201E-1f));
  y = _mm512_fmadd_ps(y, _mm512_mul_ps(x, x), _mm512_add_ps(x, _mm512_set1_ps(1.0f)));
  const __m512i e = _mm512_add_epi32(_mm512_cvttps_epi32(fx), _mm512_set1_epi32(127));
  y = _mm512_mul_ps(y, _mm512_castsi512_ps(_mm512_slli_epi32(e, 23)));
  return _mm512_maskz_mov_ps(static_cast<__mmask16>(~too_small), y);
}

inline __mmask16 first_lanes(std::int64_t n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1u); }

ATTNLAB_AVX512 float row_max_avx512(const float* x, std::int64_t n) {
  __m512 acc = _mm512_set1_ps(-__builtin_inff());
  for (std::int64_t i = 0; i < n; i += 16)
    acc = _mm512_max_ps(acc, _mm512_mask_loadu_ps(_mm512_set1_ps(-__builtin_inff()), first_lanes(n - i), x + i));
  return _mm512_reduce_max_ps(acc);
}

// Tail lanes (n not a multiple of 16) go through the same polynomial, masked.
ATTNLAB_AVX512 float exp_shift_sum_avx512(float* x, std::int64_t n, float m) {
  const __m512 shift = _mm512_set1_ps(m);
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  std::int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 a = exp512(_mm512_sub_ps(_mm512_loadu_ps(x + i), shift));
    const __m512 b = exp512(_mm512_sub_ps(_mm512_loadu_ps(x + i + 16), shift));
    _mm512_storeu_ps(x + i, a);
    _mm512_storeu_ps(x + i + 16, b);
    acc0 = _mm512_add_ps(acc0, a);
    acc1 = _mm512_add_ps(acc1, b);
  }
  for (; i < n; i += 16) {
    const __mmask16 lanes = first_lanes(n - i);
    const __m512 a = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(lanes, x + i), shift));
    _mm512_mask_storeu_ps(x + i, lanes, a);
    acc0 = _mm512_add_ps(acc0, _mm512_maskz_mov_ps(lanes, a));
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

ATTNLAB_AVX512 void softmax_grad_row_avx512(float* p, const float* dp, float d, std::int64_t n) {
  const __m512 shift = _mm512_set1_ps(d);
  for (std::int64_t i = 0; i < n; i += 16) {
    const __mmask16 lanes = first_lanes(n - i);
    const __m512 g = _mm512_sub_ps(_mm512_maskz_loadu_ps(lanes, dp + i), shift);
    _mm512_mask_storeu_ps(p + i, lanes, _mm512_mul_ps(_mm512_maskz_loadu_ps(lanes, p + i), g));
  }
}

ATTNLAB_AVX512 void mask_row_avx512(float* x, const bool* allowed, std::int64_t n) {
  const __m512 neg_inf = _mm512_set1_ps(-__builtin_inff());
  std::int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i lanes = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(allowed + i)));
    const __mmask16 blocked = _mm512_cmpeq_epi32_mask(lanes, _mm512_setzero_si512());
    _mm512_mask_storeu_ps(x + i, blocked, neg_inf);
  }
  for (; i < n; ++i)
    if (!allowed[i]) x[i] = -__builtin_inff();
}

ATTNLAB_AVX512 void col_max_avx512(const float* x, std::int64_t n, std::int64_t ld, std::int64_t w, float* m) {
  for (std::int64_t i = 0; i < w; i += 16) {
    const __mmask16 lanes = first_lanes(w - i);
    __m512 acc = _mm512_maskz_loadu_ps(lanes, m + i);
    for (std::int64_t j = 0; j < n; ++j) acc = _mm512_max_ps(acc, _mm512_maskz_loadu_ps(lanes, x + j * ld + i));
    _mm512_mask_storeu_ps(m + i, lanes, acc);
  }
}

ATTNLAB_AVX512 void exp_shift_cols_avx512(float* x, std::int64_t n, std::int64_t ld, std::int64_t w, const float* m,
                                          float* l) {
  for (std::int64_t i = 0; i < w; i += 16) {
    const __mmask16 lanes = first_lanes(w - i);
    const __m512 shift = _mm512_maskz_loadu_ps(lanes, m + i);
    __m512 sum0 = _mm512_setzero_ps(), sum1 = _mm512_setzero_ps();
    std::int64_t j = 0;
    for (; j + 2 <= n; j += 2) {
      const __m512 a = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(lanes, x + j * ld + i), shift));
      const __m512 b = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(lanes, x + (j + 1) * ld + i), shift));
      _mm512_mask_storeu_ps(x + j * ld + i, lanes, a);
      _mm512_mask_storeu_ps(x + (j + 1) * ld + i, lanes, b);
      sum0 = _mm512_add_ps(sum0, a);
      sum1 = _mm512_add_ps(sum1, b);
    }
    if (j < n) {
      const __m512 a = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(lanes, x + j * ld + i), shift));
      _mm512_mask_storeu_ps(x + j * ld + i, lanes, a);
      sum0 = _mm512_add_ps(sum0, a);
    }
    _mm512_mask_storeu_ps(l + i, lanes, _mm512_add_ps(_mm512_maskz_loadu_ps(lanes, l + i), _mm512_add_ps(sum0, sum1)));
  }
}

// AVX2: 8 columns at a time, a scalar loop (same polynomial) for the last w % 8.
__attribute__((target("avx2,fma"))) void col_max_avx2(const float* x, std::int64_t n, std::int64_t ld, std::int64_t w,
                                                      float* m) {
  std::int64_t i = 0;
  for (; i + 8 <= w; i += 8) {
    __m256 acc = _mm256_loadu_ps(m + i);
    for (std::int64_t j = 0; j < n; ++j) acc = _mm256_max_ps(acc, _mm256_loadu_ps(x + j * ld + i));
    _mm256_storeu_ps(m + i, acc);
  }
  for (; i < w; ++i)
    for (std::int64_t j = 0; j < n; ++j) m[i] = x[j * ld + i] > m[i] ? x[j * ld + i] : m[i];
}

__attribute__((target("avx2,fma"))) void exp_shift_cols_avx2(float* x, std::int64_t n, std::int64_t ld, std::int64_t w,
                                                             const float* m, float* l) {
  std::int64_t i = 0;
  for (; i + 8 <= w; i += 8) {
    const __m256 shift = _mm256_loadu_ps(m + i);
    __m256 sum = _mm256_setzero_ps();
    for (std::int64_t j = 0; j < n; ++j) {
      const __m256 a = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + j * ld + i), shift));
      _mm256_storeu_ps(x + j * ld + i, a);
      sum = _mm256_add_ps(sum, a);
    }
    _mm256_storeu_ps(l + i, _mm256_add_ps(_mm256_loadu_ps(l + i), sum));
  }
  for (; i < w; ++i)
    for (std::int64_t j = 0; j < n; ++j) l[i] += (x[j * ld + i] = exp1(x[j * ld + i] - m[i]));
}

template <typename scalar_t>
void col_max_plain(const scalar_t* x, std::int64_t n, std::int64_t ld, std::int64_t w, scalar_t* m) {
  for (std::int64_t j = 0; j < n; ++j)
    for (std::int64_t i = 0; i < w; ++i) m[i] = x[j * ld + i] > m[i] ? x[j * ld + i] : m[i];
}
template <typename scalar_t>
void exp_shift_cols_plain(scalar_t* x, std::int64_t n, std::int64_t ld, std::int64_t w, const scalar_t* m,
                          scalar_t* l) {
  for (std::int64_t j = 0; j < n; ++j)
    for (std::int64_t i = 0; i < w; ++i) l[i] += (x[j * ld + i] = std::exp(x[j * ld + i] - m[i]));
}

template <typename scalar_t>
void softmax_grad_row_plain(scalar_t* p, const scalar_t* dp, scalar_t d, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) p[i] *= dp[i] - d;
}

template <typename scalar_t>
void mask_row_plain(scalar_t* x, const bool* allowed, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i)
    if (!allowed[i]) x[i] = -std::numeric_limits<scalar_t>::infinity();
}

template <typename scalar_t>
scalar_t row_max_plain(const scalar_t* x, std::int64_t n) {
  scalar_t m = -std::numeric_limits<scalar_t>::infinity();
  for (std::int64_t i = 0; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}
template <typename scalar_t>
scalar_t exp_shift_sum_plain(scalar_t* x, std::int64_t n, scalar_t m) {
  scalar_t sum = 0;
  for (std::int64_t i = 0; i < n; ++i) sum += (x[i] = std::exp(x[i] - m));
  return sum;
}

bool cpu_has_avx2() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}

bool cpu_has_avx512() {
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
  return has;
}

}  // namespace

float row_max(const float* x, std::int64_t n) {
  if (cpu_has_avx512()) return row_max_avx512(x, n);
  return cpu_has_avx2() ? row_max_avx2(x, n) : row_max_plain(x, n);
}
float exp_shift_sum(float* x, std::int64_t n, float m) {
  if (cpu_has_avx512()) return exp_shift_sum_avx512(x, n, m);
  return cpu_has_avx2() ? exp_shift_sum_avx2(x, n, m) : exp_shift_sum_plain(x, n, m);
}
void softmax_grad_row(float* p, const float* dp, float d, std::int64_t n) {
  if (cpu_has_avx512()) softmax_grad_row_avx512(p, dp, d, n);
  else if (cpu_has_avx2()) softmax_grad_row_avx2(p, dp, d, n);
  else softmax_grad_row_plain(p, dp, d, n);
}
void mask_row(float* x, const bool* allowed, std::int64_t n) {
  if (cpu_has_avx512()) mask_row_avx512(x, allowed, n);
  else if (cpu_has_avx2()) mask_row_avx2(x, allowed, n);
  else mask_row_plain(x, allowed, n);
}

void col_max(const float* x, std::int64_t n, std::int64_t ld, std::int64_t w, float* m) {
  if (cpu_has_avx512()) col_max_avx512(x, n, ld, w, m);
  else if (cpu_has_avx2()) col_max_avx2(x, n, ld, w, m);
  else col_max_plain(x, n, ld, w, m);
}
void exp_shift_cols(float* x, std::int64_t n, std::int64_t ld, std::int64_t w, const float* m, float* l) {
  if (cpu_has_avx512()) exp_shift_cols_avx512(x, n, ld, w, m, l);
  else if (cpu_has_avx2()) exp_shift_cols_avx2(x, n, ld, w, m, l);
  else exp_shift_cols_plain(x, n, ld, w, m, l);
}
void col_max(const double* x, std::int64_t n, std::int64_t ld, std::int64_t w, double* m) {
  col_max_plain(x, n, ld, w, m);
}
void exp_shift_cols(double* x, std::int64_t n, std::int64_t ld, std::int64_t w, const double* m, double* l) {
  exp_shift_cols_plain(x, n, ld, w, m, l);
}

double row_max(const double* x, std::int64_t n) { return row_max_plain(x, n); }
double exp_shift_sum(double* x, std::int64_t n, double m) { return exp_shift_sum_plain(x, n, m); }
void softmax_grad_row(double* p, const double* dp, double d, std::int64_t n) {
  softmax_grad_row_plain(p, dp, d, n);
}
void mask_row(double* x, const bool* allowed, std::int64_t n) { mask_row_plain(x, allowed, n); }

}  // namespace attnlab::kernels::cpu
