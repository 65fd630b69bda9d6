// The autodiff engine: reverse and forward mode, batched Jacobians, second derivatives, the
// classic traps (a node used twice, reused intermediates, repeated backward), clear errors, and
// gradcheck of the elementwise, reduction, matmul and indexing ops.
#include <gtest/gtest.h>

#include "autograd/autograd.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "tests/test_util.h"

using namespace cortex;
using cortex::testing::allclose;
using cortex::testing::noncontig;
using cortex::testing::randn;
using cortex::testing::randu;

namespace {
Tensor t64(std::vector<double> v, Shape s) { return from_vector(v, s, DType::Float64); }
Fn unary(Tensor (*f)(const Tensor&)) {
  return [f](const std::vector<Tensor>& x) { return std::vector<Tensor>{f(x[0])}; };
}
}  // namespace

TEST(Autograd, NodeUsedTwice) {
  // micrograd's first bug: b = a + a must give db/da = 2, not 1.
  Tensor a = with_grad(t64({3.0}, {}));
  Tensor b = add(a, a);
  backward(b);
  EXPECT_DOUBLE_EQ(grad_of(a).item(), 2.0);
}

TEST(Autograd, ReusedIntermediateAndRepeatedBackward) {
  Tensor x = with_grad(t64({2.0}, {}));
  Tensor y = mul(x, x);               // 4
  Tensor z = add(y, mul(y, y));       // y + y^2 = 20; dz/dx = (1 + 2y) 2x = 36
  backward(z, Tensor(), /*retain_graph=*/true);
  EXPECT_DOUBLE_EQ(grad_of(x).item(), 36.0);
  EXPECT_FALSE(grad_of(y).defined()) << "intermediates must not collect .grad";
  backward(z);  // accumulates into the leaf only
  EXPECT_DOUBLE_EQ(grad_of(x).item(), 72.0);
  EXPECT_FALSE(grad_of(y).defined());
  EXPECT_CORTEX_ERROR(backward(z), "second time");
  zero_grad(x);
  EXPECT_FALSE(grad_of(x).defined());
}

TEST(Autograd, RetainGradOnNonLeaf) {
  Tensor x = with_grad(t64({1, 2, 3}, {3}));
  Tensor y = mul(x, 2.0);
  retain_grad(y);
  backward(sum(square(y)));
  EXPECT_TRUE(allclose(grad_of(y), t64({4, 8, 12}, {3})));
  EXPECT_TRUE(allclose(grad_of(x), t64({8, 16, 24}, {3})));
}

TEST(Autograd, NoGradAndDetach) {
  Tensor x = with_grad(t64({1, 2}, {2}));
  {
    NoGradGuard ng;
    EXPECT_FALSE(requires_grad(mul(x, x)));
  }
  EXPECT_TRUE(requires_grad(mul(x, x)));
  EXPECT_FALSE(requires_grad(detach(mul(x, x))));
  // an integer result never requires grad
  EXPECT_FALSE(requires_grad(argmax(x, 0)));
}

TEST(Autograd, ClearErrors) {
  Tensor x = with_grad(randn({3, 2}, 1));
  Tensor y = mul(x, x);
  EXPECT_CORTEX_ERROR(backward(y), "one-element output");
  EXPECT_CORTEX_ERROR(backward(y, randn({2, 3}, 2)), "grad_output has shape");
  EXPECT_CORTEX_ERROR(backward(y, randn({3, 2}, 2, DType::Float32)), "float32");
  EXPECT_CORTEX_ERROR(add(x, randn({3, 2}, 3, DType::Float32)), "one dtype");
  EXPECT_CORTEX_ERROR(backward(randn({}, 1)), "does not require grad");
  // a tensor saved for backward and then modified in place
  Tensor c = randn({3, 2}, 4);
  Tensor z = sum(mul(x, c));
  c.fill_(2.0);
  EXPECT_CORTEX_ERROR(backward(z), "modified in place");
  // in-place writes into a tensor that requires grad are refused
  EXPECT_CORTEX_ERROR(x.fill_(1.0), "not differentiable");
  {
    NoGradGuard ng;  // ... but allowed for optimizer steps
    x.fill_(1.0);
  }
  // jvp with a tangent of the wrong shape or dtype
  EXPECT_CORTEX_ERROR(jvp(unary(exp), {randn({3}, 1)}, {randn({4}, 1)}), "tangent has shape");
  EXPECT_CORTEX_ERROR(jvp(unary(exp), {randn({3}, 1)}, {randn({3}, 1, DType::Float32)}), "tangent 0 is float32");
  Tensor ints = zeros({2}, DType::Int64);
  EXPECT_CORTEX_ERROR(set_requires_grad(ints, true), "only float");
}

