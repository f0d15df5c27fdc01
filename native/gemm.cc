// GEMM front ends for the zili CPU addon: f32 GEMM from OpenBLAS (cblas_sgemm) or oneDNN
// (dnnl_sgemm), and bf16 x bf16 -> f32 GEMM through oneDNN's matmul primitive (AVX512-BF16 / AMX
// brgemm kernels) or, where that is missing or slower, by widening to f32. Which engine serves
// which shape class is decided by measurement in src/backend/cpu/gemm-tune.ts and handed in with
// set_gemm_choice; this file only classifies shapes and dispatches. The libraries do the arithmetic; this file only adapts row-major, strided and
// batched calls to them, caches oneDNN primitives per shape, and holds the f32 <-> bf16 casts (a
// few lines of integer rounding that no library exposes on plain arrays).
#include "zili.h"

#include <cblas.h>
#include <dnnl.hpp>
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <vector>

namespace zili {

static int g_threads = 0;

int threads() {
  if (g_threads == 0) {
    int n = 2;
    const char *e = std::getenv("ZILI_THREADS");
    if (e && std::atoi(e) > 0) n = std::atoi(e);
    set_threads(n);
  }
  return g_threads;
}

void set_threads(int n) {
  if (n < 1) n = 1;
  g_threads = n;
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

const char *sgemm_engine_name(SgemmEngine e) {
  switch (e) {
    case SgemmEngine::OpenBLAS: return "openblas";
    case SgemmEngine::OneDNN: return "onednn";
    default: return "auto";
  }
}

int gemm_class(int64_t m, int64_t n, int64_t k) {
  if ((double)m * n * k < 256.0 * 256 * 256) return GEMM_SMALL;
  if (std::min(m, std::min(n, k)) < 512) return GEMM_THIN;
  return GEMM_LARGE;
}

const char *gemm_class_name(int cls) {
  static const char *const names[GEMM_CLASSES] = {"small", "thin", "large"};
  return cls >= 0 && cls < GEMM_CLASSES ? names[cls] : "?";
}

// The measured winner per shape class (src/backend/cpu/gemm-tune.ts); OpenBLAS and oneDNN-bf16
// until a choice is set. ZILI_SGEMM=openblas|onednn overrides the f32 choice.
static SgemmEngine g_sgemm_choice[GEMM_CLASSES] = {SgemmEngine::OpenBLAS, SgemmEngine::OpenBLAS, SgemmEngine::OpenBLAS};
static BgemmEngine g_bgemm_choice[GEMM_CLASSES] = {BgemmEngine::OneDNN, BgemmEngine::OneDNN, BgemmEngine::OneDNN};

void set_gemm_choice(bool bf16, int cls, int engine) {
  if (cls < 0 || cls >= GEMM_CLASSES) throw ArgError("setGemmChoice: unknown shape class " + std::to_string(cls));
  if (bf16) {
    if (engine != (int)BgemmEngine::OneDNN && engine != (int)BgemmEngine::Widen)
      throw ArgError("setGemmChoice: unknown bf16 engine " + std::to_string(engine));
    g_bgemm_choice[cls] = (BgemmEngine)engine;
  } else {
    if (engine != (int)SgemmEngine::OpenBLAS && engine != (int)SgemmEngine::OneDNN)
      throw ArgError("setGemmChoice: unknown f32 engine " + std::to_string(engine));
    g_sgemm_choice[cls] = (SgemmEngine)engine;
  }
}

SgemmEngine sgemm_pick(bool, bool, int64_t m, int64_t n, int64_t k) {
  static int forced = -1;
  if (forced < 0) {
    const char *e = std::getenv("ZILI_SGEMM");
    forced = 0;
    if (e && !std::strcmp(e, "openblas")) forced = 1;
    if (e && !std::strcmp(e, "onednn")) forced = 2;
  }
  if (forced == 1) return SgemmEngine::OpenBLAS;
  if (forced == 2) return SgemmEngine::OneDNN;
  return g_sgemm_choice[gemm_class(m, n, k)];
}

const char *openblas_core() { return openblas_get_corename(); }

static void scale_c(int64_t m, int64_t n, float beta, float *c, int64_t ldc) {
  for (int64_t i = 0; i < m; i++) {
    float *r = c + i * ldc;
    if (beta == 0.0f)
      for (int64_t j = 0; j < n; j++) r[j] = 0.0f;
    else
      for (int64_t j = 0; j < n; j++) r[j] *= beta;
  }
}

void sgemm(SgemmEngine e, bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
           int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  threads();
  if (k == 0 || alpha == 0.0f) {
    scale_c(m, n, beta, c, ldc);
    return;
  }
  if (e == SgemmEngine::Auto) e = sgemm_pick(ta, tb, m, n, k);
  if (e == SgemmEngine::OneDNN) {
    dnnl_status_t st = dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    if (st != dnnl_success) throw std::runtime_error("sgemm: dnnl_sgemm failed with status " + std::to_string((int)st));
    return;
  }
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k,
              alpha, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
}

void sgemm_batched(int64_t batch, bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                   const float *a, int64_t sa, int64_t lda, const float *b, int64_t sb, int64_t ldb,
                   float beta, float *c, int64_t sc, int64_t ldc) {
  if (batch == 0 || m == 0 || n == 0) return;
  // Many small products (attention heads): run the batch in parallel, one single-threaded
  // OpenBLAS call per item; large products: one call at a time with all threads.
  double work = (double)m * n * k;
  int nt = threads();
  if (batch >= nt && work < 256.0 * 256 * 256 && k > 0) {
    openblas_set_num_threads(1);
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (int64_t i = 0; i < batch; i++)
      cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)m, (int)n,
                  (int)k, alpha, a + i * sa, (int)lda, b + i * sb, (int)ldb, beta, c + i * sc, (int)ldc);
    openblas_set_num_threads(nt);
    return;
  }
  for (int64_t i = 0; i < batch; i++)
    sgemm(SgemmEngine::Auto, ta, tb, m, n, k, alpha, a + i * sa, lda, b + i * sb, ldb, beta, c + i * sc, ldc);
}

