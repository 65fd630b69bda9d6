// Concepts and trajectories (analysis/concepts.h) against planted ground truth and float64 loops.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <set>

#include "analysis/concepts.h"
#include "test_util.h"

namespace cortex::analysis {
namespace {

using cortex::testing::randn;

// Adjusted Rand index of two labelings (Hubert & Arabie 1985), float64.
double ari(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  std::map<std::pair<int64_t, int64_t>, double> nij;
  std::map<int64_t, double> ai, bj;
  for (size_t i = 0; i < a.size(); ++i) nij[{a[i], b[i]}] += 1, ai[a[i]] += 1, bj[b[i]] += 1;
  auto c2 = [](double n) { return n * (n - 1) / 2; };
  double sij = 0, sa = 0, sb = 0;
  for (auto& [k, v] : nij) sij += c2(v);
  for (auto& [k, v] : ai) sa += c2(v);
  for (auto& [k, v] : bj) sb += c2(v);
  const double expected = sa * sb / c2(static_cast<double>(a.size()));
  return (sij - expected) / ((sa + sb) / 2 - expected);
}

// Planted clusters: sizes[c] points around centre c (coordinates spread `sep` apart) with unit noise,
// in e dimensions, in a shuffled order. Returns the points (N, e) float64 and each point's cluster.
struct Planted {
  Tensor x;
  std::vector<int64_t> label;
};
Planted planted(const std::vector<int64_t>& sizes, int64_t e, double sep, uint64_t seed) {
  const int64_t K = static_cast<int64_t>(sizes.size());
  const std::vector<double> centre = randn({K, e}, seed).to_vector<double>();
  std::vector<int64_t> label;
  for (int64_t c = 0; c < K; ++c) label.insert(label.end(), sizes[c], c);
  const int64_t N = static_cast<int64_t>(label.size());
  // A fixed shuffle (a multiplicative permutation mod a prime > N would do too; this is plainer).
  std::vector<int64_t> order(N);
  std::iota(order.begin(), order.end(), 0);
  const std::vector<double> keys = randn({N}, seed + 1).to_vector<double>();
  std::sort(order.begin(), order.end(), [&](int64_t i, int64_t j) { return keys[i] < keys[j]; });
  const std::vector<double> noise = randn({N, e}, seed + 2).to_vector<double>();
  Planted p;
  std::vector<double> x(N * e);
  for (int64_t i = 0; i < N; ++i) {
    const int64_t c = label[order[i]];
    p.label.push_back(c);
    for (int64_t j = 0; j < e; ++j) x[i * e + j] = sep * centre[c * e + j] + noise[i * e + j];
  }
  p.x = from_vector(x, {N, e}, DType::Float64);
  return p;
}

TEST(Concepts, FpsAndSpheresRecoverPlantedClusters) {
  const std::vector<int64_t> sizes{37, 50, 61, 44, 29, 1};  // odd sizes, one singleton cluster
  const Planted p = planted(sizes, 3, 25.0, 11);
  ConceptOptions o;
  o.concepts = 6;
  const Concepts c = find_concepts(p.x.to(DType::Float32), o);
  const std::vector<int64_t> near = c.nearest.to_vector<int64_t>(), member = c.member.to_vector<int64_t>();
  // Every planted cluster got exactly one centre.
  std::set<int64_t> hit;
  for (int64_t i : c.centres.to_vector<int64_t>()) hit.insert(p.label[i]);
  EXPECT_EQ(hit.size(), sizes.size());
  const double a = ari(near, p.label);
  EXPECT_GE(a, 0.99) << "ARI of the nearest-centre concepts";
  // Sphere purity: the members of each sphere share one planted cluster.
  std::map<int64_t, std::map<int64_t, int64_t>> tally;
  int64_t members = 0, majority = 0;
  for (size_t i = 0; i < member.size(); ++i)
    if (member[i] >= 0) ++tally[member[i]][p.label[i]], ++members;
  for (auto& [k, t] : tally) {
    int64_t m = 0;
    for (auto& [l, n] : t) m = std::max(m, n);
    majority += m;
  }
  EXPECT_GE(static_cast<double>(majority) / static_cast<double>(members), 0.99) << "sphere purity";
  std::printf("planted clusters: ARI %.4f, purity %.4f, radius %.3f, %lld of %zu nodes in spheres\n", a,
              static_cast<double>(majority) / members, c.radius, static_cast<long long>(members), member.size());
}

// The library's FPS, radius and spheres against a plain reimplementation of their definitions.
TEST(Concepts, MatchesDefinitionLoops) {
  const Tensor x = randn({83, 2}, 5);
  const std::vector<double> v = x.to_vector<double>();
  const int64_t N = 83, C = 7;
  for (double q : {0.3, 0.5, 1.0}) {
    ConceptOptions o;
    o.concepts = C;
    o.radius_quantile = q;
    const Concepts c = find_concepts(x, o);
    auto d = [&](int64_t i, int64_t j) { return std::hypot(v[2 * i] - v[2 * j], v[2 * i + 1] - v[2 * j + 1]); };
    double mx = 0, my = 0;
    for (int64_t i = 0; i < N; ++i) mx += v[2 * i] / N, my += v[2 * i + 1] / N;
    int64_t first = 0;
    for (int64_t i = 1; i < N; ++i)
      if (std::hypot(v[2 * i] - mx, v[2 * i + 1] - my) < std::hypot(v[2 * first] - mx, v[2 * first + 1] - my))
        first = i;
    std::vector<int64_t> cen{first};
    while (static_cast<int64_t>(cen.size()) < C) {
      int64_t arg = -1;
      double best = -1;
      for (int64_t i = 0; i < N; ++i) {
        double m = 1e300;
        for (int64_t k : cen) m = std::min(m, d(i, k));
        if (m > best) best = m, arg = i;
      }
      cen.push_back(arg);
    }
    EXPECT_EQ(c.centres.to_vector<int64_t>(), cen);
    std::vector<double> nd(N);
    std::vector<int64_t> nk(N);
    for (int64_t i = 0; i < N; ++i) {
      nd[i] = 1e300;
      for (int64_t k = 0; k < C; ++k)
        if (d(i, cen[k]) < nd[i]) nd[i] = d(i, cen[k]), nk[i] = k;
    }
    EXPECT_EQ(c.nearest.to_vector<int64_t>(), nk);
    std::vector<double> s = nd;
    std::sort(s.begin(), s.end());
    const double pos = q * (N - 1);
    const double r = s[static_cast<int64_t>(pos)] +
                     (pos - std::floor(pos)) *
                         (s[std::min<int64_t>(static_cast<int64_t>(pos) + 1, N - 1)] - s[static_cast<int64_t>(pos)]);
    EXPECT_NEAR(c.radius, r, 1e-12);
    const std::vector<int64_t> m = c.member.to_vector<int64_t>(), counts = c.counts.to_vector<int64_t>();
    std::vector<int64_t> cnt(C, 0);
    for (int64_t i = 0; i < N; ++i) {
      EXPECT_EQ(m[i], nd[i] <= c.radius ? nk[i] : -1);
      if (m[i] >= 0) ++cnt[m[i]];
    }
    EXPECT_EQ(counts, cnt);
    for (int64_t n : counts) EXPECT_GE(n, 1);
    if (q == 1.0) EXPECT_EQ(std::accumulate(counts.begin(), counts.end(), int64_t{0}), N);
  }
  ConceptOptions fixed;
  fixed.concepts = 3;
  fixed.radius = 0.25;
  EXPECT_EQ(find_concepts(x, fixed).radius, 0.25);
}

TEST(Concepts, ActivationsAndBrainMapsAgainstFloat64) {
  const int64_t N = 57, D = 9, V = 13, C = 4;
  const Tensor act = randn({N, D}, 21, DType::Float32);
  const Tensor head = randn({V, D}, 22, DType::Float32);
  std::vector<int64_t> member(N);
  for (int64_t i = 0; i < N; ++i) member[i] = (i * 7) % 5 - 1;  // -1..3: some nodes in no sphere
  member[3] = 2;
  for (int64_t& m : member) m = m == 3 ? 1 : m;  // concept 3 stays empty
  const ConceptStats s = concept_activations(act, from_vector(member, {N}, DType::Int64), C);
  const std::vector<double> a = act.to_vector<double>(), h = head.to_vector<double>();
  const std::vector<double> mean = s.mean.to_vector<double>(), sd = s.std.to_vector<double>();
  const Tensor maps = brain_maps(s.mean, head);
  ASSERT_EQ(maps.shape(), (Shape{C, V}));
  const std::vector<double> got = maps.to_vector<double>();
  for (int64_t c = 0; c < C; ++c) {
    long double n = 0;
    std::vector<long double> m(D, 0), q(D, 0);
    for (int64_t i = 0; i < N; ++i)
      if (member[i] == c) {
        n += 1;
        for (int64_t j = 0; j < D; ++j)
          m[j] += a[i * D + j], q[j] += static_cast<long double>(a[i * D + j]) * a[i * D + j];
      }
    EXPECT_EQ(s.counts.to_vector<int64_t>()[c], static_cast<int64_t>(n));
    for (int64_t j = 0; j < D; ++j) {
      const long double mu = n > 0 ? m[j] / n : 0, var = n > 0 ? q[j] / n - mu * mu : 0;
      EXPECT_NEAR(mean[c * D + j], static_cast<double>(mu), 1e-12);
      EXPECT_NEAR(sd[c * D + j], std::sqrt(static_cast<double>(std::max<long double>(var, 0))), 1e-9);
    }
    for (int64_t v = 0; v < V; ++v) {
      long double r = 0;
      for (int64_t j = 0; j < D; ++j) r += static_cast<long double>(h[v * D + j]) * (n > 0 ? m[j] / n : 0);
      EXPECT_NEAR(got[c * V + v], static_cast<double>(r), 1e-12) << "concept " << c << " voxel " << v;
    }
  }
  // No member at all: count 0, mean and std 0 (documented), not NaN.
  const ConceptStats none = concept_activations(act, from_vector(std::vector<int64_t>(N, -1), {N}, DType::Int64), 1);
  EXPECT_EQ(none.counts.to_vector<int64_t>()[0], 0);
  for (double v : none.mean.to_vector<double>()) EXPECT_EQ(v, 0.0);
  for (double v : none.std.to_vector<double>()) EXPECT_EQ(v, 0.0);
  // One member: its row is the mean, std 0.
  std::vector<int64_t> only(N, -1);
  only[10] = 0;
  const ConceptStats one = concept_activations(act, from_vector(only, {N}, DType::Int64), 1);
  for (int64_t j = 0; j < D; ++j) {
    EXPECT_EQ(one.mean.to_vector<double>()[j], a[10 * D + j]);
    EXPECT_EQ(one.std.to_vector<double>()[j], 0.0);
  }
}

TEST(Concepts, AlignNodesAgainstLoop) {
  const int64_t B = 2, D = 5;
  const std::vector<Tensor> maps{randn({B, 3, 4, 3}, 31, DType::Float32),
                                 cortex::testing::noncontig(randn({B, 6, 2, 1}, 32, DType::Float32))};
  const std::vector<Tensor> align{randn({D, 3}, 33, DType::Float32), randn({D, 6}, 34, DType::Float32)};
  const Tensor z = align_nodes(maps, align);
  ASSERT_EQ(z.shape(), (Shape{B * 12 + B * 2, D}));
  const std::vector<double> got = z.to_vector<double>();
  int64_t row = 0;
  for (size_t l = 0; l < maps.size(); ++l) {
    const Tensor f = maps[l].contiguous();
    const std::vector<double> fv = f.to_vector<double>(), wv = align[l].to_vector<double>();
    const int64_t Cl = f.size(1), H = f.size(2), W = f.size(3);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t w = 0; w < W; ++w, ++row)
          for (int64_t d = 0; d < D; ++d) {
            double s = 0;
            for (int64_t c = 0; c < Cl; ++c) s += wv[d * Cl + c] * fv[((b * Cl + c) * H + h) * W + w];
            EXPECT_NEAR(got[row * D + d], s, 1e-5);
          }
  }
  EXPECT_THROW(align_nodes({maps[0]}, {align[1]}), Error);
  EXPECT_THROW(align_nodes(maps, {align[0]}), Error);
  EXPECT_THROW(align_nodes({maps[0], randn({B + 1, 6, 2, 1}, 35, DType::Float32)}, align), Error);
}

// A planted layer-to-layer relabelling: layer 0 (6x6 grid) has patches of 4 kinds in 2x2 blocks;
// layer 1 (3x3) gives each block the kind perm[k]; layer 2 (3x3) keeps it. The nodes' embedding puts
// each kind at its own place. FPS + nearest centre must find the kinds and the transition matrices
// must be the permutation, then the identity.
TEST(Concepts, TransitionsRecoverPlantedRelabelling) {
  const int64_t B = 3, K = 4;
  const std::vector<int64_t> perm{2, 0, 3, 1};
  const std::vector<std::pair<int64_t, int64_t>> grids{{6, 6}, {3, 3}, {3, 3}};
  std::vector<int64_t> kind;  // node -> planted kind, layer-major
  std::vector<int64_t> block(B * 9);
  for (int64_t i = 0; i < B * 9; ++i) block[i] = (i * 5 + i / 7) % K;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < 6; ++h)
      for (int64_t w = 0; w < 6; ++w) kind.push_back(block[b * 9 + (h / 2) * 3 + w / 2]);
  for (int l = 1; l <= 2; ++l)
    for (int64_t i = 0; i < B * 9; ++i) kind.push_back(perm[block[i]]);
  const int64_t N = static_cast<int64_t>(kind.size());
  const std::vector<double> centre = randn({K, 3}, 41).to_vector<double>(),
                            noise = randn({N, 3}, 42).to_vector<double>();
  std::vector<double> x(N * 3);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < 3; ++j) x[i * 3 + j] = 30 * centre[kind[i] * 3 + j] + noise[i * 3 + j];
  ConceptOptions o;
  o.concepts = K;
  const Concepts c = find_concepts(from_vector(x, {N, 3}, DType::Float64), o);
  const std::vector<int64_t> near = c.nearest.to_vector<int64_t>();
  ASSERT_GE(ari(near, kind), 0.999);
  std::vector<int64_t> kind_of(K, -1);  // concept -> planted kind
  for (int64_t i = 0; i < N; ++i) kind_of[near[i]] = kind[i];
  const Trajectories t = trajectories(c.nearest, K, B, grids);
  EXPECT_EQ(t.gh, 6);
  EXPECT_EQ(t.gw, 6);
  ASSERT_EQ(t.transitions.shape(), (Shape{2, K, K}));
  ASSERT_EQ(t.path.shape(), (Shape{B, 6, 6, 3}));
  const std::vector<double> T = t.transitions.to_vector<double>();
  for (int64_t a = 0; a < K; ++a)
    for (int64_t b = 0; b < K; ++b) {
      EXPECT_EQ(T[(0 * K + a) * K + b], kind_of[b] == perm[kind_of[a]] ? 1.0 : 0.0) << a << "->" << b;
      EXPECT_EQ(T[(1 * K + a) * K + b], a == b ? 1.0 : 0.0) << a << "->" << b;
    }
  // Counts: every common cell (B * 36) once per layer pair.
  const std::vector<int64_t> counts = t.counts.to_vector<int64_t>();
  EXPECT_EQ(std::accumulate(counts.begin(), counts.begin() + K * K, int64_t{0}), B * 36);
}

