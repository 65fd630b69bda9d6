// Reductions on CUDA and the emulated CUDA device (kernels/cuda/common.cuh says how one source
// serves both): every Reduce op, argmax/argmin, var/std and norm, with the CPU kernel's dtypes,
// accumulators and edge cases (kernels/cpu/reduce.cpp).
//
// Geometry: the reduced axes are moved to the end logically (index math, no copy), so output
// element o folds one "row" of K elements: x[kept(o) + reduced(k)], k in [0, K). The kept dims keep
// their order (the output is the contiguous keepdim=false result); the reduced dims are put in
// memory order, and both are merged where contiguous (tensor/strided.h's plan). Then one of:
//   rows:  the reduced elements are the inner ones in memory: one warp folds a row (K <= 1024)
//          or one block of 256 threads (longer rows), lanes striding along the row (coalesced);
//   cols:  the kept elements are the inner ones (sum over dim 0 of (100000, 64)): one thread folds
//          one output sequentially, neighbouring threads reading neighbouring outputs (coalesced).
// Long rows with few outputs are cut into S chunks fixed by the shape; pass 1 folds each chunk into
// a partials buffer, pass 2 folds the S partials of each output in chunk order. The kernel, block
// size and S depend only on the shape and strides, and every fold has a fixed tree
// (reduce_common.cuh), so results are bit-identical in every schedule order.
//
// Accumulators as the CPU's: float32 sums, means, products, logsumexp, var and p-norms in float64;
// integer and bool sums/products in wrapping int64; max/min (and the inf-norm) in the input type
// with NaN propagating.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/reduce.h"
#include "kernels/shape.h"
#include "tensor/strided.h"
// (last: see common.cuh)
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/reduce_common.cuh"

