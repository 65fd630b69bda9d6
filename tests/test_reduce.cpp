// Reductions against naive float64 loops written here: every op over random axis sets (empty = all,
// negative axes, keepdim) on random shapes with odd, size-1 and size-0 dims, contiguous,
// non-contiguous, permuted and broadcast (0-stride) inputs, float32 and float64; the large shapes
// that take the split row and column paths; NaN/inf rules, logsumexp stability, two-pass variance,
// p-norms, argmax/argmin ties and NaN; thread-count independence; and every input error.
#include <gtest/gtest.h>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <vector>

#include "kernels/reduce.h"
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

Shape rand_shape(Generator& g, int64_t nd, int64_t lo, int64_t hi) {
  Shape s;
  for (int64_t i = 0; i < nd; ++i) s.push_back(draw(g, lo, hi + 1));
  return s;
}

Tensor permuted(const Tensor& t) {
  if (t.dim() < 2) return noncontig(t);
  Shape rev;
  for (int64_t d = t.dim() - 1; d >= 0; --d) rev.push_back(d);
  return t.permute(rev).contiguous().permute(rev);
}


// Random distinct axes (possibly none = all), some written negative.
Shape rand_dims(Generator& g, int64_t nd) {
  Shape dims;
  for (int64_t d = 0; d < nd; ++d)
    if (draw(g, 0, 2)) dims.push_back(draw(g, 0, 2) ? d : d - nd);
  return dims;
}

std::vector<Tensor> layouts(const Tensor& x) {
  std::vector<Tensor> out = {x, noncontig(x), permuted(x)};
  if (x.dim() >= 1 && x.numel() > 0) {
    // A 0-stride view: the first slice of dim 0 broadcast back over it.
    Tensor b = x.narrow(0, 0, 1).expand(x.shape());
    out.push_back(b);
  }
  return out;
}

::testing::AssertionResult close_for(const Tensor& y, const Tensor& ref) {
  return y.dtype() == DType::Float32 ? allclose(y, ref, 2e-6, 1e-6) : allclose(y, ref, 1e-12, 1e-12);
}

std::string dims_str(const Shape& d) { return shape_str(d); }

}  // namespace

// ---------------------------------------------------------------- axes helpers

TEST(ReduceAxes, NormaliseAndShapes) {
  EXPECT_EQ(reduction_axes({}, 3, "sum"), (Shape{0, 1, 2}));
  EXPECT_EQ(reduction_axes({-1, 0}, 3, "sum"), (Shape{0, 2}));
  EXPECT_EQ(reduction_axes({3, -3, 2}, 4, "sum"), (Shape{1, 2, 3}));
  EXPECT_EQ(reduction_axes({}, 0, "sum"), Shape{});
  EXPECT_EQ(reduction_axes({0}, 0, "sum"), Shape{});  // a 0-dim tensor accepts dim 0 / -1
  EXPECT_EQ(reduction_axes({-1}, 0, "sum"), Shape{});
  EXPECT_CORTEX_ERROR(reduction_axes({1, -2}, 3, "sum"), "sum: dim -2 is repeated in dims [1, -2]");
  EXPECT_CORTEX_ERROR(reduction_axes({3}, 3, "mean"), "mean: dim 3 is out of range");
  EXPECT_CORTEX_ERROR(reduction_axes({-4}, 3, "mean"), "out of range");
  EXPECT_EQ(reduced_shape({2, 3, 4}, {1}, false), (Shape{2, 4}));
  EXPECT_EQ(reduced_shape({2, 3, 4}, {1}, true), (Shape{2, 1, 4}));
  EXPECT_EQ(reduced_shape({2, 3, 4}, {}, false), Shape{});
  EXPECT_EQ(reduced_shape({2, 3, 4}, {}, true), (Shape{1, 1, 1}));
  EXPECT_EQ(reduced_shape({2, 3, 4}, {-1, 0}, true), (Shape{1, 3, 1}));
  EXPECT_EQ(reduced_shape({}, {}, true), Shape{});
  EXPECT_CORTEX_ERROR(reduced_shape({2, 3}, {0, 0}, false), "repeated");
}

