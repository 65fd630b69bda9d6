// Images: PNG/JPEG decoding against PIL, PNG writing, and torchvision's preprocessing (Resize with
// PIL bilinear/bicubic, CenterCrop, ToTensor, Normalize) against outputs PIL and NumPy produced
// (tests/data/io/make_io_fixtures.py).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <algorithm>

#include "data/dataset.h"
#include "encoding/features.h"
#include "model_fixtures.h"
#include "tensor/io/atomic_file.h"
#include "tensor/io/image.h"
#include "tensor/io/npy.h"
#include "tensor/random.h"
#include "tensor/tensor.h"
#include "tests/test_util.h"

using namespace cortex;
namespace fs = std::filesystem;

using cortex::testing::TempDir;
using cortex::testing::expect_error;
using cortex::testing::put_file;

namespace {

const std::string kData = std::string(CORTEX_TEST_DATA) + "/io/";

Tensor fixture(const std::string& f) { return io::read_npy(kData + f); }

// Largest |a - b| over all elements (shapes must match).
double max_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  if (a.shape() != b.shape()) return 1e9;
  auto va = a.to_vector<double>(), vb = b.to_vector<double>();
  double m = 0;
  for (size_t i = 0; i < va.size(); ++i) m = std::max(m, std::abs(va[i] - vb[i]));
  return m;
}

Tensor random_image(const Shape& s, uint64_t seed) {
  Generator g(seed);
  return randint(0, 256, s, g, DType::Int64).to(DType::UInt8);
}

}  // namespace

// ---------------------------------------------------------------- decoding and encoding

TEST(Image, PngDecodingMatchesPil) {
  for (const char* f : {"img_land_120x160", "img_port_75x50"}) {
    Tensor img = io::read_image(kData + f + ".png");
    EXPECT_EQ(img.dtype(), DType::UInt8);
    EXPECT_EQ(max_diff(img, fixture(std::string(f) + ".npy")), 0.0) << f;
  }
  // grey: Gray and Native keep one channel; RGB repeats it
  Tensor grey = fixture("img_grey_20x30.npy").unsqueeze(2);
  EXPECT_EQ(max_diff(io::read_image(kData + "img_grey_20x30.png", io::ImageMode::Gray), grey), 0.0);
  EXPECT_EQ(max_diff(io::read_image(kData + "img_grey_20x30.png", io::ImageMode::Native), grey), 0.0);
  Tensor g3 = io::read_image(kData + "img_grey_20x30.png");
  EXPECT_EQ(g3.shape(), (Shape{20, 30, 3}));
  for (int64_t c = 0; c < 3; ++c) EXPECT_EQ(max_diff(g3.narrow(2, c, 1), grey), 0.0);
  // RGBA: kept on request, alpha dropped by default
  Tensor rgba = fixture("img_rgba_20x30.npy");
  EXPECT_EQ(max_diff(io::read_image(kData + "img_rgba_20x30.png", io::ImageMode::RGBA), rgba), 0.0);
  EXPECT_EQ(max_diff(io::read_image(kData + "img_rgba_20x30.png", io::ImageMode::Native), rgba), 0.0);
  EXPECT_EQ(max_diff(io::read_image(kData + "img_rgba_20x30.png"), rgba.narrow(2, 0, 3)), 0.0);
  // palette PNG expands like PIL's convert('RGB')
  EXPECT_EQ(max_diff(io::read_image(kData + "img_palette_75x50.png"), fixture("img_palette_75x50_rgb.npy")), 0.0);
}

TEST(Image, JpegDecodingMatchesPil) {
  // libjpeg-turbo with PIL's settings: the pixels PIL gives, not merely close to them.
  EXPECT_EQ(max_diff(io::read_image(kData + "img_land_120x160.jpg"), fixture("img_land_120x160_jpg_pil.npy")), 0.0);
}

