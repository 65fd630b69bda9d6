// A GEMM on Eigen whose result does not depend on the number of threads (docs/gemm.md).
//
// Eigen's own threaded GEMM picks its depth blocking kc from the thread count, so the order of
// every sum, hence the rounding, changed with OMP_NUM_THREADS. Here C is cut into tiles whose
// bounds depend on (m, n, k) only; each tile is one call of Eigen's single-threaded blocked GEMM
// (its GEBP, called directly so that Eigen never threads it, wherever it is called from), and the
// threads only decide who computes which tile. Every remainder path of Eigen's kernels and its
// small-product and matrix-vector fallbacks then depend on the problem alone.
//
// float32 products on AVX-512 and AVX2 builds go to the packed kernel of conv_gemm.h instead wherever
// conv_gemm::gemm_pays says so (a function of the shape): each of its outputs is one in-order sum
// however C is cut, so packed_gemm cuts it by the real thread count.
#pragma once
#include <omp.h>

#include <algorithm>
#include <cstdint>

// GCC 12's AVX-512 intrinsics trip -Wmaybe-uninitialized inside Eigen (GCC bug 105593).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <Eigen/Core>
#include <type_traits>

#include "kernels/cpu/conv_gemm.h"

namespace cortex::kernels::cpu::gemm {

// A (rows, cols) matrix in memory: element (i, j) at p[i * rs + j * cs]. One of the strides must
// be 1 (or its dim at most 1): Eigen reads it in place.
template <class T>
struct Mat {
  const T* p;
  int64_t rows, cols, rs, cs;
  bool row_major() const { return cs == 1 || cols <= 1; }
  Mat t() const { return {p, cols, rows, cs, rs}; }  // the transpose, in place
};

namespace detail {

using Eigen::Dynamic;
using Eigen::Index;
template <class T, int Order>
using ConstMap = Eigen::Map<const Eigen::Matrix<T, Dynamic, Dynamic, Order>, 0, Eigen::OuterStride<>>;
template <class T>
using OutMap = Eigen::Map<Eigen::Matrix<T, Dynamic, Dynamic, Eigen::RowMajor>, 0, Eigen::OuterStride<>>;

template <class T, int AO, int BO>
void serial(const Mat<T>& a, const Mat<T>& b, T* c, int64_t ldc, bool accumulate) {
  const Index m = a.rows, n = b.cols, k = a.cols;
  OutMap<T> C(c, m, n, Eigen::OuterStride<>(ldc));
  const Index lda = AO == Eigen::RowMajor ? a.rs : a.cs, ldb = BO == Eigen::RowMajor ? b.rs : b.cs;
  if (m == 1 || n == 1 || m + n + k < EIGEN_GEMM_TO_COEFFBASED_THRESHOLD) {
    // Eigen's matrix-vector and coefficient-based small products: never threaded.
    const ConstMap<T, AO> A(a.p, m, k, Eigen::OuterStride<>(lda));
    const ConstMap<T, BO> B(b.p, k, n, Eigen::OuterStride<>(ldb));
    if (accumulate)
      C.noalias() += A * B;
    else
      C.noalias() = A * B;
    return;
  }
  if (!accumulate) C.setZero();
  // What Eigen's product does with one thread (GeneralMatrixMatrix.h, scaleAndAddTo): blocking
  // sized for one thread, no parallel info.
  Eigen::internal::gemm_blocking_space<Eigen::RowMajor, T, T, Dynamic, Dynamic, Dynamic> blocking(m, n, k, 1, true);
  Eigen::internal::general_matrix_matrix_product<Index, T, AO, false, T, BO, false, Eigen::RowMajor, 1>::run(
      m, n, k, a.p, lda, b.p, ldb, c, 1, ldc, T(1), blocking, nullptr);
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace detail

// C (a.rows, b.cols), row-major with leading dim ldc: C = A B, or C += A B when accumulating, on
// the calling thread only.
template <class T>
void serial(const Mat<T>& a, const Mat<T>& b, T* c, int64_t ldc, bool accumulate) {
  if (a.rows == 0 || b.cols == 0) return;
  if (a.cols == 0) {  // empty sum
    if (!accumulate)
      for (int64_t i = 0; i < a.rows; ++i) std::fill(c + i * ldc, c + i * ldc + b.cols, T(0));
    return;
  }
#ifdef CORTEX_CONV_GEMM
  // float32 on AVX-512 or AVX2: the packed 8 x 48 kernel of conv_gemm.h where it beats Eigen's.
  // The choice depends on the tile's shape only, so results stay the same at any thread count.
  if constexpr (std::is_same_v<T, float>) {
    if (conv_gemm::gemm_pays(a.rows, b.cols, a.cols)) {
      conv_gemm::gemm(a.rows, b.cols, a.cols, a.p, a.rs, a.cs, b.p, b.rs, b.cs, c, ldc, accumulate);
      return;
    }
  }
#endif
  constexpr int R = Eigen::RowMajor, C = Eigen::ColMajor;
  if (a.row_major())
    b.row_major() ? detail::serial<T, R, R>(a, b, c, ldc, accumulate) : detail::serial<T, R, C>(a, b, c, ldc, accumulate);
  else
    b.row_major() ? detail::serial<T, C, R>(a, b, c, ldc, accumulate) : detail::serial<T, C, C>(a, b, c, ldc, accumulate);
}

// The tiling of C (m, n) for depth k: tiles of tm rows and tn columns (the last ones narrower).
// A function of (m, n, k) only. Products under kWhole multiply-adds stay one tile; bigger ones are
// cut into tiles of about kEdge x kEdge, so that a tile's packing (tm k + k tn floats) stays well
// under 1% of its multiply-adds (tm tn k) for any k. Our C is row-major, so Eigen computes C^T
// and C's columns are the rows of its 48 x 4 float kernel (3 vectors by 4): tn is a multiple of
// 48, tm of 16, which keeps every tile but the last on the kernel's full-size path (256-wide
// tiles, 5 x 48 + 16, ran a 1024^3 product 45% slower than one Eigen call).
struct Tiling {
  int64_t tm, tn, mt, nt;
  int64_t count() const { return mt * nt; }
};
inline Tiling tiling(int64_t m, int64_t n, int64_t k) {
  constexpr double kWhole = 1 << 20, kBalance = 1 << 22;
  constexpr int64_t kEdge = 384;
  auto edge = [](int64_t d, int64_t mult) {
    if (d <= kEdge + kEdge / 2) return std::max<int64_t>(d, 1);
    const int64_t parts = detail::ceil_div(d, kEdge);
    return detail::ceil_div(detail::ceil_div(d, parts), mult) * mult;
  };
  const double work = static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  Tiling t{std::max<int64_t>(m, 1), std::max<int64_t>(n, 1), 1, 1};
  if (work >= kWhole) t.tm = edge(m, 16), t.tn = edge(n, 48);
  t.mt = detail::ceil_div(std::max<int64_t>(m, 1), t.tm), t.nt = detail::ceil_div(std::max<int64_t>(n, 1), t.tn);
  // A big product cut into one tile, or an odd number, leaves a thread idle for much of it (a
  // 256 x 196 x 1024 1x1 conv of ResNet-50 at batch 1 ran on one thread of two): halve the row
  // tiles (multiples of 16) until there are at least 4 and an even count. Still a function of
  // (m, n, k) alone.
  while (work >= kBalance && (t.count() < 4 || t.count() % 2 == 1) && t.tm >= 32) {
    t.tm = detail::ceil_div(detail::ceil_div(std::max<int64_t>(m, 1), 2 * t.mt), 16) * 16;
    t.mt = detail::ceil_div(std::max<int64_t>(m, 1), t.tm);
  }
  // Too few rows to halve (a matrix-vector product: AlexNet's classifier at batch 1 was 11
  // column tiles, 6 against 5 on two threads): halve the column tiles (multiples of 48) instead.
  while (work >= kBalance && (t.count() < 4 || t.count() % 2 == 1) && t.tm < 32 && t.tn >= 96) {
    t.tn = detail::ceil_div(detail::ceil_div(std::max<int64_t>(n, 1), 2 * t.nt), 48) * 48;
    t.nt = detail::ceil_div(std::max<int64_t>(n, 1), t.tn);
  }
  return t;
}

// Tile u of `t` (row-tile major): C's block, computed with serial().
template <class T>
void tile(const Tiling& t, int64_t u, const Mat<T>& a, const Mat<T>& b, T* c, int64_t ldc, bool accumulate) {
  const int64_t i0 = (u / t.nt) * t.tm, j0 = (u % t.nt) * t.tn;
  const int64_t mi = std::min(t.tm, a.rows - i0), nj = std::min(t.tn, b.cols - j0);
  const Mat<T> ai{a.p + i0 * a.rs, mi, a.cols, a.rs, a.cs}, bj{b.p + j0 * b.cs, b.rows, nj, b.rs, b.cs};
  serial(ai, bj, c + i0 * ldc + j0, ldc, accumulate);
}

// Below this many multiply-adds in all, a product runs on the calling thread.
constexpr double kParallelWork = 1 << 17;

// Runs f(u) for u in [0, units), spread over the threads unless the call is already inside a
// parallel region or `work` (multiply-adds in all) is small. Units of unequal cost (`uneven`: the
// tiles of one product, whose last row and column are narrower) are handed out one at a time.
// Which thread runs a unit never changes what it computes.
template <class F>
void for_units(int64_t units, double work, bool uneven, F&& f) {
  if (units <= 1 || work < kParallelWork || omp_in_parallel() || omp_get_max_threads() == 1) {
    for (int64_t u = 0; u < units; ++u) f(u);
  } else if (uneven) {
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t u = 0; u < units; ++u) f(u);
  } else {
#pragma omp parallel for schedule(static)
    for (int64_t u = 0; u < units; ++u) f(u);
  }
}

#ifdef CORTEX_CONV_GEMM
// A float product that conv_gemm::gemm takes whole (gemm_pays on its full shape). Its outputs do
// not depend on how C is cut, so the cut may follow the thread count. Row blocks of at most 384
// rows (a depth pass of A, 384 x 384 floats, stays in L2). When there are too few to share evenly:
// with at least 4 strips of 48 columns per thread, each row block is cut into one group of strips
// per thread (each group packs A's panels again, a small cost beside B's); narrower products are
// cut into more row blocks instead (each packs B again, but no thread runs a narrow last strip it
// would not have run alone). Unlike the fixed tiles, A's panels are packed once per row block,
// not once per 384 columns (an eighth of ViT's batch-1 linear layers went to repacking A).
inline void packed_gemm(const Mat<float>& a, const Mat<float>& b, float* c, int64_t ldc, bool accumulate,
                        const float* row_bias, const float* col_bias) {
  const int64_t m = a.rows, n = b.cols, k = a.cols;
  const double work = static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  const int64_t threads = work < kParallelWork || omp_in_parallel() ? 1 : omp_get_max_threads();
  const int64_t panels = detail::ceil_div(m, conv_gemm::kMR), strips = detail::ceil_div(n, conv_gemm::kNR);
  int64_t mt = detail::ceil_div(m, 384), groups = 1;
  if (mt % threads != 0 && mt < 4 * threads) {
    if (strips >= 4 * threads || panels < 2 * threads)
      groups = std::min(strips, threads);
    else
      mt = detail::ceil_div(mt, threads) * threads;
  }
  const int64_t tm = detail::ceil_div(panels, mt) * conv_gemm::kMR, mu = detail::ceil_div(m, tm);
  const int64_t tn = detail::ceil_div(strips, groups) * conv_gemm::kNR, nt = detail::ceil_div(n, tn);
  for_units(mu * nt, work, true, [&](int64_t u) {
    const int64_t i0 = (u / nt) * tm, j0 = (u % nt) * tn;
    conv_gemm::gemm(std::min(tm, m - i0), std::min(tn, n - j0), k, a.p + i0 * a.rs, a.rs, a.cs, b.p + j0 * b.cs, b.rs,
                    b.cs, c + i0 * ldc + j0, ldc, accumulate, row_bias ? row_bias + i0 : nullptr,
                    col_bias ? col_bias + j0 : nullptr);
  });
}
#endif

// C = A B (or C += A B), tiled by tiling(), the tiles spread over the threads (for_units); a
// float product the packed kernel pays on goes to packed_gemm instead. Not with accumulate: row i
// of C gets row_bias[i] (after the products on Eigen's tiles, before them on the packed kernel),
// or column j gets col_bias[j] (linear's bias: before the products on both). Bit-identical for
// any thread count.
template <class T>
void gemm(const Mat<T>& a, const Mat<T>& b, T* c, int64_t ldc, bool accumulate, const T* row_bias = nullptr,
          const T* col_bias = nullptr) {
  if (a.rows == 0 || b.cols == 0) return;
#ifdef CORTEX_CONV_GEMM
  if constexpr (std::is_same_v<T, float>) {
    if (conv_gemm::gemm_pays(a.rows, b.cols, a.cols)) {
      packed_gemm(a, b, c, ldc, accumulate, row_bias, col_bias);
      return;
    }
  }
#endif
  const Tiling t = tiling(a.rows, b.cols, a.cols);
  const double work = static_cast<double>(a.rows) * static_cast<double>(b.cols) * static_cast<double>(a.cols);
  for_units(t.count(), work, true, [&](int64_t u) {
    const int64_t i0 = (u / t.nt) * t.tm, j0 = (u % t.nt) * t.tn;
    const int64_t i1 = std::min(a.rows, i0 + t.tm), j1 = std::min(b.cols, j0 + t.tn);
    if (col_bias)  // the tile starts as the bias; the products are added onto it
      for (int64_t i = i0; i < i1; ++i) std::copy(col_bias + j0, col_bias + j1, c + i * ldc + j0);
    tile(t, u, a, b, c, ldc, accumulate || col_bias);
    if (row_bias)
      for (int64_t i = i0; i < i1; ++i)
        for (int64_t j = j0; j < j1; ++j) c[i * ldc + j] += row_bias[i];
  });
}

}  // namespace cortex::kernels::cpu::gemm
