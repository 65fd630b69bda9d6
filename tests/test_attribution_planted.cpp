// Integrated gradients on planted truth: simulated simple cells (a linear Gabor on the grey image,
// known centre and sigma), models fitted by encoding::fit, and for each well-predicted simple voxel
// (test r > 0.3) the IG maps of the test images. The map (mean |IG| over images, smoothed 2 px) must
// peak inside the planted receptive field: median centre error over voxels below one planted sigma.
// Before the maps, the diagnosis they depend on: the fitted readout's own centre against the
// planted one through the same pixel <-> feature-map mapping (ModelFn::rf_centres_px).
//
// Two fitted models. (1) The data-driven core (ELU convolutions + Gaussian readout): smooth, so
// completeness holds within 1 % at 64 steps for every image and voxel (asserted). (2) Gaussian fwRF
// on a random AlexNet's features.1 (ReLU): it localises too, but its path crosses thousands of ReLU
// kinks and the uniform trapezoid rule's error falls only as 1 / steps (docs/attribution.md, "Why
// ReLU kinks cost accuracy"); the adaptive rule (the default) puts the evaluations where the kinks
// cost: at 64 gradient evaluations its median and 90th-percentile completeness errors are within 1 %
// (asserted), the uniform rule's are not. QuadratureSweep prints the rules against evaluations (the
// table of docs/attribution.md) when CORTEX_IG_SWEEP=1; with CORTEX_IG_MAPREF=1 as well, the maps'
// errors against a 2048-point uniform reference instead (CORTEX_IG_RULE, CORTEX_IG_N, CORTEX_IG_ROUNDS,
// CORTEX_IG_INITIAL, CORTEX_IG_SWEEP_IMAGES, CORTEX_IG_VERBOSE narrow or detail the sweep;
// CORTEX_IG_MODEL=2..4 sweeps other ReLU models, CORTEX_IG_FITCACHE=DIR keeps their fits).
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

#include "analysis/attribution.h"
#include "analysis/metrics.h"
#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "data/simulate.h"
#include "encoding/model_fn.h"
#include "encoding/pipeline.h"
#include "tests/test_util.h"

using namespace cortex;

namespace {

double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const double pos = q * double(v.size() - 1);
  const size_t lo = size_t(pos);
  return lo + 1 < v.size() ? v[lo] + (pos - double(lo)) * (v[lo + 1] - v[lo]) : v[lo];
}

struct Planted {
  cortex::testing::TempDir tmp;
  std::string dir;
  int64_t S = 32;
  std::vector<data::Voxel> truth;  // in column order (hemi both)
  Planted() {
    data::SimConfig cfg;
    cfg.n_train = 600;
    cfg.n_test = 6;
    cfg.voxels = 48;
    cfg.image_size = S;
    cfg.seed = 21;
    cfg.snr = 2.0;
    dir = data::write_simulation(data::simulate(cfg), tmp / "sim");
    truth = data::read_ground_truth(dir, "both").voxels;
  }
};

Planted& planted() {
  static Planted p;
  return p;
}

struct Outcome {
  double ig_error = NAN, com_error = NAN;  // medians over voxels, in planted sigmas
  double worst_completeness = 0;          // over images and voxels
  std::vector<double> scaled;             // per image and voxel: the error / max(|F(x) - F(b)|, sd_v)
};

// Each voxel's prediction standard deviation over the images: the scale of the completeness error
// when F(x) - F(b) is near 0 (docs/attribution.md, "Measured: rules against gradient evaluations").
std::vector<double> prediction_sd(const encoding::ModelFn& f, const Tensor& px, const std::vector<int64_t>& vox) {
  NoGradGuard ng;
  const Tensor y = f(px).to(DType::Float64);
  std::vector<double> sd(vox.size());
  for (size_t k = 0; k < vox.size(); ++k) {
    const std::vector<double> c = y.select(1, vox[k]).contiguous().to_vector<double>();
    double mu = 0, v = 0;
    for (double a : c) mu += a / double(c.size());
    for (double a : c) v += (a - mu) * (a - mu) / double(c.size() - 1);
    sd[k] = std::sqrt(v);
  }
  return sd;
}

struct Fitted {
  encoding::ModelFn f;
  std::vector<int64_t> vox;  // the simple voxels with test r > 0.3
  double readout_error = NAN;  // median, in planted sigmas (readouts with a centre)
};

