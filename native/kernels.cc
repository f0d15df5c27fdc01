// Elementwise, reduction, strided-copy and fused training kernels of the zili CPU addon: unary and
// binary maps with broadcasting, reductions, permute/slice copies, RMSNorm, RoPE, SwiGLU,
// softmax + cross-entropy, AdamW and embedding gather / scatter-add. No library offers these fused
// forms on plain arrays (BLAS has no elementwise ops; oneDNN's eltwise/normalisation primitives
// need memory descriptors per call, lack RoPE, SwiGLU, AdamW and cross-entropy, and their
// backward passes differ from ours), so they are plain loops written for the compiler's
// auto-vectoriser (-O3 -march=native) and OpenMP over the cores. Reductions that feed gradients
// are deterministic: each output element is owned by one thread and summed in a fixed order.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "zili.h"

namespace zili {

static const size_t PAR = 32768;  // below this many elements, stay on one thread

static inline float sigmoidf(float x) { return 1.0f / (1.0f + fast_exp(-x)); }
static inline float nanmax(float a, float b) { return (a != a) ? a : (a > b ? a : b); }
static inline float nanmin(float a, float b) { return (a != a) ? a : (a < b ? a : b); }
static const float GELU_C = 0.7978845608028654f;  // sqrt(2/pi)

template <int OP>
static inline float unary_f(float x) {
  switch (OP) {
    case U_NEG: return -x;
    case U_EXP: return fast_exp(x);
    case U_LOG: return std::log(x);
    case U_SQRT: return std::sqrt(x);
    case U_RSQRT: return 1.0f / std::sqrt(x);
    case U_SIN: return std::sin(x);
    case U_COS: return std::cos(x);
    case U_TANH: return std::tanh(x);
    case U_SIGMOID: return sigmoidf(x);
    case U_RELU: return x > 0.0f ? x : (x != x ? x : 0.0f);
    case U_SILU: return x * sigmoidf(x);
    case U_GELU: return 0.5f * x * (1.0f + std::tanh(GELU_C * (x + 0.044715f * x * x * x)));
    case U_ABS: return std::fabs(x);
    case U_RECIP: return 1.0f / x;
    case U_SQUARE: return x * x;
  }
  return 0.0f;
}

// dy * f'(x), with y = f(x).
template <int OP>
static inline float unary_d(float x, float y, float dy) {
  switch (OP) {
    case U_NEG: return -dy;
    case U_EXP: return dy * y;
    case U_LOG: return dy / x;
    case U_SQRT: return dy * 0.5f / y;
    case U_RSQRT: return dy * -0.5f * y * y * y;
    case U_SIN: return dy * std::cos(x);
    case U_COS: return -dy * std::sin(x);
    case U_TANH: return dy * (1.0f - y * y);
    case U_SIGMOID: return dy * y * (1.0f - y);
    case U_RELU: return x > 0.0f ? dy : 0.0f;
    case U_SILU: {
      float s = sigmoidf(x);
      return dy * s * (1.0f + x * (1.0f - s));
    }
    case U_GELU: {
      float t = std::tanh(GELU_C * (x + 0.044715f * x * x * x));
      return dy * (0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * GELU_C * (1.0f + 3.0f * 0.044715f * x * x));
    }
    case U_ABS: return x > 0.0f ? dy : (x < 0.0f ? -dy : 0.0f);
    case U_RECIP: return -dy * y * y;
    case U_SQUARE: return dy * 2.0f * x;
  }
  return 0.0f;
}

template <int OP>
static void unary_t(const float *x, float *out, size_t n) {
#pragma omp parallel for schedule(static) if (n > PAR)
  for (size_t i = 0; i < n; i++) out[i] = unary_f<OP>(x[i]);
}

template <int OP>
static void unary_bt(const float *x, const float *y, const float *dy, float *dx, size_t n) {
#pragma omp parallel for schedule(static) if (n > PAR)
  for (size_t i = 0; i < n; i++) dx[i] = unary_d<OP>(x[i], y ? y[i] : unary_f<OP>(x[i]), dy[i]);
}


void unary(int op, const float *x, float *out, size_t n) {
  switch (op) {
#define C(o, name) case o: unary_t<o>(x, out, n); return;
    ZILI_UNARY_OPS(C)
#undef C
  }
  throw ArgError("unary: unknown op code " + std::to_string(op));
}

void unary_backward(int op, const float *x, const float *y, const float *dy, float *dx, size_t n) {
  switch (op) {
#define C(o, name) case o: unary_bt<o>(x, y, dy, dx, n); return;
    ZILI_UNARY_OPS(C)
#undef C
  }
  throw ArgError("unaryBackward: unknown op code " + std::to_string(op));
}

template <int OP>
static inline float binary_f(float a, float b) {
  switch (OP) {
    case B_ADD: return a + b;
    case B_SUB: return a - b;
    case B_MUL: return a * b;
    case B_DIV: return a / b;
    case B_MAX: return nanmax(a, b);
    case B_MIN: return nanmin(a, b);
    case B_POW: return std::pow(a, b);
    case B_EQ: return a == b ? 1.0f : 0.0f;
    case B_LT: return a < b ? 1.0f : 0.0f;
    case B_GT: return a > b ? 1.0f : 0.0f;
  }
  return 0.0f;
}

// Merges adjacent dims that are contiguous in every operand (out is contiguous) and drops size-1
// dims, so the inner loop runs as long as possible. Returns the new ndim.
static int coalesce(int ndim, int64_t *shape, int64_t *s1, int64_t *s2) {
  int64_t sh[8], a[8], b[8];
  int n = 0;
  for (int d = 0; d < ndim; d++) {
    if (shape[d] == 1) continue;
    if (n > 0 && a[n - 1] == s1[d] * shape[d] && (!s2 || b[n - 1] == s2[d] * shape[d])) {
      sh[n - 1] *= shape[d];
      a[n - 1] = s1[d];
      if (s2) b[n - 1] = s2[d];
      continue;
    }
    sh[n] = shape[d];
    a[n] = s1[d];
    if (s2) b[n] = s2[d];
    n++;
  }
  if (n == 0) {
    sh[0] = 1;
    a[0] = 1;
    b[0] = 1;
    n = 1;
  }
  for (int d = 0; d < n; d++) {
    shape[d] = sh[d];
    s1[d] = a[d];
    if (s2) s2[d] = b[d];
  }
  return n;
}

template <int OP>
static void binary_t(const float *a, const int64_t *as, const float *b, const int64_t *bs, float *out,
                     const int64_t *shape, int nd) {
  int64_t inner = shape[nd - 1], sa = as[nd - 1], sb = bs[nd - 1];
  int64_t rows = 1;
  for (int d = 0; d < nd - 1; d++) rows *= shape[d];
  size_t total = (size_t)rows * inner;
#pragma omp parallel for schedule(static) if (total > PAR)
  for (int64_t r = 0; r < rows; r++) {
    int64_t oa = 0, ob = 0, rem = r;
    for (int d = nd - 2; d >= 0; d--) {
      int64_t idx = rem % shape[d];
      rem /= shape[d];
      oa += idx * as[d];
      ob += idx * bs[d];
    }
    const float *pa = a + oa, *pb = b + ob;
    float *po = out + r * inner;
    if (sa == 1 && sb == 1)
      for (int64_t i = 0; i < inner; i++) po[i] = binary_f<OP>(pa[i], pb[i]);
    else if (sa == 1 && sb == 0) {
      float bv = pb[0];
      for (int64_t i = 0; i < inner; i++) po[i] = binary_f<OP>(pa[i], bv);
    } else if (sa == 0 && sb == 1) {
      float av = pa[0];
      for (int64_t i = 0; i < inner; i++) po[i] = binary_f<OP>(av, pb[i]);
    } else
      for (int64_t i = 0; i < inner; i++) po[i] = binary_f<OP>(pa[i * sa], pb[i * sb]);
  }
}

void binary(int op, const float *a, const int64_t *as_, const float *b, const int64_t *bs_, float *out,
            const int64_t *shape_, int ndim) {
  int64_t shape[8], as[8], bs[8];
  for (int d = 0; d < ndim; d++) {
    shape[d] = shape_[d];
    as[d] = as_[d];
    bs[d] = bs_[d];
  }
  for (int d = 0; d < ndim; d++)
    if (shape[d] == 0) return;
  int nd = coalesce(ndim, shape, as, bs);
  switch (op) {
#define C(o, name) case o: binary_t<o>(a, as, b, bs, out, shape, nd); return;
    ZILI_BINARY_OPS(C)
#undef C
  }
  throw ArgError("binary: unknown op code " + std::to_string(op));
}

void reduce(int op, const float *x, int64_t outer, int64_t axis, int64_t inner, float *out) {
  if (op != R_SUM && op != R_MAX) throw ArgError("reduce: unknown op code " + std::to_string(op));
  size_t total = (size_t)outer * axis * inner;
  if (inner == 1) {
#pragma omp parallel for schedule(static) if (total > PAR)
    for (int64_t o = 0; o < outer; o++) {
      const float *p = x + o * axis;
      if (op == R_SUM) {
        double s = 0.0;
#pragma omp simd reduction(+ : s)
        for (int64_t i = 0; i < axis; i++) s += (double)p[i];
        out[o] = (float)s;
      } else {
        float m = -INFINITY;
        int nan = 0;
#pragma omp simd reduction(max : m) reduction(| : nan)
        for (int64_t i = 0; i < axis; i++) {
          nan |= p[i] != p[i];
          m = p[i] > m ? p[i] : m;
        }
        out[o] = nan ? NAN : m;
      }
    }
    return;
  }
  // Blocks of up to 256 inner positions per task; each output owned by one thread.
  const int64_t CH = 256;
  int64_t nch = (inner + CH - 1) / CH;
#pragma omp parallel if (total > PAR)
  {
    std::vector<double> acc(CH);
#pragma omp for schedule(static)
    for (int64_t t = 0; t < outer * nch; t++) {
      int64_t o = t / nch, j0 = (t % nch) * CH, j1 = std::min(inner, j0 + CH), w = j1 - j0;
      const float *p = x + o * axis * inner + j0;
      float *po = out + o * inner + j0;
      if (op == R_SUM) {
        for (int64_t j = 0; j < w; j++) acc[j] = 0.0;
        for (int64_t i = 0; i < axis; i++)
          for (int64_t j = 0; j < w; j++) acc[j] += (double)p[i * inner + j];
        for (int64_t j = 0; j < w; j++) po[j] = (float)acc[j];
      } else {
        for (int64_t j = 0; j < w; j++) po[j] = axis > 0 ? p[j] : -INFINITY;
        for (int64_t i = 1; i < axis; i++)
          for (int64_t j = 0; j < w; j++) po[j] = nanmax(po[j], p[i * inner + j]);
      }
    }
  }
}

template <typename T>
static void copy_t(const T *src, const int64_t *ss, T *dst, const int64_t *ds, const int64_t *shape, int nd) {
  // ds == nullptr: dst is contiguous
  int64_t inner = shape[nd - 1], si = ss[nd - 1], di = ds ? ds[nd - 1] : 1;
  int64_t rows = 1;
  for (int d = 0; d < nd - 1; d++) rows *= shape[d];
#pragma omp parallel for schedule(static) if ((size_t)rows * inner > PAR)
  for (int64_t r = 0; r < rows; r++) {
    int64_t off = 0, doff = 0, rem = r;
    for (int d = nd - 2; d >= 0; d--) {
      int64_t i = rem % shape[d];
      off += i * ss[d];
      if (ds) doff += i * ds[d];
      rem /= shape[d];
    }
    const T *ps = src + off;
    T *pd = dst + (ds ? doff : r * inner);
    if (si == 1 && di == 1)
      std::memcpy(pd, ps, inner * sizeof(T));
    else if (si == 0)
      for (int64_t i = 0; i < inner; i++) pd[i * di] = ps[0];
    else
      for (int64_t i = 0; i < inner; i++) pd[i * di] = ps[i * si];
  }
}

void copy_strided(int elem_bytes, const void *src, const int64_t *ss_, void *dst, const int64_t *shape_, int ndim) {
  copy_strided_to(elem_bytes, src, ss_, dst, nullptr, shape_, ndim);
}

void copy_strided_to(int elem_bytes, const void *src, const int64_t *ss_, void *dst, const int64_t *ds_,
                     const int64_t *shape_, int ndim) {
  int64_t shape[8], ss[8], ds[8];
  for (int d = 0; d < ndim; d++) {
    shape[d] = shape_[d];
    ss[d] = ss_[d];
    if (ds_) ds[d] = ds_[d];
    if (shape[d] == 0) return;
  }
  int nd = coalesce(ndim, shape, ss, ds_ ? ds : nullptr);
  if (elem_bytes == 4)
    copy_t((const uint32_t *)src, ss, (uint32_t *)dst, ds_ ? ds : nullptr, shape, nd);
  else
    copy_t((const uint16_t *)src, ss, (uint16_t *)dst, ds_ ? ds : nullptr, shape, nd);
}

void rmsnorm_fwd(const float *x, const float *w, float eps, int64_t rows, int64_t dim, float *y, float *rstd) {
#pragma omp parallel for schedule(static) if ((size_t)rows * dim > PAR)
  for (int64_t r = 0; r < rows; r++) {
    const float *px = x + r * dim;
    float *py = y + r * dim;
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < dim; i++) s += (double)px[i] * px[i];
    float rs = (float)(1.0 / std::sqrt(s / (double)dim + (double)eps));
    rstd[r] = rs;
    for (int64_t i = 0; i < dim; i++) py[i] = px[i] * rs * w[i];
  }
}

