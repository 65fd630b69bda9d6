// CPU elementwise kernels.
//
// Every loop goes through strided_for: it merges dims that are contiguous in all operands, so a
// contiguous tensor is one long row split over threads, and a broadcast operand shows up as a zero
// inner stride. The inner loops special-case unit and zero strides so GCC vectorises them. GCC does
// not vectorise std::exp & co. without -ffast-math, so the transcendental unary ops go through
// Eigen's packet math on L1-sized blocks instead.
#include "kernels/cpu/elementwise.h"

// GCC 12 flags the _mm512_undefined_* placeholders inside Eigen's AVX-512 packet math as
// uninitialised (a known false positive); it drowns real warnings, so it is silenced here.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <Eigen/Core>
#include <unsupported/Eigen/SpecialFunctions>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <type_traits>

#include "kernels/shape.h"
#include "tensor/strided.h"

namespace cortex::kernels::cpu {
namespace {

// Elements per block of the unary kernels: the four stack buffers of this size stay in L1.
constexpr int64_t kBlock = 512;

template <class T> using Arr = Eigen::Array<T, Eigen::Dynamic, 1>;
template <class T> using CMap = Eigen::Map<const Arr<T>>;
template <class T> using MMap = Eigen::Map<Arr<T>>;

template <class T> constexpr bool is_f16 = std::is_same_v<T, bfloat16> || std::is_same_v<T, float16>;

// ---------------------------------------------------------------- loop drivers

// out[i] = f(a[i], b[i]) for a, b already broadcast to out's shape (zero strides allowed).
template <class TO, class TA, class TB, class F>
void map2(const Tensor& out, const Tensor& a, const Tensor& b, F f) {
  auto plan = make_plan<3>(out.shape(), std::array<const Tensor*, 3>{&out, &a, &b});
  TO* o = static_cast<TO*>(out.raw_data());
  const TA* pa = static_cast<const TA*>(a.raw_data());
  const TB* pb = static_cast<const TB*>(b.raw_data());
  strided_for(plan, [&](int64_t n, const std::array<int64_t, 3>& off, const std::array<int64_t, 3>& inc) {
    TO* __restrict op = o + off[0];
    const TA* __restrict ap = pa + off[1];
    const TB* __restrict bp = pb + off[2];
    if (inc[0] == 1 && inc[1] == 1 && inc[2] == 1) {
      for (int64_t i = 0; i < n; ++i) op[i] = f(ap[i], bp[i]);
    } else if (inc[0] == 1 && inc[1] == 1 && inc[2] == 0) {
      const TB bv = *bp;
      for (int64_t i = 0; i < n; ++i) op[i] = f(ap[i], bv);
    } else if (inc[0] == 1 && inc[1] == 0 && inc[2] == 1) {
      const TA av = *ap;
      for (int64_t i = 0; i < n; ++i) op[i] = f(av, bp[i]);
    } else {
      for (int64_t i = 0; i < n; ++i) op[i * inc[0]] = f(ap[i * inc[1]], bp[i * inc[2]]);
    }
  });
}

// out[i] = f(x[i]) for x of out's shape.
template <class TO, class TX, class F>
void map1(const Tensor& out, const Tensor& x, F f) {
  auto plan = make_plan<2>(out.shape(), std::array<const Tensor*, 2>{&out, &x});
  TO* o = static_cast<TO*>(out.raw_data());
  const TX* px = static_cast<const TX*>(x.raw_data());
  strided_for(plan, [&](int64_t n, const std::array<int64_t, 2>& off, const std::array<int64_t, 2>& inc) {
    TO* __restrict op = o + off[0];
    const TX* __restrict xp = px + off[1];
    if (inc[0] == 1 && inc[1] == 1) {
      for (int64_t i = 0; i < n; ++i) op[i] = f(xp[i]);
    } else {
      for (int64_t i = 0; i < n; ++i) op[i * inc[0]] = f(xp[i * inc[1]]);
    }
  });
}

// Broadcasts a and b to one shape and allocates the output of dtype `dt`.
struct Broadcast2 {
  Tensor a, b, out;
  Broadcast2(const Tensor& a0, const Tensor& b0, DType dt, const char* op) {
    const Shape s = broadcast_shapes(a0.shape(), b0.shape(), op);
    a = a0.expand(s);
    b = b0.expand(s);
    out = empty(s, dt);
  }
};

// ---------------------------------------------------------------- unary

// exp of a contiguous block (in != out). Eigen clamps its argument at about -88.7 (float) and
// -709.8 (double), which would turn exp(-1000) into a tiny nonzero number; below that it is 0.
template <class T>
void exp_block(const T* __restrict in, T* __restrict out, int64_t n) {
  MMap<T>(out, n) = CMap<T>(in, n).exp();
  const T lo = std::is_same_v<T, float> ? T(-88.72) : T(-709.78);
  for (int64_t i = 0; i < n; ++i) out[i] = in[i] < lo ? T(0) : out[i];
}

// Numerically stable logistic of a contiguous block: exp is only ever taken of -|x| <= 0, so
// nothing overflows at x = +-1000. in, out and the scratch t are distinct.
template <class T>
void sigmoid_block(const T* __restrict in, T* __restrict out, int64_t n, T* __restrict t) {
  for (int64_t i = 0; i < n; ++i) t[i] = -std::abs(in[i]);
  exp_block(t, out, n);
  for (int64_t i = 0; i < n; ++i) {
    const T e = out[i], r = T(1) / (T(1) + e);
    out[i] = in[i] >= T(0) ? r : e * r;
  }
}

// erfc(z) for float z in [1.25, 9] (9^2 stays inside the range of Eigen's float exp), within a few
// ulps: fdlibm's erfcf method and its minimax coefficients (one set below 1/0.35, one above),
//   erfc(z) = exp(-zt^2 - 0.5625) exp((zt - z)(zt + z) + R(s)/S(s)) / z,  s = 1/z^2,
// with zt = z cut to 6 fractional bits, so that zt^2 is exact and the first exp's argument keeps
// its bits (exp of a rounded -z^2 would be off by up to 81 x 2^-24 relative). Written with Eigen's
// packet functions, one packet at a time: array expressions on a dozen elements would pay for a
// dozen temporaries and a scalar remainder. n <= kBlock, a multiple of kErfcWidth.
constexpr int64_t kErfcWidth = Eigen::internal::packet_traits<float>::size;
static_assert(kBlock % kErfcWidth == 0);
void erfc_tail_block(const float* __restrict z, float* __restrict out, int64_t n) {
  namespace ei = Eigen::internal;
  using P = ei::packet_traits<float>::type;
  auto c = [](float v) { return ei::pset1<P>(v); };
  auto poly = [&](const P& s, std::initializer_list<float> k) {  // k[0] + s (k[1] + s (...)), by Horner
    const float* q = k.begin();
    P r = c(q[k.size() - 1]);
    for (int64_t i = static_cast<int64_t>(k.size()) - 2; i >= 0; --i) r = ei::pmadd(r, s, c(q[i]));
    return r;
  };
  for (int64_t j = 0; j < n; j += kErfcWidth) {
    const P Z = ei::ploadu<P>(z + j);
    const P s = ei::pdiv(c(1.0f), ei::pmul(Z, Z));
    const P Ra = poly(s, {-9.8649440333e-03f, -6.9385856390e-01f, -1.0558626175e+01f, -6.2375331879e+01f,
                          -1.6239666748e+02f, -1.8460508728e+02f, -8.1287437439e+01f, -9.8143291473e+00f});
    const P Sa = poly(s, {1.0f, 1.9651271820e+01f, 1.3765776062e+02f, 4.3456588745e+02f, 6.4538726807e+02f,
                          4.2900814819e+02f, 1.0863500214e+02f, 6.5702495575e+00f, -6.0424413532e-02f});
    const P Rb = poly(s, {-9.8649431020e-03f, -7.9928326607e-01f, -1.7757955551e+01f, -1.6063638306e+02f,
                          -6.3756646729e+02f, -1.0250950928e+03f, -4.8351919556e+02f});
    const P Sb = poly(s, {1.0f, 3.0338060379e+01f, 3.2579251099e+02f, 1.5367296143e+03f, 3.1998581543e+03f,
                          2.5530502930e+03f, 4.7452853394e+02f, -2.2440952301e+01f});
    const P RS = ei::pselect(ei::pcmp_lt(Z, c(1.0f / 0.35f)), ei::pdiv(Ra, Sa), ei::pdiv(Rb, Sb));
    const P zt = ei::pmul(ei::pfloor(ei::pmul(Z, c(64.0f))), c(1.0f / 64.0f));
    const P e1 = ei::pexp(ei::psub(ei::pnegate(ei::pmul(zt, zt)), c(0.5625f)));
    const P e2 = ei::pexp(ei::padd(ei::pmul(ei::psub(zt, Z), ei::padd(zt, Z)), RS));
    ei::pstoreu(out + j, ei::pdiv(ei::pmul(e1, e2), Z));
  }
}

// x Phi(x) = x/2 (1 + erf(x / sqrt 2)) of a contiguous block; t and t2 are scratch.
template <class T>
void gelu_erf_block(const T* __restrict x, T* __restrict o, int64_t n, T* __restrict t, T* __restrict t2) {
  constexpr T kRsqrt2 = T(0.70710678118654752440);
  MMap<T>(t, n) = (CMap<T>(x, n) * kRsqrt2).erf();
  for (int64_t i = 0; i < n; ++i) o[i] = T(0.5) * x[i] * (T(1) + t[i]);
  // Below -2, 1 + erf cancels (float32 would keep a few bits); x/2 erfc(-x / sqrt 2) does not.
  // float32: those elements are gathered (their share depends on weights and input: 2% of
  // N(0, 1), 31% of N(-1, 4)), then erfc runs vectorised on them for -x / sqrt 2 up to 9; the
  // scalar erfcf beyond that (rare), and for float64. A branch and a scalar erfcf per element
  // took 197 x 3072 elements of N(-1, 4) 4.15 ms on one thread; this, 0.70 ms.
  constexpr T kFar = T(-9) / kRsqrt2;
  if constexpr (std::is_same_v<T, float>) {
    int32_t idx[kBlock];
    int64_t m = 0, i = 0;
#ifdef __AVX512F__
    // 16 at a time: compare, then the kept lanes' indices compressed to the front.
    const __m512 lim = _mm512_set1_ps(-2.0f);
    __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (; i + 16 <= n; i += 16, lane = _mm512_add_epi32(lane, _mm512_set1_epi32(16))) {
      const __mmask16 keep = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + i), lim, _CMP_LT_OQ);
      _mm512_mask_compressstoreu_epi32(idx + m, keep, lane);
      m += __builtin_popcount(keep);
    }
#endif
    for (; i < n; ++i) {  // no branch: the index is written, the count moves on if kept
      idx[m] = static_cast<int32_t>(i);
      m += x[i] < T(-2);
    }
    if (m == 0) return;
    for (int64_t j = 0; j < m; ++j) t[j] = std::clamp(-kRsqrt2 * x[idx[j]], 1.25f, 9.0f);
    // Whole packets (at most kBlock: a multiple of the width), padded with an unused valid argument.
    const int64_t mp = (m + kErfcWidth - 1) / kErfcWidth * kErfcWidth;
    std::fill(t + m, t + mp, 2.0f);
    erfc_tail_block(t, t2, mp);
    for (int64_t j = 0; j < m; ++j) {
      const int64_t i = idx[j];
      o[i] = T(0.5) * x[i] * (x[i] < kFar ? std::erfc(-kRsqrt2 * x[i]) : t2[j]);
    }
  } else {
    for (int64_t i = 0; i < n; ++i)
      if (x[i] < T(-2)) o[i] = T(0.5) * x[i] * std::erfc(-kRsqrt2 * x[i]);
  }
}

