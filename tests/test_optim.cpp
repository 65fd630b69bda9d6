// Optimizers and schedules (autograd/optim.h): SGD (plain, momentum, dampening, nesterov, weight
// decay), Adam and AdamW step by step against float64 references written here from the PyTorch
// documentation's pseudo-code, on several parameter shapes (non-contiguous, 0-dim, one without a
// gradient); convergence to the closed-form least-squares solution; clip_grad_norm; each schedule's
// lr sequence against hand-computed values; state save/restore; errors.
#include <gtest/gtest.h>

#include <cmath>

#include "autograd/losses.h"
#include "autograd/optim.h"
#include "kernels/dispatch.h"
#include "tests/test_util.h"

using namespace cortex;
using cortex::testing::allclose;
using cortex::testing::noncontig;
using cortex::testing::randn;

namespace {

using Vec = std::vector<double>;
std::vector<double> vals(const Tensor& t) { return t.to(DType::Float64).to_vector<double>(); }

// Parameters of several shapes; the second is a non-contiguous view, the last gets no gradient.
struct Problem {
  std::vector<Shape> shapes{{3, 4}, {5}, {}, {2, 1, 3}, {2}};
  std::vector<Tensor> params, weights;
  std::vector<Vec> theta, w;  // reference copies (float64)
  explicit Problem(DType dt = DType::Float64, uint64_t seed = 1) {
    for (size_t k = 0; k < shapes.size(); ++k) {
      Tensor init = randn(shapes[k], seed + 2 * k, dt);
      if (k == 1) init = noncontig(init);
      params.push_back(with_grad(init));
      weights.push_back(randn(shapes[k], seed + 2 * k + 1, dt));
      theta.push_back(vals(init));
      w.push_back(vals(weights.back()));
    }
  }
  size_t n_graded() const { return shapes.size() - 1; }
  // loss = sum_k sum(w_k * sin(p_k)) over all but the last parameter: grad_k = w_k * cos(p_k).
  void backward_pass() {
    Tensor loss;
    for (size_t k = 0; k < n_graded(); ++k) {
      Tensor l = sum(mul(weights[k], sin(params[k])));
      loss = loss.defined() ? add(loss, l) : l;
    }
    backward(loss);
  }
  std::vector<Vec> ref_grads() const {
    std::vector<Vec> g(n_graded());
    for (size_t k = 0; k < n_graded(); ++k)
      for (size_t i = 0; i < theta[k].size(); ++i) g[k].push_back(w[k][i] * std::cos(theta[k][i]));
    return g;
  }
  void expect_matches(double rtol, const char* what, int step, double atol = 1e-12) const {
    for (size_t k = 0; k < shapes.size(); ++k)
      EXPECT_TRUE(allclose(params[k], from_vector(theta[k], shapes[k], DType::Float64), rtol, atol))
          << what << " step " << step << " parameter " << k;
  }
};

// torch.optim.SGD documentation pseudo-code.
struct RefSGD {
  SGDOptions o;
  std::vector<Vec> buf;
  void step(std::vector<Vec>& theta, const std::vector<Vec>& grads) {
    buf.resize(grads.size());
    for (size_t k = 0; k < grads.size(); ++k) {
      Vec g = grads[k];
      for (size_t i = 0; i < g.size(); ++i) {
        if (o.weight_decay != 0) g[i] += o.weight_decay * theta[k][i];
      }
      if (o.momentum != 0) {
        if (buf[k].empty()) buf[k] = g;
        else
          for (size_t i = 0; i < g.size(); ++i) buf[k][i] = o.momentum * buf[k][i] + (1 - o.dampening) * g[i];
        for (size_t i = 0; i < g.size(); ++i) g[i] = o.nesterov ? g[i] + o.momentum * buf[k][i] : buf[k][i];
      }
      for (size_t i = 0; i < g.size(); ++i) theta[k][i] -= o.lr * g[i];
    }
  }
};

// torch.optim.Adam / AdamW documentation pseudo-code (amsgrad off, maximize off).
struct RefAdam {
  double lr, b1, b2, eps, wd;
  bool decoupled;
  std::vector<Vec> m, v;
  int t = 0;
  void step(std::vector<Vec>& theta, const std::vector<Vec>& grads) {
    ++t;
    m.resize(grads.size());
    v.resize(grads.size());
    for (size_t k = 0; k < grads.size(); ++k) {
      Vec g = grads[k];
      m[k].resize(g.size(), 0.0);
      v[k].resize(g.size(), 0.0);
      for (size_t i = 0; i < g.size(); ++i) {
        double& th = theta[k][i];
        if (decoupled) th -= lr * wd * th;
        else g[i] += wd * th;
        m[k][i] = b1 * m[k][i] + (1 - b1) * g[i];
        v[k][i] = b2 * v[k][i] + (1 - b2) * g[i] * g[i];
        const double mh = m[k][i] / (1 - std::pow(b1, t)), vh = v[k][i] / (1 - std::pow(b2, t));
        th -= lr * mh / (std::sqrt(vh) + eps);
      }
    }
  }
};

// Runs `steps` steps of opt on the problem and of ref on its copies, comparing after each.
template <class Ref>
void run_against(Problem& pb, Optimizer& opt, Ref& ref, int steps, double rtol, const char* what) {
  Tensor alias = detach(pb.params[0]);  // a handle a model might hold: sees the in-place updates
  for (int s = 1; s <= steps; ++s) {
    opt.zero_grad();
    pb.backward_pass();
    auto g = pb.ref_grads();
    opt.step();
    ref.step(pb.theta, g);
    pb.expect_matches(rtol, what, s);
  }
  EXPECT_TRUE(allclose(alias, pb.params[0], 0, 0));
  EXPECT_TRUE(requires_grad(pb.params[0]) && is_leaf(pb.params[0]));
  EXPECT_TRUE(pb.params[1].strides() != contiguous_strides(pb.params[1].shape())) << "still the strided view";
}

}  // namespace

