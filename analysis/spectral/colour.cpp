// t-SNE, quantile RGB and PNG output (colour.h).
#include "analysis/spectral/colour.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // Eigen + GCC 12 AVX-512 (GCC bug 105593)
#endif
#include <Eigen/Core>
#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <vector>

#include "analysis/spectral/affinity.h"
#include "analysis/spectral/nystrom.h"
#include "kernels/cpu/parallel.h"
#include "tensor/io/image.h"
#include "tensor/random.h"

namespace cortex::analysis::spectral {

namespace {

using Eigen::Dynamic;
using MatD = Eigen::Matrix<double, Dynamic, Dynamic>;
using RowMatD = Eigen::Matrix<double, Dynamic, Dynamic, Eigen::RowMajor>;

// Row i of P: the conditional p_j|i = exp(-d_ij beta) / sum with the entropy log(perplexity),
// by bisection on beta (sklearn's _binary_search_perplexity: 100 steps, tolerance 1e-5).
void calibrate_row(const double* d, int64_t n, int64_t i, double log_perp, double* p) {
  double beta = 1, lo = -std::numeric_limits<double>::infinity(), hi = std::numeric_limits<double>::infinity();
  for (int step = 0; step < 100; ++step) {
    double sum = 0, dsum = 0;
    for (int64_t j = 0; j < n; ++j) {
      p[j] = j == i ? 0.0 : std::exp(-d[j] * beta);
      sum += p[j];
    }
    if (sum == 0) sum = 1e-8;  // sklearn's EPSILON_DBL: all mass underflowed at this beta
    for (int64_t j = 0; j < n; ++j) {
      p[j] /= sum;
      dsum += d[j] * p[j];
    }
    const double h = std::log(sum) + beta * dsum;
    const double diff = h - log_perp;
    if (std::abs(diff) <= 1e-5) break;
    if (diff > 0) {
      lo = beta;
      beta = std::isinf(hi) ? beta * 2 : (beta + hi) / 2;
    } else {
      hi = beta;
      beta = std::isinf(lo) ? beta / 2 : (beta + lo) / 2;
    }
  }
}

// One gradient-descent run of t-SNE on P (n, n) with D compile-time dims; y is (n, D) row-major.
template <int D>
void optimise(const std::vector<double>& P, int64_t n, std::vector<double>& y, const TsneOptions& opt) {
  const double alpha = std::max(D - 1, 1);
  const double expo = (alpha + 1) / 2;
  const double c = 2 * (alpha + 1) / alpha;
  const double lr = opt.learning_rate > 0 ? opt.learning_rate : std::max(double(n) / opt.exaggeration / 4, 50.0);
  std::vector<double> update(n * D), gains(n * D), a(n * D), b(n * D), zrow(n);
  // Two runs of gradient descent as sklearn's TSNE makes them: the exaggerated phase (momentum 0.5)
  // then the rest (0.8), each starting with zero momentum and unit gains. Every 50th iteration
  // (counted over both) the gradient norm is checked: below 1e-7 ends the phase. That check matters
  // in the first phase: with weak structure in P the exaggerated attraction contracts the whole
  // embedding towards a point, and only ending the phase there lets the second phase expand it again.
  int64_t it = 0;
  for (int phase = 0; phase < 2; ++phase) {
    const bool early = phase == 0;
    const int64_t end = early ? std::min(opt.exaggeration_iters, opt.iterations) : opt.iterations;
    const double ex = early ? opt.exaggeration : 1.0;
    const double momentum = early ? 0.5 : 0.8;
    std::fill(update.begin(), update.end(), 0.0);
    std::fill(gains.begin(), gains.end(), 1.0);
    for (; it < end; ++it) {
      // One pass: a_i = sum_j p_ij k_ij (y_i - y_j), b_i = sum_j w_ij k_ij (y_i - y_j), Z = sum w_ij,
      // with k = (1 + d^2 / alpha)^-1 and w = k^((alpha + 1) / 2); then grad_i = c (ex a_i - b_i / Z).
      // (Threads only pay off past a few hundred points: each iteration is one parallel region.)
#pragma omp parallel for schedule(static) if (n > 256)
      for (int64_t i = 0; i < n; ++i) {
        double ai[D] = {}, bi[D] = {}, z = 0;
        const double* yi = &y[i * D];
        const double* pi = &P[i * n];
        for (int64_t j = 0; j < n; ++j) {
          if (j == i) continue;
          double diff[D], d2 = 0;
          for (int e = 0; e < D; ++e) {
            diff[e] = yi[e] - y[j * D + e];
            d2 += diff[e] * diff[e];
          }
          const double k = 1.0 / (1.0 + d2 / alpha);
          const double w = D == 3 ? k * std::sqrt(k) : (D <= 2 ? k : std::pow(k, expo));
          z += w;
          const double pk = pi[j] * k, wk = w * k;
          for (int e = 0; e < D; ++e) {
            ai[e] += pk * diff[e];
            bi[e] += wk * diff[e];
          }
        }
        zrow[i] = z;
        for (int e = 0; e < D; ++e) {
          a[i * D + e] = ai[e];
          b[i * D + e] = bi[e];
        }
      }
      double Z = 0;
      for (int64_t i = 0; i < n; ++i) Z += zrow[i];
      Z = std::max(Z, std::numeric_limits<double>::min());
      double gnorm = 0;
      for (int64_t q = 0; q < n * D; ++q) {
        double gq = c * (ex * a[q] - b[q] / Z);
        // delta-bar-delta gains (sklearn's _gradient_descent), min gain 0.01
        gains[q] = (update[q] * gq < 0) ? gains[q] + 0.2 : std::max(gains[q] * 0.8, 0.01);
        gq *= gains[q];
        gnorm += gq * gq;
        update[q] = momentum * update[q] - lr * gq;
        y[q] += update[q];
      }
      if ((it + 1) % 50 == 0 && std::sqrt(gnorm) <= 1e-7) {  // sklearn's min_grad_norm
        ++it;
        break;
      }
    }
  }
}

// (x - lo) / (hi - lo) per column, lo/hi the (1 - q)/q quantiles.
double quantile_sorted(std::vector<double>& v, double q) {
  const int64_t n = static_cast<int64_t>(v.size());
  const double pos = q * double(n - 1);
  const int64_t lo = static_cast<int64_t>(std::floor(pos));
  const int64_t hi = std::min(lo + 1, n - 1);
  std::nth_element(v.begin(), v.begin() + lo, v.end());
  const double vlo = v[lo];
  double vhi = vlo;
  if (hi != lo) vhi = *std::min_element(v.begin() + lo + 1, v.end());
  return vlo + (pos - double(lo)) * (vhi - vlo);
}

}  // namespace

Tensor tsne(const Tensor& x, const TsneOptions& opt) {
  const char* op = "tsne";
  const Tensor hx = detail::host_features(x, op, "x").to(DType::Float64);
  const int64_t n = hx.size(0), Dx = hx.size(1);
  CORTEX_CHECK(n >= 2, op, ": expected at least 2 points, found ", n);
  CORTEX_CHECK(opt.dims >= 1 && opt.dims <= 3, op, ": expected dims in [1, 3], found ", opt.dims);
  CORTEX_CHECK(opt.perplexity > 0, op, ": expected perplexity > 0, found ", opt.perplexity);
  CORTEX_CHECK(opt.iterations >= 0 && opt.exaggeration_iters >= 0 && opt.exaggeration > 0 && opt.learning_rate >= 0,
               op, ": expected iterations >= 0, exaggeration_iters >= 0, exaggeration > 0 and learning_rate >= 0");
  const double perp = std::min(opt.perplexity, double(n - 1) / 2);
  const double* px = hx.data<double>();

  // Input distances (n, n): squared euclidean, or cosine distance 1 - cos.
  std::vector<double> dist(n * n);
  {
    Eigen::Map<const RowMatD> X(px, n, Dx);
    RowMatD Xn = X;
    if (opt.metric == TsneMetric::Cosine)
      for (int64_t i = 0; i < n; ++i) {
        const double nr = Xn.row(i).norm();
        Xn.row(i) /= std::max(nr, 1e-12);
      }
    // Eigen on one thread (parallel.h): its threaded GEMM sums in an order that follows the threads.
    const RowMatD G = parallel::serial([&] { return RowMatD(Xn * Xn.transpose()); });
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) {
        const double v = opt.metric == TsneMetric::Cosine ? 1.0 - G(i, j) : G(i, i) + G(j, j) - 2 * G(i, j);
        dist[i * n + j] = i == j ? 0.0 : std::max(v, 0.0);
      }
  }
  // Joint P = (P_j|i + P_i|j) / (2n), floored at machine epsilon as sklearn.
  std::vector<double> P(n * n);
  const double log_perp = std::log(perp);
#pragma omp parallel for schedule(dynamic, 16) if (n > 256)
  for (int64_t i = 0; i < n; ++i) calibrate_row(&dist[i * n], n, i, log_perp, &P[i * n]);
  double total = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i + 1; j < n; ++j) {
      const double s = P[i * n + j] + P[j * n + i];
      P[i * n + j] = P[j * n + i] = s;
      total += 2 * s;
    }
  for (double& v : P) v = std::max(v / total, std::numeric_limits<double>::epsilon());
  for (int64_t i = 0; i < n; ++i) P[i * n + i] = 0;

  // PCA initialisation, first coordinate's std scaled to 1e-4, each axis's largest entry positive.
  const int64_t D = opt.dims;
  std::vector<double> y(n * D);
  {
    Eigen::Map<const RowMatD> X(px, n, Dx);
    MatD Xc = X;
    Xc.rowwise() -= Xc.colwise().mean();
    MatD emb(n, D);
    emb.setZero();
    const int64_t q = std::min(D, Dx);
    if (q > 0) {
      parallel::SerialEigen serial_eigen;
      Eigen::SelfAdjointEigenSolver<MatD> es(Xc.transpose() * Xc);
      emb.leftCols(q) = Xc * es.eigenvectors().rightCols(q).rowwise().reverse();
    }
    for (int64_t e = 0; e < D; ++e) {
      Eigen::Index imax;
      emb.col(e).cwiseAbs().maxCoeff(&imax);
      if (emb(imax, e) < 0) emb.col(e) *= -1;
    }
    const double sd = std::sqrt((emb.col(0).array() - emb.col(0).mean()).square().sum() / double(n));
    if (sd > 1e-300 && std::isfinite(sd)) {
      emb *= 1e-4 / sd;
    } else {
      Generator g(opt.seed);  // degenerate input (all rows equal): a small random start
      const Tensor r = randn({n, D}, g, 0.0, 1e-4, DType::Float64);
      emb = Eigen::Map<const RowMatD>(r.data<double>(), n, D);
    }
    for (int64_t i = 0; i < n; ++i)
      for (int64_t e = 0; e < D; ++e) y[i * D + e] = emb(i, e);
  }
  switch (D) {
    case 1: optimise<1>(P, n, y, opt); break;
    case 2: optimise<2>(P, n, y, opt); break;
    default: optimise<3>(P, n, y, opt); break;
  }
  return from_vector(y, {n, D}, DType::Float64);
}

