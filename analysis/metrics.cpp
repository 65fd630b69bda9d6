#include "analysis/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "kernels/cpu/parallel.h"
#include "tensor/random.h"

namespace cortex::analysis {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// (N, V) float -> contiguous float64 values, checking what the metrics need.
std::vector<double> as_matrix(const Tensor& t, const char* op, const char* what) {
  CORTEX_CHECK(t.defined() && t.dim() == 2, op, ": expected ", what, " as a 2-D (images, voxels) array, found ",
               t.defined() ? shape_str(t.shape()) : std::string("an undefined tensor"));
  CORTEX_CHECK(is_floating(t.dtype()), op, ": expected float ", what, ", found ", dtype_name(t.dtype()));
  CORTEX_CHECK(t.device().is_cpu(), op, ": expected ", what, " on the CPU");
  return t.to(DType::Float64).contiguous().to_vector<double>();
}

void check_pair(const Tensor& pred, const Tensor& target, const char* op) {
  CORTEX_CHECK(pred.defined() && target.defined() && pred.shape() == target.shape(), op,
               ": expected predictions and targets of the same shape, found ",
               pred.defined() ? shape_str(pred.shape()) : "undefined", " and ",
               target.defined() ? shape_str(target.shape()) : "undefined");
  CORTEX_CHECK(pred.dim() == 2 && pred.size(0) >= 2, op, ": expected (images >= 2, voxels), found ",
               shape_str(pred.shape()));
}

// Column means and centred columns.
void centre(std::vector<double>& x, int64_t N, int64_t V) {
  std::vector<double> m(V, 0.0);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t v = 0; v < V; ++v) m[v] += x[i * V + v];
  for (double& a : m) a /= N;
  for (int64_t i = 0; i < N; ++i)
    for (int64_t v = 0; v < V; ++v) x[i * V + v] -= m[v];
}

std::vector<double> to_vec1(const Tensor& t, const char* op, const char* what) {
  CORTEX_CHECK(t.defined() && t.dim() == 1, op, ": expected ", what, " as a 1-D array, found ",
               t.defined() ? shape_str(t.shape()) : std::string("an undefined tensor"));
  return t.to(DType::Float64).contiguous().to_vector<double>();
}

}  // namespace

Tensor pearson_r(const Tensor& pred, const Tensor& target) {
  check_pair(pred, target, "pearson_r");
  const int64_t N = pred.size(0), V = pred.size(1);
  std::vector<double> p = as_matrix(pred, "pearson_r", "predictions"), t = as_matrix(target, "pearson_r", "targets");
  centre(p, N, V);
  centre(t, N, V);
  std::vector<double> spt(V, 0), spp(V, 0), stt(V, 0);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t v = 0; v < V; ++v) {
      const double a = p[i * V + v], b = t[i * V + v];
      spt[v] += a * b; spp[v] += a * a; stt[v] += b * b;
    }
  Tensor r = empty({V}, DType::Float64);
  double* o = r.data<double>();
  for (int64_t v = 0; v < V; ++v)
    o[v] = (spp[v] > 0 && stt[v] > 0) ? std::clamp(spt[v] / std::sqrt(spp[v] * stt[v]), -1.0, 1.0) : 0.0;
  return r;
}

Tensor r2_score(const Tensor& pred, const Tensor& target) {
  check_pair(pred, target, "r2_score");
  const int64_t N = pred.size(0), V = pred.size(1);
  const std::vector<double> p = as_matrix(pred, "r2_score", "predictions");
  std::vector<double> t = as_matrix(target, "r2_score", "targets");
  std::vector<double> res(V, 0), tot(V, 0);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t v = 0; v < V; ++v) {
      const double d = t[i * V + v] - p[i * V + v];
      res[v] += d * d;
    }
  centre(t, N, V);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t v = 0; v < V; ++v) tot[v] += t[i * V + v] * t[i * V + v];
  Tensor r2 = empty({V}, DType::Float64);
  double* o = r2.data<double>();
  for (int64_t v = 0; v < V; ++v) o[v] = tot[v] > 0 ? 1.0 - res[v] / tot[v] : 0.0;
  return r2;
}

ChallengeScore challenge_score(const Tensor& r, const Tensor& noise_ceiling) {
  const std::vector<double> rv = to_vec1(r, "challenge_score", "r"), nc = to_vec1(noise_ceiling, "challenge_score", "noise ceiling");
  CORTEX_CHECK(rv.size() == nc.size(), "challenge_score: r has ", rv.size(), " voxels but the noise ceiling has ", nc.size());
  ChallengeScore s;
  s.per_voxel = empty({static_cast<int64_t>(rv.size())}, DType::Float64);
  double* o = s.per_voxel.data<double>();
  double sum = 0;
  for (size_t v = 0; v < rv.size(); ++v) {
    if (!(nc[v] > 0) || std::isnan(rv[v])) {
      o[v] = kNaN;
      ++s.voxels_excluded;
      continue;
    }
    const double rp = std::max(rv[v], 0.0);
    o[v] = rp * rp / nc[v] * 100.0;
    sum += o[v];
    ++s.voxels_used;
  }
  s.score = s.voxels_used ? sum / s.voxels_used : kNaN;
  return s;
}

