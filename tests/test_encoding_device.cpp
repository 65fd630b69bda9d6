// cortex fit on another device (issue 13): ridge CV runs through kernel entries, so `fit --device
// emu` on a tiny simulated subject (grey pixels, no backbone) must give the CPU's per-voxel r on the
// test split to 1e-4, with strict device mode on (no op of the fit falls back to the host).
#include <gtest/gtest.h>

#include <string>

#include "analysis/metrics.h"
#include "data/simulate.h"
#include "encoding/pipeline.h"
#include "kernels/dispatch.h"
#include "tests/test_util.h"

using namespace cortex;

TEST(EncodingDevice, RidgeFitOnEmuGivesTheCpusPerVoxelR) {
  cortex::testing::TempDir tmp;
  data::SimConfig cfg;
  cfg.n_train = 160;
  cfg.n_test = 30;
  cfg.voxels = 40;
  cfg.image_size = 32;
  cfg.seed = 3;
  const std::string subject = data::write_simulation(data::simulate(cfg), tmp / "sim");
  auto fit_on = [&](const std::string& device) {
    encoding::EncodingSpec o;
    o.data = subject;
    o.hemi = "both";
    o.readout = "ridge";
    o.tap = "pixels";
    o.image_size = 32;
    o.folds = 3;
    o.device = device;
    o.out = tmp / ("out-" + device);
    return encoding::fit(o);
  };
  const encoding::FitResult cpu = fit_on("cpu");
  kernels::set_strict_device(true);
  kernels::reset_fallback_stats();
  encoding::FitResult emu;
  EXPECT_NO_THROW(emu = fit_on("emu"));
  kernels::set_strict_device(false);
  ASSERT_TRUE(emu.pred.defined());
  EXPECT_TRUE(kernels::fallback_stats().empty());
  const Tensor r_cpu = analysis::pearson_r(cpu.pred, cpu.test.responses);
  const Tensor r_emu = analysis::pearson_r(emu.pred, emu.test.responses);
  ASSERT_EQ(r_cpu.numel(), 40);
  EXPECT_TRUE(cortex::testing::allclose(r_emu, r_cpu, 0.0, 1e-4));
  // and the fit learned something (the linear voxels of the simulation are predictable from pixels)
  double mean = 0;
  for (double r : r_cpu.to(DType::Float64).to_vector<double>()) mean += r / 40;
  EXPECT_GT(mean, 0.05);
}