// ---------------------------------------------------------------- reduce vs reference

TEST(Reduce, FloatOpsMatchReference) {
  Generator g(5);
  const std::vector<Reduce> ops = {Reduce::Sum, Reduce::Mean, Reduce::Max, Reduce::Min,
                                   Reduce::Prod, Reduce::LogSumExp, Reduce::Any, Reduce::All};
  for (int trial = 0; trial < 14; ++trial) {
    Shape s = rand_shape(g, draw(g, 0, 5), 1, 6);
    if (trial == 0) s = {};
    if (trial == 1) s = {7};
    if (trial == 2) s = {1, 5, 1};
    for (DType dt : {DType::Float32, DType::Float64}) {
      Tensor x = cortex::testing::randu(s, draw(g, 0, 1 << 30), -2, 2, dt);
      // some exact zeros so Any/All see both answers
      auto v = vals(x);
      for (size_t i = 0; i < v.size(); i += 3) v[i] = 0;
      x = from_vector(v, s, dt);
      for (int rep = 0; rep < 3; ++rep) {
        const Shape dims = rep == 0 ? Shape{} : rand_dims(g, x.dim());
        for (bool keepdim : {false, true}) {
          for (Reduce op : ops) {
            const bool boolean = op == Reduce::Any || op == Reduce::All;
            for (const Tensor& xv : layouts(x)) {
              Tensor ref = ref_reduce(xv.contiguous(), dims, keepdim, ref_for(op), boolean ? DType::Bool : dt);
              Tensor y = reduce(op, xv, dims, keepdim);
              EXPECT_EQ(y.dtype(), boolean ? DType::Bool : dt);
              EXPECT_TRUE(close_for(y, ref)) << reduce_name(op) << " " << dtype_name(dt) << " shape "
                                             << shape_str(s) << " dims " << dims_str(dims) << " keepdim " << keepdim
                                             << " strides " << shape_str(xv.strides());
            }
          }
        }
      }
    }
  }
}

TEST(Reduce, SizeZeroDims) {
  Tensor x = zeros({2, 0, 3});
  EXPECT_TRUE(allclose(reduce(Reduce::Sum, x, {1}), zeros({2, 3}), 0, 0));
  EXPECT_TRUE(allclose(reduce(Reduce::Sum, x, {1}, true), zeros({2, 1, 3}), 0, 0));
  EXPECT_TRUE(allclose(reduce(Reduce::Prod, x, {1}), ones({2, 3}), 0, 0));
  EXPECT_TRUE(allclose(reduce(Reduce::Mean, x, {1}), full({2, 3}, kNaN), 0, 0));
  EXPECT_TRUE(allclose(reduce(Reduce::LogSumExp, x, {1}), full({2, 3}, -kInf), 0, 0));
  EXPECT_EQ(reduce(Reduce::Any, x, {1}).to_vector<uint8_t>(), std::vector<uint8_t>(6, 0));
  EXPECT_EQ(reduce(Reduce::All, x, {1}).to_vector<uint8_t>(), std::vector<uint8_t>(6, 1));
  EXPECT_EQ(reduce(Reduce::Sum, x).item(), 0.0);
  // reducing a non-empty axis of an empty tensor gives an empty result, also for max
  EXPECT_EQ(reduce(Reduce::Max, x, {2}).shape(), (Shape{2, 0}));
  EXPECT_EQ(reduce(Reduce::Sum, x, {0, 2}, true).shape(), (Shape{1, 0, 1}));
  EXPECT_CORTEX_ERROR(reduce(Reduce::Max, x, {1}), "max: cannot reduce over an empty axis");
  EXPECT_CORTEX_ERROR(reduce(Reduce::Min, x), "min: cannot reduce over an empty axis");
  EXPECT_TRUE(std::isnan(var(x, {1}).at({0, 0})));
  EXPECT_EQ(norm(x, 2.0, {1}).at({1, 2}), 0.0);
}

