// The flash-style attention kernels (forward and backward, causal or not, grouped-query heads,
// f32) written once over a vector width, for attention.cc to compile once per instruction set and
// pick by CPUID at run time: 16 lanes under AVX-512, 8 under AVX2+FMA, 4 for the portable build
// (NEON, SSE, or scalar code where the compiler has no vectors). Included only by attention.cc,
// inside a namespace per instruction set, with these macros defined:
//   ATTN_W      lanes per vector (4, 8 or 16)
//   ATTN_NVMAX  vectors per micro-kernel row (the 6-row micro-kernel keeps 6 * ATTN_NVMAX
//               accumulators, ATTN_NVMAX B vectors and one broadcast in registers)
//   ATTN_PIN_B  the asm register constraint that keeps the B vectors in registers ("x", "v"), or
//               undefined
// Hand-written because no library here has fused attention (OpenBLAS: GEMM only; oneDNN 2.6: no
// fused attention, and its matmul + softmax would materialise the T x T scores; see attention.cc).
// Every vector is exactly one hardware register of the target: a vector wider than the target's
// registers (the 16-lane code built for AVX2) is lowered by GCC through the stack, which made the
// AVX2 build 5x slower than the unfused GEMM path.
//
// Keys are processed in 64-wide tiles with an online softmax, so no T x T score matrix is ever
// materialised per head: scratch is a few 64 x 64 tiles per thread (plus, in the backward, T softmax
// statistics per query head of a task, and zero-padded copies of the inputs only when the head
// dimension is not a multiple of 16). The tile products use a register-blocked micro-kernel (6 rows
// x ATTN_NVMAX vectors) whose A operand takes any row and column stride, so q/k/v/dout are read in
// place from their [B,T,H,D] rows and a product with a transposed operand needs no copy; the only
// copies are 64 x D transposes done in registers (Q^T per forward task, K^T and V^T per backward key
// tile). On the causal diagonal tile the products skip the masked half.
//
// Forward, per (batch, head, 64-query tile): S^T = K Q^T, so the softmax statistics (max, sum) of
// the queries are whole vectors reduced down the rows (no horizontal reductions); then
// O = corr * O + P V, the online-softmax rescaling folded into the product's accumulator load. Only
// the log-sum-exp is saved for the backward.
// Backward, per (batch, kv head): P is recomputed from the lse per (key tile, query head, query
// tile): S = Q K^T and dP = dO V^T; dV += P^T dO, dK += dS^T Q and dQ += dS K accumulate straight
// into the outputs, which the task owns (deterministic, no atomics; the softmax scale is folded
// into dS).

typedef float vf __attribute__((vector_size(ATTN_W * 4)));
typedef int32_t vi __attribute__((vector_size(ATTN_W * 4)));