// ---------------------------------------------------------------- step by step

TEST(Optim, SgdMatchesReference) {
  const SGDOptions cases[] = {
      {.lr = 0.1},
      {.lr = 0.05, .momentum = 0.9},
      {.lr = 0.05, .momentum = 0.8, .dampening = 0.3},
      {.lr = 0.05, .momentum = 0.9, .nesterov = true},
      {.lr = 0.1, .weight_decay = 0.01},
      {.lr = 0.03, .momentum = 0.7, .nesterov = true, .weight_decay = 0.2},
  };
  int c = 0;
  for (const SGDOptions& o : cases) {
    Problem pb(DType::Float64, 10 + 20 * c++);
    SGD opt(pb.params, o);
    RefSGD ref{o, {}};
    run_against(pb, opt, ref, 6, 1e-12, "SGD");
    // The parameter without a gradient was never touched and has no state.
    EXPECT_EQ(opt.state().count("4.momentum_buffer"), 0u);
    if (o.momentum != 0) {
      EXPECT_EQ(opt.state().count("0.momentum_buffer"), 1u);
    }
  }
}

TEST(Optim, AdamMatchesReference) {
  const AdamOptions cases[] = {
      {.lr = 0.01},
      {.lr = 0.05, .beta1 = 0.8, .beta2 = 0.99, .eps = 1e-6},
      {.lr = 0.02, .weight_decay = 0.1},
      {.lr = 0.02, .beta1 = 0.3, .weight_decay = 0.05},  // beta1 < 0.5: the other lerp branch
  };
  int c = 0;
  for (const AdamOptions& o : cases) {
    Problem pb(DType::Float64, 200 + 20 * c++);
    Adam opt(pb.params, o);
    RefAdam ref{o.lr, o.beta1, o.beta2, o.eps, o.weight_decay, false, {}, {}};
    run_against(pb, opt, ref, 7, 1e-11, "Adam");
    auto st = opt.state();
    EXPECT_EQ(st.at("0.step").item(), 7.0);
    EXPECT_EQ(st.count("4.exp_avg"), 0u);
  }
}

// The fused step writes the parameter and its moments in place, so their storage versions move
// (as copy_'s do): a graph that saved the parameter before the step refuses to run backward, and
// version-keyed copies of the weight (bf16 compute) are remade.
TEST(Optim, AdamStepBumpsVersions) {
  Tensor p = randn({5, 3}, 31, DType::Float32), g = randn({5, 3}, 32, DType::Float32);
  Tensor m = zeros({5, 3}), v = zeros({5, 3});
  const uint64_t vp = p.storage()->version, vm = m.storage()->version, vv = v.storage()->version;
  const std::vector<float> before = p.to_vector<float>();
  kernels::adam_step(p, g, m, v, AdamStep{0.1, 0.9, 0.999, 1e-8, 0.0, 1, false});
  EXPECT_NE(p.to_vector<float>(), before);
  EXPECT_EQ(p.storage()->version, vp + 1);
  EXPECT_EQ(m.storage()->version, vm + 1);
  EXPECT_EQ(v.storage()->version, vv + 1);
}

