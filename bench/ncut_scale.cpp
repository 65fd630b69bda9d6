// ncut_scale: one Nystrom Ncut (AlignedCut) run at a given size, for the scaling benchmark of
// issue #18 (scripts/bench-ncut-scale.sh runs it beside bench/peers/ncut_scale_peer.py, one process
// per run so that the peak RSS is the run's own). The features are drawn in-process as
// bench_spectral draws them (--clusters unit-norm centres in R^d, node i in cluster i mod C, noise
// 0.5 / sqrt(d) per coordinate, float32). Prints one JSON line:
//   {"impl": "cortex", "n", "d", "m", "k", "knn", "clusters", "threads", "seconds" (wall of
//    ncut()), "cpu_seconds" (user + system of the process during ncut()), "peak_rss_mb" (ru_maxrss
//    of the whole process, input included, taken before the accuracy check), "rss_before_mb" (the
//    same just before ncut(): the input and the fixed costs), "input_mb", "phases" (ncut's seconds
//    per phase: prepare, sampling, affinity, eigensolve, propagate), and with
//    --accuracy N_SUB: "acc_n", "acc_m", "acc_mean_cos", "acc_min_cos" (cosines of the principal
//    angles between the top-k subspaces of the exact ncut and Nystrom on the first N_SUB nodes, same
//    settings; m is clamped to N_SUB)}
// Usage: ncut_scale [--n 300000] [--d 768] [--m 4096] [--k 20] [--knn 10] [--seed 1] [--threads T]
//                   [--clusters 50] [--accuracy N_SUB] [--search-dims P]
// --search-dims P: NcutOptions::search_dims (the propagation's neighbour search on P principal axes).
#include "tensor/omp_defaults.h"
#include <omp.h>
#include <sys/resource.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // Eigen + GCC 12 AVX-512 (GCC bug 105593)
#endif
#include <Eigen/Dense>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "analysis/spectral/ncut.h"
#include "tensor/error.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

using namespace cortex;
using namespace cortex::analysis::spectral;

namespace {

// As bench/bench_spectral.cpp's clustered(), with the number of centres a parameter (there: 50),
// the noise drawn 4,096 rows at a time: randn draws in float64 and converts, so drawing all N rows
// at once would hold 3x the input (7 + 14 GB at 2.4M x 768) and set the peak RSS instead of ncut.
Tensor clustered(int64_t n, int64_t d, int64_t nc, uint64_t seed) {
  Generator g(seed);
  const Tensor c = randn({nc, d}, g, 0.0, 1.0, DType::Float32);
  Tensor x = empty({n, d}, DType::Float32);
  const float* pc = c.data<float>();
  float* px = x.data<float>();
  std::vector<float> norm(nc);
  for (int64_t j = 0; j < nc; ++j) {
    double s = 0;
    for (int64_t e = 0; e < d; ++e) s += double(pc[j * d + e]) * pc[j * d + e];
    norm[j] = static_cast<float>(1 / std::sqrt(s));
  }
  for (int64_t r0 = 0; r0 < n; r0 += 4096) {
    const int64_t rows = std::min<int64_t>(4096, n - r0);
    const Tensor noise = randn({rows, d}, g, 0.0, 0.5 / std::sqrt(double(d)), DType::Float32);
    const float* pn = noise.data<float>();
    for (int64_t i = r0; i < r0 + rows; ++i)
      for (int64_t e = 0; e < d; ++e) px[i * d + e] = pn[(i - r0) * d + e] + pc[(i % nc) * d + e] * norm[i % nc];
  }
  return x;
}

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + 1e-6 * double(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) / 1024.0;  // Linux: kilobytes
}

Eigen::MatrixXd to_eigen(const Tensor& v) {
  const Tensor c = v.to(DType::Float64).contiguous();
  return Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
      c.data<double>(), c.size(0), c.size(1));
}

// Cosines of the principal angles between span(a) and span(b): singular values of Qa^T Qb.
Eigen::VectorXd principal_cosines(const Eigen::MatrixXd& a, const Eigen::MatrixXd& b) {
  const Eigen::MatrixXd qa = a.householderQr().householderQ() * Eigen::MatrixXd::Identity(a.rows(), a.cols());
  const Eigen::MatrixXd qb = b.householderQr().householderQ() * Eigen::MatrixXd::Identity(b.rows(), b.cols());
  return Eigen::JacobiSVD<Eigen::MatrixXd>(qa.transpose() * qb).singularValues();
}

int64_t int_flag(const char* name, const char* value, int64_t lo) {
  char* end = nullptr;
  const long long v = std::strtoll(value, &end, 10);
  if (end == value || *end != '\0' || v < lo)
    throw Error(std::string("ncut_scale: ") + name + " expects an integer >= " + std::to_string(lo) + ", found '" +
                value + "'");
  return v;
}

const char* kUsage =
    "usage: ncut_scale [--n 300000] [--d 768] [--m 4096] [--k 20] [--knn 10] [--seed 1] [--threads T] "
    "[--clusters 50] [--accuracy N_SUB] [--search-dims P]\n";

}  // namespace

