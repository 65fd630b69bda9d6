// eigh_topk (autograd/ops_linalg.cpp): values against Eigen's SelfAdjointEigenSolver in float64,
// VJP and JVP against central finite differences on matrices with a clear eigengap, the transpose
// identity with non-symmetric tangents, the subspace-projector loss, sign-invariant losses, the
// degenerate cases of docs/autodiff.md 4.12 (what stays finite, what is refused), and bad inputs.
#include <gtest/gtest.h>

// GCC 12's AVX-512 intrinsics trip -Wmaybe-uninitialized inside Eigen (GCC bug 105593).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <Eigen/Dense>
#include <cmath>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "tests/test_util.h"

using namespace cortex;
using cortex::testing::allclose;
using cortex::testing::noncontig;
using cortex::testing::randn;

namespace {
using MatD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

MatD to_eigen(const Tensor& t) {
  const std::vector<double> v = t.to(DType::Float64).contiguous().to_vector<double>();
  return Eigen::Map<const MatD>(v.data(), t.size(0), t.size(1));
}
Tensor from_eigen(const MatD& m) {
  std::vector<double> v(m.data(), m.data() + m.size());
  return from_vector(v, {m.rows(), m.cols()}, DType::Float64);
}

// Q diag(d) Q^T with a seeded random orthogonal Q: a symmetric matrix with the eigenvalues d.
Tensor with_spectrum(const std::vector<double>& d, uint64_t seed) {
  const int64_t n = static_cast<int64_t>(d.size());
  Eigen::HouseholderQR<MatD> qr(to_eigen(randn({n, n}, seed)));
  MatD q = qr.householderQ();
  Eigen::VectorXd dv = Eigen::Map<const Eigen::VectorXd>(d.data(), n);
  MatD a = q * dv.asDiagonal() * q.transpose();
  return from_eigen((a + a.transpose()) / 2);
}

Tensor sym(const Tensor& x) { return mul(add(x, x.t()), 0.5); }

// X -> eigh_topk(sym(X), k): the function gradcheck perturbs one entry at a time (eigh_topk itself
// accepts only symmetric matrices).
Fn topk_fn(int64_t k) {
  return [k](const std::vector<Tensor>& x) {
    kernels::Eigh e = eigh_topk(sym(x[0]), k);
    return std::vector<Tensor>{e.values, e.vectors};
  };
}

// |V_a V_a^T - V_b V_b^T|_F^2: rotation- and sign-invariant (the eigen-constraint's form).
Tensor projector_loss(const Tensor& va, const Tensor& vb) {
  return sum(square(sub(matmul(va, va.t()), matmul(vb, vb.t()))));
}
}  // namespace

TEST(EighTopK, ValuesMatchEigen) {
  for (int64_t n : {1, 2, 7, 12}) {
    Tensor x = randn({n, n}, 10 + n);
    Tensor a = sym(x);
    Eigen::SelfAdjointEigenSolver<MatD> es(to_eigen(a));
    for (int64_t k : {int64_t(1), n / 2 + 1, n}) {
      if (k > n) continue;
      kernels::Eigh e = eigh_topk(noncontig(a), k);
      ASSERT_EQ(e.values.shape(), Shape({k}));
      ASSERT_EQ(e.vectors.shape(), Shape({n, k}));
      for (int64_t i = 0; i < k; ++i) {
        EXPECT_NEAR(e.values.at({i}), es.eigenvalues()(n - 1 - i), 1e-12) << "n " << n << " k " << k << " i " << i;
        // The same vector up to sign; the sign rule makes the column sum positive.
        double dot = 0, s = 0;
        for (int64_t r = 0; r < n; ++r) {
          dot += e.vectors.at({r, i}) * es.eigenvectors()(r, n - 1 - i);
          s += e.vectors.at({r, i});
        }
        EXPECT_NEAR(std::abs(dot), 1.0, 1e-10);
        EXPECT_GT(s, 0.0);
      }
    }
  }
  // float32 agrees with float64 to its precision.
  Tensor a = with_spectrum({4, 2.5, 1, 0.2, -1}, 3);
  kernels::Eigh e64 = eigh_topk(a, 3), e32 = eigh_topk(a.to(DType::Float32), 3);
  EXPECT_EQ(e32.values.dtype(), DType::Float32);
  EXPECT_TRUE(allclose(e32.values, e64.values, 1e-5, 1e-5));
  EXPECT_TRUE(allclose(e32.vectors, e64.vectors, 1e-4, 1e-5));
}

