// matmul and linear on CUDA and the emulated CUDA device, and the launchers of the hand-written
// GEMM versions (kernels/cuda/gemm/, docs/gemm.md). Semantics are kernels/cpu/matmul.cpp's: 1-D
// operands promoted and the added dim dropped, batch dims broadcast, any strides read in place.
//
// Which GEMM runs (kernels/cuda/gemm.h): float32 takes cuBLAS under nvcc (kernels/cuda/vendor/)
// and the fastest hand-written version on the emulated device, unless CORTEX_GEMM=cublas|1..7 or
// set_gemm_version say otherwise; float64 (gradcheck) takes version 2, the simplest templated one
// that is not deliberately slow.
#include <atomic>
#include <cstdlib>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/cuda/gemm.h"
#include "kernels/matmul.h"
#include "kernels/shape.h"
#include "tensor/strided.h"
#ifdef __CUDACC__
#include "kernels/cuda/vendor/cublas.h"
#endif
// (last: the kernels, which include kernels/cuda/common.cuh)
#include "kernels/cuda/gemm/7_warptile.cuh"

namespace cortex::kernels::CORTEX_BACKEND {
namespace {

// The fastest correct hand-written version on the emulated device (bench/bench_cuda_gemm.cpp,
// bench/RESULTS.md), and what a float32 GEMM falls back to when cuBLAS cannot read a layout.
constexpr int kBestHandVersion = 7;
// float64 takes this version whatever the float32 choice is.
constexpr int kDoubleVersion = 2;

std::atomic<int> g_version{-1};  // -1: follow CORTEX_GEMM

int env_version() {
  const char* e = std::getenv("CORTEX_GEMM");
  if (e == nullptr || *e == '\0') {
#ifdef __CUDACC__
    return kGemmVendor;
#else
    return kBestHandVersion;
#endif
  }
  const std::string s(e);
  if (s == "cublas") return kGemmVendor;
  CORTEX_CHECK(s.size() == 1 && s[0] >= '1' && s[0] <= '0' + kGemmVersions, "CORTEX_GEMM: expected cublas or 1..",
               kGemmVersions, ", found '", s, "'");
  return s[0] - '0';
}

template <class T>
dim3 grid_for(const GemmArgs<T>& g, int tile_m, int tile_n) {
  return dim3(blocks_for(g.M, tile_m), blocks_for(g.N, tile_n));
}

#ifdef __CUDACC__
// C(i, j) = bias[j] for the rows of C, before cuBLAS accumulates A B onto it.
__global__ void bias_rows_kernel(float* __restrict__ C, int64_t M, int64_t N, int64_t ldc, const float* __restrict__ bias,
                                 int64_t bias_s) {
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= M * N) return;
  C[(t / N) * ldc + t % N] = bias[(t % N) * bias_s];
}

// cuBLAS for `batch` products at fixed strides; false when it cannot read the layout.
bool vendor_gemm(const GemmArgs<float>& g, int64_t batch, int64_t sa, int64_t sb, int64_t sc) {
  if (!vendor::can_sgemm(g, batch, sa, sb) || (g.bias != nullptr && batch != 1)) return false;
  if (g.bias != nullptr)
    CORTEX_LAUNCH(bias_rows_kernel, blocks_for(g.M * g.N), kBlock, 0, stream(), g.C, g.M, g.N, g.ldc, g.bias,
                  g.bias_s);
  vendor::sgemm(g, batch, sa, sb, sc, g.bias != nullptr);
  return true;
}
#endif

}  // namespace

void gemm(int version, const GemmArgs<float>& g) {
  CORTEX_CHECK(version >= 1 && version <= kGemmVersions, "gemm: expected a version in 1..", kGemmVersions,
               ", found ", version);
  if (g.M == 0 || g.N == 0) return;
  switch (version) {
    case 1:
      CORTEX_LAUNCH(gemm1_naive<float>, grid_for(g, kNaiveBlock, kNaiveBlock), dim3(kNaiveBlock, kNaiveBlock), 0,
                    stream(), g);
      break;
    case 2:
      CORTEX_LAUNCH(gemm2_coalesced<float>, grid_for(g, kCoalescedTile, kCoalescedTile),
                    kCoalescedTile * kCoalescedTile, 0, stream(), g);
      break;
    case 3:
      CORTEX_LAUNCH(gemm3_smem_tiles<float>, grid_for(g, kSmemTile, kSmemTile), kSmemTile * kSmemTile, 0, stream(), g);
      break;
    case 4:
      CORTEX_LAUNCH(gemm4_blocktile_1d, grid_for(g, bt1::BM, bt1::BN), bt1::kThreads, 0, stream(), g);
      break;
    case 5:
      CORTEX_LAUNCH(gemm5_blocktile_2d, grid_for(g, bt2::BM, bt2::BN), bt2::kThreads, 0, stream(), g);
      break;
    case 6:
      CORTEX_LAUNCH(gemm6_vectorized, grid_for(g, vec::BM, vec::BN), vec::kThreads, 0, stream(), g);
      break;
    default:
      CORTEX_LAUNCH(gemm7_warptile, grid_for(g, wt::BM, wt::BN), wt::kThreads, 0, stream(), g);
      break;
  }
}

void gemm(int version, const GemmArgs<double>& g) {
  CORTEX_CHECK(version >= 1 && version <= 3, "gemm: float64 has versions 1..3, found ", version);
  if (g.M == 0 || g.N == 0) return;
  if (version == 1)
    CORTEX_LAUNCH(gemm1_naive<double>, grid_for(g, kNaiveBlock, kNaiveBlock), dim3(kNaiveBlock, kNaiveBlock), 0,
                  stream(), g);
  else if (version == 2)
    CORTEX_LAUNCH(gemm2_coalesced<double>, grid_for(g, kCoalescedTile, kCoalescedTile),
                  kCoalescedTile * kCoalescedTile, 0, stream(), g);
  else
    CORTEX_LAUNCH(gemm3_smem_tiles<double>, grid_for(g, kSmemTile, kSmemTile), kSmemTile * kSmemTile, 0, stream(), g);
}