TEST(Reduce, LargeShapesTakeEveryPath) {
  // (rows, cols) shapes and axes that hit: rows with many outputs, rows split (few long outputs),
  // cols, cols split over rows, cols with several column blocks, and transposed (memory-order) input.
  struct C { Shape s; Shape dims; };
  const std::vector<C> cases = {{{300, 257}, {1}},   {{3, 40001}, {1}},  {{100003}, {}},    {{5000, 37}, {0}},
                                {{200, 3001}, {0}},  {{7, 9000}, {0}},   {{40, 30, 50}, {0, 2}},
                                {{40, 30, 50}, {1}}, {{2, 70000}, {}}};
  Generator g(9);
  for (const C& c : cases) {
    for (DType dt : {DType::Float32, DType::Float64}) {
      Tensor x = cortex::testing::randn(c.s, draw(g, 0, 1 << 30), dt);
      for (const Tensor& xv : {x, permuted(x)}) {
        for (Reduce op : {Reduce::Sum, Reduce::Mean, Reduce::Max, Reduce::LogSumExp}) {
          Tensor ref = ref_reduce(x, c.dims, false, ref_for(op), dt);
          // float32 results of long sums: the double accumulator leaves only the final rounding
          EXPECT_TRUE(close_for(reduce(op, xv, c.dims), ref)) << reduce_name(op) << " " << shape_str(c.s);
        }
        Tensor vref = ref_reduce(x, c.dims, false, [](const std::vector<double>& v) { return ref_var(v, 1); }, dt);
        EXPECT_TRUE(close_for(var(xv, c.dims), vref)) << shape_str(c.s);
      }
    }
  }
}

TEST(Reduce, Float32AccumulatesInDouble) {
  // 2^22 copies of 0.1f: a float accumulator drifts by percent; double keeps the float answer.
  const int64_t n = int64_t(1) << 22;
  Tensor x = full({n}, 0.1, DType::Float32);
  const double exact = static_cast<double>(0.1f) * static_cast<double>(n);
  EXPECT_EQ(reduce(Reduce::Sum, x).item(), static_cast<double>(static_cast<float>(exact)));
  Tensor cols = full({n / 64, 64}, 0.1, DType::Float32);
  EXPECT_EQ(reduce(Reduce::Sum, cols, {0}).at({5}), static_cast<double>(static_cast<float>(exact / 64)));
}

TEST(Reduce, SameResultForEveryThreadCount) {
  Tensor a = cortex::testing::randn({3, 70001}, 1, DType::Float64);
  Tensor b = cortex::testing::randn({9000, 7}, 2, DType::Float64);
  const int saved = omp_get_max_threads();
  std::vector<std::vector<double>> runs;
  for (int threads : {1, 2, 3}) {
    omp_set_num_threads(threads);
    auto r1 = vals(reduce(Reduce::Sum, a, {1}));
    auto r2 = vals(reduce(Reduce::Sum, b, {0}));
    auto r3 = vals(reduce(Reduce::Sum, a));
    r1.insert(r1.end(), r2.begin(), r2.end());
    r1.insert(r1.end(), r3.begin(), r3.end());
    runs.push_back(r1);
  }
  omp_set_num_threads(saved);
  EXPECT_EQ(runs[0], runs[1]);
  EXPECT_EQ(runs[0], runs[2]);
}

