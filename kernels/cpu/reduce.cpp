// CPU reductions.
//
// Every reduction is reduced to one of two shapes of loop over a contiguous buffer:
//   rows: the innermost (stride-1) block is reduced, so each output folds whole contiguous rows
//         (sum over the last axis). Each row is folded into 16 independent lanes so GCC vectorises
//         the fold without reassociating (no -ffast-math needed).
//   cols: the innermost block is kept, so each output row of L columns is accumulated row by row
//         into a buffer of L accumulators (sum over dim 0 of (100000, 64)): one pass over the input
//         in memory order instead of striding down columns.
// First the input's dims are put in memory order (a transposed view needs no copy), size-1 dims are
// dropped and adjacent dims that are both kept or both reduced are merged, so any set of axes gives
// alternating kept/reduced blocks whose innermost block picks the loop.
//
// Work is split into a number of units fixed by the shape (never by the thread count) and partial
// results are combined in unit order, so the result is the same whatever OMP_NUM_THREADS is
// (kernels/cpu/parallel.h runs the units; docs/determinism.md).
#include "kernels/cpu/reduce.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "kernels/cpu/parallel.h"
#include "kernels/shape.h"
#include "tensor/strided.h"

namespace cortex::kernels::cpu {
namespace {

constexpr int64_t kGrain = 1 << 15;     // input elements below which a reduction stays on one thread
constexpr int64_t kUnits = 16;          // units to aim for when the outputs alone are too few
constexpr int64_t kColBlock = 2048;     // columns per unit in the cols loop: 16 KB of double accumulators
constexpr int kLanes = 16;              // independent accumulators of a row fold

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

template <class T> constexpr bool is_f16 = std::is_same_v<T, bfloat16> || std::is_same_v<T, float16>;

// ---------------------------------------------------------------- combiners

struct Plus {
  template <class A> A operator()(A a, A b) const { return a + b; }
};
struct Times {
  template <class A> A operator()(A a, A b) const { return a * b; }
};
// int64 accumulation wraps (through uint64) instead of being undefined on overflow.
struct WrapPlus {
  int64_t operator()(int64_t a, int64_t b) const {
    return static_cast<int64_t>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));
  }
};
struct WrapTimes {
  int64_t operator()(int64_t a, int64_t b) const {
    return static_cast<int64_t>(static_cast<uint64_t>(a) * static_cast<uint64_t>(b));
  }
};
// Max/Min that propagate NaN: once the accumulator is NaN it stays NaN. Written as selects so a
// row fold vectorises.
struct NanMax {
  template <class A> A operator()(A a, A b) const { return (b > a || b != b) ? b : a; }
};
struct NanMin {
  template <class A> A operator()(A a, A b) const { return (b < a || b != b) ? b : a; }
};
struct Or {
  uint8_t operator()(uint8_t a, uint8_t b) const { return a | b; }
};
struct And {
  uint8_t operator()(uint8_t a, uint8_t b) const { return a & b; }
};

// ---------------------------------------------------------------- layout

struct Layout {
  Tensor xc;              // x's non-size-1 dims in memory order, contiguous (a view when possible)
  bool rows = true;       // innermost block reduced (rows loop) or kept (cols loop)
  int64_t L = 1;          // length of the innermost block
  int64_t P = 1;          // rows: number of outputs; cols: number of output rows of L columns
  int64_t R = 1;          // runs folded into each output (row) besides the innermost block
  Shape kshape, kstride;  // kept blocks outside the innermost one (strides in xc)
  Shape rshape, rstride;  // reduced blocks outside the innermost one
  int64_t nred = 1;       // input elements folded into each output
  int64_t nout = 1;       // number of outputs
  Shape loop_shape;       // the outputs' non-size-1 dims in loop (memory) order
  Shape loop_axes;        // for each of them, its axis in the keepdim=false output
  Shape out_shape;        // keepdim=false output shape
};

