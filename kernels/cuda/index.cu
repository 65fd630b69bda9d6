// Index kernels on CUDA and the emulated CUDA device: concat, gather, index_select, flip, tril,
// triu, cumsum, index_add and scatter_add. Semantics are kernels/cpu/index.cpp's, bit for bit.
//
// The copy-like ops (concat, gather, index_select, flip, tril, triu) move elements without
// looking at them, so they dispatch on the element size (1, 2, 4, 8 bytes) and serve every dtype
// the CPU does with four instantiations. One thread per output element, operands read through
// an Indexer, so strided and transposed views need no contiguous copy.
//
// index_add: the issue suggests float atomics, but their order of addition depends on the
// schedule, so sums would differ from run to run and from the CPU. Instead each output element is
// owned by one thread that adds its contributions in index order, exactly as the CPU kernel
// does (d += a in T, from x's value); the host builds, for every destination slot, the ordered
// list of index positions that hit it (a CSR table), so a thread touches only its own terms.
// scatter_add likewise: a thread per output element scans its line of the index (K entries) in
// order and adds the src terms that point at it; O(K) reads per output element, which is the
// price of a fixed order without a per-line sort (fine for the index lengths models use).
//
// Index bounds: the CPU kernels throw on an index outside [0, n). A kernel cannot throw, so the
// launchers check the index on the host first (one copy of the index to host memory) and throw
// the CPU's message for the first bad index in row-major order; the kernels never see a bad one.
#include <cstdint>
#include <type_traits>
#include <vector>

#include "kernels/index.h"
// (last: see common.cuh)
#include "kernels/cuda/common.cuh"

namespace cortex::kernels::CORTEX_BACKEND {
namespace {

Shape drop(const Shape& s, int64_t d) {
  Shape r = s;
  r.erase(r.begin() + d);
  return r;
}

// Calls f(U{}) with U an unsigned integer of dt's element size (the copy ops move bits).
template <class F>
void dispatch_bits(size_t es, F&& f) {
  switch (es) {
    case 1: f(uint8_t{}); return;
    case 2: f(uint16_t{}); return;
    case 4: f(uint32_t{}); return;
    case 8: f(uint64_t{}); return;
    default: break;
  }
  throw Error(detail::cat("CUDA index kernel: unsupported element size ", es));
}

// float32, float64, int32, int64: the dtypes the CPU's cumsum and index_add accept.
template <class F>
void dispatch_num(DType dt, const char* op, F&& f) {
  switch (dt) {
    case DType::Float32: f(float{}); return;
    case DType::Float64: f(double{}); return;
    case DType::Int32: f(int32_t{}); return;
    case DType::Int64: f(int64_t{}); return;
    default: break;
  }
  throw Error(detail::cat(op, ": expected a float32, float64, int32 or int64 tensor, found ", dtype_name(dt)));
}

// The index's values in row-major order, on the host, checked against [0, n) with the CPU's message.
std::vector<int64_t> host_index(const char* op, const Tensor& index, int64_t n, int64_t dim) {
  const Tensor h = index.to(Device::cpu()).contiguous();
  std::vector<int64_t> v(static_cast<size_t>(h.numel()));
  for (size_t i = 0; i < v.size(); ++i)
    v[i] = h.dtype() == DType::Int32 ? h.data<int32_t>()[i] : h.data<int64_t>()[i];
  for (int64_t x : v)
    CORTEX_CHECK(static_cast<uint64_t>(x) < static_cast<uint64_t>(n), op, ": index ", x, " is out of range for dim ",
                 dim, " of size ", n);
  return v;
}

__device__ __forceinline__ int64_t at(const Indexer& ix, int k, int64_t i) {
  return ix.ndim == 1 ? i * ix.strides[k][0] : ix.offset(k, i);
}

// out[ix0(i)] = x[ix1(i)]: concat (one launch per input) and flip (negated out stride).
template <class T>
__global__ void copy_kernel(T* __restrict__ out, const T* __restrict__ x, Indexer ix, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[at(ix, 0, i)] = x[at(ix, 1, i)];
}

// out[i] = x[ix2(i) + idx[ix1(i)] * sd]: gather, and index_select (index broadcast over other dims).
template <class T, class I>
__global__ void gather_kernel(T* __restrict__ out, const T* __restrict__ x, const I* __restrict__ idx, Indexer ix,
                              int64_t sd, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[at(ix, 0, i)] = x[at(ix, 2, i) + static_cast<int64_t>(idx[at(ix, 1, i)]) * sd];
}

// Contiguous out of x's shape; element (.., r, c) kept when lo(r) <= c < hi(r), else zero bits.
template <class T, bool Upper>
__global__ void triangle_kernel(T* __restrict__ out, const T* __restrict__ x, Indexer ix, int64_t R, int64_t C,
                                int64_t k, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int64_t c = i % C, r = (i / C) % R;
  const bool keep = Upper ? c >= r + k : c <= r + k;
  out[i] = keep ? x[at(ix, 0, i)] : T{};
}

// One thread per line along dim: the CPU's running sum (double for floats, wrapping uint64 for
// integers), in the same order, so every prefix is the CPU's bit for bit.
template <class T>
__global__ void cumsum_kernel(T* __restrict__ out, const T* __restrict__ x, Indexer ix, int64_t len, int64_t xsd,
                              int64_t osd, int64_t rows) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= rows) return;
  const T* xp = x + at(ix, 0, r);
  T* op = out + at(ix, 1, r);
  if constexpr (std::is_floating_point_v<T>) {
    double acc = 0;
    for (int64_t j = 0; j < len; ++j) {
      acc += static_cast<double>(xp[j * xsd]);
      op[j * osd] = static_cast<T>(acc);
    }
  } else {
    uint64_t acc = 0;
    for (int64_t j = 0; j < len; ++j) {
      acc += static_cast<uint64_t>(static_cast<int64_t>(xp[j * xsd]));
      op[j * osd] = static_cast<T>(static_cast<int64_t>(acc));
    }
  }
}

