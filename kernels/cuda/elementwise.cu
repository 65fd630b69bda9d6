// Elementwise kernels on CUDA and the emulated CUDA device (kernels/cuda/common.cuh says how one
// source serves both). One thread per output element; strided and broadcast operands are read
// through an Indexer, so no operand is copied to contiguous memory first. Outputs are new and
// contiguous, so thread i writes out[i].
//
// The semantics (dtypes, NaN handling, rounding, integer wrap-around) are kernels/cpu/elementwise.cpp's,
// op for op; the comments there say why each one is as it is. Each op is a small functor that one
// of the generic map kernels applies, so the op is a template argument and every kernel holds only
// its own math (a runtime switch would give every kernel the registers of the worst op).
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "kernels/elementwise.h"
#include "kernels/shape.h"
// (last: see common.cuh)
#include "kernels/cuda/common.cuh"

namespace cortex::kernels::CORTEX_BACKEND {
namespace {

// ---------------------------------------------------------------- device helpers

// Offset of operand k for output element i. A plan of one dim (every operand contiguous, or a
// plain stride) needs no division: i is already the index along that dim, and on a GPU that saves
// a 64-bit division and remainder per operand. (On the emulated device, where a thread costs about
// 15 ns anyway, it makes no measurable difference.)
__device__ __forceinline__ int64_t at(const Indexer& ix, int k, int64_t i) {
  return ix.ndim == 1 ? i * ix.strides[k][0] : ix.offset(k, i);
}

// The 16-bit float types as the kernels see them: their bits (tensor/dtype.h's bfloat16 and
// float16 convert on the host only).
struct Bf16Bits {
  uint16_t bits;
};
struct F16Bits {
  uint16_t bits;
};

// Values as the comparisons see them: 16-bit floats widened to float (exactly), others as they are.
template <class T>
__device__ __forceinline__ T widen(T v) {
  return v;
}
__device__ __forceinline__ float widen(Bf16Bits v) { return __uint_as_float(static_cast<uint32_t>(v.bits) << 16); }
__device__ __forceinline__ float widen(F16Bits v) {
  const uint32_t sign = (static_cast<uint32_t>(v.bits) & 0x8000u) << 16;
  const uint32_t exp = (v.bits >> 10) & 0x1fu;
  const uint32_t mant = v.bits & 0x3ffu;
  if (exp == 0) {  // zero or subnormal: mant * 2^-24, exact in float
    const float f = static_cast<float>(mant) * 5.9604644775390625e-8f;
    return sign ? -f : f;
  }
  const uint32_t u = exp == 31 ? (sign | 0x7f800000u | (mant << 13)) : (sign | ((exp + 112) << 23) | (mant << 13));
  return __uint_as_float(u);
}

// Math by element type, through the global C names that both nvcc and the host build provide
// (qualified: cortex has tensor ops of the same names).
__device__ __forceinline__ float m_exp(float x) { return ::expf(x); }
__device__ __forceinline__ double m_exp(double x) { return ::exp(x); }
__device__ __forceinline__ float m_log(float x) { return ::logf(x); }
__device__ __forceinline__ double m_log(double x) { return ::log(x); }
__device__ __forceinline__ float m_log1p(float x) { return ::log1pf(x); }
__device__ __forceinline__ double m_log1p(double x) { return ::log1p(x); }
__device__ __forceinline__ float m_expm1(float x) { return ::expm1f(x); }
__device__ __forceinline__ double m_expm1(double x) { return ::expm1(x); }
__device__ __forceinline__ float m_sqrt(float x) { return ::sqrtf(x); }
__device__ __forceinline__ double m_sqrt(double x) { return ::sqrt(x); }
__device__ __forceinline__ float m_abs(float x) { return ::fabsf(x); }
__device__ __forceinline__ double m_abs(double x) { return ::fabs(x); }
__device__ __forceinline__ float m_sin(float x) { return ::sinf(x); }
__device__ __forceinline__ double m_sin(double x) { return ::sin(x); }
__device__ __forceinline__ float m_cos(float x) { return ::cosf(x); }
__device__ __forceinline__ double m_cos(double x) { return ::cos(x); }
__device__ __forceinline__ float m_tanh(float x) { return ::tanhf(x); }
__device__ __forceinline__ double m_tanh(double x) { return ::tanh(x); }
__device__ __forceinline__ float m_erf(float x) { return ::erff(x); }
__device__ __forceinline__ double m_erf(double x) { return ::erf(x); }
__device__ __forceinline__ float m_erfc(float x) { return ::erfcf(x); }
__device__ __forceinline__ double m_erfc(double x) { return ::erfc(x); }
__device__ __forceinline__ float m_pow(float x, float y) { return ::powf(x, y); }
__device__ __forceinline__ double m_pow(double x, double y) { return ::pow(x, y); }
__device__ __forceinline__ float m_atan2(float y, float x) { return ::atan2f(y, x); }
__device__ __forceinline__ double m_atan2(double y, double x) { return ::atan2(y, x); }
__device__ __forceinline__ float m_floor(float x) { return ::floorf(x); }
__device__ __forceinline__ double m_floor(double x) { return ::floor(x); }
__device__ __forceinline__ float m_ceil(float x) { return ::ceilf(x); }
__device__ __forceinline__ double m_ceil(double x) { return ::ceil(x); }
// rint rounds half to even in the default rounding mode, as the CPU's nearbyint.
__device__ __forceinline__ float m_rint(float x) { return ::rintf(x); }
__device__ __forceinline__ double m_rint(double x) { return ::rint(x); }

// exp as the CPU kernel computes it: 0 below the point where its vectorised exp clamps (about
// -88.7 in float, -709.8 in double), instead of a subnormal.
template <class T>
__device__ __forceinline__ T exp_flushed(T x) {
  const T lo = std::is_same_v<T, float> ? T(-88.72) : T(-709.78);
  return x < lo ? T(0) : m_exp(x);
}

// Logistic without overflow: exp only of -|x| <= 0.
template <class T>
__device__ __forceinline__ T sigmoid(T x) {
  const T e = exp_flushed(-m_abs(x)), r = T(1) / (T(1) + e);
  return x >= T(0) ? r : e * r;
}

// ---------------------------------------------------------------- op functors

// Float unary op OP; p is the op's parameter (elu's alpha, softplus's beta, pow's exponent).
template <class T, Unary OP>
struct UnaryFloat {
  T p;
  __device__ __forceinline__ T operator()(T x) const {
    if constexpr (OP == Unary::Neg) return -x;
    if constexpr (OP == Unary::Exp) return exp_flushed(x);
    if constexpr (OP == Unary::Log) return m_log(x);
    if constexpr (OP == Unary::Log1p) return m_log1p(x);
    if constexpr (OP == Unary::Expm1) return m_expm1(x);
    if constexpr (OP == Unary::Sqrt) return m_sqrt(x);
    if constexpr (OP == Unary::Rsqrt) return T(1) / m_sqrt(x);  // not rsqrt: correctly rounded sqrt, as the CPU
    if constexpr (OP == Unary::Reciprocal) return T(1) / x;
    if constexpr (OP == Unary::Square) return x * x;
    if constexpr (OP == Unary::Abs) return m_abs(x);
    if constexpr (OP == Unary::Sign) return x > T(0) ? T(1) : (x < T(0) ? T(-1) : x);  // keeps +-0 and NaN
    if constexpr (OP == Unary::Sin) return m_sin(x);
    if constexpr (OP == Unary::Cos) return m_cos(x);
    if constexpr (OP == Unary::Tanh) return m_tanh(x);
    if constexpr (OP == Unary::Erf) return m_erf(x);
    if constexpr (OP == Unary::Sigmoid) return sigmoid(x);
    if constexpr (OP == Unary::Relu) return x < T(0) ? T(0) : x;  // relu(NaN) = NaN
    if constexpr (OP == Unary::GeluErf) {
      // Below -2, 1 + erf cancels; erfc(-x / sqrt 2) does not.
      if (x < T(-2)) return T(0.5) * x * m_erfc(x * T(-0.70710678118654752440));
      return T(0.5) * x * (T(1) + m_erf(x * T(0.70710678118654752440)));
    }
    if constexpr (OP == Unary::GeluTanh)  // 1 + tanh(u) = 2 sigmoid(2u)
      return x * sigmoid(T(1.5957691216057307118) * (x + T(0.044715) * x * x * x));
    if constexpr (OP == Unary::QuickGelu) return x * sigmoid(T(1.702) * x);
    if constexpr (OP == Unary::Elu) return x > T(0) ? x : p * m_expm1(x);
    if constexpr (OP == Unary::Softplus) {  // log(1 + e^z) = max(z, 0) + log1p(e^-|z|)
      const T z = p * x;
      if (z > T(20)) return x;
      return ((z > T(0) ? z : T(0)) + m_log1p(exp_flushed(-m_abs(z)))) / p;
    }
    if constexpr (OP == Unary::PowScalar) return p == T(2) ? x * x : (p == T(1) ? x : m_pow(x, p));
    if constexpr (OP == Unary::Floor) return m_floor(x);
    if constexpr (OP == Unary::Ceil) return m_ceil(x);
    if constexpr (OP == Unary::Round) return m_rint(x);
  }
};

// Neg, Abs, Sign of int32/int64, wrapping as two's complement (neg(INT_MIN) = INT_MIN).
template <class T, Unary OP>
struct UnaryInt {
  __device__ __forceinline__ T operator()(T v) const {
    using U = std::make_unsigned_t<T>;
    if constexpr (OP == Unary::Neg) return static_cast<T>(U(0) - static_cast<U>(v));
    if constexpr (OP == Unary::Abs) return v < 0 ? static_cast<T>(U(0) - static_cast<U>(v)) : v;
    if constexpr (OP == Unary::Sign) return static_cast<T>((v > 0) - (v < 0));
  }
};

template <class T, Binary OP>
struct BinaryFloat {
  __device__ __forceinline__ T operator()(T x, T y) const {
    if constexpr (OP == Binary::Add) return x + y;
    if constexpr (OP == Binary::Sub) return x - y;
    if constexpr (OP == Binary::Mul) return x * y;
    if constexpr (OP == Binary::Div) return x / y;
    if constexpr (OP == Binary::Pow) return m_pow(x, y);
    if constexpr (OP == Binary::Maximum) return (x > y || x != x) ? x : y;  // NaN in either propagates
    if constexpr (OP == Binary::Minimum) return (x < y || x != x) ? x : y;
    if constexpr (OP == Binary::Atan2) return m_atan2(x, y);
  }
};

// Integer arithmetic through the unsigned type, so overflow wraps instead of being UB.
template <class T, Binary OP>
struct BinaryInt {
  __device__ __forceinline__ T operator()(T x, T y) const {
    using U = std::make_unsigned_t<T>;
    if constexpr (OP == Binary::Add) return static_cast<T>(U(x) + U(y));
    if constexpr (OP == Binary::Sub) return static_cast<T>(U(x) - U(y));
    if constexpr (OP == Binary::Mul) return static_cast<T>(U(x) * U(y));
    if constexpr (OP == Binary::Maximum) return x > y ? x : y;
    if constexpr (OP == Binary::Minimum) return x < y ? x : y;
  }
};

template <class T, Compare OP>
struct CompareFn {
  __device__ __forceinline__ bool operator()(T a, T b) const {
    const auto x = widen(a), y = widen(b);
    if constexpr (OP == Compare::Eq) return x == y;
    if constexpr (OP == Compare::Ne) return x != y;
    if constexpr (OP == Compare::Lt) return x < y;
    if constexpr (OP == Compare::Le) return x <= y;
    if constexpr (OP == Compare::Gt) return x > y;
    if constexpr (OP == Compare::Ge) return x >= y;
  }
};

// NaN inputs fail both comparisons and pass through.
template <class T>
struct ClampFn {
  T lo, hi;
  __device__ __forceinline__ T operator()(T v) const { return v < lo ? lo : (v > hi ? hi : v); }
};

template <class T>
struct AxpyFn {
  T alpha;
  __device__ __forceinline__ T operator()(T x, T y) const { return x + alpha * y; }
};

// ---------------------------------------------------------------- kernels

// out[i] = f(a[i]).
template <class TO, class TA, class F>
__global__ void map1_kernel(TO* __restrict__ out, const TA* __restrict__ a, Indexer ix, int64_t n, F f) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  out[i] = f(a[at(ix, 0, i)]);
}

// out[i] = f(a[i], b[i]), a and b broadcast to out's shape.
template <class TO, class TA, class TB, class F>
__global__ void map2_kernel(TO* __restrict__ out, const TA* __restrict__ a, const TB* __restrict__ b, Indexer ix,
                            int64_t n, F f) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  out[i] = f(a[at(ix, 0, i)], b[at(ix, 1, i)]);
}