void rmsnorm_bwd(const float *dy, const float *x, const float *w, const float *rstd, int64_t rows, int64_t dim,
                 float *dx, float *dw) {
  size_t total = (size_t)rows * dim;
#pragma omp parallel if (total > PAR)
  {
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
      const float *px = x + r * dim, *pdy = dy + r * dim;
      float *pdx = dx + r * dim;
      float rs = rstd[r];
      double g = 0.0;
#pragma omp simd reduction(+ : g)
      for (int64_t i = 0; i < dim; i++) g += (double)pdy[i] * w[i] * px[i];
      float c = (float)(g * rs * rs * rs / (double)dim);
      for (int64_t i = 0; i < dim; i++) pdx[i] = rs * w[i] * pdy[i] - px[i] * c;
    }
    // dw: each thread owns a column block and sums all rows in order (deterministic).
    const int64_t CH = 64;
    int64_t nch = (dim + CH - 1) / CH;
    double acc[CH];
#pragma omp for schedule(static)
    for (int64_t t = 0; t < nch; t++) {
      int64_t j0 = t * CH, j1 = std::min(dim, j0 + CH), wd = j1 - j0;
      for (int64_t j = 0; j < wd; j++) acc[j] = 0.0;
      for (int64_t r = 0; r < rows; r++) {
        const float *px = x + r * dim + j0, *pdy = dy + r * dim + j0;
        float rs = rstd[r];
        for (int64_t j = 0; j < wd; j++) acc[j] += (double)(pdy[j] * px[j] * rs);
      }
      for (int64_t j = 0; j < wd; j++) dw[j0 + j] = (float)acc[j];
    }
  }
}

