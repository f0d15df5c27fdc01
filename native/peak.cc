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
// Portable path: one vector of the widest width the compiler targets (AVX 32 bytes, SSE/NEON 16),
// so each accumulator is exactly one register and the chains stay independent.
#if defined(__AVX__)
constexpr int VLANES = 8;
#else
constexpr int VLANES = 4;
#endif
typedef float vf __attribute__((vector_size(VLANES * 4)));

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
  for (int i = 0; i < VLANES; i++) { a[i] = 0.999999f; b[i] = 1e-7f; }
  for (int c = 0; c < CHAINS; c++) for (int i = 0; i < VLANES; i++) acc[c][i] = (float)c;
  for (long it = 0; it < iters; it++) {
#pragma GCC unroll 12
    for (int c = 0; c < CHAINS; c++) acc[c] = acc[c] * a + b;
#if defined(__x86_64__) || defined(__i386__)
    __asm__ volatile("" : "+x"(acc[0]), "+x"(acc[1]), "+x"(acc[2]), "+x"(acc[3]));
#elif defined(__aarch64__)
    __asm__ volatile("" : "+w"(acc[0]), "+w"(acc[1]), "+w"(acc[2]), "+w"(acc[3]));
#endif
  }
  float s = 0;
  for (int c = 0; c < CHAINS; c++) for (int i = 0; i < VLANES; i++) s += acc[c][i];
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
#if defined(__AVX512F__)
  const double f32_per_chain = 32.0;
#else
  const double f32_per_chain = 2.0 * VLANES;
#endif
  const double per_iter = (bf16 ? 64.0 : f32_per_chain) * CHAINS;
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