// Thread i owns out element (row r of the other dims, slot j along dim): x's value plus the src
// terms whose index is j, in index order (list[beg[j] .. beg[j+1]) holds their positions).
template <class T>
__global__ void index_add_kernel(T* __restrict__ out, const T* __restrict__ x, const T* __restrict__ src,
                                 const int64_t* __restrict__ beg, const int64_t* __restrict__ list, Indexer ix,
                                 int64_t n, int64_t xsd, int64_t ssd, int64_t osd, int64_t total) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= total) return;
  const int64_t rows = total / n, r = i % rows, j = i / rows;
  T v = x[at(ix, 0, r) + j * xsd];
  const T* s = src + at(ix, 1, r);
  for (int64_t p = beg[j]; p < beg[j + 1]; ++p) v += s[list[p] * ssd];
  out[at(ix, 2, r) + j * osd] = v;
}

// The other dims of x (dim dropped), not merged, with index's sizes there and index's and src's
// strides: scatter_add needs each coordinate to test it against index's (smaller) extent.
struct Lines {
  int nd = 0;
  int64_t xsize[kMaxDims] = {};
  int64_t isize[kMaxDims] = {};
  int64_t istride[kMaxDims] = {};
  int64_t sstride[kMaxDims] = {};
};

// Thread i owns out element i of x's shape (ix: out, x offsets at x's shape; ix.strides[2] gives
// i's coordinate along dim via stride 1 there). Its line of the index (if inside index's extent)
// is scanned in order; each entry equal to the coordinate adds its src term.
template <class T, class I>
__global__ void scatter_add_kernel(T* __restrict__ out, const T* __restrict__ x, const I* __restrict__ idx,
                                   const T* __restrict__ src, Indexer ix, Lines ln, int64_t n, int64_t K, int64_t isd,
                                   int64_t ssd, int64_t total) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= total) return;
  const int64_t rows = total / n, j = i / rows;
  int64_t r = i % rows, io = 0, so = 0;
  bool inside = true;
  for (int d = ln.nd - 1; d >= 0; --d) {
    const int64_t c = r % ln.xsize[d];
    r /= ln.xsize[d];
    inside = inside && c < ln.isize[d];
    io += c * ln.istride[d];
    so += c * ln.sstride[d];
  }
  const int64_t rr = i % rows;
  T v = x[at(ix, 0, rr) + j * ix.strides[2][0]];
  if (inside)
    for (int64_t q = 0; q < K; ++q)
      if (static_cast<int64_t>(idx[io + q * isd]) == j) v += src[so + q * ssd];
  out[at(ix, 1, rr) + j * ix.strides[3][0]] = v;
}