TEST(Reduce, NaNAndInfinityRules) {
  for (DType dt : {DType::Float32, DType::Float64}) {
    // NaN in the vectorised part and in the tail of a row
    std::vector<double> v(40, 1.0);
    v[5] = kNaN;
    Tensor a = from_vector(v, {40}, dt);
    std::vector<double> w(40, 1.0);
    w[39] = kNaN;
    Tensor b = from_vector(w, {40}, dt);
    for (const Tensor& t : {a, b}) {
      EXPECT_TRUE(std::isnan(reduce(Reduce::Max, t).item()));
      EXPECT_TRUE(std::isnan(reduce(Reduce::Min, t).item()));
      EXPECT_TRUE(std::isnan(reduce(Reduce::Sum, t).item()));
      EXPECT_TRUE(std::isnan(reduce(Reduce::LogSumExp, t).item()));
      EXPECT_TRUE(std::isnan(norm(t, kInf).item()));
      EXPECT_EQ(reduce(Reduce::Any, t).item(), 1.0);  // NaN is true
      // column layout: NaN in one column only
      Tensor c = t.view({8, 5});
      auto mx = vals(reduce(Reduce::Max, c, {0}));
      int nans = 0;
      for (double e : mx) nans += std::isnan(e);
      EXPECT_EQ(nans, 1);
    }
    // logsumexp: stable for large values, -inf when every term is -inf, +inf passes through
    Tensor big = from_vector(std::vector<double>{1000, 1000, -1000}, {3}, dt);
    EXPECT_NEAR(reduce(Reduce::LogSumExp, big).item(), 1000 + std::log(2.0), 1e-4);
    Tensor ninf = from_vector(std::vector<double>{-kInf, -kInf}, {1, 2}, dt);
    EXPECT_EQ(reduce(Reduce::LogSumExp, ninf, {1}).at({0}), -kInf);
    Tensor pinf = from_vector(std::vector<double>{1, kInf}, {2}, dt);
    EXPECT_EQ(reduce(Reduce::LogSumExp, pinf).item(), kInf);
    Tensor mixed = from_vector(std::vector<double>{-kInf, 0.0}, {2}, dt);
    EXPECT_NEAR(reduce(Reduce::LogSumExp, mixed).item(), 0.0, 1e-12);
    EXPECT_EQ(reduce(Reduce::Max, from_vector(std::vector<double>{-kInf, -kInf}, {2}, dt)).item(), -kInf);
  }
}

TEST(Reduce, IntegerAndBoolInputs) {
  Generator g(17);
  for (DType dt : {DType::Int32, DType::Int64, DType::UInt8}) {
    Tensor x = randint(0, 5, {4, 6, 3}, g, DType::Int64).to(dt);
    for (const Shape& dims : {Shape{}, Shape{1}, Shape{0, 2}, Shape{-1}}) {
      for (const Tensor& xv : {x, noncontig(x), permuted(x)}) {
        Tensor s = reduce(Reduce::Sum, xv, dims);
        EXPECT_EQ(s.dtype(), DType::Int64);
        EXPECT_TRUE(allclose(s, ref_reduce(x, dims, false, ref_sum, DType::Float64), 0, 0)) << dtype_name(dt) << " " << dims_str(dims) << " " << shape_str(xv.strides());
        Tensor mx = reduce(Reduce::Max, xv, dims, true);
        EXPECT_EQ(mx.dtype(), dt);
        EXPECT_TRUE(allclose(mx, ref_reduce(x, dims, true, ref_max, DType::Float64), 0, 0));
        EXPECT_TRUE(allclose(reduce(Reduce::Min, xv, dims), ref_reduce(x, dims, false, ref_min, DType::Float64), 0, 0));
        Tensor p = reduce(Reduce::Prod, xv.narrow(1, 0, 2), dims);
        EXPECT_EQ(p.dtype(), DType::Int64);
        EXPECT_TRUE(allclose(p, ref_reduce(x.narrow(1, 0, 2).contiguous(), dims, false, ref_prod, DType::Float64), 0, 0));
        EXPECT_TRUE(allclose(reduce(Reduce::Any, xv, dims), ref_reduce(x, dims, false, ref_for(Reduce::Any), DType::Bool), 0, 0));
        EXPECT_TRUE(allclose(reduce(Reduce::All, xv, dims), ref_reduce(x, dims, false, ref_for(Reduce::All), DType::Bool), 0, 0));
      }
    }
  }
  // negative int32 max/min and wrap-free int64 sum of int32 values beyond int32 range
  Tensor neg = from_vector(std::vector<int32_t>{-7, -3, -9}, {3});
  EXPECT_EQ(reduce(Reduce::Max, neg).item(), -3.0);
  EXPECT_EQ(reduce(Reduce::Min, neg).item(), -9.0);
  Tensor bigi = full({3}, 2e9, DType::Int32);
  EXPECT_EQ(reduce(Reduce::Sum, bigi).to_vector<int64_t>()[0], int64_t(6000000000));
  // bool: sum counts, any/all
  Tensor b = from_vector(std::vector<uint8_t>{1, 0, 1, 1, 0, 0}, {2, 3}).to(DType::Bool);
  EXPECT_EQ(reduce(Reduce::Sum, b).to_vector<int64_t>()[0], 3);
  EXPECT_EQ(reduce(Reduce::Sum, b, {1}).to_vector<int64_t>(), (std::vector<int64_t>{2, 1}));
  EXPECT_EQ(reduce(Reduce::Any, b, {0}).to_vector<uint8_t>(), (std::vector<uint8_t>{1, 0, 1}));
  EXPECT_EQ(reduce(Reduce::All, b, {1}).to_vector<uint8_t>(), (std::vector<uint8_t>{0, 0}));
  EXPECT_EQ(reduce(Reduce::All, b.t(), {0}).to_vector<uint8_t>(), (std::vector<uint8_t>{0, 0}));
  // any/all on 16-bit floats
  Tensor h = from_vector(std::vector<double>{0, 0.5}, {2}).to(DType::BFloat16);
  EXPECT_EQ(reduce(Reduce::Any, h).item(), 1.0);
  EXPECT_EQ(reduce(Reduce::All, h).item(), 0.0);
}