int gemm_version() {
  const int v = g_version.load();
  return v >= 0 ? v : env_version();
}

void set_gemm_version(int v) {
  CORTEX_CHECK(v >= -1 && v <= kGemmVersions, "set_gemm_version: expected -1, ", kGemmVendor, " (cuBLAS) or 1..",
               kGemmVersions, ", found ", v);
  g_version.store(v);
}

namespace {

// The products C_i = A_i B_i (+ bias) of one op: A_i = g.A + oa[i], B_i = g.B + ob[i], C_i = g.C + i * sc.
template <class T>
void run_products(GemmArgs<T> g, const std::vector<int64_t>& oa, const std::vector<int64_t>& ob, int64_t sc) {
  int64_t n = static_cast<int64_t>(oa.size());
  // Batch offsets that step evenly (one batch dim, or dims that collapse) allow one strided call.
  const auto step_of = [n](const std::vector<int64_t>& o, int64_t& step) {
    step = n > 1 ? o[1] - o[0] : 0;
    for (int64_t i = 0; i < n; ++i)
      if (o[i] != o[0] + i * step) return false;
    return true;
  };
  int64_t sa = 0, sb = 0;
  const bool even = step_of(oa, sa) && step_of(ob, sb) && oa[0] == 0 && ob[0] == 0;
  // One shared right operand and left matrices that follow each other row after row
  // (x (B, m, k) @ w (k, n)): one (B*m, k) @ (k, n) GEMM, which fills many more tiles.
  if (n > 1 && even && sb == 0 && (g.M == 1 || sa == g.M * g.a_rs)) {
    if (g.M == 1) g.a_rs = sa;
    g.M *= n;
    n = 1;
  }
  const int v = std::is_same_v<T, double> ? kDoubleVersion : gemm_version();
#ifdef __CUDACC__
  if constexpr (std::is_same_v<T, float>) {
    if (v == kGemmVendor && even && vendor_gemm(g, n, sa, sb, sc)) return;
  }
#endif
  for (int64_t i = 0; i < n; ++i) {
    GemmArgs<T> gi = g;
    gi.A += oa[i];
    gi.B += ob[i];
    gi.C += i * sc;
#ifdef __CUDACC__
    if constexpr (std::is_same_v<T, float>) {
      if (v == kGemmVendor && vendor_gemm(gi, 1, 0, 0, 0)) continue;
    }
#endif
    // The emulated device has no cuBLAS, and cuBLAS refuses some layouts: the best hand-written one.
    gemm(v == kGemmVendor ? kBestHandVersion : v, gi);
  }
}

}  // namespace

Tensor matmul(const Tensor& a0, const Tensor& b0) {
  const MatmulBatches p = matmul_batches(matmul_promote_a(a0), matmul_promote_b(b0), a0.dim() == 1, b0.dim() == 1);
  Tensor out = empty(p.full_shape, a0.dtype(), a0.device());
  if (p.count == 0 || p.m == 0 || p.n == 0) return out.view(p.result_shape);
  std::vector<int64_t> oa(p.count), ob(p.count);
  for (int64_t i = 0; i < p.count; ++i) {
    oa[i] = offset_of(i, p.batch, p.a_batch_strides);
    ob[i] = offset_of(i, p.batch, p.b_batch_strides);
  }
  dispatch_float(a0.dtype(), "matmul", [&](auto tag) {
    using T = decltype(tag);
    GemmArgs<T> g;
    g.M = p.m, g.N = p.n, g.K = p.k;
    g.A = p.a.data<T>(), g.a_rs = p.a.stride(-2), g.a_cs = p.a.stride(-1);
    g.B = p.b.data<T>(), g.b_rs = p.b.stride(-2), g.b_cs = p.b.stride(-1);
    g.C = out.data<T>(), g.ldc = p.n;
    run_products(g, oa, ob, p.m * p.n);
  });
  return out.view(p.result_shape);
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  // x (..., in) as (rows, in) (a view when its dims collapse); w (out, in) read as (in, out).
  const int64_t out_f = w.size(0), in_f = w.size(1);
  int64_t rows = 1;
  for (int64_t d = 0; d + 1 < x.dim(); ++d) rows *= x.size(d);
  Shape out_shape(x.shape().begin(), x.shape().end() - 1);
  out_shape.push_back(out_f);
  Tensor y = empty({rows, out_f}, x.dtype(), x.device());
  if (rows == 0 || out_f == 0) return y.view(out_shape);
  const Tensor x2 = x.reshape({rows, in_f});
  dispatch_float(x.dtype(), "linear", [&](auto tag) {
    using T = decltype(tag);
    GemmArgs<T> g;
    g.M = rows, g.N = out_f, g.K = in_f;
    g.A = x2.data<T>(), g.a_rs = x2.stride(0), g.a_cs = x2.stride(1);
    g.B = w.data<T>(), g.b_rs = w.stride(1), g.b_cs = w.stride(0);
    g.C = y.data<T>(), g.ldc = out_f;
    if (b.defined()) g.bias = b.data<T>(), g.bias_s = b.stride(0);
    run_products(g, {0}, {0}, 0);
  });
  return y.view(out_shape);
}

}  // namespace cortex::kernels::CORTEX_BACKEND