TEST(Optim, AdamWMatchesReference) {
  const AdamWOptions cases[] = {
      {.lr = 0.01},  // default weight_decay 1e-2
      {.lr = 0.05, .beta1 = 0.85, .beta2 = 0.95, .weight_decay = 0.3},
      {.lr = 0.05, .weight_decay = 0.0},
  };
  int c = 0;
  for (const AdamWOptions& o : cases) {
    Problem pb(DType::Float64, 400 + 20 * c++);
    AdamW opt(pb.params, o);
    RefAdam ref{o.lr, o.beta1, o.beta2, o.eps, o.weight_decay, true, {}, {}};
    run_against(pb, opt, ref, 7, 1e-11, "AdamW");
  }
  // AdamW's decay differs from Adam's L2 penalty.
  Problem p1(DType::Float64, 5), p2(DType::Float64, 5);
  Adam a(p1.params, {.lr = 0.1, .weight_decay = 0.5});
  AdamW w(p2.params, {.lr = 0.1, .weight_decay = 0.5});
  for (int s = 0; s < 3; ++s) {
    p1.backward_pass();
    p2.backward_pass();
    a.step();
    w.step();
  }
  EXPECT_FALSE(allclose(p1.params[0], p2.params[0], 1e-6, 1e-9));
}

TEST(Optim, Float32ParametersFollowTheFloat64Reference) {
  Problem pb(DType::Float32, 600);
  Adam opt(pb.params, {.lr = 0.02});
  RefAdam ref{0.02, 0.9, 0.999, 1e-8, 0.0, false, {}, {}};
  for (int s = 1; s <= 5; ++s) {
    opt.zero_grad();
    pb.backward_pass();
    // The float32 reference gradient from the float32 parameters.
    for (size_t k = 0; k < pb.shapes.size(); ++k) pb.theta[k] = vals(pb.params[k]);
    auto g = pb.ref_grads();
    opt.step();
    ref.step(pb.theta, g);
    pb.expect_matches(1e-5, "Adam float32", s, 1e-6);
    EXPECT_EQ(pb.params[0].dtype(), DType::Float32);
  }
  Problem ps(DType::Float32, 601);
  SGD sgd(ps.params, {.lr = 0.1, .momentum = 0.9});
  RefSGD rs{{.lr = 0.1, .momentum = 0.9}, {}};
  for (int s = 1; s <= 5; ++s) {
    sgd.zero_grad();
    ps.backward_pass();
    for (size_t k = 0; k < ps.shapes.size(); ++k) ps.theta[k] = vals(ps.params[k]);
    auto g = ps.ref_grads();
    sgd.step();
    rs.step(ps.theta, g);
    ps.expect_matches(1e-5, "SGD float32", s, 1e-6);
  }
}

TEST(Optim, ZeroGradAndLrChanges) {
  Problem pb;
  SGD opt(pb.params, {.lr = 0.1});
  pb.backward_pass();
  EXPECT_TRUE(grad_of(pb.params[0]).defined());
  opt.zero_grad();
  for (const Tensor& p : pb.params) EXPECT_FALSE(grad_of(p).defined());
  // No gradients: step() changes nothing.
  opt.step();
  pb.expect_matches(0, "no grad", 0);
  // set_lr takes effect on the next step.
  opt.set_lr(0.5);
  pb.backward_pass();
  auto g = pb.ref_grads();
  opt.step();
  RefSGD ref{{.lr = 0.5}, {}};
  ref.step(pb.theta, g);
  pb.expect_matches(1e-12, "set_lr", 1);
  // A graph recorded before the step saw the old parameter values: backward through it is refused.
  Tensor loss = sum(mul(pb.params[0], pb.params[0]));
  opt.step();
  EXPECT_CORTEX_ERROR(backward(loss), "modified in place");
}

// ---------------------------------------------------------------- convergence

