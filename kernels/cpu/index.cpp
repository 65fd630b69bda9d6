// CPU kernels of the index family: OpenMP over independent rows, strided_for for copy-like loops.
#include "kernels/cpu/index.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <utility>

#include "tensor/strided.h"

namespace cortex::kernels::cpu {
namespace {

// Work (elements touched) below which a loop stays on one thread: the fork costs more than it saves.
constexpr int64_t kGrain = 1 << 15;
// topk keeps a sorted insertion buffer up to this k; above it, nth_element on (value, index) pairs.
constexpr int64_t kSmallK = 32;

// Index tensors are int32 or int64 (the entries have checked).
template <class F>
decltype(auto) dispatch_index(DType dt, F&& f) {
  if (dt == DType::Int32) return f(int32_t{});
  return f(int64_t{});
}

// The dtypes that add and order: float32, float64, int32, int64.
template <class F>
decltype(auto) dispatch_num(DType dt, const char* op, F&& f) {
  switch (dt) {
    case DType::Float32: return f(float{});
    case DType::Float64: return f(double{});
    case DType::Int32: return f(int32_t{});
    case DType::Int64: return f(int64_t{});
    default: break;
  }
  throw Error(detail::cat(op, ": expected a float32, float64, int32 or int64 tensor, found ", dtype_name(dt)));
}

Shape drop(const Shape& s, int64_t d) {
  Shape r = s;
  r.erase(r.begin() + d);
  return r;
}
int64_t prod(const Shape& s, int64_t begin, int64_t end) {
  int64_t p = 1;
  for (int64_t d = begin; d < end; ++d) p *= s[d];
  return p;
}

inline bool out_of_range(int64_t v, int64_t n) { return static_cast<uint64_t>(v) >= static_cast<uint64_t>(n); }

// Called after a parallel kernel saw a bad index (it skipped it and raised a flag, since an
// exception cannot leave an OpenMP region): finds the first one in row-major order, so the
// message does not depend on the thread count.
template <class I>
[[noreturn]] void throw_bad_index(const char* op, const Tensor& index, int64_t n, int64_t dim) {
  const I* p = index.data<I>();
  const int64_t m = index.numel();
  for (int64_t l = 0; l < m; ++l) {
    const int64_t v = p[offset_of(l, index.shape(), index.strides())];
    if (out_of_range(v, n))
      throw Error(detail::cat(op, ": index ", v, " is out of range for dim ", dim, " of size ", n));
  }
  throw Error(detail::cat(op, ": an index is out of range for dim ", dim, " of size ", n));
}

// A 1-D index as int64 values, checked against [0, n).
std::vector<int64_t> read_index_1d(const char* op, const Tensor& index, int64_t n, int64_t dim) {
  std::vector<int64_t> v(index.numel());
  dispatch_index(index.dtype(), [&](auto it) {
    using I = decltype(it);
    const I* p = index.data<I>();
    const int64_t s = index.dim() == 0 ? 0 : index.stride(0);
    for (size_t i = 0; i < v.size(); ++i) {
      v[i] = p[static_cast<int64_t>(i) * s];
      CORTEX_CHECK(!out_of_range(v[i], n), op, ": index ", v[i], " is out of range for dim ", dim, " of size ", n);
    }
  });
  return v;
}

// out[p] = x[p with coordinate `dim` replaced by idx[p]] for every p of `shape`. x's strides come
// in with the dim stride zeroed so the plan walks x's other coordinates and the index adds the
// rest. Returns false when an index was out of [0, n) (its row is skipped).
template <class T, class I>
bool gather_loop(T* out, const Shape& out_strides, const T* x, Shape xs, int64_t dim, int64_t n, const I* idx,
                 const Shape& is, const Shape& shape) {
  const int64_t sd = xs[dim];
  xs[dim] = 0;
  const auto plan = make_plan<3>(shape, std::array<Shape, 3>{out_strides, is, xs});
  std::atomic<bool> bad{false};
  strided_for<3>(plan, [&](int64_t cnt, const std::array<int64_t, 3>& off, const std::array<int64_t, 3>& st) {
    T* o = out + off[0];
    const I* ip = idx + off[1];
    const T* xp = x + off[2];
    // Check the row's indices first (a reduction that vectorizes), then copy without a branch;
    // a row with a bad index is skipped, the caller throws.
    bool row_bad = false;
    for (int64_t i = 0; i < cnt; ++i) row_bad |= out_of_range(ip[i * st[1]], n);
    if (row_bad) {
      bad.store(true, std::memory_order_relaxed);
    } else if (st[0] == 1 && st[1] == 1 && st[2] == 0) {
      // gather along a row-major last dim: the common case, kept free of stride multiplies
      for (int64_t i = 0; i < cnt; ++i) o[i] = xp[ip[i] * sd];
    } else {
      for (int64_t i = 0; i < cnt; ++i) o[i * st[0]] = xp[i * st[2] + ip[i * st[1]] * sd];
    }
  });
  return !bad.load();
}

// ---- ordering: NaN above every number and equal to itself (NumPy's sort order) ----
template <class T>
inline bool order_less(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) return a < b || (std::isnan(b) && !std::isnan(a));
  else return a < b;
}

template <class T, bool Largest>
inline bool better(T a, T b) {
  if constexpr (Largest) return order_less(b, a);
  else return order_less(a, b);
}

// x's rows along dim; out (vals, inds) contiguous with size k along dim.
template <class T, bool Largest>
void topk_rows(const Tensor& x, int64_t k, int64_t dim, const Tensor& vals, const Tensor& inds) {
  const int64_t n = x.size(dim);
  const Shape O = drop(x.shape(), dim), xs = drop(x.strides(), dim), os = drop(vals.strides(), dim);
  const int64_t rows = shape_numel(O), xsd = x.stride(dim), osd = vals.stride(dim);
  if (rows == 0 || k == 0) return;
  const T* xp = x.data<T>();
  T* vp = vals.data<T>();
  int64_t* ip = inds.data<int64_t>();
  const bool small = k <= kSmallK;
#pragma omp parallel if (rows * n >= kGrain && rows > 1)
  {
    std::vector<std::pair<T, int64_t>> buf;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const T* row = xp + offset_of(r, O, xs);
      const int64_t oo = offset_of(r, O, os);
      if (small) {
        // One pass keeping the best k so far, best first. An element enters only when strictly
        // better than the k-th, and the scan goes by increasing index, so ties keep the lower index.
        T bv[kSmallK];
        int64_t bi[kSmallK];
        int64_t cnt = 0;
        auto insert = [&](T v, int64_t i) {
          int64_t j = cnt < k ? cnt++ : k - 1;
          for (; j > 0 && better<T, Largest>(v, bv[j - 1]); --j) {
            bv[j] = bv[j - 1];
            bi[j] = bi[j - 1];
          }
          bv[j] = v;
          bi[j] = i;
        };
        int64_t i = 0;
        for (; i < n && cnt < k; ++i) insert(row[i * xsd], i);
        if (xsd == 1) {
          // Most blocks of a long row cannot enter the top k: test a block at once with a
          // comparison that vectorizes. It is true whenever better() is (and for any NaN), so a
          // block it passes over holds no candidate.
          constexpr int64_t kBlk = 16;
          for (; i + kBlk <= n; i += kBlk) {
            const T w = bv[k - 1];
            bool any = false;
            for (int64_t t = 0; t < kBlk; ++t) {
              if constexpr (Largest) any |= !(row[i + t] <= w);
              else any |= !(row[i + t] >= w);
            }
            if (!any) continue;
            for (int64_t t = 0; t < kBlk; ++t)
              if (better<T, Largest>(row[i + t], bv[k - 1])) insert(row[i + t], i + t);
          }
        }
        for (; i < n; ++i)
          if (better<T, Largest>(row[i * xsd], bv[k - 1])) insert(row[i * xsd], i);
        for (int64_t j = 0; j < k; ++j) {
          vp[oo + j * osd] = bv[j];
          ip[oo + j * osd] = bi[j];
        }
      } else {
        buf.resize(n);
        for (int64_t i = 0; i < n; ++i) buf[i] = {row[i * xsd], i};
        // A strict total order on (value, index), so the selection is unique.
        auto cmp = [](const std::pair<T, int64_t>& a, const std::pair<T, int64_t>& b) {
          if (better<T, Largest>(a.first, b.first)) return true;
          if (better<T, Largest>(b.first, a.first)) return false;
          return a.second < b.second;
        };
        if (k < n) std::nth_element(buf.begin(), buf.begin() + k, buf.end(), cmp);
        std::sort(buf.begin(), buf.begin() + k, cmp);
        for (int64_t j = 0; j < k; ++j) {
          vp[oo + j * osd] = buf[j].first;
          ip[oo + j * osd] = buf[j].second;
        }
      }
    }
  }
}