TEST(Reduce, Errors) {
  EXPECT_CORTEX_ERROR(reduce(Reduce::Mean, zeros({3}, DType::Int32)), "mean: expected x to be float32 or float64, found int32");
  EXPECT_CORTEX_ERROR(reduce(Reduce::LogSumExp, zeros({3}, DType::Int64)), "logsumexp: expected x to be float32 or float64");
  EXPECT_CORTEX_ERROR(reduce(Reduce::Sum, zeros({3}, DType::BFloat16)), "sum: expected a float32, float64, int32, int64, uint8 or bool tensor, found bfloat16");
  EXPECT_CORTEX_ERROR(reduce(Reduce::Max, zeros({3}, DType::Bool)), "max: expected a float32, float64, int32, int64 or uint8 tensor, found bool");
  EXPECT_CORTEX_ERROR(reduce(Reduce::Sum, zeros({2, 3}), {0, -2}), "sum: dim -2 is repeated");
  EXPECT_CORTEX_ERROR(reduce(Reduce::Sum, zeros({2, 3}), {2}), "sum: dim 2 is out of range");
  EXPECT_CORTEX_ERROR(reduce(Reduce::Sum, Tensor()), "sum: expected a defined tensor");
}

// ---------------------------------------------------------------- var, std, norm

TEST(Var, TwoPassMatchesReference) {
  Generator g(23);
  for (int trial = 0; trial < 10; ++trial) {
    const Shape s = rand_shape(g, draw(g, 1, 4), 1, 6);
    for (DType dt : {DType::Float32, DType::Float64}) {
      Tensor x = cortex::testing::randn(s, draw(g, 0, 1 << 30), dt);
      const Shape dims = rand_dims(g, x.dim());
      for (int64_t corr : {0, 1, 2}) {
        for (bool keepdim : {false, true}) {
          for (const Tensor& xv : layouts(x)) {  // each layout against its own values (one is a broadcast)
            const Tensor xc = xv.contiguous();
            Tensor vref = ref_reduce(xc, dims, keepdim, [&](const std::vector<double>& v) { return ref_var(v, corr); }, dt);
            Tensor sref = ref_reduce(xc, dims, keepdim, [&](const std::vector<double>& v) { return std::sqrt(ref_var(v, corr)); }, dt);
            EXPECT_TRUE(close_for(var(xv, dims, corr, keepdim), vref)) << shape_str(s) << " " << dims_str(dims) << " " << corr;
            EXPECT_TRUE(close_for(kernels::std(xv, dims, corr, keepdim), sref)) << shape_str(s) << " " << dims_str(dims);
          }
        }
      }
    }
  }
  // Two passes: a large offset does not destroy the variance (E[x^2] - E[x]^2 would in float32).
  Tensor off = cortex::testing::randn({10000}, 3, DType::Float32);
  auto v = vals(off);
  for (auto& e : v) e = 1e4 + 0.01 * e;
  Tensor shifted = from_vector(v, {10000}, DType::Float32);
  Tensor ref = ref_reduce(shifted, {}, false, [](const std::vector<double>& w) { return ref_var(w, 1); }, DType::Float32);
  EXPECT_TRUE(allclose(var(shifted), ref, 1e-5, 0));
  // one element with correction 1: 0/0
  EXPECT_TRUE(std::isnan(var(ones({1})).item()));
  EXPECT_EQ(var(from_vector(std::vector<double>{1, 3}, {2}), {}, 3).item(), kInf);
  EXPECT_CORTEX_ERROR(var(zeros({3}), {}, -1), "var: expected correction >= 0, found -1");
  EXPECT_CORTEX_ERROR(kernels::std(zeros({3}, DType::Int32)), "std: expected x to be float32 or float64");
  EXPECT_CORTEX_ERROR(var(zeros({3}), {0, 0}), "var: dim 0 is repeated");
}