namespace {
// Solves the n x n system M x = r by Gaussian elimination with partial pivoting.
Vec gauss_solve(std::vector<Vec> M, Vec r) {
  const size_t n = r.size();
  for (size_t c = 0; c < n; ++c) {
    size_t piv = c;
    for (size_t i = c + 1; i < n; ++i)
      if (std::abs(M[i][c]) > std::abs(M[piv][c])) piv = i;
    std::swap(M[c], M[piv]);
    std::swap(r[c], r[piv]);
    for (size_t i = c + 1; i < n; ++i) {
      const double f = M[i][c] / M[c][c];
      for (size_t j = c; j < n; ++j) M[i][j] -= f * M[c][j];
      r[i] -= f * r[c];
    }
  }
  Vec x(n);
  for (size_t i = n; i-- > 0;) {
    double s = r[i];
    for (size_t j = i + 1; j < n; ++j) s -= M[i][j] * x[j];
    x[i] = s / M[i][i];
  }
  return x;
}

// Least squares: min_W,b mean((A W + b - y)^2), A (m, n). Returns [W; b] from the normal equations.
Vec least_squares(const Vec& A, const Vec& y, int64_t m, int64_t n) {
  const int64_t k = n + 1;  // [A | 1]
  auto X = [&](int64_t i, int64_t j) { return j < n ? A[i * n + j] : 1.0; };
  std::vector<Vec> M(k, Vec(k, 0.0));
  Vec r(k, 0.0);
  for (int64_t a = 0; a < k; ++a) {
    for (int64_t b = 0; b < k; ++b)
      for (int64_t i = 0; i < m; ++i) M[a][b] += X(i, a) * X(i, b);
    for (int64_t i = 0; i < m; ++i) r[a] += X(i, a) * y[i];
  }
  return gauss_solve(M, r);
}

// Trains W (n, 1) and b (1) with `make` 's optimizer (and optional schedule) for `steps` steps.
template <class Make>
Vec train(const Tensor& A, const Tensor& y, int steps, Make make) {
  const int64_t n = A.size(1);
  Tensor W = with_grad(zeros({n, 1}, DType::Float64));
  Tensor b = with_grad(zeros({1}, DType::Float64));
  auto [opt, sched] = make(std::vector<Tensor>{W, b});
  for (int s = 0; s < steps; ++s) {
    opt->zero_grad();
    backward(mse_loss(add(matmul(A, W), b), y));
    opt->step();
    if (sched) sched->step();
  }
  Vec out = vals(W);
  out.push_back(b.item());
  return out;
}
using Made = std::pair<std::unique_ptr<Optimizer>, std::unique_ptr<Scheduler>>;
}  // namespace

TEST(Optim, ConvergesToLeastSquaresSolution) {
  const int64_t m = 24, n = 3;
  Tensor A = randn({m, n}, 700);
  Tensor y = add(randn({m, 1}, 701), 0.7);
  Vec want = least_squares(vals(A), vals(y), m, n);
  auto expect_near = [&](const Vec& got, double tol, const char* what) {
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], tol) << what << " coefficient " << i;
  };
  expect_near(train(A, y, 400, [](std::vector<Tensor> p) {
                return Made{std::make_unique<SGD>(p, SGDOptions{.lr = 0.1, .momentum = 0.9}), nullptr};
              }),
              1e-8, "SGD momentum");
  expect_near(train(A, y, 400, [](std::vector<Tensor> p) {
                return Made{std::make_unique<SGD>(p, SGDOptions{.lr = 0.1, .momentum = 0.9, .nesterov = true}), nullptr};
              }),
              1e-8, "SGD nesterov");
  expect_near(train(A, y, 1500, [](std::vector<Tensor> p) {
                auto opt = std::make_unique<Adam>(p, AdamOptions{.lr = 0.05});
                auto sched = std::make_unique<LinearWarmup>(*opt, 0.1, 50,
                                                            std::make_unique<CosineAnnealingLR>(*opt, 1450));
                return Made{std::move(opt), std::move(sched)};
              }),
              1e-4, "Adam, warm-up then cosine");
}

// ---------------------------------------------------------------- clip_grad_norm