// The common-grid lookup against its definition, on a grid that does not divide, and a row with no
// cell staying 0.
TEST(Concepts, TrajectoryGridLookup) {
  const int64_t B = 2;
  const std::vector<std::pair<int64_t, int64_t>> grids{{5, 3}, {2, 2}};
  std::vector<int64_t> k;
  for (int64_t i = 0; i < B * 15; ++i) k.push_back(i % 3);  // concepts 0..2 of 4
  for (int64_t i = 0; i < B * 4; ++i) k.push_back((i * 3 + 1) % 4 == 3 ? 2 : (i * 3 + 1) % 4);
  const Tensor kt = from_vector(k, {static_cast<int64_t>(k.size())}, DType::Int64);
  const Trajectories t = trajectories(kt, 4, B, grids, 7, 4);
  const std::vector<int64_t> got = t.path.to_vector<int64_t>();
  std::vector<int64_t> cnt(16, 0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < 7; ++i)
      for (int64_t j = 0; j < 4; ++j) {
        const int64_t h0 = static_cast<int64_t>(std::floor((i + 0.5) * 5 / 7)),
                      w0 = static_cast<int64_t>(std::floor((j + 0.5) * 3 / 4));
        const int64_t h1 = static_cast<int64_t>(std::floor((i + 0.5) * 2 / 7)),
                      w1 = static_cast<int64_t>(std::floor((j + 0.5) * 2 / 4));
        const int64_t a = k[(b * 5 + h0) * 3 + w0], c = k[B * 15 + (b * 2 + h1) * 2 + w1];
        EXPECT_EQ(got[((b * 7 + i) * 4 + j) * 2 + 0], a);
        EXPECT_EQ(got[((b * 7 + i) * 4 + j) * 2 + 1], c);
        ++cnt[a * 4 + c];
      }
  EXPECT_EQ(t.counts.to_vector<int64_t>(), cnt);
  const std::vector<double> T = t.transitions.to_vector<double>();
  for (int64_t a = 0; a < 4; ++a) {
    const int64_t s = cnt[a * 4] + cnt[a * 4 + 1] + cnt[a * 4 + 2] + cnt[a * 4 + 3];
    for (int64_t c = 0; c < 4; ++c) EXPECT_DOUBLE_EQ(T[a * 4 + c], s ? static_cast<double>(cnt[a * 4 + c]) / s : 0.0);
  }
  EXPECT_EQ(cnt[3 * 4 + 0] + cnt[3 * 4 + 1] + cnt[3 * 4 + 2] + cnt[3 * 4 + 3], 0);  // concept 3 is never at layer 0
  // One layer: no pairs, an empty (0, C, C) matrix.
  const Trajectories one =
      trajectories(from_vector(std::vector<int64_t>(B * 15, 1), {B * 15}, DType::Int64), 2, B, {grids[0]});
  EXPECT_EQ(one.transitions.shape(), (Shape{0, 2, 2}));
  EXPECT_THROW(trajectories(kt, 2, B, grids), Error);        // concept 3 >= 2
  EXPECT_THROW(trajectories(kt, 4, B + 1, grids), Error);    // node count
  EXPECT_THROW(trajectories(kt, 4, B, grids, 3, 0), Error);  // one side of the grid
}

