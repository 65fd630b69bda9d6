// Concepts and trajectories (analysis/concepts.h; docs/alignedcut.md, "Concepts and trajectories").
#include "analysis/concepts.h"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <limits>

#include "analysis/spectral/colour.h"
#include "analysis/spectral/nystrom.h"

namespace cortex::analysis {
namespace {

// Row-major float64 copy of a 2-D float tensor, checked finite.
std::vector<double> host_matrix(const Tensor& x, const char* op, const char* name, int64_t& rows, int64_t& cols) {
  CORTEX_CHECK(x.defined() && x.dim() == 2, op, ": expected ", name, " of shape (N, d), found ",
               x.defined() ? shape_str(x.shape()) : std::string("an undefined tensor"));
  CORTEX_CHECK(x.dtype() == DType::Float32 || x.dtype() == DType::Float64, op, ": expected ", name,
               " float32 or float64, found ", dtype_name(x.dtype()));
  rows = x.size(0), cols = x.size(1);
  std::vector<double> v = x.to(Device::cpu()).contiguous().to_vector<double>();
  for (size_t i = 0; i < v.size(); ++i)
    CORTEX_CHECK(std::isfinite(v[i]), op, ": ", name, " has a non-finite value at row ",
                 static_cast<int64_t>(i) / cols);
  return v;
}

std::vector<int64_t> host_labels(const Tensor& x, const char* op, const char* name, int64_t n, int64_t lo, int64_t hi) {
  CORTEX_CHECK(x.defined() && x.dim() == 1 && x.size(0) == n, op, ": expected ", name, " of shape (", n, "), found ",
               x.defined() ? shape_str(x.shape()) : std::string("an undefined tensor"));
  CORTEX_CHECK(x.dtype() == DType::Int64 || x.dtype() == DType::Int32, op, ": expected ", name,
               " int64 or int32, found ", dtype_name(x.dtype()));
  std::vector<int64_t> v = x.to(Device::cpu()).contiguous().to(DType::Int64).to_vector<int64_t>();
  for (size_t i = 0; i < v.size(); ++i)
    CORTEX_CHECK(v[i] >= lo && v[i] < hi, op, ": ", name, "[", i, "] = ", v[i], " is outside [", lo, ", ", hi, ")");
  return v;
}

double dist2(const double* a, const double* b, int64_t e) {
  double s = 0;
  for (int64_t j = 0; j < e; ++j) s += (a[j] - b[j]) * (a[j] - b[j]);
  return s;
}

}  // namespace

Concepts find_concepts(const Tensor& embedding, const ConceptOptions& opt) {
  const char* op = "find_concepts";
  int64_t N = 0, e = 0;
  const std::vector<double> x = host_matrix(embedding, op, "embedding", N, e);
  const int64_t C = opt.concepts;
  CORTEX_CHECK(C >= 1 && C <= N, op, ": expected 1 <= concepts <= N = ", N, ", found ", C);
  CORTEX_CHECK(e >= 1, op, ": expected an embedding of at least one dimension, found (", N, ", 0)");
  CORTEX_CHECK(std::isfinite(opt.radius) && opt.radius >= 0, op, ": expected radius >= 0, found ", opt.radius);
  CORTEX_CHECK(opt.radius_quantile > 0 && opt.radius_quantile <= 1, op, ": expected radius_quantile in (0, 1], found ",
               opt.radius_quantile);

  std::vector<double> mean(e, 0.0);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < e; ++j) mean[j] += x[i * e + j] / static_cast<double>(N);
  int64_t first = 0;
  double best = std::numeric_limits<double>::infinity();
  for (int64_t i = 0; i < N; ++i) {
    const double d = dist2(&x[i * e], mean.data(), e);
    if (d < best) best = d, first = i;
  }
  // FPS, exactly: d2[i] is the squared distance of node i to the nearest centre so far.
  std::vector<int64_t> centres{first};
  std::vector<double> d2(N);
  std::vector<int64_t> near(N, 0);
  for (int64_t i = 0; i < N; ++i) d2[i] = dist2(&x[i * e], &x[first * e], e);
  while (static_cast<int64_t>(centres.size()) < C) {
    const int64_t next = std::max_element(d2.begin(), d2.end()) - d2.begin();  // first maximum: lowest index
    CORTEX_CHECK(d2[next] > 0, op, ": the embedding has only ", centres.size(), " distinct points, fewer than the ", C,
                 " concepts asked for");
    const int64_t c = static_cast<int64_t>(centres.size());
    centres.push_back(next);
    for (int64_t i = 0; i < N; ++i) {
      const double d = dist2(&x[i * e], &x[next * e], e);
      if (d < d2[i]) d2[i] = d, near[i] = c;  // strict: ties stay with the lower concept
    }
  }