TEST(Optim, ClipGradNorm) {
  Tensor p1 = with_grad(randn({3, 4}, 800)), p2 = with_grad(randn({5}, 801)), p3 = with_grad(randn({2}, 802));
  Tensor p4 = with_grad(randn({6}, 803));
  Tensor c1 = randn({3, 4}, 804), c2 = randn({5}, 805);
  auto grads = [&] {
    for (Tensor p : {p1, p2, p3, p4}) zero_grad(p);
    // p4's gradient is the broadcast of a scalar (the engine may hand back an expanded view).
    backward(add(add(sum(mul(c1, p1)), sum(mul(c2, p2))), mul(sum(p4), 3.0)));
  };
  double sq = 54;  // 6 * 3^2
  for (double v : vals(c1)) sq += v * v;
  for (double v : vals(c2)) sq += v * v;
  const double total = std::sqrt(sq);

  grads();
  EXPECT_NEAR(clip_grad_norm({p1, p2, p3, p4}, 2 * total), total, 1e-12);
  EXPECT_TRUE(allclose(grad_of(p1), c1, 0, 0)) << "below max_norm: unchanged";
  EXPECT_FALSE(grad_of(p3).defined());

  grads();
  const double max_norm = 0.25 * total, coef = max_norm / (total + 1e-6);
  EXPECT_NEAR(clip_grad_norm({p1, p2, p3, p4}, max_norm), total, 1e-12);
  EXPECT_TRUE(allclose(grad_of(p1), mul(c1, coef), 1e-14, 0));
  EXPECT_TRUE(allclose(grad_of(p2), mul(c2, coef), 1e-14, 0));
  EXPECT_TRUE(allclose(grad_of(p4), full({6}, 3 * coef, DType::Float64), 1e-14, 0));
  EXPECT_FALSE(grad_of(p3).defined());
  // The clipped norm is max_norm (up to the 1e-6 guard), and clipping again changes nothing.
  EXPECT_NEAR(clip_grad_norm({p1, p2, p3, p4}, max_norm), max_norm, 1e-6);
  // float32 gradients
  Tensor q = with_grad(full({4}, 1.0, DType::Float32));
  backward(sum(mul(q, 2.0f)));
  EXPECT_NEAR(clip_grad_norm({q}, 1.0), 4.0, 1e-6);
  EXPECT_TRUE(allclose(grad_of(q), full({4}, 0.5, DType::Float32), 1e-6, 0));
  // Nothing with a gradient: norm 0.
  EXPECT_EQ(clip_grad_norm({p3}, 1.0), 0.0);
  EXPECT_CORTEX_ERROR(clip_grad_norm({p1}, -1.0), "clip_grad_norm: max_norm must be >= 0");
}

// ---------------------------------------------------------------- schedules

namespace {
// Steps the schedule through expected.size() values, checking sched.lr() and the optimizer's lr.
void expect_lrs(Scheduler& s, const Vec& expected, const char* what) {
  for (size_t e = 0; e < expected.size(); ++e) {
    if (e > 0) s.step();
    EXPECT_NEAR(s.lr(), expected[e], 1e-12) << what << " at step " << e;
    EXPECT_NEAR(s.optimizer().lr(), expected[e], 1e-12) << what << " at step " << e;
    EXPECT_EQ(s.steps(), static_cast<int64_t>(e));
  }
}
}  // namespace

