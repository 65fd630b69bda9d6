// Elementwise kernels against naive float64 loops written here: unary maps (with special values and
// large-|x| stability), binary maps with NumPy broadcasting, integer ops, comparisons, where, clamp,
// axpy, logical ops, isnan; contiguous, non-contiguous, permuted, broadcast, size-0 and 0-dim
// inputs; float32 and float64; and every input error.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <vector>

#include "kernels/elementwise.h"
#include "tensor/random.h"
#include "tensor/tensor.h"
#include "tests/reference.h"
#include "tests/test_util.h"

using namespace cortex;
using namespace cortex::kernels;
using cortex::testing::allclose;
using cortex::testing::noncontig;
using namespace cortex::testing::ref;

namespace {


int64_t draw(Generator& g, int64_t lo, int64_t hi) {  // one integer in [lo, hi)
  return randint(lo, hi, {1}, g).to_vector<int64_t>()[0];
}

Shape rand_shape(Generator& g, int64_t nd, int64_t maxdim) {
  Shape s;
  for (int64_t i = 0; i < nd; ++i) s.push_back(draw(g, 1, maxdim + 1));
  return s;
}

// Same values, laid out with reversed dim order in memory.
Tensor permuted(const Tensor& t) {
  if (t.dim() < 2) return noncontig(t);
  Shape rev;
  for (int64_t d = t.dim() - 1; d >= 0; --d) rev.push_back(d);
  Tensor p = t.permute(rev).contiguous().permute(rev);
  if (t.numel() > 1 && t.shape().front() > 1 && t.shape().back() > 1) {
    EXPECT_FALSE(p.is_contiguous());
  }
  return p;
}

// The layouts every kernel must give identical numbers on.
std::vector<Tensor> layouts(const Tensor& t) { return {t, noncontig(t), permuted(t)}; }


// Row-major unravel / ravel with NumPy broadcasting of `in` (right-aligned) inside `out`.
int64_t bcast_index(int64_t flat, const Shape& out, const Shape& in) {
  int64_t idx = 0, mul = 1;
  const int64_t lead = static_cast<int64_t>(out.size() - in.size());
  for (int64_t d = static_cast<int64_t>(out.size()) - 1; d >= 0; --d) {
    const int64_t i = flat % out[d];
    flat /= out[d];
    if (d >= lead) {
      const int64_t s = in[d - lead];
      idx += (s == 1 ? 0 : i) * mul;
      mul *= s;
    }
  }
  return idx;
}

Shape numpy_broadcast(const Shape& a, const Shape& b) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t da = i + a.size() >= n ? a[i + a.size() - n] : 1;
    const int64_t db = i + b.size() >= n ? b[i + b.size() - n] : 1;
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// Random shapes a, b that broadcast to a random `out` (dims dropped from the front or set to 1).
std::pair<Shape, Shape> bcast_pair(Generator& g) {
  const Shape out = rand_shape(g, draw(g, 0, 5), 6);
  auto sub = [&]() {
    Shape s(out.begin() + draw(g, 0, static_cast<int64_t>(out.size()) + 1), out.end());
    for (auto& d : s)
      if (draw(g, 0, 3) == 0) d = 1;
    return s;
  };
  return {sub(), sub()};
}

struct UnaryCase {
  Unary op;
  double lo, hi, param;  // input range and parameter
};

const std::vector<UnaryCase> kUnaryCases = {
    {Unary::Neg, -3, 3, 0},        {Unary::Exp, -10, 10, 0},      {Unary::Log, 0.01, 50, 0},
    {Unary::Log1p, -0.99, 50, 0},  {Unary::Expm1, -5, 5, 0},      {Unary::Sqrt, 0, 50, 0},
    {Unary::Rsqrt, 0.01, 50, 0},   {Unary::Reciprocal, 0.1, 5, 0}, {Unary::Square, -3, 3, 0},
    {Unary::Abs, -3, 3, 0},        {Unary::Sign, -3, 3, 0},       {Unary::Sin, -6, 6, 0},
    {Unary::Cos, -6, 6, 0},        {Unary::Tanh, -6, 6, 0},       {Unary::Erf, -4, 4, 0},
    {Unary::Sigmoid, -30, 30, 0},  {Unary::Relu, -3, 3, 0},       {Unary::GeluErf, -6, 6, 0},
    {Unary::GeluTanh, -6, 6, 0},   {Unary::QuickGelu, -8, 8, 0},  {Unary::Elu, -5, 5, 1.3},
    {Unary::Softplus, -30, 30, 1}, {Unary::Softplus, -30, 30, 2.5}, {Unary::PowScalar, 0.1, 4, 1.7},
    {Unary::PowScalar, -3, 3, 2},  {Unary::PowScalar, -3, 3, 3},  {Unary::PowScalar, 0.1, 4, -0.5},
    {Unary::Floor, -5, 5, 0},      {Unary::Ceil, -5, 5, 0},       {Unary::Round, -5, 5, 0},
};

::testing::AssertionResult close_for(const Tensor& out, const Tensor& ref) {
  return out.dtype() == DType::Float32 ? allclose(out, ref, 2e-6, 1e-6) : allclose(out, ref, 1e-13, 1e-14);
}

}  // namespace