template <class T>
void sort_rows(const Tensor& x, int64_t dim, bool descending, const Tensor& vals, const Tensor& inds) {
  const int64_t n = x.size(dim);
  const Shape O = drop(x.shape(), dim), xs = drop(x.strides(), dim), os = drop(inds.strides(), dim);
  const int64_t rows = shape_numel(O), xsd = x.stride(dim), osd = inds.stride(dim);
  if (rows == 0 || n == 0) return;
  const T* xp = x.data<T>();
  T* vp = vals.defined() ? vals.data<T>() : nullptr;
  int64_t* ip = inds.data<int64_t>();
#pragma omp parallel if (rows * n >= kGrain && rows > 1)
  {
    std::vector<std::pair<T, int64_t>> buf(n);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const T* row = xp + offset_of(r, O, xs);
      const int64_t oo = offset_of(r, O, os);
      for (int64_t i = 0; i < n; ++i) buf[i] = {row[i * xsd], i};
      // Comparing values only: stability keeps equal values (NaNs included) in index order.
      if (descending)
        std::stable_sort(buf.begin(), buf.end(), [](const auto& a, const auto& b) { return order_less(b.first, a.first); });
      else
        std::stable_sort(buf.begin(), buf.end(), [](const auto& a, const auto& b) { return order_less(a.first, b.first); });
      for (int64_t j = 0; j < n; ++j) ip[oo + j * osd] = buf[j].second;
      if (vp)
        for (int64_t j = 0; j < n; ++j) vp[oo + j * osd] = buf[j].first;
    }
  }
}