TEST(Autograd, ViewsAreDifferentiable) {
  // Every Tensor view method joins the tape: permute, slice with a step, select, expand, reshape,
  // unsqueeze/squeeze, t, diagonal, and copies (contiguous, to).
  Fn f = [](const std::vector<Tensor>& in) {
    const Tensor& x = in[0];  // (3, 4, 5)
    Tensor a = x.permute({2, 0, 1}).slice(0, 1, 5, 2);       // (2, 3, 4)
    Tensor b = x.select(1, 2).t().unsqueeze(0).expand({2, 5, 3}).reshape({2, 15});
    Tensor c = x.reshape({12, 5}).slice(0, 0, 5).diagonal();  // (5)
    Tensor d = x.narrow(2, 1, 3).contiguous().to(Device::cpu());
    return std::vector<Tensor>{mul(a, a), square(b), mul(c, 3.0), sin(d)};
  };
  EXPECT_GRADCHECK(f, {randn({3, 4, 5}, 5)}, {.check_second_order = true});
  EXPECT_GRADCHECK(f, {noncontig(randn({3, 4, 5}, 6))});
  // a dtype round trip passes the gradient back converted
  Tensor x = with_grad(randn({3}, 7));
  backward(sum(mul(x.to(DType::Float32), 2.0)));
  EXPECT_EQ(grad_of(x).dtype(), DType::Float64);
  EXPECT_TRUE(allclose(grad_of(x), full({3}, 2.0, DType::Float64)));
}

TEST(Autograd, PlainViewBackwardWritesThroughTheView) {
  // The plain backward of a view that reads each element once writes g through the same view of
  // zeros; one that reads elements several times (expand) sums them (index_add). Exact values.
  for (bool strided_base : {false, true}) {
    SCOPED_TRACE(strided_base ? "strided base" : "contiguous base");
    const Tensor x0 = randn({4, 6}, 11);
    Tensor x = with_grad(strided_base ? noncontig(x0) : x0);
    const Tensor w = randn({3, 2}, 12);  // weights for rows 1..3, columns 1 and 4 (step 3), transposed
    Tensor v = x.narrow(0, 1, 3).slice(1, 1, 6, 3);  // (3, 2)
    Tensor e = x.select(0, 0).unsqueeze(0).expand({5, 6});  // row 0 read 5 times
    backward(add(sum(mul(v, w)), sum(e)));
    std::vector<double> want(24, 0.0);
    const std::vector<double> wv = w.to_vector<double>();
    for (int64_t r = 0; r < 3; ++r)
      for (int64_t c = 0; c < 2; ++c) want[size_t((1 + r) * 6 + 1 + 3 * c)] = wv[size_t(r * 2 + c)];
    for (int64_t c = 0; c < 6; ++c) want[size_t(c)] = 5.0;
    EXPECT_TRUE(allclose(grad_of(x), t64(want, {4, 6})));
  }
}