// out[i] = cond[i] ? a[i] : b[i], moving the elements as unsigned words of their size (every
// dtype, bits unchanged).
template <class U>
__global__ void where_kernel(U* __restrict__ out, const bool* __restrict__ cond, const U* __restrict__ a,
                             const U* __restrict__ b, Indexer ix, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  out[i] = cond[at(ix, 0, i)] ? a[at(ix, 1, i)] : b[at(ix, 2, i)];
}

// The truth of element `off` of a tensor of dtype dt (the DType's value): nonzero, and NaN, are
// true, as Tensor::to(DType::Bool). A runtime switch: logical_and/or take operands of any two
// dtypes, and one kernel for every pair costs a few registers, not 64 instantiations.
__device__ __forceinline__ bool truth(const void* p, int dt, int64_t off) {
  switch (dt) {
    case static_cast<int>(DType::Float32): return static_cast<const float*>(p)[off] != 0.0f;
    case static_cast<int>(DType::Float64): return static_cast<const double*>(p)[off] != 0.0;
    case static_cast<int>(DType::BFloat16):
    case static_cast<int>(DType::Float16):  // nonzero apart from the sign bit (NaN included)
      return (static_cast<const uint16_t*>(p)[off] & 0x7fffu) != 0;
    case static_cast<int>(DType::Int32): return static_cast<const int32_t*>(p)[off] != 0;
    case static_cast<int>(DType::Int64): return static_cast<const int64_t*>(p)[off] != 0;
    default: return static_cast<const uint8_t*>(p)[off] != 0;  // UInt8, Bool
  }
}

