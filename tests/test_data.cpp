// data/dataset: the Algonauts and plain-pair readers on small layouts written here, every bad-input
// error, splits and batch streaming, and NSD-style HDF5 image bricks (when built with HDF5).
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>

#include "analysis/scores.h"
#include "autograd/ops.h"
#include "data/dataset.h"
#include "data/hdf5.h"
#include "tensor/io/image.h"
#include "tensor/io/npy.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace cortex;
using namespace cortex::data;
using cortex::testing::allclose;

using cortex::testing::TempDir;

namespace {

void write_text(const fs::path& p, const std::string& s) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << s;
}

Tensor image_n(int64_t i, int64_t h = 6, int64_t w = 5) {
  Tensor t = empty({h, w, 3}, DType::UInt8);
  uint8_t* d = t.data<uint8_t>();
  for (int64_t k = 0; k < h * w * 3; ++k) d[k] = static_cast<uint8_t>((k * 7 + i * 31) % 256);
  return t;
}

// A subject folder with `ntrain` training images, lh 3 and rh 4 vertices, 2 test images.
void make_algonauts(const fs::path& s, int64_t ntrain = 5, int64_t nrows = 5) {
  fs::create_directories(s / "training_split/training_images");
  fs::create_directories(s / "training_split/training_fmri");
  fs::create_directories(s / "test_split/test_images");
  fs::create_directories(s / "test_split/test_fmri");
  fs::create_directories(s / "test_split/noise_ceiling");
  fs::create_directories(s / "roi_masks");
  for (int64_t i = 0; i < ntrain; ++i)
    io::write_png((s / ("training_split/training_images/train-000" + std::to_string(i + 1) + "_nsd-0000" +
                        std::to_string(i) + ".png")).string(), image_n(i));
  for (int64_t i = 0; i < 2; ++i)
    io::write_png((s / ("test_split/test_images/test-000" + std::to_string(i + 1) + "_nsd-0010" + std::to_string(i) + ".png")).string(),
                  image_n(100 + i));
  io::write_npy((s / "training_split/training_fmri/lh_training_fmri.npy").string(), cortex::testing::randn({nrows, 3}, 1, DType::Float32));
  io::write_npy((s / "training_split/training_fmri/rh_training_fmri.npy").string(), cortex::testing::randn({nrows, 4}, 2, DType::Float32));
  io::write_npy((s / "test_split/test_fmri/lh_test_fmri.npy").string(), cortex::testing::randn({2, 3}, 3, DType::Float32));
  io::write_npy((s / "test_split/test_fmri/rh_test_fmri.npy").string(), cortex::testing::randn({2, 4}, 4, DType::Float32));
  io::write_npy((s / "test_split/noise_ceiling/lh_noise_ceiling.npy").string(), from_vector<float>({0.5f, 0.25f, 0.f}));
  io::write_npy((s / "test_split/noise_ceiling/rh_noise_ceiling.npy").string(), from_vector<float>({0.1f, 0.2f, 0.3f, 0.4f}));
  io::write_npy((s / "roi_masks/lh.prf-visualrois_challenge_space.npy").string(), from_vector<int32_t>({1, 0, 2}));
  io::write_npy((s / "roi_masks/rh.prf-visualrois_challenge_space.npy").string(), from_vector<int32_t>({2, 2, 0, 1}));
  write_text(s / "roi_masks/mapping_prf-visualrois.json", R"({"0": "Unknown", "1": "V1v", "2": "V1d"})");
}

}  // namespace

TEST(Algonauts, ReadsTrainSplitOneHemisphere) {
  TempDir t;
  make_algonauts(t.path());
  const Dataset d = load_algonauts(t.path().string(), "train");
  EXPECT_EQ(d.size(), 5);
  EXPECT_EQ(d.voxels(), 3);
  EXPECT_TRUE(allclose(d.responses, io::read_npy((t.path() / "training_split/training_fmri/lh_training_fmri.npy").string())));
  EXPECT_TRUE(allclose(d.image(3), image_n(3)));  // name order is row order
  EXPECT_EQ(d.rois.at("V1v"), (std::vector<int64_t>{0}));
  EXPECT_EQ(d.rois.at("V1d"), (std::vector<int64_t>{2}));
  EXPECT_FALSE(d.noise_ceiling.defined());
}