// The cos/sin table for T positions from pos0 (angles in double), kept per thread for the next call:
// a training step calls RoPE 4 times per layer with the same positions, and the table (T x D/2
// pow/cos/sin in double) cost as much as the rotation itself.
struct RopeTable {
  int64_t T = -1, D = -1, pos0 = -1;
  double theta = 0;
  std::vector<float> cs, sn;
};

static const RopeTable &rope_table(int64_t T, int64_t D, int64_t pos0, double theta, bool par) {
  thread_local RopeTable t;
  if (t.T == T && t.D == D && t.pos0 == pos0 && t.theta == theta) return t;
  int64_t half = D / 2;
  t.cs.resize((size_t)T * half);
  t.sn.resize((size_t)T * half);
  float *cs = t.cs.data(), *sn = t.sn.data();
#pragma omp parallel for schedule(static) if (par)
  for (int64_t p = 0; p < T; p++)
    for (int64_t i = 0; i < half; i++) {
      double a = (double)(pos0 + p) * std::pow(theta, -2.0 * (double)i / (double)D);
      cs[p * half + i] = (float)std::cos(a);
      sn[p * half + i] = (float)std::sin(a);
    }
  t.T = T, t.D = D, t.pos0 = pos0, t.theta = theta;
  return t;
}

void rope_fwd(const float *x, int64_t B, int64_t T, int64_t H, int64_t D, int64_t pos0, double theta, float *out,
              bool inverse) {
  int64_t half = D / 2;
  bool par = (size_t)B * T * H * D > PAR;
  const RopeTable &tab = rope_table(T, D, pos0, theta, par);
  const float *cs = tab.cs.data(), *sn = tab.sn.data();
  const float sg = inverse ? -1.0f : 1.0f;  // the inverse rotation: sin negated
#pragma omp parallel for schedule(static) if (par)
  for (int64_t bt = 0; bt < B * T; bt++) {
    const float *c = cs + (bt % T) * half, *s = sn + (bt % T) * half;
    for (int64_t h = 0; h < H; h++) {
      const float *px = x + (bt * H + h) * D;
      float *po = out + (bt * H + h) * D;
      for (int64_t i = 0; i < half; i++) {
        float x1 = px[i], x2 = px[i + half], si = sg * s[i];
        po[i] = x1 * c[i] - x2 * si;
        po[i + half] = x2 * c[i] + x1 * si;
      }
    }
  }
}

