// encoding/model_file.h: the model file's metadata round-trips, and a reader refuses another
// format_version, a missing key or a malformed value with one line naming the file and the key.
#include <gtest/gtest.h>

#include <set>

#include "encoding/model_file.h"
#include "tensor/io/safetensors.h"
#include "test_util.h"

namespace cortex {
namespace {

using encoding::ModelSettings;

ModelSettings example() {
  ModelSettings s;
  s.readout = "fwrf", s.arch = "alexnet", s.config = "", s.tap = "features.1,features.4", s.weights = "random:3";
  s.hemi = "both", s.loss = "mse", s.pool = 2, s.image_size = 96, s.core_size = 32, s.hidden = 64, s.finetune = true;
  s.dtype = "bf16";
  return s;
}

void expect_same(const ModelSettings& a, const ModelSettings& b) {
  EXPECT_EQ(encoding::model_metadata(a), encoding::model_metadata(b));
}

TEST(EncodingModelFile, RoundTrip) {
  cortex::testing::TempDir t;
  const std::string path = t / "model.safetensors";
  encoding::write_model_file(path, {{"bias", ones({5})}}, example());
  const auto [tensors, s] = encoding::read_model_file(path);
  expect_same(s, example());
  ASSERT_EQ(tensors.count("bias"), 1u);
  const auto meta = io::SafeTensors::open(path).metadata();
  EXPECT_EQ(meta.at("format_version"), std::to_string(encoding::kModelFormatVersion));
  // Every key docs/model-file.md lists, and no other.
  std::vector<std::string> keys;
  for (const auto& [k, v] : meta) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{"arch", "config", "core_size", "dtype", "finetune", "format_version",
                                            "gaussian_sigma", "hemi", "hidden", "image_size", "loss", "pool",
                                            "position_mlp", "readout", "shared_features", "tap", "weights"}));
  EXPECT_EQ(t.list(), std::vector<std::string>{"model.safetensors"});  // no temporary left behind
}

TEST(EncodingModelFile, RefusesOtherVersionsAndMissingKeys) {
  const auto good = encoding::model_metadata(example());
  auto meta = good;
  meta["format_version"] = "2";
  EXPECT_CORTEX_ERROR(encoding::model_settings(meta, "m.safetensors"),
                      "model file m.safetensors: format_version '2', this cortex reads version 1");
  meta.erase("format_version");
  EXPECT_CORTEX_ERROR(encoding::model_settings(meta, "m.safetensors"), "no 'format_version' in its metadata");
  // The Gaussian readout's keys are optional (files written before them read as the defaults);
  // every other key is required.
  const std::set<std::string> optional = {"gaussian_sigma", "shared_features", "position_mlp", "dtype"};
  for (const auto& [key, value] : good) {
    if (key == "format_version") continue;
    meta = good;
    meta.erase(key);
    if (optional.count(key)) {
      const ModelSettings d = encoding::model_settings(meta, "m.safetensors");
      EXPECT_EQ(encoding::model_metadata(d).at(key), encoding::model_metadata(ModelSettings{}).at(key)) << key;
      continue;
    }
    EXPECT_CORTEX_ERROR(encoding::model_settings(meta, "m.safetensors"), "no '" + key + "' in its metadata");
  }
  meta = good;
  meta["gaussian_sigma"] = "diagonal";
  EXPECT_CORTEX_ERROR(encoding::model_settings(meta, "m.safetensors"), "'gaussian_sigma' must be full, uncorrelated or isotropic");
  meta = good;
  meta["dtype"] = "fp16";
  EXPECT_CORTEX_ERROR(encoding::model_settings(meta, "m.safetensors"), "metadata 'dtype' must be fp32 or bf16");
  meta = good;
  meta["pool"] = "2x";
  EXPECT_CORTEX_ERROR(encoding::model_settings(meta, "m.safetensors"), "metadata 'pool' is not an integer");
  meta = good;
  meta["finetune"] = "yes";
  EXPECT_CORTEX_ERROR(encoding::model_settings(meta, "m.safetensors"), "'finetune' must be 0 or 1");
}

}  // namespace
}  // namespace cortex
