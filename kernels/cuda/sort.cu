// topk and sort of the index family on CUDA and the emulated CUDA device. Results (values and
// indices) are kernels/cpu/index.cpp's bit for bit: the order is the CPU's strict total order on
// (value, index), with NaN above every number and equal to every other NaN, -0 equal to +0, and
// ties (equal values) broken by the lower index first, in both directions.
//
// That order becomes an unsigned key per element (order_key below): the float bits flipped so
// that unsigned comparison orders them (NaNs all mapped to the top key, -0 to +0's key), integers
// with the sign bit flipped, and the whole key complemented for descending order / largest-k. Then
// every op sorts (key, index) pairs ascending, lexicographically, which is unique.
//
//   1. Tiles: one block sorts a tile of up to kTile elements of a row in shared memory with a
//      bitonic network (padded to a power of two with pairs that sort last), and keeps the first
//      min(cap, tile length) pairs; cap = k for topk, n for sort. A row that fits one tile is
//      written straight to the outputs.
//   2. Longer rows: the sorted runs are merged pairwise through global memory, one pass per
//      doubling, until one run is left, each merged run truncated to cap again (the first cap
//      pairs of a merge only need the first cap of each side). A thread places one pair: its
//      rank in the merged run is its position in its own run plus the number of pairs of the
//      other run below it (a binary search); the order is strict, so the ranks are a permutation
//      and no two threads write one slot. No atomics, no data-dependent schedule: deterministic.
// The values written are read back from x at the chosen index, so their bits (NaN payloads, the
// sign of zero) are x's, as the CPU copies them.
#include <cstdint>
#include <type_traits>

#include "kernels/index.h"
// (last: see common.cuh)
#include "kernels/cuda/common.cuh"