TEST(Autograd, ElementwiseOps) {
  Tensor x = randn({3, 5}, 7);
  Tensor pos = randu({3, 5}, 8, 0.5, 2.0);
  GradcheckOptions o;
  o.check_second_order = true;
  for (auto f : {neg, exp, sin, cos, tanh, erf, sigmoid, square, quick_gelu, expm1})
    EXPECT_GRADCHECK(unary(f), {noncontig(x)}, o);
  for (auto f : {log, log1p, sqrt, rsqrt, reciprocal}) EXPECT_GRADCHECK(unary(f), {pos}, o);
  // kinks: keep inputs away from 0
  Tensor away = add(mul(sign(x), 0.2), x);
  for (auto f : {abs, relu}) EXPECT_GRADCHECK(unary(f), {away});
  EXPECT_GRADCHECK([](const std::vector<Tensor>& v) { return std::vector<Tensor>{gelu(v[0])}; }, {x}, o);
  EXPECT_GRADCHECK([](const std::vector<Tensor>& v) { return std::vector<Tensor>{gelu(v[0], GeluApprox::Tanh)}; }, {x}, o);
  EXPECT_GRADCHECK([](const std::vector<Tensor>& v) { return std::vector<Tensor>{elu(v[0], 0.7)}; }, {away}, o);
  EXPECT_GRADCHECK([](const std::vector<Tensor>& v) { return std::vector<Tensor>{softplus(v[0], 2.0)}; }, {x}, o);
  EXPECT_GRADCHECK([](const std::vector<Tensor>& v) { return std::vector<Tensor>{pow(v[0], 2.5)}; }, {pos}, o);
  EXPECT_GRADCHECK([](const std::vector<Tensor>& v) { return std::vector<Tensor>{clamp(v[0], -0.5, 0.7)}; },
                   {add(mul(x, 0.0), t64({-1.2, -0.3, 0.1, 0.4, 1.5}, {5}))});
}

TEST(Autograd, BinaryOpsWithBroadcasting) {
  GradcheckOptions o;
  o.check_second_order = true;
  Tensor a = randn({4, 1, 3}, 9), b = randn({5, 1}, 10), pa = randu({4, 1, 3}, 11, 0.5, 2), pb = randu({5, 1}, 12, 0.5, 2);
  auto bin = [](Tensor (*f)(const Tensor&, const Tensor&)) {
    return Fn([f](const std::vector<Tensor>& v) { return std::vector<Tensor>{f(v[0], v[1])}; });
  };
  EXPECT_GRADCHECK(bin(add), {a, b}, o);
  EXPECT_GRADCHECK(bin(sub), {a, b}, o);
  EXPECT_GRADCHECK(bin(mul), {a, noncontig(b)}, o);
  EXPECT_GRADCHECK(bin(div), {a, pb}, o);
  EXPECT_GRADCHECK(bin(pow), {pa, b}, o);
  EXPECT_GRADCHECK(bin(maximum), {a, b});
  EXPECT_GRADCHECK(bin(minimum), {a, b});
  Tensor cond = gt(randn({4, 5, 3}, 13), scalar(0, DType::Float64));
  EXPECT_GRADCHECK([cond](const std::vector<Tensor>& v) { return std::vector<Tensor>{where(cond, v[0], v[1])}; },
                   {a, b}, o);
  // maximum with ties splits the gradient evenly
  Tensor p = with_grad(t64({1, 2}, {2})), q = with_grad(t64({1, 3}, {2}));
  backward(sum(maximum(p, q)));
  EXPECT_TRUE(allclose(grad_of(p), t64({0.5, 0}, {2})));
  EXPECT_TRUE(allclose(grad_of(q), t64({0.5, 1}, {2})));
}