void swiglu_fwd(const float *g, const float *u, float *out, size_t n) {
#pragma omp parallel for schedule(static) if (n > PAR)
  for (size_t i = 0; i < n; i++) out[i] = g[i] * sigmoidf(g[i]) * u[i];
}

void swiglu_bwd(const float *g, const float *u, const float *dout, float *dg, float *du, size_t n) {
#pragma omp parallel for schedule(static) if (n > PAR)
  for (size_t i = 0; i < n; i++) {
    float x = g[i], s = sigmoidf(x), d = dout[i];
    float sl = x * s;
    du[i] = d * sl;
    dg[i] = d * u[i] * (s + sl * (1.0f - s));
  }
}

// The same on the packed output of the fused gate/up GEMM: gu [rows, 2f] holds gate in columns
// [0, f) and up in [f, 2f); out [rows, f]; the backward writes dgu in the same packed layout, so
// neither direction needs the parts copied out or back.
void swiglu_packed_fwd(const float *gu, int64_t rows, int64_t f, float *out) {
#pragma omp parallel for schedule(static) if ((size_t)rows * f > PAR)
  for (int64_t r = 0; r < rows; r++) {
    const float *g = gu + r * 2 * f, *u = g + f;
    float *o = out + r * f;
    for (int64_t i = 0; i < f; i++) o[i] = g[i] * sigmoidf(g[i]) * u[i];
  }
}