// ---------------------------------------------------------------- unary

TEST(Unary, MatchesReferenceOnRandomShapesAndLayouts) {
  Generator g(11);
  for (const UnaryCase& c : kUnaryCases) {
    for (DType dt : {DType::Float32, DType::Float64}) {
      std::vector<Shape> shapes = {{}, {0}, {3, 0, 2}, {1}, {1000}, rand_shape(g, 2, 9), rand_shape(g, 3, 7),
                                   rand_shape(g, 4, 5)};
      for (const Shape& s : shapes) {
        Tensor x = cortex::testing::randu(s, draw(g, 0, 1 << 30), c.lo, c.hi, dt);
        Tensor ref = map_ref(x, [&](double v) { return unary_ref(c.op, v, c.param); }, dt);
        for (const Tensor& xv : layouts(x)) {
          Tensor y = unary(c.op, xv, c.param);
          EXPECT_EQ(y.dtype(), dt);
          if (y.numel() > 0) {  // (empty() of a size-0 shape reports non-contiguous)
            EXPECT_TRUE(y.is_contiguous());
          }
          // float32: a couple of ulps of the result (Eigen's vectorised tanh/erf/sin are not exactly rounded)
          EXPECT_TRUE(dt == DType::Float32 ? allclose(y, ref, 4e-6, 2e-7) : allclose(y, ref, 1e-13, 1e-15))
              << unary_name(c.op) << " " << dtype_name(dt) << " " << shape_str(s);
        }
      }
    }
  }
}

TEST(Unary, SpecialValues) {
  // NaN, infinities, signed zeros, tiny and huge values, in a row long enough for the vector path
  // and its tail.
  std::vector<double> base = {kNaN, kInf, -kInf, 0.0, -0.0, 1e-30, -1e-30, 0.5, -0.5, 1.5, 2.5, -2.5,
                              30, -30, 88, -88, 100, -100, 700, -700, 1000, -1000};
  std::vector<double> v;
  for (int r = 0; r < 3; ++r) v.insert(v.end(), base.begin(), base.end());
  for (DType dt : {DType::Float32, DType::Float64}) {
    Tensor x = from_vector(v, {static_cast<int64_t>(v.size())}, dt);
    for (const UnaryCase& c : kUnaryCases) {
      // The reference is evaluated on the values the kernel sees (float32-rounded for float32).
      Tensor ref = map_ref(x, [&](double e) { return unary_ref(c.op, e, c.param); }, dt);
      Tensor y = unary(c.op, x, c.param);
      const bool f32 = dt == DType::Float32;
      EXPECT_TRUE(f32 ? allclose(y, ref, 4e-6, 1e-30) : allclose(y, ref, 1e-12, 1e-300))
          << unary_name(c.op) << " " << dtype_name(dt);
    }
  }
}

