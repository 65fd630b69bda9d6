// encoding::load_model_fn: a fitted model as a differentiable function of the pixels must give
// cortex predict's own outputs (encoding::predict, the tape-free path) for the same images, for
// every form a model file takes: ridge on pixels, a standardised two-layer encoder, Gaussian fwRF
// and a trained Gaussian readout on a random AlexNet's maps (images resized 32 -> 64 on the way),
// a data-driven core (resized 32 -> 16), and a fine-tuned backbone. Its pixel gradient must match
// central differences. And the small parsers: voxel lists, ROI columns.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "data/simulate.h"
#include "encoding/model_fn.h"
#include "encoding/pipeline.h"
#include "tensor/io/npy.h"
#include "tests/test_util.h"

using namespace cortex;

namespace {

struct Subject {
  cortex::testing::TempDir tmp;
  std::string dir;
  Subject() {
    data::SimConfig cfg;
    cfg.n_train = 64;
    cfg.n_test = 6;
    cfg.voxels = 12;
    cfg.image_size = 32;
    cfg.seed = 5;
    dir = data::write_simulation(data::simulate(cfg), tmp / "sim");
  }
  // Fits a model (tiny settings) and returns its model file.
  std::string fit(const std::string& name, encoding::EncodingSpec o) {
    o.data = dir;
    o.hemi = "both";
    o.folds = 2;
    o.alphas = "1,100";
    o.out = tmp / name;
    o.device = "cpu";
    encoding::fit(o);
    return tmp / (name + "/model.safetensors");
  }
};

Subject& subject() {
  static Subject s;
  return s;
}

encoding::EncodingSpec alexnet(const std::string& readout, const std::string& tap) {
  encoding::EncodingSpec o;
  o.arch = "alexnet";
  o.random_weights = 1;
  o.image_size = 64;
  o.readout = readout;
  o.tap = tap;
  o.epochs = 2;
  o.sigmas = "0.3,0.6";
  o.grid = 3;
  return o;
}

void expect_predict_equal(const std::string& model) {
  Subject& s = subject();
  const std::string images = s.dir + "/test_split/test_images";
  const Tensor want = encoding::predict(model, images, "", s.tmp / "pred.npy", 4, "cpu");
  const encoding::ModelFn f = encoding::load_model_fn(model);
  std::vector<std::string> names;
  const Tensor px = encoding::load_pixels(s.dir, f.size, {}, &names);  // the subject folder: its test split
  ASSERT_EQ(px.size(0), 6);
  ASSERT_EQ(names.size(), 6u);
  EXPECT_GE(px.to(DType::Float64).to_vector<double>().front(), 0.0);
  Tensor got;
  {
    NoGradGuard ng;
    got = f(px);
  }
  ASSERT_EQ(got.shape(), want.shape());
  EXPECT_EQ(f.voxels, want.size(1));
  EXPECT_TRUE(cortex::testing::allclose(got, want, 1e-4, 1e-5)) << model;
}

}  // namespace

TEST(EncodingModelFn, RidgeOnPixelsEqualsPredict) {
  encoding::EncodingSpec o;
  o.readout = "ridge", o.tap = "pixels", o.image_size = 32;
  expect_predict_equal(subject().fit("ridge", o));
}

TEST(EncodingModelFn, TwoLayerStandardisedEqualsPredict) {
  encoding::EncodingSpec o;
  o.readout = "two-layer", o.tap = "pixels", o.image_size = 32, o.hidden = 8, o.epochs = 2;
  expect_predict_equal(subject().fit("two", o));
}

TEST(EncodingModelFn, GaussianFwrfOnAlexNetEqualsPredict) {
  expect_predict_equal(subject().fit("gfwrf", alexnet("gaussian-fwrf", "features.1,features.4")));
}

TEST(EncodingModelFn, GaussianReadoutOnAlexNetEqualsPredict) {
  expect_predict_equal(subject().fit("gauss", alexnet("gaussian", "features.4")));
}

TEST(EncodingModelFn, CoreEqualsPredict) {
  encoding::EncodingSpec o;
  o.readout = "core", o.core_size = 16, o.epochs = 2;
  expect_predict_equal(subject().fit("core", o));
}

TEST(EncodingModelFn, FinetunedEqualsPredict) {
  encoding::EncodingSpec o = alexnet("fwrf", "features.4");
  o.finetune = true;
  o.epochs = 1;
  o.batch = 16;
  expect_predict_equal(subject().fit("ft", o));
}