enum class Logical { Not, And, Or };

// out[i] = not a[i], a[i] and b[i], a[i] or b[i] (b unused for Not).
template <Logical OP>
__global__ void logical_kernel(bool* __restrict__ out, const void* __restrict__ a, int dta, const void* __restrict__ b,
                               int dtb, Indexer ix, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const bool x = truth(a, dta, at(ix, 0, i));
  if constexpr (OP == Logical::Not) {
    out[i] = !x;
  } else {
    const bool y = truth(b, dtb, at(ix, 1, i));
    out[i] = OP == Logical::And ? (x && y) : (x || y);
  }
}

// ---------------------------------------------------------------- host side

// Launches map1_kernel over out (a is of out's shape or broadcasts to it).
template <class TO, class TA, class F>
void map1(const Tensor& out, const Tensor& a, F f) {
  const int64_t n = out.numel();
  if (n == 0) return;
  const Tensor ea = a.expand(out.shape());
  const Indexer ix = make_indexer<1>(out.shape(), {&ea});
  CORTEX_LAUNCH((map1_kernel<TO, TA, F>), blocks_for(n), kBlock, 0, stream(), static_cast<TO*>(out.raw_data()),
                static_cast<const TA*>(ea.raw_data()), ix, n, f);
}

// Launches map2_kernel over out; a and b broadcast to out's shape.
template <class TO, class TA, class TB, class F>
void map2(const Tensor& out, const Tensor& a, const Tensor& b, F f) {
  const int64_t n = out.numel();
  if (n == 0) return;
  const Tensor ea = a.expand(out.shape()), eb = b.expand(out.shape());
  const Indexer ix = make_indexer<2>(out.shape(), {&ea, &eb});
  CORTEX_LAUNCH((map2_kernel<TO, TA, TB, F>), blocks_for(n), kBlock, 0, stream(), static_cast<TO*>(out.raw_data()),
                static_cast<const TA*>(ea.raw_data()), static_cast<const TB*>(eb.raw_data()), ix, n, f);
}