// ---- bf16 GEMM through oneDNN matmul ----
using namespace dnnl;

struct MatmulKey {
  int64_t v[14];
  bool operator<(const MatmulKey &o) const { return std::memcmp(v, o.v, sizeof v) < 0; }
};

static engine &cpu_engine() {
  static engine eng(engine::kind::cpu, 0);
  return eng;
}
static stream &cpu_stream() {
  static stream s(cpu_engine());
  return s;
}

// Builds (or fetches) the matmul for [batch] x (op(A) m x k) * (op(B) k x n) -> C m x n, with
// the given element strides. Batch stride 0 = broadcast (batch dim 1 in oneDNN terms).
struct CachedMatmul {
  matmul::primitive_desc pd;
  matmul prim;
};

static CachedMatmul &get_matmul(int64_t batch, bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                          int64_t sa, int64_t lda, int64_t sb, int64_t ldb, float beta, int64_t sc, int64_t ldc) {
  static std::map<MatmulKey, std::unique_ptr<CachedMatmul>> cache;
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  MatmulKey key;
  int32_t ab, bb;
  std::memcpy(&ab, &alpha, 4);
  std::memcpy(&bb, &beta, 4);
  int64_t vals[14] = {batch, ta, tb, m, n, k, ab, sa, lda, sb, ldb, bb, sc, ldc};
  std::memcpy(key.v, vals, sizeof vals);
  auto it = cache.find(key);
  if (it != cache.end()) return *it->second;
  memory::dims ad, as, bd, bs, cd, cs;
  int64_t ba = (batch > 1 && sa == 0) ? 1 : batch, bbt = (batch > 1 && sb == 0) ? 1 : batch;
  if (batch > 1) {
    ad = {ba, m, k};
    as = {sa == 0 ? m * k : sa, ta ? 1 : lda, ta ? lda : 1};
    bd = {bbt, k, n};
    bs = {sb == 0 ? k * n : sb, tb ? 1 : ldb, tb ? ldb : 1};
    cd = {batch, m, n};
    cs = {sc, ldc, 1};
  } else {
    ad = {m, k};
    as = {ta ? 1 : lda, ta ? lda : 1};
    bd = {k, n};
    bs = {tb ? 1 : ldb, tb ? ldb : 1};
    cd = {m, n};
    cs = {ldc, 1};
  }
  memory::desc amd(ad, memory::data_type::bf16, as), bmd(bd, memory::data_type::bf16, bs),
      cmd(cd, memory::data_type::f32, cs);
  primitive_attr attr;
  if (alpha != 1.0f) attr.set_output_scales(0, {alpha});
  if (beta != 0.0f) {
    post_ops po;
    po.append_sum(beta);
    attr.set_post_ops(po);
  }
  auto pd = matmul::primitive_desc(matmul::desc(amd, bmd, cmd), attr, cpu_engine());
  auto p = std::make_unique<CachedMatmul>(CachedMatmul{pd, matmul(pd)});
  CachedMatmul &ref = *p;
  if (cache.size() > 4096) cache.clear();
  cache.emplace(key, std::move(p));
  return ref;
}

// oneDNN 2.x has bf16 matmul only from avx512_core up. Without it (AVX2-only CPUs, an ISA cap)
// the bf16 GEMM widens its operands to f32 and runs the f32 GEMM: the products of bf16 values are
// exact in f32 and the accumulation is f32 either way, so results match; only speed differs.
bool onednn_bf16_available() {
  static int ok = -1;
  if (ok < 0) {
    try {
      memory::desc amd({8, 8}, memory::data_type::bf16, memory::dims{8, 1});
      memory::desc cmd({8, 8}, memory::data_type::f32, memory::dims{8, 1});
      auto pd = matmul::primitive_desc(matmul::desc(amd, amd, cmd), cpu_engine());
      ok = 1;
    } catch (dnnl::error &) {
      ok = 0;
    }
  }
  return ok == 1;
}