TEST(Norm, PNormsMatchReference) {
  Generator g(29);
  for (int trial = 0; trial < 8; ++trial) {
    const Shape s = rand_shape(g, draw(g, 0, 4), 1, 6);
    for (DType dt : {DType::Float32, DType::Float64}) {
      Tensor x = cortex::testing::randn(s, draw(g, 0, 1 << 30), dt);
      const Shape dims = rand_dims(g, x.dim());
      for (double p : {1.0, 2.0, kInf, 3.0, 0.5}) {
        for (bool keepdim : {false, true}) {
          for (const Tensor& xv : layouts(x)) {  // each layout against its own values (one is a broadcast)
            Tensor ref = ref_reduce(xv.contiguous(), dims, keepdim, [&](const std::vector<double>& v) { return ref_norm(v, p); }, dt);
            EXPECT_TRUE(close_for(norm(xv, p, dims, keepdim), ref)) << p << " " << shape_str(s) << " " << dims_str(dims);
          }
        }
      }
    }
  }
  EXPECT_CORTEX_ERROR(norm(zeros({3}), 0.0), "norm: expected p > 0 (or inf), found 0");
  EXPECT_CORTEX_ERROR(norm(zeros({3}), -2.0), "found -2");
  EXPECT_CORTEX_ERROR(norm(zeros({3}), kNaN), "norm: expected p > 0");
  EXPECT_CORTEX_ERROR(norm(zeros({3}, DType::Int64), 2.0), "norm: expected x to be float32 or float64");
}

// ---------------------------------------------------------------- argmax / argmin

namespace {

// Naive arg-extreme along `dim`: NaN is larger than every number, the first index wins ties.
Tensor ref_arg(const Tensor& x, int64_t dim, bool is_max, bool keepdim) {
  const int64_t nd = x.dim();
  dim = dim < 0 ? dim + nd : dim;
  auto v = vals(x);
  Shape out_shape = x.shape();
  out_shape[dim] = 1;
  const int64_t K = x.shape()[dim];
  int64_t inner = 1;
  for (int64_t d = dim + 1; d < nd; ++d) inner *= x.shape()[d];
  std::vector<double> out;
  const int64_t nout = shape_numel(out_shape);
  auto greater = [](double a, double b) { return std::isnan(a) ? !std::isnan(b) : (!std::isnan(b) && a > b); };
  for (int64_t o = 0; o < nout; ++o) {
    const int64_t outer = o / inner, in = o % inner;
    int64_t best = 0;
    for (int64_t k = 1; k < K; ++k) {
      const double a = v[(outer * K + k) * inner + in], b = v[(outer * K + best) * inner + in];
      if (is_max ? greater(a, b) : greater(b, a)) best = k;
    }
    out.push_back(static_cast<double>(best));
  }
  if (!keepdim) out_shape.erase(out_shape.begin() + dim);
  return from_vector(out, out_shape, DType::Int64);
}

}  // namespace