TEST(Algonauts, BothHemispheresConcatenateColumnsAndRois) {
  TempDir t;
  make_algonauts(t.path());
  LoadOptions o;
  o.hemi = "both";
  const Dataset d = load_algonauts(t.path().string(), "test", o);
  EXPECT_EQ(d.size(), 2);
  EXPECT_EQ(d.voxels(), 7);
  EXPECT_EQ(d.lh_voxels, 3);
  EXPECT_TRUE(allclose(d.responses.narrow(1, 3, 4), io::read_npy((t.path() / "test_split/test_fmri/rh_test_fmri.npy").string())));
  EXPECT_TRUE(allclose(d.noise_ceiling, from_vector<double>({0.5, 0.25, 0, 0.1, 0.2, 0.3, 0.4}), 1e-6, 1e-7));
  EXPECT_EQ(d.rois.at("V1v"), (std::vector<int64_t>{0, 6}));
  EXPECT_EQ(d.rois.at("V1d"), (std::vector<int64_t>{2, 3, 4}));
  EXPECT_TRUE(allclose(d.image(1), image_n(101)));
}

TEST(Algonauts, TestSplitWithoutFmriHasNoResponses) {
  TempDir t;
  make_algonauts(t.path());
  fs::remove_all(t.path() / "test_split/test_fmri");
  const Dataset d = load_algonauts(t.path().string(), "test");
  EXPECT_EQ(d.size(), 2);
  EXPECT_FALSE(d.responses.defined());
  EXPECT_EQ(d.noise_ceiling.size(0), 3);
  // With neither fMRI nor noise ceiling the ROI masks still place rh after lh.
  fs::remove_all(t.path() / "test_split/noise_ceiling");
  LoadOptions o;
  o.hemi = "both";
  const Dataset b = load_algonauts(t.path().string(), "test", o);
  EXPECT_EQ(b.rois.at("V1v"), (std::vector<int64_t>{0, 6}));
  // One hemisphere's test fMRI without the other's is refused, in either order.
  fs::create_directories(t.path() / "test_split/test_fmri");
  io::write_npy((t.path() / "test_split/test_fmri/rh_test_fmri.npy").string(), zeros({2, 4}));
  EXPECT_CORTEX_ERROR(load_algonauts(t.path().string(), "test", o), "present but the other hemisphere");
  fs::rename(t.path() / "test_split/test_fmri/rh_test_fmri.npy", t.path() / "test_split/test_fmri/lh_test_fmri.npy");
  EXPECT_CORTEX_ERROR(load_algonauts(t.path().string(), "test", o), "missing but the other hemisphere");
}