static inline vf ld(const float *p) {
  vf v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
static inline void st(float *p, vf v) { std::memcpy(p, &v, sizeof v); }
static inline vf splat(float x) { return vf{} + x; }
static inline vf vmax(vf a, vf b) { return a > b ? a : b; }
// fast_exp (zili.h) on ATTN_W lanes: the same polynomial, exp_poly.
static inline vf vexp(vf x) {
  vf xc = x > 88.0f ? splat(88.0f) : x, lo = xc;
  xc = xc < -87.0f ? splat(-87.0f) : xc;
  vf n;
  vf p = zili::exp_poly(xc, n);
  vi bits = (__builtin_convertvector(n, vi) + 127) << 23;
  vf sc;
  std::memcpy(&sc, &bits, sizeof sc);
  return lo < -87.0f ? vf{} : p * sc;
}
static inline float hsum(vf v) {
  float s = 0.0f;
  for (int u = 0; u < ATTN_W; u++) s += v[u];
  return s;
}
#if ATTN_W == 16
static const vi IOTA = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
// Interleave the low (ILO) or high (IHI) halves of two vectors: the transpose's shuffle stage
// (constant initialisers only: no start-up code may use an instruction set the CPU may lack).
static const vi ILO = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23};
static const vi IHI = {8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
static constexpr int LOG2W = 4;
#elif ATTN_W == 8
static const vi IOTA = {0, 1, 2, 3, 4, 5, 6, 7};
static const vi ILO = {0, 8, 1, 9, 2, 10, 3, 11};
static const vi IHI = {4, 12, 5, 13, 6, 14, 7, 15};
static constexpr int LOG2W = 3;
#elif ATTN_W == 4
static const vi IOTA = {0, 1, 2, 3};
static const vi ILO = {0, 4, 1, 5};
static const vi IHI = {2, 6, 3, 7};
static constexpr int LOG2W = 2;
#else
#error "ATTN_W must be 4, 8 or 16"
#endif

// C[R x W*NV] (+)= A[R x K] * B[K x W*NV]; A(r, k) = A[r * ars + k * aks], B and C row-major.
// With rs, the accumulated C is first scaled row-wise: row r by rs[r].
template <int R, int NV>
static inline void micro(int64_t K, const float *A, int64_t ars, int64_t aks, const float *B, int64_t ldb, float *C,
                         int64_t ldc, bool acc, const float *rs) {
  vf c[R][NV];
  if (acc) {
    for (int r = 0; r < R; r++)
      for (int v = 0; v < NV; v++) c[r][v] = ld(C + r * ldc + ATTN_W * v);
    if (rs)
      for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++) c[r][v] *= rs[r];
  } else {
    for (int r = 0; r < R; r++)
      for (int v = 0; v < NV; v++) c[r][v] = vf{};
  }
  for (int64_t k = 0; k < K; k++) {
    vf b[NV];
    for (int v = 0; v < NV; v++) {
      vf bv = ld(B + k * ldb + ATTN_W * v);
#if defined(__GNUC__) && defined(ATTN_PIN_B)
      // Keep B in registers: otherwise GCC folds the load into each FMA (R loads instead of one),
      // and the loop becomes load-bound. (On a local, not the array element: that made GCC store
      // every B vector to the stack as well.)
      __asm__("" : "+" ATTN_PIN_B(bv));
#endif
      b[v] = bv;
    }
    for (int r = 0; r < R; r++) {
      float a = A[r * ars + k * aks];
      for (int v = 0; v < NV; v++) c[r][v] += a * b[v];
    }
  }
  for (int r = 0; r < R; r++)
    for (int v = 0; v < NV; v++) st(C + r * ldc + ATTN_W * v, c[r][v]);
}

template <int R>
static inline void micro_r(int nv, int64_t K, const float *A, int64_t ars, int64_t aks, const float *B, int64_t ldb,
                           float *C, int64_t ldc, bool acc, const float *rs) {
  switch (nv) {
#if ATTN_NVMAX >= 4
    case 4: micro<R, 4>(K, A, ars, aks, B, ldb, C, ldc, acc, rs); break;
    case 3: micro<R, 3>(K, A, ars, aks, B, ldb, C, ldc, acc, rs); break;
#endif
#if ATTN_NVMAX >= 2
    case 2: micro<R, 2>(K, A, ars, aks, B, ldb, C, ldc, acc, rs); break;
#endif
    default: micro<R, 1>(K, A, ars, aks, B, ldb, C, ldc, acc, rs); break;
  }
}

// Triangular modes for the causal diagonal tile (row r of C against column n or inner index k):
// only the listed part of the product is computed, the rest of C is left as it was (TRI_N_*) or
// gets no contribution (TRI_K_*, where A is zero outside the range).
enum Tri { TRI_NONE, TRI_N_GE_ROW, TRI_N_LE_ROW, TRI_K_GE_ROW, TRI_K_LE_ROW };

// Rows per micro-kernel call: 6 x ATTN_NVMAX accumulators + ATTN_NVMAX B vectors + a broadcast
// fit the register file (32 zmm with 6 x 4 under AVX-512; 16 ymm with 6 x 2 under AVX2).
static constexpr int RMAX = 6;