// One contiguous block of a float unary op; x and o have n <= kBlock elements, t and t2 are scratch.
template <class T>
void unary_block(Unary op, const T* __restrict x, T* __restrict o, int64_t n, T p, T* __restrict t,
                 T* __restrict t2) {
  CMap<T> X(x, n);
  MMap<T> O(o, n), Tm(t, n);
  switch (op) {
    case Unary::Neg: for (int64_t i = 0; i < n; ++i) o[i] = -x[i]; break;
    case Unary::Exp: exp_block(x, o, n); break;
    case Unary::Log: O = X.log(); break;
    case Unary::Log1p: O = X.log1p(); break;
    case Unary::Expm1: O = X.expm1(); break;
    // Scalar sqrt on purpose: Eigen 3.4's AVX-512 sqrt is an rsqrt approximation that is not
    // correctly rounded and returns NaN for +inf.
    case Unary::Sqrt: for (int64_t i = 0; i < n; ++i) o[i] = std::sqrt(x[i]); break;
    case Unary::Rsqrt: for (int64_t i = 0; i < n; ++i) o[i] = T(1) / std::sqrt(x[i]); break;
    case Unary::Reciprocal: for (int64_t i = 0; i < n; ++i) o[i] = T(1) / x[i]; break;
    case Unary::Square: for (int64_t i = 0; i < n; ++i) o[i] = x[i] * x[i]; break;
    case Unary::Abs: for (int64_t i = 0; i < n; ++i) o[i] = std::abs(x[i]); break;
    case Unary::Sign:  // sign(+-0) keeps the zero, sign(NaN) = NaN
      for (int64_t i = 0; i < n; ++i) o[i] = x[i] > T(0) ? T(1) : (x[i] < T(0) ? T(-1) : x[i]);
      break;
    case Unary::Sin: O = X.sin(); break;
    case Unary::Cos: O = X.cos(); break;
    case Unary::Tanh: O = X.tanh(); break;
    case Unary::Erf: O = X.erf(); break;
    case Unary::Sigmoid: sigmoid_block(x, o, n, t); break;
    case Unary::Relu:  // x < 0 rather than x > 0 so that relu(NaN) = NaN
      for (int64_t i = 0; i < n; ++i) o[i] = x[i] < T(0) ? T(0) : x[i];
      break;
    case Unary::GeluErf: gelu_erf_block(x, o, n, t, t2); break;
    case Unary::GeluTanh:  // 1 + tanh(u) = 2 sigmoid(2u): no cancellation for u << 0
      for (int64_t i = 0; i < n; ++i) t[i] = T(1.5957691216057307118) * (x[i] + T(0.044715) * x[i] * x[i] * x[i]);
      sigmoid_block(t, t2, n, o);  // o is scratch here
      for (int64_t i = 0; i < n; ++i) o[i] = x[i] * t2[i];
      break;
    case Unary::QuickGelu:
      for (int64_t i = 0; i < n; ++i) t[i] = T(1.702) * x[i];
      sigmoid_block(t, t2, n, o);  // o is scratch here
      for (int64_t i = 0; i < n; ++i) o[i] = x[i] * t2[i];
      break;
    case Unary::Elu:  // alpha = p
      Tm = X.expm1();
      for (int64_t i = 0; i < n; ++i) o[i] = x[i] > T(0) ? x[i] : p * t[i];
      break;
    case Unary::Softplus: {  // beta = p; log(1 + e^z) = max(z, 0) + log1p(e^-|z|) never overflows
      for (int64_t i = 0; i < n; ++i) t2[i] = -std::abs(p * x[i]);
      exp_block(t2, t, n);
      Tm = Tm.log1p();
      for (int64_t i = 0; i < n; ++i) {
        const T z = p * x[i];
        o[i] = z > T(20) ? x[i] : ((z > T(0) ? z : T(0)) + t[i]) / p;
      }
      break;
    }
    case Unary::PowScalar:
      if (p == T(2)) {
        for (int64_t i = 0; i < n; ++i) o[i] = x[i] * x[i];
      } else if (p == T(1)) {
        for (int64_t i = 0; i < n; ++i) o[i] = x[i];
      } else {
        for (int64_t i = 0; i < n; ++i) o[i] = std::pow(x[i], p);
      }
      break;
    case Unary::Floor: for (int64_t i = 0; i < n; ++i) o[i] = std::floor(x[i]); break;
    case Unary::Ceil: for (int64_t i = 0; i < n; ++i) o[i] = std::ceil(x[i]); break;
    case Unary::Round:  // half to even, as PyTorch and NumPy
      for (int64_t i = 0; i < n; ++i) o[i] = std::nearbyint(x[i]);
      break;
  }
}

