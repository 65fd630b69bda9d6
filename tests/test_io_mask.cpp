// Mask PNGs (tensor/io/mask.h): palette indices read as indices (PIL-made fixtures whose palettes
// are not VOC's, tests/data/io/make_mask_fixtures.py), round trips through the writer, binary
// masks, and one-line errors on bad files and bad tensors.
#include <gtest/gtest.h>

#include <cstring>

#include "tensor/io/image.h"
#include "tensor/io/mask.h"
#include "tensor/io/npy.h"
#include "tensor/random.h"
#include "tensor/tensor.h"
#include "tests/test_util.h"

using namespace cortex;
using cortex::testing::expect_error;
using cortex::testing::put_file;
using cortex::testing::TempDir;

namespace {

const std::string kData = std::string(CORTEX_TEST_DATA) + "/io/";

std::vector<uint8_t> bytes_of(const Tensor& t) { return t.contiguous().to_vector<uint8_t>(); }

Tensor random_mask(int64_t h, int64_t w, int high, uint64_t seed) {
  Generator g(seed);
  return randint(0, high, {h, w}, g, DType::Int64).to(DType::UInt8);
}

}  // namespace

TEST(Mask, PaletteFixtureReadsIndicesNotColours) {
  for (const char* f : {"mask_palette_7x5", "mask_palette4_9x3"}) {
    const Tensor m = io::read_index_mask(kData + f + ".png");
    const Tensor ref = io::read_npy(kData + f + ".npy");
    ASSERT_EQ(m.dtype(), DType::UInt8);
    ASSERT_EQ(m.shape(), ref.shape()) << f;
    EXPECT_EQ(bytes_of(m), bytes_of(ref)) << f;
  }
  // The 7x5 fixture holds 255 at (0, 0) and 0 at (4, 6) by construction.
  const Tensor m = io::read_index_mask(kData + "mask_palette_7x5.png");
  EXPECT_EQ(m.to_vector<uint8_t>()[0], 255);
  EXPECT_EQ(m.to_vector<uint8_t>()[4 * 7 + 6], 0);
}

TEST(Mask, GreyPngReadsValuesAndBinaryNonzero) {
  const Tensor ref = io::read_npy(kData + "mask_grey_6x4.npy");
  EXPECT_EQ(bytes_of(io::read_index_mask(kData + "mask_grey_6x4.png")), bytes_of(ref));
  const std::vector<uint8_t> b = bytes_of(io::read_binary_mask(kData + "mask_grey_6x4.png"));
  const std::vector<uint8_t> r = bytes_of(ref);
  for (size_t i = 0; i < r.size(); ++i) EXPECT_EQ(b[i], r[i] == 255 ? 1 : 0) << i;
}

TEST(Mask, BinaryFromPaletteKeepsIgnore) {
  const Tensor ref = io::read_npy(kData + "mask_palette_7x5.npy");
  const std::vector<uint8_t> b = bytes_of(io::read_binary_mask(kData + "mask_palette_7x5.png"));
  const std::vector<uint8_t> r = bytes_of(ref);
  for (size_t i = 0; i < r.size(); ++i) EXPECT_EQ(b[i], r[i] == 0 ? 0 : r[i] == 255 ? 255 : 1) << i;
}

TEST(Mask, RoundTripOddSizesAndPalettes) {
  TempDir dir;
  int seed = 1;
  for (auto [h, w] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {1, 17}, {13, 1}, {31, 47}, {64, 3}}) {
    const Tensor m = random_mask(h, w, 256, seed++);
    io::write_index_mask(dir / "m.png", m);
    EXPECT_EQ(bytes_of(io::read_index_mask(dir / "m.png")), bytes_of(m)) << h << "x" << w;
    // A 3-colour palette: indices 0..2 only.
    const Tensor s = random_mask(h, w, 3, seed++);
    io::write_index_mask(dir / "s.png", s, {0, 0, 0, 10, 20, 30, 40, 50, 60});
    EXPECT_EQ(bytes_of(io::read_index_mask(dir / "s.png")), bytes_of(s));
    // The colours are the palette's: decoding as RGB gives palette[index].
    const std::vector<uint8_t> rgb = io::read_image(dir / "s.png").to_vector<uint8_t>();
    const std::vector<uint8_t> si = bytes_of(s);
    const int red[3] = {0, 10, 40};
    for (size_t i = 0; i < si.size(); ++i) EXPECT_EQ(rgb[3 * i], red[si[i]]) << i;
  }
  // A non-contiguous view writes what it shows.
  const Tensor big = random_mask(8, 10, 256, 99);
  const Tensor t = big.transpose(0, 1);
  io::write_index_mask(dir / "t.png", t);
  EXPECT_EQ(bytes_of(io::read_index_mask(dir / "t.png")), bytes_of(t));
  EXPECT_EQ(dir.list(), (std::vector<std::string>{"m.png", "s.png", "t.png"}));
}