template <class T>
using acc_t = std::conditional_t<std::is_floating_point_v<T>, double, uint64_t>;

// Integers accumulate in uint64 so that overflow wraps (defined) as PyTorch's int64 does.
template <class T>
inline acc_t<T> to_acc(T v) {
  if constexpr (std::is_floating_point_v<T>) return static_cast<double>(v);
  else return static_cast<uint64_t>(static_cast<int64_t>(v));
}
template <class T>
inline T from_acc(acc_t<T> a) {
  if constexpr (std::is_floating_point_v<T>) return static_cast<T>(a);
  else return static_cast<T>(static_cast<int64_t>(a));
}

template <bool Upper>
Tensor triangle(const Tensor& x, int64_t k) {
  const int64_t nd = x.dim(), R = x.size(-2), C = x.size(-1);
  const Shape B(x.shape().begin(), x.shape().end() - 2), bs(x.strides().begin(), x.strides().end() - 2);
  const int64_t rs = x.stride(-2), cs = x.stride(-1);
  Tensor out = empty(x.shape(), x.dtype());
  const int64_t rows = prod(x.shape(), 0, nd - 1);
  if (rows == 0 || C == 0) return out;
  k = std::clamp<int64_t>(k, -R - 1, C + 1);  // beyond these every row is all-kept or all-zeroed; avoids overflow
  dispatch(x.dtype(), [&](auto t) {
    using T = decltype(t);
    const T* xp = x.data<T>();
    T* op = out.data<T>();
#pragma omp parallel for schedule(static) if (rows * C >= kGrain)
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t i = r % R;
      const T* xr = xp + offset_of(r / R, B, bs) + i * rs;
      T* orow = op + r * C;
      // kept columns [lo, hi): tril keeps j <= i + k, triu keeps j >= i + k
      const int64_t lo = Upper ? std::clamp<int64_t>(i + k, 0, C) : 0;
      const int64_t hi = Upper ? C : std::clamp<int64_t>(i + k + 1, 0, C);
      for (int64_t j = 0; j < lo; ++j) orow[j] = T{};
      for (int64_t j = lo; j < hi; ++j) orow[j] = xr[j * cs];
      for (int64_t j = hi; j < C; ++j) orow[j] = T{};
    }
  });
  return out;
}

}  // namespace