// GELU's left tail, where 1 + erf cancels and the float32 kernel takes a vectorised erfc (down to
// x = -9 sqrt 2, then the scalar one): relative accuracy element by element, across both of
// erfc's coefficient sets and the switch to the scalar call, on the vector path and its tail. The
// reference takes erfc in float64 of the float32 argument -x / sqrt 2 the kernel forms: erfc's
// condition number there is 2 z^2 (about 300 at z = 12), which no float32 kernel escapes.
TEST(Unary, GeluErfTailRelativeAccuracy) {
  std::vector<double> v;
  for (int i = 0; i <= 40001; ++i) v.push_back(static_cast<double>(static_cast<float>(-14.0 + 12.5 * i / 40001.0)));
  for (double e : {-2.0, -2.0001, -12.7279, -12.728, -4.0406, -4.0408}) v.push_back(e);  // switches
  Tensor x = from_vector(v, {static_cast<int64_t>(v.size())}, DType::Float32);
  const std::vector<double> y = vals(unary(Unary::GeluErf, x));
  double worst = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    const float z = static_cast<float>(v[i]) * -0.70710678118654752440f;
    const double ref = 0.5 * v[i] * std::erfc(static_cast<double>(z));
    if (v[i] >= -2 || std::abs(ref) < 1e-30) continue;  // (above -2: 1 + erf; near float32's subnormals)
    worst = std::max(worst, std::abs(y[i] - ref) / std::abs(ref));
  }
  EXPECT_LT(worst, 1e-6);  // measured: 3.5e-7 (the scalar erfcf: the same)
}

TEST(Unary, StableAtLargeMagnitude) {
  for (DType dt : {DType::Float32, DType::Float64}) {
    Tensor x = from_vector(std::vector<double>{-1000, -100, 100, 1000}, {4}, dt);
    // (exp of a very negative number may come back as a subnormal rather than 0)
    auto s = vals(unary(Unary::Sigmoid, x));
    EXPECT_TRUE(s[0] >= 0.0 && s[0] < 1e-30);
    EXPECT_EQ(s[3], 1.0);
    for (double e : s) EXPECT_TRUE(std::isfinite(e));
    auto sp = vals(unary(Unary::Softplus, x, 1.0));
    EXPECT_TRUE(sp[0] >= 0.0 && sp[0] < 1e-30);
    EXPECT_EQ(sp[2], 100.0);
    EXPECT_EQ(sp[3], 1000.0);
    auto q = vals(unary(Unary::QuickGelu, x));
    EXPECT_EQ(q[3], 1000.0);
    EXPECT_TRUE(std::isfinite(q[0]) && std::abs(q[0]) < 1e-30);
    // softplus at beta x just below and above the threshold 20 (beta = 2)
    Tensor t = from_vector(std::vector<double>{9.99, 10.01}, {2}, dt);
    auto st = vals(unary(Unary::Softplus, t, 2.0));
    EXPECT_NEAR(st[0], std::log1p(std::exp(19.98)) / 2, 1e-5);
    EXPECT_NEAR(st[1], 10.01, 1e-5);
  }
  // sign(0) = 0, relu(NaN) = NaN, round half to even
  Tensor z = from_vector(std::vector<double>{0.0, kNaN, 0.5, 1.5, 2.5, -0.5}, {6});
  auto sg = vals(unary(Unary::Sign, z));
  EXPECT_EQ(sg[0], 0.0);
  EXPECT_TRUE(std::isnan(vals(unary(Unary::Relu, z))[1]));
  auto rd = vals(unary(Unary::Round, z));
  EXPECT_EQ(rd[2], 0.0);
  EXPECT_EQ(rd[3], 2.0);
  EXPECT_EQ(rd[4], 2.0);
  EXPECT_EQ(rd[5], 0.0);
}

TEST(Unary, LargeTensorParallelPath) {
  // Long enough for strided_for to split the row over threads and for many vector blocks.
  Tensor x = cortex::testing::randn({200003}, 3, DType::Float32);
  for (Unary op : {Unary::Exp, Unary::Tanh, Unary::GeluErf, Unary::Sigmoid, Unary::Neg}) {
    Tensor ref = map_ref(x, [&](double v) { return unary_ref(op, v, 0); }, DType::Float32);
    EXPECT_TRUE(allclose(unary(op, x), ref, 4e-6, 2e-7)) << unary_name(op);
    EXPECT_TRUE(allclose(unary(op, x.slice(0, 1, 200003, 2)), ref.slice(0, 1, 200003, 2).contiguous(), 4e-6, 2e-7));
  }
}

