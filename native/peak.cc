// Measures this CPU's peak floating-point throughput (f32 FMA and, where the CPU has it, bf16 dot
// products) with independent accumulator chains on every thread. MFU is reported against this
// measured peak rather than a datasheet figure. No library measures it, hence a kernel of our own.
#include <chrono>
#include <omp.h>
#include "zili.h"
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace zili {

namespace {
constexpr int CHAINS = 12;
typedef float vf __attribute__((vector_size(64)));  // 16 floats; the compiler maps it to the widest FMA it has

#if defined(__AVX512F__)
double f32_loop(long iters) {
  __m512 acc[CHAINS];
  for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_set1_ps((float)c);
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (long it = 0; it < iters; it++) {
#pragma GCC unroll 12
    for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_fmadd_ps(acc[c], a, b);
  }
  float s = 0;
  for (int c = 0; c < CHAINS; c++) s += _mm512_reduce_add_ps(acc[c]);
  return s;
}
#else
double f32_loop(long iters) {
  vf acc[CHAINS];
  vf a, b;
  for (int i = 0; i < 16; i++) { a[i] = 0.999999f; b[i] = 1e-7f; }
  for (int c = 0; c < CHAINS; c++) for (int i = 0; i < 16; i++) acc[c][i] = (float)c;
  for (long it = 0; it < iters; it++) {
#pragma GCC unroll 12
    for (int c = 0; c < CHAINS; c++) acc[c] = acc[c] * a + b;
    __asm__ volatile("" : "+v"(acc[0]), "+v"(acc[1]), "+v"(acc[2]), "+v"(acc[3]));
  }
  float s = 0;
  for (int c = 0; c < CHAINS; c++) for (int i = 0; i < 16; i++) s += acc[c][i];
  return s;
}
#endif

#if defined(__AVX512BF16__)
double bf16_loop(long iters) {
  __m512 acc[CHAINS];
  for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_set1_ps((float)c);
  const __m512bh a = (__m512bh)_mm512_set1_epi16(0x3f80), b = (__m512bh)_mm512_set1_epi16(0x3380);
  for (long it = 0; it < iters; it++) {
#pragma GCC unroll 12
    for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_dpbf16_ps(acc[c], a, b);
  }
  float s = 0;
  for (int c = 0; c < CHAINS; c++) s += _mm512_reduce_add_ps(acc[c]);
  return s;
}
#endif
}  // namespace

double measure_peak_gflops(bool bf16, int nthreads, double seconds) {
#if !defined(__AVX512BF16__)
  if (bf16) return 0;
#endif
  // flops per iteration: f32 16 lanes × 2 (FMA); bf16 dot product 32 pairs × 2
  const double per_iter = (bf16 ? 64.0 : 32.0) * CHAINS;
  long iters = 1 << 16;
  double best = 0;
  for (int round = 0; round < 30; round++) {
    auto t0 = std::chrono::steady_clock::now();
    double sink = 0;
#pragma omp parallel num_threads(nthreads) reduction(+ : sink)
    {
#if defined(__AVX512BF16__)
      sink += bf16 ? bf16_loop(iters) : f32_loop(iters);
#else
      sink += f32_loop(iters);
#endif
    }
    double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (sink == 12345.678) best += 0;  // keep the result alive
    best = std::max(best, per_iter * iters * nthreads / dt / 1e9);
    if (dt < seconds / 10) iters *= 2;
  }
  return best;
}

}  // namespace zili