// The planted centre and sigma of voxel v in the model's input pixels: simulator pixel c (Gabor
// coordinates: pixel centres at integers) is at (c + 0.5) * scale - 0.5 after the bilinear resize.
std::array<double, 3> planted_px(const data::Voxel& t, double scale) {
  return {(t.x + 0.5) * scale - 0.5, (t.y + 0.5) * scale - 0.5, t.size * scale};
}

// Fits o on the planted subject; the readout's own centres against the planted ones.
Fitted fit(const std::string& name, encoding::EncodingSpec o) {
  Planted& p = planted();
  o.data = p.dir, o.hemi = "both", o.out = p.tmp / name, o.device = "cpu";
  // CORTEX_IG_FITCACHE=DIR (sweeps only: the other models' fits take minutes): fit into DIR/name once
  // and reuse that model and its voxel list afterwards. Not checked against the spec: clear DIR when
  // a model's options change.
  const char* cache = std::getenv("CORTEX_IG_FITCACHE");
  if (cache) o.out = std::string(cache) + "/" + name;
  Fitted m;
  FILE* vf = cache ? std::fopen((o.out + "/vox.txt").c_str(), "r") : nullptr;
  if (vf) {
    long long v;
    while (std::fscanf(vf, "%lld", &v) == 1) m.vox.push_back(v);
    std::fclose(vf);
    m.f = encoding::load_model_fn(o.out + "/model.safetensors");
  } else {
    const encoding::FitResult fr = encoding::fit(o);
    const std::vector<double> r = analysis::pearson_r(fr.pred, fr.test.responses).to(DType::Float64).to_vector<double>();
    m.f = encoding::load_model_fn(o.out + "/model.safetensors");
    for (size_t v = 0; v < p.truth.size(); ++v)
      if (p.truth[v].kind == data::VoxelKind::Simple && r[v] > 0.3) m.vox.push_back(int64_t(v));
    if (cache) {
      vf = std::fopen((o.out + "/vox.txt").c_str(), "w");
      if (vf) {
        for (int64_t v : m.vox) std::fprintf(vf, "%lld\n", (long long)v);
        std::fclose(vf);
      }
    }
  }
  const Tensor c = m.f.rf_centres_px();
  std::vector<double> e;
  const double scale = double(m.f.size) / double(p.S);
  for (int64_t v : m.vox) {
    const auto t = planted_px(p.truth[size_t(v)], scale);
    if (c.defined()) e.push_back(std::hypot(c.at({v, 0}) - t[0], c.at({v, 1}) - t[1]) / t[2]);
  }
  m.readout_error = median(e);
  std::printf("%s: %zu simple voxels with test r > 0.3; the readout's own centre: median error %.2f planted sigmas\n",
              name.c_str(), m.vox.size(), m.readout_error);
  return m;
}

// IG maps of the test images for m's voxels: the mean |map| over images (channels summed), its
// argmax after a 2 px smoothing and its centre of mass, against the planted centres.
// tol > 0: the tolerance rule as `cortex attribute` runs it (bisect past `steps` until every target's
// error is within tol of max(|F(x) - F(b)|, its prediction sd)).
Outcome locate(const std::string& name, const Fitted& m, analysis::Baseline base, int64_t steps, int64_t images,
               double tol = 0) {
  Planted& p = planted();
  Outcome out;
  const encoding::ModelFn& f = m.f;
  const Tensor px = encoding::load_pixels(p.dir, f.size);
  Tensor mean_image;
  {
    NoGradGuard ng;
    mean_image = mean(px, {0}).contiguous();
  }
  analysis::IGOptions io;
  io.steps = steps;
  io.batch = 65;
  const analysis::ImageFn fn = [&f](const Tensor& x) { return f(x); };
  const std::vector<double> sd = prediction_sd(f, px, m.vox);
  if (tol > 0) io.tol = tol, io.tol_floor = sd;
  Tensor mean_abs;  // (K, S, S)
  for (int64_t i = 0; i < std::min(images, px.size(0)); ++i) {
    const Tensor x = px.select(0, i).contiguous();
    const auto res = analysis::integrated_gradients(
        fn, x, analysis::make_baseline(base, x, mean_image, analysis::blur_baseline_sigma(f.size)),
        analysis::voxel_targets(m.vox, f.voxels), io);
    for (double e : res.rel_error) out.worst_completeness = std::max(out.worst_completeness, e);
    for (size_t k = 0; k < m.vox.size(); ++k)
      out.scaled.push_back(res.abs_error[k] / std::max(std::fabs(res.f_x[k] - res.f_base[k]), sd[k]));
    NoGradGuard ng;
    const Tensor a = abs(sum(res.attr, {1}));
    mean_abs = mean_abs.defined() ? add(mean_abs, a) : a;
  }
  const double scale = double(f.size) / double(p.S);
  std::vector<double> e_ig, e_com;
  for (size_t k = 0; k < m.vox.size(); ++k) {
    const auto t = planted_px(p.truth[size_t(m.vox[k])], scale);
    const Tensor map = mean_abs.select(0, int64_t(k));
    const auto pk = analysis::attribution_peak(map, 2.0 * scale);
    const auto cm = analysis::attribution_centre_of_mass(map);
    e_ig.push_back(std::hypot(pk[0] - t[0], pk[1] - t[1]) / t[2]);
    e_com.push_back(std::hypot(cm[0] - t[0], cm[1] - t[1]) / t[2]);
  }
  out.ig_error = median(e_ig), out.com_error = median(e_com);
  std::printf("%s, %s baseline, %lld steps, %lld images: median centre error in planted sigmas: IG peak %.2f, IG "
              "centre of mass %.2f; completeness error largest %.3f%%\n",
              name.c_str(), analysis::baseline_name(base), (long long)steps, (long long)std::min(images, px.size(0)),
              out.ig_error, out.com_error, 100 * out.worst_completeness);
  std::fflush(stdout);
  return out;
}