// x must have at least one element; axes are normalised.
Layout make_layout(const Tensor& x, const Shape& axes) {
  Layout ly;
  const int64_t nd = x.dim();
  std::vector<char> red(nd, 0);
  for (int64_t a : axes) red[a] = 1;
  Shape out_axis(nd, -1);
  for (int64_t d = 0; d < nd; ++d)
    if (!red[d]) {
      out_axis[d] = static_cast<int64_t>(ly.out_shape.size());
      ly.out_shape.push_back(x.shape()[d]);
    }
  // Memory order: largest stride first. Size-1 dims carry no data and are dropped.
  std::vector<int64_t> order;
  for (int64_t d = 0; d < nd; ++d)
    if (x.shape()[d] != 1) order.push_back(d);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t i, int64_t j) { return x.strides()[i] > x.strides()[j]; });
  Shape sh, st;
  for (int64_t d : order) {
    sh.push_back(x.shape()[d]);
    st.push_back(x.strides()[d]);
  }
  Tensor v(x.storage(), sh, st, x.offset(), x.dtype());
  ly.xc = v.is_contiguous() ? v : v.contiguous();

  struct Block {
    bool red;
    int64_t size, stride;
  };
  std::vector<Block> blocks;
  const Shape cst = contiguous_strides(sh);
  for (size_t i = 0; i < order.size(); ++i) {
    const bool r = red[order[i]];
    if (!r) {
      ly.loop_shape.push_back(sh[i]);
      ly.loop_axes.push_back(out_axis[order[i]]);
    }
    if (!blocks.empty() && blocks.back().red == r) {
      blocks.back().size *= sh[i];
      blocks.back().stride = cst[i];
    } else {
      blocks.push_back({r, sh[i], cst[i]});
    }
  }
  if (blocks.empty()) blocks.push_back({true, 1, 1});  // a single element
  const Block last = blocks.back();
  blocks.pop_back();
  ly.rows = last.red;
  ly.L = last.size;
  for (const Block& b : blocks) {
    (b.red ? ly.rshape : ly.kshape).push_back(b.size);
    (b.red ? ly.rstride : ly.kstride).push_back(b.stride);
  }
  ly.P = shape_numel(ly.kshape);
  ly.R = shape_numel(ly.rshape);
  ly.nred = ly.R * (ly.rows ? ly.L : 1);
  ly.nout = ly.P * (ly.rows ? 1 : ly.L);
  return ly;
}

// Walks the offsets of a multi-index over (shape, stride), starting at linear index `start`.
struct Odometer {
  const Shape& shape;
  const Shape& stride;
  Shape idx;
  int64_t off = 0;
  Odometer(const Shape& s, const Shape& st, int64_t start) : shape(s), stride(st), idx(s.size(), 0) {
    for (int64_t d = static_cast<int64_t>(s.size()) - 1; d >= 0; --d) {
      idx[d] = start % s[d];
      start /= s[d];
      off += idx[d] * st[d];
    }
  }
  void next() {
    for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
      off += stride[d];
      if (++idx[d] < shape[d]) return;
      off -= stride[d] * shape[d];
      idx[d] = 0;
    }
  }
};

// ---------------------------------------------------------------- fold engine
//
// A fold is (identity id, map m(value, shift) -> Acc, combine c). `shift`, when given, holds one
// value per output (in loop order) that m receives with each element: the max of logsumexp, the
// mean of var.

// GCC 12 at -O3 with AVX-512 (-march=native) vectorises the uint8 -> int64 lane fold wrongly: it
// drops all but one 16-element block (a sum of 72 ones gives 24). Byte inputs are folded without
// vectorisation; tests/test_reduce.cpp (IntegerAndBoolInputs) catches a regression.
template <class Acc, class T, class F, class C>
__attribute__((optimize("no-tree-vectorize"))) Acc lane_fold_scalar(const T* x, int64_t n, Acc id, F f, C c) {
  Acc r = id;
  for (int64_t i = 0; i < n; ++i) r = c(r, f(x[i]));
  return r;
}