namespace cortex::kernels::CORTEX_BACKEND {
namespace {

// Elements a block sorts in shared memory: 1024 threads, one compare-exchange each per stage.
constexpr int64_t kTile = 2048;
constexpr unsigned kMergeBlock = 256;

Shape drop(const Shape& s, int64_t d) {
  Shape r = s;
  r.erase(r.begin() + d);
  return r;
}

// float32, float64, int32, int64, as the CPU's topk and sort.
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

// ---- the order as an unsigned key (ascending; `desc` complements it)
__device__ __forceinline__ uint32_t order_key(float v, bool desc) {
  uint32_t b = __float_as_uint(v);
  if ((b & 0x7fffffffu) > 0x7f800000u) b = 0xffffffffu;  // every NaN: one key, above +inf
  else {
    if ((b & 0x7fffffffu) == 0) b = 0;                   // -0 == +0
    b = (b & 0x80000000u) ? ~b : (b | 0x80000000u);
  }
  return desc ? ~b : b;
}
__device__ __forceinline__ uint64_t order_key(double v, bool desc) {
  uint64_t b = static_cast<uint64_t>(__double_as_longlong(v));
  constexpr uint64_t kSign = 0x8000000000000000ull, kAbs = 0x7fffffffffffffffull, kInf = 0x7ff0000000000000ull;
  if ((b & kAbs) > kInf) b = ~uint64_t{0};
  else {
    if ((b & kAbs) == 0) b = 0;
    b = (b & kSign) ? ~b : (b | kSign);
  }
  return desc ? ~b : b;
}
__device__ __forceinline__ uint32_t order_key(int32_t v, bool desc) {
  const uint32_t b = static_cast<uint32_t>(v) ^ 0x80000000u;
  return desc ? ~b : b;
}
__device__ __forceinline__ uint64_t order_key(int64_t v, bool desc) {
  const uint64_t b = static_cast<uint64_t>(v) ^ 0x8000000000000000ull;
  return desc ? ~b : b;
}

template <class T>
using order_key_t = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;

template <class K, class I>
__device__ __forceinline__ bool pair_less(K ka, I ia, K kb, I ib) {
  return ka < kb || (ka == kb && ia < ib);
}

__device__ __forceinline__ int64_t at(const Indexer& ix, int k, int64_t i) {
  return ix.ndim == 1 ? i * ix.strides[k][0] : ix.offset(k, i);
}

// Where sorted pairs go: the outputs (values may be null: argsort), or the scratch runs.
template <class T, class K>
struct Sink {
  const T* x;          // to read the values back
  T* vals;             // null: indices only
  int64_t* inds;
  Indexer ix;          // row offsets: operand 0 in x, operand 1 in the outputs
  int64_t xsd, osd;    // strides along the sorted dim
  K* skey;             // scratch (when not final)
  int64_t* sidx;
};

template <class T, class K>
__device__ __forceinline__ void emit_final(const Sink<T, K>& s, int64_t row, int64_t j, int64_t idx) {
  const int64_t o = at(s.ix, 1, row) + j * s.osd;
  s.inds[o] = idx;
  if (s.vals) s.vals[o] = s.x[at(s.ix, 0, row) + idx * s.xsd];
}

// Block b sorts tile b % ntiles of row b / ntiles: elements [t*tile, min(n, (t+1)*tile)), padded
// to P (a power of two, P/2 <= blockDim.x * ... any block size works) in shared memory.
// final: one tile per row, written to the outputs; else its first min(cap, len) pairs go to
// scratch run t of the row (row stride rb, run slot s0).
template <class T, class K>
__global__ void tile_sort_kernel(Sink<T, K> s, int64_t n, int64_t tile, int P, int64_t ntiles, int64_t cap, bool desc,
                                 bool final, int64_t rb, int64_t s0) {
  CORTEX_DYNAMIC_SMEM(unsigned char, smem);
  K* key = reinterpret_cast<K*>(smem);
  int32_t* loc = reinterpret_cast<int32_t*>(smem + static_cast<size_t>(P) * sizeof(K));
  const int64_t row = static_cast<int64_t>(blockIdx.x) / ntiles, t = static_cast<int64_t>(blockIdx.x) % ntiles;
  const int64_t beg = t * tile;
  const int64_t len = (n - beg < tile ? n - beg : tile);
  const T* xr = s.x + at(s.ix, 0, row);
  for (int e = threadIdx.x; e < P; e += blockDim.x) {
    if (e < len) {
      key[e] = order_key(xr[(beg + e) * s.xsd], desc);
      loc[e] = e;
    } else {  // padding: above every real pair (the largest key, a larger position)
      key[e] = ~K{0};
      loc[e] = e;
    }
  }
  __syncthreads();
  const int half = P / 2;
  for (int k = 2; k <= P; k <<= 1) {
    for (int j = k >> 1; j > 0; j >>= 1) {
      for (int q = threadIdx.x; q < half; q += blockDim.x) {
        const int i = ((q & ~(j - 1)) << 1) | (q & (j - 1));  // i has bit j clear; its partner is i | j
        const int l = i | j;
        const bool up = (i & k) == 0;
        const K ki = key[i], kl = key[l];
        const int32_t li = loc[i], ll = loc[l];
        const bool swap = up ? pair_less(kl, ll, ki, li) : pair_less(ki, li, kl, ll);
        if (swap) {
          key[i] = kl, key[l] = ki;
          loc[i] = ll, loc[l] = li;
        }
      }
      __syncthreads();
    }
  }
  const int64_t keep = cap < len ? cap : len;
  for (int64_t e = threadIdx.x; e < keep; e += blockDim.x) {
    const int64_t idx = beg + loc[e];
    if (final) {
      emit_final(s, row, e, idx);
    } else {
      const int64_t o = row * rb + t * s0 + e;
      s.skey[o] = key[e];
      s.sidx[o] = idx;
    }
  }
}

// Length of run r of a row after sorting runs of w elements, truncated to cap.
__device__ __forceinline__ int64_t run_len(int64_t r, int64_t w, int64_t n, int64_t cap) {
  const int64_t end = (r + 1) * w < n ? (r + 1) * w : n;
  const int64_t l = end - r * w;
  return l < cap ? l : cap;
}

// One merge pass: runs of w row elements (stored truncated in slots of sin) merged in pairs into
// runs of 2w (slots of sout). Thread i places the pair at slot position i % sin of run
// (i / sin) % nin of row i / (nin * sin).
template <class T, class K>
__global__ void merge_kernel(Sink<T, K> s, const K* __restrict__ ikey, const int64_t* __restrict__ iidx, int64_t n,
                             int64_t w, int64_t sin, int64_t sout, int64_t nin, int64_t cap, bool final, int64_t rb,
                             int64_t total) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= total) return;
  const int64_t per_row = nin * sin;
  const int64_t row = i / per_row, rem = i % per_row, run = rem / sin, pos = rem % sin;
  const int64_t len = run_len(run, w, n, cap);
  if (pos >= len) return;
  const int64_t other = run ^ 1;
  const int64_t olen = other < nin ? run_len(other, w, n, cap) : 0;
  const int64_t base = row * rb;
  const K k = ikey[base + run * sin + pos];
  const int64_t idx = iidx[base + run * sin + pos];
  const K* ok = ikey + base + other * sin;
  const int64_t* oi = iidx + base + other * sin;
  int64_t lo = 0, hi = olen;  // pairs of the other run below (k, idx)
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (pair_less(ok[mid], oi[mid], k, idx)) lo = mid + 1;
    else hi = mid;
  }
  const int64_t rank = pos + lo;
  const int64_t out_len = len + olen < cap ? len + olen : cap;
  if (rank >= out_len) return;
  if (final) {
    emit_final(s, row, rank, idx);
  } else {
    const int64_t o = base + (run >> 1) * sout + rank;
    s.skey[o] = k;
    s.sidx[o] = idx;
  }
}

