// N-API entry points of the zili CPU addon (zili_native.node): reads JS numbers, booleans and
// TypedArrays (honouring byteOffset), checks every length against the sizes the caller gave, and
// calls the kernels in gemm.cc, kernels.cc and attention.cc. A size mismatch throws a TypeError
// that names the function and the sizes. Glue code: there is no library for this part.
#include <node_api.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "zili.h"

namespace {

using zili::ArgError;

struct Ctx {
  napi_env env;
  napi_value argv[24];
  size_t argc = 24;
  const char *fn;
};

template <typename T>
struct Arr {
  T *p;
  size_t n;
};

[[noreturn]] void fail(Ctx &c, const std::string &msg) { throw ArgError(std::string(c.fn) + ": " + msg); }

double num(Ctx &c, int i, const char *name) {
  double v;
  if (napi_get_value_double(c.env, c.argv[i], &v) != napi_ok) fail(c, std::string("argument '") + name + "' must be a number");
  return v;
}

int64_t size_arg(Ctx &c, int i, const char *name) {
  double v = num(c, i, name);
  if (!(v >= 0) || v != std::floor(v) || v > 9.0e15)
    fail(c, std::string("argument '") + name + "' must be a non-negative integer, got " + std::to_string(v));
  return (int64_t)v;
}

int64_t int_arg(Ctx &c, int i, const char *name) {
  double v = num(c, i, name);
  if (v != std::floor(v) || std::fabs(v) > 9.0e15) fail(c, std::string("argument '") + name + "' must be an integer");
  return (int64_t)v;
}

bool bool_arg(Ctx &c, int i, const char *name) {
  bool b;
  if (napi_get_value_bool(c.env, c.argv[i], &b) == napi_ok) return b;
  double v;
  if (napi_get_value_double(c.env, c.argv[i], &v) == napi_ok) return v != 0;
  fail(c, std::string("argument '") + name + "' must be a boolean");
}

const char *type_name(napi_typedarray_type t) {
  switch (t) {
    case napi_float32_array: return "Float32Array";
    case napi_uint16_array: return "Uint16Array";
    case napi_int32_array: return "Int32Array";
    case napi_float64_array: return "Float64Array";
    case napi_uint32_array: return "Uint32Array";
    case napi_int16_array: return "Int16Array";
    case napi_uint8_array: return "Uint8Array";
    default: return "another TypedArray";
  }
}

void *typed(Ctx &c, int i, const char *name, napi_typedarray_type want, size_t *len, napi_typedarray_type *got = nullptr) {
  bool is;
  if (napi_is_typedarray(c.env, c.argv[i], &is) != napi_ok || !is)
    fail(c, std::string("argument '") + name + "' must be a " + type_name(want));
  napi_typedarray_type t;
  void *data;
  napi_value ab;
  size_t off;
  napi_get_typedarray_info(c.env, c.argv[i], &t, len, &data, &ab, &off);  // data already includes byteOffset
  if (got) {
    *got = t;
  } else if (t != want) {
    fail(c, std::string("argument '") + name + "' must be a " + type_name(want) + ", got a " + type_name(t));
  }
  return data;
}

Arr<float> f32(Ctx &c, int i, const char *name) {
  size_t n;
  float *p = (float *)typed(c, i, name, napi_float32_array, &n);
  return {p, n};
}
Arr<uint16_t> u16(Ctx &c, int i, const char *name) {
  size_t n;
  uint16_t *p = (uint16_t *)typed(c, i, name, napi_uint16_array, &n);
  return {p, n};
}
Arr<int32_t> i32(Ctx &c, int i, const char *name) {
  size_t n;
  int32_t *p = (int32_t *)typed(c, i, name, napi_int32_array, &n);
  return {p, n};
}

template <typename T>
void need_eq(Ctx &c, const Arr<T> &a, const char *name, size_t want, const std::string &sizes) {
  if (a.n != want)
    fail(c, std::string(name) + " has " + std::to_string(a.n) + " elements, expected " + std::to_string(want) + " (" +
                sizes + ")");
}
template <typename T>
void need_ge(Ctx &c, const Arr<T> &a, const char *name, size_t want, const std::string &sizes) {
  if (a.n < want)
    fail(c, std::string(name) + " has " + std::to_string(a.n) + " elements, needs at least " + std::to_string(want) +
                " (" + sizes + ")");
}

napi_value undef(Ctx &c) {
  napi_value u;
  napi_get_undefined(c.env, &u);
  return u;
}
napi_value number(Ctx &c, double v) {
  napi_value r;
  napi_create_double(c.env, v, &r);
  return r;
}

std::string S(int64_t v) { return std::to_string(v); }

// Elements a (rows x cols, leading dim ld) row-major matrix spans; checks ld >= cols.
int64_t span(Ctx &c, const char *name, int64_t rows, int64_t cols, int64_t ld) {
  if (rows == 0 || cols == 0) return 0;
  if (ld < cols) fail(c, std::string("leading dimension of ") + name + " is " + S(ld) + ", must be >= " + S(cols));
  return (rows - 1) * ld + cols;
}

// ---- GEMM ----
struct GemmArgs {
  int64_t batch = 1, m, n, k, lda, ldb, ldc, sa = 0, sb = 0, sc = 0;
  bool ta, tb;
  double alpha, beta;
};

// Reads (batch?) transA transB m n k alpha a (strideA?) lda b (strideB?) ldb beta c (strideC?) ldc.
template <typename E>
void gemm_args(Ctx &c, bool batched, GemmArgs &g, Arr<E> &a, Arr<E> &b, Arr<float> &cc,
               Arr<E> (*get)(Ctx &, int, const char *)) {
  int i = 0;
  if (batched) g.batch = size_arg(c, i++, "batch");
  g.ta = bool_arg(c, i++, "transA");
  g.tb = bool_arg(c, i++, "transB");
  g.m = size_arg(c, i++, "m");
  g.n = size_arg(c, i++, "n");
  g.k = size_arg(c, i++, "k");
  g.alpha = num(c, i++, "alpha");
  a = get(c, i++, "a");
  if (batched) g.sa = size_arg(c, i++, "strideA");
  g.lda = size_arg(c, i++, "lda");
  b = get(c, i++, "b");
  if (batched) g.sb = size_arg(c, i++, "strideB");
  g.ldb = size_arg(c, i++, "ldb");
  g.beta = num(c, i++, "beta");
  cc = f32(c, i++, "c");
  if (batched) g.sc = size_arg(c, i++, "strideC");
  g.ldc = size_arg(c, i++, "ldc");
  std::string sizes = (batched ? "batch=" + S(g.batch) + " " : std::string()) + "m=" + S(g.m) + " n=" + S(g.n) +
                      " k=" + S(g.k) + " transA=" + (g.ta ? "true" : "false") + " transB=" + (g.tb ? "true" : "false") +
                      " lda=" + S(g.lda) + " ldb=" + S(g.ldb) + " ldc=" + S(g.ldc);
  if (batched) sizes += " strideA=" + S(g.sa) + " strideB=" + S(g.sb) + " strideC=" + S(g.sc);
  int64_t ea = g.ta ? span(c, "a", g.k, g.m, g.lda) : span(c, "a", g.m, g.k, g.lda);
  int64_t eb = g.tb ? span(c, "b", g.n, g.k, g.ldb) : span(c, "b", g.k, g.n, g.ldb);
  int64_t ec = span(c, "c", g.m, g.n, g.ldc);
  if (g.batch == 0) return;
  if (ea) need_ge(c, a, "a", (g.batch - 1) * g.sa + ea, sizes);
  if (eb) need_ge(c, b, "b", (g.batch - 1) * g.sb + eb, sizes);
  if (ec) need_ge(c, cc, "c", (g.batch - 1) * g.sc + ec, sizes);
  if (batched && g.batch > 1 && g.sc == 0 && ec) fail(c, "strideC must not be 0 (outputs would overlap)");
}

napi_value sgemm_common(Ctx &c, zili::SgemmEngine e) {
  GemmArgs g;
  Arr<float> a, b, cc;
  gemm_args<float>(c, false, g, a, b, cc, f32);
  zili::sgemm(e, g.ta, g.tb, g.m, g.n, g.k, (float)g.alpha, a.p, g.lda, b.p, g.ldb, (float)g.beta, cc.p, g.ldc);
  return undef(c);
}

napi_value js_sgemm(Ctx &c) { return sgemm_common(c, zili::SgemmEngine::Auto); }
napi_value js_cblas_sgemm(Ctx &c) { return sgemm_common(c, zili::SgemmEngine::OpenBLAS); }
napi_value js_dnnl_sgemm(Ctx &c) { return sgemm_common(c, zili::SgemmEngine::OneDNN); }

napi_value js_sgemm_batched(Ctx &c) {
  GemmArgs g;
  Arr<float> a, b, cc;
  gemm_args<float>(c, true, g, a, b, cc, f32);
  zili::sgemm_batched(g.batch, g.ta, g.tb, g.m, g.n, g.k, (float)g.alpha, a.p, g.sa, g.lda, b.p, g.sb, g.ldb,
                      (float)g.beta, cc.p, g.sc, g.ldc);
  return undef(c);
}

napi_value js_bgemm(Ctx &c) {
  GemmArgs g;
  Arr<uint16_t> a, b;
  Arr<float> cc;
  gemm_args<uint16_t>(c, false, g, a, b, cc, u16);
  zili::bgemm_batched(1, g.ta, g.tb, g.m, g.n, g.k, (float)g.alpha, a.p, 0, g.lda, b.p, 0, g.ldb, (float)g.beta, cc.p,
                      0, g.ldc);
  return undef(c);
}

napi_value js_bgemm_batched(Ctx &c) {
  GemmArgs g;
  Arr<uint16_t> a, b;
  Arr<float> cc;
  gemm_args<uint16_t>(c, true, g, a, b, cc, u16);
  zili::bgemm_batched(g.batch, g.ta, g.tb, g.m, g.n, g.k, (float)g.alpha, a.p, g.sa, g.lda, b.p, g.sb, g.ldb,
                      (float)g.beta, cc.p, g.sc, g.ldc);
  return undef(c);
}

napi_value js_sgemm_engine(Ctx &c) {
  bool ta = bool_arg(c, 0, "transA"), tb = bool_arg(c, 1, "transB");
  int64_t m = size_arg(c, 2, "m"), n = size_arg(c, 3, "n"), k = size_arg(c, 4, "k");
  napi_value r;
  napi_create_string_utf8(c.env, zili::sgemm_engine_name(zili::sgemm_pick(ta, tb, m, n, k)), NAPI_AUTO_LENGTH, &r);
  return r;
}

napi_value js_bgemm_impl(Ctx &c) {
  bool ta = bool_arg(c, 0, "transA"), tb = bool_arg(c, 1, "transB");
  int64_t m = size_arg(c, 2, "m"), n = size_arg(c, 3, "n"), k = size_arg(c, 4, "k");
  napi_value r;
  napi_create_string_utf8(c.env, zili::bgemm_impl(ta, tb, m, n, k), NAPI_AUTO_LENGTH, &r);
  return r;
}

// ---- casts and elementwise ----
napi_value js_cast_f32_bf16(Ctx &c) {
  auto s = f32(c, 0, "src");
  auto d = u16(c, 1, "dst");
  need_eq(c, d, "dst", s.n, "src has " + S(s.n) + " elements");
  zili::cast_f32_bf16(s.p, d.p, s.n);
  return undef(c);
}

napi_value js_cast_bf16_f32(Ctx &c) {
  auto s = u16(c, 0, "src");
  auto d = f32(c, 1, "dst");
  need_eq(c, d, "dst", s.n, "src has " + S(s.n) + " elements");
  zili::cast_bf16_f32(s.p, d.p, s.n);
  return undef(c);
}

int op_arg(Ctx &c, int i, int count) {
  int64_t op = int_arg(c, i, "op");
  if (op < 0 || op >= count) fail(c, "unknown op code " + S(op) + " (valid: 0.." + S(count - 1) + ")");
  return (int)op;
}

napi_value js_unary(Ctx &c) {
  int op = op_arg(c, 0, zili::U_COUNT);
  auto x = f32(c, 1, "x");
  auto o = f32(c, 2, "out");
  need_eq(c, o, "out", x.n, "x has " + S(x.n) + " elements");
  zili::unary(op, x.p, o.p, x.n);
  return undef(c);
}

napi_value js_unary_backward(Ctx &c) {
  int op = op_arg(c, 0, zili::U_COUNT);
  auto x = f32(c, 1, "x");
  auto y = f32(c, 2, "y");
  auto dy = f32(c, 3, "dy");
  auto dx = f32(c, 4, "dx");
  std::string sz = "x has " + S(x.n) + " elements";
  if (y.n != 0) need_eq(c, y, "y", x.n, sz + "; pass an empty y to recompute it");
  need_eq(c, dy, "dy", x.n, sz);
  need_eq(c, dx, "dx", x.n, sz);
  zili::unary_backward(op, x.p, y.n ? y.p : nullptr, dy.p, dx.p, x.n);
  return undef(c);
}

int strides_arg(Ctx &c, int i, const char *name, int64_t *out) {
  auto s = i32(c, i, name);
  if (s.n > 8) fail(c, std::string(name) + " has " + S(s.n) + " dims, at most 8 are supported");
  for (size_t d = 0; d < s.n; d++) out[d] = s.p[d];
  return (int)s.n;
}

// Lowest and highest element offset a strided view touches (shape has no zero dims).
void extent(const int64_t *shape, const int64_t *st, int nd, int64_t &lo, int64_t &hi) {
  lo = hi = 0;
  for (int d = 0; d < nd; d++) {
    int64_t e = (shape[d] - 1) * st[d];
    if (e < 0) lo += e; else hi += e;
  }
}

std::string dims_str(const int64_t *v, int n) {
  std::string s = "[";
  for (int i = 0; i < n; i++) s += (i ? "," : "") + S(v[i]);
  return s + "]";
}

napi_value js_binary(Ctx &c) {
  int op = op_arg(c, 0, zili::B_COUNT);
  auto a = f32(c, 1, "a");
  int64_t as[8], bs[8], shape[8];
  int na = strides_arg(c, 2, "aStrides", as);
  auto b = f32(c, 3, "b");
  int nb = strides_arg(c, 4, "bStrides", bs);
  auto o = f32(c, 5, "out");
  int nd = strides_arg(c, 6, "outShape", shape);
  std::string sz = "outShape=" + dims_str(shape, nd) + " aStrides=" + dims_str(as, na) + " bStrides=" + dims_str(bs, nb);
  if (na != nd || nb != nd) fail(c, "aStrides, bStrides and outShape must have the same length (" + sz + ")");
  int64_t total = 1;
  for (int d = 0; d < nd; d++) {
    if (shape[d] < 0) fail(c, "negative dimension (" + sz + ")");
    total *= shape[d];
  }
  need_eq(c, o, "out", (size_t)total, sz);
  if (total == 0) return undef(c);
  int64_t lo, hi;
  extent(shape, as, nd, lo, hi);
  if (lo < 0 || hi >= (int64_t)a.n) fail(c, "a has " + S(a.n) + " elements, the view reaches offset " + S(hi) + " (" + sz + ")");
  extent(shape, bs, nd, lo, hi);
  if (lo < 0 || hi >= (int64_t)b.n) fail(c, "b has " + S(b.n) + " elements, the view reaches offset " + S(hi) + " (" + sz + ")");
  zili::binary(op, a.p, as, b.p, bs, o.p, shape, nd);
  return undef(c);
}

napi_value js_reduce(Ctx &c) {
  int op = op_arg(c, 0, zili::R_COUNT);
  auto x = f32(c, 1, "x");
  int64_t outer = size_arg(c, 2, "outer"), axis = size_arg(c, 3, "axis"), inner = size_arg(c, 4, "inner");
  auto o = f32(c, 5, "out");
  std::string sz = "outer=" + S(outer) + " axis=" + S(axis) + " inner=" + S(inner);
  need_eq(c, x, "x", outer * axis * inner, sz);
  need_eq(c, o, "out", outer * inner, sz);
  zili::reduce(op, x.p, outer, axis, inner, o.p);
  return undef(c);
}

// copyStrided(elemBytes, src, srcOffset, srcStrides, dst, shape): dst contiguous;
// copyStridedTo(elemBytes, src, srcOffset, srcStrides, dst, dstOffset, dstStrides, shape): dst a strided view.
static napi_value copy_strided_impl(Ctx &c, bool to_view) {
  int64_t eb = int_arg(c, 0, "elemBytes");
  if (eb != 2 && eb != 4) fail(c, "elemBytes must be 2 or 4, got " + S(eb));
  size_t sn, dn;
  napi_typedarray_type st, dt;
  char *src = (char *)typed(c, 1, "src", napi_float32_array, &sn, &st);
  int64_t off = size_arg(c, 2, "srcOffset");
  int64_t ss[8], ds[8], shape[8];
  int ns = strides_arg(c, 3, "srcStrides", ss);
  char *dst = (char *)typed(c, 4, "dst", napi_float32_array, &dn, &dt);
  int64_t doff = to_view ? size_arg(c, 5, "dstOffset") : 0;
  int nds = to_view ? strides_arg(c, 6, "dstStrides", ds) : 0;
  int nd = strides_arg(c, to_view ? 7 : 5, "shape", shape);
  auto esize = [](napi_typedarray_type t) -> int {
    switch (t) {
      case napi_int8_array: case napi_uint8_array: case napi_uint8_clamped_array: return 1;
      case napi_int16_array: case napi_uint16_array: return 2;
      case napi_int32_array: case napi_uint32_array: case napi_float32_array: return 4;
      default: return 8;
    }
  };
  if (esize(st) != eb || esize(dt) != eb)
    fail(c, "src and dst must have " + S(eb) + "-byte elements (got " + type_name(st) + " and " + type_name(dt) + ")");
  std::string sz = "shape=" + dims_str(shape, nd) + " srcStrides=" + dims_str(ss, ns) + " srcOffset=" + S(off);
  if (to_view) sz += " dstStrides=" + dims_str(ds, nds) + " dstOffset=" + S(doff);
  if (ns != nd || (to_view && nds != nd)) fail(c, std::string("srcStrides") + (to_view ? ", dstStrides" : "") + " and shape must have the same length (" + sz + ")");
  int64_t total = 1;
  for (int d = 0; d < nd; d++) {
    if (shape[d] < 0) fail(c, "negative dimension (" + sz + ")");
    total *= shape[d];
  }
  if (!to_view && dn != (size_t)total) fail(c, "dst has " + S(dn) + " elements, expected " + S(total) + " (" + sz + ")");
  if (total == 0) return undef(c);
  int64_t lo, hi;
  extent(shape, ss, nd, lo, hi);
  if (off + lo < 0 || off + hi >= (int64_t)sn)
    fail(c, "src has " + S(sn) + " elements, the view spans offsets " + S(off + lo) + ".." + S(off + hi) + " (" + sz + ")");
  if (to_view) {
    extent(shape, ds, nd, lo, hi);
    if (doff + lo < 0 || doff + hi >= (int64_t)dn)
      fail(c, "dst has " + S(dn) + " elements, the view spans offsets " + S(doff + lo) + ".." + S(doff + hi) + " (" + sz + ")");
    for (int d = 0; d < nd; d++)
      if (ds[d] == 0 && shape[d] > 1) fail(c, "dstStrides may not be 0 where the dimension is above 1: the view would write an element twice (" + sz + ")");
    zili::copy_strided_to((int)eb, src + off * eb, ss, dst + doff * eb, ds, shape, nd);
  } else {
    zili::copy_strided((int)eb, src + off * eb, ss, dst, shape, nd);
  }
  return undef(c);
}

napi_value js_copy_strided(Ctx &c) { return copy_strided_impl(c, false); }
napi_value js_copy_strided_to(Ctx &c) { return copy_strided_impl(c, true); }

// ---- fused kernels ----
napi_value js_rmsnorm_fwd(Ctx &c) {
  auto x = f32(c, 0, "x");
  auto w = f32(c, 1, "w");
  double eps = num(c, 2, "eps");
  int64_t rows = size_arg(c, 3, "rows"), dim = size_arg(c, 4, "dim");
  auto y = f32(c, 5, "y");
  auto r = f32(c, 6, "rstd");
  std::string sz = "rows=" + S(rows) + " dim=" + S(dim);
  need_eq(c, x, "x", rows * dim, sz);
  need_eq(c, w, "w", dim, sz);
  need_eq(c, y, "y", rows * dim, sz);
  need_eq(c, r, "rstd", rows, sz);
  zili::rmsnorm_fwd(x.p, w.p, (float)eps, rows, dim, y.p, r.p);
  return undef(c);
}

napi_value js_rmsnorm_bwd(Ctx &c) {
  auto dy = f32(c, 0, "dy");
  auto x = f32(c, 1, "x");
  auto w = f32(c, 2, "w");
  auto r = f32(c, 3, "rstd");
  int64_t rows = size_arg(c, 4, "rows"), dim = size_arg(c, 5, "dim");
  auto dx = f32(c, 6, "dx");
  auto dw = f32(c, 7, "dw");
  std::string sz = "rows=" + S(rows) + " dim=" + S(dim);
  need_eq(c, dy, "dy", rows * dim, sz);
  need_eq(c, x, "x", rows * dim, sz);
  need_eq(c, w, "w", dim, sz);
  need_eq(c, r, "rstd", rows, sz);
  need_eq(c, dx, "dx", rows * dim, sz);
  need_eq(c, dw, "dw", dim, sz);
  zili::rmsnorm_bwd(dy.p, x.p, w.p, r.p, rows, dim, dx.p, dw.p);
  return undef(c);
}

napi_value js_rope_fwd(Ctx &c) {
  auto x = f32(c, 0, "x");
  int64_t B = size_arg(c, 1, "batch"), T = size_arg(c, 2, "seq"), H = size_arg(c, 3, "heads"),
          D = size_arg(c, 4, "headDim"), pos = size_arg(c, 5, "posOffset");
  double theta = num(c, 6, "theta");
  auto o = f32(c, 7, "out");
  bool inv = bool_arg(c, 8, "inverse");
  std::string sz = "batch=" + S(B) + " seq=" + S(T) + " heads=" + S(H) + " headDim=" + S(D);
  if (D % 2) fail(c, "headDim must be even (" + sz + ")");
  need_eq(c, x, "x", B * T * H * D, sz);
  need_eq(c, o, "out", B * T * H * D, sz);
  zili::rope_fwd(x.p, B, T, H, D, pos, theta, o.p, inv);
  return undef(c);
}

napi_value js_swiglu_fwd(Ctx &c) {
  auto g = f32(c, 0, "gate");
  auto u = f32(c, 1, "up");
  auto o = f32(c, 2, "out");
  std::string sz = "gate has " + S(g.n) + " elements";
  need_eq(c, u, "up", g.n, sz);
  need_eq(c, o, "out", g.n, sz);
  zili::swiglu_fwd(g.p, u.p, o.p, g.n);
  return undef(c);
}

napi_value js_swiglu_packed_fwd(Ctx &c) {
  auto gu = f32(c, 0, "gu");
  int64_t rows = size_arg(c, 1, "rows"), f = size_arg(c, 2, "hidden");
  auto o = f32(c, 3, "out");
  std::string sz = "rows=" + S(rows) + " hidden=" + S(f);
  need_eq(c, gu, "gu", rows * 2 * f, sz);
  need_eq(c, o, "out", rows * f, sz);
  zili::swiglu_packed_fwd(gu.p, rows, f, o.p);
  return undef(c);
}

napi_value js_swiglu_packed_bwd(Ctx &c) {
  auto gu = f32(c, 0, "gu");
  auto d = f32(c, 1, "dout");
  int64_t rows = size_arg(c, 2, "rows"), f = size_arg(c, 3, "hidden");
  auto dgu = f32(c, 4, "dgu");
  std::string sz = "rows=" + S(rows) + " hidden=" + S(f);
  need_eq(c, gu, "gu", rows * 2 * f, sz);
  need_eq(c, d, "dout", rows * f, sz);
  need_eq(c, dgu, "dgu", rows * 2 * f, sz);
  zili::swiglu_packed_bwd(gu.p, d.p, rows, f, dgu.p);
  return undef(c);
}

napi_value js_swiglu_bwd(Ctx &c) {
  auto g = f32(c, 0, "gate");
  auto u = f32(c, 1, "up");
  auto d = f32(c, 2, "dout");
  auto dg = f32(c, 3, "dgate");
  auto du = f32(c, 4, "dup");
  std::string sz = "gate has " + S(g.n) + " elements";
  need_eq(c, u, "up", g.n, sz);
  need_eq(c, d, "dout", g.n, sz);
  need_eq(c, dg, "dgate", g.n, sz);
  need_eq(c, du, "dup", g.n, sz);
  zili::swiglu_bwd(g.p, u.p, d.p, dg.p, du.p, g.n);
  return undef(c);
}

void attn_sizes(Ctx &c, int first, int64_t &B, int64_t &T, int64_t &Hq, int64_t &Hkv, int64_t &D, std::string &sz) {
  B = size_arg(c, first, "batch");
  T = size_arg(c, first + 1, "seq");
  Hq = size_arg(c, first + 2, "hq");
  Hkv = size_arg(c, first + 3, "hkv");
  D = size_arg(c, first + 4, "headDim");
  sz = "batch=" + S(B) + " seq=" + S(T) + " hq=" + S(Hq) + " hkv=" + S(Hkv) + " headDim=" + S(D);
  if (Hkv == 0 || Hq % Hkv) fail(c, "hq must be a positive multiple of hkv (" + sz + ")");
}

napi_value js_attention_fwd(Ctx &c) {
  auto q = f32(c, 0, "q");
  auto k = f32(c, 1, "k");
  auto v = f32(c, 2, "v");
  int64_t B, T, Hq, Hkv, D;
  std::string sz;
  attn_sizes(c, 3, B, T, Hq, Hkv, D, sz);
  double scale = num(c, 8, "scale");
  bool causal = bool_arg(c, 9, "causal");
  auto o = f32(c, 10, "out");
  auto lse = f32(c, 11, "lse");
  need_eq(c, q, "q", B * T * Hq * D, sz);
  need_eq(c, k, "k", B * T * Hkv * D, sz);
  need_eq(c, v, "v", B * T * Hkv * D, sz);
  need_eq(c, o, "out", B * T * Hq * D, sz);
  need_eq(c, lse, "lse", B * Hq * T, sz);
  if (B * T * Hq * D == 0) return undef(c);
  zili::attention_fwd(q.p, k.p, v.p, B, T, Hq, Hkv, D, (float)scale, causal, o.p, lse.p);
  return undef(c);
}

napi_value js_attention_bwd(Ctx &c) {
  auto q = f32(c, 0, "q");
  auto k = f32(c, 1, "k");
  auto v = f32(c, 2, "v");
  auto o = f32(c, 3, "out");
  auto lse = f32(c, 4, "lse");
  auto d = f32(c, 5, "dout");
  int64_t B, T, Hq, Hkv, D;
  std::string sz;
  attn_sizes(c, 6, B, T, Hq, Hkv, D, sz);
  double scale = num(c, 11, "scale");
  bool causal = bool_arg(c, 12, "causal");
  auto dq = f32(c, 13, "dq");
  auto dk = f32(c, 14, "dk");
  auto dv = f32(c, 15, "dv");
  int64_t nq = B * T * Hq * D, nk = B * T * Hkv * D;
  need_eq(c, q, "q", nq, sz);
  need_eq(c, k, "k", nk, sz);
  need_eq(c, v, "v", nk, sz);
  need_eq(c, o, "out", nq, sz);
  need_eq(c, lse, "lse", B * Hq * T, sz);
  need_eq(c, d, "dout", nq, sz);
  need_eq(c, dq, "dq", nq, sz);
  need_eq(c, dk, "dk", nk, sz);
  need_eq(c, dv, "dv", nk, sz);
  if (nq == 0) return undef(c);
  zili::attention_bwd(q.p, k.p, v.p, o.p, lse.p, d.p, B, T, Hq, Hkv, D, (float)scale, causal, dq.p, dk.p, dv.p);
  return undef(c);
}

napi_value string(Ctx &c, const char *s);

// attentionKernel([name]): sets the attention kernel when a name is given; returns the one in use.
napi_value js_attention_kernel(Ctx &c) {
  if (c.argc > 0) {
    char name[32];
    size_t len;
    if (napi_get_value_string_utf8(c.env, c.argv[0], name, sizeof name, &len) != napi_ok)
      fail(c, "argument 'name' must be a string");
    try {
      zili::set_attention_kernel(std::string(name, len));
    } catch (ArgError &err) {
      fail(c, err.what());
    }
  }
  return string(c, zili::attention_kernel());
}

napi_value js_attention_kernels(Ctx &c) {
  auto names = zili::attention_kernels();
  napi_value arr;
  napi_create_array_with_length(c.env, names.size(), &arr);
  for (size_t i = 0; i < names.size(); i++) napi_set_element(c.env, arr, (uint32_t)i, string(c, names[i].c_str()));
  return arr;
}

napi_value js_attention_scratch(Ctx &c) {
  int64_t B = size_arg(c, 0, "batch"), T = size_arg(c, 1, "seq"), Hq = size_arg(c, 2, "hq"),
          Hkv = size_arg(c, 3, "hkv"), D = size_arg(c, 4, "headDim");
  bool bwd = bool_arg(c, 5, "backward");
  return number(c, (double)zili::attention_scratch_bytes(B, T, Hq, Hkv, D, bwd));
}

void check_targets(Ctx &c, const Arr<int32_t> &t, int64_t vocab) {
  for (size_t i = 0; i < t.n; i++)
    if (t.p[i] >= vocab) fail(c, "targets[" + S(i) + "] = " + S(t.p[i]) + " is out of range for vocab=" + S(vocab));
}

napi_value js_ce_fwd(Ctx &c) {
  auto l = f32(c, 0, "logits");
  auto t = i32(c, 1, "targets");
  int64_t rows = size_arg(c, 2, "rows"), vocab = size_arg(c, 3, "vocab");
  auto loss = f32(c, 4, "losses");
  auto lse = f32(c, 5, "lse");
  std::string sz = "rows=" + S(rows) + " vocab=" + S(vocab);
  need_eq(c, l, "logits", rows * vocab, sz);
  need_eq(c, t, "targets", rows, sz);
  need_eq(c, loss, "losses", rows, sz);
  need_eq(c, lse, "lse", rows, sz);
  check_targets(c, t, vocab);
  if (vocab == 0) fail(c, "vocab must be positive");
  zili::cross_entropy_fwd(l.p, t.p, rows, vocab, loss.p, lse.p);
  return undef(c);
}

napi_value js_ce_bwd(Ctx &c) {
  auto l = f32(c, 0, "logits");
  auto t = i32(c, 1, "targets");
  auto lse = f32(c, 2, "lse");
  int64_t rows = size_arg(c, 3, "rows"), vocab = size_arg(c, 4, "vocab");
  double scale = num(c, 5, "scale");
  auto d = f32(c, 6, "dlogits");
  std::string sz = "rows=" + S(rows) + " vocab=" + S(vocab);
  need_eq(c, l, "logits", rows * vocab, sz);
  need_eq(c, t, "targets", rows, sz);
  need_eq(c, lse, "lse", rows, sz);
  need_eq(c, d, "dlogits", rows * vocab, sz);
  check_targets(c, t, vocab);
  zili::cross_entropy_bwd(l.p, t.p, lse.p, rows, vocab, (float)scale, d.p);
  return undef(c);
}

napi_value js_adamw(Ctx &c) {
  auto p = f32(c, 0, "param");
  auto g = f32(c, 1, "grad");
  auto m = f32(c, 2, "m");
  auto v = f32(c, 3, "v");
  double lr = num(c, 4, "lr"), b1 = num(c, 5, "beta1"), b2 = num(c, 6, "beta2"), eps = num(c, 7, "eps"),
         wd = num(c, 8, "weightDecay");
  int64_t step = size_arg(c, 9, "step");
  if (step < 1) fail(c, "step is 1-based, got " + S(step));
  std::string sz = "param has " + S(p.n) + " elements";
  need_eq(c, g, "grad", p.n, sz);
  need_eq(c, m, "m", p.n, sz);
  need_eq(c, v, "v", p.n, sz);
  zili::adamw(p.p, g.p, m.p, v.p, p.n, lr, b1, b2, eps, wd, step);
  return undef(c);
}

void check_ids(Ctx &c, const Arr<int32_t> &ids, int64_t rows) {
  for (size_t i = 0; i < ids.n; i++)
    if (ids.p[i] < 0 || ids.p[i] >= rows)
      fail(c, "ids[" + S(i) + "] = " + S(ids.p[i]) + " is out of range for a table of " + S(rows) + " rows");
}

napi_value js_embedding_fwd(Ctx &c) {
  auto t = f32(c, 0, "table");
  auto ids = i32(c, 1, "ids");
  int64_t dim = size_arg(c, 2, "dim");
  auto o = f32(c, 3, "out");
  if (dim == 0 || t.n % dim) fail(c, "table has " + S(t.n) + " elements, not a multiple of dim=" + S(dim));
  need_eq(c, o, "out", ids.n * dim, "ids has " + S(ids.n) + " elements, dim=" + S(dim));
  check_ids(c, ids, t.n / dim);
  zili::embedding_fwd(t.p, ids.p, ids.n, dim, o.p);
  return undef(c);
}

napi_value js_embedding_bwd(Ctx &c) {
  auto d = f32(c, 0, "dout");
  auto ids = i32(c, 1, "ids");
  int64_t dim = size_arg(c, 2, "dim");
  auto t = f32(c, 3, "dtable");
  if (dim == 0 || t.n % dim) fail(c, "dtable has " + S(t.n) + " elements, not a multiple of dim=" + S(dim));
  need_eq(c, d, "dout", ids.n * dim, "ids has " + S(ids.n) + " elements, dim=" + S(dim));
  check_ids(c, ids, t.n / dim);
  zili::embedding_bwd(d.p, ids.p, ids.n, dim, t.p);
  return undef(c);
}

napi_value js_sum_squares(Ctx &c) {
  auto x = f32(c, 0, "x");
  return number(c, zili::sum_squares(x.p, x.n));
}

napi_value js_scale_in_place(Ctx &c) {
  auto x = f32(c, 0, "x");
  zili::scale_in_place(x.p, x.n, (float)num(c, 1, "s"));
  return undef(c);
}

napi_value js_axpy(Ctx &c) {
  double alpha = num(c, 0, "alpha");
  auto x = f32(c, 1, "x");
  auto y = f32(c, 2, "y");
  need_eq(c, y, "y", x.n, "x has " + S(x.n) + " elements");
  zili::axpy((float)alpha, x.p, y.p, x.n);
  return undef(c);
}

napi_value js_peak(Ctx &c) {
  int64_t unit = int_arg(c, 0, "unit");
  int threads = c.argc > 1 ? (int)size_arg(c, 1, "threads") : zili::threads();
  if (threads < 1) fail(c, "threads must be >= 1");
  return number(c, zili::measure_peak_gflops((int)unit, threads, 0.3));
}

napi_value string(Ctx &c, const char *s) {
  napi_value r;
  napi_create_string_utf8(c.env, s, NAPI_AUTO_LENGTH, &r);
  return r;
}

napi_value js_gemm_class(Ctx &c) {
  int64_t m = size_arg(c, 0, "m"), n = size_arg(c, 1, "n"), k = size_arg(c, 2, "k");
  return string(c, zili::gemm_class_name(zili::gemm_class(m, n, k)));
}

napi_value js_set_gemm_choice(Ctx &c) {
  bool bf16 = bool_arg(c, 0, "bf16");
  int64_t cls = int_arg(c, 1, "shapeClass"), engine = int_arg(c, 2, "engine");
  zili::set_gemm_choice(bf16, (int)cls, (int)engine);
  return undef(c);
}

napi_value js_openblas_core(Ctx &c) { return string(c, zili::openblas_core()); }

napi_value js_onednn_bf16(Ctx &c) {
  napi_value r;
  napi_get_boolean(c.env, zili::onednn_bf16_available(), &r);
  return r;
}

napi_value js_threads(Ctx &c) { return number(c, zili::threads()); }
napi_value js_set_threads(Ctx &c) {
  int64_t n = size_arg(c, 0, "n");
  if (n < 1 || n > 1024) fail(c, "thread count must be in 1..1024, got " + S(n));
  zili::set_threads((int)n);
  return undef(c);
}

struct Entry {
  const char *name;
  napi_value (*fn)(Ctx &);
  size_t nargs;
};

const Entry ENTRIES[] = {
    {"sgemm", js_sgemm, 13},
    {"cblasSgemm", js_cblas_sgemm, 13},
    {"dnnlSgemm", js_dnnl_sgemm, 13},
    {"sgemmBatched", js_sgemm_batched, 17},
    {"bgemm", js_bgemm, 13},
    {"bgemmBatched", js_bgemm_batched, 17},
    {"sgemmEngine", js_sgemm_engine, 5},
    {"bgemmImpl", js_bgemm_impl, 5},
    {"castF32ToBf16", js_cast_f32_bf16, 2},
    {"castBf16ToF32", js_cast_bf16_f32, 2},
    {"unary", js_unary, 3},
    {"unaryBackward", js_unary_backward, 5},
    {"binary", js_binary, 7},
    {"reduce", js_reduce, 6},
    {"copyStrided", js_copy_strided, 6},
    {"copyStridedTo", js_copy_strided_to, 8},
    {"rmsnormFwd", js_rmsnorm_fwd, 7},
    {"rmsnormBwd", js_rmsnorm_bwd, 8},
    {"ropeFwd", js_rope_fwd, 9},
    {"swigluFwd", js_swiglu_fwd, 3},
    {"swigluBwd", js_swiglu_bwd, 5},
    {"swigluPackedFwd", js_swiglu_packed_fwd, 4},
    {"swigluPackedBwd", js_swiglu_packed_bwd, 5},
    {"attentionFwd", js_attention_fwd, 12},
    {"attentionBwd", js_attention_bwd, 16},
    {"attentionScratchBytes", js_attention_scratch, 6},
    {"attentionKernel", js_attention_kernel, 0},
    {"attentionKernels", js_attention_kernels, 0},
    {"crossEntropyFwd", js_ce_fwd, 6},
    {"crossEntropyBwd", js_ce_bwd, 7},
    {"adamw", js_adamw, 10},
    {"embeddingFwd", js_embedding_fwd, 4},
    {"embeddingBwd", js_embedding_bwd, 4},
    {"sumSquares", js_sum_squares, 1},
    {"scaleInPlace", js_scale_in_place, 2},
    {"axpy", js_axpy, 3},
    {"threads", js_threads, 0},
    {"measurePeakGflops", js_peak, 1},
    {"gemmClass", js_gemm_class, 3},
    {"setGemmChoice", js_set_gemm_choice, 3},
    {"openblasCore", js_openblas_core, 0},
    {"onednnBf16", js_onednn_bf16, 0},
    {"setThreads", js_set_threads, 1},
};

napi_value dispatch(napi_env env, napi_callback_info info) {
  Ctx c;
  c.env = env;
  void *data;
  napi_get_cb_info(env, info, &c.argc, c.argv, nullptr, &data);
  const Entry *e = (const Entry *)data;
  c.fn = e->name;
  try {
    if (c.argc < e->nargs)
      fail(c, "expects " + S(e->nargs) + " arguments, got " + S(c.argc));
    return e->fn(c);
  } catch (ArgError &err) {
    napi_throw_type_error(env, nullptr, err.what());
  } catch (std::exception &err) {
    std::string msg = std::string(e->name) + ": " + err.what();
    napi_throw_error(env, nullptr, msg.c_str());
  }
  return nullptr;
}

void set_consts(napi_env env, napi_value exports, const char *name, const char *const *names, int n) {
  napi_value obj;
  napi_create_object(env, &obj);
  for (int i = 0; i < n; i++) {
    napi_value v;
    napi_create_int32(env, i, &v);
    napi_set_named_property(env, obj, names[i], v);
  }
  napi_object_freeze(env, obj);
  napi_set_named_property(env, exports, name, obj);
}

napi_value init(napi_env env, napi_value exports) {
  for (const Entry &e : ENTRIES) {
    napi_value f;
    napi_create_function(env, e.name, NAPI_AUTO_LENGTH, dispatch, (void *)&e, &f);
    napi_set_named_property(env, exports, e.name, f);
  }
#define ZILI_OP_NAME(e, name) name,
  static const char *const U[] = {ZILI_UNARY_OPS(ZILI_OP_NAME)};
  static const char *const Bn[] = {ZILI_BINARY_OPS(ZILI_OP_NAME)};
  static const char *const R[] = {ZILI_REDUCE_OPS(ZILI_OP_NAME)};
#undef ZILI_OP_NAME
  set_consts(env, exports, "UNARY", U, zili::U_COUNT);
  set_consts(env, exports, "BINARY", Bn, zili::B_COUNT);
  set_consts(env, exports, "REDUCE", R, zili::R_COUNT);
  zili::threads();
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
