// The linear algebra kernels of kernels/cuda/linalg.cu on the emulated CUDA device: cholesky and
// cholesky_solve, against the CPU kernels (Eigen) and a float64 reference (L L^T = A, A X = B
// checked in float64 loops), over odd n (1, 7, 65, 200), batches, vector and many right-hand
// sides, non-contiguous and expanded (stride-0) views, float32 and float64, and the CPU's
// one-line errors (non-finite, asymmetric, not positive definite, zero diagonal). The kernels use
// another order of arithmetic than Eigen's blocked LLT, so they match the CPU to a stated
// tolerance, not bit for bit; they are deterministic, so every schedule order gives the same
// bits. Strict device mode is on: a host fallback fails the test. eigh, eigh_topk, svd, qr and
// solve have no kernel here and fall back by design (checked at the end).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/cuda/simt/runtime.h"
#include "kernels/dispatch.h"
#include "kernels/linalg.h"
#include "kernels/matmul.h"
#include "tests/cuda_test_util.h"
#include "tests/test_util.h"

using namespace cortex;
namespace K = cortex::kernels;
using cortex::testing::noncontig;
using cortex::testing::randn;

namespace {

const Device kEmu = Device::emu();

class CudaLinalg : public cortex::testing::StrictEmuTest {};

std::vector<double> host64(const Tensor& t) { return t.to(Device::cpu()).to(DType::Float64).contiguous().to_vector<double>(); }

// A (batch..., n, n) symmetric positive definite matrix: X X^T / n + I, X (n, n + 3), in dtype dt.
Tensor spd(const Shape& batch, int64_t n, uint64_t seed, DType dt) {
  Shape xs = batch;
  xs.push_back(n);
  xs.push_back(n + 3);
  const Tensor x = randn(xs, seed);
  Tensor a = K::matmul(x, x.transpose(-1, -2));
  std::vector<double> v = a.contiguous().to_vector<double>();
  const int64_t count = static_cast<int64_t>(v.size()) / (n * n);
  for (int64_t b = 0; b < count; ++b)
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double& e = v[b * n * n + i * n + j];
        e = e / static_cast<double>(n) + (i == j ? 1.0 : 0.0);
      }
  for (int64_t b = 0; b < count; ++b)  // exactly symmetric
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < i; ++j) v[b * n * n + j * n + i] = v[b * n * n + i * n + j];
  return from_vector(v, a.shape(), DType::Float64).to(dt);
}

// max over the batch of |L L^T - A| / max |A|, in float64 loops; L must be lower triangular.
double factor_error(const Tensor& l, const Tensor& a, int64_t n) {
  const std::vector<double> lv = host64(l), av = host64(a);
  double err = 0, scale = 0;
  const int64_t count = n ? static_cast<int64_t>(av.size()) / (n * n) : 0;
  for (int64_t b = 0; b < count; ++b) {
    const double* L = lv.data() + b * n * n;
    const double* A = av.data() + b * n * n;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) {
        if (j > i && L[i * n + j] != 0) return INFINITY;  // not lower triangular
        double s = 0;
        for (int64_t p = 0; p <= std::min(i, j); ++p) s += L[i * n + p] * L[j * n + p];
        err = std::max(err, std::abs(s - A[i * n + j]));
        scale = std::max(scale, std::abs(A[i * n + j]));
      }
  }
  return scale > 0 ? err / scale : err;
}

// max over the batch of |A X - B| / (max |A| max |X| n), float64 loops. b and x (..., n, k) or (..., n).
double solve_error(const Tensor& a, const Tensor& x, const Tensor& b, int64_t n) {
  const std::vector<double> av = host64(a), xv = host64(x), bv = host64(b);
  const int64_t count = static_cast<int64_t>(av.size()) / (n * n);
  const int64_t k = static_cast<int64_t>(bv.size()) / (count * n);
  double err = 0, sa = 0, sx = 0;
  for (double v : av) sa = std::max(sa, std::abs(v));
  for (double v : xv) sx = std::max(sx, std::abs(v));
  for (int64_t c = 0; c < count; ++c)
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < k; ++j) {
        double s = 0;
        for (int64_t p = 0; p < n; ++p) s += av[c * n * n + i * n + p] * xv[c * n * k + p * k + j];
        err = std::max(err, std::abs(s - bv[c * n * k + i * k + j]));
      }
  return err / (sa * sx * static_cast<double>(n));
}