// Noise-ceiling units are decided once, in the loader (data/dataset.h: NcUnits): a ceiling stored
// in percent and the same ceiling stored as a fraction load to the same fraction and give the same
// challenge score (cortex fit and eval both read it through here).
TEST(Algonauts, NoiseCeilingUnits) {
  TempDir t;
  const fs::path frac = t.path() / "frac", pct = t.path() / "pct", low = t.path() / "low";
  for (const fs::path& s : {frac, pct, low}) make_algonauts(s);
  auto write_nc = [](const fs::path& s, std::vector<float> lh, std::vector<float> rh) {
    io::write_npy((s / "test_split/noise_ceiling/lh_noise_ceiling.npy").string(), from_vector<float>(lh));
    io::write_npy((s / "test_split/noise_ceiling/rh_noise_ceiling.npy").string(), from_vector<float>(rh));
  };
  write_nc(frac, {0.5f, 0.25f, 0.f}, {0.125f, 0.375f, 0.75f, 0.0625f});
  write_nc(pct, {50.f, 25.f, 0.f}, {12.5f, 37.5f, 75.f, 6.25f});
  write_nc(low, {0.5f, 0.25f, 0.f}, {1.25f, 0.375f, 0.75f, 0.0625f});  // percent, every vertex below 1.5 %
  LoadOptions lo;
  lo.hemi = "both";
  const Dataset a = load_algonauts(frac.string(), "test", lo), b = load_algonauts(pct.string(), "test", lo);
  EXPECT_FALSE(a.noise_ceiling_was_percent);
  EXPECT_TRUE(b.noise_ceiling_was_percent);
  EXPECT_EQ(a.noise_ceiling.to_vector<double>(), b.noise_ceiling.to_vector<double>());
  // The same predictions score the same against either file.
  const Tensor pred = a.responses * 0.5 + cortex::testing::randn({2, 7}, 9, DType::Float32);
  const analysis::PredictionMetrics ma = analysis::prediction_metrics(pred, a), mb = analysis::prediction_metrics(pred, b);
  ASSERT_TRUE(ma.has_score && mb.has_score);
  EXPECT_EQ(ma.challenge_score, mb.challenge_score);
  nlohmann::json ja = ma.json, jb = mb.json;
  EXPECT_EQ(ja["noise_ceiling_was_percent"], false);
  EXPECT_EQ(jb["noise_ceiling_was_percent"], true);
  ja.erase("noise_ceiling_was_percent"), jb.erase("noise_ceiling_was_percent");
  EXPECT_EQ(ja, jb);
  // Stated units: the same result; a file that cannot be a fraction is refused as one.
  lo.nc_units = NcUnits::Percent;
  EXPECT_EQ(load_algonauts(pct.string(), "test", lo).noise_ceiling.to_vector<double>(), a.noise_ceiling.to_vector<double>());
  // A percent ceiling below 1.5 everywhere looks like a fraction to auto: the flag says what it is.
  const Dataset l = load_algonauts(low.string(), "test", lo);
  EXPECT_TRUE(l.noise_ceiling_was_percent);
  EXPECT_DOUBLE_EQ(l.noise_ceiling.to_vector<double>()[3], 0.0125);
  lo.nc_units = NcUnits::Fraction;
  EXPECT_EQ(load_algonauts(frac.string(), "test", lo).noise_ceiling.to_vector<double>(), a.noise_ceiling.to_vector<double>());
  EXPECT_CORTEX_ERROR(load_algonauts(pct.string(), "test", lo), "more than a fraction can");
  lo.nc_units = NcUnits::Auto;
  EXPECT_FALSE(load_algonauts(low.string(), "test", lo).noise_ceiling_was_percent);
  EXPECT_EQ(parse_nc_units("percent"), NcUnits::Percent);
  EXPECT_CORTEX_ERROR(parse_nc_units("percentage"), "--nc-units must be auto, fraction or percent");
}

TEST(Algonauts, MismatchedImageAndResponseCounts) {
  TempDir t;
  make_algonauts(t.path(), 6, 5);
  EXPECT_CORTEX_ERROR(load_algonauts(t.path().string(), "train"), "6 images but 5 response rows");
}

TEST(Algonauts, NaNsReportedWithCountsOrDropped) {
  TempDir t;
  make_algonauts(t.path());
  Tensor r = cortex::testing::randn({5, 3}, 9, DType::Float32);
  r.data<float>()[1 * 3 + 0] = std::numeric_limits<float>::quiet_NaN();
  r.data<float>()[1 * 3 + 2] = std::numeric_limits<float>::quiet_NaN();
  r.data<float>()[4 * 3 + 1] = std::numeric_limits<float>::quiet_NaN();
  io::write_npy((t.path() / "training_split/training_fmri/lh_training_fmri.npy").string(), r);
  EXPECT_CORTEX_ERROR(load_algonauts(t.path().string(), "train"), "3 NaN values in 2 of 5 rows");
  LoadOptions o;
  o.drop_nan = true;
  const Dataset d = load_algonauts(t.path().string(), "train", o);
  EXPECT_EQ(d.rows, (std::vector<int64_t>{0, 2, 3}));
  EXPECT_TRUE(allclose(d.image(1), image_n(2)));
  EXPECT_TRUE(allclose(d.responses.select(0, 2), r.select(0, 3)));
}

