// Spectral clustering on the emulated CUDA device (analysis/spectral with opt.device): the Nystrom
// (AlignedCut) and exact Ncut give the CPU's eigenvector subspace (smallest principal-angle cosine
// >= 0.9999) and eigenvalues, with every heavy pass on the device: the only host fallbacks allowed
// are the dense eigensolver's (kernels::eigh / eigh_topk, which have no device kernel by design);
// the Lanczos path has none at all. Also the principal-angle helper against closed forms.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "analysis/spectral/eigensolver.h"
#include "analysis/spectral/ncut.h"
#include "analysis/spectral/nystrom.h"
#include "kernels/dispatch.h"
#include "tensor/tensor.h"
#include "tests/test_util.h"

using namespace cortex;
using namespace cortex::analysis::spectral;
namespace K = cortex::kernels;

namespace {

const Device kEmu = Device::emu();

// C planted clusters in R^d: centre (i % C) on the unit sphere plus noise / sqrt(d) * N(0, 1); the
// top C Ncut eigenvalues are well separated from the rest, so the top-C subspace is well defined.
Tensor blobs(int64_t n, int64_t d, int64_t C, double noise, uint64_t seed, DType dt) {
  const std::vector<double> g = cortex::testing::randn({n + C, d}, seed).to_vector<double>();
  std::vector<double> x(n * d);
  for (int64_t c = 0; c < C; ++c) {
    double s = 0;
    for (int64_t j = 0; j < d; ++j) s += g[c * d + j] * g[c * d + j];
    for (int64_t i = c; i < n; i += C)
      for (int64_t j = 0; j < d; ++j)
        x[i * d + j] = g[c * d + j] / std::sqrt(s) + noise / std::sqrt(double(d)) * g[(C + i) * d + j];
  }
  return from_vector(x, {n, d}).to(dt);
}

// Host fallbacks other than the dense eigensolver's, as "op x count" (empty when none).
std::string other_fallbacks() {
  std::string s;
  for (const auto& [op, n] : K::fallback_stats())
    if (op != "eigh" && op != "eigh_topk") s += op + " x" + std::to_string(n) + " ";
  return s;
}

struct Pair {
  NcutResult cpu, emu;
};
Pair both(const Tensor& x, NcutOptions o) {
  Pair r;
  o.device = Device::cpu();
  r.cpu = ncut(x, o);
  K::reset_fallback_stats();
  o.device = kEmu;
  r.emu = ncut(x, o);
  return r;
}

void expect_same_subspace(const Pair& r, double val_tol, const std::string& what) {
  EXPECT_TRUE(r.emu.eigenvectors.device().is_cpu()) << what;
  ASSERT_EQ(r.emu.eigenvectors.shape(), r.cpu.eigenvectors.shape()) << what;
  EXPECT_EQ(r.emu.eigenvectors.dtype(), r.cpu.eigenvectors.dtype()) << what;
  const double c = min_principal_cosine(r.emu.eigenvectors, r.cpu.eigenvectors);
  std::printf("%s: smallest principal-angle cosine emu vs cpu %.12f\n", what.c_str(), c);
  EXPECT_GE(c, 0.9999) << what;
  EXPECT_TRUE(cortex::testing::allclose(r.emu.eigenvalues, r.cpu.eigenvalues, 0, val_tol)) << what;
  EXPECT_EQ(r.emu.sample_indices.to_vector<int64_t>(), r.cpu.sample_indices.to_vector<int64_t>()) << what;
  EXPECT_EQ(r.emu.t, r.cpu.t) << what;
}

}  // namespace

TEST(SpectralDevice, MinPrincipalCosineMatchesClosedForms) {
  // span{e1, e2} vs span{cos a e1 + sin a e3, e2}: principal cosines 1 and cos a
  const double a = 0.3;
  const Tensor p = from_vector(std::vector<double>{1, 0, 0, 1, 0, 0, 0, 0}, {4, 2});
  const Tensor q = from_vector(std::vector<double>{std::cos(a), 0, 0, 1, std::sin(a), 0, 0, 0}, {4, 2});
  EXPECT_NEAR(min_principal_cosine(p, q), std::cos(a), 1e-14);
  // any basis of the same space (signs, order, rotation, scale): 1
  const Tensor r = from_vector(std::vector<double>{2, -3, 1, 5, 0, 0, 0, 0}, {4, 2});
  EXPECT_NEAR(min_principal_cosine(p, r), 1.0, 1e-14);
  // orthogonal spaces: 0; one space inside a larger one: 1
  const Tensor o = from_vector(std::vector<double>{0, 0, 0, 0, 1, 0, 0, 1}, {4, 2});
  EXPECT_NEAR(min_principal_cosine(p, o), 0.0, 1e-14);
  EXPECT_NEAR(min_principal_cosine(p.narrow(1, 0, 1), r.to(DType::Float32)), 1.0, 1e-6);
  cortex::testing::expect_error([&] { min_principal_cosine(p, cortex::testing::randn({5, 2}, 1)); },
                                {"min_principal_cosine: expected a (n, ka) and b (n, kb)"});
}