// Completeness errors of m's voxels on the first `images` test images, black baseline, one per
// image and voxel: |sum - (F(x) - F(b))| / max(|F(x) - F(b)|, sd_v), sd_v the voxel's prediction
// standard deviation over those images (docs/attribution.md, "Completeness": a scale that stays
// meaningful when F(x) is near F(b)). Also returns the evaluations (steps + 1).
std::vector<double> completeness(const Fitted& m, analysis::Quadrature rule, int64_t steps, int64_t images,
                                 analysis::IGOptions io = {}, std::vector<int64_t>* evaluations = nullptr) {
  Planted& p = planted();
  const Tensor px = encoding::load_pixels(p.dir, m.f.size);
  const std::vector<double> sd = prediction_sd(m.f, px, m.vox);
  if (io.tol > 0) io.tol_floor = sd;  // cortex attribute's floor: the same scale as the error below
  io.steps = steps;
  io.batch = 65;
  io.rule = rule;
  const analysis::ImageFn fn = [&m](const Tensor& x) { return m.f(x); };
  std::vector<double> e;
  for (int64_t i = 0; i < images; ++i) {
    const Tensor x = px.select(0, i).contiguous();
    const auto r = analysis::integrated_gradients(fn, x, zeros(x.shape()), analysis::voxel_targets(m.vox, m.f.voxels), io);
    for (size_t k = 0; k < m.vox.size(); ++k) {
      if (evaluations) evaluations->push_back(int64_t(r.nodes[k].size()));
      e.push_back(r.abs_error[k] / std::max(std::fabs(r.f_x[k] - r.f_base[k]), sd[k]));
      if (std::getenv("CORTEX_IG_VERBOSE"))
        std::printf("  image %lld voxel %lld: df %.4g sd %.4g abs %.3g rel %.3f%%\n", (long long)i, (long long)m.vox[k],
                    r.f_x[k] - r.f_base[k], sd[k], r.abs_error[k], 100 * e.back());
    }
  }
  return e;
}


Fitted& alexnet_fwrf() {
  static Fitted m = [] {
    encoding::EncodingSpec o;
    o.arch = "alexnet", o.random_weights = 1, o.image_size = 64, o.readout = "gaussian-fwrf", o.tap = "features.1";
    o.grid = 9, o.sigmas = "0.15";
    return fit("gfwrf-features.1", o);
  }();
  return m;
}

// Other ReLU models for the sweep (CORTEX_IG_MODEL=2..4: Gaussian fwRF on random AlexNets of other
// seeds, taps and input sizes), so that the table is not read off one model (docs/attribution.md,
// "Other ReLU models").
Fitted& alt_model(int which) {
  static std::map<int, Fitted> fitted;
  auto it = fitted.find(which);
  if (it != fitted.end()) return it->second;
  encoding::EncodingSpec o;
  o.arch = "alexnet", o.readout = "gaussian-fwrf", o.sigmas = "0.15";
  if (which == 2) o.random_weights = 2, o.image_size = 64, o.tap = "features.4", o.grid = 7;
  if (which == 3) o.random_weights = 3, o.image_size = 96, o.tap = "features.1", o.grid = 9;
  if (which == 4) o.random_weights = 4, o.image_size = 64, o.tap = "features.1,features.4", o.grid = 7;
  return fitted.emplace(which, fit("alt" + std::to_string(which), o)).first->second;
}

}  // namespace