// The pixel gradient of a fitted nonlinear model against central differences in float64 terms:
// <grad f_v(x), d> vs (f_v(x + h d) - f_v(x - h d)) / 2h on a smooth model (two-layer: sigmoid).
TEST(EncodingModelFn, PixelGradientMatchesFiniteDifferences) {
  encoding::EncodingSpec o;
  o.readout = "two-layer", o.tap = "pixels", o.image_size = 32, o.hidden = 8, o.epochs = 2;
  const encoding::ModelFn f = encoding::load_model_fn(subject().fit("two-fd", o));
  const Tensor x = encoding::load_pixels(subject().dir, f.size, {2});
  EXPECT_FALSE(requires_grad(*f.readout->named_parameters().front().second));
  Generator g(17);
  const Tensor d = randn({1, 3, 32, 32}, g);
  for (int64_t v : {0, 5}) {
    const Tensor xg = with_grad(x);
    const Tensor y = f(xg);
    const Tensor gr = grad({y.narrow(1, v, 1)}, {xg})[0];
    const double dir = sum(mul(gr.to(DType::Float64), d.to(DType::Float64))).item();
    NoGradGuard ng;
    const double h = 1e-2;
    const double fp = f(add(x, mul(d, scalar(h)))).at({0, v}), fm = f(sub(x, mul(d, scalar(h)))).at({0, v});
    const double fd = (fp - fm) / (2 * h);
    EXPECT_NEAR(dir, fd, 2e-3 * std::max(1.0, std::fabs(fd))) << "voxel " << v;
  }
}

TEST(EncodingModelFn, ParseIndexList) {
  EXPECT_EQ(encoding::parse_index_list("3,7,10-12", 20), (std::vector<int64_t>{3, 7, 10, 11, 12}));
  EXPECT_EQ(encoding::parse_index_list("0", 1), (std::vector<int64_t>{0}));
  EXPECT_EQ(encoding::parse_index_list("5-5,1", -1), (std::vector<int64_t>{5, 1}));
  EXPECT_CORTEX_ERROR(encoding::parse_index_list("", 5), "is empty");
  EXPECT_CORTEX_ERROR(encoding::parse_index_list("1,,2", 5), "expects indices like");
  EXPECT_CORTEX_ERROR(encoding::parse_index_list("a", 5), "expects indices like");
  EXPECT_CORTEX_ERROR(encoding::parse_index_list("-1", 5), "expects indices like");
  EXPECT_CORTEX_ERROR(encoding::parse_index_list("4-2", 5), "is empty");
  EXPECT_CORTEX_ERROR(encoding::parse_index_list("2,2", 5), "given twice");
  EXPECT_CORTEX_ERROR(encoding::parse_index_list("5", 5), "out of range");
  EXPECT_CORTEX_ERROR(encoding::parse_index_list("3-9", 5), "out of range");
}

TEST(EncodingModelFn, RoiColumnsFromTheSubjectAndRefusals) {
  encoding::EncodingSpec o;
  o.readout = "ridge", o.tap = "pixels", o.image_size = 32;
  const std::string model = subject().fit("ridge-roi", o);
  const encoding::ModelFn f = encoding::load_model_fn(model);
  const auto rois = encoding::roi_columns(f, subject().dir);
  ASSERT_TRUE(rois.count("simple"));
  size_t n = 0;
  for (const auto& [name, cols] : rois) n += cols.size();
  EXPECT_EQ(int64_t(n), f.voxels);  // every simulated voxel is of one kind
  EXPECT_CORTEX_ERROR(encoding::roi_columns(f), "metrics.json");  // encoding::fit writes no metrics.json
  EXPECT_CORTEX_ERROR(encoding::load_model_fn(subject().tmp / "none.safetensors"), "none.safetensors");
  EXPECT_CORTEX_ERROR(encoding::load_pixels(subject().dir, 32, {6}), "out of range");
  EXPECT_CORTEX_ERROR(encoding::load_pixels(subject().tmp / "nothing.npy", 32), "nothing.npy");
  NoGradGuard ng;
  EXPECT_CORTEX_ERROR(f(zeros({1, 3, 16, 16})), "expected float32 pixels (B, 3, 32, 32)");
}