Tensor concat(const std::vector<Tensor>& xs, int64_t dim) {
  Shape os = xs[0].shape();
  os[dim] = 0;
  for (const Tensor& x : xs) os[dim] += x.size(dim);
  Tensor out = empty(os, xs[0].dtype());
  dispatch(out.dtype(), [&](auto t) {
    using T = decltype(t);
    int64_t at = 0;  // where the next input starts along dim
    for (const Tensor& x : xs) {
      if (x.numel() > 0) {
        T* base = out.data<T>() + at * out.stride(dim);
        const T* xp = x.data<T>();
        // x's shape walked with out's strides from `base`: one strided copy per input.
        const auto plan = make_plan<2>(x.shape(), std::array<Shape, 2>{out.strides(), x.strides()});
        strided_for<2>(plan, [&](int64_t cnt, const std::array<int64_t, 2>& off, const std::array<int64_t, 2>& st) {
          T* d = base + off[0];
          const T* s = xp + off[1];
          if (st[0] == 1 && st[1] == 1) {
            std::memcpy(static_cast<void*>(d), static_cast<const void*>(s), static_cast<size_t>(cnt) * sizeof(T));
          } else {
            for (int64_t i = 0; i < cnt; ++i) d[i * st[0]] = s[i * st[1]];
          }
        });
      }
      at += x.size(dim);
    }
  });
  return out;
}

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  Tensor out = empty(index.shape(), x.dtype());
  const int64_t n = x.size(dim);
  dispatch(x.dtype(), [&](auto t) {
    using T = decltype(t);
    dispatch_index(index.dtype(), [&](auto it) {
      using I = decltype(it);
      if (!gather_loop<T, I>(out.data<T>(), out.strides(), x.data<T>(), x.strides(), dim, n, index.data<I>(),
                             index.strides(), index.shape()))
        throw_bad_index<I>("gather", index, n, dim);
    });
  });
  return out;
}

Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  Tensor out = x.clone();
  const Shape& S = index.shape();
  const int64_t nd = index.dim(), K = S[dim], n = x.size(dim);
  // Each row of O (index's shape without dim) owns one line of out along dim: threads split rows,
  // and a row adds its K terms in index order, so sums are deterministic for any thread count.
  const Shape O = drop(S, dim);
  const Shape is = drop(index.strides(), dim), ss = drop(src.strides(), dim), os = drop(out.strides(), dim);
  const int64_t rows = shape_numel(O), isd = index.stride(dim), ssd = src.stride(dim), osd = out.stride(dim);
  if (rows == 0 || K == 0) return out;
  // When dim is the last dim, a row's terms are adjacent: walk row by row. Otherwise adjacent
  // rows are adjacent in memory: walk a block of rows for each j.
  const bool dim_inner = dim == nd - 1;
  constexpr int64_t kB = 256;
  const int64_t nblocks = (rows + kB - 1) / kB;
  dispatch_num(x.dtype(), "scatter_add", [&](auto t) {
    using T = decltype(t);
    dispatch_index(index.dtype(), [&](auto it) {
      using I = decltype(it);
      const I* ip = index.data<I>();
      const T* sp = src.data<T>();
      T* op = out.data<T>();
      std::atomic<bool> bad{false};
#pragma omp parallel for schedule(static) if (rows * K >= kGrain && nblocks > 1)
      for (int64_t b = 0; b < nblocks; ++b) {
        const int64_t r0 = b * kB, nr = std::min(kB, rows - r0);
        int64_t io[kB], so[kB], oo[kB];
        for (int64_t q = 0; q < nr; ++q) {
          io[q] = offset_of(r0 + q, O, is);
          so[q] = offset_of(r0 + q, O, ss);
          oo[q] = offset_of(r0 + q, O, os);
        }
        bool blk_bad = false;
        auto step = [&](int64_t q, int64_t j) {
          const int64_t v = ip[io[q] + j * isd];
          if (out_of_range(v, n)) {
            blk_bad = true;
            return;
          }
          op[oo[q] + v * osd] += sp[so[q] + j * ssd];
        };
        if (dim_inner) {
          for (int64_t q = 0; q < nr; ++q)
            for (int64_t j = 0; j < K; ++j) step(q, j);
        } else {
          for (int64_t j = 0; j < K; ++j)
            for (int64_t q = 0; q < nr; ++q) step(q, j);
        }
        if (blk_bad) bad.store(true, std::memory_order_relaxed);
      }
      if (bad.load()) throw_bad_index<I>("scatter_add", index, n, dim);
    });
  });
  return out;
}

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  const int64_t n = x.size(dim);
  const std::vector<int64_t> idx = read_index_1d("index_select", index, n, dim);
  const int64_t m = static_cast<int64_t>(idx.size());
  Shape os = x.shape();
  os[dim] = m;
  Tensor out = empty(os, x.dtype());
  if (out.numel() == 0) return out;
  const int64_t outer = prod(os, 0, dim), inner = prod(os, dim + 1, x.dim());
  const size_t es = x.element_size(), bytes = static_cast<size_t>(inner) * es;
  if (x.is_contiguous() && bytes >= 64) {
    // x is (outer, n, inner): whole inner blocks are rows of an embedding-style table.
    const char* xp = static_cast<const char*>(x.raw_data());
    char* op = static_cast<char*>(out.raw_data());
#pragma omp parallel for collapse(2) schedule(static) if (outer * m * inner >= kGrain)
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < m; ++i)
        std::memcpy(op + (o * m + i) * bytes, xp + (o * n + idx[i]) * bytes, bytes);
    return out;
  }
  // Otherwise a gather whose index is broadcast over the other dims (stride 0 there).
  Shape is(os.size(), 0);
  is[dim] = 1;
  dispatch(x.dtype(), [&](auto t) {
    using T = decltype(t);
    gather_loop<T, int64_t>(out.data<T>(), out.strides(), x.data<T>(), x.strides(), dim, n, idx.data(), is, os);
  });
  return out;
}