TEST(Algonauts, RoiErrors) {
  TempDir t;
  make_algonauts(t.path());
  EXPECT_CORTEX_ERROR(load_roi(t.path().string(), "lh", "floc-faces"), "missing ROI file");
  io::write_npy((t.path() / "roi_masks/lh.floc-faces_challenge_space.npy").string(), from_vector<int32_t>({1, 0, 0}));
  EXPECT_CORTEX_ERROR(load_roi(t.path().string(), "lh", "floc-faces"), "missing ROI mapping");
  write_text(t.path() / "roi_masks/mapping_floc-faces.npy", "pickled");
  EXPECT_CORTEX_ERROR(load_roi(t.path().string(), "lh", "floc-faces"), "JSON sidecar");
  EXPECT_CORTEX_ERROR(load_algonauts(t.path().string(), "train"), "JSON sidecar");  // the reader reads every ROI set
  write_text(t.path() / "roi_masks/mapping_floc-faces.json", "[1, 2]");
  EXPECT_CORTEX_ERROR(load_roi(t.path().string(), "lh", "floc-faces"), "expected an object");
  write_text(t.path() / "roi_masks/mapping_floc-faces.json", "{nope");
  EXPECT_CORTEX_ERROR(load_roi(t.path().string(), "lh", "floc-faces"), "not valid JSON");
  EXPECT_CORTEX_ERROR(load_roi(t.path().string(), "xx", "floc-faces"), "hemi must be lh or rh");
}

TEST(Algonauts, OtherBadInputs) {
  TempDir t;
  make_algonauts(t.path());
  EXPECT_CORTEX_ERROR(load_algonauts((t.path() / "nope").string(), "train"), "expected a subject folder");
  EXPECT_CORTEX_ERROR(load_algonauts(t.path().string(), "val"), "split must be train or test");
  LoadOptions o;
  o.hemi = "left";
  EXPECT_CORTEX_ERROR(load_algonauts(t.path().string(), "train", o), "hemi must be lh, rh or both");
  io::write_npy((t.path() / "training_split/training_fmri/lh_training_fmri.npy").string(), zeros({5}));
  EXPECT_CORTEX_ERROR(load_algonauts(t.path().string(), "train"), "expected a 2-D (images, voxels) array");
  io::write_npy((t.path() / "training_split/training_fmri/lh_training_fmri.npy").string(), zeros({5, 3}, DType::Int32));
  EXPECT_CORTEX_ERROR(load_algonauts(t.path().string(), "train"), "expected float responses");
  fs::remove(t.path() / "training_split/training_fmri/lh_training_fmri.npy");
  EXPECT_CORTEX_ERROR(load_algonauts(t.path().string(), "train"), "missing response file");
  io::write_npy((t.path() / "roi_masks/rh.prf-visualrois_challenge_space.npy").string(), from_vector<int32_t>({2, 2, 0, 1, 1, 1}));
  o.hemi = "rh";
  EXPECT_CORTEX_ERROR(load_algonauts(t.path().string(), "train", o), "vertices but the responses have 4");
}

TEST(Pairs, ImagesNpyResponsesAndRois) {
  TempDir t;
  Tensor im = empty({4, 6, 5, 3}, DType::UInt8);
  for (int i = 0; i < 4; ++i) im.select(0, i).copy_(image_n(i));
  io::write_npy((t.path() / "images.npy").string(), im);
  const Tensor r = cortex::testing::randn({4, 3}, 5, DType::Float64);
  io::write_npy((t.path() / "responses.npy").string(), r);
  write_text(t.path() / "rois.json", R"({"A": [0, 2], "B": [1]})");
  const Dataset d = load_pairs(t.path().string());
  EXPECT_EQ(d.size(), 4);
  EXPECT_EQ(d.responses.dtype(), DType::Float32);
  EXPECT_TRUE(allclose(d.responses, r, 1e-6, 1e-6));
  EXPECT_TRUE(allclose(d.image(2), image_n(2)));
  EXPECT_EQ(d.rois.at("A"), (std::vector<int64_t>{0, 2}));
  write_text(t.path() / "rois.json", R"({"A": [0, 3]})");
  EXPECT_CORTEX_ERROR(load_pairs(t.path().string()), "expected a column in [0, 3)");
  write_text(t.path() / "rois.json", R"({"A": 1})");
  EXPECT_CORTEX_ERROR(load_pairs(t.path().string()), "should list columns");
  fs::remove(t.path() / "rois.json");
  io::write_npy((t.path() / "responses.npy").string(), r.narrow(0, 0, 3));
  EXPECT_CORTEX_ERROR(load_pairs(t.path().string()), "4 images but 3 response rows");
  io::write_npy((t.path() / "images.npy").string(), zeros({4, 6, 5, 3}));
  EXPECT_CORTEX_ERROR(load_pairs(t.path().string()), "expected uint8 (N, H, W[, C]) images");
}