TEST(Unary, IntegerOps) {
  for (DType dt : {DType::Int32, DType::Int64}) {
    Tensor x = from_vector(std::vector<int64_t>{-5, 0, 7, -1, 3}, {5}, dt);
    for (const Tensor& xv : layouts(x)) {
      EXPECT_EQ(unary(Unary::Neg, xv).to_vector<int64_t>(), (std::vector<int64_t>{5, 0, -7, 1, -3}));
      EXPECT_EQ(unary(Unary::Abs, xv).to_vector<int64_t>(), (std::vector<int64_t>{5, 0, 7, 1, 3}));
      EXPECT_EQ(unary(Unary::Sign, xv).to_vector<int64_t>(), (std::vector<int64_t>{-1, 0, 1, -1, 1}));
      EXPECT_EQ(unary(Unary::Neg, xv).dtype(), dt);
    }
  }
  // two's complement wrap, as PyTorch
  Tensor m = from_vector(std::vector<int32_t>{std::numeric_limits<int32_t>::min()}, {1});
  EXPECT_EQ(unary(Unary::Neg, m).to_vector<int32_t>()[0], std::numeric_limits<int32_t>::min());
}

TEST(Unary, Errors) {
  Tensor i = zeros({3}, DType::Int32);
  EXPECT_CORTEX_ERROR(unary(Unary::Exp, i), "exp: expected a float32 or float64 tensor, found int32");
  EXPECT_CORTEX_ERROR(unary(Unary::Neg, zeros({3}, DType::Bool)), "neg: expected a float32, float64, int32 or int64");
  EXPECT_CORTEX_ERROR(unary(Unary::Tanh, zeros({3}, DType::BFloat16)), "found bfloat16");
  EXPECT_CORTEX_ERROR(unary(Unary::Softplus, zeros({3}), 0.0), "softplus: expected a finite nonzero beta");
  EXPECT_CORTEX_ERROR(unary(Unary::Exp, Tensor()), "undefined");
}

// ---------------------------------------------------------------- binary

namespace {

double binary_ref(Binary op, double a, double b) {
  switch (op) {
    case Binary::Add: return a + b;
    case Binary::Sub: return a - b;
    case Binary::Mul: return a * b;
    case Binary::Div: return a / b;
    case Binary::Pow: return std::pow(a, b);
    case Binary::Maximum: return (std::isnan(a) || std::isnan(b)) ? kNaN : std::max(a, b);
    case Binary::Minimum: return (std::isnan(a) || std::isnan(b)) ? kNaN : std::min(a, b);
    case Binary::Atan2: return std::atan2(a, b);
  }
  return kNaN;
}

// Reference for a broadcast binary map, evaluated in float64 and returned in dtype `dt`.
Tensor bin_ref(const Tensor& a, const Tensor& b, const std::function<double(double, double)>& f, DType dt) {
  const Shape out = numpy_broadcast(a.shape(), b.shape());
  auto va = vals(a), vb = vals(b);
  std::vector<double> r(static_cast<size_t>(shape_numel(out)));
  for (int64_t i = 0; i < static_cast<int64_t>(r.size()); ++i)
    r[i] = f(va[bcast_index(i, out, a.shape())], vb[bcast_index(i, out, b.shape())]);
  return from_vector(r, out, dt);
}

const std::vector<Binary> kBinaryOps = {Binary::Add, Binary::Sub,     Binary::Mul,     Binary::Div,
                                        Binary::Pow, Binary::Maximum, Binary::Minimum, Binary::Atan2};

}  // namespace