  Concepts r;
  r.centres = from_vector(centres, {C}, DType::Int64);
  std::vector<double> pts(C * e);
  for (int64_t c = 0; c < C; ++c) std::copy_n(&x[centres[c] * e], e, &pts[c * e]);
  r.centre_points = from_vector(pts, {C, e}, DType::Float64);
  std::vector<double> dist(N);
  for (int64_t i = 0; i < N; ++i) dist[i] = std::sqrt(d2[i]);
  if (opt.radius > 0) {
    r.radius = opt.radius;
  } else {  // the quantile with linear interpolation (torch.quantile's, numpy's default)
    std::vector<double> s = dist;
    std::sort(s.begin(), s.end());
    const double pos = opt.radius_quantile * static_cast<double>(N - 1);
    const int64_t lo = static_cast<int64_t>(std::floor(pos)), hi = std::min(lo + 1, N - 1);
    r.radius = s[lo] + (pos - static_cast<double>(lo)) * (s[hi] - s[lo]);
  }
  std::vector<int64_t> member(N), counts(C, 0);
  for (int64_t i = 0; i < N; ++i) {
    member[i] = dist[i] <= r.radius ? near[i] : -1;
    if (member[i] >= 0) ++counts[member[i]];
  }
  r.nearest = from_vector(near, {N}, DType::Int64);
  r.distance = from_vector(dist, {N}, DType::Float64);
  r.member = from_vector(member, {N}, DType::Int64);
  r.counts = from_vector(counts, {C}, DType::Int64);
  return r;
}

namespace {

// Sums and squared deviations per concept over rows of a (N, D) row-major array of T, in float64
// (two passes: no cancellation for activations far from zero), without a float64 copy of the rows.
template <class T>
void concept_moments(const T* a, int64_t N, int64_t D, const std::vector<int64_t>& m, int64_t C,
                     std::vector<double>& mean, std::vector<double>& sd, std::vector<int64_t>& n, const char* op) {
  mean.assign(C * D, 0.0), sd.assign(C * D, 0.0), n.assign(C, 0);
  for (int64_t i = 0; i < N; ++i) {
    for (int64_t j = 0; j < D; ++j)
      CORTEX_CHECK(std::isfinite(static_cast<double>(a[i * D + j])), op,
                   ": activations have a non-finite value at row ", i);
    if (m[i] < 0) continue;
    ++n[m[i]];
    for (int64_t j = 0; j < D; ++j) mean[m[i] * D + j] += static_cast<double>(a[i * D + j]);
  }
  for (int64_t c = 0; c < C; ++c)
    for (int64_t j = 0; j < D; ++j) mean[c * D + j] = n[c] > 0 ? mean[c * D + j] / static_cast<double>(n[c]) : 0.0;
  for (int64_t i = 0; i < N; ++i) {
    if (m[i] < 0) continue;
    for (int64_t j = 0; j < D; ++j) {
      const double d = static_cast<double>(a[i * D + j]) - mean[m[i] * D + j];
      sd[m[i] * D + j] += d * d;
    }
  }
  for (int64_t c = 0; c < C; ++c)
    for (int64_t j = 0; j < D; ++j)
      sd[c * D + j] = n[c] > 0 ? std::sqrt(sd[c * D + j] / static_cast<double>(n[c])) : 0.0;
}

}  // namespace

ConceptStats concept_activations(const Tensor& activations, const Tensor& member, int64_t concepts) {
  const char* op = "concept_activations";
  CORTEX_CHECK(activations.defined() && activations.dim() == 2, op, ": expected activations of shape (N, D), found ",
               activations.defined() ? shape_str(activations.shape()) : std::string("an undefined tensor"));
  CORTEX_CHECK(activations.dtype() == DType::Float32 || activations.dtype() == DType::Float64, op,
               ": expected activations float32 or float64, found ", dtype_name(activations.dtype()));
  CORTEX_CHECK(concepts >= 1, op, ": expected concepts >= 1, found ", concepts);
  const int64_t N = activations.size(0), D = activations.size(1);
  const std::vector<int64_t> m = host_labels(member, op, "member", N, -1, concepts);
  const Tensor a = activations.to(Device::cpu()).contiguous();  // no copy when already so
  std::vector<double> mean, sd;
  std::vector<int64_t> n;
  if (a.dtype() == DType::Float32)
    concept_moments(a.data<float>(), N, D, m, concepts, mean, sd, n, op);
  else
    concept_moments(a.data<double>(), N, D, m, concepts, mean, sd, n, op);
  ConceptStats s;
  s.mean = from_vector(mean, {concepts, D}, DType::Float64);
  s.std = from_vector(sd, {concepts, D}, DType::Float64);
  s.counts = from_vector(n, {concepts}, DType::Int64);
  return s;
}