TEST(Argmax, TiesNaNAndLayouts) {
  Generator g(37);
  for (int trial = 0; trial < 12; ++trial) {
    const Shape s = rand_shape(g, draw(g, 1, 5), 1, 6);
    for (DType dt : {DType::Float32, DType::Float64, DType::Int32, DType::Int64, DType::UInt8}) {
      // few distinct values so ties are common; NaNs in the float ones
      Tensor x = randint(0, 4, s, g, DType::Int64).to(DType::Float64);
      if (dt == DType::Float32 || dt == DType::Float64) {
        auto v = vals(x);
        for (size_t i = 0; i < v.size(); i += 7) v[i] = kNaN;
        x = from_vector(v, s, DType::Float64);
      }
      x = x.to(dt);
      const int64_t dim = draw(g, -x.dim(), x.dim());
      for (bool keepdim : {false, true}) {
        Tensor rmax = ref_arg(x, dim, true, keepdim), rmin = ref_arg(x, dim, false, keepdim);
        for (const Tensor& xv : {x, noncontig(x), permuted(x)}) {
          Tensor am = argmax(xv, dim, keepdim);
          EXPECT_EQ(am.dtype(), DType::Int64);
          EXPECT_TRUE(allclose(am, rmax, 0, 0)) << dtype_name(dt) << " " << shape_str(s) << " dim " << dim;
          EXPECT_TRUE(allclose(argmin(xv, dim, keepdim), rmin, 0, 0)) << dtype_name(dt) << " " << shape_str(s);
        }
      }
    }
  }
  Tensor t = from_vector(std::vector<double>{1, 3, kNaN, 3, kNaN, -1, -1}, {7});
  EXPECT_EQ(argmax(t, 0).item(), 2.0);  // the first NaN
  EXPECT_EQ(argmin(t, 0).item(), 5.0);  // NaN counts as the max, so the first -1 wins
  EXPECT_EQ(argmin(full({3}, kNaN), 0).item(), 0.0);
  EXPECT_EQ(argmax(scalar(4.0), 0).item(), 0.0);
  EXPECT_EQ(argmax(scalar(4.0), -1, true).dim(), 0);
}

TEST(Argmax, LongRowsAndColumns) {
  // A long row is scanned in pieces: ties across pieces must still give the first index.
  std::vector<double> v(150000, 0.0);
  v[70000] = 5;
  v[140000] = 5;
  v[100] = -5;
  v[149999] = -5;
  Tensor x = from_vector(v, {150000}, DType::Float32);
  EXPECT_EQ(argmax(x, 0).item(), 70000.0);
  EXPECT_EQ(argmin(x, 0).item(), 100.0);
  // columns: argmax over dim 0 of (R, C) with C past one column block
  Tensor m = cortex::testing::randn({50, 3000}, 4, DType::Float64);
  EXPECT_TRUE(allclose(argmax(m, 0), ref_arg(m, 0, true, false), 0, 0));
  EXPECT_TRUE(allclose(argmin(m.t(), 1, true), ref_arg(m.t().contiguous(), 1, false, true), 0, 0));
}

TEST(Argmax, Errors) {
  EXPECT_CORTEX_ERROR(argmax(zeros({3, 0}), 1), "argmax: cannot reduce over dim 1 of size 0");
  EXPECT_CORTEX_ERROR(argmin(zeros({3}), 1), "argmin: dim 1 is out of range");
  EXPECT_CORTEX_ERROR(argmax(zeros({3}, DType::Bool), 0), "argmax: expected a float32, float64, int32, int64 or uint8");
  EXPECT_CORTEX_ERROR(argmax(Tensor(), 0), "argmax: expected a defined tensor");
  EXPECT_EQ(argmax(zeros({0, 3}), 1).shape(), (Shape{0}));  // empty output, non-empty axis
}