// Calls f(std::integral_constant<Enum, value>) for the runtime value, so that the op becomes a
// template argument.
template <class F>
void with_unary(Unary op, F&& f) {
  switch (op) {
#define CORTEX_EW_CASE(X) \
  case Unary::X: return f(std::integral_constant<Unary, Unary::X>{});
    CORTEX_EW_CASE(Neg) CORTEX_EW_CASE(Exp) CORTEX_EW_CASE(Log) CORTEX_EW_CASE(Log1p) CORTEX_EW_CASE(Expm1)
    CORTEX_EW_CASE(Sqrt) CORTEX_EW_CASE(Rsqrt) CORTEX_EW_CASE(Reciprocal) CORTEX_EW_CASE(Square)
    CORTEX_EW_CASE(Abs) CORTEX_EW_CASE(Sign) CORTEX_EW_CASE(Sin) CORTEX_EW_CASE(Cos) CORTEX_EW_CASE(Tanh)
    CORTEX_EW_CASE(Erf) CORTEX_EW_CASE(Sigmoid) CORTEX_EW_CASE(Relu) CORTEX_EW_CASE(GeluErf)
    CORTEX_EW_CASE(GeluTanh) CORTEX_EW_CASE(QuickGelu) CORTEX_EW_CASE(Elu) CORTEX_EW_CASE(Softplus)
    CORTEX_EW_CASE(PowScalar) CORTEX_EW_CASE(Floor) CORTEX_EW_CASE(Ceil) CORTEX_EW_CASE(Round)
#undef CORTEX_EW_CASE
  }
  throw Error(cortex::detail::cat("unary: unknown op ", static_cast<int>(op)));
}

