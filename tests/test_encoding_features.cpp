// encoding/features.h: the preprocessing comes from the backbone, and cortex fit's path to a
// readout's inputs gives the same activations as cortex features' path, for a torchvision layout
// (AlexNet) and the CLIP layout (small models of tests/data/models).
#include <gtest/gtest.h>

#include "autograd/ops.h"
#include "encoding/features.h"
#include "model_fixtures.h"
#include "tensor/io/image.h"

namespace cortex {
namespace {

using testing::load_fixture;

// n random uint8 (H, W, 3) images as a dataset without responses.
data::Dataset random_images(int64_t n, int64_t h, int64_t w, uint64_t seed) {
  Generator g(seed);
  data::Dataset d;
  d.name = "random images";
  d.images = rand({n, h, w, 3}, g, 0.0, 255.0).to(DType::UInt8);
  for (int64_t i = 0; i < n; ++i) d.rows.push_back(i);
  d.source_rows = n;
  return d;
}

bool identical(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  const auto va = a.contiguous().to(DType::Float64).to_vector<double>(), vb = b.contiguous().to(DType::Float64).to_vector<double>();
  return va == vb;
}

// The readout inputs cortex fit computes (Maps: one map per tap) equal the activations cortex
// features writes, when both use the backbone's preprocessing at the same size and geometry.
void check_fit_path_equals_features_path(const std::string& fixture, const std::vector<std::string>& taps,
                                         int64_t size, models::Preprocess expected) {
  auto r = load_fixture(fixture);
  models::Backbone& m = *r.model;
  const data::Dataset d = random_images(5, 41, 53, 7);
  for (bool crop : {false, true}) {
    const encoding::Preprocessing prep = encoding::preprocessing_for(&m, size, crop);
    EXPECT_EQ(prep.stats, expected) << fixture;
    encoding::InputSpec s;
    s.input = encoding::Input::Maps;
    s.taps = taps;
    s.prep = prep;
    s.batch = 2;
    s.readout = "fwrf";
    const std::vector<Tensor> fit_path = encoding::readout_inputs(&m, d, s, "test");
    const auto features_path = encoding::tap_activations(
        m, d.size(),
        [&](int64_t b, int64_t e) {
          std::vector<int64_t> rows;
          for (int64_t i = b; i < e; ++i) rows.push_back(i);
          return encoding::prepare_rows(d, rows, prep);
        },
        taps, 2, Device::cpu());
    ASSERT_EQ(fit_path.size(), taps.size());
    for (size_t k = 0; k < taps.size(); ++k) {
      EXPECT_EQ(fit_path[k].shape(), (Shape{5, fit_path[k].size(1), fit_path[k].size(2), fit_path[k].size(3)}));
      EXPECT_TRUE(identical(fit_path[k], features_path.at(taps[k]))) << fixture << " tap " << taps[k] << " crop " << crop;
    }
  }
}

TEST(EncodingFeatures, FitAndFeaturesAgreeTorchvision) {
  check_fit_path_equals_features_path("alexnet", {"features.2", "features.5"}, 63, models::Preprocess::ImageNet);
}

TEST(EncodingFeatures, FitAndFeaturesAgreeClip) {
  check_fit_path_equals_features_path("clip", {"transformer.resblocks.1:grid"}, 32, models::Preprocess::Clip);
}

// The statistics are the backbone's: a CLIP model's input is normalised with CLIP's mean and std
// (fit used ImageNet's for every backbone before), cropping or not.
TEST(EncodingFeatures, StatisticsFromTheBackbone) {
  const data::Dataset d = random_images(1, 20, 20, 3);
  const Tensor img = d.image(0);
  const Tensor chw = io::to_float_chw(img);
  const encoding::Preprocessing clip{models::Preprocess::Clip, 20, false};
  const encoding::Preprocessing imagenet{models::Preprocess::ImageNet, 20, false};
  EXPECT_TRUE(identical(encoding::prepare_image(img, clip), io::normalize(chw, io::kClipMean, io::kClipStd)));
  EXPECT_TRUE(identical(encoding::prepare_image(img, imagenet), io::normalize(chw, io::kImageNetMean, io::kImageNetStd)));
  // Cropping is the source library's own transform.
  EXPECT_TRUE(identical(encoding::prepare_image(img, {models::Preprocess::Clip, 16, true}), io::preprocess_clip(img, 16)));
  EXPECT_TRUE(identical(encoding::prepare_image(img, {models::Preprocess::ImageNet, 16, true}),
                        io::preprocess_imagenet(img, 16 * 256 / 224, 16)));
  // No backbone (the core, grey pixels): ImageNet statistics, as before.
  EXPECT_EQ(encoding::preprocessing_for(nullptr, 32, false).stats, models::Preprocess::ImageNet);
  auto c = load_fixture("clip");
  EXPECT_EQ(encoding::preprocessing_for(c.model.get(), 32, false).stats, models::Preprocess::Clip);
}

}  // namespace
}  // namespace cortex