TEST(Autograd, Reductions) {
  GradcheckOptions o;
  o.check_second_order = true;
  Tensor x = randn({3, 4, 5}, 14);
  auto red = [](Tensor (*f)(const Tensor&, const Shape&, bool), Shape dims, bool keep) {
    return Fn([=](const std::vector<Tensor>& v) { return std::vector<Tensor>{f(v[0], dims, keep)}; });
  };
  for (bool keep : {false, true}) {
    EXPECT_GRADCHECK(red(sum, {}, keep), {noncontig(x)}, o);
    EXPECT_GRADCHECK(red(sum, {0, 2}, keep), {x}, o);
    EXPECT_GRADCHECK(red(mean, {-1}, keep), {noncontig(x)}, o);
    EXPECT_GRADCHECK(red(amax, {1}, keep), {x});
    EXPECT_GRADCHECK(red(amin, {0, 1}, keep), {x});
    EXPECT_GRADCHECK(red(logsumexp, {2}, keep), {x}, o);
  }
  EXPECT_GRADCHECK([](const std::vector<Tensor>& v) { return std::vector<Tensor>{var(v[0], {1}, 1, false)}; }, {x}, o);
  EXPECT_GRADCHECK([](const std::vector<Tensor>& v) { return std::vector<Tensor>{std_dev(v[0], {0, 2}, 0, true)}; }, {x}, o);
  for (double p : {1.0, 2.0, 3.0, std::numeric_limits<double>::infinity()})
    EXPECT_GRADCHECK([p](const std::vector<Tensor>& v) { return std::vector<Tensor>{norm(v[0], p, {2}, false)}; }, {x});
  // amax ties share the gradient
  Tensor t = with_grad(t64({1, 3, 3}, {3}));
  backward(amax(t));
  EXPECT_TRUE(allclose(grad_of(t), t64({0, 0.5, 0.5}, {3})));
  // norm of zero has gradient 0, not NaN
  Tensor z = with_grad(zeros({3}, DType::Float64));
  backward(norm(z));
  EXPECT_TRUE(allclose(grad_of(z), zeros({3}, DType::Float64)));
}

TEST(Autograd, MatmulAndLinear) {
  GradcheckOptions o;
  o.check_second_order = true;
  auto mm = Fn([](const std::vector<Tensor>& v) { return std::vector<Tensor>{matmul(v[0], v[1])}; });
  EXPECT_GRADCHECK(mm, {randn({3, 4}, 1), randn({4, 2}, 2)}, o);
  EXPECT_GRADCHECK(mm, {randn({2, 3, 4}, 1), noncontig(randn({4, 5}, 2))}, o);  // batch broadcast
  EXPECT_GRADCHECK(mm, {randn({1, 3, 4}, 1), randn({2, 4, 2}, 2)}, o);
  EXPECT_GRADCHECK(mm, {randn({4}, 1), randn({4, 3}, 2)}, o);                    // vector @ matrix
  EXPECT_GRADCHECK(mm, {randn({2, 3, 4}, 1), randn({4}, 2)}, o);                 // matrix @ vector
  EXPECT_GRADCHECK(mm, {randn({4}, 1), randn({4}, 2)}, o);                       // dot
  EXPECT_GRADCHECK(mm, {randn({4, 3}, 1).t(), randn({4, 2}, 2)}, o);             // transposed view
  auto lin = Fn([](const std::vector<Tensor>& v) { return std::vector<Tensor>{linear(v[0], v[1], v[2])}; });
  EXPECT_GRADCHECK(lin, {randn({2, 3, 5}, 3), randn({4, 5}, 4), randn({4}, 5)}, o);
  EXPECT_GRADCHECK([](const std::vector<Tensor>& v) { return std::vector<Tensor>{linear(v[0], v[1])}; },
                   {randn({3, 5}, 3), randn({4, 5}, 4)}, o);
}

