// Function transforms that compose (issue: "Function transforms that compose, as torch.func's do").
//
// A property test: every transform (jacobian forward and reverse, jvp, vjp, grad, hvp, hessian in
// its four orders, per_sample_grads) x {grad mode on, NoGradGuard} x {plain, inside a BatchedScope,
// nested under each other transform} x small float64 functions drawn from every op family, each
// against central finite differences (of the function, or of a transform already checked against
// them) or a closed form. Then the two regressions that started it (a Jacobian under NoGradGuard and a
// Hessian by composition, both all-zero before), and what happens where no derivative can flow.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <optional>
#include <string>

#include "autograd/autograd.h"
#include "autograd/losses.h"
#include "autograd/ops.h"
#include "tests/test_util.h"

using namespace cortex;
using cortex::testing::allclose;
using cortex::testing::randn;
using cortex::testing::randu;

namespace {

Tensor t64(std::vector<double> v, Shape s) { return from_vector(v, s, DType::Float64); }

// ---------------------------------------------------------------- small functions, one per op family
// Each maps x (a vector of n float64 values) to a vector; all are smooth at the random points used
// (kinks of relu / max / abs are away from them with probability 1).
struct Case {
  std::string name;
  int64_t n;
  std::function<Tensor(const Tensor&)> f;  // (n) -> (m)
};

std::vector<Case> cases() {
  std::vector<Case> cs;
  cs.push_back({"elementwise", 5, [](const Tensor& x) {
                  Tensor a = mul(tanh(x), exp(mul(x, 0.3)));
                  Tensor b = div(sin(x), add(square(x), 1.0));
                  Tensor c = add(sigmoid(x), mul(softplus(x), gelu(x)));
                  Tensor mask = from_vector(std::vector<double>{1, 0, 1, 1, 0}, {5}, DType::Float64);
                  Tensor d = where(gt(mask, zeros_like(mask)), maximum(x, cos(x)), minimum(elu(x), quick_gelu(x)));
                  Tensor e = pow(add(square(x), 1.0), tanh(x));  // tensor exponent
                  return concat({add(a, b), mul(c, pow(add(square(x), 1.0), 0.5)), mul(d, abs(e))}, 0);
                }});
  cs.push_back({"reductions", 6, [](const Tensor& x) {
                  Tensor X = x.reshape({2, 3});
                  return concat({logsumexp(X, {1}), var(X, {1}), norm(X, 2.0, {0}), mean(mul(X, X), {1}),
                                 amax(X, {1}), sum(tanh(X)).reshape({1})},
                                0);
                }});
  cs.push_back({"linalg", 6, [](const Tensor& x) {
                  Tensor A = randn({3, 6}, 101), W = randn({2, 3}, 102), b = randn({2}, 103);
                  Tensor h = tanh(matmul(A, x));
                  Tensor X = x.reshape({2, 3});
                  return concat({linear(h, W, b), matmul(X, X.t()).reshape({4})}, 0);
                }});
  cs.push_back({"softmax_layernorm", 6, [](const Tensor& x) {
                  Tensor X = x.reshape({2, 3});
                  Tensor w = randn({3}, 104), b = randn({3}, 105);
                  return concat({softmax(X, 1).reshape({6}), log_softmax(X, 0).reshape({6}),
                                 layer_norm(X, {3}, w, b).reshape({6})},
                                0);
                }});
  cs.push_back({"conv_pool", 8, [](const Tensor& x) {
                  Tensor X = x.reshape({1, 2, 2, 2});
                  Tensor w = randn({2, 2, 2, 2}, 106), bias = randn({2}, 107);
                  Conv2dParams p;
                  p.pad_h = p.pad_w = 1;
                  Tensor y = tanh(conv2d(X, w, bias, p));  // (1, 2, 3, 3)
                  Pool2dParams mp;
                  mp.kernel_h = mp.kernel_w = 2;
                  mp.stride_h = mp.stride_w = 1;
                  return concat({max_pool2d(y, mp).reshape({-1}), avg_pool2d(y, mp).reshape({-1}),
                                 adaptive_avg_pool2d(y, 1, 2).reshape({-1})},
                                0);
                }});
  cs.push_back({"grid_sample_resize", 6, [](const Tensor& x) {
                  Tensor X = tanh(x).reshape({1, 1, 2, 3});
                  Tensor grid = t64({-0.7, -0.2, 0.3, 0.5, 0.9, -0.8, 0.1, 0.2}, {1, 2, 2, 2});
                  return concat({grid_sample(X, grid, true).reshape({-1}), resize_bilinear(X, 3, 2).reshape({-1})}, 0);
                }});
  cs.push_back({"attention", 6, [](const Tensor& x) {
                  Tensor X = x.reshape({1, 1, 3, 2});
                  Tensor k = mul(X, 0.5), v = tanh(X);
                  return scaled_dot_product_attention(X, k, v).reshape({6});
                }});
  cs.push_back({"batch_norm", 6, [](const Tensor& x) {
                  Tensor X = x.reshape({2, 3, 1, 1});
                  Tensor w = randn({3}, 108), b = randn({3}, 109);
                  Tensor rm = randn({3}, 110), rv = randu({3}, 111, 0.5, 2.0);
                  return concat({batch_norm_train(X, w, b, Tensor(), Tensor(), 0.0).reshape({6}),
                                 batch_norm(tanh(X), rm, rv, w, b).reshape({6})},
                                0);
                }});
  cs.push_back({"indexing", 6, [](const Tensor& x) {
                  Tensor X = tanh(x).reshape({2, 3});
                  Tensor gi = from_vector(std::vector<double>{2, 0, 1, 1, 2, 0}, {2, 3}, DType::Int64);
                  Tensor si = from_vector(std::vector<double>{1, 0, 1}, {3}, DType::Int64);
                  Tensor sa = index_add(zeros({3, 2}, DType::Float64), 0, si, mul(X, X).t().slice(0, 0, 3));
                  return concat({cumsum(X, 1).reshape({-1}), flip(X, 0).reshape({-1}), gather(X, 1, gi).reshape({-1}),
                                 index_select(X, 0, si.slice(0, 0, 2)).reshape({-1}), topk(X, 2).values.reshape({-1}),
                                 tril(mul(X, x.reshape({2, 3}))).reshape({-1}), sa.reshape({-1}),
                                 stack({X.select(0, 0), X.select(0, 1)}, 0).reshape({-1})},
                                0);
                }});
  cs.push_back({"views", 6, [](const Tensor& x) {
                  Tensor X = x.reshape({2, 3, 1});
                  Tensor a = X.permute({2, 1, 0}).expand({2, 3, 2}).contiguous();
                  Tensor b = X.slice(1, 0, 3, 2).reshape({4});
                  Tensor p = pad(x.reshape({1, 1, 2, 3}), {1, 0, 0, 1}, kernels::PadMode::Reflect);
                  return concat({mul(a, a).reshape({-1}), exp(b), X.select(1, 1).reshape({-1}).to(DType::Float64),
                                 tanh(p).reshape({-1})},
                                0);
                }});
  cs.push_back({"losses", 6, [](const Tensor& x) {
                  Tensor X = x.reshape({2, 3});
                  Tensor target = from_vector(std::vector<double>{2, 0}, {2}, DType::Int64);
                  Tensor y = randn({2, 3}, 112);
                  return stack({cross_entropy(X, target), mse_loss(tanh(X), y), neg_pearson(X.reshape({6}), y.reshape({6}))},
                               0);
                }});
  return cs;
}

// ---------------------------------------------------------------- finite differences

// J (m, n) of h at x by central differences, h evaluated as given (any transform inside it).
Tensor fd_jacobian(const std::function<Tensor(const Tensor&)>& h, const Tensor& x, double eps = 1e-5) {
  const int64_t n = x.numel();
  std::vector<Tensor> cols;
  for (int64_t j = 0; j < n; ++j) {
    Tensor p = x.clone(), m = x.clone();
    p.data<double>()[j] += eps;
    m.data<double>()[j] -= eps;
    cols.push_back(div(sub(h(p).reshape({-1}), h(m).reshape({-1})), 2 * eps));
  }
  return stack(cols, 1);  // (m, n)
}

Tensor flat(const Tensor& t) { return t.contiguous().reshape({-1}); }

// ---------------------------------------------------------------- the transforms under test
// Each maps x to a derivative of the case's function (or of the scalar g = sum(f(x) * w)), with
// fixed directions t, u, v drawn per case. `reference` computes the same quantity from finite
// differences of f.
struct Dirs {
  Tensor t, u, w, v;  // tangent (n), cotangent (m), weights of the scalar (m), hvp direction (n)
};

Tensor scalar_of(const Case& c, const Dirs& d, const Tensor& x) { return sum(mul(c.f(x), d.w)); }

struct Transform {
  std::string name;
  std::function<Tensor(const Case&, const Dirs&, const Tensor&)> apply;
  bool second_order;  // reference needs the gradient's finite differences
};

std::vector<Transform> transforms() {
  std::vector<Transform> ts;
  ts.push_back({"jacobian_forward", [](const Case& c, const Dirs&, const Tensor& x) {
                  return jacobian(c.f, x, JacobianMode::Forward, 4);
                }, false});
  ts.push_back({"jacobian_reverse", [](const Case& c, const Dirs&, const Tensor& x) {
                  return jacobian(c.f, x, JacobianMode::Reverse, 5);
                }, false});
  ts.push_back({"jvp", [](const Case& c, const Dirs& d, const Tensor& x) {
                  return jvp([&](const std::vector<Tensor>& in) { return std::vector<Tensor>{c.f(in[0])}; }, {x}, {d.t})
                      .tangents[0];
                }, false});
  ts.push_back({"vjp", [](const Case& c, const Dirs& d, const Tensor& x) {
                  VjpResult r = vjp([&](const std::vector<Tensor>& in) { return std::vector<Tensor>{c.f(in[0])}; }, {x});
                  return r.pullback({d.u})[0];
                }, false});
  ts.push_back({"grad", [](const Case& c, const Dirs& d, const Tensor& x) {
                  return grad([&](const Tensor& y) { return scalar_of(c, d, y); }, x);
                }, false});
  ts.push_back({"hvp", [](const Case& c, const Dirs& d, const Tensor& x) {
                  return hvp([&](const Tensor& y) { return scalar_of(c, d, y); }, x, d.v);
                }, true});
  const std::pair<JacobianMode, JacobianMode> orders[] = {{JacobianMode::Forward, JacobianMode::Reverse},
                                                          {JacobianMode::Reverse, JacobianMode::Reverse},
                                                          {JacobianMode::Reverse, JacobianMode::Forward},
                                                          {JacobianMode::Forward, JacobianMode::Forward}};
  const char* names[] = {"hessian_fwd_over_rev", "hessian_rev_over_rev", "hessian_rev_over_fwd", "hessian_fwd_over_fwd"};
  for (int k = 0; k < 4; ++k) {
    auto [outer, inner] = orders[k];
    ts.push_back({names[k], [outer, inner](const Case& c, const Dirs& d, const Tensor& x) {
                    return hessian([&](const Tensor& y) { return scalar_of(c, d, y); }, x, outer, inner, 3);
                  }, true});
  }
  return ts;
}

// The reference value of transform `name` at x from finite differences.
Tensor reference(const std::string& name, const Case& c, const Dirs& d, const Tensor& x) {
  Tensor J = fd_jacobian(c.f, x);  // (m, n)
  const int64_t m = J.size(0);
  if (name == "jacobian_forward" || name == "jacobian_reverse") return J;
  if (name == "jvp") return matmul(J, d.t);
  if (name == "vjp") return matmul(J.t(), d.u.reshape({m}));
  if (name == "grad") return matmul(J.t(), d.w.reshape({m}));
  // second order: differences of the gradient transform (itself checked against J^T w above)
  auto g = [&](const Tensor& y) { return grad([&](const Tensor& z) { return scalar_of(c, d, z); }, y); };
  Tensor H = fd_jacobian(g, x);  // (n, n)
  if (name == "hvp") return matmul(H, d.v);
  return H;
}

Dirs draw(const Case& c, const Tensor& x, uint64_t seed) {
  const int64_t m = c.f(x).numel();
  return {randn({c.n}, seed + 1), randn({m}, seed + 2), randn({m}, seed + 3), randn({c.n}, seed + 4)};
}

::testing::AssertionResult close(const Tensor& got, const Tensor& want, double rtol, double atol) {
  if (got.numel() != want.numel())
    return ::testing::AssertionFailure() << "got " << got.numel() << " values, want " << want.numel();
  return allclose(flat(got), flat(want), rtol, atol);
}

enum class Mode { GradOn, NoGrad, Batched, NoGradBatched };
const char* mode_name(Mode m) {
  switch (m) {
    case Mode::GradOn: return "grad mode on";
    case Mode::NoGrad: return "NoGradGuard";
    case Mode::Batched: return "inside a BatchedScope";
    case Mode::NoGradBatched: return "NoGradGuard + BatchedScope";
  }
  return "";
}
// Runs fn in the mode (the transforms under test must ignore both the grad mode and the batched
// scope around them).
Tensor in_mode(Mode mode, const std::function<Tensor()>& fn) {
  if (mode == Mode::GradOn) return fn();
  if (mode == Mode::NoGrad) {
    NoGradGuard ng;
    return fn();
  }
  BatchedScope bs(1);
  if (mode == Mode::NoGradBatched) {
    NoGradGuard ng;
    return fn();
  }
  return fn();
}

}  // namespace