// spectral_tsne keeps planted clusters of eigenvector rows apart: concepts found in its 2-D output
// recover them.
TEST(Concepts, SpectralTsneKeepsClusters) {
  const Planted p = planted({40, 31, 25}, 6, 10.0, 51);
  const Tensor e = spectral_tsne(p.x, 2, 60, 0);
  ASSERT_EQ(e.shape(), (Shape{96, 2}));
  ConceptOptions o;
  o.concepts = 3;
  const Concepts c = find_concepts(e, o);
  const double a = ari(c.nearest.to_vector<int64_t>(), p.label);
  std::printf("spectral t-SNE (2-D, 60 samples): ARI %.4f\n", a);
  EXPECT_GE(a, 0.95);
  EXPECT_THROW(spectral_tsne(p.x, 1, 60, 0), Error);
}

TEST(Concepts, Errors) {
  const Tensor x = randn({10, 2}, 61);
  ConceptOptions o;
  o.concepts = 11;
  EXPECT_THROW(find_concepts(x, o), Error);
  o.concepts = 0;
  EXPECT_THROW(find_concepts(x, o), Error);
  o.concepts = 3;
  EXPECT_THROW(find_concepts(zeros({10, 2}, DType::Float64), o), Error);  // one distinct point
  std::vector<double> bad = x.to_vector<double>();
  bad[7] = std::nan("");
  EXPECT_THROW(find_concepts(from_vector(bad, {10, 2}, DType::Float64), o), Error);
  o.radius_quantile = 0;
  EXPECT_THROW(find_concepts(x, o), Error);
  o.radius_quantile = 0.5;
  o.radius = -1;
  EXPECT_THROW(find_concepts(x, o), Error);
  EXPECT_THROW(find_concepts(zeros({10}, DType::Float64), ConceptOptions{}), Error);
  EXPECT_THROW(concept_activations(x, from_vector(std::vector<int64_t>(10, 3), {10}, DType::Int64), 3), Error);
  EXPECT_THROW(concept_activations(x, from_vector(std::vector<int64_t>(9, 0), {9}, DType::Int64), 3), Error);
  EXPECT_THROW(brain_maps(randn({3, 4}, 1), randn({5, 3}, 2)), Error);
  std::vector<float> nan_act(10 * 2, 1.0f);
  nan_act[13] = std::nanf("");
  EXPECT_THROW(concept_activations(from_vector(nan_act, {10, 2}, DType::Float32),
                                   from_vector(std::vector<int64_t>(10, -1), {10}, DType::Int64), 3),
               Error);  // refused even where no sphere reads it: a NaN there means a broken input
  EXPECT_THROW(align_nodes({from_vector(nan_act, {1, 2, 5, 2}, DType::Float32)}, {randn({3, 2}, 3, DType::Float32)}),
               Error);
}

}  // namespace
}  // namespace cortex::analysis