bool bit_identical(const Tensor& a, const Tensor& b) {
  const Tensor x = a.to(Device::cpu()).contiguous(), y = b.to(Device::cpu()).contiguous();
  return x.shape() == y.shape() && std::memcmp(x.raw_data(), y.raw_data(), x.numel() * x.element_size()) == 0;
}

// Rounding bound relative to the problem's scale: n eps, with a floor.
double tol(DType dt, int64_t n) {
  const double eps = dt == DType::Float32 ? 1.2e-7 : 2.2e-16;
  return 8 * eps * static_cast<double>(std::max<int64_t>(n, 4));
}

// Runs f in forward, reverse and random schedule order; the results must be bit-identical.
template <class F>
Tensor in_every_order(F&& f) {
  const Tensor first = f();
  for (auto order : {cortex::simt::Order::reverse, cortex::simt::Order::random}) {
    cortex::simt::set_schedule({order, 99});
    const Tensor again = f();
    cortex::simt::clear_schedule();
    EXPECT_TRUE(bit_identical(again, first)) << "schedule order " << static_cast<int>(order);
  }
  return first;
}

}  // namespace

TEST_F(CudaLinalg, CholeskyMatchesCpuAndReferenceAtOddSizes) {
  for (DType dt : {DType::Float32, DType::Float64})
    for (int64_t n : {1, 7, 65, 200}) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " n=" + std::to_string(n));
      const Tensor a = spd({}, n, 10 + n, dt);
      const Tensor le = n <= 65 ? in_every_order([&] { return K::cholesky(a.to(kEmu)); }) : K::cholesky(a.to(kEmu));
      ASSERT_EQ(le.device(), kEmu);
      ASSERT_EQ(le.shape(), (Shape{n, n}));
      EXPECT_LE(factor_error(le, a, n), tol(dt, n));
      const Tensor lc = K::cholesky(a);
      EXPECT_TRUE(cortex::testing::allclose(le.to(Device::cpu()), lc, 50 * tol(dt, n), 50 * tol(dt, n)));
    }
}

TEST_F(CudaLinalg, CholeskyBatchedAndStrided) {
  for (DType dt : {DType::Float32, DType::Float64}) {
    const Tensor a = spd({2, 3}, 9, 7, dt);
    const Tensor lc = K::cholesky(a);  // the CPU's batch
    const Tensor le = in_every_order([&] { return K::cholesky(a.to(kEmu)); });
    EXPECT_EQ(le.shape(), (Shape{2, 3, 9, 9}));
    EXPECT_LE(factor_error(le, a, 9), tol(dt, 9));
    EXPECT_TRUE(cortex::testing::allclose(le.to(Device::cpu()), lc, 1e3 * tol(dt, 9), 1e3 * tol(dt, 9)));
    // the CPU's batch is its 2-D kernel per matrix
    EXPECT_TRUE(bit_identical(lc.select(0, 1).select(0, 2), K::cholesky(a.select(0, 1).select(0, 2))));
    // a gapped view, a transposed one (the same matrix: symmetric) and an expanded batch
    const Tensor m = a.select(0, 0).select(0, 1);
    const Tensor want = K::cholesky(m.to(kEmu));
    EXPECT_TRUE(bit_identical(K::cholesky(noncontig(m.to(kEmu))), want));
    EXPECT_TRUE(bit_identical(K::cholesky(m.to(kEmu).t()), want));
    const Tensor ex = K::cholesky(m.to(kEmu).unsqueeze(0).expand({4, 9, 9}));
    for (int64_t i = 0; i < 4; ++i) EXPECT_TRUE(bit_identical(ex.select(0, i), want));
  }
  // empty batch and n = 0
  EXPECT_EQ(K::cholesky(empty({0, 5, 5}, DType::Float32, kEmu)).shape(), (Shape{0, 5, 5}));
  EXPECT_EQ(K::cholesky(empty({3, 0, 0}, DType::Float64, kEmu)).shape(), (Shape{3, 0, 0}));
}