template <bool Upper>
Tensor triangle(const Tensor& x, int64_t k) {
  const int64_t R = x.size(-2), C = x.size(-1);
  Tensor out = empty(x.shape(), x.dtype(), x.device());
  const int64_t n = out.numel();
  if (n == 0) return out;
  k = k < -R - 1 ? -R - 1 : (k > C + 1 ? C + 1 : k);  // as the CPU: beyond these nothing changes, no overflow
  const Indexer ix = make_indexer<1>(x.shape(), std::array<Shape, 1>{x.strides()});
  dispatch_bits(x.element_size(), [&](auto tag) {
    using T = decltype(tag);
    CORTEX_LAUNCH((triangle_kernel<T, Upper>), blocks_for(n), kBlock, 0, stream(), static_cast<T*>(out.raw_data()),
                  static_cast<const T*>(x.raw_data()), ix, R, C, k, n);
  });
  return out;
}

// out (contiguous, `shape`) = x gathered along dim by an index read with strides `is` at `shape`.
void gather_into(const Tensor& out, const Tensor& x, int64_t dim, const Tensor& index, const Shape& is) {
  const int64_t n = out.numel();
  if (n == 0) return;
  Shape xs = x.strides();
  const int64_t sd = xs[dim];
  xs[dim] = 0;
  const Indexer ix = make_indexer<3>(out.shape(), std::array<Shape, 3>{out.strides(), is, xs});
  dispatch_bits(x.element_size(), [&](auto tag) {
    using T = decltype(tag);
    auto go = [&](auto itag) {
      using I = decltype(itag);
      CORTEX_LAUNCH((gather_kernel<T, I>), blocks_for(n), kBlock, 0, stream(), static_cast<T*>(out.raw_data()),
                    static_cast<const T*>(x.raw_data()), static_cast<const I*>(index.raw_data()), ix, sd, n);
    };
    if (index.dtype() == DType::Int32) go(int32_t{});
    else go(int64_t{});
  });
}

}  // namespace

Tensor concat(const std::vector<Tensor>& xs, int64_t dim) {
  Shape os = xs[0].shape();
  os[dim] = 0;
  for (const Tensor& x : xs) os[dim] += x.size(dim);
  Tensor out = empty(os, xs[0].dtype(), xs[0].device());
  int64_t at_dim = 0;  // where the next input starts along dim
  for (const Tensor& x : xs) {
    const int64_t n = x.numel();
    if (n > 0) {
      const Indexer ix = make_indexer<2>(x.shape(), std::array<Shape, 2>{out.strides(), x.strides()});
      dispatch_bits(x.element_size(), [&](auto tag) {
        using T = decltype(tag);
        CORTEX_LAUNCH(copy_kernel<T>, blocks_for(n), kBlock, 0, stream(),
                      static_cast<T*>(out.raw_data()) + at_dim * out.stride(dim), static_cast<const T*>(x.raw_data()),
                      ix, n);
      });
    }
    at_dim += x.size(dim);
  }
  return out;
}

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  host_index("gather", index, x.size(dim), dim);
  Tensor out = empty(index.shape(), x.dtype(), x.device());
  gather_into(out, x, dim, index, index.strides());
  return out;
}

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  host_index("index_select", index, x.size(dim), dim);
  Shape os = x.shape();
  os[dim] = index.numel();
  Tensor out = empty(os, x.dtype(), x.device());
  Shape is(os.size(), 0);  // the 1-D index broadcast over the other dims
  is[dim] = index.dim() == 0 ? 0 : index.stride(0);
  gather_into(out, x, dim, index, is);
  return out;
}

Tensor flip(const Tensor& x, int64_t dim) {
  Tensor out = empty(x.shape(), x.dtype(), x.device());
  const int64_t n = out.numel();
  if (n == 0) return out;
  // out written with a negated stride along dim, from its last slice
  Shape os = out.strides();
  const int64_t start = (x.size(dim) - 1) * os[dim];
  os[dim] = -os[dim];
  const Indexer ix = make_indexer<2>(x.shape(), std::array<Shape, 2>{os, x.strides()});
  dispatch_bits(x.element_size(), [&](auto tag) {
    using T = decltype(tag);
    CORTEX_LAUNCH(copy_kernel<T>, blocks_for(n), kBlock, 0, stream(), static_cast<T*>(out.raw_data()) + start,
                  static_cast<const T*>(x.raw_data()), ix, n);
  });
  return out;
}

Tensor tril(const Tensor& x, int64_t k) { return triangle<false>(x, k); }
Tensor triu(const Tensor& x, int64_t k) { return triangle<true>(x, k); }

