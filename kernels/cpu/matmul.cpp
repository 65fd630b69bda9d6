// CPU matmul and linear on Eigen's GEMM.
//
// Each operand matrix is handed to Eigen as a Map with an outer stride: a matrix whose column
// stride is 1 maps as RowMajor, one whose row stride is 1 as ColMajor (a transposed view such as
// w.t()), so neither needs a copy. Only a matrix with no unit stride is made contiguous first.
#include "kernels/cpu/matmul.h"

#include <omp.h>

// GCC 12's AVX-512 intrinsics trip -Wmaybe-uninitialized inside Eigen (GCC bug 105593).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <Eigen/Core>
#include <algorithm>

#include "kernels/shape.h"
#include "tensor/strided.h"

namespace cortex::kernels::cpu {
namespace {

using Eigen::Dynamic;
template <class T> using RowMat = Eigen::Matrix<T, Dynamic, Dynamic, Eigen::RowMajor>;
template <class T> using ColMat = Eigen::Matrix<T, Dynamic, Dynamic, Eigen::ColMajor>;
template <class T> using RowMap = Eigen::Map<const RowMat<T>, 0, Eigen::OuterStride<>>;
template <class T> using ColMap = Eigen::Map<const ColMat<T>, 0, Eigen::OuterStride<>>;
template <class T> using OutMap = Eigen::Map<RowMat<T>, 0, Eigen::OuterStride<>>;

// A (rows, cols) matrix in memory: element (i, j) at p[i * rs + j * cs].
template <class T>
struct Mat {
  const T* p;
  int64_t rows, cols, rs, cs;
};

// Eigen's GEMM reads a matrix in place when one of its strides is 1 (a size-1 dim has any stride).
bool mappable(int64_t rows, int64_t cols, int64_t rs, int64_t cs) {
  return cs == 1 || cols <= 1 || rs == 1 || rows <= 1;
}

// The operand as a matrix of its last two dims, made contiguous when Eigen could not map it.
Tensor mappable_operand(const Tensor& t) {
  const int64_t r = t.size(-2), c = t.size(-1);
  return mappable(r, c, t.stride(-2), t.stride(-1)) ? t : t.contiguous();
}

template <class T, class F>
void with_map(const Mat<T>& m, F&& f) {
  if (m.cs == 1 || m.cols <= 1)
    f(RowMap<T>(m.p, m.rows, m.cols, Eigen::OuterStride<>(m.rs)));
  else
    f(ColMap<T>(m.p, m.rows, m.cols, Eigen::OuterStride<>(m.cs)));
}

// c (a.rows, b.cols), row-major with leading dim ldc: c = a b, or c += a b when accumulating.
template <class T>
void gemm(const Mat<T>& a, const Mat<T>& b, T* c, int64_t ldc, bool accumulate) {
  if (a.rows == 0 || b.cols == 0) return;
  OutMap<T> C(c, a.rows, b.cols, Eigen::OuterStride<>(ldc));
  if (a.cols == 0) {  // empty sum
    if (!accumulate) C.setZero();
    return;
  }
  with_map(a, [&](const auto& A) {
    with_map(b, [&](const auto& B) {
      if (accumulate)
        C.noalias() += A * B;
      else
        C.noalias() = A * B;
    });
  });
}

// When dims [0, last] of a strided layout collapse into one dim, sets its stride and returns true.
bool collapse(const Shape& s, const Shape& st, int64_t last, int64_t& stride) {
  int64_t expect = -1;
  stride = 0;
  for (int64_t d = last; d >= 0; --d) {
    if (s[d] == 1) continue;
    if (expect < 0)
      stride = st[d];
    else if (st[d] != expect)
      return false;
    expect = st[d] * s[d];
  }
  return true;
}

// Below this many multiply-adds per matrix, one matrix per thread beats Eigen's threaded GEMM.
constexpr double kSmallGemm = 64.0 * 64.0 * 64.0;

}  // namespace

Tensor matmul(const Tensor& a0, const Tensor& b0) {
  const MatmulBatches p = matmul_batches(mappable_operand(matmul_promote_a(a0)), mappable_operand(matmul_promote_b(b0)),
                                         a0.dim() == 1, b0.dim() == 1);
  const int64_t m = p.m, k = p.k, n = p.n, B = p.count;
  const int64_t nb = static_cast<int64_t>(p.batch.size());
  Tensor out = empty(p.full_shape, a0.dtype());
  if (B == 0 || m == 0 || n == 0) return out.view(p.result_shape);
  const Tensor &ax = p.a, &bx = p.b;
  const Shape &batch = p.batch, &sa = p.a_batch_strides, &sb = p.b_batch_strides;
  const int64_t ars = ax.stride(-2), acs = ax.stride(-1), brs = bx.stride(-2), bcs = bx.stride(-1);

  dispatch_float(a0.dtype(), "matmul", [&](auto tag) {
    using T = decltype(tag);
    const T* pa = ax.data<T>();
    const T* pb = bx.data<T>();
    T* pc = out.data<T>();

    // One shared right operand and a row-major left operand whose batch and row dims collapse
    // (x (B, m, k) @ w (k, n)): a single (B*m, k) @ (k, n) GEMM, which Eigen threads well.
    const bool b_shared = std::all_of(sb.begin(), sb.end(), [](int64_t s) { return s == 0; });
    int64_t fold_rs = 0;
    if (B > 1 && b_shared && (acs == 1 || k == 1) && collapse(ax.shape(), ax.strides(), nb, fold_rs)) {
      gemm<T>({pa, B * m, k, fold_rs, acs}, {pb, k, n, brs, bcs}, pc, n, false);
      return;
    }
    auto one = [&](int64_t i) {
      const T* ai = pa + offset_of(i, batch, sa);
      const T* bi = pb + offset_of(i, batch, sb);
      gemm<T>({ai, m, k, ars, acs}, {bi, k, n, brs, bcs}, pc + i * m * n, n, false);
    };
    const double work = static_cast<double>(m) * n * k;
    if (B > 1 && work < kSmallGemm) {
      // Small matrices: one per thread (Eigen stays single-threaded inside a parallel region).
#pragma omp parallel for schedule(static) if (B * work > 32768.0)
      for (int64_t i = 0; i < B; ++i) one(i);
    } else {
      // Big matrices: one after another, each GEMM threaded by Eigen.
      for (int64_t i = 0; i < B; ++i) one(i);
    }
  });
  return out.view(p.result_shape);
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  // x (..., in) is treated as (rows, in); w (out, in) is read transposed in place as (in, out).
  const int64_t out_f = w.size(0), in_f = w.size(1);
  int64_t rows = 1;
  for (int64_t d = 0; d + 1 < x.dim(); ++d) rows *= x.size(d);
  const Tensor x2 = mappable_operand(x.reshape({rows, in_f}));
  const Tensor wm = mappable_operand(w);
  Shape out_shape(x.shape().begin(), x.shape().end() - 1);
  out_shape.push_back(out_f);
  Tensor y = empty({rows, out_f}, x.dtype());
  if (rows == 0 || out_f == 0) return y.view(out_shape);

  dispatch_float(x.dtype(), "linear", [&](auto tag) {
    using T = decltype(tag);
    T* py = y.data<T>();
    if (b.defined()) {
      // y starts as the bias in every row; the GEMM then accumulates x w^T onto it.
      const T* pb = b.data<T>();
      const int64_t bs = b.stride(0);
#pragma omp parallel for schedule(static) if (rows * out_f > (1 << 16))
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t o = 0; o < out_f; ++o) py[r * out_f + o] = pb[o * bs];
    }
    gemm<T>({x2.data<T>(), rows, in_f, x2.stride(0), x2.stride(1)},
            {wm.data<T>(), in_f, out_f, wm.stride(1), wm.stride(0)}, py, out_f, b.defined());
  });
  return y.view(out_shape);
}

}  // namespace cortex::kernels::cpu