template <class F>
void with_binary(Binary op, F&& f) {
  switch (op) {
#define CORTEX_EW_CASE(X) \
  case Binary::X: return f(std::integral_constant<Binary, Binary::X>{});
    CORTEX_EW_CASE(Add) CORTEX_EW_CASE(Sub) CORTEX_EW_CASE(Mul) CORTEX_EW_CASE(Div) CORTEX_EW_CASE(Pow)
    CORTEX_EW_CASE(Maximum) CORTEX_EW_CASE(Minimum) CORTEX_EW_CASE(Atan2)
#undef CORTEX_EW_CASE
  }
  throw Error(cortex::detail::cat("binary: unknown op ", static_cast<int>(op)));
}

template <class F>
void with_compare(Compare op, F&& f) {
  switch (op) {
#define CORTEX_EW_CASE(X) \
  case Compare::X: return f(std::integral_constant<Compare, Compare::X>{});
    CORTEX_EW_CASE(Eq) CORTEX_EW_CASE(Ne) CORTEX_EW_CASE(Lt) CORTEX_EW_CASE(Le) CORTEX_EW_CASE(Gt) CORTEX_EW_CASE(Ge)
#undef CORTEX_EW_CASE
  }
  throw Error(cortex::detail::cat("compare: unknown op ", static_cast<int>(op)));
}

bool int_unary_ok(Unary op) { return op == Unary::Neg || op == Unary::Abs || op == Unary::Sign; }
bool int_binary_ok(Binary op) {
  return op == Binary::Add || op == Binary::Sub || op == Binary::Mul || op == Binary::Maximum ||
         op == Binary::Minimum;
}

template <class T>
void unary_int(Unary op, const Tensor& out, const Tensor& x) {
  CORTEX_CHECK(int_unary_ok(op), unary_name(op), ": expected a float32 or float64 tensor, found ",
               dtype_name(x.dtype()));
  with_unary(op, [&](auto c) {
    constexpr Unary OP = decltype(c)::value;
    if constexpr (OP == Unary::Neg || OP == Unary::Abs || OP == Unary::Sign) map1<T, T>(out, x, UnaryInt<T, OP>{});
  });
}

template <class T>
void binary_int(Binary op, const Tensor& out, const Tensor& a, const Tensor& b) {
  CORTEX_CHECK(int_binary_ok(op), binary_name(op), ": expected float32 or float64 operands, found ",
               dtype_name(a.dtype()));
  with_binary(op, [&](auto c) {
    constexpr Binary OP = decltype(c)::value;
    if constexpr (OP != Binary::Div && OP != Binary::Pow && OP != Binary::Atan2)
      map2<T, T, T>(out, a, b, BinaryInt<T, OP>{});
  });
}

