// data/simulate: determinism per seed, shapes, the written layout read back by data/dataset, the
// noise ceiling against its closed form, and the linear voxels against a direct float64 Gabor dot.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "data/dataset.h"
#include "data/simulate.h"
#include "tensor/io/npy.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace cortex;
using namespace cortex::data;
using cortex::testing::allclose;

namespace {

SimConfig small(uint64_t seed = 3) {
  SimConfig c;
  c.n_train = 40;
  c.n_test = 12;
  c.voxels = 40;
  c.image_size = 32;
  c.seed = seed;
  return c;
}

}  // namespace

TEST(Simulate, ShapesAndDeterminismPerSeed) {
  const Simulation a = simulate(small()), b = simulate(small()), c = simulate(small(4));
  EXPECT_EQ(a.train_images.shape(), (Shape{40, 32, 32, 3}));
  EXPECT_EQ(a.test_images.shape(), (Shape{12, 32, 32, 3}));
  EXPECT_EQ(a.train_fmri.shape(), (Shape{40, 40}));
  EXPECT_EQ(a.test_trials.shape(), (Shape{12, 3, 40}));
  EXPECT_EQ(a.test_fmri.shape(), (Shape{12, 40}));
  EXPECT_EQ(a.noise_ceiling.shape(), (Shape{40}));
  EXPECT_TRUE(allclose(a.train_images, b.train_images, 0, 0));
  EXPECT_TRUE(allclose(a.train_fmri, b.train_fmri, 0, 0));
  EXPECT_TRUE(allclose(a.test_trials, b.test_trials, 0, 0));
  EXPECT_FALSE(allclose(a.train_fmri, c.train_fmri, 0, 1e-3));
  EXPECT_FALSE(allclose(a.train_images, c.train_images, 0, 0));
  // Four kinds in equal blocks; test_fmri is the trial mean.
  for (int64_t v = 0; v < 40; ++v) EXPECT_EQ(static_cast<int>(a.voxels[v].kind), v / 10);
  for (int64_t i = 0; i < 12; ++i)
    for (int64_t v = 0; v < 40; v += 7)
      EXPECT_NEAR(a.test_fmri.at({i, v}),
                  (a.test_trials.at({i, 0, v}) + a.test_trials.at({i, 1, v}) + a.test_trials.at({i, 2, v})) / 3, 1e-5);
  // Images use the whole range and are not constant.
  const std::vector<int32_t> px = a.train_images.to_vector<int32_t>();
  EXPECT_GT(*std::max_element(px.begin(), px.end()) - *std::min_element(px.begin(), px.end()), 100);
}

TEST(Simulate, LinearVoxelsAreAGaborDotProduct) {
  const Simulation s = simulate(small());
  const int64_t S = 32;
  int checked = 0;
  for (int64_t v = 0; v < 40; ++v) {
    const Voxel& x = s.voxels[v];
    if (x.kind != VoxelKind::Simple) continue;
    const Tensor g = gabor_filter(S, x.x, x.y, x.size, x.orientation, x.frequency, x.phase);
    for (int64_t n = 0; n < 40; n += 3) {
      const std::vector<uint8_t> px = [&] {
        const Tensor im = s.train_images.select(0, n).contiguous();
        return std::vector<uint8_t>(im.data<uint8_t>(), im.data<uint8_t>() + S * S * 3);
      }();
      double dot = 0;
      for (int64_t r = 0; r < S; ++r)
        for (int64_t c = 0; c < S; ++c) {
          const double gray = (px[(r * S + c) * 3] + px[(r * S + c) * 3 + 1] + px[(r * S + c) * 3 + 2]) / (3 * 255.0);
          dot += g.at({r, c}) * gray;
        }
      EXPECT_NEAR(s.train_clean.at({n, v}), x.gain * dot + x.offset, 1e-9);
      ++checked;
    }
  }
  EXPECT_GT(checked, 0);
  // The filter has unit norm and is zero beyond 3 sigma.
  const Tensor g = gabor_filter(32, 10.0, 12.0, 2.0, 0.3, 0.2, 0.5);
  double n2 = 0;
  for (int64_t r = 0; r < 32; ++r)
    for (int64_t c = 0; c < 32; ++c) {
      n2 += g.at({r, c}) * g.at({r, c});
      if (std::abs(c - 10.0) > 6 || std::abs(r - 12.0) > 6) {
        EXPECT_EQ(g.at({r, c}), 0.0);
      }
    }
  EXPECT_NEAR(n2, 1.0, 1e-12);
  // Training responses are standardised per voxel.
  for (int64_t v = 0; v < 40; v += 9) {
    const std::vector<double> col = s.train_clean.narrow(1, v, 1).contiguous().to_vector<double>();
    double m = 0, q = 0;
    for (double a : col) m += a / col.size();
    for (double a : col) q += (a - m) * (a - m) / (col.size() - 1);
    EXPECT_NEAR(m, 0, 1e-9);
    EXPECT_NEAR(q, 1, 1e-9);
  }
}

