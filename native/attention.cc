// Flash-style multi-head attention (forward and backward) with grouped-query heads and an optional
// causal mask, for the zili CPU addon. Keys are processed in tiles with an online softmax, so no
// T x T score matrix is ever materialised per head: scratch is a few 64 x 64 tiles per thread.
// Written by hand because no library on this platform offers it: OpenBLAS has only GEMM, and
// oneDNN 2.6 has no fused attention (its matmul + softmax primitives would materialise the scores).
// The tile products use a small register-blocked kernel written with GCC vector extensions
// (portable: 512-bit registers under AVX-512, split into narrower ones elsewhere).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>
#include <vector>

#include "zili.h"

namespace zili {

typedef float v16 __attribute__((vector_size(64)));

static inline v16 ld(const float *p) {
  v16 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
static inline void st(float *p, v16 v) { std::memcpy(p, &v, sizeof v); }

// C[R x 16*NV] (+)= A[R x K] * B[K x 16*NV], row-major with leading dims.
template <int R, int NV>
static inline void micro(int64_t K, const float *A, int64_t lda, const float *B, int64_t ldb, float *C, int64_t ldc,
                         bool acc) {
  v16 c[R][NV];
  for (int r = 0; r < R; r++)
    for (int v = 0; v < NV; v++) c[r][v] = acc ? ld(C + r * ldc + 16 * v) : v16{};
  for (int64_t k = 0; k < K; k++) {
    v16 b[NV];
    for (int v = 0; v < NV; v++) {
      b[v] = ld(B + k * ldb + 16 * v);
#if defined(__GNUC__) && defined(__AVX512F__)
      // Keep B in registers: otherwise GCC folds the load into each FMA (R loads instead of one),
      // and the loop becomes load-bound.
      __asm__("" : "+v"(b[v]));
#endif
    }
    for (int r = 0; r < R; r++) {
      float a = A[r * lda + k];
      for (int v = 0; v < NV; v++) c[r][v] += a * b[v];
    }
  }
  for (int r = 0; r < R; r++)
    for (int v = 0; v < NV; v++) st(C + r * ldc + 16 * v, c[r][v]);
}

template <int R>
static inline void micro_r(int nv, int64_t K, const float *A, int64_t lda, const float *B, int64_t ldb, float *C,
                           int64_t ldc, bool acc) {
  switch (nv) {
    case 4: micro<R, 4>(K, A, lda, B, ldb, C, ldc, acc); break;
    case 3: micro<R, 3>(K, A, lda, B, ldb, C, ldc, acc); break;
    case 2: micro<R, 2>(K, A, lda, B, ldb, C, ldc, acc); break;
    default: micro<R, 1>(K, A, lda, B, ldb, C, ldc, acc); break;
  }
}

// C[M x N] (+)= A[M x K] * B[K x N]; N must be a multiple of 16.
static void tile_nn(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B, int64_t ldb,
                    float *C, int64_t ldc, bool acc) {
  for (int64_t j = 0; j < N; j += 64) {
    int nv = (int)std::min<int64_t>(4, (N - j) / 16);
    int64_t i = 0;
    for (; i + 4 <= M; i += 4) micro_r<4>(nv, K, A + i * lda, lda, B + j, ldb, C + i * ldc + j, ldc, acc);
    for (; i < M; i++) micro_r<1>(nv, K, A + i * lda, lda, B + j, ldb, C + i * ldc + j, ldc, acc);
  }
}

static const int64_t BQ = 64, BK = 64;

// One workspace reused across calls: touching fresh pages costs ~12 us each on these machines, so
// allocating the packed copies per call would cost more than the attention itself. It only grows
// (linear in B*T*H*D, never T^2); calls are serialised by the mutex.
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
static inline int64_t round64(int64_t x) { return (x + 63) / 64 * 64; }
// Leading dim of column-packed (transposed) arrays: Tp plus 16 floats, so a tile's rows do not all
// map to the same few L1 sets when Tp is a power of two.
static inline int64_t ldt(int64_t Tp) { return Tp + 16; }
// Floats per head in every packed array (row-packed [Tp][Dp] or column-packed [Dp][ldt]).
static inline int64_t head_size(int64_t Tp, int64_t Dp) { return Dp * ldt(Tp); }

// x [B,T,H,D] -> packed [B*H][Tp][Dp] (rows = positions, zero padded), values scaled by s.
// Orphaned work-sharing loops: called inside a parallel region, no barrier at the end.
static void pack_rows(const float *x, int64_t B, int64_t T, int64_t H, int64_t D, int64_t Tp, int64_t Dp, float s,
                      float *dst, int nt) {
#pragma omp for schedule(static) nowait
  for (int64_t bh = 0; bh < B * H; bh++) {
    int64_t b = bh / H, h = bh % H;
    float *d = dst + bh * head_size(Tp, Dp);
    for (int64_t t = 0; t < Tp; t++) {
      float *row = d + t * Dp;
      if (t < T) {
        const float *p = x + ((b * T + t) * H + h) * D;
        for (int64_t c = 0; c < D; c++) row[c] = p[c] * s;
        for (int64_t c = D; c < Dp; c++) row[c] = 0.0f;
      } else
        for (int64_t c = 0; c < Dp; c++) row[c] = 0.0f;
    }
  }
}

// x [B,T,H,D] -> packed transposed [B*H][Dp][Tp] (zero padded), in 64 x 64 blocks.
static void pack_cols(const float *x, int64_t B, int64_t T, int64_t H, int64_t D, int64_t Tp, int64_t Dp, float *dst,
                      int nt) {
  int64_t ntb = Tp / 64;
#pragma omp for schedule(static) nowait
  for (int64_t task = 0; task < B * H * ntb; task++) {
    int64_t bh = task / ntb, t0 = (task % ntb) * 64, b = bh / H, h = bh % H;
    const int64_t L = ldt(Tp);
    float *d = dst + bh * head_size(Tp, Dp);
    for (int64_t c = 0; c < Dp; c++)
      for (int64_t t = t0; t < t0 + 64 + (t0 + 64 == Tp ? 16 : 0); t++) d[c * L + t] = 0.0f;
    for (int64_t t = t0; t < std::min(T, t0 + 64); t++) {
      const float *p = x + ((b * T + t) * H + h) * D;
      for (int64_t c = 0; c < D; c++) d[c * L + t] = p[c];
    }
  }
}

size_t attention_scratch_bytes(int64_t B, int64_t T, int64_t Hq, int64_t Hkv, int64_t D, bool backward) {
  int64_t Dp = round16(D), Tp = round64(T), hs = head_size(Tp, Dp);
  size_t nt = (size_t)threads();
  size_t per, global;
  if (!backward) {
    per = 2 * BQ * Dp + BQ * BK + 2 * BQ;
    global = 2 * (size_t)B * Hkv * hs;  // K^T and V, packed
  } else {
    per = 2 * BK * Dp + 3 * BQ * BK;
    global = 2 * (size_t)B * Hkv * hs + 5 * (size_t)B * Hq * hs + (size_t)B * Hq * T;
  }
  return (nt * per + global) * sizeof(float);
}

void attention_fwd(const float *q, const float *k, const float *v, int64_t B, int64_t T, int64_t Hq, int64_t Hkv,
                   int64_t D, float scale, bool causal, float *out, float *lse) {
  const int64_t Dp = round16(D), Tp = round64(T), G = Hq / Hkv, nqt = (T + BQ - 1) / BQ, hs = head_size(Tp, Dp), L = ldt(Tp);
  const int nt = threads();
  const size_t kvs = (size_t)B * Hkv * hs, per = 2 * BQ * Dp + BQ * BK + 2 * BQ;
  std::lock_guard<std::mutex> lock(g_ws_mutex);
  float *Kt = workspace(2 * kvs + nt * per), *Vp = Kt + kvs, *tbuf = Vp + kvs;
  const int64_t tasks = B * Hq * nqt;
#pragma omp parallel num_threads(nt)
  {
    // One parallel region per call: each barrier can cost a time slice when the cores are shared.
    pack_cols(k, B, T, Hkv, D, Tp, Dp, Kt, nt);
    pack_rows(v, B, T, Hkv, D, Tp, Dp, 1.0f, Vp, nt);
#pragma omp barrier
    float *Qs = tbuf + omp_get_thread_num() * per, *O = Qs + BQ * Dp, *S = O + BQ * Dp, *m = S + BQ * BK, *l = m + BQ;
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; task++) {
      // Causal: later query tiles have more work; run them first for better balance.
      int64_t qt = causal ? nqt - 1 - task % nqt : task % nqt, bh = task / nqt, b = bh / Hq, h = bh % Hq;
      int64_t hk = h / G, q0 = qt * BQ, nq = std::min(BQ, T - q0);
      const float *Kth = Kt + (b * Hkv + hk) * hs, *Vh = Vp + (b * Hkv + hk) * hs;
      for (int64_t i = 0; i < nq; i++) {
        const float *p = q + ((b * T + q0 + i) * Hq + h) * D;
        float *r = Qs + i * Dp;
        for (int64_t c = 0; c < D; c++) r[c] = p[c] * scale;
        m[i] = -INFINITY;
        l[i] = 0.0f;
      }
      std::fill(O, O + nq * Dp, 0.0f);
      int64_t kend = causal ? std::min(T, q0 + nq) : T;
      for (int64_t j0 = 0; j0 < kend; j0 += BK) {
        int64_t nk = std::min(BK, kend - j0), nkp = round16(nk);
        tile_nn(nq, nkp, D, Qs, Dp, Kth + j0, L, S, BK, false);
        for (int64_t i = 0; i < nq; i++) {
          float *s = S + i * BK;
          int64_t lim = causal ? std::min(nk, q0 + i - j0 + 1) : nk;
          if (lim <= 0) {
            for (int64_t c = 0; c < nkp; c++) s[c] = 0.0f;
            continue;
          }
          float mx = m[i];
#pragma omp simd reduction(max : mx)
          for (int64_t c = 0; c < lim; c++) mx = s[c] > mx ? s[c] : mx;
          float corr = fast_exp(m[i] - mx), sum = 0.0f;
#pragma omp simd reduction(+ : sum)
          for (int64_t c = 0; c < lim; c++) {
            float p = fast_exp(s[c] - mx);
            s[c] = p;
            sum += p;
          }
          for (int64_t c = lim; c < nkp; c++) s[c] = 0.0f;
          m[i] = mx;
          l[i] = l[i] * corr + sum;
          if (corr != 1.0f) {
            float *o = O + i * Dp;
            for (int64_t c = 0; c < Dp; c++) o[c] *= corr;
          }
        }
        tile_nn(nq, Dp, nkp, S, BK, Vh + j0 * Dp, Dp, O, Dp, true);
      }
      for (int64_t i = 0; i < nq; i++) {
        float inv = 1.0f / l[i];
        float *po = out + ((b * T + q0 + i) * Hq + h) * D;
        for (int64_t c = 0; c < D; c++) po[c] = O[i * Dp + c] * inv;
        lse[(b * Hq + h) * T + q0 + i] = m[i] + std::log(l[i]);
      }
    }
  }
}

void attention_bwd(const float *q, const float *k, const float *v, const float *out, const float *lse,
                   const float *dout, int64_t B, int64_t T, int64_t Hq, int64_t Hkv, int64_t D, float scale,
                   bool causal, float *dq, float *dk, float *dv) {
  const int64_t Dp = round16(D), Tp = round64(T), G = Hq / Hkv, nkt = (T + BK - 1) / BK;
  const int64_t hs = head_size(Tp, Dp), L = ldt(Tp);
  const int nt = threads();
  const size_t kvs = (size_t)B * Hkv * hs, qs = (size_t)B * Hq * hs;
  const size_t per = 2 * BK * Dp + 3 * BQ * BK;
  std::lock_guard<std::mutex> lock(g_ws_mutex);
  float *Kp = workspace(2 * kvs + 5 * qs + (size_t)B * Hq * T + nt * per), *Vp = Kp + kvs, *Qp = Vp + kvs,
        *Qt = Qp + qs, *dOp = Qt + qs, *dOt = dOp + qs, *dQp = dOt + qs, *Dall = dQp + qs, *tbuf = Dall + (size_t)B * Hq * T;
#pragma omp parallel num_threads(nt)
  {
    // One parallel region per call: each barrier can cost a time slice when the cores are shared.
    pack_rows(k, B, T, Hkv, D, Tp, Dp, 1.0f, Kp, nt);
    pack_rows(v, B, T, Hkv, D, Tp, Dp, 1.0f, Vp, nt);
    pack_rows(q, B, T, Hq, D, Tp, Dp, 1.0f, Qp, nt);
    pack_cols(q, B, T, Hq, D, Tp, Dp, Qt, nt);
    pack_rows(dout, B, T, Hq, D, Tp, Dp, 1.0f, dOp, nt);
    pack_cols(dout, B, T, Hq, D, Tp, Dp, dOt, nt);
#pragma omp for schedule(static) nowait
    for (int64_t r = 0; r < B * T * Hq; r++) {
      const float *a = dout + r * D, *o = out + r * D;
      float s = 0.0f;
      for (int64_t c = 0; c < D; c++) s += a[c] * o[c];
      int64_t h = r % Hq, bt = r / Hq, b = bt / T, t = bt % T;
      Dall[(b * Hq + h) * T + t] = s;
    }
#pragma omp barrier
    float *dKa = tbuf + omp_get_thread_num() * per, *dVa = dKa + BK * Dp, *S = dVa + BK * Dp, *dP = S + BQ * BK,
          *dS = dP + BQ * BK;
    // One task per (batch, kv head): it owns the dk/dv rows of that kv head and the dq rows of the
    // query heads that share it, so no two threads write the same output (deterministic, no atomics).
    // Works on transposed tiles: S^T = K Q^T, dP^T = V dO^T, so P^T and dS^T feed dV and dK directly.
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < B * Hkv; task++) {
      int64_t b = task / Hkv, hk = task % Hkv;
      for (int64_t h = hk * G; h < (hk + 1) * G; h++) std::fill(dQp + (b * Hq + h) * hs, dQp + (b * Hq + h) * hs + T * Dp, 0.0f);
      for (int64_t kt = 0; kt < nkt; kt++) {
        int64_t j0 = kt * BK, nk = std::min(BK, T - j0);
        const float *Kh = Kp + (b * Hkv + hk) * hs + j0 * Dp, *Vh = Vp + (b * Hkv + hk) * hs + j0 * Dp;
        std::fill(dKa, dKa + nk * Dp, 0.0f);
        std::fill(dVa, dVa + nk * Dp, 0.0f);
        for (int64_t h = hk * G; h < (hk + 1) * G; h++) {
          const float *lh = lse + (b * Hq + h) * T, *Dh = Dall + (b * Hq + h) * T;
          const size_t qoff = (size_t)(b * Hq + h) * hs;
          for (int64_t i0 = causal ? j0 / BQ * BQ : 0; i0 < T; i0 += BQ) {
            int64_t nq = std::min(BQ, T - i0), nqp = round16(nq);
            tile_nn(nk, nqp, D, Kh, Dp, Qt + qoff + i0, L, S, BQ, false);    // S^T [nk x nq]
            tile_nn(nk, nqp, D, Vh, Dp, dOt + qoff + i0, L, dP, BQ, false);  // dP^T
            for (int64_t c = 0; c < nk; c++) {
              float *s = S + c * BQ, *dp = dP + c * BQ;
              int64_t first = causal ? std::max<int64_t>(0, j0 + c - i0) : 0;  // first query row that sees key c
              for (int64_t i = 0; i < first && i < nqp; i++) s[i] = dp[i] = 0.0f;
#pragma omp simd
              for (int64_t i = first; i < nq; i++) {
                float p = fast_exp(s[i] * scale - lh[i0 + i]);
                s[i] = p;
                dp[i] = p * (dp[i] - Dh[i0 + i]);
              }
              for (int64_t i = std::max(first, nq); i < nqp; i++) s[i] = dp[i] = 0.0f;
            }
            tile_nn(nk, Dp, nq, S, BQ, dOp + qoff + i0 * Dp, Dp, dVa, Dp, true);  // dV += P^T dO
            tile_nn(nk, Dp, nq, dP, BQ, Qp + qoff + i0 * Dp, Dp, dKa, Dp, true);  // dK += dS^T Q
            for (int64_t i = 0; i < nq; i++)
              for (int64_t c = 0; c < nk; c++) dS[i * BK + c] = dP[c * BQ + i];
            tile_nn(nq, Dp, nk, dS, BK, Kh, Dp, dQp + qoff + i0 * Dp, Dp, true);  // dQ += dS K
          }
        }
        for (int64_t c = 0; c < nk; c++) {
          float *pk = dk + ((b * T + j0 + c) * Hkv + hk) * D, *pv = dv + ((b * T + j0 + c) * Hkv + hk) * D;
          for (int64_t d = 0; d < D; d++) {
            pk[d] = dKa[c * Dp + d] * scale;
            pv[d] = dVa[c * Dp + d];
          }
        }
      }
      for (int64_t h = hk * G; h < (hk + 1) * G; h++)
        for (int64_t t = 0; t < T; t++) {
          const float *src = dQp + (b * Hq + h) * hs + t * Dp;
          float *p = dq + ((b * T + t) * Hq + h) * D;
          for (int64_t d = 0; d < D; d++) p[d] = src[d] * scale;
        }
    }
  }
}

}  // namespace zili