// Every file of tests/data/io/decode/ (JPEGs PIL wrote at several qualities, subsamplings 4:4:4,
// 4:2:2, 4:2:0, 4:1:1, progressive, with restart markers, grey, CMYK, with EXIF orientations; PNGs of every colour type and bit depth, palette
// and tRNS, interlaced) decodes to exactly PIL's pixels in every mode, and with exif_transpose to
// ImageOps.exif_transpose's (make_io_fixtures.py, make_decode).
TEST(Image, DecodingMatchesPilOnEveryFixture) {
  std::vector<fs::path> refs;
  for (const auto& e : fs::directory_iterator(kData + "decode"))
    if (e.path().extension() == ".npz") refs.push_back(e.path());
  std::sort(refs.begin(), refs.end());
  int jpegs = 0, pngs = 0, rotated = 0;
  const std::pair<io::ImageMode, const char*> modes[] = {
      {io::ImageMode::RGB, "rgb"}, {io::ImageMode::Gray, "l"}, {io::ImageMode::RGBA, "rgba"}, {io::ImageMode::Native, "native"}};
  for (const fs::path& r : refs) {
    fs::path img = fs::path(r).replace_extension(".jpg");
    if (fs::exists(img)) {
      ++jpegs;
    } else {
      img.replace_extension(".png");
      ASSERT_TRUE(fs::exists(img)) << r;
      ++pngs;
    }
    const std::string name = img.filename().string();
    auto ref = io::read_npz(r.string());
    for (const auto& [mode, key] : modes) {
      const Tensor got = io::read_image(img.string(), mode);
      const Tensor want = ref.at(key);
      ASSERT_EQ(got.shape(), want.shape()) << name << " " << key;
      EXPECT_EQ(got.dtype(), DType::UInt8);
      EXPECT_EQ(got.contiguous().to_vector<uint8_t>(), want.to_vector<uint8_t>()) << name << " " << key;
    }
    const Tensor ex = io::read_image(img.string(), io::ImageMode::RGB, io::kMaxImagePixels, true);
    ASSERT_EQ(ex.shape(), ref.at("exif_rgb").shape()) << name;
    EXPECT_EQ(ex.to_vector<uint8_t>(), ref.at("exif_rgb").to_vector<uint8_t>()) << name << " exif_transpose";
    if (ex.shape() != ref.at("rgb").shape() || ex.to_vector<uint8_t>() != ref.at("rgb").to_vector<uint8_t>()) ++rotated;
    // from memory, the same pixels
    const auto bytes = io::read_file_bytes(img.string());
    EXPECT_EQ(io::decode_image(bytes.data(), bytes.size(), name).to_vector<uint8_t>(), ref.at("rgb").to_vector<uint8_t>());
  }
  EXPECT_EQ(jpegs, 24);
  EXPECT_EQ(pngs, 18);
  EXPECT_EQ(rotated, 7 + 1 + 2);  // JPEG orientations 2..8, the big-endian EXIF, the two PNG eXIf
}