// ---------------------------------------------------------------- one level

TEST(Transforms, EveryTransformEveryModeEveryFamily) {
  const auto ts = transforms();
  int checked = 0;
  for (const Case& c : cases()) {
    const Tensor x = randn({c.n}, 7 + c.n);
    const Dirs d = draw(c, x, 50);
    for (const Transform& tr : ts) {
      const Tensor want = reference(tr.name, c, d, x);
      const double rtol = tr.second_order ? 1e-4 : 1e-6, atol = tr.second_order ? 1e-6 : 1e-8;
      for (Mode mode : {Mode::GradOn, Mode::NoGrad, Mode::Batched, Mode::NoGradBatched}) {
        // jvp and vjp take batched derivatives inside a BatchedScope: checked separately below.
        if ((tr.name == "jvp" || tr.name == "vjp") && (mode == Mode::Batched || mode == Mode::NoGradBatched)) continue;
        Tensor got = in_mode(mode, [&] { return tr.apply(c, d, x); });
        EXPECT_TRUE(close(got, want, rtol, atol)) << tr.name << " of " << c.name << ", " << mode_name(mode);
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 300);
}

TEST(Transforms, BatchedJvpAndVjpEqualOneDirectionAtATime) {
  for (const Case& c : cases()) {
    const Tensor x = randn({c.n}, 3 + c.n);
    const Tensor J = fd_jacobian(c.f, x);
    const int64_t m = J.size(0), B = 3;
    Tensor T = randn({B, c.n}, 60), U = randn({B, m}, 61);
    auto fv = [&](const std::vector<Tensor>& in) { return std::vector<Tensor>{c.f(in[0])}; };
    for (bool nograd : {false, true}) {
      std::optional<NoGradGuard> ng;
      if (nograd) ng.emplace();
      BatchedScope bs(1);
      Tensor jt = jvp(fv, {x}, {T}).tangents[0];  // (B, m)
      Tensor ju = vjp(fv, {x}).pullback({U})[0];  // (B, n)
      EXPECT_TRUE(close(jt, matmul(T, J.t()), 1e-6, 1e-8)) << c.name << (nograd ? " NoGradGuard" : "");
      EXPECT_TRUE(close(ju, matmul(U, J), 1e-6, 1e-8)) << c.name << (nograd ? " NoGradGuard" : "");
    }
  }
}

// ---------------------------------------------------------------- two levels

// Every transform nested under each outer transform: the outer derivative of x -> T(x) against
// finite differences of T itself (T was checked against finite differences of f above).
TEST(Transforms, EveryTransformNestedUnderEachOther) {
  const auto ts = transforms();
  int checked = 0;
  for (const Case& c : cases()) {
    const Tensor x = randn({c.n}, 11 + c.n);
    const Dirs d = draw(c, x, 70);
    for (const Transform& tr : ts) {
      // Third derivatives by differences of second-order transforms are too noisy to compare at a
      // tight bound; the second-order transforms are nested under one transform (themselves two
      // levels) in the checks above, and once more under jacobian below on smooth cases.
      if (tr.second_order) continue;
      auto h = [&](const Tensor& y) { return flat(tr.apply(c, d, y)); };
      const Tensor Jh = fd_jacobian(h, x);  // (k, n)
      const int64_t k = Jh.size(0);
      const Tensor th = randn({c.n}, 80), uh = randn({k}, 81);
      for (bool nograd : {false, true}) {
        std::optional<NoGradGuard> ng;
        if (nograd) ng.emplace();
        const std::string where = tr.name + " of " + c.name + (nograd ? ", NoGradGuard" : "");
        EXPECT_TRUE(close(jacobian(h, x, JacobianMode::Forward, 4), Jh, 1e-5, 1e-7)) << "jacobian_forward of " << where;
        EXPECT_TRUE(close(jacobian(h, x, JacobianMode::Reverse, 3), Jh, 1e-5, 1e-7)) << "jacobian_reverse of " << where;
        auto hv = [&](const std::vector<Tensor>& in) { return std::vector<Tensor>{h(in[0])}; };
        EXPECT_TRUE(close(jvp(hv, {x}, {th}).tangents[0], matmul(Jh, th), 1e-5, 1e-7)) << "jvp of " << where;
        EXPECT_TRUE(close(vjp(hv, {x}).pullback({uh})[0], matmul(Jh.t(), uh), 1e-5, 1e-7)) << "vjp of " << where;
        EXPECT_TRUE(close(grad([&](const Tensor& y) { return sum(mul(h(y), uh)); }, x), matmul(Jh.t(), uh), 1e-5, 1e-7))
            << "grad of " << where;
        checked += 5;
      }
    }
  }
  EXPECT_GT(checked, 500);
}

TEST(Transforms, ThirdOrderOnASmoothFunction) {
  // f(x) = sum(sin(a x)) with a fixed: every derivative is closed form. d^3 f / dx^3 along the
  // diagonal: -a^3 cos(a x) (the tensor is diagonal).
  const Tensor a = t64({0.5, -1.2, 2.0}, {3}), x = t64({0.3, -0.7, 1.1}, {3});
  Fn1 f = [&](const Tensor& y) { return sum(sin(mul(a, y))); };
  // jacobian of the Hessian (reverse over forward over reverse)
  Tensor T3 = jacobian([&](const Tensor& y) { return hessian(f, y); }, x, JacobianMode::Reverse);  // (3,3,3)
  ASSERT_EQ(T3.shape(), (Shape{3, 3, 3}));
  const auto av = a.to_vector<double>(), xv = x.to_vector<double>(), tv = T3.contiguous().to_vector<double>();
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 3; ++k) {
        const double want = (i == j && j == k) ? -std::pow(av[i], 3) * std::cos(av[i] * xv[i]) : 0.0;
        EXPECT_NEAR(tv[(i * 3 + j) * 3 + k], want, 1e-10) << i << j << k;
      }
}

// ---------------------------------------------------------------- per-sample gradients

TEST(Transforms, PerSampleGradientsEqualEachSampleAlone) {
  const Tensor X = randn({5, 4}, 90), Y = randn({5, 3}, 91);
  const Tensor W = randn({3, 4}, 92), b = randn({3}, 93);
  auto loss_of = [&](const Tensor& w, const Tensor& bb, const Tensor& xs, const Tensor& ys) {
    return sum(square(sub(tanh(linear(xs, w, bb)), ys)), {1});  // (N)
  };
  for (bool nograd : {false, true}) {
    std::optional<NoGradGuard> ng;
    if (nograd) ng.emplace();
    auto g = per_sample_grads([&](const std::vector<Tensor>& p) { return std::vector<Tensor>{loss_of(p[0], p[1], X, Y)}; },
                              {W, b}, 2);
    ASSERT_EQ(g[0].shape(), (Shape{5, 3, 4}));
    ASSERT_EQ(g[1].shape(), (Shape{5, 3}));
    for (int64_t i = 0; i < 5; ++i) {
      Tensor xi = X.slice(0, i, i + 1), yi = Y.slice(0, i, i + 1);
      auto lw = [&](const Tensor& w) { return sum(loss_of(w, b, xi, yi)); };
      auto lb = [&](const Tensor& bb) { return sum(loss_of(W, bb, xi, yi)); };
      EXPECT_TRUE(close(g[0].select(0, i), fd_jacobian(lw, W), 1e-6, 1e-8)) << "sample " << i;
      EXPECT_TRUE(close(g[1].select(0, i), fd_jacobian(lb, b), 1e-6, 1e-8)) << "sample " << i;
    }
  }
  EXPECT_CORTEX_ERROR(per_sample_grads([&](const std::vector<Tensor>& p) { return std::vector<Tensor>{sum(p[0])}; }, {W}),
                      "per-sample losses, shape (N)");
}

// ---------------------------------------------------------------- the regressions

namespace {
// f(x) = sum(tanh(W x)), W 5x3: gradient W^T (1 - s^2), Hessian W^T diag(-2 s (1 - s^2)) W, s = tanh(W x).
struct TanhCase {
  Tensor W = randn({5, 3}, 120), x = randn({3}, 121);
  Tensor f(const Tensor& y) const { return sum(tanh(matmul(W, y))); }
  Tensor gradient() const {
    Tensor s = tanh(matmul(W, x));
    return matmul(W.t(), rsub(1.0, square(s)));
  }
  Tensor hessian_closed() const {
    Tensor s = tanh(matmul(W, x));
    Tensor dd = mul(mul(s, -2.0), rsub(1.0, square(s)));  // (5)
    return matmul(W.t(), mul(W, dd.reshape({5, 1})));
  }
};
}  // namespace

TEST(Transforms, JacobianUnderNoGradGuardIsNotZero) {
  TanhCase tc;
  NoGradGuard ng;  // as any inference code is
  auto f = [&](const Tensor& y) { return tc.f(y); };
  const Tensor want = tc.gradient();
  EXPECT_TRUE(close(jacobian(f, tc.x, JacobianMode::Reverse), want, 1e-10, 1e-12));
  EXPECT_TRUE(close(jacobian(f, tc.x, JacobianMode::Forward), want, 1e-10, 1e-12));
  EXPECT_TRUE(close(grad(f, tc.x), want, 1e-10, 1e-12));
  VjpResult r = vjp([&](const std::vector<Tensor>& in) { return std::vector<Tensor>{f(in[0])}; }, {tc.x});
  EXPECT_TRUE(close(r.pullback({t64({1.0}, {})})[0], want, 1e-10, 1e-12));
  const Tensor v = randn({3}, 122);
  EXPECT_TRUE(close(hvp(f, tc.x, v), matmul(tc.hessian_closed(), v), 1e-10, 1e-12));
  // and nothing was recorded on the base tape
  EXPECT_FALSE(requires_grad(jacobian(f, tc.x, JacobianMode::Reverse)));
}

TEST(Transforms, HessianByCompositionInEveryOrder) {
  TanhCase tc;
  const Tensor want = tc.hessian_closed();
  const JacobianMode F = JacobianMode::Forward, R = JacobianMode::Reverse;
  for (auto [outer, inner] : {std::pair{F, R}, std::pair{R, R}, std::pair{R, F}, std::pair{F, F}}) {
    for (bool nograd : {false, true}) {
      std::optional<NoGradGuard> ng;
      if (nograd) ng.emplace();
      // exactly the composition users write
      Tensor H = jacobian(
          [&](const Tensor& y) { return jacobian([&](const Tensor& z) { return tc.f(z); }, y, inner); }, tc.x, outer);
      EXPECT_TRUE(close(H, want, 1e-10, 1e-12)) << int(outer) << " over " << int(inner) << (nograd ? " NoGradGuard" : "");
      EXPECT_TRUE(close(hessian([&](const Tensor& z) { return tc.f(z); }, tc.x, outer, inner), want, 1e-10, 1e-12));
    }
  }
}

// The fused attention op (kernels/attention.h) differentiates to the composite softmax(q k^T s) v
// in every nesting: its VJP and JVP rules call the fused kernels only when nothing records them, and
// switch to the composite formulas when an enclosing level differentiates the rule (hessian, hvp, jvp
// of grad, grad of jvp). x packs q (2, 3, 4), k (2, 5, 4) and v (2, 5, 3) of two heads.
TEST(Transforms, FusedAttentionMatchesTheCompositeUnderEveryNesting) {
  const int64_t nq = 24, nk = 40, nv = 30;
  auto split = [&](const Tensor& x, Tensor& q, Tensor& k, Tensor& v) {
    q = x.narrow(0, 0, nq).reshape({2, 3, 4});
    k = x.narrow(0, nq, nk).reshape({2, 5, 4});
    v = x.narrow(0, nq + nk, nv).reshape({2, 5, 3});
  };
  const Tensor w = randn({2, 3, 3}, 7).to(DType::Float64);
  auto fused = [&](const Tensor& x) {
    Tensor q, k, v;
    split(x, q, k, v);
    return sum(mul(tanh(scaled_dot_product_attention(q, k, v, 0.6)), w));
  };
  auto composite = [&](const Tensor& x) {
    Tensor q, k, v;
    split(x, q, k, v);
    Tensor o = matmul(softmax(mul(matmul(q, k.transpose(-1, -2)), 0.6), -1), v);
    return sum(mul(tanh(o), w));
  };
  const Tensor x = randn({nq + nk + nv}, 8).to(DType::Float64);
  const Tensor dir = randn({nq + nk + nv}, 9).to(DType::Float64);
  EXPECT_TRUE(allclose(grad(fused, x), grad(composite, x), 1e-10, 1e-12));
  EXPECT_TRUE(allclose(hvp(fused, x, dir), hvp(composite, x, dir), 1e-10, 1e-12));
  const JacobianMode F = JacobianMode::Forward, R = JacobianMode::Reverse;
  for (auto [outer, inner] : {std::pair{F, R}, std::pair{R, R}, std::pair{R, F}, std::pair{F, F}})
    EXPECT_TRUE(allclose(hessian(fused, x, outer, inner), hessian(composite, x, outer, inner), 1e-9, 1e-11))
        << int(outer) << " over " << int(inner);
  // jvp of grad and grad of jvp (a mixed second derivative), and the vector output's Jacobians.
  auto jvp_of = [&](const std::function<Tensor(const Tensor&)>& f) {
    return jvp([&](const std::vector<Tensor>& in) { return std::vector<Tensor>{grad(f, in[0])}; }, {x}, {dir})
        .tangents[0];
  };
  EXPECT_TRUE(allclose(jvp_of(fused), jvp_of(composite), 1e-10, 1e-12));
  auto grad_of_jvp = [&](const std::function<Tensor(const Tensor&)>& f) {
    return grad([&](const Tensor& y) { return jvp([&](const std::vector<Tensor>& in) { return std::vector<Tensor>{f(in[0])}; }, {y}, {dir}).tangents[0]; }, x);
  };
  EXPECT_TRUE(allclose(grad_of_jvp(fused), grad_of_jvp(composite), 1e-10, 1e-12));
  auto attn_vec = [&](bool use_fused) {
    return [&, use_fused](const Tensor& y) {
      Tensor q, k, v;
      split(y, q, k, v);
      Tensor o = use_fused ? scaled_dot_product_attention(q, k, v, 0.6)
                           : matmul(softmax(mul(matmul(q, k.transpose(-1, -2)), 0.6), -1), v);
      return o.reshape({-1});
    };
  };
  for (JacobianMode m : {F, R})
    EXPECT_TRUE(allclose(jacobian(attn_vec(true), x, m), jacobian(attn_vec(false), x, m), 1e-10, 1e-12)) << int(m);
}

TEST(Transforms, TransformResultsAreDifferentiableOnTheBaseTape) {
  // A Jacobian penalty: d/dW of sum(J^2) with J = d f / d x, through the base tape (grad mode on).
  TanhCase tc;
  Tensor W = with_grad(tc.W);
  auto penalty = [&](const Tensor& w) {
    Tensor J = jacobian([&](const Tensor& y) { return tanh(matmul(w, y)); }, tc.x, JacobianMode::Reverse);
    return sum(square(J));
  };
  Tensor g = grad({penalty(W)}, {W})[0];
  EXPECT_TRUE(close(g, fd_jacobian(penalty, tc.W).reshape({5, 3}), 1e-6, 1e-8));
}

// ---------------------------------------------------------------- where no derivative can flow

TEST(Transforms, BlockedPathsThrowNamingTheOpAndIndependentOutputsGiveZeros) {
  const Tensor x = randn({4}, 130);
  for (JacobianMode mode : {JacobianMode::Forward, JacobianMode::Reverse}) {
    EXPECT_CORTEX_ERROR(jacobian([](const Tensor& y) { return argmax(y, 0).to(DType::Float64).reshape({1}); }, x, mode),
                        "'argmax'");
    EXPECT_CORTEX_ERROR(jacobian([](const Tensor& y) { return mul(detach(y), 2.0); }, x, mode), "'detach'");
    EXPECT_CORTEX_ERROR(jacobian([](const Tensor& y) { return y.to(DType::Int64).to(DType::Float64); }, x, mode),
                        "cast to an integer dtype");
    EXPECT_CORTEX_ERROR(jacobian([](const Tensor& y) { return gt(y, zeros_like(y)).to(DType::Float64); }, x, mode),
                        "'gt'");
    // truly independent: zeros of the right shape
    Tensor z = jacobian([](const Tensor&) { return ones({2}, DType::Float64); }, x, mode);
    EXPECT_TRUE(allclose(z, zeros({2, 4}, DType::Float64)));
    // one path blocked, another differentiable: the derivative of the differentiable path
    Tensor j = jacobian([](const Tensor& y) { return add(mul(detach(y), 2.0), mul(y, 3.0)); }, x, mode);
    EXPECT_TRUE(allclose(j, mul(eye(4, 4, DType::Float64), 3.0)));
  }
  EXPECT_CORTEX_ERROR(grad([](const Tensor& y) { return sum(topk(y, 2).indices.to(DType::Float64)); }, x), "topk");
  EXPECT_TRUE(allclose(grad([](const Tensor&) { return ones({}, DType::Float64); }, x), zeros({4}, DType::Float64)));
  EXPECT_CORTEX_ERROR(
      jvp([](const std::vector<Tensor>& in) { return std::vector<Tensor>{detach(in[0])}; }, {x}, {full({4}, 1.0, DType::Float64)}), "'detach'");
}

TEST(Transforms, BaseTapeInsideATransformIsRefusedWhereItWouldDropDerivatives) {
  // backward / grad on with_grad leaves made inside jvp: tanh saves its output without the jvp's
  // tangent, so the walk refuses rather than return a wrong derivative.
  const Tensor x = t64({0.5, -1.0}, {2}), t = t64({1.0, 2.0}, {2});
  auto g = [](const std::vector<Tensor>& in) {
    Tensor l = with_grad(in[0]);
    return grad({sum(tanh(l))}, {l}, {}, true);
  };
  EXPECT_CORTEX_ERROR(jvp(g, {x}, {t}), "inside jvp / vjp / jacobian / grad(f, x) use those transforms");
  // ... while an op that saves no output passes through correctly: d/dx of d(sum x^2 y)/dy = ...
  auto g2 = [](const std::vector<Tensor>& in) {
    Tensor l = with_grad(in[0]);
    return grad({sum(mul(mul(l, l), 3.0))}, {l}, {}, true);  // 6 l
  };
  JvpResult r = jvp(g2, {x}, {t});
  EXPECT_TRUE(allclose(r.tangents[0], mul(t, 6.0)));
  // the functional form of the first case works
  JvpResult r2 = jvp([](const std::vector<Tensor>& in) {
    return std::vector<Tensor>{grad([](const Tensor& y) { return sum(tanh(y)); }, in[0])};
  }, {x}, {t});
  const auto xv = x.to_vector<double>(), tv = t.to_vector<double>(), got = r2.tangents[0].to_vector<double>();
  for (int i = 0; i < 2; ++i) {
    const double s = std::tanh(xv[i]);
    EXPECT_NEAR(got[i], -2 * s * (1 - s * s) * tv[i], 1e-12);
  }
}

TEST(Transforms, ErrorsAndEngineStateAfterThrows) {
  const Tensor x = randn({3}, 140);
  EXPECT_CORTEX_ERROR(grad([](const Tensor& y) { return y; }, x), "one element");
  EXPECT_CORTEX_ERROR(hvp([](const Tensor& y) { return sum(y); }, x, randn({4}, 1)), "hvp: v has shape");
  EXPECT_CORTEX_ERROR(jacobian([](const Tensor& y) { return y; }, zeros({2}, DType::Int64)), "float tensor");
  // a throw inside f leaves no level open: the base tape and a later transform work as before
  EXPECT_THROW(jacobian([](const Tensor& y) -> Tensor { throw Error("boom " + shape_str(y.shape())); }, x), Error);
  EXPECT_TRUE(grad_mode_enabled());
  Tensor l = with_grad(x);
  backward(sum(square(l)));
  EXPECT_TRUE(allclose(grad_of(l), mul(x, 2.0)));
  EXPECT_TRUE(allclose(grad([](const Tensor& y) { return sum(square(y)); }, x), mul(x, 2.0)));
}