Tensor brain_maps(const Tensor& mean, const Tensor& head_weight) {
  const char* op = "brain_maps";
  int64_t C = 0, D = 0, V = 0, Dh = 0;
  const std::vector<double> m = host_matrix(mean, op, "mean", C, D);
  const std::vector<double> h = host_matrix(head_weight, op, "head_weight", V, Dh);
  CORTEX_CHECK(Dh == D, op, ": expected head_weight (V, ", D, ") for means of width ", D, ", found ",
               shape_str(head_weight.shape()));
  std::vector<double> out(C * V, 0.0);
  for (int64_t c = 0; c < C; ++c)
    for (int64_t v = 0; v < V; ++v) {
      double s = 0;
      for (int64_t j = 0; j < D; ++j) s += h[v * D + j] * m[c * D + j];
      out[c * V + v] = s;
    }
  return from_vector(out, {C, V}, DType::Float64);
}

Tensor align_nodes(const std::vector<Tensor>& maps, const std::vector<Tensor>& align) {
  const char* op = "align_nodes";
  CORTEX_CHECK(!maps.empty() && maps.size() == align.size(), op, ": expected one alignment per map, found ",
               maps.size(), " maps and ", align.size(), " alignments");
  int64_t N = 0;
  const int64_t B = maps[0].defined() && maps[0].dim() == 4 ? maps[0].size(0) : -1;
  const int64_t D = align[0].defined() && align[0].dim() == 2 ? align[0].size(0) : -1;
  for (size_t l = 0; l < maps.size(); ++l) {
    const Tensor& f = maps[l];
    const Tensor& w = align[l];
    CORTEX_CHECK(f.defined() && f.dim() == 4 && f.size(0) == B, op, ": expected map ", l, " of shape (", B,
                 ", C, H, W) like map 0, found ", f.defined() ? shape_str(f.shape()) : std::string("undefined"));
    CORTEX_CHECK(w.defined() && w.dim() == 2 && w.size(0) == D && w.size(1) == f.size(1), op, ": expected alignment ",
                 l, " of shape (", D, ", ", f.size(1), "), found ",
                 w.defined() ? shape_str(w.shape()) : std::string("undefined"));
    CORTEX_CHECK(f.dtype() == DType::Float32 || f.dtype() == DType::Float64, op, ": expected map ", l,
                 " float32 or float64, found ", dtype_name(f.dtype()));
    N += B * f.size(2) * f.size(3);
  }
  CORTEX_CHECK(D >= 1, op, ": expected a shared space of at least one dimension, found ", D);
  using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Tensor out = empty({N, D}, DType::Float32);
  float* o = out.data<float>();
  int64_t row = 0;
  for (size_t l = 0; l < maps.size(); ++l) {
    const Tensor f = maps[l].to(Device::cpu()).to(DType::Float32).contiguous();
    const Tensor w = align[l].to(Device::cpu()).to(DType::Float32).contiguous();
    const int64_t Cl = f.size(1), T = f.size(2) * f.size(3);
    const Eigen::Map<const Mat> W(w.data<float>(), D, Cl);
    for (int64_t b = 0; b < B; ++b) {
      const Eigen::Map<const Mat> F(f.data<float>() + b * Cl * T, Cl, T);  // (C_l, T)
      Eigen::Map<Mat> Z(o + row * D, T, D);
      Z.noalias() = (W * F).transpose();
      row += T;
    }
  }
  for (int64_t i = 0; i < N * D; ++i)
    CORTEX_CHECK(std::isfinite(o[i]), op, ": aligned activation of node ", i / D,
                 " is not finite (non-finite features or alignment)");
  return out;
}