TEST(Image, ExifOrientation) {
  // The orientation tag of little- and big-endian TIFF blocks; anything unreadable is 1.
  auto tiff = [](int o, bool big) {
    std::vector<uint8_t> t = big ? std::vector<uint8_t>{'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1,
                                                        0, static_cast<uint8_t>(o), 0, 0, 0, 0, 0, 0}
                                 : std::vector<uint8_t>{'I', 'I', 42, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0,
                                                        static_cast<uint8_t>(o), 0, 0, 0, 0, 0, 0, 0};
    return t;
  };
  for (int o = 1; o <= 8; ++o) {
    EXPECT_EQ(io::exif_orientation(tiff(o, false)), o);
    EXPECT_EQ(io::exif_orientation(tiff(o, true)), o);
  }
  EXPECT_EQ(io::exif_orientation(tiff(9, false)), 1);
  EXPECT_EQ(io::exif_orientation({}), 1);
  auto cut = tiff(6, true);
  cut.resize(15);  // the entry runs past the end
  EXPECT_EQ(io::exif_orientation(cut), 1);
  auto far = tiff(6, false);
  far[4] = 0xF0;  // IFD0 offset past the end
  EXPECT_EQ(io::exif_orientation(far), 1);
  // The transposes on a 2 x 3 image [[0 1 2] [3 4 5]], checked by hand against PIL's definitions.
  Tensor img = empty({2, 3, 1}, DType::UInt8);
  for (int i = 0; i < 6; ++i) img.data<uint8_t>()[i] = static_cast<uint8_t>(i);
  const std::vector<std::vector<uint8_t>> want = {
      {0, 1, 2, 3, 4, 5}, {2, 1, 0, 5, 4, 3}, {5, 4, 3, 2, 1, 0}, {3, 4, 5, 0, 1, 2},
      {0, 3, 1, 4, 2, 5},  // TRANSPOSE
      {3, 0, 4, 1, 5, 2},  // ROTATE_270 (clockwise 90)
      {5, 2, 4, 1, 3, 0},  // TRANSVERSE
      {2, 5, 1, 4, 0, 3}};  // ROTATE_90 (counter-clockwise)
  for (int o = 1; o <= 8; ++o) {
    const Tensor t = io::apply_exif_orientation(img, o);
    EXPECT_EQ(t.shape(), o >= 5 ? (Shape{3, 2, 1}) : (Shape{2, 3, 1})) << o;
    EXPECT_EQ(t.to_vector<uint8_t>(), want[o - 1]) << o;
  }
  expect_error([&] { io::apply_exif_orientation(img, 0); }, {"orientation must be 1..8", "0"});
  expect_error([&] { io::apply_exif_orientation(zeros({2, 2, 3}), 2); }, {"uint8"});
}

TEST(Image, PngWriteRoundTrip) {
  TempDir dir;
  int k = 0;
  for (const Shape& s : {Shape{7, 5, 1}, Shape{13, 17, 3}, Shape{1, 1, 4}, Shape{9, 31, 2}, Shape{6, 11}}) {
    Tensor img = random_image(s, 100 + k);
    const std::string p = dir / std::string("w").append(std::to_string(k++)).append(".png");
    io::write_png(p, img);
    Tensor back = io::read_image(p, io::ImageMode::Native);
    EXPECT_EQ(max_diff(back, s.size() == 2 ? img.unsqueeze(2) : img), 0.0) << shape_str(s);
  }
  // non-contiguous views are written as the pixels they show
  Tensor big = random_image({20, 30, 3}, 7);
  Tensor view = big.slice(0, 1, 20, 2).slice(1, 3, 30, 3);
  io::write_png(dir / "v.png", view);
  EXPECT_EQ(max_diff(io::read_image(dir / "v.png"), view.contiguous()), 0.0);
  auto bytes = io::encode_png(view);
  EXPECT_EQ(bytes, io::read_file_bytes(dir / "v.png"));
  EXPECT_EQ(dir.count(), static_cast<size_t>(k + 1));  // no temporaries
  // errors, and no file left behind
  expect_error([&] { io::write_png(dir / "f.png", zeros({4, 4, 3})); }, {"write_png", "uint8", "float32", "f.png"});
  expect_error([&] { io::write_png(dir / "c.png", zeros({4, 4, 5}, DType::UInt8)); }, {"write_png", "(H, W, C)"});
  expect_error([&] { io::write_png(dir / "e.png", zeros({0, 4, 3}, DType::UInt8)); }, {"write_png", "empty"});
  EXPECT_EQ(dir.count(), static_cast<size_t>(k + 1));
}

