// cuBLAS behind kernels/cuda/vendor/cublas.h. Row-major C = A B is computed as the column-major
// C^T = B^T A^T, so no operand is transposed in memory: an operand whose column stride is 1 is
// its own transpose in column-major terms (CUBLAS_OP_N), one whose row stride is 1 is read with
// CUBLAS_OP_T.
#include "kernels/cuda/vendor/cublas.h"

#include <cublas_v2.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdlib>
#include <string>

#include "tensor/error.h"

namespace cortex::kernels::cuda::vendor {
namespace {

std::atomic<int> g_tf32{-1};  // -1: follow CORTEX_TF32

// One handle per host thread (a handle must not be used by two threads at once); never destroyed,
// since destroying it after the CUDA context is gone at exit fails.
cublasHandle_t handle() {
  thread_local cublasHandle_t h = [] {
    cublasHandle_t x = nullptr;
    const cublasStatus_t s = cublasCreate(&x);
    CORTEX_CHECK(s == CUBLAS_STATUS_SUCCESS, "cuBLAS: cublasCreate failed: ", cublasGetStatusString(s));
    return x;
  }();
  return h;
}

struct Operand {
  cublasOperation_t op = CUBLAS_OP_N;
  int ld = 1;
};

// The matrix X (r x c, element (i, j) at i * rs + j * cs) as the operand op(X') = X^T of a
// column-major GEMM; false when neither stride is 1 (a size-1 dim may have any stride).
bool transposed(int64_t r, int64_t c, int64_t rs, int64_t cs, Operand& o) {
  int64_t ld = 0;
  if (cs == 1 || c == 1) {  // memory is X^T column-major with ld rs
    o.op = CUBLAS_OP_N;
    ld = r == 1 ? std::max<int64_t>(c, 1) : rs;
    if (ld < std::max<int64_t>(c, 1)) return false;
  } else if (rs == 1 || r == 1) {  // memory is X column-major with ld cs
    o.op = CUBLAS_OP_T;
    ld = c == 1 ? std::max<int64_t>(r, 1) : cs;
    if (ld < std::max<int64_t>(r, 1)) return false;
  } else {
    return false;
  }
  if (ld > INT_MAX) return false;
  o.ld = static_cast<int>(ld);
  return true;
}

}  // namespace

void set_tf32(bool on) { g_tf32.store(on ? 1 : 0); }

bool tf32() {
  const int v = g_tf32.load();
  if (v >= 0) return v == 1;
  const char* e = std::getenv("CORTEX_TF32");
  return e != nullptr && *e != '\0' && std::string(e) != "0";
}

bool can_sgemm(const GemmArgs<float>& g, int64_t batch, int64_t sa, int64_t sb) {
  if (g.M > INT_MAX || g.N > INT_MAX || g.K > INT_MAX || g.ldc > INT_MAX || batch < 1 || batch > INT_MAX) return false;
  if (batch > 1 && (sa == 0 || sb == 0)) return false;  // broadcast batches: the caller loops
  Operand ta, tb;
  return transposed(g.M, g.K, g.a_rs, g.a_cs, ta) && transposed(g.K, g.N, g.b_rs, g.b_cs, tb);
}

void sgemm(const GemmArgs<float>& g, int64_t batch, int64_t sa, int64_t sb, int64_t sc, bool accumulate) {
  CORTEX_CHECK(can_sgemm(g, batch, sa, sb), "cuBLAS: sgemm cannot read this layout (check can_sgemm first)");
  Operand ta, tb;
  transposed(g.M, g.K, g.a_rs, g.a_cs, ta);
  transposed(g.K, g.N, g.b_rs, g.b_cs, tb);
  const int m = static_cast<int>(g.N), n = static_cast<int>(g.M), k = static_cast<int>(g.K);
  const int ldc = static_cast<int>(std::max<int64_t>(g.ldc, 1));
  cublasHandle_t h = handle();
  cublasStatus_t s = cublasSetMathMode(h, tf32() ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH);
  const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  if (s == CUBLAS_STATUS_SUCCESS) {
    if (batch == 1)
      s = cublasSgemm(h, tb.op, ta.op, m, n, k, &alpha, g.B, tb.ld, g.A, ta.ld, &beta, g.C, ldc);
    else
      s = cublasSgemmStridedBatched(h, tb.op, ta.op, m, n, k, &alpha, g.B, tb.ld, sb, g.A, ta.ld, sa, &beta, g.C, ldc,
                                    sc, static_cast<int>(batch));
  }
  CORTEX_CHECK(s == CUBLAS_STATUS_SUCCESS, "cuBLAS: sgemm (", g.M, " x ", g.K, ") @ (", g.K, " x ", g.N, ") failed: ",
               cublasGetStatusString(s));
}

}  // namespace cortex::kernels::cuda::vendor