TEST(Binary, BroadcastMatchesReference) {
  Generator g(21);
  for (int trial = 0; trial < 25; ++trial) {
    auto [sa, sb] = bcast_pair(g);
    if (trial == 0) { sa = {}; sb = {4, 3}; }     // 0-dim with a matrix
    if (trial == 1) { sa = {3, 1}; sb = {1, 5}; }  // outer product
    if (trial == 2) { sa = {2, 0, 3}; sb = {3}; }  // size-0 dim
    if (trial == 3) { sa = {0}; sb = {1}; }
    for (DType dt : {DType::Float32, DType::Float64}) {
      for (Binary op : kBinaryOps) {
        const bool pos = op == Binary::Pow;  // positive bases for pow
        Tensor a = cortex::testing::randu(sa, draw(g, 0, 1 << 30), pos ? 0.2 : -3, 3, dt);
        Tensor b = cortex::testing::randu(sb, draw(g, 0, 1 << 30), pos ? -2 : -3, 3, dt);
        if (op == Binary::Div) b = cortex::testing::randu(sb, draw(g, 0, 1 << 30), 0.5, 3, dt);
        Tensor ref = bin_ref(a, b, [&](double x, double y) { return binary_ref(op, x, y); }, dt);
        for (const Tensor& av : layouts(a))
          for (const Tensor& bv : {b, noncontig(b)}) {
            Tensor y = binary(op, av, bv);
            if (y.numel() > 0) {  // (empty() of a size-0 shape reports non-contiguous)
            EXPECT_TRUE(y.is_contiguous());
          }
            EXPECT_TRUE(close_for(y, ref)) << binary_name(op) << " " << dtype_name(dt) << " " << shape_str(sa)
                                           << " " << shape_str(sb);
          }
      }
    }
  }
}

TEST(Binary, ExpandedAndLargeOperands) {
  // 0-stride views as inputs, and sizes that take the parallel row and chunk paths.
  Tensor col = cortex::testing::randn({300, 1}, 1, DType::Float32);
  Tensor row = cortex::testing::randn({257}, 2, DType::Float32);
  Tensor big = cortex::testing::randn({300, 257}, 3, DType::Float32);
  auto add = [](double x, double y) { return x + y; };
  EXPECT_TRUE(allclose(binary(Binary::Add, big, row), bin_ref(big, row, add, DType::Float32), 2e-6, 1e-6));
  EXPECT_TRUE(allclose(binary(Binary::Add, col, row), bin_ref(col, row, add, DType::Float32), 2e-6, 1e-6));
  Tensor ex = col.expand({300, 257});
  EXPECT_TRUE(allclose(binary(Binary::Mul, ex, big),
                       bin_ref(ex.contiguous(), big, [](double x, double y) { return x * y; }, DType::Float32),
                       2e-6, 1e-6));
  Tensor flat = cortex::testing::randn({150001}, 4, DType::Float64);
  Tensor flat2 = cortex::testing::randn({150001}, 5, DType::Float64);
  EXPECT_TRUE(allclose(binary(Binary::Sub, flat, flat2),
                       bin_ref(flat, flat2, [](double x, double y) { return x - y; }, DType::Float64), 0, 0));
}

TEST(Binary, MaximumMinimumPropagateNaN) {
  Tensor a = from_vector(std::vector<double>{kNaN, 1, 2, kNaN, -kInf}, {5});
  Tensor b = from_vector(std::vector<double>{0, kNaN, 1, kNaN, 3}, {5});
  for (DType dt : {DType::Float32, DType::Float64}) {
    auto mx = vals(binary(Binary::Maximum, a.to(dt), b.to(dt)));
    auto mn = vals(binary(Binary::Minimum, a.to(dt), b.to(dt)));
    EXPECT_TRUE(std::isnan(mx[0]) && std::isnan(mx[1]) && std::isnan(mx[3]));
    EXPECT_TRUE(std::isnan(mn[0]) && std::isnan(mn[1]) && std::isnan(mn[3]));
    EXPECT_EQ(mx[2], 2.0);
    EXPECT_EQ(mn[2], 1.0);
    EXPECT_EQ(mx[4], 3.0);
    EXPECT_EQ(mn[4], -kInf);
  }
}