TEST(Optim, Schedules) {
  Tensor p = with_grad(zeros({2}, DType::Float64));
  {
    SGD opt({p}, {.lr = 0.1});
    StepLR s(opt, 3, 0.5);
    expect_lrs(s, {0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.0125}, "StepLR");
  }
  {
    SGD opt({p}, {.lr = 2.0});
    MultiStepLR s(opt, {5, 2, 5}, 0.1);  // unsorted, 5 twice: gamma^2 there (as PyTorch's Counter)
    expect_lrs(s, {2.0, 2.0, 0.2, 0.2, 0.2, 0.002, 0.002}, "MultiStepLR");
  }
  {
    SGD opt({p}, {.lr = 0.1});
    CosineAnnealingLR s(opt, 4, 0.01);
    // eta_min + 0.09 (1 + cos(pi e / 4)) / 2: cos(pi/4) = 0.70710678..., past t_max it rises again.
    expect_lrs(s, {0.1, 0.0868198051533946, 0.055, 0.0231801948466054, 0.01, 0.0231801948466054, 0.055},
               "CosineAnnealingLR");
  }
  {
    SGD opt({p}, {.lr = 1.0});
    LinearWarmup s(opt, 0.1, 4);
    expect_lrs(s, {0.1, 0.325, 0.55, 0.775, 1.0, 1.0, 1.0}, "LinearWarmup");
  }
  {
    SGD opt({p}, {.lr = 1.0});
    LinearWarmup s(opt, 0.0, 2, std::make_unique<CosineAnnealingLR>(opt, 4));
    expect_lrs(s, {0.0, 0.5, 1.0, 0.853553390593274, 0.5, 0.146446609406726, 0.0, 0.146446609406726},
               "warm-up then cosine");
    EXPECT_EQ(s.base_lr(), 1.0);
    // A checkpoint restores the position and the optimizer's lr.
    s.set_steps(4);
    EXPECT_NEAR(opt.lr(), 0.5, 1e-12);
    s.step();
    EXPECT_NEAR(opt.lr(), 0.146446609406726, 1e-12);
  }
  {
    SGD opt({p}, {.lr = 1.0});
    LinearWarmup s(opt, 0.5, 2, std::make_unique<StepLR>(opt, 2, 0.1));
    expect_lrs(s, {0.5, 0.75, 1.0, 1.0, 0.1, 0.1, 0.01}, "warm-up then step");
  }
  // The optimizer steps with the scheduled lr.
  {
    Tensor q = with_grad(zeros({1}, DType::Float64));
    SGD opt({q}, {.lr = 1.0});
    LinearWarmup s(opt, 0.25, 2);
    backward(sum(q));  // gradient 1
    opt.step();        // lr 0.25
    s.step();
    opt.step();  // lr 0.625
    EXPECT_NEAR(q.item(), -0.875, 1e-15);
  }
}

// ---------------------------------------------------------------- checkpoints

namespace {
// k steps of `opt` on pb; the parameter values after each, flattened.
std::vector<Vec> steps_of(Problem& pb, Optimizer& opt, int k) {
  std::vector<Vec> out;
  for (int s = 0; s < k; ++s) {
    opt.zero_grad();
    pb.backward_pass();
    opt.step();
    Vec all;
    for (const Tensor& p : pb.params)
      for (double v : vals(p)) all.push_back(v);
    out.push_back(all);
  }
  return out;
}
// `to` becomes the same problem as `from`: its current parameter values and its loss weights.
void copy_params(const Problem& from, Problem& to) {
  NoGradGuard ng;
  for (size_t k = 0; k < from.params.size(); ++k) to.params[k].copy_(from.params[k]);
  to.weights = from.weights;
}

template <class Opt, class Opts>
void check_restore(const Opts& o, const char* what) {
  Problem pb(DType::Float64, 900);
  Opt opt(pb.params, o);
  steps_of(pb, opt, 3);
  OptimizerState snap = opt.state();
  Problem pb2(DType::Float64, 901);
  copy_params(pb, pb2);
  auto cont = steps_of(pb, opt, 3);
  // The snapshot is a copy: later steps did not change it.
  OptimizerState later = opt.state();
  for (const auto& [k, t] : snap)
    if (k != "lr" && k != "4.step") {
      EXPECT_FALSE(allclose(t, later.at(k), 0, 0)) << what << " " << k;
    }
  Opt restored(pb2.params, o);
  restored.load_state(snap);
  auto again = steps_of(pb2, restored, 3);
  EXPECT_EQ(cont, again) << what << ": steps after restoring differ";
  // A fresh optimizer without the state takes different steps (the state matters).
  Problem pb3(DType::Float64, 902);
  copy_params(pb, pb3);
  Problem pb4(DType::Float64, 903);
  copy_params(pb, pb4);
  Opt a(pb3.params, o), b(pb4.params, o);
  b.load_state(opt.state());
  EXPECT_NE(steps_of(pb3, a, 1), steps_of(pb4, b, 1)) << what;
}
}  // namespace

