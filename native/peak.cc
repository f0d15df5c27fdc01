// Measures this CPU's peak floating-point throughput per compute unit (f32 FMA; AVX512-BF16 dot
// products and AMX bf16 tiles where the CPU has them) with independent accumulator chains on every
// thread. MFU is reported against the measured peak of the unit the GEMMs ran on rather than a
// datasheet figure. No library measures it, hence kernels of our own.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <omp.h>
#include "zili.h"
#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
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
    // no register barrier here: the chains cannot be folded (no reassociation without -ffast-math),
    // and a barrier on some accumulators made GCC keep the others on the stack
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

#if defined(__x86_64__)
// AMX: compiled for any x86-64 build through a target attribute and run only when CPUID reports
// AMX-TILE and AMX-BF16 and Linux grants the tile state (arch_prctl ARCH_REQ_XCOMP_PERM).
bool amx_usable() {
  static int ok = -1;
  if (ok >= 0) return ok == 1;
  unsigned a, b, c, d;
  ok = 0;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d) && (d & (1u << 22)) && (d & (1u << 24))) {
    const long ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18;
    ok = syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0 ? 1 : 0;
  }
  return ok == 1;
}

struct alignas(64) TileConfig {
  uint8_t palette, start_row, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

// Four 16x16 f32 accumulators fed by two A tiles and two B tiles (16 x 32 bf16): each tdpbf16ps
// is 16*16*32 multiply-adds.
__attribute__((target("amx-tile,amx-bf16"))) double amx_loop(long iters) {
  TileConfig cfg;
  std::memset(&cfg, 0, sizeof cfg);
  cfg.palette = 1;
  for (int t = 0; t < 8; t++) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = 16;
  }
  _tile_loadconfig(&cfg);
  alignas(64) static thread_local uint16_t src[16 * 32];
  alignas(64) static thread_local float dst[16 * 16];
  for (int i = 0; i < 16 * 32; i++) src[i] = 0x3380;  // bf16 ~6e-8: accumulators stay finite
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  _tile_loadd(4, src, 64);
  _tile_loadd(5, src, 64);
  _tile_loadd(6, src, 64);
  _tile_loadd(7, src, 64);
  for (long it = 0; it < iters; it++) {
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, dst, 64);
  _tile_release();
  return dst[0];
}
#endif
}  // namespace

double measure_peak_gflops(int unit, int nthreads, double seconds) {
  // flops per iteration of one thread's loop
  double per_iter = 0;
  if (unit == UNIT_F32_FMA) {
#if defined(__AVX512F__)
    per_iter = 32.0 * CHAINS;  // 16 lanes x 2 per FMA
#else
    per_iter = 2.0 * VLANES * CHAINS;
#endif
  } else if (unit == UNIT_AVX512_BF16) {
#if defined(__AVX512BF16__)
    per_iter = 64.0 * CHAINS;  // 32 bf16 pairs x 2 per vdpbf16ps
#endif
  } else if (unit == UNIT_AMX_BF16) {
#if defined(__x86_64__)
    if (amx_usable()) per_iter = 4 * 16.0 * 16 * 32 * 2;
#endif
  } else {
    throw ArgError("measurePeakGflops: unknown unit " + std::to_string(unit));
  }
  if (per_iter == 0) return 0;
  long iters = 1 << 16;
  double best = 0;
  for (int round = 0; round < 30; round++) {
    // an AMX iteration is ~16x longer than a vector one: fewer of them per round
    const long n = unit == UNIT_AMX_BF16 ? std::max(1L, iters / 16) : iters;
    auto t0 = std::chrono::steady_clock::now();
    double sink = 0;
#pragma omp parallel num_threads(nthreads) reduction(+ : sink)
    {
      if (unit == UNIT_F32_FMA) sink += f32_loop(n);
#if defined(__AVX512BF16__)
      if (unit == UNIT_AVX512_BF16) sink += bf16_loop(n);
#endif
#if defined(__x86_64__)
      if (unit == UNIT_AMX_BF16) sink += amx_loop(n);
#endif
    }
    double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (sink == 12345.678) best += 0;  // keep the result alive
    best = std::max(best, per_iter * n * nthreads / dt / 1e9);
    if (dt < seconds / 10) iters *= 2;
  }
  return best;
}

}  // namespace zili