TEST_F(CudaLinalg, CholeskyErrorsAreTheCpus) {
  for (DType dt : {DType::Float32, DType::Float64}) {
    auto same_error = [&](const Tensor& a, const std::string& needle) {
      std::string cpu, emu;
      try {
        K::cholesky(a);
      } catch (const Error& e) {
        cpu = e.what();
      }
      try {
        K::cholesky(a.to(kEmu));
      } catch (const Error& e) {
        emu = e.what();
      }
      EXPECT_NE(cpu.find(needle), std::string::npos) << cpu;
      EXPECT_EQ(emu, cpu);
    };
    std::vector<double> v{4, 1, 1, 3};
    Tensor a = from_vector(v, {2, 2}, DType::Float64).to(dt);
    v[1] = NAN;
    same_error(from_vector(v, {2, 2}, DType::Float64).to(dt), "expected finite values in a");
    v = {4, 1, 2, 3};
    same_error(from_vector(v, {2, 2}, DType::Float64).to(dt), "expected a symmetric matrix, found |a - a^T| up to 1");
    v = {1, 2, 2, 1};  // indefinite
    same_error(from_vector(v, {2, 2}, DType::Float64).to(dt), "symmetric positive definite");
    // the second matrix of a batch is singular
    Tensor b = spd({3}, 6, 3, dt);
    b.select(0, 1).copy_(zeros({6, 6}, dt));
    same_error(b, "found a non-positive pivot");
    (void)a;
  }
}

TEST_F(CudaLinalg, CholeskySolveMatchesCpuAndReference) {
  for (DType dt : {DType::Float32, DType::Float64})
    for (int64_t n : {1, 7, 65, 200}) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " n=" + std::to_string(n));
      const Tensor a = spd({}, n, 40 + n, dt);
      const Tensor l = K::cholesky(a);
      for (int64_t k : {int64_t{1}, int64_t{3}, int64_t{130}}) {
        const Tensor b = randn({n, k}, 50 + k, dt);
        const Tensor xe = n <= 65 ? in_every_order([&] { return K::cholesky_solve(l.to(kEmu), b.to(kEmu)); })
                                  : K::cholesky_solve(l.to(kEmu), b.to(kEmu));
        ASSERT_EQ(xe.device(), kEmu);
        ASSERT_EQ(xe.shape(), (Shape{n, k}));
        EXPECT_LE(solve_error(a, xe, b, n), tol(dt, n)) << "k=" << k;
        const Tensor xc = K::cholesky_solve(l, b);
        EXPECT_LE(solve_error(a, xc, b, n), tol(dt, n)) << "cpu, k=" << k;
      }
      // a vector right-hand side
      const Tensor bv = randn({n}, 60, dt);
      const Tensor xv = K::cholesky_solve(l.to(kEmu), bv.to(kEmu));
      EXPECT_EQ(xv.shape(), (Shape{n}));
      EXPECT_LE(solve_error(a, xv, bv, n), tol(dt, n));
    }
}

TEST_F(CudaLinalg, CholeskySolveBatchedStridedAndExpanded) {
  for (DType dt : {DType::Float32, DType::Float64}) {
    const Tensor a = spd({2, 2}, 11, 5, dt);
    const Tensor l = K::cholesky(a);
    const Tensor b = randn({2, 2, 11, 5}, 6, dt);
    const Tensor xe = in_every_order([&] { return K::cholesky_solve(l.to(kEmu), b.to(kEmu)); });
    EXPECT_LE(solve_error(a, xe, b, 11), tol(dt, 11));
    const Tensor xc = K::cholesky_solve(l, b);
    EXPECT_TRUE(cortex::testing::allclose(xe.to(Device::cpu()), xc, 1e3 * tol(dt, 11), 1e3 * tol(dt, 11)));
    // gapped l and b, a transposed b (columns of a (k, n) matrix), one b expanded over the batch
    EXPECT_TRUE(bit_identical(K::cholesky_solve(noncontig(l.to(kEmu)), noncontig(b.to(kEmu))), xe));
    const Tensor bt = b.transpose(-1, -2).contiguous().to(kEmu).transpose(-1, -2);
    EXPECT_TRUE(bit_identical(K::cholesky_solve(l.to(kEmu), bt), xe));
    const Tensor one = b.select(0, 0).select(0, 0);
    const Tensor xexp = K::cholesky_solve(l.to(kEmu), one.to(kEmu).expand({2, 2, 11, 5}));
    EXPECT_TRUE(cortex::testing::allclose(xexp.to(Device::cpu()), K::cholesky_solve(l, one.expand({2, 2, 11, 5})),
                                          1e3 * tol(dt, 11), 1e3 * tol(dt, 11)));
    // batched vector right-hand sides (..., n)
    const Tensor bv = randn({2, 2, 11}, 8, dt);
    const Tensor xv = K::cholesky_solve(l.to(kEmu), bv.to(kEmu));
    EXPECT_EQ(xv.shape(), (Shape{2, 2, 11}));
    EXPECT_TRUE(cortex::testing::allclose(xv.to(Device::cpu()), K::cholesky_solve(l, bv), 1e3 * tol(dt, 11),
                                          1e3 * tol(dt, 11)));
  }
  EXPECT_EQ(K::cholesky_solve(empty({0, 4, 4}, DType::Float32, kEmu), empty({0, 4, 2}, DType::Float32, kEmu)).shape(),
            (Shape{0, 4, 2}));
  EXPECT_EQ(K::cholesky_solve(eye(3, -1, DType::Float32).to(kEmu), empty({3, 0}, DType::Float32, kEmu)).shape(),
            (Shape{3, 0}));
}