void swiglu_packed_bwd(const float *gu, const float *dout, int64_t rows, int64_t f, float *dgu) {
#pragma omp parallel for schedule(static) if ((size_t)rows * f > PAR)
  for (int64_t r = 0; r < rows; r++) {
    const float *g = gu + r * 2 * f, *u = g + f, *d = dout + r * f;
    float *dg = dgu + r * 2 * f, *du = dg + f;
    for (int64_t i = 0; i < f; i++) {
      float x = g[i], s = sigmoidf(x), sl = x * s;
      du[i] = d[i] * sl;
      dg[i] = d[i] * u[i] * (s + sl * (1.0f - s));
    }
  }
}

void cross_entropy_fwd(const float *logits, const int32_t *targets, int64_t rows, int64_t vocab, float *losses,
                       float *lse) {
#pragma omp parallel for schedule(static) if ((size_t)rows * vocab > PAR)
  for (int64_t r = 0; r < rows; r++) {
    const float *p = logits + r * vocab;
    float m = -INFINITY;
#pragma omp simd reduction(max : m)
    for (int64_t i = 0; i < vocab; i++) m = p[i] > m ? p[i] : m;
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < vocab; i++) s += fast_exp(p[i] - m);
    float l = m + std::log(s);
    lse[r] = l;
    int32_t t = targets[r];
    losses[r] = t < 0 ? 0.0f : l - p[t];
  }
}

