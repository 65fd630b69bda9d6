// LinBridge's learned compressor (analysis/linbridge_down.h; docs/linbridge.md, "The learned
// compressor (JM_down)").
#include "analysis/linbridge_down.h"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "autograd/autograd.h"
#include "autograd/losses.h"
#include "autograd/ops.h"
#include "autograd/optim.h"
#include "kernels/cpu/parallel.h"
#include "tensor/error.h"
#include "tensor/random.h"

namespace cortex::analysis {

namespace {
using RowMat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using RowMatF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

RowMat to_mat(const Tensor& t, int64_t rows, int64_t cols) {
  const Tensor c = t.to(DType::Float64).contiguous();
  return Eigen::Map<const RowMat>(c.data<double>(), rows, cols);
}
}  // namespace

Tensor sketch_projection(int64_t F, int64_t S, uint64_t seed) {
  CORTEX_CHECK(F >= 1 && S >= 1, "sketch_projection: expected F >= 1 and S >= 1, found ", F, " and ", S);
  Generator g(seed);
  return randn({F, S}, g, 0.0, 1.0 / std::sqrt(double(S)), DType::Float64);
}

Tensor sketch_two_layer(const TwoLayerParams& p, const Tensor& Z, const Tensor& P) {
  CORTEX_CHECK(p.W1.defined() && p.W2.defined() && p.W1.dim() == 2 && p.W2.dim() == 2 && p.b1.numel() == p.W1.size(0) &&
                   p.W2.size(1) == p.W1.size(0),
               "sketch_two_layer: expected W1 (H, F), b1 (H), W2 (V, H)");
  const int64_t H = p.W1.size(0), F = p.W1.size(1), V = p.W2.size(0);
  CORTEX_CHECK(Z.defined() && Z.dim() == 2 && Z.size(1) == F, "sketch_two_layer: expected Z (N, ", F, "), found ",
               Z.defined() ? shape_str(Z.shape()) : "undefined");
  CORTEX_CHECK(P.defined() && P.dim() == 2 && P.size(0) == F, "sketch_two_layer: expected P (", F, ", S), found ",
               P.defined() ? shape_str(P.shape()) : "undefined");
  const int64_t N = Z.size(0), S = P.size(1);
  const RowMat W1 = to_mat(p.W1, H, F), W2 = to_mat(p.W2, V, H), Zm = to_mat(Z, N, F);
  const Eigen::RowVectorXd b1 = to_mat(p.b1, 1, H);
  const RowMat W1P = W1 * to_mat(P, F, S);  // (H, S)
  Tensor out = empty({N, V, S}, DType::Float32);
  float* po = out.data<float>();
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const Eigen::RowVectorXd h = Zm.row(n) * W1.transpose() + b1;
    Eigen::VectorXd sp(H);
    for (int64_t k = 0; k < H; ++k) {
      const double s = 1.0 / (1.0 + std::exp(-h[k]));
      sp[k] = s * (1.0 - s);
    }
    Eigen::Map<RowMatF>(po + n * V * S, V, S) = (W2 * (sp.asDiagonal() * W1P)).cast<float>();
  }
  return out;
}

void add_sketch(Tensor& sk, const JacobianPiece& p, const Tensor& P) {
  CORTEX_CHECK(sk.defined() && sk.dim() == 3 && sk.dtype() == DType::Float64 && sk.is_contiguous() && P.defined() &&
                   P.dim() == 2 && P.dtype() == DType::Float64 && P.is_contiguous() && P.size(1) == sk.size(2),
               "add_sketch: expected float64 sketches (N, V, S) and projection (F, S)");
  const int64_t V = sk.size(1), S = sk.size(2), F = P.size(0);
  CORTEX_CHECK(p.first >= 0 && p.first + p.count <= sk.size(0) && p.width == (p.forward ? V : F),
               "add_sketch: the piece does not fit sketches ", shape_str(sk.shape()), " and projection ",
               shape_str(P.shape()));
  double* out = sk.data<double>();
  const Eigen::Map<const RowMat> Pm(P.data<double>(), F, S);
  for (int64_t i = 0; i < p.k; ++i)
    for (int64_t n = 0; n < p.count; ++n) {
      const Eigen::Map<const Eigen::RowVectorXd> row(p.data + (i * p.count + n) * p.width, p.width);
      Eigen::Map<RowMat> dst(out + (p.first + n) * V * S, V, S);
      if (p.forward)  // row[v] = J[v, j0 + i]: an outer product with P's row j0 + i
        dst.noalias() += row.transpose() * Pm.row(p.j0 + i);
      else  // row = J[j0 + i, :]
        dst.row(p.j0 + i).noalias() += row * Pm;
    }
}