template <class T>
Tensor unary_float(Unary op, const Tensor& x, double param) {
  Tensor out = empty(x.shape(), x.dtype());
  auto plan = make_plan<2>(x.shape(), std::array<const Tensor*, 2>{&out, &x});
  T* o = out.data<T>();
  const T* in = x.data<T>();
  const T p = static_cast<T>(param);
  strided_for(plan, [&](int64_t n, const std::array<int64_t, 2>& off, const std::array<int64_t, 2>& inc) {
    alignas(64) T xb[kBlock], ob[kBlock], tb[kBlock], tb2[kBlock];
    for (int64_t s = 0; s < n; s += kBlock) {
      const int64_t m = std::min(kBlock, n - s);
      // Strided input is gathered into a block so the math below always sees contiguous data.
      const T* xp = in + off[1] + s * inc[1];
      if (inc[1] != 1) {
        for (int64_t i = 0; i < m; ++i) xb[i] = xp[i * inc[1]];
        xp = xb;
      }
      T* op_ = inc[0] == 1 ? o + off[0] + s : ob;
      unary_block(op, xp, op_, m, p, tb, tb2);
      if (inc[0] != 1)
        for (int64_t i = 0; i < m; ++i) o[off[0] + (s + i) * inc[0]] = ob[i];
    }
  });
  return out;
}