void cross_entropy_bwd(const float *logits, const int32_t *targets, const float *lse, int64_t rows, int64_t vocab,
                       float scale, float *dlogits) {
#pragma omp parallel for schedule(static) if ((size_t)rows * vocab > PAR)
  for (int64_t r = 0; r < rows; r++) {
    const float *p = logits + r * vocab;
    float *d = dlogits + r * vocab;
    int32_t t = targets[r];
    if (t < 0) {
      std::memset(d, 0, vocab * sizeof(float));
      continue;
    }
    float l = lse[r];
    for (int64_t i = 0; i < vocab; i++) d[i] = fast_exp(p[i] - l) * scale;
    d[t] -= scale;
  }
}

void adamw(float *p, const float *g, float *m, float *v, size_t n, double lr, double b1, double b2, double eps,
           double wd, int64_t step) {
  float bc1 = (float)(1.0 - std::pow(b1, (double)step)), bc2 = (float)(1.0 - std::pow(b2, (double)step));
  float decay = (float)(1.0 - lr * wd), flr = (float)lr, fb1 = (float)b1, fb2 = (float)b2, feps = (float)eps;
  float rbc1 = 1.0f / bc1, rbc2 = 1.0f / bc2;
#pragma omp parallel for schedule(static) if (n > PAR)
  for (size_t i = 0; i < n; i++) {
    float gi = g[i];
    float mi = fb1 * m[i] + (1.0f - fb1) * gi;
    float vi = fb2 * v[i] + (1.0f - fb2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    float pi = p[i] * decay;
    p[i] = pi - flr * (mi * rbc1) / (std::sqrt(vi * rbc2) + feps);
  }
}

void embedding_fwd(const float *table, const int32_t *ids, int64_t n, int64_t dim, float *out) {
#pragma omp parallel for schedule(static) if ((size_t)n * dim > PAR)
  for (int64_t i = 0; i < n; i++) std::memcpy(out + i * dim, table + (int64_t)ids[i] * dim, dim * sizeof(float));
}

void embedding_bwd(const float *dout, const int32_t *ids, int64_t n, int64_t dim, float *dtable) {
  // Each thread owns a block of columns and adds the rows in id order: race-free, deterministic.
  const int64_t CH = 64;
  int64_t nch = (dim + CH - 1) / CH;
#pragma omp parallel for schedule(static) if ((size_t)n * dim > PAR)
  for (int64_t t = 0; t < nch; t++) {
    int64_t j0 = t * CH, w = std::min(dim, j0 + CH) - j0;
    for (int64_t i = 0; i < n; i++) {
      float *pt = dtable + (int64_t)ids[i] * dim + j0;
      const float *pd = dout + i * dim + j0;
      for (int64_t j = 0; j < w; j++) pt[j] += pd[j];
    }
  }
}

double sum_squares(const float *x, size_t n) {
  double s = 0.0;
#pragma omp parallel for simd schedule(static) reduction(+ : s) if (n > PAR)
  for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
  return s;
}

void scale_in_place(float *x, size_t n, float s) {
#pragma omp parallel for schedule(static) if (n > PAR)
  for (size_t i = 0; i < n; i++) x[i] *= s;
}

void axpy(float alpha, const float *x, float *y, size_t n) {
#pragma omp parallel for schedule(static) if (n > PAR)
  for (size_t i = 0; i < n; i++) y[i] += alpha * x[i];
}

}  // namespace zili