TEST(Simulate, NoiseCeilingMatchesClosedForm) {
  // Signal sd 1 across images, noise sd sigma per trial, 3 repeats: ncsnr = 1 / sigma,
  // NC = ncsnr^2 / (ncsnr^2 + 1/3).
  const int64_t M = 6000, R = 3;
  const std::vector<double> sig = {0.5, 1.0, 2.0, 4.0};
  const int64_t V = static_cast<int64_t>(sig.size());
  const Tensor s = cortex::testing::randn({M, 1, V}, 11), e = cortex::testing::randn({M, R, V}, 12);
  Tensor trials = empty({M, R, V}, DType::Float64);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t r = 0; r < R; ++r)
      for (int64_t v = 0; v < V; ++v)
        trials.data<double>()[(i * R + r) * V + v] = s.data<double>()[i * V + v] + sig[v] * e.data<double>()[(i * R + r) * V + v];
  const Tensor nc = noise_ceiling_from_trials(trials);
  for (int64_t v = 0; v < V; ++v) {
    const double k2 = 1.0 / (sig[v] * sig[v]);
    EXPECT_NEAR(nc.at({v}), k2 / (k2 + 1.0 / 3), 0.02) << "sigma " << sig[v];
  }
  // Pure noise gives 0 (the signal variance estimate is clipped), no noise gives 1.
  Tensor none = empty({M, R, 2}, DType::Float64);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t r = 0; r < R; ++r) {
      none.data<double>()[(i * R + r) * 2] = s.data<double>()[i * V];
      none.data<double>()[(i * R + r) * 2 + 1] = e.data<double>()[(i * R + r) * V];
    }
  const Tensor nn = noise_ceiling_from_trials(none);
  EXPECT_EQ(nn.at({0}), 1.0);
  EXPECT_LT(nn.at({1}), 0.02);
  EXPECT_CORTEX_ERROR(noise_ceiling_from_trials(zeros({5, 1, 2})), "repeats >= 2");
}