template <class Acc, class T, class F, class C>
Acc lane_fold(const T* __restrict x, int64_t n, Acc id, F f, C c) {
  if constexpr (sizeof(T) == 1 && sizeof(Acc) == 8) return lane_fold_scalar(x, n, id, f, c);
  Acc lane[kLanes];
  for (int j = 0; j < kLanes; ++j) lane[j] = id;
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) lane[j] = c(lane[j], f(x[i + j]));
  Acc r = id;
  for (int j = 0; j < kLanes; ++j) r = c(r, lane[j]);
  for (; i < n; ++i) r = c(r, f(x[i]));
  return r;
}

template <class T, class Acc, class M, class C>
void fold_rows(const Layout& ly, const T* x, Acc id, M m, C c, const double* shift, Acc* acc) {
  const int64_t per = ly.R * ly.L;
  // Folds the flat range [lo, hi) of output p's R x L elements.
  auto span = [&](int64_t p, int64_t lo, int64_t hi) {
    const int64_t base = offset_of(p, ly.kshape, ly.kstride);
    const double s = shift ? shift[p] : 0.0;
    auto f = [&](T v) { return m(v, s); };
    Acc a = id;
    Odometer od(ly.rshape, ly.rstride, lo / ly.L);
    int64_t l = lo % ly.L;
    for (int64_t pos = lo; pos < hi; l = 0, od.next()) {
      const int64_t n = std::min(ly.L - l, hi - pos);
      a = c(a, lane_fold(x + base + od.off + l, n, id, f, c));
      pos += n;
    }
    return a;
  };
  // Few long outputs (a full reduction): split each into pieces so every thread has work.
  const int64_t nsplit =
      (ly.P < kUnits && per >= 2 * kGrain) ? std::min(ceil_div(kUnits, ly.P), per / kGrain) : 1;
  if (nsplit == 1) {
    parallel::for_each(ly.P, double(ly.P) * double(per), [&](int64_t p) { acc[p] = span(p, 0, per); });
    return;
  }
  std::vector<Acc> part(ly.P * nsplit);
  parallel::for_chunks(ly.P * nsplit, 1, double(ly.P) * double(per), [&](int64_t u, int64_t) {
    const int64_t p = u / nsplit, k = u % nsplit;
    part[u] = span(p, per * k / nsplit, per * (k + 1) / nsplit);
  });
  for (int64_t p = 0; p < ly.P; ++p) {
    Acc a = id;
    for (int64_t k = 0; k < nsplit; ++k) a = c(a, part[p * nsplit + k]);
    acc[p] = a;
  }
}

template <class T, class Acc, class M, class C>
void fold_cols(const Layout& ly, const T* x, Acc id, M m, C c, const double* shift, Acc* acc) {
  const int64_t L = ly.L, ncol = ceil_div(L, kColBlock), units = ly.P * ncol;
  const int64_t work = ly.P * ly.R * L;
  // Accumulates rows [r0, r1) of output row p, columns [c0, c0 + w), into a[0, w).
  auto rows = [&](Acc* __restrict a, int64_t p, int64_t c0, int64_t w, int64_t r0, int64_t r1) {
    const T* xp = x + offset_of(p, ly.kshape, ly.kstride) + c0;
    const double* sh = shift ? shift + p * L + c0 : nullptr;
    Odometer od(ly.rshape, ly.rstride, r0);
    for (int64_t r = r0; r < r1; ++r, od.next()) {
      const T* __restrict q = xp + od.off;
      if (sh)
        for (int64_t l = 0; l < w; ++l) a[l] = c(a[l], m(q[l], sh[l]));
      else
        for (int64_t l = 0; l < w; ++l) a[l] = c(a[l], m(q[l], 0.0));
    }
  };
  // Few output columns and many rows (sum over dim 0 of (100000, 64)): split the rows into
  // pieces with their own accumulators, added up afterwards in piece order.
  const int64_t nsplit =
      (units < kUnits && work >= 2 * kGrain) ? std::min({ceil_div(kUnits, units), ly.R, work / kGrain}) : 1;
  if (nsplit == 1) {
    parallel::for_chunks(units, 1, double(work), [&](int64_t u, int64_t) {
      const int64_t p = u / ncol, c0 = (u % ncol) * kColBlock;
      rows(acc + p * L + c0, p, c0, std::min(kColBlock, L - c0), 0, ly.R);
    });
    return;
  }
  const int64_t nout = ly.nout;
  std::vector<Acc> part(nsplit * nout, id);
  parallel::for_chunks(units * nsplit, 1, double(work), [&](int64_t u, int64_t) {
    const int64_t k = u % nsplit, v = u / nsplit;
    const int64_t p = v / ncol, c0 = (v % ncol) * kColBlock;
    rows(part.data() + k * nout + p * L + c0, p, c0, std::min(kColBlock, L - c0), ly.R * k / nsplit,
         ly.R * (k + 1) / nsplit);
  });
  parallel::for_each(nout, double(nout) * double(nsplit), [&](int64_t i) {
    Acc a = id;
    for (int64_t k = 0; k < nsplit; ++k) a = c(a, part[k * nout + i]);
    acc[i] = a;
  });
}