// Sorts every row of x along dim by (order key, index) and emits the first cap pairs of each into
// vals (may be undefined) and inds, both contiguous with size cap along dim.
template <class T>
void sort_rows(const Tensor& x, int64_t dim, int64_t cap, bool desc, const Tensor& vals, const Tensor& inds) {
  using K = order_key_t<T>;
  const int64_t n = x.size(dim);
  const Shape O = drop(x.shape(), dim);
  const int64_t rows = shape_numel(O);
  if (rows == 0 || n == 0 || cap == 0) return;
  Sink<T, K> s{};
  s.x = static_cast<const T*>(x.raw_data());
  s.vals = vals.defined() ? static_cast<T*>(vals.raw_data()) : nullptr;
  s.inds = static_cast<int64_t*>(inds.raw_data());
  s.ix = make_indexer<2>(O, std::array<Shape, 2>{drop(x.strides(), dim), drop(inds.strides(), dim)});
  s.xsd = x.stride(dim);
  s.osd = inds.stride(dim);

  const int64_t ntiles = (n + kTile - 1) / kTile;
  const int64_t tile = ntiles == 1 ? n : kTile;
  int P = 1;
  while (P < tile) P <<= 1;
  const unsigned threads = static_cast<unsigned>(P / 2 < 1 ? 1 : P / 2);
  const size_t smem = static_cast<size_t>(P) * (sizeof(K) + sizeof(int32_t));
  const int64_t blocks = rows * ntiles;
  CORTEX_CHECK(blocks <= 2147483647, "sort: ", rows, " rows of ", ntiles, " tiles need more blocks than a grid holds");
  if (ntiles == 1) {
    CORTEX_LAUNCH((tile_sort_kernel<T, K>), static_cast<unsigned>(blocks), threads, smem, stream(), s, n, tile, P,
                  ntiles, cap, desc, true, int64_t{0}, int64_t{0});
    return;
  }
  // Scratch: per row, the widest pass's runs (runs * slot), twice for ping-pong.
  int64_t rb = 0;
  for (int64_t w = kTile, runs = ntiles;; w *= 2, runs = (runs + 1) / 2) {
    const int64_t slot = w < cap ? w : cap;
    rb = runs * slot > rb ? runs * slot : rb;
    if (runs == 1) break;
  }
  const DType kd = sizeof(K) == 4 ? DType::Int32 : DType::Int64;
  Tensor key[2] = {empty({rows * rb}, kd, x.device()), empty({rows * rb}, kd, x.device())};
  Tensor idx[2] = {empty({rows * rb}, DType::Int64, x.device()), empty({rows * rb}, DType::Int64, x.device())};
  const int64_t s0 = kTile < cap ? kTile : cap;
  s.skey = static_cast<K*>(key[0].raw_data());
  s.sidx = static_cast<int64_t*>(idx[0].raw_data());
  CORTEX_LAUNCH((tile_sort_kernel<T, K>), static_cast<unsigned>(blocks), threads, smem, stream(), s, n, tile, P, ntiles,
                cap, desc, false, rb, s0);
  int cur = 0;
  for (int64_t w = kTile, runs = ntiles; runs > 1; w *= 2, runs = (runs + 1) / 2, cur ^= 1) {
    const int64_t sin = w < cap ? w : cap, sout = 2 * w < cap ? 2 * w : cap;
    const bool final = (runs + 1) / 2 == 1;
    s.skey = static_cast<K*>(key[cur ^ 1].raw_data());
    s.sidx = static_cast<int64_t*>(idx[cur ^ 1].raw_data());
    const int64_t total = rows * runs * sin;
    CORTEX_LAUNCH((merge_kernel<T, K>), blocks_for(total, kMergeBlock), kMergeBlock, 0, stream(), s,
                  static_cast<const K*>(key[cur].raw_data()), static_cast<const int64_t*>(idx[cur].raw_data()), n, w,
                  sin, sout, runs, cap, final, rb, total);
  }
}

}  // namespace

TopK topk(const Tensor& x, int64_t k, int64_t dim, bool largest) {
  Shape os = x.shape();
  os[dim] = k;
  TopK r{empty(os, x.dtype(), x.device()), empty(os, DType::Int64, x.device())};
  dispatch_num(x.dtype(), "topk", [&](auto tag) {
    using T = decltype(tag);
    sort_rows<T>(x, dim, k, largest, r.values, r.indices);
  });
  return r;
}

TopK sort(const Tensor& x, int64_t dim, bool descending, bool want_values) {
  TopK r;
  if (want_values) r.values = empty(x.shape(), x.dtype(), x.device());
  r.indices = empty(x.shape(), DType::Int64, x.device());
  dispatch_num(x.dtype(), "sort", [&](auto tag) {
    using T = decltype(tag);
    sort_rows<T>(x, dim, x.size(dim), descending, r.values, r.indices);
  });
  return r;
}

}  // namespace cortex::kernels::CORTEX_BACKEND