Trajectories trajectories(const Tensor& node_concept, int64_t concepts, int64_t images,
                          const std::vector<std::pair<int64_t, int64_t>>& grids, int64_t gh, int64_t gw) {
  const char* op = "trajectories";
  CORTEX_CHECK(!grids.empty(), op, ": expected at least one layer grid, found none");
  CORTEX_CHECK(images >= 1, op, ": expected images >= 1, found ", images);
  CORTEX_CHECK(concepts >= 1, op, ": expected concepts >= 1, found ", concepts);
  const int64_t L = static_cast<int64_t>(grids.size());
  std::vector<int64_t> offset(L + 1, 0);
  int64_t most = -1;
  for (int64_t l = 0; l < L; ++l) {
    const auto [H, W] = grids[l];
    CORTEX_CHECK(H >= 1 && W >= 1, op, ": expected a positive grid for layer ", l, ", found ", H, "x", W);
    offset[l + 1] = offset[l] + images * H * W;
    most = std::max(most, H * W);
  }
  CORTEX_CHECK((gh == 0) == (gw == 0), op, ": expected both sides of the common grid or neither, found ", gh, "x", gw);
  if (gh == 0 && gw == 0) {
    for (int64_t l = 0; l < L; ++l)
      if (grids[l].first * grids[l].second == most) {
        gh = grids[l].first, gw = grids[l].second;
        break;
      }
  }
  CORTEX_CHECK(gh >= 1 && gw >= 1, op, ": expected a positive common grid, found ", gh, "x", gw);
  const std::vector<int64_t> k = host_labels(node_concept, op, "node_concept", offset[L], 0, concepts);
  Trajectories t;
  t.gh = gh, t.gw = gw;
  std::vector<int64_t> traj(images * gh * gw * L);
  for (int64_t l = 0; l < L; ++l) {
    const auto [H, W] = grids[l];
    for (int64_t b = 0; b < images; ++b)
      for (int64_t i = 0; i < gh; ++i)
        for (int64_t j = 0; j < gw; ++j) {
          // The layer cell containing the common cell's centre: floor((i + 1/2) H / gh), in integers.
          const int64_t h = ((2 * i + 1) * H) / (2 * gh), w = ((2 * j + 1) * W) / (2 * gw);
          traj[((b * gh + i) * gw + j) * L + l] = k[offset[l] + (b * H + h) * W + w];
        }
  }
  const int64_t P = std::max<int64_t>(L - 1, 0), C = concepts;
  std::vector<int64_t> counts(P * C * C, 0);
  std::vector<double> trans(P * C * C, 0.0);
  for (int64_t cell = 0; cell < images * gh * gw; ++cell)
    for (int64_t l = 0; l + 1 < L; ++l) ++counts[(l * C + traj[cell * L + l]) * C + traj[cell * L + l + 1]];
  for (int64_t l = 0; l < P; ++l)
    for (int64_t a = 0; a < C; ++a) {
      int64_t s = 0;
      for (int64_t b = 0; b < C; ++b) s += counts[(l * C + a) * C + b];
      for (int64_t b = 0; b < C; ++b)
        trans[(l * C + a) * C + b] =
            s > 0 ? static_cast<double>(counts[(l * C + a) * C + b]) / static_cast<double>(s) : 0;
    }
  t.path = from_vector(traj, {images, gh, gw, L}, DType::Int64);
  t.counts = from_vector(counts, {P, C, C}, DType::Int64);
  t.transitions = from_vector(trans, {P, C, C}, DType::Float64);
  return t;
}

Tensor spectral_tsne(const Tensor& eigenvectors, int64_t dims, int64_t samples, uint64_t seed) {
  const char* op = "spectral_tsne";
  int64_t N = 0, k = 0;
  host_matrix(eigenvectors, op, "eigenvectors", N, k);
  CORTEX_CHECK(dims == 2 || dims == 3, op, ": expected dims 2 or 3, found ", dims);
  CORTEX_CHECK(N >= 2 && k >= 1, op, ": expected at least 2 rows and 1 column, found ",
               shape_str(eigenvectors.shape()));
  CORTEX_CHECK(samples >= 2, op, ": expected samples >= 2, found ", samples);
  const Tensor ev = eigenvectors.to(Device::cpu()).to(DType::Float64).contiguous();
  const int64_t ns = std::min(samples, N);
  const std::vector<int64_t> idx = spectral::farthest_point_sampling(ev, ns, seed).to_vector<int64_t>();
  Tensor sub = empty({ns, k}, DType::Float64);
  for (int64_t i = 0; i < ns; ++i) sub.select(0, i).copy_(ev.select(0, idx[i]));
  spectral::TsneOptions to;
  to.dims = dims;
  to.seed = seed;
  const Tensor emb = spectral::tsne(sub, to);
  return spectral::propagate_knn(emb, ev, sub, 1, spectral::Affinity::Cosine, 1.0).to(DType::Float64);
}

}  // namespace cortex::analysis