TEST_F(CudaLinalg, CholeskySolveErrorsAreTheCpus) {
  for (DType dt : {DType::Float32, DType::Float64}) {
    auto same_error = [&](const Tensor& l, const Tensor& b, const std::string& needle) {
      std::string cpu, emu;
      try {
        K::cholesky_solve(l, b);
      } catch (const Error& e) {
        cpu = e.what();
      }
      try {
        K::cholesky_solve(l.to(kEmu), b.to(kEmu));
      } catch (const Error& e) {
        emu = e.what();
      }
      EXPECT_NE(cpu.find(needle), std::string::npos) << cpu;
      EXPECT_EQ(emu, cpu);
    };
    const Tensor l = eye(3, -1, dt);
    const Tensor b = randn({3, 2}, 1, dt);
    Tensor bad = b.clone();
    bad.select(0, 1).select(0, 0).copy_(full({}, INFINITY, dt));
    same_error(l, bad, "expected finite values in b");
    Tensor lz = l.clone();
    lz.select(0, 2).select(0, 2).copy_(zeros({}, dt));
    same_error(lz, b, "non-zero diagonal");
    Tensor ln = l.clone();
    ln.select(0, 0).select(0, 2).copy_(full({}, NAN, dt));  // above the diagonal: still read and refused
    same_error(ln, b, "expected finite values in l");
    Tensor tiny = l.clone();
    tiny.select(0, 0).select(0, 0).copy_(full({}, dt == DType::Float32 ? 1e-30 : 1e-300, dt));
    same_error(tiny, full({3, 2}, dt == DType::Float32 ? 1e30 : 1e300, dt), "the solution overflowed");
  }
  // shapes: the batch dims must agree
  EXPECT_CORTEX_ERROR(K::cholesky_solve(empty({2, 3, 3}, DType::Float32, kEmu), empty({3, 3, 1}, DType::Float32, kEmu)),
                      "cholesky_solve: expected b of shape [2] + (3) or (3, k)");
  EXPECT_CORTEX_ERROR(K::cholesky(empty({2, 3, 4}, DType::Float32, kEmu)), "cholesky: expected a to be square");
}

// The other linalg ops have no kernel (by design, issue 13): strict mode refuses them on emu.
TEST_F(CudaLinalg, OnlyTheFactorisationsRunOnEmu) {
  const Tensor a = spd({}, 4, 2, DType::Float64).to(kEmu);
  EXPECT_CORTEX_ERROR(K::eigh(a), "strict device mode");
  EXPECT_CORTEX_ERROR(K::eigh_topk(a, 2, true), "strict device mode");
  EXPECT_CORTEX_ERROR(K::svd(a), "strict device mode");
  EXPECT_CORTEX_ERROR(K::qr(a), "strict device mode");
  EXPECT_CORTEX_ERROR(K::solve(a, a), "strict device mode");
  K::set_strict_device(false);
  K::reset_fallback_stats();
  const K::Eigh e = K::eigh(a);  // the CPU kernel on the emu tensor's memory, counted
  EXPECT_EQ(e.values.device(), kEmu);
  EXPECT_EQ(K::fallback_stats().at("eigh"), 1);
}
