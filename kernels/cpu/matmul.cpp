// CPU matmul and linear on Eigen's GEMM, cut into tiles fixed by the problem size and run
// single-threaded each (gemm_tiles.h), so that the result is bit-identical for any thread count.
//
// Each operand matrix is handed to Eigen as a Map with an outer stride: a matrix whose column
// stride is 1 maps as RowMajor, one whose row stride is 1 as ColMajor (a transposed view such as
// w.t()), so neither needs a copy. Only a matrix with no unit stride is made contiguous first.
#include "kernels/cpu/matmul.h"

#include <algorithm>

#include "kernels/cpu/gemm_tiles.h"
#include "kernels/shape.h"
#include "tensor/strided.h"

namespace cortex::kernels::cpu {
namespace {

using gemm::Mat;

// Eigen's GEMM reads a matrix in place when one of its strides is 1 (a size-1 dim has any stride).
bool mappable(int64_t rows, int64_t cols, int64_t rs, int64_t cs) {
  return cs == 1 || cols <= 1 || rs == 1 || rows <= 1;
}

// The operand as a matrix of its last two dims, made contiguous when Eigen could not map it.
Tensor mappable_operand(const Tensor& t) {
  const int64_t r = t.size(-2), c = t.size(-1);
  return mappable(r, c, t.stride(-2), t.stride(-1)) ? t : t.contiguous();
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
    // (x (B, m, k) @ w (k, n)): a single (B*m, k) @ (k, n) GEMM, tiled like any other.
    const bool b_shared = std::all_of(sb.begin(), sb.end(), [](int64_t s) { return s == 0; });
    int64_t fold_rs = 0;
    if (B > 1 && b_shared && (acs == 1 || k == 1) && collapse(ax.shape(), ax.strides(), nb, fold_rs)) {
      gemm::gemm<T>({pa, B * m, k, fold_rs, acs}, {pb, k, n, brs, bcs}, pc, n, false);
      return;
    }
    // Every (matrix, tile) pair is one unit: small matrices are one tile each, big ones several.
    const gemm::Tiling t = gemm::tiling(m, n, k);
    const int64_t tiles = t.count();
    const double work = static_cast<double>(B) * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
    gemm::for_units(B * tiles, work, tiles > 1, [&](int64_t u) {
      const int64_t i = u / tiles;
      const Mat<T> ai{pa + offset_of(i, batch, sa), m, k, ars, acs}, bi{pb + offset_of(i, batch, sb), k, n, brs, bcs};
      gemm::tile<T>(t, u % tiles, ai, bi, pc + i * m * n, n, false);
    });
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

  // Each output starts as its bias; the GEMM adds x w^T onto it (the tile's first pass, or the
  // tile filled with the bias first: gemm_tiles.h).
  const Tensor bc = b.defined() ? b.contiguous() : Tensor();
  dispatch_float(x.dtype(), "linear", [&](auto tag) {
    using T = decltype(tag);
    gemm::gemm<T>({x2.data<T>(), rows, in_f, x2.stride(0), x2.stride(1)},
                  {wm.data<T>(), in_f, out_f, wm.stride(1), wm.stride(0)}, y.data<T>(), out_f, false, nullptr,
                  bc.defined() ? bc.data<T>() : nullptr);
  });
  return y.view(out_shape);
}

}  // namespace cortex::kernels::cpu