TEST(Optim, StateSaveRestore) {
  check_restore<SGD>(SGDOptions{.lr = 0.05, .momentum = 0.9, .nesterov = true, .weight_decay = 0.01}, "SGD");
  check_restore<Adam>(AdamOptions{.lr = 0.05, .weight_decay = 0.01}, "Adam");
  check_restore<AdamW>(AdamWOptions{.lr = 0.05}, "AdamW");

  Problem pb;
  Adam opt(pb.params, {.lr = 0.05});
  steps_of(pb, opt, 2);
  OptimizerState st = opt.state();
  EXPECT_EQ(st.size(), 1u + 3u * 4u);  // lr + (step, exp_avg, exp_avg_sq) for the 4 parameters with grads
  EXPECT_EQ(st.at("0.exp_avg").shape(), (Shape{3, 4}));
  EXPECT_EQ(st.at("2.exp_avg_sq").shape(), Shape{});
  EXPECT_EQ(st.at("1.step").dtype(), DType::Int64);
  EXPECT_EQ(st.at("lr").item(), 0.05);
  // lr comes back with the state.
  OptimizerState s2 = st;
  s2["lr"] = scalar(0.3, DType::Float64);
  opt.load_state(s2);
  EXPECT_EQ(opt.lr(), 0.3);
  // Errors name the entry.
  OptimizerState bad = st;
  bad["0.momentum_buffer"] = zeros({3, 4}, DType::Float64);
  EXPECT_CORTEX_ERROR(opt.load_state(bad), "Adam: load_state: unknown entry '0.momentum_buffer'");
  bad = st;
  bad["7.exp_avg"] = zeros({3, 4}, DType::Float64);
  EXPECT_CORTEX_ERROR(opt.load_state(bad), "names parameter 7 but there are 5 parameters");
  bad = st;
  bad["0.exp_avg"] = zeros({4, 3}, DType::Float64);
  EXPECT_CORTEX_ERROR(opt.load_state(bad), "'0.exp_avg' has shape [4, 3] but parameter 0 has shape [3, 4]");
  bad = st;
  bad.erase("1.exp_avg_sq");
  EXPECT_CORTEX_ERROR(opt.load_state(bad), "parameter 1 has some state but no '1.exp_avg_sq'");
  bad = st;
  bad["lr"] = zeros({2}, DType::Float64);
  EXPECT_CORTEX_ERROR(opt.load_state(bad), "'lr' must have one element");
  bad = st;
  bad["x.step"] = scalar(1, DType::Int64);
  EXPECT_CORTEX_ERROR(opt.load_state(bad), "unknown entry 'x.step'");
  // A failed load leaves the state as it was.
  EXPECT_EQ(opt.state().at("0.step").item(), 2.0);
  // An empty state is a fresh optimizer.
  opt.load_state({});
  EXPECT_EQ(opt.state().size(), 1u);
}

// ---------------------------------------------------------------- errors

TEST(Optim, Errors) {
  Tensor p = with_grad(randn({3}, 1));
  Tensor plain = randn({3}, 2);
  EXPECT_CORTEX_ERROR(SGD({plain}, {}), "SGD: parameter 0 must be a leaf that requires grad");
  EXPECT_CORTEX_ERROR(SGD({p, mul(p, 2.0)}, {}), "parameter 1 must be a leaf that requires grad");
  EXPECT_CORTEX_ERROR(Adam({p, Tensor()}, {}), "Adam: parameter 1 is undefined");
  EXPECT_CORTEX_ERROR(Adam({zeros({2}, DType::Int64)}, {}), "must be a float tensor, found int64");
  EXPECT_CORTEX_ERROR(AdamW({p, p}, {}), "AdamW: parameters 0 and 1 are the same tensor");
  EXPECT_CORTEX_ERROR(SGD({p, with_grad(detach(p))}, {}), "same tensor");
  EXPECT_CORTEX_ERROR(SGD({p}, {.lr = -0.1}), "learning rate must be finite and >= 0");
  EXPECT_CORTEX_ERROR(SGD({p}, {.lr = 0.1, .nesterov = true}), "nesterov needs momentum > 0");
  EXPECT_CORTEX_ERROR(SGD({p}, {.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .nesterov = true}), "dampening == 0");
  EXPECT_CORTEX_ERROR(SGD({p}, {.momentum = -1}), "momentum must be >= 0");
  EXPECT_CORTEX_ERROR(Adam({p}, {.beta1 = 1.0}), "Adam: beta1 must be in [0, 1)");
  EXPECT_CORTEX_ERROR(Adam({p}, {.beta2 = -0.1}), "beta2 must be in [0, 1)");
  EXPECT_CORTEX_ERROR(AdamW({p}, {.weight_decay = -1}), "AdamW: weight_decay must be >= 0");
  EXPECT_CORTEX_ERROR(Adam({p}, {.eps = -1}), "eps must be >= 0");

  SGD opt({p}, {.lr = 0.1});
  EXPECT_CORTEX_ERROR(opt.set_lr(std::nan("")), "learning rate");
  EXPECT_CORTEX_ERROR(StepLR(opt, 0), "StepLR: step_size must be > 0");
  EXPECT_CORTEX_ERROR(CosineAnnealingLR(opt, 0), "CosineAnnealingLR: t_max must be > 0");
  EXPECT_CORTEX_ERROR(LinearWarmup(opt, 1.5, 3), "start_factor must be in [0, 1]");
  EXPECT_CORTEX_ERROR(LinearWarmup(opt, 0.5, 0), "warmup_steps must be > 0");
  EXPECT_CORTEX_ERROR(MultiStepLR(opt, {-1}), "milestones must be >= 0");
  SGD other({with_grad(randn({2}, 3))}, {.lr = 0.1});
  EXPECT_CORTEX_ERROR(LinearWarmup(opt, 0.5, 2, std::make_unique<StepLR>(other, 2)), "same optimizer");
  StepLR s(opt, 2);
  EXPECT_CORTEX_ERROR(s.set_steps(-1), "must be >= 0");
  // A gradient of the wrong shape (set by hand) is caught, not read out of bounds.
  p.autograd_meta()->grad = zeros({4}, DType::Float64);
  EXPECT_CORTEX_ERROR(opt.step(), "SGD: parameter 0 is float64 [3] but its .grad is float64 [4]");
}