TEST(Simulate, WrittenLayoutReadsBack) {
  cortex::testing::TempDir dir;
  const Simulation s = simulate(small());
  const std::string subj = write_simulation(s, dir.path().string());
  EXPECT_EQ(fs::path(subj).filename(), "subj01");
  LoadOptions o;
  o.hemi = "both";
  const Dataset tr = load_algonauts(subj, "train", o), te = load_algonauts(subj, "test", o);
  EXPECT_EQ(tr.size(), 40);
  EXPECT_EQ(te.size(), 12);
  EXPECT_EQ(tr.voxels(), 40);
  EXPECT_TRUE(allclose(tr.image(5), s.train_images.select(0, 5), 0, 0));
  EXPECT_TRUE(allclose(te.image(11), s.test_images.select(0, 11), 0, 0));
  ASSERT_TRUE(te.noise_ceiling.defined());
  EXPECT_EQ(tr.rois.size(), 4u);
  // Column c of "both" is voxel v with (hemi, hemi_index) in lh-then-rh order.
  for (int64_t v = 0; v < 40; ++v) {
    const Voxel& x = s.voxels[v];
    const int64_t col = x.hemi == 0 ? x.hemi_index : tr.lh_voxels + x.hemi_index;
    EXPECT_EQ(tr.responses.at({7, col}), s.train_fmri.at({7, v}));
    EXPECT_EQ(te.responses.at({3, col}), s.test_fmri.at({3, v}));
    EXPECT_NEAR(te.noise_ceiling.at({col}), s.noise_ceiling.at({v}), 1e-6);
    const auto& cols = tr.rois.at(kind_name(x.kind));
    EXPECT_NE(std::find(cols.begin(), cols.end(), col), cols.end());
    EXPECT_EQ(x.hemi, x.x < 16 ? 1 : 0);
  }
  std::ifstream f(fs::path(subj) / "ground_truth.json");
  const nlohmann::json gt = nlohmann::json::parse(f);
  EXPECT_EQ(gt["voxels"].size(), 40u);
  EXPECT_EQ(gt["voxels"][0]["kind"], "simple");
  EXPECT_NEAR(gt["voxels"][3]["x"].get<double>(), s.voxels[3].x, 1e-9);
  const auto npz = io::read_npz((fs::path(subj) / "ground_truth.npz").string());
  EXPECT_TRUE(allclose(npz.at("train_clean"), s.train_clean, 0, 0));
  EXPECT_EQ(npz.at("kind").shape(), (Shape{40}));
  // read_ground_truth gives the planted voxels in the column order of each hemi choice.
  const GroundTruth both = read_ground_truth(subj, "both"), lh = read_ground_truth(subj, "lh"),
                    rh = read_ground_truth(subj, "rh");
  EXPECT_EQ(both.image_size, 32);
  ASSERT_EQ(both.voxels.size(), 40u);
  EXPECT_EQ(static_cast<int64_t>(lh.voxels.size()), tr.lh_voxels);
  EXPECT_EQ(lh.voxels.size() + rh.voxels.size(), 40u);
  for (int64_t v = 0; v < 40; ++v) {
    const Voxel& x = s.voxels[v];
    const int64_t col = x.hemi == 0 ? x.hemi_index : tr.lh_voxels + x.hemi_index;
    const Voxel& g = both.voxels[static_cast<size_t>(col)];
    EXPECT_EQ(g.kind, x.kind);
    EXPECT_NEAR(g.x, x.x, 1e-9);
    EXPECT_NEAR(g.y, x.y, 1e-9);
    EXPECT_NEAR(g.size, x.size, 1e-9);
    const Voxel& h = (x.hemi == 0 ? lh : rh).voxels[static_cast<size_t>(x.hemi_index)];
    EXPECT_NEAR(h.x, x.x, 1e-9);
  }
  EXPECT_CORTEX_ERROR(read_ground_truth(subj, "left"), "lh, rh or both");
  EXPECT_CORTEX_ERROR(read_ground_truth(dir.path().string(), "lh"), "only folders written by cortex simulate");
  std::ofstream(fs::path(subj) / "ground_truth.json") << "{\"config\": {\"image_size\": 32}}";
  EXPECT_CORTEX_ERROR(read_ground_truth(subj, "lh"), "lacks a field");
}

TEST(Simulate, BadConfigs) {
  SimConfig c = small();
  c.n_train = 1;
  EXPECT_CORTEX_ERROR(simulate(c), "expected train >= 2");
  c = small();
  c.image_size = 8;
  EXPECT_CORTEX_ERROR(simulate(c), "image size in [16, 1024]");
  c = small();
  c.snr = 0;
  EXPECT_CORTEX_ERROR(simulate(c), "snr > 0");
  c = small();
  c.repeats = 1;
  EXPECT_CORTEX_ERROR(simulate(c), "repeats >= 2");
  EXPECT_CORTEX_ERROR(gabor_filter(16, 1, 1, 0, 0, 0.1, 0), "sigma > 0");
  EXPECT_CORTEX_ERROR(image_to_gray(zeros({4, 4, 3})), "expected uint8 (H, W, C)");
  EXPECT_CORTEX_ERROR(write_simulation(Simulation{}, "/tmp"), "expected a simulation");
}