TEST(Autograd, IndexingOps) {
  GradcheckOptions o;
  o.check_second_order = true;
  Tensor x = randn({4, 5}, 15), y = randn({2, 5}, 16);
  EXPECT_GRADCHECK([](const std::vector<Tensor>& v) { return std::vector<Tensor>{concat({v[0], v[1]}, 0)}; }, {x, y}, o);
  EXPECT_GRADCHECK([](const std::vector<Tensor>& v) { return std::vector<Tensor>{stack({v[0], v[1]}, 1)}; },
                   {x, noncontig(randn({4, 5}, 17))}, o);
  EXPECT_GRADCHECK([](const std::vector<Tensor>& v) {
    auto parts = split(v[0], {1, 3}, 0);
    return std::vector<Tensor>{mul(parts[0], 2.0), square(parts[1])};
  }, {x}, o);
  Tensor gi = from_vector(std::vector<int64_t>{0, 3, 3, 1, 2, 2, 0, 4}, {4, 2}, DType::Int64);
  EXPECT_GRADCHECK([gi](const std::vector<Tensor>& v) { return std::vector<Tensor>{gather(v[0], 1, gi)}; }, {x}, o);
  EXPECT_GRADCHECK([gi](const std::vector<Tensor>& v) {
    return std::vector<Tensor>{scatter_add(v[0], 1, gi, v[1])};
  }, {x, randn({4, 2}, 18)}, o);
  Tensor ii = from_vector(std::vector<int64_t>{2, 0, 2}, {3}, DType::Int64);
  EXPECT_GRADCHECK([ii](const std::vector<Tensor>& v) { return std::vector<Tensor>{index_select(v[0], 0, ii)}; }, {x}, o);
  EXPECT_GRADCHECK([ii](const std::vector<Tensor>& v) {
    return std::vector<Tensor>{index_add(v[0], 0, ii, v[1])};
  }, {x, randn({3, 5}, 19)}, o);
  EXPECT_GRADCHECK([](const std::vector<Tensor>& v) { return std::vector<Tensor>{topk(v[0], 2, 1).values}; }, {x});
  EXPECT_GRADCHECK([](const std::vector<Tensor>& v) { return std::vector<Tensor>{sort(v[0], 0, true).values}; }, {x});
  EXPECT_GRADCHECK([](const std::vector<Tensor>& v) { return std::vector<Tensor>{cumsum(v[0], 1)}; }, {noncontig(x)}, o);
  EXPECT_GRADCHECK([](const std::vector<Tensor>& v) { return std::vector<Tensor>{flip(v[0], 0)}; }, {x}, o);
  EXPECT_GRADCHECK([](const std::vector<Tensor>& v) { return std::vector<Tensor>{tril(v[0], 1)}; }, {x}, o);
  EXPECT_GRADCHECK([](const std::vector<Tensor>& v) { return std::vector<Tensor>{triu(v[0], -1)}; }, {x}, o);
}

TEST(Autograd, SecondDerivativesAndHvp) {
  // d/dx (d/dx x^3) = 6x
  Tensor x = with_grad(t64({0.5, -1.5, 2.0}, {3}));
  Tensor g = grad({sum(pow(x, 3.0))}, {x}, {}, /*create_graph=*/true)[0];
  EXPECT_TRUE(allclose(g, t64({0.75, 6.75, 12.0}, {3})));
  Tensor gg = grad({sum(g)}, {x})[0];
  EXPECT_TRUE(allclose(gg, t64({3.0, -9.0, 12.0}, {3})));
  // Hessian-vector product of f(x) = sum(x^3) + x0 x1: H = diag(6x) + offdiag
  Tensor v = t64({1, 2, 3}, {3});
  Tensor hv = hvp([](const Tensor& x) { return add(sum(pow(x, 3.0)), mul(x.select(0, 0), x.select(0, 1))); },
                  t64({0.5, -1.5, 2.0}, {3}), v);
  EXPECT_TRUE(allclose(hv, t64({3.0 * 1 + 2, -9.0 * 2 + 1, 12.0 * 3}, {3})));
}