namespace cortex::kernels::CORTEX_BACKEND {
namespace {

using red::kFull;
using red::kRowBlock;
using red::kWarp;
using red::kWarpsPerBlock;

// ---------------------------------------------------------------- value helpers

template <class T>
__device__ __forceinline__ T lowest_of() {
  if constexpr (std::is_same_v<T, float>) return -INFINITY;
  else if constexpr (std::is_same_v<T, double>) return -static_cast<double>(INFINITY);
  else if constexpr (std::is_same_v<T, int32_t>) return INT32_MIN;
  else if constexpr (std::is_same_v<T, int64_t>) return INT64_MIN;
  else return T(0);  // uint8
}
template <class T>
__device__ __forceinline__ T highest_of() {
  if constexpr (std::is_same_v<T, float>) return INFINITY;
  else if constexpr (std::is_same_v<T, double>) return static_cast<double>(INFINITY);
  else if constexpr (std::is_same_v<T, int32_t>) return INT32_MAX;
  else if constexpr (std::is_same_v<T, int64_t>) return INT64_MAX;
  else return T(255);  // uint8
}

__device__ __forceinline__ float abs_of(float v) { return fabsf(v); }
__device__ __forceinline__ double abs_of(double v) { return fabs(v); }

// Max/Min that propagate NaN (once the accumulator is NaN it stays NaN), as the CPU's.
template <bool kMax, class T>
__device__ __forceinline__ T nan_extreme(T a, T b) {
  if constexpr (kMax)
    return (b > a || b != b) ? b : a;
  else
    return (b < a || b != b) ? b : a;
}

// ---------------------------------------------------------------- fold ops
//
// An op has In (element type read), Acc (accumulator), Out (written), and
//   init()            the identity of comb,
//   map(v, o, k)      element k of output o's row as an Acc,
//   comb(a, b)        associative combination (a covers no later chunk than b),
//   fin(a, o)         the output value.

enum Arith { kSum, kProd, kMean };

template <class T, class A, class O, Arith kKind>
struct ArithOp {
  using In = T;
  using Acc = A;
  using Out = O;
  double n;  // elements per output (Mean)
  __device__ __forceinline__ A init() const { return kKind == kProd ? A(1) : A(0); }
  __device__ __forceinline__ A map(T v, int64_t, int64_t) const {
    // Integers widen through int64 so negative values wrap correctly in the unsigned accumulator.
    if constexpr (std::is_integral_v<A>) return static_cast<A>(static_cast<int64_t>(v));
    else return static_cast<A>(v);
  }
  __device__ __forceinline__ A comb(A a, A b) const { return kKind == kProd ? a * b : a + b; }
  __device__ __forceinline__ O fin(A a, int64_t) const {
    if constexpr (kKind == kMean) return static_cast<O>(a / n);
    else return static_cast<O>(a);
  }
};

template <class T, bool kMax>
struct ExtremeOp {
  using In = T;
  using Acc = T;
  using Out = T;
  __device__ __forceinline__ T init() const { return kMax ? lowest_of<T>() : highest_of<T>(); }
  __device__ __forceinline__ T map(T v, int64_t, int64_t) const { return v; }
  __device__ __forceinline__ T comb(T a, T b) const { return nan_extreme<kMax>(a, b); }
  __device__ __forceinline__ T fin(T a, int64_t) const { return a; }
};

// log sum exp(x) = m + log sum exp(x - m), m the row's max (pass 1). A non-finite max (all -inf,
// an inf or a NaN present) is not subtracted: the sum then gives -inf, inf or NaN by itself.
template <class T>
struct LseOp {
  using In = T;
  using Acc = double;
  using Out = T;
  const T* mx;
  __device__ __forceinline__ double shift(int64_t o) const {
    const double m = static_cast<double>(mx[o]);
    return m - m == 0.0 ? m : 0.0;  // finite
  }
  __device__ __forceinline__ double init() const { return 0.0; }
  __device__ __forceinline__ double map(T v, int64_t o, int64_t) const { return exp(static_cast<double>(v) - shift(o)); }
  __device__ __forceinline__ double comb(double a, double b) const { return a + b; }
  __device__ __forceinline__ T fin(double a, int64_t o) const { return static_cast<T>(log(a) + shift(o)); }
};

// Any/All. kHalf: S is the raw bits of a bfloat16 or float16, nonzero unless +-0 (NaN is true).
template <class S, bool kAny, bool kHalf>
struct TruthOp {
  using In = S;
  using Acc = unsigned;
  using Out = bool;
  __device__ __forceinline__ unsigned init() const { return kAny ? 0u : 1u; }
  __device__ __forceinline__ unsigned map(S v, int64_t, int64_t) const {
    if constexpr (kHalf) return (static_cast<unsigned>(v) & 0x7FFFu) != 0u;
    else return v != S(0);  // NaN != 0: true, as NumPy and PyTorch
  }
  __device__ __forceinline__ unsigned comb(unsigned a, unsigned b) const { return kAny ? (a | b) : (a & b); }
  __device__ __forceinline__ bool fin(unsigned a, int64_t) const { return a != 0u; }
};

// Sum of squared deviations from the row's mean (pass 1), over max(0, K - correction).
template <class T>
struct VarOp {
  using In = T;
  using Acc = double;
  using Out = T;
  const double* mean;
  double denom;
  bool take_sqrt;
  __device__ __forceinline__ double init() const { return 0.0; }
  __device__ __forceinline__ double map(T v, int64_t o, int64_t) const {
    const double d = static_cast<double>(v) - mean[o];
    return d * d;
  }
  __device__ __forceinline__ double comb(double a, double b) const { return a + b; }
  __device__ __forceinline__ T fin(double a, int64_t) const {
    const double v = a / denom;
    return static_cast<T>(take_sqrt ? sqrt(v) : v);
  }
};

template <class T>
struct NormInfOp {
  using In = T;
  using Acc = T;
  using Out = T;
  __device__ __forceinline__ T init() const { return T(0); }
  __device__ __forceinline__ T map(T v, int64_t, int64_t) const { return abs_of(v); }
  __device__ __forceinline__ T comb(T a, T b) const { return nan_extreme<true>(a, b); }
  __device__ __forceinline__ T fin(T a, int64_t) const { return a; }
};

enum NormP { kP1, kP2, kPGeneral };

template <class T, NormP kP>
struct NormOp {
  using In = T;
  using Acc = double;
  using Out = T;
  double p;
  __device__ __forceinline__ double init() const { return 0.0; }
  __device__ __forceinline__ double map(T v, int64_t, int64_t) const {
    const double d = static_cast<double>(v);
    if constexpr (kP == kP1) return fabs(d);
    else if constexpr (kP == kP2) return d * d;
    else return pow(fabs(d), p);
  }
  __device__ __forceinline__ double comb(double a, double b) const { return a + b; }
  __device__ __forceinline__ T fin(double a, int64_t) const {
    if constexpr (kP == kP1) return static_cast<T>(a);
    else if constexpr (kP == kP2) return static_cast<T>(sqrt(a));
    else return static_cast<T>(pow(a, 1.0 / p));
  }
};

// A candidate of argmax/argmin: its value and index (i < 0: none yet).
template <class T>
struct ArgAcc {
  T v;
  int64_t i;
};

// Shuffles a candidate field by field. Found by argument-dependent lookup from red::warp_fold, and
// more specialised than red::shfl_down.
template <class T>
__device__ __forceinline__ ArgAcc<T> shfl_down(ArgAcc<T> a, unsigned delta) {
  return {red::shfl_down(a.v, delta), red::shfl_down(a.i, delta)};
}

// Whether v beats best: NaN counts as larger than every number (argmax picks it, argmin avoids it).
template <bool kMax, class T>
__device__ __forceinline__ bool beats(T v, T best) {
  if constexpr (kMax)
    return v > best || (v != v && best == best);
  else
    return v < best || (best != best && v == v);
}

// The best candidate, the lowest index among equals (ties: the first index, as the CPU). This
// choice does not depend on the order candidates are combined in.
template <class T, bool kMax>
struct ArgOp {
  using In = T;
  using Acc = ArgAcc<T>;
  using Out = int64_t;
  __device__ __forceinline__ Acc init() const { return {T(0), -1}; }
  __device__ __forceinline__ Acc map(T v, int64_t, int64_t k) const { return {v, k}; }
  __device__ __forceinline__ Acc comb(Acc a, Acc b) const {
    if (a.i < 0) return b;
    if (b.i < 0) return a;
    if (beats<kMax>(b.v, a.v)) return b;
    if (beats<kMax>(a.v, b.v)) return a;
    return b.i < a.i ? b : a;
  }
  __device__ __forceinline__ int64_t fin(Acc a, int64_t) const { return a.i; }
};

// ---------------------------------------------------------------- kernels

// Chunk s of S of a row of K: [K s / S, K (s + 1) / S).
__device__ __forceinline__ int64_t chunk_lo(int64_t K, int64_t s, int64_t S) { return K * s / S; }

// Writes a task's fold: the output when the row is one chunk, else its partial.
template <class Op>
__device__ __forceinline__ void put(const Op& op, typename Op::Acc a, int64_t o, int64_t s, int64_t nout,
                                    typename Op::Out* out, typename Op::Acc* part) {
  if (part)
    part[s * nout + o] = a;
  else
    out[o] = op.fin(a, o);
}

// One warp per task (output o, chunk s); task = o * S + s.
template <class Op>
__global__ void __launch_bounds__(kWarp * kWarpsPerBlock)
    fold_warp_rows(Op op, const typename Op::In* __restrict__ x, Indexer kix, Indexer rix, int64_t nout, int64_t K,
                   int64_t S, typename Op::Out* __restrict__ out, typename Op::Acc* __restrict__ part) {
  const int64_t task = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
  if (task >= nout * S) return;  // the whole warp leaves together
  const unsigned lane = threadIdx.x % kWarp;
  const int64_t o = task / S, s = task % S;
  const int64_t hi = chunk_lo(K, s + 1, S), base = red::offset(kix, 0, o);
  typename Op::Acc a = op.init();
  for (int64_t k = chunk_lo(K, s, S) + lane; k < hi; k += kWarp)
    a = op.comb(a, op.map(x[base + red::offset(rix, 0, k)], o, k));
  a = red::warp_fold(op, a);
  if (lane == 0) put(op, a, o, s, nout, out, part);
}

// One block of kRowBlock threads per task.
template <class Op>
__global__ void __launch_bounds__(kRowBlock)
    fold_block_rows(Op op, const typename Op::In* __restrict__ x, Indexer kix, Indexer rix, int64_t nout, int64_t K,
                    int64_t S, typename Op::Out* __restrict__ out, typename Op::Acc* __restrict__ part) {
  __shared__ typename Op::Acc sm[red::kRowWarps + 1];
  const int64_t task = blockIdx.x;
  const int64_t o = task / S, s = task % S;
  const int64_t hi = chunk_lo(K, s + 1, S), base = red::offset(kix, 0, o);
  typename Op::Acc a = op.init();
  for (int64_t k = chunk_lo(K, s, S) + threadIdx.x; k < hi; k += kRowBlock)
    a = op.comb(a, op.map(x[base + red::offset(rix, 0, k)], o, k));
  a = red::block_fold(op, a, sm);
  if (threadIdx.x == 0) put(op, a, o, s, nout, out, part);
}

// One thread per task, folding its chunk in index order; task = s * nout + o so neighbouring
// threads read neighbouring outputs.
template <class Op>
__global__ void __launch_bounds__(kBlock)
    fold_cols(Op op, const typename Op::In* __restrict__ x, Indexer kix, Indexer rix, int64_t nout, int64_t K,
              int64_t S, typename Op::Out* __restrict__ out, typename Op::Acc* __restrict__ part) {
  const int64_t task = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (task >= nout * S) return;
  const int64_t o = task % nout, s = task / nout;
  const int64_t hi = chunk_lo(K, s + 1, S), base = red::offset(kix, 0, o);
  typename Op::Acc a = op.init();
  for (int64_t k = chunk_lo(K, s, S); k < hi; ++k) a = op.comb(a, op.map(x[base + red::offset(rix, 0, k)], o, k));
  put(op, a, o, s, nout, out, part);
}

// Pass 2: each output folds its S partials in chunk order.
template <class Op>
__global__ void __launch_bounds__(kBlock)
    fold_partials(Op op, const typename Op::Acc* __restrict__ part, int64_t nout, int64_t S,
                  typename Op::Out* __restrict__ out) {
  const int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (o >= nout) return;
  typename Op::Acc a = op.init();
  for (int64_t s = 0; s < S; ++s) a = op.comb(a, part[s * nout + o]);
  out[o] = op.fin(a, o);
}

// ---------------------------------------------------------------- host side

struct Geom {
  Indexer kix, rix;    // output index -> offset of its row; index along a row -> offset in it
  int64_t nout = 1, K = 1;
  bool cols = false;   // one thread per output (kept elements inner in memory, or short rows)
};

// x has elements; axes normalised (sorted, in range).
Geom make_geom(const Tensor& x, const Shape& axes) {
  Geom g;
  Shape ksh, kst;
  std::vector<int64_t> rdims;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (std::binary_search(axes.begin(), axes.end(), d)) {
      rdims.push_back(d);
    } else {
      ksh.push_back(x.shape()[d]);
      kst.push_back(x.strides()[d]);
    }
  }
  // Reduced dims in memory order (largest stride first), so they merge and the row's inner index
  // walks the smallest stride. The order of a row does not change any result but argmax's, which
  // reduces one dim.
  std::stable_sort(rdims.begin(), rdims.end(),
                   [&](int64_t a, int64_t b) { return abs64(x.strides()[a]) > abs64(x.strides()[b]); });
  Shape rsh, rst;
  for (int64_t d : rdims) {
    rsh.push_back(x.shape()[d]);
    rst.push_back(x.strides()[d]);
  }
  g.kix = make_indexer<1>(ksh, std::array<Shape, 1>{kst});
  g.rix = make_indexer<1>(rsh, std::array<Shape, 1>{rst});
  g.nout = shape_numel(ksh);
  g.K = shape_numel(rsh);
  // Size-1 dims were dropped by the plans: a lone size-1 dim has stride 0 there.
  const int64_t kin = g.nout > 1 ? abs64(g.kix.strides[0][g.kix.ndim - 1]) : 0;
  const int64_t rin = g.K > 1 ? abs64(g.rix.strides[0][g.rix.ndim - 1]) : 0;
  // Rows of a few elements would leave most lanes of a warp idle: one thread per output then too.
  g.cols = g.nout > 1 && g.K > 1 && (kin < rin || (g.K <= red::kShortRow && g.nout >= kWarp));
  return g;
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Runs op over the rows of g: x is the element at x's offset 0 (raw_data), out nout Outs.
template <class Op>
void run_fold(const Op& op, const Tensor& x, const Geom& g, void* out) {
  using Acc = typename Op::Acc;
  using Out = typename Op::Out;
  const auto* xp = static_cast<const typename Op::In*>(x.raw_data());
  Out* outp = static_cast<Out*>(out);
  const int64_t nout = g.nout, K = g.K;
  // Chunks per row: enough tasks to fill a GPU (about 2 blocks on each of 132 SMs; 4096 threads
  // for one thread per task) while each chunk stays long. Fixed by the shape.
  int64_t S = 1;
  if (g.cols) {
    if (K >= 512 && nout < 4096) S = std::min(ceil_div(4096, nout), K / 256);
  } else {
    if (K >= 32768 && nout < 256) S = std::min(ceil_div(256, nout), K / 16384);
  }
  Tensor part;
  Acc* pp = nullptr;
  if (S > 1) {
    part = empty({S * nout * static_cast<int64_t>(sizeof(Acc))}, DType::UInt8, x.device());
    pp = static_cast<Acc*>(part.raw_data());
  }
  const int64_t tasks = nout * S;
  if (g.cols) {
    CORTEX_LAUNCH(fold_cols<Op>, blocks_for(tasks), kBlock, 0, stream(), op, xp, g.kix, g.rix, nout, K, S, outp, pp);
  } else if (K / S <= red::kWarpRowMax) {
    CORTEX_LAUNCH(fold_warp_rows<Op>, blocks_for(tasks, kWarpsPerBlock), kWarp * kWarpsPerBlock, 0, stream(), op, xp,
                  g.kix, g.rix, nout, K, S, outp, pp);
  } else {
    CORTEX_CHECK(tasks <= 2147483647, "CUDA reduction: ", tasks, " rows need more blocks than a grid holds");
    CORTEX_LAUNCH(fold_block_rows<Op>, static_cast<unsigned>(tasks), kRowBlock, 0, stream(), op, xp, g.kix, g.rix,
                  nout, K, S, outp, pp);
  }
  if (S > 1) CORTEX_LAUNCH(fold_partials<Op>, blocks_for(nout), kBlock, 0, stream(), op, pp, nout, S, outp);
}

// Output for an input without elements: every output (if any) is the fold of nothing.
Tensor empty_input(const Tensor& x, const Shape& axes, bool keepdim, double value, DType dt) {
  const Shape s = keepdim ? reduce_keepdim_shape(x.shape(), axes) : reduce_drop_axes(x.shape(), axes);
  // Nothing to fill in an empty output (and full() refuses some empty shapes off the CPU).
  if (shape_numel(s) == 0) return empty(s, dt, x.device());
  return full(s, value, dt, x.device());
}

template <class T>
constexpr bool is_num = std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, int32_t> ||
                        std::is_same_v<T, int64_t> || std::is_same_v<T, uint8_t>;
template <class T>
constexpr bool is_fp = std::is_same_v<T, float> || std::is_same_v<T, double>;

[[noreturn]] void bad_dtype(const char* op, DType dt) {
  throw Error(detail::cat(op, ": unsupported dtype ", dtype_name(dt)));
}

}  // namespace

Tensor reduce(Reduce op, const Tensor& x, const Shape& axes, bool keepdim) {
  const DType dt = x.dtype();
  const bool intlike = dt == DType::Int32 || dt == DType::Int64 || dt == DType::UInt8 || dt == DType::Bool;
  if (x.numel() == 0) {
    const double nan = NAN, inf = INFINITY;
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
  const Geom g = make_geom(x, axes);
  const Shape out_shape = reduce_drop_axes(x.shape(), axes);
  const char* name = reduce_name(op);
  Tensor out;
  auto make = [&](DType odt) {
    out = empty(out_shape, odt, x.device());
    return out.raw_data();
  };
  dispatch(dt, [&](auto tag) {
    using T = decltype(tag);
    switch (op) {
      case Reduce::Sum:
      case Reduce::Prod:
        if constexpr (is_fp<T>) {
          if (op == Reduce::Sum) run_fold(ArithOp<T, double, T, kSum>{0}, x, g, make(dt));
          else run_fold(ArithOp<T, double, T, kProd>{0}, x, g, make(dt));
        } else if constexpr (is_num<T> || std::is_same_v<T, bool>) {
          using U = unsigned long long;  // int64 arithmetic that wraps instead of overflowing
          if (op == Reduce::Sum) run_fold(ArithOp<T, U, int64_t, kSum>{0}, x, g, make(DType::Int64));
          else run_fold(ArithOp<T, U, int64_t, kProd>{0}, x, g, make(DType::Int64));
        } else {
          bad_dtype(name, dt);
        }
        break;
      case Reduce::Mean:
        if constexpr (is_fp<T>) run_fold(ArithOp<T, double, T, kMean>{static_cast<double>(g.K)}, x, g, make(dt));
        else bad_dtype(name, dt);
        break;
      case Reduce::Max:
      case Reduce::Min:
        if constexpr (is_num<T>) {
          if (op == Reduce::Max) run_fold(ExtremeOp<T, true>{}, x, g, make(dt));
          else run_fold(ExtremeOp<T, false>{}, x, g, make(dt));
        } else {
          bad_dtype(name, dt);
        }
        break;
      case Reduce::LogSumExp:
        if constexpr (is_fp<T>) {
          Tensor mx = empty({g.nout}, dt, x.device());
          run_fold(ExtremeOp<T, true>{}, x, g, mx.raw_data());
          run_fold(LseOp<T>{static_cast<const T*>(mx.raw_data())}, x, g, make(dt));
        } else {
          bad_dtype(name, dt);
        }
        break;
      case Reduce::Any:
      case Reduce::All: {
        const bool any = op == Reduce::Any;
        if constexpr (std::is_same_v<T, bfloat16> || std::is_same_v<T, float16>) {
          if (any) run_fold(TruthOp<uint16_t, true, true>{}, x, g, make(DType::Bool));
          else run_fold(TruthOp<uint16_t, false, true>{}, x, g, make(DType::Bool));
        } else {
          if (any) run_fold(TruthOp<T, true, false>{}, x, g, make(DType::Bool));
          else run_fold(TruthOp<T, false, false>{}, x, g, make(DType::Bool));
        }
        break;
      }
    }
  });
  return keepdim ? out.reshape(reduce_keepdim_shape(x.shape(), axes)) : out;
}

namespace {

template <bool kMax>
Tensor arg_extreme(const Tensor& x, int64_t dim, bool keepdim) {
  const char* name = kMax ? "argmax" : "argmin";
  if (x.dim() == 0) return zeros({}, DType::Int64, x.device());
  const Shape axes{dim};
  Tensor out = empty(reduce_drop_axes(x.shape(), axes), DType::Int64, x.device());
  if (out.numel() > 0) {
    const Geom g = make_geom(x, axes);
    dispatch(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      if constexpr (is_num<T>) run_fold(ArgOp<T, kMax>{}, x, g, out.raw_data());
      else bad_dtype(name, x.dtype());
    });
  }
  return keepdim ? out.reshape(reduce_keepdim_shape(x.shape(), axes)) : out;
}

}  // namespace

Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) { return arg_extreme<true>(x, dim, keepdim); }
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim) { return arg_extreme<false>(x, dim, keepdim); }