Tensor cumsum(const Tensor& x, int64_t dim) {
  Tensor out = empty(x.shape(), x.dtype(), x.device());
  dispatch_num(x.dtype(), "cumsum", [&](auto tag) {
    using T = decltype(tag);
    if (out.numel() == 0) return;
    const Shape O = drop(x.shape(), dim);
    const int64_t rows = shape_numel(O);
    const Indexer ix = make_indexer<2>(O, std::array<Shape, 2>{drop(x.strides(), dim), drop(out.strides(), dim)});
    CORTEX_LAUNCH(cumsum_kernel<T>, blocks_for(rows), kBlock, 0, stream(), static_cast<T*>(out.raw_data()),
                  static_cast<const T*>(x.raw_data()), ix, x.size(dim), x.stride(dim), out.stride(dim), rows);
  });
  return out;
}

Tensor index_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  const int64_t n = x.size(dim);
  const std::vector<int64_t> idx = host_index("index_add", index, n, dim);
  Tensor out = empty(x.shape(), x.dtype(), x.device());
  dispatch_num(x.dtype(), "index_add", [&](auto tag) {
    using T = decltype(tag);
    const int64_t total = out.numel();
    if (total == 0) return;
    // CSR of destination slot -> positions in the index, in index order (a counting sort, stable).
    const int64_t m = static_cast<int64_t>(idx.size());
    std::vector<int64_t> beg(static_cast<size_t>(n + 1), 0), list(static_cast<size_t>(m > 0 ? m : 1), 0);
    for (int64_t v : idx) ++beg[static_cast<size_t>(v + 1)];
    for (int64_t j = 0; j < n; ++j) beg[j + 1] += beg[j];
    std::vector<int64_t> fill(beg.begin(), beg.end() - 1);
    for (int64_t i = 0; i < m; ++i) list[static_cast<size_t>(fill[static_cast<size_t>(idx[i])]++)] = i;
    const Tensor db = from_vector(beg, Shape{n + 1}, DType::Int64, x.device());
    const Tensor dl = from_vector(list, Shape{static_cast<int64_t>(list.size())}, DType::Int64, x.device());
    const Shape O = drop(x.shape(), dim);
    const Indexer ix = make_indexer<3>(
        O, std::array<Shape, 3>{drop(x.strides(), dim), drop(src.strides(), dim), drop(out.strides(), dim)});
    CORTEX_LAUNCH(index_add_kernel<T>, blocks_for(total), kBlock, 0, stream(), static_cast<T*>(out.raw_data()),
                  static_cast<const T*>(x.raw_data()), static_cast<const T*>(src.raw_data()), db.data<int64_t>(),
                  dl.data<int64_t>(), ix, n, x.stride(dim), src.stride(dim), out.stride(dim), total);
  });
  return out;
}

Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  const int64_t n = x.size(dim);
  host_index("scatter_add", index, n, dim);
  Tensor out = empty(x.shape(), x.dtype(), x.device());
  dispatch_num(x.dtype(), "scatter_add", [&](auto tag) {
    using T = decltype(tag);
    const int64_t total = out.numel();
    if (total == 0) return;
    const Shape O = drop(x.shape(), dim);
    CORTEX_CHECK(static_cast<int>(O.size()) <= kMaxDims, "scatter_add: at most ", kMaxDims + 1, " dims on CUDA");
    Lines ln;
    ln.nd = static_cast<int>(O.size());
    const Shape is = drop(index.shape(), dim), ist = drop(index.strides(), dim), sst = drop(src.strides(), dim);
    for (int d = 0; d < ln.nd; ++d) {
      ln.xsize[d] = O[d];
      ln.isize[d] = is[d];
      ln.istride[d] = ist[d];
      ln.sstride[d] = sst[d];
    }
    // x and out offsets of a line at O; the dim strides of x and out ride in the unused slots 2 and 3.
    Indexer ix = make_indexer<2>(O, std::array<Shape, 2>{drop(x.strides(), dim), drop(out.strides(), dim)});
    ix.strides[2][0] = x.stride(dim);
    ix.strides[3][0] = out.stride(dim);
    auto go = [&](auto itag) {
      using I = decltype(itag);
      CORTEX_LAUNCH((scatter_add_kernel<T, I>), blocks_for(total), kBlock, 0, stream(),
                    static_cast<T*>(out.raw_data()), static_cast<const T*>(x.raw_data()),
                    static_cast<const I*>(index.raw_data()), static_cast<const T*>(src.raw_data()), ix, ln, n,
                    index.size(dim), index.stride(dim), src.stride(dim), total);
    };
    if (index.dtype() == DType::Int32) go(int32_t{});
    else go(int64_t{});
  });
  return out;
}

}  // namespace cortex::kernels::CORTEX_BACKEND