// A double bound as an integer bound of type T, saturating (lo rounds up, hi rounds down; NaN is
// no bound), as the CPU kernel.
template <class T>
T int_bound(double v, bool is_lo) {
  if (std::isnan(v)) return is_lo ? std::numeric_limits<T>::lowest() : std::numeric_limits<T>::max();
  v = is_lo ? std::ceil(v) : std::floor(v);
  if (v <= static_cast<double>(std::numeric_limits<T>::lowest())) return std::numeric_limits<T>::lowest();
  if (v >= static_cast<double>(std::numeric_limits<T>::max())) return std::numeric_limits<T>::max();
  return static_cast<T>(v);
}

template <class T>
ClampFn<T> float_bounds(double lo, double hi) {
  return {std::isnan(lo) ? -std::numeric_limits<T>::infinity() : static_cast<T>(lo),
          std::isnan(hi) ? std::numeric_limits<T>::infinity() : static_cast<T>(hi)};
}

template <Logical OP>
Tensor logical(const Tensor& a, const Tensor* b) {
  const Shape s = b ? broadcast_shapes(a.shape(), b->shape(), OP == Logical::And ? "logical_and" : "logical_or")
                    : a.shape();
  Tensor out = empty(s, DType::Bool, a.device());
  const int64_t n = out.numel();
  if (n == 0) return out;
  const Tensor ea = a.expand(s);
  const Tensor eb = b ? b->expand(s) : ea;
  const Indexer ix = make_indexer<2>(s, {&ea, &eb});
  CORTEX_LAUNCH(logical_kernel<OP>, blocks_for(n), kBlock, 0, stream(), out.data<bool>(), ea.raw_data(),
                static_cast<int>(ea.dtype()), eb.raw_data(), static_cast<int>(eb.dtype()), ix, n);
  return out;
}

}  // namespace

// ---------------------------------------------------------------- the ops of kernels/ops.def

Tensor unary(Unary op, const Tensor& x, double param) {
  Tensor out = empty(x.shape(), x.dtype(), x.device());
  switch (x.dtype()) {
    case DType::Float32:
    case DType::Float64:
      dispatch_float(x.dtype(), unary_name(op), [&](auto tag) {
        using T = decltype(tag);
        with_unary(op, [&](auto c) { map1<T, T>(out, x, UnaryFloat<T, decltype(c)::value>{static_cast<T>(param)}); });
      });
      break;
    case DType::Int32: unary_int<int32_t>(op, out, x); break;
    case DType::Int64: unary_int<int64_t>(op, out, x); break;
    default:
      throw Error(cortex::detail::cat(unary_name(op), ": expected a float32 or float64 tensor, found ", dtype_name(x.dtype())));
  }
  return out;
}

Tensor binary(Binary op, const Tensor& a, const Tensor& b) {
  Tensor out = empty(broadcast_shapes(a.shape(), b.shape(), binary_name(op)), a.dtype(), a.device());
  switch (a.dtype()) {
    case DType::Float32:
    case DType::Float64:
      dispatch_float(a.dtype(), binary_name(op), [&](auto tag) {
        using T = decltype(tag);
        with_binary(op, [&](auto c) { map2<T, T, T>(out, a, b, BinaryFloat<T, decltype(c)::value>{}); });
      });
      break;
    case DType::Int32: binary_int<int32_t>(op, out, a, b); break;
    case DType::Int64: binary_int<int64_t>(op, out, a, b); break;
    default:
      throw Error(cortex::detail::cat(binary_name(op), ": expected float32 or float64 operands, found ", dtype_name(a.dtype())));
  }
  return out;
}