Tensor index_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  const int64_t n = x.size(dim);
  const std::vector<int64_t> idx = read_index_1d("index_add", index, n, dim);
  const int64_t m = static_cast<int64_t>(idx.size());
  Tensor out = x.clone();
  const Tensor s = src.contiguous();
  const int64_t outer = prod(x.shape(), 0, dim), inner = prod(x.shape(), dim + 1, x.dim());
  if (out.numel() == 0 || m == 0) return out;
  // out is (outer, n, inner), s is (outer, m, inner). Threads split (outer, inner-block) positions
  // and each walks the index in order: one owner per output element, a fixed order of sums.
  constexpr int64_t kCB = 1024;
  const int64_t nblk = (inner + kCB - 1) / kCB;
  dispatch_num(x.dtype(), "index_add", [&](auto t) {
    using T = decltype(t);
    T* op = out.data<T>();
    const T* sp = s.data<T>();
#pragma omp parallel for collapse(2) schedule(static) if (outer * m * inner >= kGrain && outer * nblk > 1)
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t b = 0; b < nblk; ++b) {
        const int64_t c0 = b * kCB, c1 = std::min(inner, c0 + kCB);
        for (int64_t i = 0; i < m; ++i) {
          T* d = op + (o * n + idx[i]) * inner;
          const T* a = sp + (o * m + i) * inner;
          for (int64_t c = c0; c < c1; ++c) d[c] += a[c];
        }
      }
  });
  return out;
}