TEST(Autograd, JacobianOfAnMlp) {
  Tensor w1 = randn({7, 4}, 21), b1 = randn({7}, 22), w2 = randn({3, 7}, 23);
  Fn1 f = [&](const Tensor& x) { return linear(tanh(linear(x, w1, b1)), w2); };
  Tensor x = randn({2, 4}, 24);
  Tensor jf = jacobian(f, x, JacobianMode::Forward, 3);
  Tensor jr = jacobian(f, x, JacobianMode::Reverse, 2);
  Tensor ja = jacobian(f, x, JacobianMode::Auto, 0);
  EXPECT_EQ(jf.shape(), (Shape{2, 3, 2, 4}));
  EXPECT_TRUE(allclose(jf, jr, 1e-10, 1e-12));
  EXPECT_TRUE(allclose(ja, jr, 1e-10, 1e-12));
  // against central differences
  const double eps = 1e-6;
  Tensor xc = x.contiguous();
  for (int64_t j = 0; j < 8; ++j) {
    Tensor p = xc.clone(), m = xc.clone();
    p.data<double>()[j] += eps;
    m.data<double>()[j] -= eps;
    Tensor col = div(sub(f(p), f(m)), 2 * eps);
    Tensor got = jr.reshape({6, 8}).select(1, j).reshape({2, 3});
    EXPECT_TRUE(allclose(got, col, 1e-6, 1e-8)) << "column " << j;
  }
  // a function that ignores x
  Tensor jz = jacobian([](const Tensor&) { return ones({2}, DType::Float64); }, x, JacobianMode::Reverse);
  EXPECT_TRUE(allclose(jz, zeros({2, 2, 4}, DType::Float64)));
}

TEST(Autograd, VjpPullbackTwiceAndJvpCost) {
  Tensor a = randn({3, 3}, 30);
  VjpResult r = vjp([&](const std::vector<Tensor>& v) { return std::vector<Tensor>{matmul(a, v[0])}; }, {randn({3}, 31)});
  Tensor u = randn({3}, 32);
  auto g1 = r.pullback({u}), g2 = r.pullback({u});
  EXPECT_TRUE(allclose(g1[0], matmul(a.t(), u)));
  EXPECT_TRUE(allclose(g2[0], g1[0]));
  JvpResult j = jvp([&](const std::vector<Tensor>& v) { return std::vector<Tensor>{matmul(a, v[0])}; }, {randn({3}, 31)},
                    {u});
  EXPECT_TRUE(allclose(j.tangents[0], matmul(a, u)));
}

TEST(Autograd, NonSmoothPointsGiveFiniteGradients) {
  // std of a constant slice: PyTorch's convention, gradient 0 (not 0 * inf = NaN).
  Tensor x = with_grad(t64({2, 2, 2, 1, 4, 7}, {2, 3}));
  backward(sum(std_dev(x, {1})));
  const auto g = grad_of(x).to_vector<double>();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(g[i], 0.0);
  // second row: (x - mean) / ((N - 1) std), mean 4, std 3
  EXPECT_NEAR(g[3], -3.0 / (2 * 3.0), 1e-12);
  EXPECT_NEAR(g[5], 3.0 / (2 * 3.0), 1e-12);
  // p-norm with p < 1 at an exact zero: the zero entry gets 0, the others the closed form.
  Tensor z = with_grad(t64({0.0, 4.0, 1.0}, {3}));
  backward(norm(z, 0.5));
  const auto gz = grad_of(z).to_vector<double>();
  const double y = std::pow(2.0 + 1.0, 2.0);  // (sum sqrt|z|)^2 = 9
  EXPECT_EQ(gz[0], 0.0);
  EXPECT_NEAR(gz[1], std::pow(4.0, -0.5) / std::pow(y, -0.5), 1e-12);
  EXPECT_NEAR(gz[2], 1.0 / std::pow(y, -0.5), 1e-12);
}

TEST(Autograd, NestedForwardAndForwardOverReverse) {
  // Both used to throw; nesting is tested in full in tests/test_transforms.cpp.
  Tensor x = t64({0.5, -1.0}, {2}), t = t64({1.0, 2.0}, {2});
  // jvp inside jvp: d/dx [tanh'(x) t] t = tanh''(x) t^2
  auto inner = [&](const std::vector<Tensor>& in) { return jvp(unary(tanh), in, {t}).tangents; };
  JvpResult r = jvp(inner, {x}, {t});
  const auto xv = x.to_vector<double>(), tv = t.to_vector<double>(), got = r.tangents[0].to_vector<double>();
  for (int i = 0; i < 2; ++i) {
    const double s = std::tanh(xv[i]);
    EXPECT_NEAR(got[i], -2 * s * (1 - s * s) * tv[i] * tv[i], 1e-12);
  }
}