TEST(Binary, IntegerOps) {
  Generator g(31);
  for (DType dt : {DType::Int32, DType::Int64}) {
    for (int trial = 0; trial < 6; ++trial) {
      auto [sa, sb] = bcast_pair(g);
      Tensor a = randint(-50, 50, sa, g, dt), b = randint(-50, 50, sb, g, dt);
      struct C { Binary op; std::function<double(double, double)> f; };
      for (const C& c : {C{Binary::Add, [](double x, double y) { return x + y; }},
                         C{Binary::Sub, [](double x, double y) { return x - y; }},
                         C{Binary::Mul, [](double x, double y) { return x * y; }},
                         C{Binary::Maximum, [](double x, double y) { return std::max(x, y); }},
                         C{Binary::Minimum, [](double x, double y) { return std::min(x, y); }}}) {
        for (const Tensor& av : layouts(a)) {
          Tensor y = binary(c.op, av, noncontig(b));
          EXPECT_EQ(y.dtype(), dt);
          EXPECT_TRUE(allclose(y, bin_ref(a, b, c.f, DType::Float64), 0, 0)) << binary_name(c.op);
        }
      }
    }
  }
  // overflow wraps (no UB)
  Tensor mx = from_vector(std::vector<int32_t>{std::numeric_limits<int32_t>::max()}, {1});
  Tensor one = from_vector(std::vector<int32_t>{1}, {1});
  EXPECT_EQ(binary(Binary::Add, mx, one).to_vector<int32_t>()[0], std::numeric_limits<int32_t>::min());
}

TEST(Binary, Errors) {
  Tensor f = zeros({2, 3}), d = zeros({2, 3}, DType::Float64), i = zeros({2, 3}, DType::Int32);
  EXPECT_CORTEX_ERROR(binary(Binary::Add, f, d), "add: expected operands of one dtype, found float32 and float64");
  EXPECT_CORTEX_ERROR(binary(Binary::Add, f, zeros({4})), "add: shapes [2, 3] and [4] cannot be broadcast");
  EXPECT_CORTEX_ERROR(binary(Binary::Div, i, i), "div: expected float32 or float64 operands, found int32");
  EXPECT_CORTEX_ERROR(binary(Binary::Pow, i, i), "pow: expected float32 or float64");
  EXPECT_CORTEX_ERROR(binary(Binary::Add, zeros({2}, DType::UInt8), zeros({2}, DType::UInt8)), "found uint8");
  EXPECT_CORTEX_ERROR(binary(Binary::Mul, f, Tensor()), "undefined");
}

// ---------------------------------------------------------------- compare, where, clamp, axpy

TEST(Compare, EveryDtypeWithBroadcast) {
  Generator g(41);
  struct C { Compare op; std::function<bool(double, double)> f; };
  const std::vector<C> cases = {C{Compare::Eq, [](double x, double y) { return x == y; }},
                                C{Compare::Ne, [](double x, double y) { return x != y; }},
                                C{Compare::Lt, [](double x, double y) { return x < y; }},
                                C{Compare::Le, [](double x, double y) { return x <= y; }},
                                C{Compare::Gt, [](double x, double y) { return x > y; }},
                                C{Compare::Ge, [](double x, double y) { return x >= y; }}};
  for (DType dt : {DType::Float32, DType::Float64, DType::Int32, DType::Int64, DType::UInt8, DType::BFloat16,
                   DType::Float16}) {
    for (int trial = 0; trial < 4; ++trial) {
      auto [sa, sb] = bcast_pair(g);
      // few distinct values, so ties happen
      Tensor a = randint(0, 4, sa, g, DType::Int64).to(dt), b = randint(0, 4, sb, g, DType::Int64).to(dt);
      for (const C& c : cases) {
        Tensor ref = bin_ref(a, b, [&](double x, double y) { return c.f(x, y) ? 1.0 : 0.0; }, DType::Bool);
        for (const Tensor& av : {a, noncontig(a), permuted(a)}) {
          Tensor y = compare(c.op, av, b);
          EXPECT_EQ(y.dtype(), DType::Bool);
          EXPECT_TRUE(allclose(y, ref, 0, 0)) << dtype_name(dt);
        }
      }
    }
  }
  Tensor n = from_vector(std::vector<double>{kNaN, 1.0}, {2});
  EXPECT_EQ(compare(Compare::Eq, n, n).to_vector<uint8_t>(), (std::vector<uint8_t>{0, 1}));
  EXPECT_EQ(compare(Compare::Ne, n, n).to_vector<uint8_t>(), (std::vector<uint8_t>{1, 0}));
  EXPECT_CORTEX_ERROR(compare(Compare::Lt, zeros({2}, DType::Bool), zeros({2}, DType::Bool)),
                      "lt: expected numeric operands, found bool");
  EXPECT_CORTEX_ERROR(compare(Compare::Eq, zeros({2}), zeros({2}, DType::Int32)), "eq: expected operands of one dtype");
  EXPECT_CORTEX_ERROR(compare(Compare::Eq, zeros({2}), zeros({3})), "cannot be broadcast");
}