TEST(Image, BadFiles) {
  TempDir dir;
  const auto png = io::read_file_bytes(kData + "img_land_120x160.png");
  const auto jpg = io::read_file_bytes(kData + "img_land_120x160.jpg");
  auto check = [&](const std::vector<uint8_t>& b, const std::vector<std::string>& needles) {
    const std::string p = dir / "bad.img";
    put_file(p, b);
    auto n = needles;
    n.push_back(p);
    expect_error([&] { io::read_image(p); }, n);
    n.back() = "mem.png";
    expect_error([&] { io::decode_image(b.data(), b.size(), "mem.png"); }, n);
  };
  // truncated PNG and JPEG at several points
  check(std::vector<uint8_t>(png.begin(), png.begin() + 4), {"not a readable PNG or JPEG"});
  for (size_t n : {size_t(20), size_t(40), png.size() / 2, png.size() - 13})
    check(std::vector<uint8_t>(png.begin(), png.begin() + n), {"corrupt or truncated PNG", "libpng", "the file ends"});
  for (size_t n : {size_t(3), size_t(100), jpg.size() / 3, jpg.size() - 2})  // the last without only its EOI
    check(std::vector<uint8_t>(jpg.begin(), jpg.begin() + n), {"corrupt or truncated JPEG", "libjpeg"});
  check(std::vector<uint8_t>(jpg.begin(), jpg.begin() + jpg.size() / 3), {"truncated JPEG (the data ends"});
  check({}, {"empty file"});
  check(std::vector<uint8_t>(64, 'x'), {"not a readable PNG or JPEG"});
  check(io::read_file_bytes(kData + "npy_f4_3x5.npy"), {"not a readable PNG or JPEG"});
  // a PNG header claiming 100000 x 100000 (with a valid CRC) is refused before decoding
  auto huge = png;
  auto be32 = [&](size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) huge[at + i] = static_cast<uint8_t>(v >> (24 - 8 * i));
  };
  be32(16, 100000);
  be32(20, 100000);
  be32(29, io::crc32(huge.data() + 12, 17));
  check(huge, {"100000x100000", "exceed the limit"});
  // the same for a JPEG: patch its SOF0 frame header to 60000 x 60000 (libjpeg's own limit is 65500)
  auto hj = jpg;
  size_t sof = 2;
  while (sof + 9 < hj.size() && !(hj[sof] == 0xff && hj[sof + 1] == 0xc0)) ++sof;
  ASSERT_LT(sof + 9, hj.size());
  hj[sof + 5] = hj[sof + 7] = 0xEA;
  hj[sof + 6] = hj[sof + 8] = 0x60;
  check(hj, {"60000x60000", "exceed the limit"});
  // stb_image's crash reproducers (fuzz_image found them: a heap read after free from a Huffman
  // table no DHT defined; the same with padding between segments). libjpeg-turbo reads their pixels
  // (it supplies the standard tables) and then fails them on the bad markers that follow, as PIL
  // does ("broken data stream").
  check(io::read_file_bytes(kData + "jpeg_bad_undefined_huffman.jpg"),
        {"corrupt or truncated JPEG", "Bogus Huffman table definition"});
  check(io::read_file_bytes(kData + "jpeg_bad_padded_segments.jpg"),
        {"corrupt or truncated JPEG", "more than one scan"});
  auto sel = jpg;  // the valid JPEG with its first scan's first component pointed at DC table 2
  size_t sos = 2;
  while (sos + 6 < sel.size() && !(sel[sos] == 0xff && sel[sos + 1] == 0xda)) ++sos;
  ASSERT_LT(sos + 6, sel.size());
  sel[sos + 6] = static_cast<uint8_t>((2 << 4) | (sel[sos + 6] & 15));
  check(sel, {"corrupt or truncated JPEG", "Huffman table 0x02 was not defined"});
  // a 700-byte PNG whose chunk claims ~2 GB (stb_image allocated it): libpng reads image data in
  // small pieces, and fails this file on its content
  check(io::read_file_bytes(kData + "png_bad_huge_chunk.png"), {"corrupt or truncated PNG", "libpng"});
  // a caller's smaller limit
  expect_error([&] { io::decode_image(png.data(), png.size(), "small.png", io::ImageMode::RGB, 1000); },
               {"small.png", "160x120", "exceed the limit of 1000 pixels"});
  expect_error([&] { io::read_image(dir / "missing.png"); }, {"missing.png", "cannot open"});
}

