// cortex linbridge as a library (analysis/linbridge_job.h) on every readout cortex fit makes, on a
// tiny simulated subject: the statistics the job writes (energy share, AFD slope) and the Jacobians
// it saves equal those reduced by float64 loops from the engine's per-stimulus `jacobian` of the
// same model (features and pixels); the closed forms (two-layer, affine) equal the autodiff path to
// 1e-9 in float64; the saved compact forms rebuild the per-stimulus Jacobians; refusals leave
// nothing behind.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "analysis/linbridge_job.h"
#include "autograd/autograd.h"
#include "data/dataset.h"
#include "data/simulate.h"
#include "encoding/pipeline.h"
#include "tensor/io/npy.h"
#include "tensor/io/safetensors.h"
#include "test_util.h"

using namespace cortex;
namespace fs = std::filesystem;

namespace {

std::vector<double> vec(const Tensor& t) {
  const Tensor c = t.to(DType::Float64).contiguous();
  return std::vector<double>(c.data<double>(), c.data<double>() + c.numel());
}

// The statistics from per-stimulus Jacobians J[n] (V, F), in float64 loops (as tests/test_linbridge.cpp).
struct Reference {
  std::vector<std::vector<double>> J;
  std::vector<double> share, slope;
  int64_t N = 0, V = 0, F = 0;
};
Reference reference(const analysis::EncodingFunction& e) {
  Reference r;
  r.N = e.X.size(0), r.F = e.X.numel() / r.N;
  Shape item = e.X.shape();
  item[0] = 1;
  std::vector<double> pred;
  {
    NoGradGuard ng;
    pred = vec(e.f(e.X));
  }
  r.V = int64_t(pred.size()) / r.N;
  const int64_t N = r.N, V = r.V, F = r.F;
  for (int64_t n = 0; n < N; ++n)
    r.J.push_back(vec(jacobian([&](const Tensor& z) { return e.f(z.reshape(item)).reshape({V}); },
                               e.X.narrow(0, n, 1).reshape({F}))));
  std::vector<double> inh(V * F, 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < V * F; ++i) inh[i] += r.J[n][i] / double(N);
  r.share.assign(V, 0.0), r.slope.assign(V, 0.0);
  for (int64_t v = 0; v < V; ++v) {
    double nrm = 0, total = 0, bias = 0;
    for (int64_t j = 0; j < F; ++j) nrm += inh[v * F + j] * inh[v * F + j];
    std::vector<double> g(N);
    for (int64_t n = 0; n < N; ++n) {
      double dot = 0;
      for (int64_t j = 0; j < F; ++j) {
        const double a = r.J[n][v * F + j], d = a - inh[v * F + j];
        total += a * a / double(N), bias += d * d / double(N), dot += d * inh[v * F + j];
      }
      g[n] = nrm > 0 ? dot / nrm : 0.0;
    }
    r.share[v] = total > 0 ? bias / total : 0.0;
    std::vector<int64_t> idx(N);
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return pred[a * V + v] < pred[b * V + v]; });
    std::vector<double> t(N);
    for (int64_t k = 0; k < N; ++k) t[idx[k]] = double(k) / double(N - 1);
    const double tm = 0.5, gm = std::accumulate(g.begin(), g.end(), 0.0) / N;
    double sxy = 0, sxx = 0;
    for (int64_t n = 0; n < N; ++n) sxy += (t[n] - tm) * (g[n] - gm), sxx += (t[n] - tm) * (t[n] - tm);
    r.slope[v] = sxy / sxx;
  }
  return r;
}

void expect_near_all(const std::vector<double>& got, const std::vector<double>& want, double rtol, double atol,
                     const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], atol + rtol * std::abs(want[i])) << what << " [" << i << "]";
}

