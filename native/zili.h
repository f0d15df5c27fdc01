// Declarations shared by the zili CPU addon's translation units: the GEMM front ends (OpenBLAS,
// oneDNN), the fused training kernels and the flash-style attention. Plain C++ functions on raw
// pointers; addon.cc validates the JS arguments and calls these.
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "ops.def"

namespace zili {

// Thrown for bad arguments; addon.cc turns it into a JS TypeError.
struct ArgError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

int threads();
void set_threads(int n);

// ---- GEMM (gemm.cc) ----
enum class SgemmEngine { Auto = 0, OpenBLAS = 1, OneDNN = 2 };
const char *sgemm_engine_name(SgemmEngine e);
SgemmEngine sgemm_pick(bool ta, bool tb, int64_t m, int64_t n, int64_t k);
// bf16 GEMM engines: oneDNN's bf16 matmul, or widening both operands to f32 and the f32 GEMM.
enum class BgemmEngine { OneDNN = 1, Widen = 2 };
// Shape classes the engine choice is made for: small (m*n*k < 256^3), thin (some dim < 512), large.
enum GemmClass { GEMM_SMALL, GEMM_THIN, GEMM_LARGE, GEMM_CLASSES };
int gemm_class(int64_t m, int64_t n, int64_t k);
const char *gemm_class_name(int cls);
// Sets the engine for a shape class: f32 (SgemmEngine) or bf16 (BgemmEngine) as an int.
void set_gemm_choice(bool bf16, int cls, int engine);
// True when oneDNN has a bf16 matmul for this CPU (avx512_core and up, within ONEDNN_MAX_CPU_ISA).
bool onednn_bf16_available();
// The kernel family OpenBLAS selected at load (its own detection or OPENBLAS_CORETYPE).
const char *openblas_core();
void sgemm(SgemmEngine e, bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
           int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc);
void sgemm_batched(int64_t batch, bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                   const float *a, int64_t sa, int64_t lda, const float *b, int64_t sb, int64_t ldb,
                   float beta, float *c, int64_t sc, int64_t ldc);
void bgemm_batched(int64_t batch, bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                   const uint16_t *a, int64_t sa, int64_t lda, const uint16_t *b, int64_t sb,
                   int64_t ldb, float beta, float *c, int64_t sc, int64_t ldc);
// Name of the oneDNN implementation a 2D bf16 matmul of this shape dispatches to.
const char *bgemm_impl(bool ta, bool tb, int64_t m, int64_t n, int64_t k);
void cast_f32_bf16(const float *src, uint16_t *dst, size_t n);
void cast_bf16_f32(const uint16_t *src, float *dst, size_t n);

// ---- elementwise and fused kernels (kernels.cc) ----
#define ZILI_OP_ENUM(e, name) e,
enum Unary { ZILI_UNARY_OPS(ZILI_OP_ENUM) U_COUNT };
enum Binary { ZILI_BINARY_OPS(ZILI_OP_ENUM) B_COUNT };
enum Reduce { ZILI_REDUCE_OPS(ZILI_OP_ENUM) R_COUNT };
#undef ZILI_OP_ENUM

void unary(int op, const float *x, float *out, size_t n);
void unary_backward(int op, const float *x, const float *y, const float *dy, float *dx, size_t n);
// Strides are in elements, ndim <= 8; out is contiguous with shape `shape`.
void binary(int op, const float *a, const int64_t *as, const float *b, const int64_t *bs, float *out,
            const int64_t *shape, int ndim);
void reduce(int op, const float *x, int64_t outer, int64_t axis, int64_t inner, float *out);
void copy_strided(int elem_bytes, const void *src, const int64_t *ss, void *dst, const int64_t *shape,
                  int ndim);
// The same into a strided view of dst (ds: dst strides in elements; the view must not overlap itself).
void copy_strided_to(int elem_bytes, const void *src, const int64_t *ss, void *dst, const int64_t *ds,
                     const int64_t *shape, int ndim);
void rmsnorm_fwd(const float *x, const float *w, float eps, int64_t rows, int64_t dim, float *y,
                 float *rstd);
void rmsnorm_bwd(const float *dy, const float *x, const float *w, const float *rstd, int64_t rows,
                 int64_t dim, float *dx, float *dw);
void rope_fwd(const float *x, int64_t batch, int64_t seq, int64_t heads, int64_t hd, int64_t pos0,
              double theta, float *out, bool inverse);
void swiglu_fwd(const float *g, const float *u, float *out, size_t n);
void swiglu_bwd(const float *g, const float *u, const float *dout, float *dg, float *du, size_t n);
// gu [rows, 2f] = [gate | up] (the fused gate/up GEMM's output); out [rows, f]; dgu like gu.
void swiglu_packed_fwd(const float *gu, int64_t rows, int64_t f, float *out);
void swiglu_packed_bwd(const float *gu, const float *dout, int64_t rows, int64_t f, float *dgu);
void cross_entropy_fwd(const float *logits, const int32_t *targets, int64_t rows, int64_t vocab,
                       float *losses, float *lse);
void cross_entropy_bwd(const float *logits, const int32_t *targets, const float *lse, int64_t rows,
                       int64_t vocab, float scale, float *dlogits);
void adamw(float *p, const float *g, float *m, float *v, size_t n, double lr, double b1, double b2,
           double eps, double wd, int64_t step);
void embedding_fwd(const float *table, const int32_t *ids, int64_t n, int64_t dim, float *out);
void embedding_bwd(const float *dout, const int32_t *ids, int64_t n, int64_t dim, float *dtable);
double sum_squares(const float *x, size_t n);
// Compute units whose peak is measured (peak.cc): f32 FMA (AVX/AVX-512/NEON, whatever the build
// targets), AVX512-BF16 dot products (vdpbf16ps), AMX bf16 tiles (tdpbf16ps).
enum PeakUnit { UNIT_F32_FMA, UNIT_AVX512_BF16, UNIT_AMX_BF16, UNIT_COUNT };
/** measured peak GFLOP/s over nthreads threads of one unit; 0 when this CPU (or build) lacks it */
double measure_peak_gflops(int unit, int nthreads, double seconds);
void scale_in_place(float *x, size_t n, float s);
void axpy(float alpha, const float *x, float *y, size_t n);

// ---- attention (attention.cc) ----
void attention_fwd(const float *q, const float *k, const float *v, int64_t B, int64_t T, int64_t Hq,
                   int64_t Hkv, int64_t D, float scale, bool causal, float *out, float *lse);
void attention_bwd(const float *q, const float *k, const float *v, const float *out, const float *lse,
                   const float *dout, int64_t B, int64_t T, int64_t Hq, int64_t Hkv, int64_t D,
                   float scale, bool causal, float *dq, float *dk, float *dv);
// Bytes of scratch memory one call allocates (all threads together).
size_t attention_scratch_bytes(int64_t B, int64_t T, int64_t Hq, int64_t Hkv, int64_t D, bool backward);
// The attention kernels this CPU can run, widest first ("avx512", "avx2", "portable"); the one in
// use (the first of them unless set); set_attention_kernel throws ArgError for a name not listed.
std::vector<std::string> attention_kernels();
const char *attention_kernel();
void set_attention_kernel(const std::string &name);

// The polynomial core of fast_exp, shared by the scalar version below and the 16-lane version in
// attention.cc (T = float or a GCC vector of floats): for xc in [-87, 88] returns p and n with
// exp(xc) = p * 2^n. Rounds n to nearest by adding and removing 1.5 * 2^23 (vectorises, unlike floorf).
template <typename T>
static inline T exp_poly(T xc, T &n) {
  n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  T r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  T p = r * 1.9875691500E-4f + 1.3981999507E-3f;
  p = p * r + 8.3334519073E-3f;
  p = p * r + 4.1665795894E-2f;
  p = p * r + 1.6666665459E-1f;
  p = p * r + 5.0000001201E-1f;
  return p * r * r + r + 1.0f;
}

// Fast vectorisable exp for the fused kernels (relative error ~2e-7); x <= -88 gives 0.
static inline float fast_exp(float x) {
  float xc = x > 88.0f ? 88.0f : x;
  const float lo = xc;
  xc = xc < -87.0f ? -87.0f : xc;
  float n;
  const float p = exp_poly(xc, n);
  int32_t bits = ((int32_t)n + 127) << 23;
  float s;
  __builtin_memcpy(&s, &bits, 4);
  return lo < -87.0f ? 0.0f : p * s;
}

}  // namespace zili