// cortex features' path (data::load_images, the backbone's preprocessing at --image-size 224 with
// the crop, tap_activations) on a folder of JPEGs equals torchvision's on PIL's decode: Resize(256)
// bilinear, CenterCrop(224), ToTensor, Normalize, then the first conv of the small seeded AlexNet
// of tests/data/models, computed with torch (make_io_fixtures.py). stb_image's JPEG decoding
// missed this by 5e-3 relative.
TEST(Image, FeaturesOfJpegFolderMatchTorchvision) {
  auto fx = cortex::testing::load_fixture("alexnet");
  const data::Dataset d = data::load_images(kData + "features_jpeg");
  ASSERT_EQ(d.size(), 2);
  const encoding::Preprocessing prep = encoding::preprocessing_for(fx.model.get(), 224, true);
  const auto acts = encoding::tap_activations(
      *fx.model, d.size(),
      [&](int64_t b, int64_t e) {
        std::vector<int64_t> rows;
        for (int64_t i = b; i < e; ++i) rows.push_back(i);
        return encoding::prepare_rows(d, rows, prep);
      },
      {"features.0"}, 2, Device::cpu());
  const Tensor got = acts.at("features.0"), want = fixture("features_jpeg_alexnet_features0.npy");
  ASSERT_EQ(got.shape(), want.shape());
  EXPECT_EQ(want.shape(), (Shape{2, 8, 55, 55}));
  const auto vg = got.contiguous().to_vector<double>(), vw = want.to_vector<double>();
  double worst = 0, scale = 0;
  for (size_t i = 0; i < vg.size(); ++i) {
    worst = std::max(worst, std::abs(vg[i] - vw[i]));
    scale = std::max(scale, std::abs(vw[i]));
  }
  std::printf("features.0 on JPEGs vs torchvision: max |diff| %.3g, relative to max |ref| %.3g\n", worst, worst / scale);
  EXPECT_LE(worst, 1e-5 * scale);
}

// A dataset of image files applies EXIF orientation only when asked (cortex features --exif-transpose).
TEST(Image, DatasetExifTranspose) {
  TempDir dir;
  fs::copy_file(kData + "decode/jpeg_exif_6.jpg", dir / "a.jpg");
  data::Dataset d = data::load_images(dir.path().string());
  auto ref = io::read_npz(kData + "decode/jpeg_exif_6.npz");
  EXPECT_EQ(d.image(0).to_vector<uint8_t>(), ref.at("rgb").to_vector<uint8_t>());
  EXPECT_EQ(d.image(0).shape(), (Shape{37, 53, 3}));
  d.exif_transpose = true;
  EXPECT_EQ(d.image(0).shape(), (Shape{53, 37, 3}));
  EXPECT_EQ(d.image(0).to_vector<uint8_t>(), ref.at("exif_rgb").to_vector<uint8_t>());
}

// ---------------------------------------------------------------- torchvision preprocessing