TEST(EighTopK, GradcheckWithEigengap) {
  // Well-separated eigenvalues (smallest gap 0.5), several k, the complement term included.
  Tensor a = with_spectrum({5, 3.5, 2.5, 1, 0.3, -0.5, -1.7}, 7);
  GradcheckOptions o;
  o.atol = 1e-6;
  o.rtol = 1e-5;
  for (int64_t k : {1, 2, 4, 7}) {
    SCOPED_TRACE("k " + std::to_string(k));
    EXPECT_GRADCHECK(topk_fn(k), {a}, o);
  }
  // A general (random) symmetric matrix, non-contiguous, with the batched modes (35 + 5 outputs).
  Tensor r = with_spectrum({2, 1.2, 0.1, -0.6, -1.5}, 8);
  EXPECT_GRADCHECK(topk_fn(3), {noncontig(r)}, o);
  // n = 1: the value is a itself, the vector +1.
  EXPECT_GRADCHECK(topk_fn(1), {randn({1, 1}, 9)}, o);
}

TEST(EighTopK, TransposeIdentityAndSymmetricConvention) {
  // <glam, dlam> + <gV, dV> from the JVP with a non-symmetric tangent T equals <gA, T> from the
  // VJP; gA is symmetric, and the JVP of T equals that of (T + T^T) / 2.
  Tensor a = with_spectrum({3, 2, 1, 0, -1, -2}, 11);
  const int64_t k = 3;
  Tensor t = randn({6, 6}, 12), gl = randn({k}, 13), gv = randn({6, k}, 14);
  auto f = [k](const std::vector<Tensor>& x) {
    kernels::Eigh e = eigh_topk(x[0], k);
    return std::vector<Tensor>{e.values, e.vectors};
  };
  JvpResult j = jvp(f, {a}, {t});
  JvpResult js = jvp(f, {a}, {sym(t)});
  EXPECT_TRUE(allclose(j.tangents[0], js.tangents[0], 1e-12, 1e-12));
  EXPECT_TRUE(allclose(j.tangents[1], js.tangents[1], 1e-12, 1e-12));
  VjpResult v = vjp(f, {a});
  Tensor ga = v.pullback({gl, gv})[0];
  EXPECT_TRUE(allclose(ga, ga.t().contiguous(), 0, 1e-14));
  const double lhs = sum(mul(gl, j.tangents[0])).item() + sum(mul(gv, j.tangents[1])).item();
  const double rhs = sum(mul(ga, t)).item();
  EXPECT_NEAR(lhs, rhs, 1e-12 * (1 + std::abs(rhs)));
  // The eigenvectors' tangent stays orthogonal to its own vector (unit norm is kept) and the
  // eigenvalues' tangent is v_i^T S v_i.
  kernels::Eigh e = eigh_topk(a, k);
  Tensor vs = matmul(e.vectors.t(), matmul(sym(t), e.vectors));
  for (int64_t i = 0; i < k; ++i) {
    EXPECT_NEAR(j.tangents[0].at({i}), vs.at({i, i}), 1e-12);
    double d = 0;
    for (int64_t r = 0; r < 6; ++r) d += e.vectors.at({r, i}) * j.tangents[1].at({r, i});
    EXPECT_NEAR(d, 0.0, 1e-12);
  }
}

TEST(EighTopK, ProjectorLossGradient) {
  // The eigen-constraint's loss |V_a V_a^T - V_b V_b^T|^2 between two matrices' top-3 subspaces,
  // differentiated w.r.t. both, against finite differences.
  Tensor a = with_spectrum({4, 3, 2.2, 0.5, 0.1, -0.8}, 21);
  Tensor b = with_spectrum({3.5, 2.5, 2, 0.4, -0.2, -1}, 22);
  auto loss = Fn([](const std::vector<Tensor>& x) {
    return std::vector<Tensor>{projector_loss(eigh_topk(sym(x[0]), 3).vectors, eigh_topk(sym(x[1]), 3).vectors)};
  });
  EXPECT_GRADCHECK(loss, {a, b});
  // A closed form: d/dA |P_A - P_B|^2 at A = B is 0 (a minimum).
  Tensor aw = with_grad(a);
  backward(projector_loss(eigh_topk(aw, 3).vectors, eigh_topk(a, 3).vectors));
  EXPECT_LT(amax(abs(grad_of(aw))).item(), 1e-12);
}

TEST(EighTopK, SignInvariantLosses) {
  // Losses that do not see each eigenvector's sign: sum_i (v_i^T c)^2, sum v^4, and a weighted
  // eigenvalue sum; gradchecked, and the same gradient when the vectors' signs are flipped.
  Tensor a = with_spectrum({6, 4, 2.5, 1.5, 0, -1, -2.5}, 31);
  Tensor c = randn({7, 1}, 32);
  auto loss = Fn([c](const std::vector<Tensor>& x) {
    kernels::Eigh e = eigh_topk(sym(x[0]), 4);
    Tensor proj = matmul(e.vectors.t(), c);
    return std::vector<Tensor>{add(add(sum(square(proj)), sum(pow(e.vectors, 4.0))),
                                   sum(mul(e.values, from_vector(std::vector<double>{1, 0.5, -2, 3}))))};
  });
  EXPECT_GRADCHECK(loss, {a});
  // Flipping a sign of V in the loss leaves the gradient unchanged.
  Tensor x1 = with_grad(a), x2 = with_grad(a);
  backward(sum(square(matmul(eigh_topk(x1, 4).vectors.t(), c))));
  Tensor flip = from_vector(std::vector<double>{-1, 1, -1, -1}).unsqueeze(0);
  backward(sum(square(matmul(mul(eigh_topk(x2, 4).vectors, flip).t(), c))));
  EXPECT_TRUE(allclose(grad_of(x1), grad_of(x2), 1e-12, 1e-14));
}

