// cuBLASLt GEMM (see gemm_lt.h for the contract). Host code only: plans are built once per
// (shape, layout, type, alignment) and replayed. Reference for the row-major mapping: D^T =
// op(B)^T op(A)^T, so cuBLASLt's "A" is our B and its "B" is our A, with m = N, n = M.
#ifdef DSEEK_HAVE_CUDA
#include "dseek/ops/cuda/gemm_lt.h"

#include <cublasLt.h>          // cublasLt*
#include <cuda_runtime_api.h>  // cudaMalloc, cudaMemset2DAsync

#include <map>    // plan cache
#include <tuple>  // cache key

#include "dseek/core/error.h"           // DSEEK_CHECK
#include "dseek/ops/cuda/cuda_check.h"  // DSEEK_CUDA_CHECK, DSEEK_CUBLAS_CHECK

namespace dseek::cuda {

// ---------------------------------------------------------------------------------------------
// constants

namespace {

constexpr uint32_t kMaxAlign = 256;  // cuBLASLt's default assumption for every pointer

uint32_t ptr_align(const void* p) {
  const uintptr_t a = (uintptr_t)p;
  if (a == 0) return kMaxAlign;
  const uintptr_t low = a & (~a + 1);  // lowest set bit
  return low >= kMaxAlign ? kMaxAlign : (uint32_t)low;
}

using PlanKey = std::tuple<bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int,
                           bool, bool, uint32_t, uint32_t, uint32_t, uint32_t>;

struct Plan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulAlgo_t algo{};
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// GemmLt

struct GemmLt::Impl {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
  std::map<PlanKey, Plan> plans;

  ~Impl() {
    for (auto& [k, p] : plans) {
      cublasLtMatrixLayoutDestroy(p.a);
      cublasLtMatrixLayoutDestroy(p.b);
      cublasLtMatrixLayoutDestroy(p.d);
      cublasLtMatmulDescDestroy(p.op);
    }
    if (workspace) cudaFree(workspace);
    if (handle) cublasLtDestroy(handle);
  }

  const Plan& plan_for(const GemmLtParams& p) {
    const bool has_bias = p.bias != nullptr;
    const PlanKey key{p.trans_a,
                      p.trans_b,
                      p.M,
                      p.N,
                      p.K,
                      p.lda,
                      p.ldb,
                      p.ldd,
                      (int)p.d_type,
                      p.beta != 0.0f,
                      has_bias,
                      ptr_align(p.A),
                      ptr_align(p.B),
                      ptr_align(p.D),
                      ptr_align(p.bias)};
    auto it = plans.find(key);
    if (it != plans.end()) return it->second;

    const cudaDataType_t dt = p.d_type == GemmOut::F32 ? CUDA_R_32F : CUDA_R_16BF;
    Plan pl;
    DSEEK_CUBLAS_CHECK(cublasLtMatmulDescCreate(&pl.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t ta = p.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;  // on cuBLASLt's A = B
    const cublasOperation_t tb = p.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;  // on cuBLASLt's B = A
    DSEEK_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(pl.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
    DSEEK_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(pl.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
    if (has_bias) {
      const cublasLtEpilogue_t ep = CUBLASLT_EPILOGUE_BIAS;
      DSEEK_CUBLAS_CHECK(
          cublasLtMatmulDescSetAttribute(pl.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep, sizeof(ep)));
      const int32_t bt = dt;
      DSEEK_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(pl.op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
                                                        &bt, sizeof(bt)));
    }
    // column-major storage shapes: cuBLASLt A is m x k (or k x m when transposed), etc.
    const int64_t m = p.N, n = p.M, k = p.K;
    DSEEK_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&pl.a, CUDA_R_16BF, ta == CUBLAS_OP_N ? m : k,
                                                  ta == CUBLAS_OP_N ? k : m, p.ldb));
    DSEEK_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&pl.b, CUDA_R_16BF, tb == CUBLAS_OP_N ? k : n,
                                                  tb == CUBLAS_OP_N ? n : k, p.lda));
    DSEEK_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&pl.d, dt, m, n, p.ldd));

    cublasLtMatmulPreference_t pref = nullptr;
    DSEEK_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    const uint64_t ws = workspace_bytes;
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                         sizeof(ws));
    const uint32_t al_a = std::get<12>(key), al_b = std::get<11>(key), al_d = std::get<13>(key),
                   al_bias = std::get<14>(key);
    // split-K partial sums only in fp32 workspace: the in-place scheme (and the output-type
    // one) would reduce a bf16 D in bf16 (seen on the H100: errors of several bf16 ulps)
    const uint32_t red = CUBLASLT_REDUCTION_SCHEME_NONE | CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &red,
                                         sizeof(red));
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a,
                                         sizeof(al_a));
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b,
                                         sizeof(al_b));
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_d,
                                         sizeof(al_d));
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_d,
                                         sizeof(al_d));
    if (has_bias) {
      // no dedicated bias alignment preference: a bias less aligned than D lowers D's
      const uint32_t al = al_bias < al_d ? al_bias : al_d;
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al,
                                           sizeof(al));
    }
    cublasLtMatmulHeuristicResult_t res{};
    int found = 0;
    const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(handle, pl.op, pl.a, pl.b, pl.d, pl.d,
                                                             pref, 1, &res, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (st != CUBLAS_STATUS_SUCCESS || found == 0) {
      cublasLtMatrixLayoutDestroy(pl.a);
      cublasLtMatrixLayoutDestroy(pl.b);
      cublasLtMatrixLayoutDestroy(pl.d);
      cublasLtMatmulDescDestroy(pl.op);
      fail(
          "gemm_lt: cuBLASLt has no algorithm for M={} N={} K={} trans_a={} trans_b={} lda={} "
          "ldb={} ldd={} D={} bias={} (status {}); align rows to 16 bytes",
          p.M, p.N, p.K, p.trans_a, p.trans_b, p.lda, p.ldb, p.ldd,
          p.d_type == GemmOut::F32 ? "f32" : "bf16", has_bias, cublasLtGetStatusName(st));
    }
    pl.algo = res.algo;
    return plans.emplace(key, pl).first->second;
  }
};