TEST(Mask, BinaryRoundTrip) {
  TempDir dir;
  Tensor m = random_mask(9, 11, 3, 5);
  uint8_t* p = m.data<uint8_t>();
  for (int64_t i = 0; i < m.numel(); ++i) p[i] = p[i] == 2 ? 255 : p[i];
  io::write_binary_mask(dir / "b.png", m);
  EXPECT_EQ(bytes_of(io::read_binary_mask(dir / "b.png")), bytes_of(m));
  // Figure is white, background black, when viewed as an image.
  const std::vector<uint8_t> g = io::read_image(dir / "b.png", io::ImageMode::Gray).to_vector<uint8_t>();
  for (int64_t i = 0; i < m.numel(); ++i)
    if (p[i] != 255) EXPECT_EQ(g[i], p[i] ? 255 : 0);
}

TEST(Mask, VocPaletteKnownEntries) {
  const std::vector<uint8_t> p = io::voc_palette();
  ASSERT_EQ(p.size(), 768u);
  auto at = [&](int i) { return std::vector<int>{p[3 * i], p[3 * i + 1], p[3 * i + 2]}; };
  EXPECT_EQ(at(0), (std::vector<int>{0, 0, 0}));
  EXPECT_EQ(at(1), (std::vector<int>{128, 0, 0}));
  EXPECT_EQ(at(15), (std::vector<int>{192, 128, 128}));  // VOC "person"
  EXPECT_EQ(at(255), (std::vector<int>{224, 224, 192}));
}

TEST(Mask, BadFilesGiveOneLineErrors) {
  TempDir dir;
  // Colour PNG: refused as an index mask (colours are not indices), read as a binary one.
  Generator g(3);
  io::write_png(dir / "rgb.png", randint(0, 256, {4, 5, 3}, g, DType::Int64).to(DType::UInt8));
  expect_error([&] { io::read_index_mask(dir / "rgb.png"); }, {"rgb.png", "palette or 8-bit grey", "found a RGB"});
  EXPECT_EQ(io::read_binary_mask(dir / "rgb.png").shape(), (Shape{4, 5}));
  put_file(dir / "empty.png", {});
  expect_error([&] { io::read_index_mask(dir / "empty.png"); }, {"empty.png", "empty file"});
  expect_error([&] { io::read_binary_mask(dir / "empty.png"); }, {"empty.png", "empty file"});
  put_file(dir / "text.png", {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd'});
  expect_error([&] { io::read_index_mask(dir / "text.png"); }, {"text.png", "not a PNG"});
  expect_error([&] { io::read_binary_mask(dir / "text.png"); }, {"text.png", "not a readable PNG or JPEG"});
  // Truncated: every prefix of a real mask file fails cleanly.
  const std::vector<uint8_t> full = io::encode_index_mask(random_mask(6, 7, 4, 2));
  for (size_t n : {size_t(8), size_t(20), size_t(40), full.size() - 13}) {
    put_file(dir / "cut.png", std::vector<uint8_t>(full.begin(), full.begin() + static_cast<long>(n)));
    expect_error([&] { io::read_index_mask(dir / "cut.png"); }, {"cut.png"});
  }
  // A flipped byte in the image data fails the CRC (libpng's message is passed on).
  std::vector<uint8_t> bad = full;
  bad[bad.size() - 20] ^= 0x5a;
  put_file(dir / "crc.png", bad);
  expect_error([&] { io::read_index_mask(dir / "crc.png"); }, {"crc.png", "corrupt"});
  expect_error([&] { io::read_index_mask(dir / "missing.png"); }, {"missing.png"});
}

TEST(Mask, BadTensorsRefusedAndNothingWritten) {
  TempDir dir;
  expect_error([&] { io::write_index_mask(dir / "a.png", zeros({3, 4}, DType::Float32)); }, {"uint8", "float32", "a.png"});
  expect_error([&] { io::write_index_mask(dir / "a.png", zeros({3, 4, 1}, DType::UInt8)); }, {"(H, W)", "[3, 4, 1]"});
  expect_error([&] { io::write_index_mask(dir / "a.png", zeros({0, 4}, DType::UInt8)); }, {"empty"});
  Tensor m = zeros({2, 3}, DType::UInt8);
  m.data<uint8_t>()[5] = 3;
  expect_error([&] { io::write_index_mask(dir / "a.png", m, {0, 0, 0, 1, 1, 1, 2, 2, 2}); },
               {"index 3", "(1, 2)", "3 colours"});
  expect_error([&] { io::write_index_mask(dir / "a.png", m, {0, 0, 0, 1}); }, {"3 * P bytes"});
  expect_error([&] { io::write_binary_mask(dir / "a.png", m); }, {"0, 1 or 255", "found 3"});
  EXPECT_EQ(dir.count(), 0u);
}