TEST(Preprocess, ResizeMatchesPilExactly) {
  double worst = 0;
  struct Case {
    const char* img;
    std::vector<int> sizes;
  };
  for (const Case& c : {Case{"land", {33, 47, 131}}, Case{"port", {33, 64, 90}}}) {
    const std::string name = c.img;
    Tensor img = fixture(std::string("img_") + (name == "land" ? "land_120x160" : "port_75x50") + ".npy");
    for (int size : c.sizes) {
      for (auto [tag, interp] : {std::pair{"bilinear", io::Interp::Bilinear}, std::pair{"bicubic", io::Interp::Bicubic}}) {
        Tensor want = fixture("ref_" + name + "_resize" + std::to_string(size) + "_" + tag + ".npy");
        Tensor got = io::resize_shorter(img, size, interp);
        const double d = max_diff(got, want);
        worst = std::max(worst, d);
        EXPECT_EQ(d, 0.0) << name << " " << size << " " << tag;
        // a non-contiguous input gives the same pixels
        EXPECT_EQ(max_diff(io::resize_shorter(cortex::testing::noncontig(img), size, interp), want), 0.0);
      }
    }
  }
  std::printf("resize vs PIL: max |diff| %.0f grey levels\n", worst);
  // same size: an identical copy
  Tensor img = random_image({9, 12, 3}, 4);
  Tensor same = io::resize(img, 9, 12);
  EXPECT_EQ(max_diff(same, img), 0.0);
  EXPECT_NE(same.raw_data(), img.raw_data());
  // one axis only, and 1-channel images
  Tensor g = random_image({10, 14, 1}, 5);
  EXPECT_EQ(io::resize(g, 10, 5).shape(), (Shape{10, 5, 1}));
  EXPECT_EQ(io::resize(g, 3, 14, io::Interp::Bicubic).shape(), (Shape{3, 14, 1}));
  // a constant image stays constant through both passes (weights sum to one in fixed point)
  Tensor flat = full({11, 13, 3}, 77, DType::UInt8);
  EXPECT_EQ(max_diff(io::resize(flat, 4, 29), full({4, 29, 3}, 77, DType::UInt8)), 0.0);
  expect_error([&] { io::resize(zeros({4, 4, 3}), 2, 2); }, {"resize", "uint8"});
  expect_error([&] { io::resize(img, 0, 2); }, {"resize", "positive"});
  expect_error([&] { io::resize_shorter(zeros({4, 4}, DType::UInt8), 2); }, {"resize_shorter", "(H, W, C)"});
  expect_error([&] { io::resize_shorter(zeros({0, 4, 3}, DType::UInt8), 2); }, {"resize_shorter", "empty"});
}

TEST(Preprocess, CenterCropMatchesTorchvision) {
  Tensor land = fixture("img_land_120x160.npy");
  for (auto [h, w] : {std::pair{100, 101}, std::pair{99, 150}, std::pair{130, 170}, std::pair{121, 50}}) {
    Tensor want = fixture("ref_land_crop" + std::to_string(h) + "x" + std::to_string(w) + ".npy");
    EXPECT_EQ(max_diff(io::center_crop(land, h, w), want), 0.0) << h << "x" << w;
  }
  // half-way margins round to even like Python's round(): (120 - 99) / 2 = 10.5 -> 10; (160 - 151) / 2 = 4.5 -> 4
  Tensor idx = from_vector(std::vector<double>(120 * 160), {120, 160, 1}, DType::Float64);
  {
    std::vector<double> v(120 * 160);
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(i);
    idx = from_vector(v, {120, 160, 1}, DType::Float64);
  }
  Tensor c = io::center_crop(idx, 99, 151);
  EXPECT_EQ(c.at({0, 0, 0}), 10 * 160 + 4);
  Tensor c2 = io::center_crop(idx, 97, 153);  // 11.5 -> 12, 3.5 -> 4
  EXPECT_EQ(c2.at({0, 0, 0}), 12 * 160 + 4);
  EXPECT_EQ(c.storage(), idx.storage());  // a view when no padding is needed
  // batched (N, H, W, C)
  Tensor batch = random_image({2, 9, 8, 3}, 9);
  Tensor cb = io::center_crop(batch, 4, 5);
  EXPECT_EQ(cb.shape(), (Shape{2, 4, 5, 3}));
  for (int64_t n = 0; n < 2; ++n) EXPECT_EQ(max_diff(cb.select(0, n), io::center_crop(batch.select(0, n), 4, 5)), 0.0);
  expect_error([&] { io::center_crop(land, 0, 5); }, {"center_crop", "positive"});
  expect_error([&] { io::center_crop(zeros({3, 3}), 1, 1); }, {"center_crop", "(H, W, C)"});
}