TEST(Pairs, ImageFolderGrayNpyAndMissingFiles) {
  TempDir t;
  EXPECT_CORTEX_ERROR(load_pairs(t.path().string()), "expected images.npy, images.hdf5 or an images/ folder");
  fs::create_directories(t.path() / "images");
  EXPECT_CORTEX_ERROR(load_pairs(t.path().string()), "no PNG/JPEG images");
  for (int i = 0; i < 3; ++i) io::write_png((t.path() / "images" / ("im" + std::to_string(i) + ".png")).string(), image_n(i));
  write_text(t.path() / "images/readme.txt", "not an image");
  EXPECT_CORTEX_ERROR(load_pairs(t.path().string()), "missing response file");
  io::write_npy((t.path() / "responses.npy").string(), cortex::testing::randn({3, 2}, 6));
  const Dataset d = load_pairs(t.path().string());
  EXPECT_EQ(d.size(), 3);
  EXPECT_TRUE(allclose(d.image(2), image_n(2)));
  EXPECT_CORTEX_ERROR(d.image(3), "out of range");
  // A grey (N, H, W) images.npy is expanded to 3 channels.
  io::write_npy((t.path() / "images.npy").string(), image_n(0).select(2, 0).unsqueeze(0).expand({3, 6, 5}).contiguous());
  const Dataset g = load_pairs(t.path().string());
  EXPECT_EQ(g.image(1).shape(), (Shape{6, 5, 3}));
  EXPECT_EQ(g.image(1).at({2, 3, 2}), image_n(0).at({2, 3, 0}));
}

TEST(Splits, FractionIsASeededPartition) {
  const Split a = split_fraction(103, 0.1, 0.2, 7), b = split_fraction(103, 0.1, 0.2, 7), c = split_fraction(103, 0.1, 0.2, 8);
  EXPECT_EQ(a.val.size(), 10u);
  EXPECT_EQ(a.test.size(), 21u);
  EXPECT_EQ(a.train.size(), 72u);
  std::set<int64_t> all(a.train.begin(), a.train.end());
  all.insert(a.val.begin(), a.val.end());
  all.insert(a.test.begin(), a.test.end());
  EXPECT_EQ(all.size(), 103u);
  EXPECT_EQ(*all.rbegin(), 102);
  EXPECT_EQ(a.val, b.val);
  EXPECT_NE(a.val, c.val);
  EXPECT_CORTEX_ERROR(split_fraction(10, 0.6, 0.5, 0), "summing to <= 1");
  EXPECT_CORTEX_ERROR(split_fraction(10, -0.1, 0.5, 0), "fractions >= 0");
}

TEST(Splits, FromFiles) {
  TempDir t;
  const std::string tr = (t.path() / "tr.npy").string(), va = (t.path() / "va.npy").string(), bad = (t.path() / "bad.npy").string();
  io::write_npy(tr, from_vector<int64_t>({3, 0, 1}));
  io::write_npy(va, from_vector<int32_t>({2}));
  const Split s = split_from_files(5, tr, va, "");
  EXPECT_EQ(s.train, (std::vector<int64_t>{0, 1, 3}));
  EXPECT_EQ(s.val, (std::vector<int64_t>{2}));
  EXPECT_TRUE(s.test.empty());
  io::write_npy(bad, from_vector<int64_t>({1}));
  EXPECT_CORTEX_ERROR(split_from_files(5, tr, bad, ""), "appears twice or in two splits");
  io::write_npy(bad, from_vector<int64_t>({5}));
  EXPECT_CORTEX_ERROR(split_from_files(5, bad, "", ""), "out of range [0, 5)");
  io::write_npy(bad, from_vector<double>({1.0}));
  EXPECT_CORTEX_ERROR(split_from_files(5, bad, "", ""), "expected a 1-D integer index array");
}