// The core is trained 30 epochs: at 12 or 20 its readout centres were 1.2 - 1.7 planted sigmas off
// and the maps' median peak error moved between 0.75 and 1.11 sigma with the float rounding of the
// GEMM alone (docs/attribution.md). Completeness as a user gets it: the tolerance rule, 1%.
TEST(AttributionPlanted, CoreMapsPeakInsidePlantedFieldsAndAreComplete) {
  encoding::EncodingSpec o;
  o.readout = "core", o.core_size = 32, o.epochs = 30;
  const Fitted m = fit("core", o);
  ASSERT_GE(m.vox.size(), 6u) << "too few simple voxels predicted to test localisation";
  for (auto b : {analysis::Baseline::Black, analysis::Baseline::Blur}) {
    const Outcome out = locate("core", m, b, 64, 6, 0.01);
    EXPECT_LT(out.ig_error, 1.0) << "median IG peak error in planted sigmas, " << analysis::baseline_name(b);
    EXPECT_LE(*std::max_element(out.scaled.begin(), out.scaled.end()), 0.01 * (1 + 1e-9))
        << "completeness with the 1% tolerance, " << analysis::baseline_name(b);
  }
}

TEST(AttributionPlanted, RandomAlexNetFwrfLocalisesAndIsCompleteAt64Evaluations) {
  const Fitted& m = alexnet_fwrf();
  ASSERT_GE(m.vox.size(), 6u) << "too few simple voxels predicted to test localisation";
  // The diagnosis first: the readout's own fitted centre is inside the planted field.
  EXPECT_LT(m.readout_error, 1.0) << "the fwRF's fitted centres, in planted sigmas";
  const Outcome out = locate("gfwrf-features.1", m, analysis::Baseline::Black, 63, 6);
  EXPECT_LT(out.ig_error, 1.0) << "median IG peak error in planted sigmas";
  // Completeness at 64 gradient evaluations (steps 63, the adaptive rule: the default) on a ReLU
  // model, the maps just made (6 images x the voxels): median and 90th percentile within 1 %, the
  // largest printed (docs/attribution.md: 1.7 % on this model). The uniform trapezoid rule at the
  // same cost on 2 images is worse (first order in the steps: ReLU kinks): the check can fail.
  const auto et = completeness(m, analysis::Quadrature::Trapezoid, 63, 2);
  std::printf("gfwrf-features.1 completeness at 64 evaluations (black baseline, error / max(|df|, sd)): adaptive "
              "(6 images x %zu voxels) median %.3f%%, 90th pct %.3f%%, largest %.3f%%; trapezoid (2 images) median "
              "%.3f%%, 90th pct %.3f%%, largest %.3f%%\n",
              m.vox.size(), 100 * quantile(out.scaled, 0.5), 100 * quantile(out.scaled, 0.9),
              100 * quantile(out.scaled, 1.0), 100 * quantile(et, 0.5), 100 * quantile(et, 0.9), 100 * quantile(et, 1.0));
  EXPECT_LT(quantile(out.scaled, 0.5), 0.01) << "adaptive, median completeness error at 64 evaluations";
  EXPECT_LT(quantile(out.scaled, 0.9), 0.01) << "adaptive, 90th percentile completeness error at 64 evaluations";
  EXPECT_GT(quantile(et, 0.9), 0.01) << "trapezoid at 64 evaluations, 90th percentile";
  // With the tolerance (cortex attribute's default, tol 1% of max(|df|, sd)), the adaptive rule starts
  // from the same 64 evaluations and refines only the targets that need it: every one within 1 %.
  analysis::IGOptions io;
  io.tol = 0.01;
  std::vector<int64_t> ev;
  const auto ek = completeness(m, analysis::Quadrature::Adaptive, 63, 6, io, &ev);
  std::vector<double> evd(ev.begin(), ev.end());
  std::printf("gfwrf-features.1 with tol 1%%: completeness largest %.3f%%, median %.3f%%; evaluations median %.0f, "
              "largest %.0f (of %zu image-voxel pairs)\n",
              100 * quantile(ek, 1.0), 100 * quantile(ek, 0.5), quantile(evd, 0.5), quantile(evd, 1.0), ek.size());
  EXPECT_LE(quantile(ek, 1.0), 0.01 + 1e-6) << "adaptive with tol 1%: the largest completeness error";
  EXPECT_GE(quantile(evd, 1.0), 64.0);
  EXPECT_LE(quantile(evd, 1.0), 8.0 * 63 + 1);
}