TEST(Preprocess, ToFloatAndNormalizeAgainstNaiveLoops) {
  for (const Shape& s : {Shape{5, 7, 3}, Shape{2, 3, 4, 1}, Shape{1, 1, 3}, Shape{0, 4, 3}}) {
    SCOPED_TRACE(shape_str(s));
    Tensor img = random_image(s, 17);
    Tensor x = io::to_float_chw(cortex::testing::noncontig(img));
    const bool b = s.size() == 4;
    const int64_t N = b ? s[0] : 1, H = s[s.size() - 3], W = s[s.size() - 2], C = s.back();
    EXPECT_EQ(x.shape(), b ? (Shape{N, C, H, W}) : (Shape{C, H, W}));
    EXPECT_EQ(x.dtype(), DType::Float32);
    auto pv = img.to_vector<double>();
    auto xv = x.to_vector<float>();
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = 0; c < C; ++c)
        for (int64_t y = 0; y < H; ++y)
          for (int64_t xx = 0; xx < W; ++xx)
            ASSERT_EQ(xv[((n * C + c) * H + y) * W + xx],
                      static_cast<float>(pv[((n * H + y) * W + xx) * C + c]) / 255.0f);
  }
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (const Shape& s : {Shape{3, 5, 4}, Shape{2, 3, 1, 7}}) {
      Tensor x = cortex::testing::randn(s, 23, dt);
      const std::vector<double> mean = {0.1, -0.2, 0.3}, std = {0.5, 2.0, 0.25};
      Tensor y = io::normalize(cortex::testing::noncontig(x), mean, std);
      EXPECT_EQ(y.dtype(), dt);
      auto xv = x.to_vector<double>(), yv = y.to_vector<double>();
      const int64_t inner = s[s.size() - 1] * s[s.size() - 2];
      for (size_t i = 0; i < xv.size(); ++i) {
        const size_t c = (i / inner) % 3;
        EXPECT_NEAR(yv[i], (xv[i] - mean[c]) / std[c], dt == DType::Float32 ? 1e-5 : 1e-14);
      }
    }
  }
  expect_error([] { io::to_float_chw(zeros({2, 2, 3})); }, {"to_float_chw", "uint8"});
  expect_error([] { io::normalize(zeros({3, 2, 2}), {0, 0}, {1, 1}); }, {"normalize", "3 channels", "2 means"});
  expect_error([] { io::normalize(zeros({3, 2, 2}), {0, 0, 0}, {1, 0, 1}); }, {"normalize", "zero"});
  expect_error([] { io::normalize(zeros({3, 2, 2}, DType::Int32), {0, 0, 0}, {1, 1, 1}); }, {"normalize", "float32"});
  expect_error([] { io::normalize(zeros({3, 2}), {0, 0, 0}, {1, 1, 1}); }, {"normalize", "(C, H, W)"});
}

TEST(Preprocess, ImageNetAndClipPipelinesMatchTorchvision) {
  double worst = 0;
  for (const char* f : {"land_120x160", "port_75x50"}) {
    Tensor img = io::read_image(kData + "img_" + f + ".png");
    Tensor got = io::preprocess_imagenet(img, 64, 56);
    Tensor want = fixture(std::string("ref_") + (std::string(f) == "land_120x160" ? "land" : "port") + "_imagenet_r64_c56.npy");
    EXPECT_EQ(got.shape(), (Shape{3, 56, 56}));
    EXPECT_EQ(got.dtype(), DType::Float32);
    worst = std::max(worst, max_diff(got, want));
  }
  Tensor clip = io::preprocess_clip(io::read_image(kData + "img_land_120x160.png"), 48);
  worst = std::max(worst, max_diff(clip, fixture("ref_land_clip_48.npy")));
  std::printf("preprocess vs torchvision-on-PIL: max |diff| %g\n", worst);
  EXPECT_EQ(worst, 0.0);
  // defaults: 256 / 224
  EXPECT_EQ(io::preprocess_imagenet(random_image({300, 260, 3}, 1)).shape(), (Shape{3, 224, 224}));
  EXPECT_EQ(io::preprocess_clip(random_image({100, 90, 3}, 2)).shape(), (Shape{3, 224, 224}));
  expect_error([] { io::preprocess_imagenet(zeros({8, 8, 1}, DType::UInt8)); }, {"preprocess_imagenet", "RGB"});
}