TEST(Where, BroadcastsAllThree) {
  Generator g(51);
  for (DType dt : {DType::Float32, DType::Float64, DType::Int64, DType::Bool}) {
    const std::vector<std::array<Shape, 3>> shapes = {
        {Shape{3, 1}, Shape{1, 4}, Shape{}}, {Shape{5}, Shape{2, 5}, Shape{2, 1}}, {Shape{2, 3, 4}, Shape{2, 3, 4}, Shape{2, 3, 4}},
        {Shape{0, 3}, Shape{3}, Shape{1}}, {Shape{}, Shape{}, Shape{}}};
    for (const auto& s : shapes) {
      Tensor c = randint(0, 2, s[0], g, DType::Int64).to(DType::Bool);
      Tensor a = cortex::testing::randn(s[1], draw(g, 0, 1000), DType::Float64).to(dt);
      Tensor b = cortex::testing::randn(s[2], draw(g, 0, 1000), DType::Float64).to(dt);
      const Shape out = numpy_broadcast(numpy_broadcast(s[0], s[1]), s[2]);
      auto vc = vals(c), va = vals(a), vb = vals(b);
      std::vector<double> r(static_cast<size_t>(shape_numel(out)));
      for (int64_t i = 0; i < static_cast<int64_t>(r.size()); ++i)
        r[i] = vc[bcast_index(i, out, s[0])] != 0 ? va[bcast_index(i, out, s[1])] : vb[bcast_index(i, out, s[2])];
      Tensor ref = from_vector(r, out, dt);
      for (const Tensor& cv : {c, noncontig(c)}) {
        Tensor y = where(cv, noncontig(a), b);
        EXPECT_EQ(y.dtype(), dt);
        EXPECT_TRUE(allclose(y, ref, 0, 0)) << dtype_name(dt);
      }
    }
  }
  EXPECT_CORTEX_ERROR(where(zeros({2}), zeros({2}), zeros({2})), "where: expected a bool condition, found float32");
  EXPECT_CORTEX_ERROR(where(zeros({2}, DType::Bool), zeros({2}), zeros({2}, DType::Float64)),
                      "where: expected operands of one dtype");
  EXPECT_CORTEX_ERROR(where(zeros({3}, DType::Bool), zeros({2}), zeros({2})), "where: shapes");
}

TEST(Clamp, BoundsNaNAndIntegers) {
  Generator g(61);
  for (DType dt : {DType::Float32, DType::Float64}) {
    Tensor x = cortex::testing::randn(rand_shape(g, 3, 6), 7, dt);
    std::vector<double> v = vals(x);
    v[0] = kNaN;
    x = from_vector(v, x.shape(), dt);
    for (auto [lo, hi] : {std::pair{-0.5, 0.7}, std::pair{kNaN, 0.2}, std::pair{-0.3, kNaN}, std::pair{kNaN, kNaN},
                          std::pair{0.1, 0.1}}) {
      Tensor ref = map_ref(x, [&](double e) {
        if (std::isnan(e)) return e;
        if (!std::isnan(lo) && e < lo) return lo;
        if (!std::isnan(hi) && e > hi) return hi;
        return e;
      }, dt);
      for (const Tensor& xv : layouts(x)) EXPECT_TRUE(allclose(clamp(xv, lo, hi), ref, 0, 0)) << lo << " " << hi;
    }
  }
  Tensor xi = from_vector(std::vector<int64_t>{-5, -1, 0, 1, 5}, {5}, DType::Int32);
  EXPECT_EQ(clamp(xi, -1.5, 2.5).to_vector<int64_t>(), (std::vector<int64_t>{-1, -1, 0, 1, 2}));
  EXPECT_EQ(clamp(xi, kNaN, 0).to_vector<int64_t>(), (std::vector<int64_t>{-5, -1, 0, 0, 0}));
  EXPECT_EQ(clamp(xi, -1e30, 1e30).to_vector<int64_t>(), (std::vector<int64_t>{-5, -1, 0, 1, 5}));
  EXPECT_CORTEX_ERROR(clamp(zeros({2}), 1.0, 0.0), "clamp: expected lo <= hi, found lo 1 > hi 0");
  EXPECT_CORTEX_ERROR(clamp(zeros({2}, DType::Bool), 0.0, 1.0), "clamp: expected a float32, float64, int32 or int64");
}