// ---------------------------------------------------------------- the emulated CUDA device

// Adam and AdamW run the fused kernel (kernels/optim.h) on the parameters' device: on emu (strict
// device mode, so no host fallback) the same parameters after several steps as on the CPU, bit
// for bit (the kernels are tested against each other in tests/test_cuda_optim.cpp).
TEST(Optim, AdamAndAdamWOnEmuEqualTheCpu) {
  const Device kEmu = Device::emu();
  kernels::set_strict_device(true);
  for (bool decoupled : {false, true})
    for (DType dt : {DType::Float32, DType::Float64}) {
      const std::vector<Shape> shapes = {{4, 67}, {9}, {}};
      std::vector<Tensor> pc, pe, wc, we;
      for (size_t k = 0; k < shapes.size(); ++k) {
        const Tensor init = randn(shapes[k], 30 + k, dt), w = randn(shapes[k], 40 + k, dt);
        pc.push_back(with_grad(init.clone()));
        pe.push_back(with_grad(init.to(kEmu)));
        wc.push_back(w);
        we.push_back(w.to(kEmu));
      }
      std::unique_ptr<Optimizer> oc, oe;
      if (decoupled) {
        oc = std::make_unique<AdamW>(pc, AdamWOptions{.lr = 0.05, .weight_decay = 0.1});
        oe = std::make_unique<AdamW>(pe, AdamWOptions{.lr = 0.05, .weight_decay = 0.1});
      } else {
        oc = std::make_unique<Adam>(pc, AdamOptions{.lr = 0.05, .weight_decay = 0.1});
        oe = std::make_unique<Adam>(pe, AdamOptions{.lr = 0.05, .weight_decay = 0.1});
      }
      auto step = [](Optimizer& o, const std::vector<Tensor>& ps, const std::vector<Tensor>& ws) {
        o.zero_grad();
        Tensor loss;
        for (size_t k = 0; k < ps.size(); ++k) {
          Tensor l = sum(mul(ws[k], mul(ps[k], ps[k])));
          loss = loss.defined() ? add(loss, l) : l;
        }
        backward(loss);
        o.step();
      };
      for (int s = 0; s < 3; ++s) {
        step(*oc, pc, wc);
        step(*oe, pe, we);
        for (size_t k = 0; k < shapes.size(); ++k) {
          EXPECT_EQ(pe[k].device(), kEmu);
          EXPECT_TRUE(allclose(detach(pe[k]).to(Device::cpu()), detach(pc[k]), 0, 0))
              << (decoupled ? "AdamW " : "Adam ") << dtype_name(dt) << " step " << s << " param " << k;
        }
      }
    }
  kernels::set_strict_device(false);
}