DownResult linbridge_down(const Tensor& sketches, const Tensor& pred, const DownOptions& opt) {
  CORTEX_CHECK(sketches.defined() && sketches.dim() == 3 && sketches.size(0) >= 2 && is_floating(sketches.dtype()),
               "linbridge_down: expected float sketches (N >= 2, V, S), found ",
               sketches.defined() ? shape_str(sketches.shape()) : "undefined");
  const int64_t N = sketches.size(0), V = sketches.size(1), S = sketches.size(2);
  CORTEX_CHECK(pred.defined() && pred.shape() == Shape({N, V}), "linbridge_down: expected predictions (", N, ", ", V,
               "), found ", pred.defined() ? shape_str(pred.shape()) : "undefined");
  CORTEX_CHECK(opt.hidden >= 1 && opt.dim >= 1 && opt.steps >= 0 && opt.batch >= 2 && opt.temperature > 0 && opt.lr > 0,
               "linbridge_down: expected hidden, dim >= 1, steps >= 0, batch >= 2, temperature and lr > 0");
  const int64_t D = opt.dim;
  // One thread throughout: the training's ops are small (a batch of 256 rows of 32), where a
  // parallel region per op costs more than it saves, and a busy shared core makes each region wait
  // for a descheduled thread (measured on the 2-core build machine under load: 32 s with 2 threads
  // against 1.5 s with one, for N = 30 stimuli and 24 voxels). Eigen runs serially too
  // (kernels/cpu/parallel.h), so the scores do not depend on the thread count.
  const int saved_threads = omp_get_max_threads();
  omp_set_num_threads(1);
  struct Restore {
    int n;
    ~Restore() { omp_set_num_threads(n); }
  } restore{saved_threads};
  parallel::SerialEigen serial;

  // Scale each voxel's sketches by the norm of their mean (its inherent sketch), so the MLP sees
  // relative changes and voxels of any gain alike; a voxel whose mean sketch is 0 is left out.
  RowMat X = to_mat(sketches, N * V, S);
  std::vector<int64_t> active;
  for (int64_t v = 0; v < V; ++v) {
    Eigen::RowVectorXd m = Eigen::RowVectorXd::Zero(S);
    for (int64_t n = 0; n < N; ++n) m += X.row(n * V + v);
    const double c = m.norm() / double(N);
    if (c > 0 && std::isfinite(c)) {
      for (int64_t n = 0; n < N; ++n) X.row(n * V + v) /= c;
      active.push_back(v);
    }
  }
  Tensor Xf = empty({N * V, S}, DType::Float32);
  Eigen::Map<RowMatF>(Xf.data<float>(), N * V, S) = X.cast<float>();

  // Each voxel's order of stimuli by predicted response (ties by index) and the ranks.
  const RowMat Pm = to_mat(pred, N, V);
  std::vector<std::vector<int64_t>> order(V, std::vector<int64_t>(N));
  std::vector<int32_t> rank(N * V);
  for (int64_t v = 0; v < V; ++v) {
    auto& o = order[v];
    std::iota(o.begin(), o.end(), 0);
    std::stable_sort(o.begin(), o.end(), [&](int64_t a, int64_t b) { return Pm(a, v) < Pm(b, v); });
    for (int64_t r = 0; r < N; ++r) rank[o[r] * V + v] = int32_t(r);
  }

  // The MLP g: S -> hidden (tanh) -> D; initial weights N(0, 1/fan_in) from the seed.
  Generator gen(opt.seed + 1);
  Tensor W1 = randn({opt.hidden, S}, gen, 0.0, 1.0 / std::sqrt(double(S))), b1 = zeros({opt.hidden});
  Tensor W2 = randn({D, opt.hidden}, gen, 0.0, 1.0 / std::sqrt(double(opt.hidden))), b2 = zeros({D});
  for (Tensor* t : {&W1, &b1, &W2, &b2}) set_requires_grad(*t);
  auto g = [&](const Tensor& x) { return linear(tanh(linear(x, W1, b1)), W2, b2); };

  DownResult res;
  if (!active.empty() && opt.steps > 0) {
    Adam adam({W1, b1, W2, b2}, AdamOptions{opt.lr});
    // Pairs from a fixed generator (mt19937_64's sequence is specified by the standard; the
    // modulo's bias is below 2^-40 at these sizes).
    std::mt19937_64 rng(opt.seed);
    const int64_t B = opt.batch;
    std::vector<int64_t> ia(B), ib(B);
    for (int64_t step = 0; step < opt.steps; ++step) {
      for (int64_t i = 0; i < B; ++i) {
        const int64_t v = active[rng() % active.size()], r = int64_t(rng() % uint64_t(N - 1));
        ia[i] = order[v][r] * V + v, ib[i] = order[v][r + 1] * V + v;
      }
      const Tensor A = index_select(Xf, 0, from_vector(ia, {B}, DType::Int64));
      const Tensor Bt = index_select(Xf, 0, from_vector(ib, {B}, DType::Int64));
      const Tensor loss = info_nce(g(A), g(Bt), opt.temperature, true);
      res.loss.push_back(loss.to(DType::Float64).item<double>());
      backward(loss);
      adam.step();
      adam.zero_grad();
    }
  }

  // Scores: embed every (stimulus, voxel) with the trained weights in float64 (so that equal
  // sketches give equal embeddings to rounding far below the scores' scale) and reduce per voxel.
  RowMat mean = RowMat::Zero(V, D), cross = RowMat::Zero(V, D);
  Eigen::VectorXd sq = Eigen::VectorXd::Zero(V);
  {
    const RowMat w1 = to_mat(W1, opt.hidden, S), w2 = to_mat(W2, D, opt.hidden);
    const Eigen::RowVectorXd c1 = to_mat(b1, 1, opt.hidden), c2 = to_mat(b2, 1, D);
    const int64_t chunk = 4096;
    for (int64_t s = 0; s < N * V; s += chunk) {
      const int64_t b = std::min(chunk, N * V - s);
      const RowMat Hd = ((X.middleRows(s, b) * w1.transpose()).rowwise() + c1).array().tanh().matrix();
      RowMat E = (Hd * w2.transpose()).rowwise() + c2;
      for (int64_t i = 0; i < b; ++i) {
        const double nrm = std::max(E.row(i).norm(), 1e-12);
        E.row(i) /= nrm;
        const int64_t row = s + i, v = row % V;
        mean.row(v) += E.row(i);
        sq[v] += E.row(i).squaredNorm();
        cross.row(v) += (double(rank[row]) / double(N - 1) - 0.5) * E.row(i);
      }
    }
  }
  mean /= double(N);
  const double ss = double(N) * double(N + 1) / (12.0 * double(N - 1));  // sum (t - 1/2)^2
  Tensor share = zeros({V}, DType::Float64), afd = zeros({V}, DType::Float64);
  for (int64_t v : active) {
    const double total = sq[v] / double(N);
    share.data<double>()[v] = total > 0 ? std::max(0.0, total - mean.row(v).squaredNorm()) / total : 0.0;
    afd.data<double>()[v] = cross.row(v).norm() / ss;
  }
  Tensor inh = zeros({V, D}, DType::Float64);
  Eigen::Map<RowMat>(inh.data<double>(), V, D) = mean;
  for (int64_t v = 0; v < V; ++v)
    if (std::find(active.begin(), active.end(), v) == active.end()) Eigen::Map<RowMat>(inh.data<double>(), V, D).row(v).setZero();
  res.inherent_down = inh, res.energy_share_down = share, res.afd_down = afd;
  return res;
}

}  // namespace cortex::analysis