// Neg, Abs, Sign of int32/int64. Wraps like two's complement (neg(INT_MIN) = INT_MIN), as PyTorch.
template <class T>
Tensor unary_int(Unary op, const Tensor& x) {
  using U = std::make_unsigned_t<T>;
  Tensor out = empty(x.shape(), x.dtype());
  switch (op) {
    case Unary::Neg: map1<T, T>(out, x, [](T v) { return static_cast<T>(U(0) - static_cast<U>(v)); }); break;
    case Unary::Abs:
      map1<T, T>(out, x, [](T v) { return v < 0 ? static_cast<T>(U(0) - static_cast<U>(v)) : v; });
      break;
    case Unary::Sign: map1<T, T>(out, x, [](T v) { return static_cast<T>((v > 0) - (v < 0)); }); break;
    default:
      throw Error(detail::cat(unary_name(op), ": expected a float32 or float64 tensor, found ",
                              dtype_name(x.dtype())));
  }
  return out;
}

// ---------------------------------------------------------------- binary

template <class T>
void binary_float(Binary op, const Tensor& out, const Tensor& a, const Tensor& b) {
  switch (op) {
    case Binary::Add: map2<T, T, T>(out, a, b, [](T x, T y) { return x + y; }); break;
    case Binary::Sub: map2<T, T, T>(out, a, b, [](T x, T y) { return x - y; }); break;
    case Binary::Mul: map2<T, T, T>(out, a, b, [](T x, T y) { return x * y; }); break;
    case Binary::Div: map2<T, T, T>(out, a, b, [](T x, T y) { return x / y; }); break;
    case Binary::Pow: map2<T, T, T>(out, a, b, [](T x, T y) { return std::pow(x, y); }); break;
    // NaN in either operand propagates (as torch.maximum); written as selects so it vectorises.
    case Binary::Maximum: map2<T, T, T>(out, a, b, [](T x, T y) { return (x > y || x != x) ? x : y; }); break;
    case Binary::Minimum: map2<T, T, T>(out, a, b, [](T x, T y) { return (x < y || x != x) ? x : y; }); break;
    case Binary::Atan2: map2<T, T, T>(out, a, b, [](T x, T y) { return std::atan2(x, y); }); break;
  }
}