// One accumulator per output, in loop order.
template <class T, class Acc, class M, class C>
std::vector<Acc> fold(const Layout& ly, Acc id, M m, C c, const double* shift = nullptr) {
  std::vector<Acc> acc(ly.nout, id);
  const T* x = static_cast<const T*>(ly.xc.raw_data());
  if (ly.rows)
    fold_rows<T, Acc>(ly, x, id, m, c, shift, acc.data());
  else
    fold_cols<T, Acc>(ly, x, id, m, c, shift, acc.data());
  return acc;
}

// ---------------------------------------------------------------- output

// The output tensor from value(i) for the outputs in loop order: a reshape of the loop-order
// buffer when the loop visits the kept axes in their order, else a permuted copy.
template <class O, class F>
Tensor emit(const Layout& ly, DType dt, const Shape& keep, bool keepdim, F value) {
  Tensor buf = empty(ly.loop_shape, dt);
  O* p = buf.data<O>();
  parallel::for_each(ly.nout, double(ly.nout), [&](int64_t i) { p[i] = value(i); });
  Tensor out;
  if (std::is_sorted(ly.loop_axes.begin(), ly.loop_axes.end())) {
    out = buf.reshape(ly.out_shape);
  } else {
    out = empty(ly.out_shape, dt);
    const Shape ost = contiguous_strides(ly.out_shape);
    Shape st;
    for (int64_t a : ly.loop_axes) st.push_back(ost[a]);
    Tensor(out.storage(), ly.loop_shape, st, 0, dt).copy_(buf);
  }
  return keepdim ? out.reshape(keep) : out;
}

// Output for an input without elements: every output (if any) is the fold of nothing.
Tensor empty_input(const Tensor& x, const Shape& axes, bool keepdim, double value, DType dt) {
  return full(keepdim ? reduce_keepdim_shape(x.shape(), axes) : reduce_drop_axes(x.shape(), axes), value, dt);
}

template <class T> constexpr bool is_intlike =
    std::is_same_v<T, int32_t> || std::is_same_v<T, int64_t> || std::is_same_v<T, uint8_t> || std::is_same_v<T, bool>;

[[noreturn]] void bad_dtype(Reduce op, DType dt) {
  throw Error(detail::cat(reduce_name(op), ": unsupported dtype ", dtype_name(dt)));
}

template <class T>
uint8_t truth(T v) {
  if constexpr (is_f16<T>)
    return static_cast<float>(v) != 0.0f;
  else
    return v != T(0);  // NaN != 0, so NaN is true (as NumPy and PyTorch)
}

// Max (kMax) or Min of T, keeping the dtype.
template <class T, bool kMax>
std::vector<T> fold_extreme(const Layout& ly) {
  auto ident = [](T v, double) { return v; };
  if constexpr (kMax) {
    const T id = std::numeric_limits<T>::has_infinity ? -std::numeric_limits<T>::infinity()
                                                      : std::numeric_limits<T>::lowest();
    return fold<T, T>(ly, id, ident, NanMax{});
  } else {
    const T id = std::numeric_limits<T>::has_infinity ? std::numeric_limits<T>::infinity()
                                                      : std::numeric_limits<T>::max();
    return fold<T, T>(ly, id, ident, NanMin{});
  }
}

}  // namespace