TEST(EighTopK, DegenerateInsideTopK) {
  // lambda_1 = lambda_2 exactly: the vectors are not unique, the subspace is. The projector loss's
  // gradient is finite and passes finite differences; a loss of one vector is refused.
  Tensor a = with_spectrum({3, 3, 1.5, 0.5, -1}, 41);
  Tensor b = with_spectrum({2, 1.6, 1, 0, -0.5}, 42);
  auto loss = Fn([b](const std::vector<Tensor>& x) {
    return std::vector<Tensor>{projector_loss(eigh_topk(sym(x[0]), 3).vectors, eigh_topk(b, 3).vectors)};
  });
  GradcheckOptions o;
  o.atol = 1e-5;
  EXPECT_GRADCHECK(loss, {a}, o);
  Tensor aw = with_grad(a);
  cortex::testing::expect_error([&] { backward(sum(eigh_topk(aw, 3).vectors.select(1, 0))); },
                        {"eigh_topk", "gradient does not exist", "eigenvalues 1 and 2"});
  // The zero matrix, every eigenvalue equal, k = n: the eigenvalue sum's gradient is V V^T = I.
  Tensor z = with_grad(zeros({3, 3}, DType::Float64));
  backward(sum(eigh_topk(z, 3).values));
  EXPECT_TRUE(allclose(grad_of(z), eye(3, 3, DType::Float64), 1e-12, 1e-12));
}

TEST(EighTopK, DegenerateAtTheCutIsRefused) {
  // lambda_2 = lambda_3 with k = 2: the top-2 subspace is not even continuous there.
  Tensor a = with_spectrum({3, 2, 2, 0.5}, 51);
  Tensor aw = with_grad(a);
  Tensor b = with_spectrum({3, 1, 0.5, 0}, 52);
  cortex::testing::expect_error([&] { backward(projector_loss(eigh_topk(aw, 2).vectors, eigh_topk(b, 2).vectors)); },
                        {"eigh_topk", "not differentiable", "eigenvalue 2", "eigenvalue 3", "eigengap"});
  cortex::testing::expect_error([&] { jvp(topk_fn(2), {a}, {randn({4, 4}, 53)}); }, {"eigh_topk", "not differentiable"});
  // k = 1 or 3 sits at a gap: fine.
  EXPECT_GRADCHECK(topk_fn(1), {a});
}

TEST(EighTopK, SecondOrderRefused) {
  Tensor a = with_spectrum({3, 1, 0}, 61);
  auto f = [](const Tensor& x) { return sum(pow(eigh_topk(sym(x), 2).vectors, 3.0)); };
  cortex::testing::expect_error([&] { hessian(f, a); }, {"eigh_topk", "second derivatives"});
  Tensor aw = with_grad(a);
  cortex::testing::expect_error([&] { grad({f(aw)}, {aw}, {}, /*create_graph=*/true); }, {"eigh_topk", "second derivatives"});
}

TEST(EighTopK, EmptyAndErrors) {
  // k = 0: empty results, zero gradient.
  Tensor a = with_grad(with_spectrum({1, 0}, 71));
  kernels::Eigh e = eigh_topk(a, 0);
  EXPECT_EQ(e.values.shape(), Shape({0}));
  EXPECT_EQ(e.vectors.shape(), Shape({2, 0}));
  backward(add(sum(e.values), sum(e.vectors)));
  EXPECT_TRUE(allclose(grad_of(a), zeros({2, 2}, DType::Float64)));
  Tensor n0 = zeros({0, 0}, DType::Float64);
  EXPECT_EQ(eigh_topk(n0, 0).vectors.shape(), Shape({0, 0}));
  EXPECT_CORTEX_ERROR(eigh_topk(randn({3, 4}, 1), 1), "square (n, n)");
  EXPECT_CORTEX_ERROR(eigh_topk(randn({3}, 1), 1), "square (n, n)");
  EXPECT_CORTEX_ERROR(eigh_topk(Tensor(), 1), "undefined");
  EXPECT_CORTEX_ERROR(eigh_topk(sym(randn({3, 3}, 1)), 4), "k in [0, 3]");
  EXPECT_CORTEX_ERROR(eigh_topk(sym(randn({3, 3}, 1)), -1), "found k = -1");
  EXPECT_CORTEX_ERROR(eigh_topk(randn({3, 3}, 2), 1), "symmetric");
  Tensor bad = sym(randn({3, 3}, 3));
  bad.fill_(std::nan(""));
  EXPECT_CORTEX_ERROR(eigh_topk(bad, 1), "NaN");
}