Tensor permutation_pvalues(const Tensor& pred, const Tensor& target, int64_t n_permutations, uint64_t seed) {
  check_pair(pred, target, "permutation_pvalues");
  CORTEX_CHECK(n_permutations >= 1, "permutation_pvalues: expected n_permutations >= 1, found ", n_permutations);
  const int64_t N = pred.size(0), V = pred.size(1);
  // z-score both once; then r of a permutation is sum_i zp[perm[i]] zt[i] / N, N*V work per shuffle.
  std::vector<double> p = as_matrix(pred, "permutation_pvalues", "predictions");
  std::vector<double> t = as_matrix(target, "permutation_pvalues", "targets");
  centre(p, N, V);
  centre(t, N, V);
  for (std::vector<double>* x : {&p, &t}) {
    std::vector<double> ss(V, 0);
    for (int64_t i = 0; i < N; ++i)
      for (int64_t v = 0; v < V; ++v) ss[v] += (*x)[i * V + v] * (*x)[i * V + v];
    for (int64_t i = 0; i < N; ++i)
      for (int64_t v = 0; v < V; ++v) (*x)[i * V + v] = ss[v] > 0 ? (*x)[i * V + v] / std::sqrt(ss[v]) : 0.0;
  }
  std::vector<double> obs(V, 0);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t v = 0; v < V; ++v) obs[v] += p[i * V + v] * t[i * V + v];
  // Permutations drawn up front so the result does not depend on the thread count.
  Generator g(seed);
  std::vector<std::vector<int64_t>> perms(n_permutations);
  for (auto& q : perms) q = randperm(N, g).to_vector<int64_t>();
  // Fixed chunks of 8 permutations, each with its own counts, added up in chunk order (parallel.h).
  constexpr int64_t kPerms = 8;
  const int64_t nchunks = parallel::num_chunks(n_permutations, kPerms);
  std::vector<int64_t> part(static_cast<size_t>(nchunks * V), 0);
  parallel::for_chunks(n_permutations, kPerms, double(n_permutations) * double(N) * double(V), [&](int64_t k0, int64_t k1) {
    int64_t* local = part.data() + (k0 / kPerms) * V;
    std::vector<double> rp(V);
    for (int64_t k = k0; k < k1; ++k) {
      std::fill(rp.begin(), rp.end(), 0.0);
      const std::vector<int64_t>& q = perms[k];
      for (int64_t i = 0; i < N; ++i) {
        const double* a = p.data() + q[i] * V;
        const double* b = t.data() + i * V;
        for (int64_t v = 0; v < V; ++v) rp[v] += a[v] * b[v];
      }
      // A tiny tolerance so that ties with the observed r (constant columns: all zero) count as >=.
      for (int64_t v = 0; v < V; ++v) local[v] += rp[v] >= obs[v] - 1e-12 ? 1 : 0;
    }
  });
  std::vector<int64_t> count(V, 0);
  for (int64_t c = 0; c < nchunks; ++c)
    for (int64_t v = 0; v < V; ++v) count[v] += part[c * V + v];
  Tensor out = empty({V}, DType::Float64);
  double* o = out.data<double>();
  for (int64_t v = 0; v < V; ++v) o[v] = (1.0 + count[v]) / (1.0 + n_permutations);
  return out;
}

Tensor fdr_bh(const Tensor& p) {
  const std::vector<double> pv = to_vec1(p, "fdr_bh", "p-values");
  const int64_t m = static_cast<int64_t>(pv.size());
  for (double x : pv) CORTEX_CHECK(x >= 0 && x <= 1, "fdr_bh: expected p-values in [0, 1], found ", x);
  std::vector<int64_t> idx(m);
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return pv[a] < pv[b]; });
  Tensor q = empty({m}, DType::Float64);
  double* o = q.data<double>();
  double run = 1.0;
  for (int64_t k = m - 1; k >= 0; --k) {
    run = std::min(run, pv[idx[k]] * m / (k + 1));
    o[idx[k]] = run;
  }
  return q;
}

std::vector<RoiSummary> roi_summaries(const Tensor& r, const Tensor& noise_ceiling,
                                      const std::map<std::string, std::vector<int64_t>>& rois) {
  const std::vector<double> rv = to_vec1(r, "roi_summaries", "r");
  std::vector<double> nc;
  if (noise_ceiling.defined()) {
    nc = to_vec1(noise_ceiling, "roi_summaries", "noise ceiling");
    CORTEX_CHECK(nc.size() == rv.size(), "roi_summaries: r has ", rv.size(), " voxels but the noise ceiling has ", nc.size());
  }
  std::vector<RoiSummary> out;
  for (const auto& [name, cols] : rois) {
    RoiSummary s;
    s.name = name;
    s.voxels = static_cast<int64_t>(cols.size());
    std::vector<double> vals;
    double sc = 0;
    for (int64_t c : cols) {
      CORTEX_CHECK(c >= 0 && c < static_cast<int64_t>(rv.size()), "roi_summaries: ROI ", name, " lists voxel ", c,
                   ", expected one in [0, ", rv.size(), ")");
      vals.push_back(rv[c]);
      if (!nc.empty() && nc[c] > 0 && !std::isnan(rv[c])) {
        const double rp = std::max(rv[c], 0.0);
        sc += rp * rp / nc[c] * 100.0;
        ++s.score_voxels;
      }
    }
    if (vals.empty()) {
      s.mean_r = s.median_r = s.score = kNaN;
    } else {
      s.mean_r = std::accumulate(vals.begin(), vals.end(), 0.0) / vals.size();
      std::sort(vals.begin(), vals.end());
      const size_t h = vals.size() / 2;
      s.median_r = vals.size() % 2 ? vals[h] : 0.5 * (vals[h - 1] + vals[h]);
      s.score = s.score_voxels ? sc / s.score_voxels : kNaN;
    }
    out.push_back(s);
  }
  return out;
}

}  // namespace cortex::analysis