static void bgemm_widened(int64_t batch, bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                          const uint16_t *a, int64_t sa, int64_t lda, const uint16_t *b, int64_t sb, int64_t ldb,
                          float beta, float *c, int64_t sc, int64_t ldc) {
  // Extent of one operand item in elements (rows x leading dimension, trimmed to the last row).
  int64_t arows = ta ? k : m, acols = ta ? m : k, brows = tb ? n : k, bcols = tb ? k : n;
  int64_t aext = (arows - 1) * lda + acols, bext = (brows - 1) * ldb + bcols;
  std::vector<float> af((size_t)aext), bf((size_t)bext);
  const uint16_t *pa = nullptr, *pb = nullptr;
  for (int64_t i = 0; i < batch; i++) {
    const uint16_t *ai = a + i * sa, *bi = b + i * sb;
    if (ai != pa) { cast_bf16_f32(ai, af.data(), (size_t)aext); pa = ai; }
    if (bi != pb) { cast_bf16_f32(bi, bf.data(), (size_t)bext); pb = bi; }
    sgemm(SgemmEngine::Auto, ta, tb, m, n, k, alpha, af.data(), lda, bf.data(), ldb, beta, c + i * sc, ldc);
  }
}

const char *bgemm_impl(bool ta, bool tb, int64_t m, int64_t n, int64_t k) {
  static std::string s;
  if (!onednn_bf16_available() || g_bgemm_choice[gemm_class(m, n, k)] == BgemmEngine::Widen) {
    s = std::string("f32-widen:") + sgemm_engine_name(sgemm_pick(ta, tb, m, n, k));
    return s.c_str();
  }
  memory::desc amd({m, k}, memory::data_type::bf16, memory::dims{ta ? 1 : k, ta ? m : 1});
  memory::desc bmd({k, n}, memory::data_type::bf16, memory::dims{tb ? 1 : n, tb ? k : 1});
  memory::desc cmd({m, n}, memory::data_type::f32, memory::dims{n, 1});
  auto pd = matmul::primitive_desc(matmul::desc(amd, bmd, cmd), cpu_engine());
  s = pd.impl_info_str();
  return s.c_str();
}

void bgemm_batched(int64_t batch, bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                   const uint16_t *a, int64_t sa, int64_t lda, const uint16_t *b, int64_t sb,
                   int64_t ldb, float beta, float *c, int64_t sc, int64_t ldc) {
  if (batch == 0 || m == 0 || n == 0) return;
  threads();
  if (k == 0 || alpha == 0.0f) {
    for (int64_t i = 0; i < batch; i++) scale_c(m, n, beta, c + i * sc, ldc);
    return;
  }
  if (!onednn_bf16_available() || g_bgemm_choice[gemm_class(m, n, k)] == BgemmEngine::Widen) {
    bgemm_widened(batch, ta, tb, m, n, k, alpha, a, sa, lda, b, sb, ldb, beta, c, sc, ldc);
    return;
  }
  try {
    bool both_bcast = batch > 1 && sa == 0 && sb == 0;
    bool c_bcast = batch > 1 && sc == 0;
    if (both_bcast || c_bcast) {
      // oneDNN needs C's batch to be the broadcast of A's and B's: run the items one by one.
      for (int64_t i = 0; i < batch; i++)
        bgemm_batched(1, ta, tb, m, n, k, alpha, a + i * sa, 0, lda, b + i * sb, 0, ldb, beta, c + i * sc, 0, ldc);
      return;
    }
    CachedMatmul &cm_ = get_matmul(batch, ta, tb, m, n, k, alpha, sa, lda, sb, ldb, beta, sc, ldc);
    auto &pd = cm_.pd;
    auto &mm = cm_.prim;
    memory am(pd.src_desc(), cpu_engine(), const_cast<uint16_t *>(a));
    memory bm(pd.weights_desc(), cpu_engine(), const_cast<uint16_t *>(b));
    memory cm(pd.dst_desc(), cpu_engine(), c);
    mm.execute(cpu_stream(), {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
    cpu_stream().wait();
  } catch (dnnl::error &e) {
    throw std::runtime_error(std::string("bgemm: oneDNN matmul failed: ") + e.what());
  }
}

// Round to nearest even; NaN stays NaN (quiet bit forced so truncation cannot make it inf).
void cast_f32_bf16(const float *src, uint16_t *dst, size_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (size_t i = 0; i < n; i++) {
    uint32_t u;
    std::memcpy(&u, src + i, 4);
    uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
    bool nan = (u & 0x7FFFFFFFu) > 0x7F800000u;
    dst[i] = nan ? (uint16_t)((u >> 16) | 0x40u) : (uint16_t)rounded;
  }
}

void cast_bf16_f32(const uint16_t *src, float *dst, size_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (size_t i = 0; i < n; i++) {
    uint32_t u = (uint32_t)src[i] << 16;
    std::memcpy(dst + i, &u, 4);
  }
}

}  // namespace zili