TEST(Batches, StreamOverAnOrderAndSubset) {
  TempDir t;
  make_algonauts(t.path());
  const Dataset d = load_algonauts(t.path().string(), "train");
  BatchStream bs(d, 2, {4, 0, 2});
  EXPECT_EQ(bs.batches(), 2);
  Batch b;
  ASSERT_TRUE(bs.next(b));
  EXPECT_EQ(b.index, (std::vector<int64_t>{4, 0}));
  EXPECT_EQ(b.images.shape(), (Shape{2, 6, 5, 3}));
  EXPECT_TRUE(allclose(b.images.select(0, 0), image_n(4)));
  EXPECT_TRUE(allclose(b.responses.select(0, 1), d.responses.select(0, 0)));
  ASSERT_TRUE(bs.next(b));
  EXPECT_EQ(b.images.size(0), 1);
  EXPECT_FALSE(bs.next(b));
  bs.reset();
  EXPECT_TRUE(bs.next(b));
  const Dataset s = subset(d, {1, 3});
  EXPECT_EQ(s.rows, (std::vector<int64_t>{1, 3}));
  EXPECT_TRUE(allclose(s.image(1), image_n(3)));
  EXPECT_TRUE(allclose(s.responses.select(0, 0), d.responses.select(0, 1)));
  EXPECT_CORTEX_ERROR(BatchStream(d, 0), "batch_size > 0");
  EXPECT_CORTEX_ERROR(BatchStream(d, 2, {7}), "out of range");
  EXPECT_CORTEX_ERROR(subset(d, {9}), "out of range");
}