TopK topk(const Tensor& x, int64_t k, int64_t dim, bool largest) {
  Shape os = x.shape();
  os[dim] = k;
  TopK r{empty(os, x.dtype()), empty(os, DType::Int64)};
  dispatch_num(x.dtype(), "topk", [&](auto t) {
    using T = decltype(t);
    if (largest) topk_rows<T, true>(x, k, dim, r.values, r.indices);
    else topk_rows<T, false>(x, k, dim, r.values, r.indices);
  });
  return r;
}

TopK sort(const Tensor& x, int64_t dim, bool descending, bool want_values) {
  TopK r;
  if (want_values) r.values = empty(x.shape(), x.dtype());
  r.indices = empty(x.shape(), DType::Int64);
  dispatch_num(x.dtype(), "sort", [&](auto t) {
    using T = decltype(t);
    sort_rows<T>(x, dim, descending, r.values, r.indices);
  });
  return r;
}

Tensor cumsum(const Tensor& x, int64_t dim) {
  const Tensor xc = x.contiguous();
  Tensor out = empty(x.shape(), x.dtype());
  if (out.numel() == 0) return out;
  const int64_t n = x.size(dim), outer = prod(x.shape(), 0, dim), inner = prod(x.shape(), dim + 1, x.dim());
  dispatch_num(x.dtype(), "cumsum", [&](auto t) {
    using T = decltype(t);
    using A = acc_t<T>;
    const T* xp = xc.data<T>();
    T* op = out.data<T>();
    if (inner == 1) {
      // x is (outer, n): a running sum per row.
#pragma omp parallel for schedule(static) if (outer * n >= kGrain && outer > 1)
      for (int64_t o = 0; o < outer; ++o) {
        A acc{};
        for (int64_t j = 0; j < n; ++j) {
          acc += to_acc(xp[o * n + j]);
          op[o * n + j] = from_acc<T>(acc);
        }
      }
    } else {
      // x is (outer, n, inner): running sums of a block of inner columns advance together,
      // reading contiguous memory.
      constexpr int64_t kCB = 256;
      const int64_t nblk = (inner + kCB - 1) / kCB;
#pragma omp parallel for collapse(2) schedule(static) if (outer * n * inner >= kGrain && outer * nblk > 1)
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t b = 0; b < nblk; ++b) {
          const int64_t c0 = b * kCB, w = std::min(kCB, inner - c0);
          A acc[kCB] = {};
          for (int64_t j = 0; j < n; ++j) {
            const T* a = xp + (o * n + j) * inner + c0;
            T* d = op + (o * n + j) * inner + c0;
            for (int64_t c = 0; c < w; ++c) {
              acc[c] += to_acc(a[c]);
              d[c] = from_acc<T>(acc[c]);
            }
          }
        }
    }
  });
  return out;
}

Tensor flip(const Tensor& x, int64_t dim) {
  Tensor out = empty(x.shape(), x.dtype());
  if (out.numel() == 0) return out;
  // Write out with a negated stride along dim, starting from its last slice.
  Shape os = out.strides();
  const int64_t start = (x.size(dim) - 1) * os[dim];
  os[dim] = -os[dim];
  const auto plan = make_plan<2>(x.shape(), std::array<Shape, 2>{os, x.strides()});
  dispatch(x.dtype(), [&](auto t) {
    using T = decltype(t);
    T* base = out.data<T>() + start;
    const T* xp = x.data<T>();
    strided_for<2>(plan, [&](int64_t cnt, const std::array<int64_t, 2>& off, const std::array<int64_t, 2>& st) {
      T* d = base + off[0];
      const T* s = xp + off[1];
      for (int64_t i = 0; i < cnt; ++i) d[i * st[0]] = s[i * st[1]];
    });
  });
  return out;
}

Tensor tril(const Tensor& x, int64_t k) { return triangle<false>(x, k); }
Tensor triu(const Tensor& x, int64_t k) { return triangle<true>(x, k); }

}  // namespace cortex::kernels::cpu