// Integer arithmetic goes through the unsigned type so overflow wraps instead of being UB.
template <class T>
void binary_int(Binary op, const Tensor& out, const Tensor& a, const Tensor& b) {
  using U = std::make_unsigned_t<T>;
  switch (op) {
    case Binary::Add: map2<T, T, T>(out, a, b, [](T x, T y) { return static_cast<T>(U(x) + U(y)); }); break;
    case Binary::Sub: map2<T, T, T>(out, a, b, [](T x, T y) { return static_cast<T>(U(x) - U(y)); }); break;
    case Binary::Mul: map2<T, T, T>(out, a, b, [](T x, T y) { return static_cast<T>(U(x) * U(y)); }); break;
    case Binary::Maximum: map2<T, T, T>(out, a, b, [](T x, T y) { return x > y ? x : y; }); break;
    case Binary::Minimum: map2<T, T, T>(out, a, b, [](T x, T y) { return x < y ? x : y; }); break;
    default:
      throw Error(detail::cat(binary_name(op), ": expected float32 or float64 operands, found ",
                              dtype_name(a.dtype())));
  }
}

template <class T>
void compare_typed(Compare op, const Tensor& out, const Tensor& a, const Tensor& b) {
  using W = std::conditional_t<is_f16<T>, float, T>;  // 16-bit floats compare as float
  switch (op) {
    case Compare::Eq: map2<bool, T, T>(out, a, b, [](T x, T y) { return W(x) == W(y); }); break;
    case Compare::Ne: map2<bool, T, T>(out, a, b, [](T x, T y) { return W(x) != W(y); }); break;
    case Compare::Lt: map2<bool, T, T>(out, a, b, [](T x, T y) { return W(x) < W(y); }); break;
    case Compare::Le: map2<bool, T, T>(out, a, b, [](T x, T y) { return W(x) <= W(y); }); break;
    case Compare::Gt: map2<bool, T, T>(out, a, b, [](T x, T y) { return W(x) > W(y); }); break;
    case Compare::Ge: map2<bool, T, T>(out, a, b, [](T x, T y) { return W(x) >= W(y); }); break;
  }
}