// One simulated subject and the fits of every readout, made once for the suite.
class LinBridgeJob : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp = new cortex::testing::TempDir();
    data::SimConfig cfg;
    cfg.n_train = 48, cfg.n_test = 7, cfg.voxels = 5, cfg.image_size = 32, cfg.seed = 11;
    subject = data::write_simulation(data::simulate(cfg), *tmp / "sim");
  }
  static void TearDownTestSuite() { delete tmp; }

  // Fits --readout `readout` with the given changes to a small spec (memoised by name).
  static std::string fit(const std::string& name, const std::function<void(encoding::EncodingSpec&)>& set) {
    if (fits.count(name)) return fits[name];
    encoding::EncodingSpec o;
    o.data = subject, o.hemi = "both", o.out = *tmp / ("fit-" + name);
    o.epochs = 2, o.folds = 3, o.batch = 16, o.seed = 1;
    set(o);
    encoding::fit(o);
    return fits[name] = o.out + "/model.safetensors";
  }
  static std::string pixels(const std::string& readout) {
    return fit(readout + "-pixels", [&](encoding::EncodingSpec& o) {
      o.readout = readout, o.tap = "pixels", o.image_size = 16, o.hidden = 6;
    });
  }
  // A seeded ResNet-18 (a fifth of AlexNet's weights to draw, a third of the time per job).
  static std::string resnet(const std::string& name, const std::function<void(encoding::EncodingSpec&)>& set) {
    return fit(name, [&](encoding::EncodingSpec& o) {
      o.arch = "resnet18", o.random_weights = 1, o.image_size = 32, o.tap = "layer2";
      set(o);
    });
  }

  static analysis::LinBridgeJob job(const std::string& model, const std::string& out, const std::string& subj = subject) {
    analysis::LinBridgeJob j;
    j.model = model, j.data = subj, j.out = *tmp / out, j.progress = false, j.block = 3;
    return j;
  }
  static data::Dataset test_split(const std::string& subj = subject) {
    data::LoadOptions lo;
    lo.hemi = "both";
    return data::load_algonauts(subj, "test", lo);
  }
  static std::vector<double> npy(const std::string& path) { return vec(io::read_npy(path)); }

  // The job's autodiff path (in float64) against the per-stimulus reference, and its saved Jacobians.
  static void check_autodiff(const std::string& model, const std::string& wrt, const std::string& out,
                             const std::string& subj = subject, const char* mode = nullptr) {
    analysis::LinBridgeJob j = job(model, out, subj);
    j.wrt = wrt, j.autodiff = true, j.float64 = true, j.save_jacobians = *tmp / (out + "-J.npy");
    j.memory_budget = 200000;  // several blocks and direction chunks
    const analysis::LinBridgeSummary s = analysis::run_linbridge(j);
    EXPECT_EQ(s.json["path"], "autodiff");
    EXPECT_EQ(s.json["wrt"], wrt);
    EXPECT_TRUE(s.json["mode"] == "forward" || s.json["mode"] == "reverse");
    if (mode) EXPECT_EQ(s.json["mode"], mode);
    EXPECT_GT(s.json["max_rss_bytes"].get<int64_t>(), 0);
    EXPECT_LE(s.json["peak_working_bytes"].get<int64_t>(), j.memory_budget);
    const analysis::EncodingFunction e =
        analysis::encoding_function(model, test_split(subj), wrt, "", "", 32, /*float64=*/true);
    const Reference ref = reference(e);
    expect_near_all(npy(j.out + "/energy_share.npy"), ref.share, 1e-9, 1e-12, model + " share");
    expect_near_all(npy(j.out + "/afd_slope.npy"), ref.slope, 1e-9, 1e-12, model + " afd_slope");
    const Tensor J = io::read_npy(j.save_jacobians);
    ASSERT_EQ(J.shape(), (Shape{ref.N, ref.V, ref.F}));
    std::vector<double> want;
    for (const auto& Jn : ref.J) want.insert(want.end(), Jn.begin(), Jn.end());
    expect_near_all(vec(J), want, 1e-12, 1e-14, model + " saved Jacobians");
  }

  static inline cortex::testing::TempDir* tmp = nullptr;
  static inline std::string subject;
  static inline std::map<std::string, std::string> fits;
};