GemmLt::GemmLt(size_t workspace_bytes) : impl_(std::make_unique<Impl>()) {
  DSEEK_CUBLAS_CHECK(cublasLtCreate(&impl_->handle));
  impl_->workspace_bytes = workspace_bytes;
  if (workspace_bytes) DSEEK_CUDA_CHECK(cudaMalloc(&impl_->workspace, workspace_bytes));
}

GemmLt::~GemmLt() = default;

size_t GemmLt::plans_cached() const {
  return impl_->plans.size();
}

void GemmLt::run(const GemmLtParams& p, cudaStream_t stream) {
  DSEEK_CHECK(p.M >= 0 && p.N >= 0 && p.K >= 0, "gemm_lt: negative size M={} N={} K={}", p.M, p.N,
              p.K);
  if (p.M == 0 || p.N == 0) return;
  const size_t esz = p.d_type == GemmOut::F32 ? 4 : 2;
  DSEEK_CHECK(p.ldd >= p.N, "gemm_lt: ldd {} < N {}", p.ldd, p.N);
  DSEEK_CHECK(p.lda >= (p.trans_a ? p.M : p.K) && p.ldb >= (p.trans_b ? p.K : p.N),
              "gemm_lt: lda {} or ldb {} shorter than a row (M={} N={} K={} trans_a={} "
              "trans_b={})",
              p.lda, p.ldb, p.M, p.N, p.K, p.trans_a, p.trans_b);
  if (p.K == 0) {  // empty contraction: D = beta D
    DSEEK_CHECK(!p.bias, "gemm_lt: K = 0 with a bias is not supported");
    if (p.beta == 0.0f)
      DSEEK_CUDA_CHECK(cudaMemset2DAsync(p.D, p.ldd * esz, 0, p.N * esz, p.M, stream));
    DSEEK_CHECK(p.beta == 0.0f || p.beta == 1.0f, "gemm_lt: K = 0 needs beta 0 or 1, got {}",
                p.beta);
    return;
  }
  const Plan& pl = impl_->plan_for(p);
  if (p.bias)
    DSEEK_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(pl.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                      &p.bias, sizeof(p.bias)));
  DSEEK_CUBLAS_CHECK(cublasLtMatmul(impl_->handle, pl.op, &p.alpha, p.B, pl.a, p.A, pl.b, &p.beta,
                                    p.D, pl.d, p.D, pl.d, &pl.algo, impl_->workspace,
                                    impl_->workspace_bytes, stream));
}

// ---------------------------------------------------------------------------------------------
// the three layouts

namespace {
void run_layout(GemmLt& g, bool trans_a, bool trans_b, void* D, int64_t ldd, GemmOut d_type,
                const bf16_t* A, int64_t lda, const bf16_t* B, int64_t ldb, int64_t M, int64_t N,
                int64_t K, float beta, cudaStream_t stream) {
  g.run({.D = D,
         .ldd = ldd,
         .d_type = d_type,
         .A = A,
         .lda = lda,
         .trans_a = trans_a,
         .B = B,
         .ldb = ldb,
         .trans_b = trans_b,
         .M = M,
         .N = N,
         .K = K,
         .beta = beta},
        stream);
}
}  // namespace

void gemm_lt_nt(GemmLt& g, void* D, int64_t ldd, GemmOut d_type, const bf16_t* A, int64_t lda,
                const bf16_t* B, int64_t ldb, int64_t M, int64_t N, int64_t K, float beta,
                cudaStream_t stream) {
  run_layout(g, false, true, D, ldd, d_type, A, lda, B, ldb, M, N, K, beta, stream);
}

void gemm_lt_nn(GemmLt& g, void* D, int64_t ldd, GemmOut d_type, const bf16_t* A, int64_t lda,
                const bf16_t* B, int64_t ldb, int64_t M, int64_t N, int64_t K, float beta,
                cudaStream_t stream) {
  run_layout(g, false, false, D, ldd, d_type, A, lda, B, ldb, M, N, K, beta, stream);
}

void gemm_lt_tn(GemmLt& g, void* D, int64_t ldd, GemmOut d_type, const bf16_t* A, int64_t lda,
                const bf16_t* B, int64_t ldb, int64_t M, int64_t N, int64_t K, float beta,
                cudaStream_t stream) {
  run_layout(g, true, false, D, ldd, d_type, A, lda, B, ldb, M, N, K, beta, stream);
}

}  // namespace dseek::cuda
#endif  // DSEEK_HAVE_CUDA