// The comparison table of docs/attribution.md (quadrature rules against evaluations); minutes, so
// only when CORTEX_IG_SWEEP=1 (a measurement, not a check).
TEST(AttributionPlanted, QuadratureSweep) {
  if (!std::getenv("CORTEX_IG_SWEEP")) GTEST_SKIP() << "set CORTEX_IG_SWEEP=1 to print the quadrature table";
  const int model = std::getenv("CORTEX_IG_MODEL") ? std::atoi(std::getenv("CORTEX_IG_MODEL")) : 1;
  ASSERT_TRUE(model >= 1 && model <= 4) << "CORTEX_IG_MODEL must be 1 to 4, found " << model;
  const Fitted& m = model > 1 ? alt_model(model) : alexnet_fwrf();
  const int64_t images = std::getenv("CORTEX_IG_SWEEP_IMAGES") ? std::atoll(std::getenv("CORTEX_IG_SWEEP_IMAGES")) : 6;
  analysis::IGOptions io;
  if (std::getenv("CORTEX_IG_ROUNDS")) io.rounds = std::atoll(std::getenv("CORTEX_IG_ROUNDS"));
  if (std::getenv("CORTEX_IG_INITIAL")) io.initial = std::atoll(std::getenv("CORTEX_IG_INITIAL"));
  std::vector<analysis::Quadrature> rules = {analysis::Quadrature::Trapezoid, analysis::Quadrature::GaussLegendre,
                                             analysis::Quadrature::Adaptive};
  if (std::getenv("CORTEX_IG_RULE")) rules = {analysis::parse_quadrature(std::getenv("CORTEX_IG_RULE"))};
  std::vector<int64_t> ns = {16, 32, 64, 128, 256};
  if (std::getenv("CORTEX_IG_N")) ns = {std::atoll(std::getenv("CORTEX_IG_N"))};
  if (std::getenv("CORTEX_IG_MAPREF")) {
    // The maps themselves against a reference (uniform trapezoid, 2048 evaluations), 2 images: the
    // completeness error is what the adaptive rule steers by, so check the maps independently.
    const Tensor px = encoding::load_pixels(planted().dir, m.f.size);
    const analysis::ImageFn fn = [&m](const Tensor& x) { return m.f(x); };
    std::vector<Tensor> ref;
    for (int64_t i = 0; i < 2; ++i) {
      analysis::IGOptions ro;
      ro.steps = 2047, ro.batch = 128, ro.rule = analysis::Quadrature::Trapezoid;
      const Tensor x = px.select(0, i).contiguous();
      ref.push_back(analysis::integrated_gradients(fn, x, zeros(x.shape()), analysis::voxel_targets(m.vox, m.f.voxels), ro).attr);
    }
    for (auto rule : rules)
      for (int64_t n : ns) {
        std::vector<double> e;
        for (int64_t i = 0; i < 2; ++i) {
          analysis::IGOptions o = io;
          o.steps = n - 1, o.batch = 65, o.rule = rule;
          const Tensor x = px.select(0, i).contiguous();
          const Tensor a = analysis::integrated_gradients(fn, x, zeros(x.shape()), analysis::voxel_targets(m.vox, m.f.voxels), o).attr;
          NoGradGuard ng;
          for (int64_t k = 0; k < a.size(0); ++k)
            e.push_back(sum(abs(sub(a.select(0, k), ref[size_t(i)].select(0, k)))).item() /
                        sum(abs(ref[size_t(i)].select(0, k))).item());
        }
        std::printf("mapref %s %lld evaluations: map L1 error vs 2048-point trapezoid, median %.3f%% p90 %.3f%% max %.3f%% (%zu)\n",
                    analysis::quadrature_name(rule), (long long)n, 100 * quantile(e, 0.5), 100 * quantile(e, 0.9),
                    100 * quantile(e, 1.0), e.size());
        std::fflush(stdout);
      }
    return;
  }
  for (auto rule : rules)
    for (int64_t n : ns) {
      const auto e = completeness(m, rule, n - 1, images, io);
      std::printf("sweep %s %lld evaluations: median %.3f%% p90 %.3f%% max %.3f%% (%zu)\n",
                  analysis::quadrature_name(rule), (long long)n, 100 * quantile(e, 0.5), 100 * quantile(e, 0.9),
                  100 * quantile(e, 1.0), e.size());
      std::fflush(stdout);
    }
}