// Truth values as a Bool tensor (nonzero and NaN are true); a Bool tensor is returned as is.
Tensor truth(const Tensor& x) { return x.dtype() == DType::Bool ? x : x.to(DType::Bool); }

// double bound -> integer bound of type T, saturating (lo rounds up, hi rounds down).
template <class T>
T int_bound(double v, bool is_lo) {
  if (std::isnan(v)) return is_lo ? std::numeric_limits<T>::lowest() : std::numeric_limits<T>::max();
  v = is_lo ? std::ceil(v) : std::floor(v);
  if (v <= static_cast<double>(std::numeric_limits<T>::lowest())) return std::numeric_limits<T>::lowest();
  if (v >= static_cast<double>(std::numeric_limits<T>::max())) return std::numeric_limits<T>::max();
  return static_cast<T>(v);
}

}  // namespace

// ---------------------------------------------------------------- entry points

Tensor unary(Unary op, const Tensor& x, double param) {
  switch (x.dtype()) {
    case DType::Float32: return unary_float<float>(op, x, param);
    case DType::Float64: return unary_float<double>(op, x, param);
    case DType::Int32: return unary_int<int32_t>(op, x);
    case DType::Int64: return unary_int<int64_t>(op, x);
    default: break;
  }
  throw Error(detail::cat(unary_name(op), ": expected a float32 or float64 tensor, found ", dtype_name(x.dtype())));
}

Tensor binary(Binary op, const Tensor& a, const Tensor& b) {
  Broadcast2 bc(a, b, a.dtype(), binary_name(op));
  switch (a.dtype()) {
    case DType::Float32: binary_float<float>(op, bc.out, bc.a, bc.b); break;
    case DType::Float64: binary_float<double>(op, bc.out, bc.a, bc.b); break;
    case DType::Int32: binary_int<int32_t>(op, bc.out, bc.a, bc.b); break;
    case DType::Int64: binary_int<int64_t>(op, bc.out, bc.a, bc.b); break;
    default:
      throw Error(detail::cat(binary_name(op), ": expected float32 or float64 operands, found ", dtype_name(a.dtype())));
  }
  return bc.out;
}