// ---------------------------------------------------------------- NSD-style HDF5 image bricks
TEST(Data, Hdf5ImageBricks) {
  TempDir t;
  if (!hdf5_available()) {
    // The build without HDF5 says so instead of failing obscurely.
    write_text(t / "p/images.hdf5", "x");
    io::write_npy((t / "p/responses.npy"), cortex::testing::randn({2, 2}, 1, DType::Float32));
    EXPECT_CORTEX_ERROR(load_pairs((t / "p")), "no HDF5 support");
    GTEST_SKIP() << "built without HDF5 (libhdf5-dev not found at configure time): brick reading not tested";
  }
  // 7 images of 6 x 5 x 3, read back one by one.
  std::vector<Tensor> ims;
  for (int64_t i = 0; i < 7; ++i) ims.push_back(image_n(i));
  const Tensor brick = stack(ims, 0);
  const std::string path = (t / "p/images.hdf5");
  fs::create_directories(t / "p");
  write_image_brick(path, "imgBrick", brick);
  {
    const ImageBrick b(path);
    EXPECT_EQ(b.size(), 7);
    EXPECT_EQ(b.height(), 6);
    EXPECT_EQ(b.width(), 5);
    EXPECT_EQ(b.channels(), 3);
    for (int64_t i = 0; i < 7; ++i) EXPECT_TRUE(allclose(b.read(i), ims[i], 0, 0)) << i;
    EXPECT_CORTEX_ERROR(b.read(7), "out of range [0, 7)");
  }
  // Pairs: response row k shows brick image ids[k] (NSD's 73k ids); a NaN row is dropped with its id.
  io::write_npy((t / "p/image_ids.npy"), from_vector<int64_t>({6, 0, 3, 3, 5}));
  Tensor y = cortex::testing::randn({5, 2}, 2, DType::Float32);
  y.data<float>()[2 * 2] = std::numeric_limits<float>::quiet_NaN();  // row 2
  io::write_npy((t / "p/responses.npy"), y);
  LoadOptions o;
  o.drop_nan = true;
  const Dataset d = load_pairs((t / "p"), o);
  ASSERT_EQ(d.size(), 4);
  EXPECT_EQ(d.source_rows, 5);
  const std::vector<int64_t> shown{6, 0, 3, 5};
  for (int64_t k = 0; k < 4; ++k) EXPECT_TRUE(allclose(d.image(k), ims[shown[k]], 0, 0)) << k;
  const Dataset s = subset(d, {3, 1});
  EXPECT_TRUE(allclose(s.image(0), ims[5], 0, 0));
  EXPECT_TRUE(allclose(s.image(1), ims[0], 0, 0));
  BatchStream bs(d, 3);
  Batch b;
  ASSERT_TRUE(bs.next(b));
  EXPECT_TRUE(allclose(b.images.select(0, 2), ims[3], 0, 0));
  // One channel is shown as grey RGB.
  const std::string grey = (t / "g.hdf5");
  write_image_brick(grey, "imgBrick", brick.narrow(3, 0, 1).contiguous());
  fs::create_directories(t / "g");
  fs::rename(grey, t / "g/images.hdf5");
  io::write_npy((t / "g/responses.npy"), cortex::testing::randn({7, 1}, 3, DType::Float32));
  const Dataset g = load_pairs((t / "g"));
  EXPECT_TRUE(allclose(g.image(4).narrow(2, 2, 1), ims[4].narrow(2, 0, 1), 0, 0));
  // Bad files and ids.
  io::write_npy((t / "p/image_ids.npy"), from_vector<int64_t>({0, 1, 7, 2, 3}));
  EXPECT_CORTEX_ERROR(load_pairs((t / "p"), o), "names image 7, out of range [0, 7)");
  io::write_npy((t / "p/image_ids.npy"), from_vector<float>({0, 1, 2, 3, 4}));
  EXPECT_CORTEX_ERROR(load_pairs((t / "p"), o), "1-D integer array");
  fs::remove(t / "p/image_ids.npy");
  EXPECT_CORTEX_ERROR(load_pairs((t / "p"), o), "7 images but 5 response rows");
  EXPECT_CORTEX_ERROR(ImageBrick(path, "stimuli"), "has no dataset 'stimuli'");
  write_text(t / "junk.hdf5", "not hdf5 at all");
  EXPECT_CORTEX_ERROR(ImageBrick((t / "junk.hdf5")), "is not an HDF5 file");
  EXPECT_CORTEX_ERROR(ImageBrick((t / "none.hdf5")), "no file at");
  // A truncated brick fails with an Error when opened or when an image is read, never a crash.
  const std::string cut = (t / "cut.hdf5");
  fs::copy_file(path, cut);
  fs::resize_file(cut, fs::file_size(cut) / 2);
  EXPECT_THROW(
      {
        const ImageBrick c(cut);
        for (int64_t i = 0; i < c.size(); ++i) c.read(i);
      },
      cortex::Error);
  EXPECT_CORTEX_ERROR(write_image_brick((t / "x.hdf5"), "imgBrick", zeros({2, 3})), "expected uint8 images");
}

TEST(Data, LoadImagesAlone) {
  TempDir t;
  fs::create_directories(t / "f");
  for (int64_t i = 0; i < 3; ++i) io::write_png(t / ("f/img" + std::to_string(i) + ".png"), image_n(i));
  const Dataset f = load_images(t / "f");
  ASSERT_EQ(f.size(), 3);
  EXPECT_FALSE(f.responses.defined());
  EXPECT_TRUE(allclose(f.image(2), image_n(2), 0, 0));
  io::write_npy(t / "g.npy", stack({image_n(4), image_n(5)}, 0).narrow(3, 0, 1).contiguous());
  const Dataset g = load_images(t / "g.npy");
  ASSERT_EQ(g.size(), 2);
  EXPECT_TRUE(allclose(g.image(1).narrow(2, 1, 1), image_n(5).narrow(2, 0, 1), 0, 0));  // grey shown as RGB
  EXPECT_CORTEX_ERROR(load_images(t / "nothing"), "nothing at");
  write_text(t / "x.txt", "x");
  EXPECT_CORTEX_ERROR(load_images(t / "x.txt"), "expected a folder, a .npy or an .hdf5 brick");
  fs::create_directories(t / "empty");
  EXPECT_CORTEX_ERROR(load_images(t / "empty"), "no PNG/JPEG images");
  io::write_npy(t / "f4.npy", zeros({2, 4, 4, 3}));
  EXPECT_CORTEX_ERROR(load_images(t / "f4.npy"), "expected uint8 (N, H, W[, C]) images");
}
