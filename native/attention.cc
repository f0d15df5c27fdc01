// Flash-style multi-head attention (forward and backward) with grouped-query heads and an optional
// causal mask, for the zili CPU addon: the workspace, the scratch-size formula and the choice of
// kernel. The kernels themselves are in attention-kernel.h, written once over a vector width and
// compiled here once per instruction set (AVX-512, AVX2+FMA, portable); the widest one the CPU
// runs is chosen by CPUID at the first call, and set_attention_kernel can force another (tests run
// every kernel the CPU has against the same reference). Machines change under a build: an addon
// built with -march=native on an AVX2 machine still carries the AVX-512 kernel (compiled through a
// target pragma) for the CPU it may be copied to, and an ARM or RISC-V build gets the portable one.
// Written by hand because no library on this platform offers it: OpenBLAS has only GEMM, and
// oneDNN 2.6 has no fused attention (its matmul + softmax primitives would materialise the T x T
// scores, which this kernel never does: its scratch is linear in T).
// exp_poly (zili.h) gets a 16-lane instantiation outside the AVX-512 region below, only ever
// inlined into it: the out-of-line ABI GCC warns about (-Wpsabi) is never used.
#pragma GCC diagnostic ignored "-Wpsabi"
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "zili.h"

namespace zili {

static const int64_t BQ = 64, BK = 64;

// One workspace reused across calls: touching fresh pages costs ~12 us each on these machines, so
// allocating scratch per call would cost more than the attention itself. It only grows (linear in
// B*T*H*D, never T^2); calls are serialised by the mutex.
static std::mutex g_ws_mutex;
static float *workspace(size_t floats) {
  static std::vector<float> ws;
  if (ws.size() < floats) {
    ws = std::vector<float>();
    ws.resize(floats);
  }
  return ws.data();
}
static inline int64_t round16(int64_t x) { return (x + 15) / 16 * 16; }

// Per-thread scratch floats. Forward: Q^T [D][BQ], S^T [BK][BQ], O [BQ][Dp], m/l/corr [BQ].
// Backward: K^T and V^T tiles [Dp][BK], S and dP [BQ][BK], Delta/lse rows [G][T].
static inline size_t fwd_per(int64_t D) { return D * BQ + BK * BQ + BQ * round16(D) + 3 * BQ; }
static inline size_t bwd_per(int64_t Dp, int64_t G, int64_t T) { return 2 * Dp * BK + 2 * BQ * BK + 2 * G * T; }
// With D not a multiple of 16, zero-padded copies [B,T,H,Dp]: of v in the forward; of q, k, v, out,
// dout, dq, dk, dv in the backward.
static inline size_t fwd_pad(int64_t B, int64_t T, int64_t Hkv, int64_t D) {
  return D % 16 ? (size_t)B * T * Hkv * round16(D) : 0;
}
static inline size_t bwd_pad(int64_t B, int64_t T, int64_t Hq, int64_t Hkv, int64_t D) {
  return D % 16 ? (size_t)B * T * round16(D) * (4 * Hq + 4 * Hkv) : 0;
}

size_t attention_scratch_bytes(int64_t B, int64_t T, int64_t Hq, int64_t Hkv, int64_t D, bool backward) {
  size_t nt = (size_t)threads();
  if (!backward) return (nt * fwd_per(D) + fwd_pad(B, T, Hkv, D)) * sizeof(float);
  return (nt * bwd_per(round16(D), Hq / Hkv, T) + bwd_pad(B, T, Hq, Hkv, D)) * sizeof(float);
}

// ---- the kernels, one namespace per instruction set ----
// Portable: whatever the build targets (-march=native: NEON on ARM, AVX2 here), 4 lanes.
namespace attn_portable {
#define ATTN_W 4
#define ATTN_NVMAX 2
#include "attention-kernel.h"
#undef ATTN_W
#undef ATTN_NVMAX
}  // namespace attn_portable

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define ZILI_ATTN_X86 1
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace attn_avx2 {
#define ATTN_W 8
#define ATTN_NVMAX 2
#define ATTN_PIN_B "x"
#include "attention-kernel.h"
#undef ATTN_W
#undef ATTN_NVMAX
#undef ATTN_PIN_B
}  // namespace attn_avx2
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma")
namespace attn_avx512 {
#define ATTN_W 16
#define ATTN_NVMAX 4
#define ATTN_PIN_B "v"
#include "attention-kernel.h"
#undef ATTN_W
#undef ATTN_NVMAX
#undef ATTN_PIN_B
}  // namespace attn_avx512
#pragma GCC pop_options
#endif

struct AttnKernel {
  const char *name;
  bool (*supported)();
  void (*fwd)(const float *, const float *, const float *, int64_t, int64_t, int64_t, int64_t, int64_t, float, bool,
              float *, float *, float *, size_t, int);
  void (*bwd)(const float *, const float *, const float *, const float *, const float *, const float *, int64_t,
              int64_t, int64_t, int64_t, int64_t, float, bool, float *, float *, float *, float *, size_t, int);
};

static bool always() { return true; }
#if defined(ZILI_ATTN_X86)
static bool has_avx2() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
static bool has_avx512() { return __builtin_cpu_supports("avx512f") && has_avx2(); }
#endif

// Widest first: the default is the first one the CPU supports.
static const AttnKernel KERNELS[] = {
#if defined(ZILI_ATTN_X86)
    {"avx512", has_avx512, attn_avx512::fwd, attn_avx512::bwd},
    {"avx2", has_avx2, attn_avx2::fwd, attn_avx2::bwd},
#endif
    {"portable", always, attn_portable::fwd, attn_portable::bwd},
};
static const AttnKernel *g_kernel = nullptr;  // guarded by g_ws_mutex

static const AttnKernel *kernel() {
  if (!g_kernel)
    for (const AttnKernel &k : KERNELS)
      if (k.supported()) {
        g_kernel = &k;
        break;
      }
  return g_kernel;
}

std::vector<std::string> attention_kernels() {
  std::vector<std::string> names;
  for (const AttnKernel &k : KERNELS)
    if (k.supported()) names.push_back(k.name);
  return names;
}

const char *attention_kernel() {
  std::lock_guard<std::mutex> lock(g_ws_mutex);
  return kernel()->name;
}

void set_attention_kernel(const std::string &name) {
  std::string have;
  for (const AttnKernel &k : KERNELS) {
    if (!k.supported()) continue;
    if (name == k.name) {
      std::lock_guard<std::mutex> lock(g_ws_mutex);
      g_kernel = &k;
      return;
    }
    have += std::string(have.empty() ? "" : ", ") + k.name;
  }
  throw ArgError("attention kernel '" + name + "' is not available on this CPU (available: " + have + ")");
}

void attention_fwd(const float *q, const float *k, const float *v, int64_t B, int64_t T, int64_t Hq, int64_t Hkv,
                   int64_t D, float scale, bool causal, float *out, float *lse) {
  const int nt = threads();
  const size_t per = fwd_per(D);
  std::lock_guard<std::mutex> lock(g_ws_mutex);
  float *tbuf = workspace(nt * per + fwd_pad(B, T, Hkv, D));
  kernel()->fwd(q, k, v, B, T, Hq, Hkv, D, scale, causal, out, lse, tbuf, per, nt);
}

void attention_bwd(const float *q, const float *k, const float *v, const float *out, const float *lse,
                   const float *dout, int64_t B, int64_t T, int64_t Hq, int64_t Hkv, int64_t D, float scale,
                   bool causal, float *dq, float *dk, float *dv) {
  const int nt = threads();
  const size_t per = bwd_per(round16(D), Hq / Hkv, T);
  std::lock_guard<std::mutex> lock(g_ws_mutex);
  float *tbuf = workspace(nt * per + bwd_pad(B, T, Hq, Hkv, D));
  kernel()->bwd(q, k, v, out, lse, dout, B, T, Hq, Hkv, D, scale, causal, dq, dk, dv, tbuf, per, nt);
}

}  // namespace zili