Tensor compare(Compare op, const Tensor& a, const Tensor& b) {
  Tensor out = empty(broadcast_shapes(a.shape(), b.shape(), "compare"), DType::Bool, a.device());
  const auto run = [&](auto tag) {
    using T = decltype(tag);
    with_compare(op, [&](auto c) { map2<bool, T, T>(out, a, b, CompareFn<T, decltype(c)::value>{}); });
  };
  switch (a.dtype()) {
    case DType::Float32: run(float{}); break;
    case DType::Float64: run(double{}); break;
    case DType::BFloat16: run(Bf16Bits{}); break;
    case DType::Float16: run(F16Bits{}); break;
    case DType::Int32: run(int32_t{}); break;
    case DType::Int64: run(int64_t{}); break;
    case DType::UInt8: run(uint8_t{}); break;
    case DType::Bool: throw Error("compare: expected numeric operands, found bool");
  }
  return out;
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  const Shape s = broadcast_shapes3(cond.shape(), a.shape(), b.shape(), "where");
  CORTEX_CHECK(cond.dtype() == DType::Bool, "where: expected a bool condition, found ", dtype_name(cond.dtype()));
  Tensor out = empty(s, a.dtype(), a.device());
  const int64_t n = out.numel();
  if (n == 0) return out;
  const Tensor c = cond.expand(s), x = a.expand(s), y = b.expand(s);
  const Indexer ix = make_indexer<3>(s, {&c, &x, &y});
  const auto run = [&](auto word) {
    using U = decltype(word);
    CORTEX_LAUNCH(where_kernel<U>, blocks_for(n), kBlock, 0, stream(), static_cast<U*>(out.raw_data()),
                  c.data<bool>(), static_cast<const U*>(x.raw_data()), static_cast<const U*>(y.raw_data()), ix, n);
  };
  switch (dtype_size(a.dtype())) {
    case 1: run(uint8_t{}); break;
    case 2: run(uint16_t{}); break;
    case 4: run(uint32_t{}); break;
    case 8: run(uint64_t{}); break;
    default: throw Error(cortex::detail::cat("where: unsupported dtype ", dtype_name(a.dtype())));
  }
  return out;
}

Tensor clamp(const Tensor& x, double lo, double hi) {
  Tensor out = empty(x.shape(), x.dtype(), x.device());
  switch (x.dtype()) {
    case DType::Float32: map1<float, float>(out, x, float_bounds<float>(lo, hi)); break;
    case DType::Float64: map1<double, double>(out, x, float_bounds<double>(lo, hi)); break;
    case DType::Int32:
      map1<int32_t, int32_t>(out, x, ClampFn<int32_t>{int_bound<int32_t>(lo, true), int_bound<int32_t>(hi, false)});
      break;
    case DType::Int64:
      map1<int64_t, int64_t>(out, x, ClampFn<int64_t>{int_bound<int64_t>(lo, true), int_bound<int64_t>(hi, false)});
      break;
    default:
      throw Error(cortex::detail::cat("clamp: expected a float32, float64, int32 or int64 tensor, found ",
                              dtype_name(x.dtype())));
  }
  return out;
}

Tensor axpy(const Tensor& a, double alpha, const Tensor& b) {
  Tensor out = empty(broadcast_shapes(a.shape(), b.shape(), "axpy"), a.dtype(), a.device());
  dispatch_float(a.dtype(), "axpy", [&](auto tag) {
    using T = decltype(tag);
    map2<T, T, T>(out, a, b, AxpyFn<T>{static_cast<T>(alpha)});
  });
  return out;
}

Tensor logical_not(const Tensor& x) { return logical<Logical::Not>(x, nullptr); }
Tensor logical_and(const Tensor& a, const Tensor& b) { return logical<Logical::And>(a, &b); }
Tensor logical_or(const Tensor& a, const Tensor& b) { return logical<Logical::Or>(a, &b); }

// isnan reads every float dtype in place (the 16-bit ones widened to float keep their NaNs);
// integers and bools are never NaN.
namespace {
template <class T>
struct IsNanFn {
  __device__ __forceinline__ bool operator()(T v) const {
    const auto w = widen(v);
    return w != w;
  }
};
}  // namespace

Tensor isnan(const Tensor& x) {
  Tensor out = empty(x.shape(), DType::Bool, x.device());
  if (x.numel() == 0) return out;
  switch (x.dtype()) {
    case DType::Float32: map1<bool, float>(out, x, IsNanFn<float>{}); break;
    case DType::Float64: map1<bool, double>(out, x, IsNanFn<double>{}); break;
    case DType::BFloat16: map1<bool, Bf16Bits>(out, x, IsNanFn<Bf16Bits>{}); break;
    case DType::Float16: map1<bool, F16Bits>(out, x, IsNanFn<F16Bits>{}); break;
    default: out.fill_(0.0);
  }
  return out;
}

}  // namespace cortex::kernels::CORTEX_BACKEND