// C[M x N] (+)= A[M x K] * B[K x N]; N must be a multiple of ATTN_W.
static void tile_nn(int64_t M, int64_t N, int64_t K, const float *A, int64_t ars, int64_t aks, const float *B,
                    int64_t ldb, float *C, int64_t ldc, bool acc, Tri tri = TRI_NONE, const float *rs = nullptr) {
  const int64_t NV = N / ATTN_W;
  for (int64_t i = 0; i < M;) {
    const int64_t R = M - i >= RMAX ? RMAX : M - i >= 4 ? 4 : 1;
    int64_t v0 = 0, v1 = NV, k0 = 0, k1 = K;
    if (tri == TRI_N_GE_ROW) v0 = std::min(NV, i / ATTN_W);
    else if (tri == TRI_N_LE_ROW) v1 = std::min(NV, (i + R - 1) / ATTN_W + 1);
    else if (tri == TRI_K_GE_ROW) k0 = std::min(K, i);
    else if (tri == TRI_K_LE_ROW) k1 = std::min(K, i + R);
    const float *a = A + i * ars + k0 * aks, *b = B + k0 * ldb, *ri = rs ? rs + i : nullptr;
    for (int64_t v = v0; v < v1; v += ATTN_NVMAX) {
      int nv = (int)std::min<int64_t>(ATTN_NVMAX, v1 - v);
      float *c = C + i * ldc + ATTN_W * v;
      if (R == RMAX) micro_r<RMAX>(nv, k1 - k0, a, ars, aks, b + ATTN_W * v, ldb, c, ldc, acc, ri);
      else if (R == 4) micro_r<4>(nv, k1 - k0, a, ars, aks, b + ATTN_W * v, ldb, c, ldc, acc, ri);
      else micro_r<1>(nv, k1 - k0, a, ars, aks, b + ATTN_W * v, ldb, c, ldc, acc, ri);
    }
    i += R;
  }
}

// dst[c * ldd + r] = s * src[r * lds + c] for r < 64, c < cols, with zeros for rows >= rows:
// a 64 x cols block transposed W x W at a time in registers (log2 W interleave stages).
static void transpose64(const float *src, int64_t lds, int64_t rows, int64_t cols, float s, float *dst, int64_t ldd) {
  constexpr int W = ATTN_W, H = ATTN_W / 2;
  const int64_t cw = cols / W * W;
  for (int64_t r0 = 0; r0 < 64; r0 += W) {
    for (int64_t c0 = 0; c0 < cw; c0 += W) {
      vf x[W], y[W];
      for (int r = 0; r < W; r++) x[r] = r0 + r < rows ? ld(src + (r0 + r) * lds + c0) * s : vf{};
      for (int stage = 0; stage < LOG2W; stage++) {
        for (int r = 0; r < H; r++) {
          y[2 * r] = __builtin_shuffle(x[r], x[r + H], ILO);
          y[2 * r + 1] = __builtin_shuffle(x[r], x[r + H], IHI);
        }
        for (int r = 0; r < W; r++) x[r] = y[r];
      }
      for (int c = 0; c < W; c++) st(dst + (c0 + c) * ldd + r0, x[c]);
    }
    for (int64_t c = cw; c < cols; c++)
      for (int64_t r = r0; r < r0 + W; r++) dst[c * ldd + r] = r < rows ? src[r * lds + c] * s : 0.0f;
  }
}

// x [B,T,H,D] -> [B,T,H,Dp], zero padded (orphaned work-sharing loop, no barrier at the end).
static void pad_rows(const float *x, int64_t rows, int64_t D, int64_t Dp, float *dst) {
#pragma omp for schedule(static) nowait
  for (int64_t r = 0; r < rows; r++) {
    std::memcpy(dst + r * Dp, x + r * D, D * sizeof(float));
    std::fill(dst + r * Dp + D, dst + r * Dp + Dp, 0.0f);
  }
}