// The two closed forms against the autodiff path (float64), and their saved compact forms against
// the per-stimulus Jacobians.
TEST_F(LinBridgeJob, ClosedFormsEqualAutodiffAndSaveTheirCompactForm) {
  for (const std::string readout : {"two-layer", "linear", "ridge"}) {
    SCOPED_TRACE(readout);
    const std::string model = pixels(readout);
    analysis::LinBridgeJob c = job(model, "closed-" + readout);
    c.float64 = true, c.energy_afd = true, c.save_jacobians = *tmp / ("closed-" + readout + "-J.npy");
    const analysis::LinBridgeSummary sc = analysis::run_linbridge(c);
    EXPECT_EQ(sc.json["path"], readout == "two-layer" ? "closed-form two-layer" : "closed-form affine");
    EXPECT_EQ(sc.json["mode"], "closed-form");
    analysis::LinBridgeJob a = c;
    a.out = *tmp / ("auto-" + readout), a.autodiff = true, a.save_jacobians.clear();
    const analysis::LinBridgeSummary sa = analysis::run_linbridge(a);
    EXPECT_EQ(sa.json["path"], "autodiff");
    for (const char* f : {"energy_share.npy", "afd_slope.npy", "afd_energy.npy", "r_full.npy", "r_linear.npy"})
      expect_near_all(npy(c.out + "/" + f), npy(a.out + "/" + f), 1e-9, 1e-12, readout + " " + f);
    if (readout != "two-layer") {  // affine: no stimulus-specific part at all
      for (double x : npy(c.out + "/energy_share.npy")) EXPECT_EQ(x, 0.0);
      for (double x : npy(c.out + "/afd.npy")) EXPECT_EQ(x, 0.0);
      for (double x : npy(c.out + "/afd_energy.npy")) EXPECT_EQ(x, 0.0);
    }
    // The compact forms rebuild every stimulus's Jacobian.
    const analysis::EncodingFunction e = analysis::encoding_function(model, test_split(), "features", "", "", 32, true);
    const Reference ref = reference(e);
    const auto saved = npy(c.save_jacobians);
    const auto [tensors, settings] = encoding::read_model_file(model);
    for (int64_t n = 0; n < ref.N; ++n) {
      std::vector<double> want = ref.J[n], got(ref.V * ref.F);
      if (readout == "two-layer") {  // JM(z_n) = W2 diag(s'_n) W1
        const auto W1 = vec(tensors.at("fc1.weight")), W2 = vec(tensors.at("fc2.weight"));
        const int64_t H = tensors.at("fc1.weight").size(0);
        ASSERT_EQ(int64_t(saved.size()), ref.N * H);
        for (int64_t v = 0; v < ref.V; ++v)
          for (int64_t j = 0; j < ref.F; ++j) {
            double x = 0;
            for (int64_t h = 0; h < H; ++h) x += W2[v * H + h] * saved[n * H + h] * W1[h * ref.F + j];
            got[v * ref.F + j] = x;
          }
      } else {
        ASSERT_EQ(int64_t(saved.size()), ref.V * ref.F);
        got = saved;
      }
      expect_near_all(got, want, 1e-10, 1e-13, readout + " compact Jacobian");
    }
  }
}

// Readouts on flat features and on feature maps, channel-align's several taps, the core, fine-tuned
// backbones (with fwrf's kept channels) (autodiff path, Jacobians wrt the readout's input).
TEST_F(LinBridgeJob, EveryReadoutWrtFeatures) {
  check_autodiff(pixels("two-layer"), "features", "ad-two-layer");
  check_autodiff(resnet("fwrf", [](auto& o) { o.readout = "fwrf", o.tap = "layer1,layer2", o.keep = 0.5; }),
                 "features", "ad-fwrf");
  check_autodiff(resnet("gaussian-fwrf", [](auto& o) {
                   o.readout = "gaussian-fwrf", o.grid = 2, o.sigmas = "0.3", o.alphas = "1,100";
                 }),
                 "features", "ad-gaussian-fwrf");
  check_autodiff(resnet("pooled-linear", [](auto& o) { o.readout = "pooled-linear", o.tap = "layer2,layer3"; }),
                 "features", "ad-pooled-linear");
  check_autodiff(resnet("factorized", [](auto& o) { o.readout = "factorized"; }), "features", "ad-factorized");
  check_autodiff(resnet("gaussian-poisson", [](auto& o) { o.readout = "gaussian", o.loss = "poisson"; }), "features",
                 "ad-gaussian-poisson");
  check_autodiff(resnet("channel-align", [](auto& o) { o.readout = "channel-align", o.tap = "layer1,layer2", o.hidden = 4; }),
                 "features", "ad-channel-align");
  check_autodiff(fit("core", [](auto& o) { o.readout = "core", o.core_size = 16; }), "features", "ad-core");
  check_autodiff(resnet("finetune", [](auto& o) { o.readout = "gaussian", o.finetune = true, o.epochs = 1; }),
                 "features", "ad-finetune");
  check_autodiff(resnet("finetune-fwrf-keep", [](auto& o) {
                   o.readout = "fwrf", o.finetune = true, o.keep = 0.5, o.epochs = 1;
                 }),
                 "features", "ad-finetune-fwrf-keep");
}

// Through the backbone down to the normalised image: frozen and fine-tuned backbones, and the core.
TEST_F(LinBridgeJob, WrtPixelsThroughTheBackbone) {
  check_autodiff(resnet("two-layer-resnet", [](auto& o) { o.readout = "two-layer", o.pool = 1, o.hidden = 4; }),
                 "pixels", "px-two-layer");
  check_autodiff(resnet("finetune", [](auto& o) { o.readout = "gaussian", o.finetune = true, o.epochs = 1; }),
                 "pixels", "px-finetune");
  check_autodiff(fit("core", [](auto& o) { o.readout = "core", o.core_size = 16; }), "pixels", "px-core");
  // A pixel-tap ridge model: through the grey conversion (the mean of the normalised channels).
  check_autodiff(pixels("ridge"), "pixels", "px-ridge");
}