Tensor var(const Tensor& x, const Shape& axes, int64_t correction, bool keepdim, bool take_sqrt) {
  if (x.numel() == 0) return empty_input(x, axes, keepdim, NAN, x.dtype());
  const Geom g = make_geom(x, axes);
  Tensor out = empty(reduce_drop_axes(x.shape(), axes), x.dtype(), x.device());
  dispatch_float(x.dtype(), take_sqrt ? "std" : "var", [&](auto tag) {
    using T = decltype(tag);
    // Two passes, as the CPU: the mean, then the sum of squared deviations from it (no
    // cancellation, unlike E[x^2] - E[x]^2).
    Tensor mean = empty({g.nout}, DType::Float64, x.device());
    run_fold(ArithOp<T, double, double, kMean>{static_cast<double>(g.K)}, x, g, mean.raw_data());
    // As PyTorch: divide by max(0, N - correction), so too few elements give inf or NaN.
    const double denom = static_cast<double>(std::max<int64_t>(g.K - correction, 0));
    run_fold(VarOp<T>{static_cast<const double*>(mean.raw_data()), denom, take_sqrt}, x, g, out.raw_data());
  });
  return keepdim ? out.reshape(reduce_keepdim_shape(x.shape(), axes)) : out;
}

Tensor norm(const Tensor& x, double p, const Shape& axes, bool keepdim) {
  if (x.numel() == 0) return empty_input(x, axes, keepdim, 0.0, x.dtype());
  const Geom g = make_geom(x, axes);
  Tensor out = empty(reduce_drop_axes(x.shape(), axes), x.dtype(), x.device());
  dispatch_float(x.dtype(), "norm", [&](auto tag) {
    using T = decltype(tag);
    if (std::isinf(p)) run_fold(NormInfOp<T>{}, x, g, out.raw_data());
    else if (p == 1.0) run_fold(NormOp<T, kP1>{p}, x, g, out.raw_data());
    else if (p == 2.0) run_fold(NormOp<T, kP2>{p}, x, g, out.raw_data());
    else run_fold(NormOp<T, kPGeneral>{p}, x, g, out.raw_data());
  });
  return keepdim ? out.reshape(reduce_keepdim_shape(x.shape(), axes)) : out;
}

}  // namespace cortex::kernels::CORTEX_BACKEND