// ---------------------------------------------------------------- reduce

Tensor reduce(Reduce op, const Tensor& x, const Shape& axes, bool keepdim) {
  const Shape keep = reduce_keepdim_shape(x.shape(), axes);
  const DType dt = x.dtype();
  const bool intlike = dt == DType::Int32 || dt == DType::Int64 || dt == DType::UInt8 || dt == DType::Bool;
  if (x.numel() == 0) {
    const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
    switch (op) {
      case Reduce::Sum: return empty_input(x, axes, keepdim, 0.0, intlike ? DType::Int64 : dt);
      case Reduce::Prod: return empty_input(x, axes, keepdim, 1.0, intlike ? DType::Int64 : dt);
      case Reduce::Mean: return empty_input(x, axes, keepdim, nan, dt);
      case Reduce::LogSumExp: return empty_input(x, axes, keepdim, -inf, dt);
      case Reduce::Any: return empty_input(x, axes, keepdim, 0.0, DType::Bool);
      case Reduce::All: return empty_input(x, axes, keepdim, 1.0, DType::Bool);
      case Reduce::Max: case Reduce::Min: return empty_input(x, axes, keepdim, 0.0, dt);  // no outputs
    }
  }
  const Layout ly = make_layout(x, axes);
  Tensor out;
  dispatch(dt, [&](auto tag) {
    using T = decltype(tag);
    constexpr bool fl = std::is_floating_point_v<T>;
    auto to_double = [](T v, double) { return static_cast<double>(v); };
    switch (op) {
      case Reduce::Sum:
      case Reduce::Prod:
        if constexpr (fl) {
          auto acc = op == Reduce::Sum ? fold<T, double>(ly, 0.0, to_double, Plus{})
                                       : fold<T, double>(ly, 1.0, to_double, Times{});
          out = emit<T>(ly, dt, keep, keepdim, [&](int64_t i) { return static_cast<T>(acc[i]); });
        } else if constexpr (is_intlike<T>) {
          auto to_i64 = [](T v, double) { return static_cast<int64_t>(v); };
          auto acc = op == Reduce::Sum ? fold<T, int64_t>(ly, int64_t(0), to_i64, WrapPlus{})
                                       : fold<T, int64_t>(ly, int64_t(1), to_i64, WrapTimes{});
          out = emit<int64_t>(ly, DType::Int64, keep, keepdim, [&](int64_t i) { return acc[i]; });
        } else {
          bad_dtype(op, dt);
        }
        break;
      case Reduce::Mean:
        if constexpr (fl) {
          auto acc = fold<T, double>(ly, 0.0, to_double, Plus{});
          const double n = static_cast<double>(ly.nred);
          out = emit<T>(ly, dt, keep, keepdim, [&](int64_t i) { return static_cast<T>(acc[i] / n); });
        } else {
          bad_dtype(op, dt);
        }
        break;
      case Reduce::Max:
      case Reduce::Min:
        if constexpr (fl || (is_intlike<T> && !std::is_same_v<T, bool>)) {
          auto acc = op == Reduce::Max ? fold_extreme<T, true>(ly) : fold_extreme<T, false>(ly);
          out = emit<T>(ly, dt, keep, keepdim, [&](int64_t i) { return acc[i]; });
        } else {
          bad_dtype(op, dt);
        }
        break;
      case Reduce::LogSumExp:
        if constexpr (fl) {
          // log sum exp(x) = m + log sum exp(x - m) with m the max, so no term overflows. A non-finite
          // max (all -inf, or an inf or NaN present) is not subtracted: the sum then gives -inf, inf
          // or NaN by itself.
          auto mx = fold_extreme<T, true>(ly);
          std::vector<double> shift(ly.nout);
          for (int64_t i = 0; i < ly.nout; ++i) shift[i] = std::isfinite(mx[i]) ? static_cast<double>(mx[i]) : 0.0;
          auto acc = fold<T, double>(
              ly, 0.0, [](T v, double s) { return std::exp(static_cast<double>(v) - s); }, Plus{}, shift.data());
          out = emit<T>(ly, dt, keep, keepdim,
                        [&](int64_t i) { return static_cast<T>(std::log(acc[i]) + shift[i]); });
        } else {
          bad_dtype(op, dt);
        }
        break;
      case Reduce::Any:
      case Reduce::All: {
        auto tr = [](T v, double) { return truth(v); };
        auto acc = op == Reduce::Any ? fold<T, uint8_t>(ly, uint8_t(0), tr, Or{})
                                     : fold<T, uint8_t>(ly, uint8_t(1), tr, And{});
        out = emit<bool>(ly, DType::Bool, keep, keepdim, [&](int64_t i) { return acc[i] != 0; });
        break;
      }
    }
  });
  return out;
}