TEST(Axpy, BroadcastMatchesReference) {
  Generator g(71);
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (int trial = 0; trial < 8; ++trial) {
      auto [sa, sb] = bcast_pair(g);
      Tensor a = cortex::testing::randn(sa, draw(g, 0, 1000), dt), b = cortex::testing::randn(sb, draw(g, 0, 1000), dt);
      const double alpha = -0.75;
      Tensor ref = bin_ref(a, b, [&](double x, double y) { return x + alpha * y; }, dt);
      for (const Tensor& av : layouts(a)) EXPECT_TRUE(close_for(axpy(av, alpha, noncontig(b)), ref));
    }
  }
  EXPECT_CORTEX_ERROR(axpy(zeros({2}, DType::Int32), 1.0, zeros({2}, DType::Int32)), "axpy: expected float32 or float64");
  EXPECT_CORTEX_ERROR(axpy(zeros({2}), 1.0, zeros({2}, DType::Float64)), "axpy: expected operands of one dtype");
  EXPECT_CORTEX_ERROR(axpy(zeros({2}), 1.0, zeros({3})), "axpy: shapes");
}

// ---------------------------------------------------------------- logical, isnan

TEST(Logical, BoolAndNumericOperands) {
  Generator g(81);
  for (int trial = 0; trial < 6; ++trial) {
    auto [sa, sb] = bcast_pair(g);
    Tensor a = randint(0, 2, sa, g, DType::Int64).to(DType::Bool);
    Tensor b = randint(0, 3, sb, g, DType::Int64).to(trial % 2 ? DType::Float32 : DType::Bool);
    Tensor rand_ = bin_ref(a, b, [](double x, double y) { return (x != 0 && y != 0) ? 1.0 : 0.0; }, DType::Bool);
    Tensor ror = bin_ref(a, b, [](double x, double y) { return (x != 0 || y != 0) ? 1.0 : 0.0; }, DType::Bool);
    for (const Tensor& av : {a, noncontig(a), permuted(a)}) {
      EXPECT_TRUE(allclose(logical_and(av, b), rand_, 0, 0));
      EXPECT_TRUE(allclose(logical_or(av, noncontig(b)), ror, 0, 0));
      EXPECT_TRUE(allclose(logical_not(av), map_ref(a, [](double x) { return x != 0 ? 0.0 : 1.0; }, DType::Bool), 0, 0));
    }
  }
  // numeric truth: nonzero and NaN are true
  Tensor f = from_vector(std::vector<double>{0.0, 2.0, kNaN, -0.0}, {4});
  EXPECT_EQ(logical_not(f).to_vector<uint8_t>(), (std::vector<uint8_t>{1, 0, 0, 1}));
  EXPECT_EQ(logical_not(f).dtype(), DType::Bool);
  EXPECT_CORTEX_ERROR(logical_and(zeros({2}, DType::Bool), zeros({3}, DType::Bool)), "logical_and: shapes");
  EXPECT_CORTEX_ERROR(logical_or(zeros({2}, DType::Bool), Tensor()), "undefined");
}

TEST(IsNaN, EveryDtype) {
  Tensor f = from_vector(std::vector<double>{0.0, kNaN, kInf, -kNaN, 1.0}, {5});
  for (DType dt : {DType::Float32, DType::Float64, DType::BFloat16, DType::Float16}) {
    Tensor x = f.to(dt);
    for (const Tensor& xv : {x, noncontig(x)}) {
      Tensor y = isnan(xv);
      EXPECT_EQ(y.dtype(), DType::Bool);
      EXPECT_EQ(y.to_vector<uint8_t>(), (std::vector<uint8_t>{0, 1, 0, 1, 0})) << dtype_name(dt);
    }
  }
  EXPECT_EQ(isnan(zeros({3}, DType::Int32)).to_vector<uint8_t>(), (std::vector<uint8_t>{0, 0, 0}));
  EXPECT_EQ(isnan(zeros({0, 2})).shape(), (Shape{0, 2}));
}