Tensor compare(Compare op, const Tensor& a, const Tensor& b) {
  Broadcast2 bc(a, b, DType::Bool, "compare");
  dispatch(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, bool>)
      throw Error("compare: expected numeric operands, found bool");
    else
      compare_typed<T>(op, bc.out, bc.a, bc.b);
  });
  return bc.out;
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  const Shape s = broadcast_shapes3(cond.shape(), a.shape(), b.shape(), "where");
  Tensor c = cond.expand(s), x = a.expand(s), y = b.expand(s);
  Tensor out = empty(s, a.dtype());
  auto plan = make_plan<4>(s, std::array<const Tensor*, 4>{&out, &c, &x, &y});
  const bool* pc = c.data<bool>();
  dispatch(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* o = static_cast<T*>(out.raw_data());
    const T* px = static_cast<const T*>(x.raw_data());
    const T* py = static_cast<const T*>(y.raw_data());
    strided_for(plan, [&](int64_t n, const std::array<int64_t, 4>& off, const std::array<int64_t, 4>& inc) {
      T* __restrict op = o + off[0];
      const bool* __restrict cp = pc + off[1];
      const T* __restrict xp = px + off[2];
      const T* __restrict yp = py + off[3];
      if (inc[0] == 1 && inc[1] == 1 && inc[2] == 1 && inc[3] == 1) {
        for (int64_t i = 0; i < n; ++i) op[i] = cp[i] ? xp[i] : yp[i];
      } else {
        for (int64_t i = 0; i < n; ++i) op[i * inc[0]] = cp[i * inc[1]] ? xp[i * inc[2]] : yp[i * inc[3]];
      }
    });
  });
  return out;
}

Tensor clamp(const Tensor& x, double lo, double hi) {
  Tensor out = empty(x.shape(), x.dtype());
  dispatch(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_floating_point_v<T>) {
      // Comparisons with NaN are false, so NaN inputs pass through unchanged.
      const T l = std::isnan(lo) ? -std::numeric_limits<T>::infinity() : static_cast<T>(lo);
      const T h = std::isnan(hi) ? std::numeric_limits<T>::infinity() : static_cast<T>(hi);
      map1<T, T>(out, x, [l, h](T v) { return v < l ? l : (v > h ? h : v); });
    } else if constexpr (std::is_same_v<T, int32_t> || std::is_same_v<T, int64_t>) {
      const T l = int_bound<T>(lo, true), h = int_bound<T>(hi, false);
      map1<T, T>(out, x, [l, h](T v) { return v < l ? l : (v > h ? h : v); });
    } else {
      throw Error(detail::cat("clamp: expected a float32, float64, int32 or int64 tensor, found ",
                              dtype_name(x.dtype())));
    }
  });
  return out;
}

Tensor axpy(const Tensor& a, double alpha, const Tensor& b) {
  Broadcast2 bc(a, b, a.dtype(), "axpy");
  dispatch_float(a.dtype(), "axpy", [&](auto tag) {
    using T = decltype(tag);
    const T al = static_cast<T>(alpha);
    map2<T, T, T>(bc.out, bc.a, bc.b, [al](T x, T y) { return x + al * y; });
  });
  return bc.out;
}

Tensor logical_not(const Tensor& x) {
  Tensor t = truth(x);
  Tensor out = empty(x.shape(), DType::Bool);
  map1<bool, bool>(out, t, [](bool v) { return !v; });
  return out;
}

Tensor logical_and(const Tensor& a, const Tensor& b) {
  Broadcast2 bc(truth(a), truth(b), DType::Bool, "logical_and");
  map2<bool, bool, bool>(bc.out, bc.a, bc.b, [](bool x, bool y) { return static_cast<bool>(x & y); });
  return bc.out;
}

Tensor logical_or(const Tensor& a, const Tensor& b) {
  Broadcast2 bc(truth(a), truth(b), DType::Bool, "logical_or");
  map2<bool, bool, bool>(bc.out, bc.a, bc.b, [](bool x, bool y) { return static_cast<bool>(x | y); });
  return bc.out;
}

Tensor isnan(const Tensor& x) {
  Tensor out = empty(x.shape(), DType::Bool);
  dispatch(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_floating_point_v<T>)
      map1<bool, T>(out, x, [](T v) { return v != v; });
    else if constexpr (is_f16<T>)
      map1<bool, T>(out, x, [](T v) { return std::isnan(static_cast<float>(v)); });
    else
      out.fill_(0.0);  // integers and bools are never NaN
  });
  return out;
}

}  // namespace cortex::kernels::cpu