// --compressor infonce: JM_down's scores per voxel from every path; an affine model's sketches are
// one vector for every stimulus, so its JM_down has no stimulus-specific part.
TEST_F(LinBridgeJob, Compressor) {
  for (const std::string readout : {"two-layer", "ridge"})
    for (bool autodiff : {false, true}) {
      SCOPED_TRACE(readout + (autodiff ? " autodiff" : " closed form"));
      analysis::LinBridgeJob j = job(pixels(readout), "down-" + readout + (autodiff ? "-ad" : ""));
      j.compressor = "infonce", j.autodiff = autodiff;
      const analysis::LinBridgeSummary s = analysis::run_linbridge(j);
      const auto share = npy(j.out + "/energy_share_down.npy"), afd = npy(j.out + "/afd_down.npy");
      ASSERT_EQ(share.size(), 5u);
      ASSERT_EQ(afd.size(), 5u);
      EXPECT_EQ(io::read_npy(j.out + "/inherent_down.npy").shape(), (Shape{5, 8}));
      EXPECT_EQ(s.json["compressor"]["steps"], 400);
      EXPECT_LT(s.json["compressor"]["loss_last"].get<double>(), s.json["compressor"]["loss_first"].get<double>());
      for (size_t v = 0; v < share.size(); ++v) {
        EXPECT_GE(share[v], 0.0);
        EXPECT_LE(share[v], 1.0);
        if (readout == "ridge") {
          EXPECT_NEAR(share[v], 0.0, 1e-9);
          EXPECT_NEAR(afd[v], 0.0, 1e-9);
        }
      }
    }
  analysis::LinBridgeJob j = job(pixels("two-layer"), "bad");
  j.compressor = "pca";
  cortex::testing::expect_error([&] { analysis::run_linbridge(j); }, {"--compressor must be none or infonce", "pca"});
}

// Fewer inputs than voxels (a core on 8 x 8 grey images, 70 voxels): forward mode, whose pieces are
// Jacobian columns scattered into the saved (N, V, F) file.
TEST_F(LinBridgeJob, ForwardModeWhenInputsAreFewerThanVoxels) {
  data::SimConfig cfg;
  cfg.n_train = 40, cfg.n_test = 6, cfg.voxels = 70, cfg.image_size = 16, cfg.seed = 12;
  const std::string subj = data::write_simulation(data::simulate(cfg), *tmp / "sim70");
  encoding::EncodingSpec o;
  o.data = subj, o.hemi = "both", o.out = *tmp / "fit-core70", o.readout = "core", o.core_size = 8;
  o.epochs = 1, o.batch = 16, o.seed = 1;
  encoding::fit(o);
  check_autodiff(o.out + "/model.safetensors", "features", "fw-core", subj, "forward");
}

TEST_F(LinBridgeJob, Refusals) {
  const std::string model = pixels("two-layer");
  auto refused = [&](analysis::LinBridgeJob j, const std::vector<std::string>& needles) {
    cortex::testing::expect_error([&] { analysis::run_linbridge(j); }, needles);
    EXPECT_FALSE(fs::exists(j.out)) << j.out;
    if (!j.save_jacobians.empty()) {
      EXPECT_FALSE(fs::exists(j.save_jacobians));
      for (const auto& f : fs::directory_iterator(fs::path(j.save_jacobians).parent_path()))
        EXPECT_EQ(f.path().string().find(j.save_jacobians + ".tmp"), std::string::npos) << f.path();
    }
  };
  analysis::LinBridgeJob j = job(model, "bad");
  j.wrt = "logits";
  refused(j, {"--wrt must be features or pixels", "logits"});
  j = job(model, "bad");
  j.autodiff = true, j.save_jacobians = *tmp / "bad-J.npy", j.max_jacobian_bytes = 1000;
  // 7 images x 5 voxels x 256 pixels x 4 bytes
  refused(j, {"--save-jacobians would write [7, 5, 256] float32 = 35840 bytes", "above --max-jacobian-bytes 1000"});
  j = job(model, "bad");
  j.autodiff = true, j.memory_budget = 8;
  refused(j, {"--memory-budget of 8 bytes is below one direction of one stimulus (1044 bytes)"});
  j = job(model, "bad");
  j.save_jacobians = *tmp / "bad-J.npy", j.max_jacobian_bytes = 100;  // the compact form (7, 6) float64 = 336 bytes
  refused(j, {"[7, 6] float64 = 336 bytes"});
  EXPECT_EQ(analysis::parse_bytes("8G", "--x"), int64_t(8) << 30);
  EXPECT_EQ(analysis::parse_bytes("512MiB", "--x"), int64_t(512) << 20);
  EXPECT_EQ(analysis::parse_bytes("1000", "--x"), 1000);
  cortex::testing::expect_error([] { analysis::parse_bytes("-3", "--x"); }, {"--x", "positive"});
  cortex::testing::expect_error([] { analysis::parse_bytes("3 apples", "--x"); }, {"--x", "3 apples"});
}

}  // namespace