static void fwd(const float *q, const float *k, const float *v, int64_t B, int64_t T, int64_t Hq, int64_t Hkv, int64_t D,
                float scale, bool causal, float *out, float *lse, float *tbuf, size_t per, int nt) {
  const int64_t G = Hq / Hkv, nqt = (T + BQ - 1) / BQ, Dp = round16(D), ldq = Hq * D, ldk = Hkv * D, ldv = Hkv * Dp;
  float *vpad = tbuf + nt * per;
  const float *vv = D == Dp ? v : vpad;
  const int64_t tasks = B * Hq * nqt;
#pragma omp parallel num_threads(nt)
  {
    if (D != Dp) {
      pad_rows(v, B * T * Hkv, D, Dp, vpad);
#pragma omp barrier
    }
    float *QT = tbuf + omp_get_thread_num() * per, *ST = QT + D * BQ, *O = ST + BK * BQ, *m = O + BQ * Dp, *l = m + BQ,
          *corr = l + BQ;
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; task++) {
      // Causal: later query tiles have more work; run them first for better balance.
      int64_t qt = causal ? nqt - 1 - task % nqt : task % nqt, bh = task / nqt, b = bh / Hq, h = bh % Hq;
      int64_t hk = h / G, q0 = qt * BQ, nq = std::min(BQ, T - q0);
      const float *Kh = k + (b * T * Hkv + hk) * D, *Vh = vv + (b * T * Hkv + hk) * Dp;
      // Q^T tile [D][BQ], scaled, zero columns past the last query.
      transpose64(q + ((b * T + q0) * Hq + h) * D, ldq, nq, D, scale, QT, BQ);
      for (int64_t i = 0; i < BQ; i += ATTN_W) {
        st(m + i, splat(-INFINITY));
        st(l + i, vf{});
      }
      int64_t kend = causal ? std::min(T, q0 + nq) : T;
      for (int64_t j0 = 0; j0 < kend; j0 += BK) {
        int64_t nk = std::min(BK, kend - j0);
        bool diag = causal && j0 + nk > q0;  // some key of the tile is after some query (j0 == q0)
        // S^T [nk x BQ] = K Q^T (K read in place). On the diagonal, row j only needs columns i >= j.
        tile_nn(nk, BQ, D, Kh + j0 * ldk, ldk, 1, QT, BQ, ST, BQ, false, diag ? TRI_N_GE_ROW : TRI_NONE);
        for (int64_t i = 0; i < BQ; i += ATTN_W) {
          // Column block of ATTN_W queries: online softmax over the nk keys, reduced down the rows.
          const vi qi = IOTA + (int32_t)(q0 + i - j0);  // key j is visible to query i iff j <= qi
          vf mo = ld(m + i), mx = mo;
          if (diag) {
            for (int64_t j = 0; j < nk; j++) {
              vf s = ld(ST + j * BQ + i);
              mx = (vi{} + (int32_t)j) <= qi ? vmax(mx, s) : mx;
            }
          } else {
            for (int64_t j = 0; j < nk; j++) mx = vmax(mx, ld(ST + j * BQ + i));
          }
          vf sum = vf{};
          if (diag) {
            for (int64_t j = 0; j < nk; j++) {
              vf p = vexp(ld(ST + j * BQ + i) - mx);
              p = (vi{} + (int32_t)j) <= qi ? p : vf{};
              st(ST + j * BQ + i, p);
              sum += p;
            }
          } else {
            for (int64_t j = 0; j < nk; j++) {
              vf p = vexp(ld(ST + j * BQ + i) - mx);
              st(ST + j * BQ + i, p);
              sum += p;
            }
          }
          // Every column sees key 0 in the first tile (causal or not), so mx is finite from then on
          // and corr = exp(-inf) = 0 only multiplies the zero-initialised state.
          vf c = vexp(mo - mx);
          st(corr + i, c);
          st(m + i, mx);
          st(l + i, ld(l + i) * c + sum);
        }
        // O [nq x Dp] = corr * O + P V, P read transposed from S^T (A(i, j) = S^T[j][i]); on the
        // diagonal, query i only meets keys j <= i.
        tile_nn(nq, Dp, nk, ST, 1, BQ, Vh + j0 * ldv, ldv, O, Dp, j0 > 0, diag ? TRI_K_LE_ROW : TRI_NONE, corr);
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

// Backward on rows whose length D is a multiple of 16 (the caller pads otherwise).
static void bwd_core(const float *q, const float *k, const float *v, const float *out, const float *lse,
                     const float *dout, int64_t B, int64_t T, int64_t Hq, int64_t Hkv, int64_t D, float scale,
                     bool causal, float *dq, float *dk, float *dv, float *tbuf, size_t per) {
  const int64_t G = Hq / Hkv, nkt = (T + BK - 1) / BK, ldq = Hq * D, ldk = Hkv * D;
  float *KT = tbuf + omp_get_thread_num() * per, *VT = KT + D * BK, *S = VT + D * BK, *dP = S + BQ * BK,
        *Dl = dP + BQ * BK, *Ll = Dl + G * T;
  // One task per (batch, kv head): it owns the dk/dv rows of that kv head and the dq rows of the
  // query heads that share it, so no two threads write the same output (deterministic, no atomics).
#pragma omp for schedule(dynamic, 1)
  for (int64_t task = 0; task < B * Hkv; task++) {
    int64_t b = task / Hkv, hk = task % Hkv;
    // Delta = rowsum(dO * O) and lse of the task's query heads; zero its dq, dk and dv rows.
    for (int64_t g = 0; g < G; g++) {
      int64_t h = hk * G + g;
      for (int64_t t = 0; t < T; t++) {
        const int64_t r = (b * T + t) * ldq + h * D;
        vf s = vf{};
        for (int64_t c = 0; c < D; c += ATTN_W) {
          s += ld(dout + r + c) * ld(out + r + c);
          st(dq + r + c, vf{});
        }
        Dl[g * T + t] = hsum(s);
        Ll[g * T + t] = lse[(b * Hq + h) * T + t];
      }
    }
    for (int64_t t = 0; t < T; t++)
      for (int64_t c = 0; c < D; c += ATTN_W) {
        st(dk + (b * T + t) * ldk + hk * D + c, vf{});
        st(dv + (b * T + t) * ldk + hk * D + c, vf{});
      }
    for (int64_t kt = 0; kt < nkt; kt++) {
      int64_t j0 = kt * BK, nk = std::min(BK, T - j0);
      const float *Kh = k + (b * T + j0) * ldk + hk * D, *Vh = v + (b * T + j0) * ldk + hk * D;
      float *dKh = dk + (b * T + j0) * ldk + hk * D, *dVh = dv + (b * T + j0) * ldk + hk * D;
      // K^T and V^T tiles [D][BK], zero columns past the last key.
      transpose64(Kh, ldk, nk, D, 1.0f, KT, BK);
      transpose64(Vh, ldk, nk, D, 1.0f, VT, BK);
      for (int64_t g = 0; g < G; g++) {
        int64_t h = hk * G + g;
        const float *lh = Ll + g * T, *Dh = Dl + g * T;
        for (int64_t i0 = causal ? j0 / BQ * BQ : 0; i0 < T; i0 += BQ) {
          int64_t nq = std::min(BQ, T - i0);
          bool diag = causal && i0 == j0;
          const float *Qh = q + (b * T + i0) * ldq + h * D, *dOh = dout + (b * T + i0) * ldq + h * D;
          float *dQh = dq + (b * T + i0) * ldq + h * D;
          Tri tn = diag ? TRI_N_LE_ROW : TRI_NONE;
          tile_nn(nq, BK, D, Qh, ldq, 1, KT, BK, S, BK, false, tn);    // S = Q K^T [nq x BK]
          tile_nn(nq, BK, D, dOh, ldq, 1, VT, BK, dP, BK, false, tn);  // dP = dO V^T
          for (int64_t i = 0; i < nq; i++) {
            float *s = S + i * BK, *dp = dP + i * BK;
            const vf li = splat(lh[i0 + i]), di = splat(Dh[i0 + i]), sc = splat(scale);
            const int32_t lim = (int32_t)(diag ? std::min(nk, i + 1) : nk);  // keys j < lim are visible
            const int64_t nv = diag ? i / ATTN_W + 1 : BK / ATTN_W;
            for (int64_t c = 0; c < nv * ATTN_W; c += ATTN_W) {
              vf p = vexp(ld(s + c) * sc - li);
              vf ds = p * (ld(dp + c) - di) * sc;  // scale folded in: dK = dS^T Q and dQ = dS K
              vi vis = IOTA + (int32_t)c < lim;
              st(s + c, vis ? p : vf{});
              st(dp + c, vis ? ds : vf{});
            }
            for (int64_t c = nv * ATTN_W; c < BK; c += ATTN_W) {
              st(s + c, vf{});
              st(dp + c, vf{});
            }
          }
          // dV += P^T dO, dK += dS^T Q (A read transposed: A(j, i) = P[i][j]); on the diagonal, key j
          // only meets queries i >= j.
          Tri tk = diag ? TRI_K_GE_ROW : TRI_NONE;
          tile_nn(nk, D, nq, S, 1, BK, dOh, ldq, dVh, ldk, true, tk);
          tile_nn(nk, D, nq, dP, 1, BK, Qh, ldq, dKh, ldk, true, tk);
          // dQ += dS K; on the diagonal, query i only meets keys j <= i.
          tile_nn(nq, D, nk, dP, BK, 1, Kh, ldk, dQh, ldq, true, diag ? TRI_K_LE_ROW : TRI_NONE);
        }
      }
    }
  }
}

static void bwd(const float *q, const float *k, const float *v, const float *out, const float *lse, const float *dout,
                int64_t B, int64_t T, int64_t Hq, int64_t Hkv, int64_t D, float scale, bool causal, float *dq, float *dk,
                float *dv, float *tbuf, size_t per, int nt) {
  if (D % 16 == 0) {
#pragma omp parallel num_threads(nt)
    bwd_core(q, k, v, out, lse, dout, B, T, Hq, Hkv, D, scale, causal, dq, dk, dv, tbuf, per);
    return;
  }
  // Pad the head dimension to Dp with zeros (they add nothing to any product), run, and unpad.
  const int64_t Dp = round16(D), nq = B * T * Hq, nk = B * T * Hkv;
  float *qp = tbuf + nt * per, *op = qp + nq * Dp, *dop = op + nq * Dp, *dqp = dop + nq * Dp, *kp = dqp + nq * Dp,
        *vp = kp + nk * Dp, *dkp = vp + nk * Dp, *dvp = dkp + nk * Dp;
#pragma omp parallel num_threads(nt)
  {
    pad_rows(q, nq, D, Dp, qp);
    pad_rows(out, nq, D, Dp, op);
    pad_rows(dout, nq, D, Dp, dop);
    pad_rows(k, nk, D, Dp, kp);
    pad_rows(v, nk, D, Dp, vp);
#pragma omp barrier
    bwd_core(qp, kp, vp, op, lse, dop, B, T, Hq, Hkv, Dp, scale, causal, dqp, dkp, dvp, tbuf, per);
#pragma omp for schedule(static) nowait
    for (int64_t r = 0; r < nq; r++) std::memcpy(dq + r * D, dqp + r * Dp, D * sizeof(float));
#pragma omp for schedule(static) nowait
    for (int64_t r = 0; r < nk; r++) {
      std::memcpy(dk + r * D, dkp + r * Dp, D * sizeof(float));
      std::memcpy(dv + r * D, dvp + r * Dp, D * sizeof(float));
    }
  }
}
