// The scene simulator (data/scenes.h): determinism per image, masks consistent with each other and
// with the planted class textures, the ignore band, and the files write_scenes leaves.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "data/scenes.h"
#include "tensor/io/mask.h"
#include "tensor/io/npy.h"
#include "tests/test_util.h"

using namespace cortex;
using cortex::testing::expect_error;
using cortex::testing::TempDir;

TEST(Scenes, DeterministicPerImageAndSeeded) {
  data::SceneConfig c;
  c.images = 3, c.size = 33, c.classes = 4, c.seed = 7;
  const data::Scenes a = data::simulate_scenes(c);
  EXPECT_EQ(a.images.shape(), (Shape{3, 33, 33, 3}));
  EXPECT_EQ(a.labels.shape(), (Shape{3, 33, 33}));
  EXPECT_EQ(a.figure.dtype(), DType::UInt8);
  c.images = 5;
  const data::Scenes b = data::simulate_scenes(c);
  // Image i does not depend on how many images are drawn.
  EXPECT_EQ(a.images.to_vector<uint8_t>(), b.images.narrow(0, 0, 3).contiguous().to_vector<uint8_t>());
  EXPECT_EQ(a.labels.to_vector<uint8_t>(), b.labels.narrow(0, 0, 3).contiguous().to_vector<uint8_t>());
  c.seed = 8;
  EXPECT_NE(a.images.to_vector<uint8_t>(), data::simulate_scenes(c).images.narrow(0, 0, 3).contiguous().to_vector<uint8_t>());
}

TEST(Scenes, MasksAgreeAndClassesCarryTheirColour) {
  data::SceneConfig c;
  c.images = 24, c.size = 48, c.classes = 3, c.noise = 4, c.seed = 3;
  const data::Scenes s = data::simulate_scenes(c);
  const auto img = s.images.to_vector<uint8_t>();
  const auto lab = s.labels.to_vector<uint8_t>();
  const auto fig = s.figure.to_vector<uint8_t>();
  // Per class: mean colour of its pixels. The texture is colour * (0.55 + 0.4 sin), so over many
  // periods the mean is 0.55 * 255 * colour (hue (c-1)/3, s 0.8, v 0.9: red, green, blue dominant).
  double sum[4][3] = {}, cnt[4] = {};
  int64_t fg = 0;
  for (size_t i = 0; i < lab.size(); ++i) {
    ASSERT_TRUE(lab[i] <= 3) << int(lab[i]);  // no border: no ignore
    EXPECT_EQ(fig[i], lab[i] == 0 ? 0 : 1);
    fg += lab[i] != 0;
    cnt[lab[i]] += 1;
    for (int ch = 0; ch < 3; ++ch) sum[lab[i]][ch] += img[3 * i + ch];
  }
  const double frac = static_cast<double>(fg) / lab.size();
  EXPECT_GT(frac, 0.1);
  EXPECT_LT(frac, 0.8);
  for (int k = 1; k <= 3; ++k) {
    ASSERT_GT(cnt[k], 500) << k;
    const double hi = 0.55 * 255 * 0.9, lo = 0.55 * 255 * 0.9 * 0.2;  // v and v (1 - s)
    for (int ch = 0; ch < 3; ++ch) {
      const double m = sum[k][ch] / cnt[k];
      EXPECT_NEAR(m, ch == k - 1 ? hi : lo, 12.0) << "class " << k << " channel " << ch;
    }
  }
}

TEST(Scenes, IgnoreBandMarksEveryLabelChange) {
  data::SceneConfig c;
  c.images = 4, c.size = 40, c.classes = 2, c.border = 1, c.seed = 11;
  const data::Scenes s = data::simulate_scenes(c);
  c.border = 0;
  const data::Scenes raw = data::simulate_scenes(c);
  EXPECT_EQ(s.images.to_vector<uint8_t>(), raw.images.to_vector<uint8_t>());
  const auto l = s.labels.to_vector<uint8_t>(), r = raw.labels.to_vector<uint8_t>();
  const int64_t S = 40;
  int64_t ignored = 0;
  for (int64_t n = 0; n < 4; ++n)
    for (int64_t y = 0; y < S; ++y)
      for (int64_t x = 0; x < S; ++x) {
        const size_t i = static_cast<size_t>((n * S + y) * S + x);
        bool change = false;  // reference: any 8-neighbour with another raw label
        for (int dy = -1; dy <= 1; ++dy)
          for (int dx = -1; dx <= 1; ++dx)
            if (y + dy >= 0 && y + dy < S && x + dx >= 0 && x + dx < S && r[i + dy * S + dx] != r[i]) change = true;
        EXPECT_EQ(l[i], change ? 255 : r[i]);
        ignored += change;
      }
  EXPECT_GT(ignored, 0);
}

TEST(Scenes, WritesReadableMasks) {
  TempDir dir;
  data::SceneConfig c;
  c.images = 3, c.size = 21, c.classes = 5, c.border = 1, c.seed = 2;
  const data::Scenes s = data::simulate_scenes(c);
  data::write_scenes(s, dir / "out");
  EXPECT_EQ(io::read_npy(dir / "out/images.npy").to_vector<uint8_t>(), s.images.to_vector<uint8_t>());
  for (int64_t n = 0; n < 3; ++n) {
    const std::string name = "0000" + std::to_string(n) + ".png";
    EXPECT_EQ(io::read_index_mask(dir / ("out/masks/" + name)).to_vector<uint8_t>(),
              s.labels.select(0, n).contiguous().to_vector<uint8_t>());
    EXPECT_EQ(io::read_binary_mask(dir / ("out/figure/" + name)).to_vector<uint8_t>(),
              s.figure.select(0, n).contiguous().to_vector<uint8_t>());
  }
  EXPECT_EQ(io::read_npy(dir / "out/labels.npy").to_vector<uint8_t>(), s.labels.to_vector<uint8_t>());
  EXPECT_TRUE(std::filesystem::exists(dir / "out/scenes.json"));
}

TEST(Scenes, Refusals) {
  data::SceneConfig c;
  c.images = 0;
  expect_error([&] { data::simulate_scenes(c); }, {"at least one image", "0"});
  c = {};
  c.size = 4;
  expect_error([&] { data::simulate_scenes(c); }, {"8..2048", "4"});
  c = {};
  c.classes = 255;
  expect_error([&] { data::simulate_scenes(c); }, {"1..254", "255"});
  c = {};
  c.border = 17;
  expect_error([&] { data::simulate_scenes(c); }, {"border", "17"});
  c = {};
  c.noise = -1;
  expect_error([&] { data::simulate_scenes(c); }, {"noise", "-1"});
}