Tensor quantile_normalize(const Tensor& x, double q) {
  const char* op = "quantile_normalize";
  const Tensor hx = detail::host_features(x, op, "x").to(DType::Float64);
  CORTEX_CHECK(q > 0.5 && q <= 1, op, ": expected q in (0.5, 1], found ", q);
  const int64_t n = hx.size(0), c = hx.size(1);
  CORTEX_CHECK(n >= 1, op, ": expected at least one row, found none");
  Tensor out = empty({n, c}, DType::Float32);
  const double* p = hx.data<double>();
  float* o = out.data<float>();
  std::vector<double> col(n);
  for (int64_t e = 0; e < c; ++e) {
    for (int64_t i = 0; i < n; ++i) col[i] = p[i * c + e];
    const double hi = quantile_sorted(col, q);
    const double lo = quantile_sorted(col, 1 - q);
    const double span = hi - lo;
    for (int64_t i = 0; i < n; ++i) {
      const double v = span > 0 ? (p[i * c + e] - lo) / span : 0.5;
      o[i * c + e] = static_cast<float>(std::clamp(v, 0.0, 1.0));
    }
  }
  return out;
}

namespace {

// The spectral t-SNE both entries share: t-SNE of a farthest-point sample of the eigenvector rows,
// copied (knn = 1) or averaged (knn > 1) to every row by cosine similarity of eigenvectors. `op`
// names the caller in errors; *sample receives the sampled rows' indices.
Tensor sampled_tsne(const Tensor& eigenvectors, const ColourOptions& opt, const char* op, Tensor* sample) {
  const Tensor ev = detail::host_features(eigenvectors, op, "eigenvectors");
  const int64_t N = ev.size(0);
  CORTEX_CHECK(N >= 2, op, ": expected at least 2 rows, found ", N);
  CORTEX_CHECK(opt.samples >= 2, op, ": expected samples >= 2, found ", opt.samples);
  CORTEX_CHECK(opt.knn >= 1, op, ": expected knn >= 1, found ", opt.knn);
  const int64_t ns = std::min(opt.samples, N);
  *sample = farthest_point_sampling(ev, ns, opt.seed);
  const std::vector<int64_t> idx = sample->to_vector<int64_t>();
  Tensor sub = empty({ns, ev.size(1)}, ev.dtype());
  for (int64_t i = 0; i < ns; ++i) sub.select(0, i).copy_(ev.select(0, idx[i]));
  const Tensor emb = tsne(sub, opt.tsne);  // checks dims
  return propagate_knn(emb, ev, sub, opt.knn, Affinity::Cosine, 1.0).to(DType::Float64);
}

}  // namespace