// ---------------------------------------------------------------- argmax / argmin

namespace {

// Whether v beats the current best. NaN counts as larger than every number; ties keep the
// earlier index (strict comparisons, elements visited in index order).
template <bool kMax, class T>
inline bool beats(T v, T best) {
  if constexpr (kMax)
    return v > best || (v != v && best == best);
  else
    return v < best || (best != best && v == v);
}

template <bool kMax>
Tensor arg_extreme(const Tensor& x, int64_t dim, bool keepdim) {
  if (x.dim() == 0) return zeros({}, DType::Int64);
  const Shape out_shape = keepdim ? reduce_keepdim_shape(x.shape(), {dim}) : reduce_drop_axes(x.shape(), {dim});
  Tensor out = empty(out_shape, DType::Int64);
  if (out.numel() == 0) return out;
  const Tensor xc = x.contiguous();
  // x is (A, K, B) with K the reduced dim.
  int64_t A = 1, B = 1;
  const int64_t K = x.shape()[dim];
  for (int64_t d = 0; d < dim; ++d) A *= x.shape()[d];
  for (int64_t d = dim + 1; d < x.dim(); ++d) B *= x.shape()[d];
  int64_t* o = out.data<int64_t>();
  dispatch(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_floating_point_v<T> || std::is_same_v<T, int32_t> || std::is_same_v<T, int64_t> ||
                  std::is_same_v<T, uint8_t>) {
      const T* px = xc.data<T>();
      if (B == 1) {
        // Contiguous rows of K. Long rows (few outputs) are scanned in pieces; the pieces' winners
        // are compared in index order, so ties still go to the first index.
        auto scan = [&](const T* row, int64_t lo, int64_t hi, T& best) {
          int64_t bi = lo;
          best = row[lo];
          for (int64_t k = lo + 1; k < hi; ++k)
            if (beats<kMax>(row[k], best)) { best = row[k]; bi = k; }
          return bi;
        };
        const int64_t nsplit = (A < kUnits && K >= 2 * kGrain) ? std::min(ceil_div(kUnits, A), K / kGrain) : 1;
        std::vector<int64_t> pi(A * nsplit);
        std::vector<T> pv(A * nsplit);
        parallel::for_each(A * nsplit, double(A) * double(K), [&](int64_t u) {
          const int64_t a = u / nsplit, k = u % nsplit;
          pi[u] = scan(px + a * K, K * k / nsplit, K * (k + 1) / nsplit, pv[u]);
        });
        for (int64_t a = 0; a < A; ++a) {
          int64_t bi = pi[a * nsplit];
          T best = pv[a * nsplit];
          for (int64_t k = 1; k < nsplit; ++k)
            if (beats<kMax>(pv[a * nsplit + k], best)) { best = pv[a * nsplit + k]; bi = pi[a * nsplit + k]; }
          o[a] = bi;
        }
      } else {
        // Columns: walk the K rows of each (a, column block), keeping a best value and index per column.
        const int64_t ncol = ceil_div(B, kColBlock);
        parallel::for_chunks(A * ncol, 1, double(A) * double(K) * double(B), [&](int64_t u, int64_t) {
          const int64_t a = u / ncol, c0 = (u % ncol) * kColBlock, w = std::min(kColBlock, B - c0);
          std::vector<T> best(px + a * K * B + c0, px + a * K * B + c0 + w);
          int64_t* bi = o + a * B + c0;
          std::fill(bi, bi + w, int64_t(0));
          for (int64_t k = 1; k < K; ++k) {
            const T* row = px + (a * K + k) * B + c0;
            for (int64_t l = 0; l < w; ++l)
              if (beats<kMax>(row[l], best[l])) { best[l] = row[l]; bi[l] = k; }
          }
        });
      }
    } else {
      throw Error(detail::cat(kMax ? "argmax" : "argmin", ": unsupported dtype ", dtype_name(x.dtype())));
    }
  });
  return out;
}

}  // namespace

Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) { return arg_extreme<true>(x, dim, keepdim); }
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim) { return arg_extreme<false>(x, dim, keepdim); }

