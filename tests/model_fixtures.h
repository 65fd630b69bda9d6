// Shared by test_models_cnn.cpp and test_models_vit.cpp: loads a fixture written by
// tests/data/make_fixtures.py and compares every tapped activation with PyTorch's.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "models/backbone.h"
#include "tensor/io/safetensors.h"

namespace cortex::testing {

inline std::string model_fixture(const std::string& name) { return std::string(CORTEX_TEST_DATA) + "/models/" + name; }

// max |a - b| / max |b|: the error relative to the activation's scale (elementwise relative error
// is meaningless where an activation crosses zero).
inline double rel_error(const Tensor& a, const Tensor& b) {
  auto va = a.to(DType::Float64).to_vector<double>(), vb = b.to(DType::Float64).to_vector<double>();
  double num = 0, den = 0;
  for (size_t i = 0; i < va.size(); ++i) {
    num = std::max(num, std::abs(va[i] - vb[i]));
    den = std::max(den, std::abs(vb[i]));
  }
  return den > 0 ? num / den : num;
}

struct FixtureRun {
  std::shared_ptr<models::Backbone> model;
  std::map<std::string, Tensor> io;
  std::vector<std::string> taps;  // every tap in the fixture (not input/output)
};

inline FixtureRun load_fixture(const std::string& name) {
  FixtureRun r;
  auto cfg = models::config_from_file(model_fixture(name + ".json"));
  r.model = models::load_backbone(cfg, model_fixture(name + ".safetensors"));
  r.io = io::load_safetensors(model_fixture(name + "_io.safetensors"));
  for (auto& [k, t] : r.io)
    if (k != "input" && k != "output") r.taps.push_back(k);
  return r;
}

// Runs the model on `device` with every fixture tap and checks each one (and "output") to rel.
// error 1e-4.
inline void check_all_taps(const std::string& name, Device device = Device::cpu()) {
  auto r = load_fixture(name);
  ASSERT_GT(r.taps.size(), 3u) << name;
  auto taps = r.taps;
  taps.push_back("output");
  if (!device.is_cpu()) r.model->to(device);
  auto got = r.model->features(r.io.at("input").to(device), taps, false);
  double worst = 0;
  for (auto& k : taps) {
    ASSERT_TRUE(got.count(k)) << name << ": tap " << k << " missing";
    const Tensor& ref = r.io.at(k);
    ASSERT_EQ(got[k].shape(), ref.shape()) << name << ": tap " << k;
    ASSERT_EQ(got[k].device(), device) << name << ": tap " << k;
    const double e = rel_error(got[k], ref);
    EXPECT_LE(e, 1e-4) << name << ": tap " << k << " rel. error " << e;
    worst = std::max(worst, e);
  }
  std::printf("%s on %s: %zu taps + output, max rel. error %.2e\n", name.c_str(), device.str().c_str(), taps.size() - 1,
              worst);
}

}  // namespace cortex::testing