Colouring colour_eigenvectors(const Tensor& eigenvectors, const ColourOptions& opt) {
  const char* op = "colour_eigenvectors";
  CORTEX_CHECK(opt.tsne.dims == 3, op, ": expected tsne.dims = 3 (one per colour channel), found ", opt.tsne.dims);
  CORTEX_CHECK(opt.q > 0.5 && opt.q <= 1, op, ": expected q in (0.5, 1], found ", opt.q);
  Colouring r;
  r.embedding = sampled_tsne(eigenvectors, opt, op, &r.sample_indices);
  r.rgb = quantile_normalize(r.embedding, opt.q);
  return r;
}

Tensor spectral_tsne(const Tensor& eigenvectors, const ColourOptions& opt) {
  Tensor sample;
  return sampled_tsne(eigenvectors, opt, "spectral_tsne", &sample);
}

Tensor to_images(const Tensor& rgb, int64_t B, int64_t H, int64_t W) {
  const char* op = "to_images";
  const Tensor h = detail::host_features(rgb, op, "rgb").to(DType::Float64);
  CORTEX_CHECK(h.size(1) == 3, op, ": expected rgb of shape (N, 3), found ", shape_str(h.shape()));
  CORTEX_CHECK(B >= 0 && H >= 0 && W >= 0 && B * H * W == h.size(0), op, ": expected N = B * H * W, found N = ",
               h.size(0), " for B, H, W = ", B, ", ", H, ", ", W);
  Tensor img = empty({B, H, W, 3}, DType::UInt8);
  const double* p = h.data<double>();
  uint8_t* o = img.data<uint8_t>();
  for (int64_t i = 0; i < h.numel(); ++i) o[i] = static_cast<uint8_t>(std::lround(std::clamp(p[i], 0.0, 1.0) * 255));
  return img;
}

std::vector<std::string> write_pngs(const Tensor& images, const std::string& prefix) {
  CORTEX_CHECK(images.defined() && images.dim() == 4 && images.size(3) == 3 && images.dtype() == DType::UInt8,
               "write_pngs: expected uint8 images of shape (B, H, W, 3), found ",
               images.defined() ? shape_str(images.shape()) + " " + dtype_name(images.dtype())
                                : std::string("undefined"));
  std::vector<std::string> paths;
  for (int64_t b = 0; b < images.size(0); ++b) {
    char num[32];
    std::snprintf(num, sizeof num, "_%04lld.png", static_cast<long long>(b));
    paths.push_back(prefix + num);
    io::write_png(paths.back(), images.select(0, b).contiguous());
  }
  return paths;
}

}  // namespace cortex::analysis::spectral