// ---------------------------------------------------------------- var / std / norm

Tensor var(const Tensor& x, const Shape& axes, int64_t correction, bool keepdim, bool take_sqrt) {
  if (x.numel() == 0) return empty_input(x, axes, keepdim, std::numeric_limits<double>::quiet_NaN(), x.dtype());
  const Layout ly = make_layout(x, axes);
  Tensor out;
  dispatch_float(x.dtype(), take_sqrt ? "std" : "var", [&](auto tag) {
    using T = decltype(tag);
    // Two passes: the mean, then the sum of squared deviations from it (no cancellation, unlike
    // E[x^2] - E[x]^2).
    auto sum = fold<T, double>(ly, 0.0, [](T v, double) { return static_cast<double>(v); }, Plus{});
    std::vector<double> mean(ly.nout);
    for (int64_t i = 0; i < ly.nout; ++i) mean[i] = sum[i] / static_cast<double>(ly.nred);
    auto ss = fold<T, double>(
        ly, 0.0,
        [](T v, double m) {
          const double d = static_cast<double>(v) - m;
          return d * d;
        },
        Plus{}, mean.data());
    // As PyTorch: divide by max(0, N - correction), so too few elements give inf or NaN.
    const double denom = static_cast<double>(std::max<int64_t>(ly.nred - correction, 0));
    out = emit<T>(ly, x.dtype(), reduce_keepdim_shape(x.shape(), axes), keepdim, [&](int64_t i) {
      const double v = ss[i] / denom;
      return static_cast<T>(take_sqrt ? std::sqrt(v) : v);
    });
  });
  return out;
}

Tensor norm(const Tensor& x, double p, const Shape& axes, bool keepdim) {
  if (x.numel() == 0) return empty_input(x, axes, keepdim, 0.0, x.dtype());
  const Layout ly = make_layout(x, axes);
  const Shape keep = reduce_keepdim_shape(x.shape(), axes);
  Tensor out;
  dispatch_float(x.dtype(), "norm", [&](auto tag) {
    using T = decltype(tag);
    if (std::isinf(p)) {
      auto acc = fold<T, T>(ly, T(0), [](T v, double) { return std::abs(v); }, NanMax{});
      out = emit<T>(ly, x.dtype(), keep, keepdim, [&](int64_t i) { return acc[i]; });
    } else if (p == 1.0) {
      auto acc = fold<T, double>(ly, 0.0, [](T v, double) { return std::abs(static_cast<double>(v)); }, Plus{});
      out = emit<T>(ly, x.dtype(), keep, keepdim, [&](int64_t i) { return static_cast<T>(acc[i]); });
    } else if (p == 2.0) {
      auto acc = fold<T, double>(
          ly, 0.0, [](T v, double) { return static_cast<double>(v) * static_cast<double>(v); }, Plus{});
      out = emit<T>(ly, x.dtype(), keep, keepdim, [&](int64_t i) { return static_cast<T>(std::sqrt(acc[i])); });
    } else {
      auto acc = fold<T, double>(
          ly, 0.0, [p](T v, double) { return std::pow(std::abs(static_cast<double>(v)), p); }, Plus{});
      out = emit<T>(ly, x.dtype(), keep, keepdim,
                    [&](int64_t i) { return static_cast<T>(std::pow(acc[i], 1.0 / p)); });
    }
  });
  return out;
}

}  // namespace cortex::kernels::cpu