TEST(SpectralDevice, NystromOnEmuGivesTheCpuSubspace) {
  for (const DType dt : {DType::Float64, DType::Float32})
    for (const Affinity kind : {Affinity::Cosine, Affinity::Rbf}) {
      const Tensor x = blobs(611, 13, 5, 0.6, 7, dt);
      NcutOptions o;
      o.k = 5;
      o.samples = 97;  // <= kDenseMax: the dense solver, kernels::eigh_topk
      o.knn = 7;
      o.affinity = kind;
      o.t = 0;  // automatic: rbf runs the bandwidth search on the sample
      o.chunk = 200;  // several chunks, the last one partial
      const Pair r = both(x, o);
      const std::string what = std::string(dtype_name(dt)) + (kind == Affinity::Cosine ? " cosine" : " rbf");
      expect_same_subspace(r, dt == DType::Float32 ? 1e-5 : 1e-11, what);
      EXPECT_EQ(other_fallbacks(), "") << what;
      EXPECT_GE(K::fallback_stats()["eigh_topk"], 1) << what << ": the dense solver is expected to run on the host";
    }
}

TEST(SpectralDevice, NystromOnEmuWithLanczosHasNoFallback) {
  const Tensor x = blobs(500, 9, 4, 0.5, 3, DType::Float64);
  NcutOptions o;
  o.k = 4;
  o.samples = 150;
  o.knn = 5;
  o.solver = EigSolver::Lanczos;  // products on the device (kernels::matmul)
  o.orthogonalize = true;
  const Pair r = both(x, o);
  expect_same_subspace(r, 1e-8, "lanczos");
  EXPECT_TRUE(K::fallback_stats().empty()) << other_fallbacks();
}

TEST(SpectralDevice, ExactOnEmuGivesTheCpuSubspace) {
  // NCHW features: N = 2 * 9 * 11 nodes
  const Tensor x = blobs(198, 6, 3, 0.5, 5, DType::Float64).reshape({2, 9, 11, 6}).permute({0, 3, 1, 2});
  NcutOptions o;
  o.k = 3;
  o.method = NcutMethod::Exact;
  o.affinity = Affinity::Rbf;
  o.t = 0;  // the sigma search runs on an FPS subsample gathered on the device
  const Pair r = both(x, o);
  expect_same_subspace(r, 1e-11, "exact");
  EXPECT_EQ(other_fallbacks(), "");
}

TEST(SpectralDevice, PropagationOnEmuMatchesCpu) {
  const Tensor x = blobs(203, 8, 3, 0.7, 9, DType::Float64), xs = x.narrow(0, 10, 41);
  const Tensor v = cortex::testing::randn({41, 3}, 4);
  for (const Affinity kind : {Affinity::Cosine, Affinity::Rbf}) {
    const Tensor cpu = propagate_knn(v, x, xs, 6, kind, 0.4, 64);
    K::set_strict_device(true);
    const Tensor emu = propagate_knn(v, x.to(kEmu), xs.to(kEmu), 6, kind, 0.4, 64);
    K::set_strict_device(false);
    EXPECT_EQ(emu.device(), kEmu);
    EXPECT_TRUE(cortex::testing::allclose(emu.to(Device::cpu()), cpu, 1e-12, 1e-12));
  }
}

TEST(SpectralDevice, FowlkesOnADeviceIsRefusedClearly) {
  NcutOptions o;
  o.k = 2;
  o.samples = 20;
  o.method = NcutMethod::Fowlkes;
  o.device = kEmu;
  cortex::testing::expect_error([&] { ncut(blobs(60, 4, 2, 0.5, 1, DType::Float64), o); },
                                {"fowlkes method computes on the CPU only", "emu"});
}