int main(int argc, char** argv) {
  cortex::apply_omp_defaults(argv);  // the wait policy cortex runs with (tensor/omp_defaults.h)
  try {
    int64_t n = 300000, d = 768, m = 4096, k = 20, knn = 10, seed = 1, threads = 0, acc = 0, clusters = 50,
            search_dims = 0;
    for (int i = 1; i < argc; ++i) {
      const std::string f = argv[i];
      if (f == "--help" || f == "-h") {
        std::fputs(kUsage, stdout);
        return 0;
      }
      if (i + 1 >= argc) throw Error("ncut_scale: " + f + " expects a value (or is not a flag)\n" + kUsage);
      const char* v = argv[++i];
      if (f == "--n") n = int_flag("--n", v, 1);
      else if (f == "--d") d = int_flag("--d", v, 1);
      else if (f == "--m") m = int_flag("--m", v, 1);
      else if (f == "--k") k = int_flag("--k", v, 1);
      else if (f == "--knn") knn = int_flag("--knn", v, 1);
      else if (f == "--seed") seed = int_flag("--seed", v, 0);
      else if (f == "--threads") threads = int_flag("--threads", v, 1);
      else if (f == "--clusters") clusters = int_flag("--clusters", v, 1);
      else if (f == "--accuracy") acc = int_flag("--accuracy", v, 0);
      else if (f == "--search-dims") search_dims = int_flag("--search-dims", v, 0);
      else throw Error("ncut_scale: unknown flag '" + f + "'\n" + kUsage);
    }
    if (k > std::min(n, m)) throw Error("ncut_scale: --k expects at most min(--n, --m), found " + std::to_string(k));
    if (acc > n) throw Error("ncut_scale: --accuracy expects at most --n = " + std::to_string(n) + ", found " +
                             std::to_string(acc));
    if (acc > 0 && acc < k)
      throw Error("ncut_scale: --accuracy expects at least --k nodes, found " + std::to_string(acc));
    if (threads > 0) omp_set_num_threads(int(threads));

    const Tensor x = clustered(n, d, clusters, uint64_t(seed));
    NcutOptions o;
    o.k = k;
    o.method = NcutMethod::Nystrom;
    o.samples = m;
    o.knn = knn;
    o.seed = uint64_t(seed);
    o.search_dims = search_dims;
    const double rss0 = peak_rss_mb();  // the input and the process's fixed costs
    const double c0 = cpu_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    const NcutResult r = ncut(x, o);
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double cpu = cpu_seconds() - c0;
    const double rss = peak_rss_mb();  // before the accuracy check, which has its own N_SUB^2 matrix
    if (r.eigenvectors.size(0) != n || r.eigenvectors.size(1) != k)
      throw Error("ncut_scale: ncut returned " + std::to_string(r.eigenvectors.size(0)) + " x " +
                  std::to_string(r.eigenvectors.size(1)) + " eigenvectors, expected " + std::to_string(n) + " x " +
                  std::to_string(k));

    char phases[256];
    std::snprintf(phases, sizeof phases,
                  ", \"phases\": {\"prepare\": %.3f, \"sampling\": %.3f, \"affinity\": %.3f, \"eigensolve\": %.3f, "
                  "\"propagate\": %.3f}",
                  r.timings.prepare, r.timings.sampling, r.timings.affinity, r.timings.eigensolve, r.timings.propagate);
    std::string accuracy;
    if (acc > 0) {
      const Tensor xs = x.narrow(0, 0, acc).contiguous();
      NcutOptions e = o;
      e.method = NcutMethod::Exact;
      const NcutResult ex = ncut(xs, e);
      if (!ex.solve.converged) throw Error("ncut_scale: the exact solve on the subsample did not converge");
      const NcutResult ny = ncut(xs, o);
      const Eigen::VectorXd c = principal_cosines(to_eigen(ny.eigenvectors), to_eigen(ex.eigenvectors));
      char buf[160];
      std::snprintf(buf, sizeof buf,
                    ", \"acc_n\": %lld, \"acc_m\": %lld, \"acc_mean_cos\": %.6f, \"acc_min_cos\": %.6f", (long long)acc,
                     (long long)std::min(m, acc), c.mean(), c.minCoeff());
      accuracy = buf;
    }
    std::printf("{\"impl\": \"cortex\", \"n\": %lld, \"d\": %lld, \"m\": %lld, \"k\": %lld, \"knn\": %lld, "
                "\"clusters\": %lld, \"search_dims\": %lld, \"threads\": %d, \"seconds\": %.4f, \"cpu_seconds\": %.4f, "
                "\"peak_rss_mb\": %.1f, \"rss_before_mb\": %.1f, \"input_mb\": %.1f%s%s}\n",
                (long long)n, (long long)d, (long long)m, (long long)k, (long long)knn, (long long)clusters,
                (long long)search_dims, omp_get_max_threads(), wall, cpu, rss, rss0, double(n) * double(d) * 4 / (1024.0 * 1024.0),
                phases, accuracy.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  }
}
