// .npy / .npz reading and writing, CRC-32, atomic writes. Fixtures in tests/data/io/ were made by
// NumPy (tests/data/io/make_io_fixtures.py); values follow formulas recomputed here.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include "tensor/io/atomic_file.h"
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

// The fixture formulas (flat C-order index i), see make_io_fixtures.py.
double formula(int64_t i, const std::string& kind) {
  if (kind == "int") return static_cast<double>((i * 37) % 101 - 50);
  if (kind == "float") return static_cast<double>((i * 37) % 101 - 50) / 8.0;
  if (kind == "u1") return static_cast<double>((i * 37) % 256);
  return i % 3 == 0 ? 1.0 : 0.0;  // bool
}
std::vector<double> formula_values(int64_t n, const std::string& kind) {
  std::vector<double> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = formula(i, kind);
  return v;
}

// Exact equality of shape, dtype and values.
::testing::AssertionResult same(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype())
    return ::testing::AssertionFailure() << "dtypes differ: " << dtype_name(a.dtype()) << " vs " << dtype_name(b.dtype());
  if (a.shape() != b.shape())
    return ::testing::AssertionFailure() << "shapes differ: " << shape_str(a.shape()) << " vs " << shape_str(b.shape());
  auto va = a.to_vector<double>(), vb = b.to_vector<double>();
  for (size_t i = 0; i < va.size(); ++i)
    if (!(va[i] == vb[i] || (std::isnan(va[i]) && std::isnan(vb[i]))))
      return ::testing::AssertionFailure() << "value " << i << ": " << va[i] << " vs " << vb[i];
  return ::testing::AssertionSuccess();
}

std::vector<uint8_t> file_bytes(const std::string& p) { return io::read_file_bytes(p); }
// A hand-made .npy: preamble, the given header text (plus '\n'), then data.
std::vector<uint8_t> make_npy(const std::string& header, const std::vector<uint8_t>& data, int major = 1) {
  std::vector<uint8_t> b = {0x93, 'N', 'U', 'M', 'P', 'Y', static_cast<uint8_t>(major), 0};
  const uint32_t len = static_cast<uint32_t>(header.size() + 1);
  b.push_back(len & 0xff);
  b.push_back((len >> 8) & 0xff);
  if (major >= 2) {
    b.push_back((len >> 16) & 0xff);
    b.push_back(len >> 24);
  }
  b.insert(b.end(), header.begin(), header.end());
  b.push_back('\n');
  b.insert(b.end(), data.begin(), data.end());
  return b;
}
std::vector<uint8_t> int32_bytes(int n) {
  std::vector<uint8_t> d(n * 4);
  for (int i = 0; i < n; ++i) {
    const int32_t v = static_cast<int32_t>(formula(i, "int"));
    std::memcpy(d.data() + 4 * i, &v, 4);
  }
  return d;
}

// Random tensors of every dtype NumPy shares with us, with random shapes (size 0 and 1 included).
std::vector<Tensor> random_tensors(uint64_t seed) {
  Generator g(seed);
  std::vector<Tensor> out;
  const DType dts[] = {DType::Float32, DType::Float64, DType::Float16, DType::Int32,
                       DType::Int64,   DType::UInt8,   DType::Bool};
  int k = 0;
  for (DType dt : dts) {
    for (int rep = 0; rep < 3; ++rep, ++k) {
      const int64_t nd = randint(0, 5, {1}, g).item<int64_t>();
      Shape s = randint(1, 7, {nd}, g).to_vector<int64_t>();
      if (k % 7 == 3 && nd > 0) s[0] = 0;
      // randn * 50 with a host loop (the tensor layer has no arithmetic), then converted.
      std::vector<double> v = cortex::testing::randn(s, seed + k, DType::Float64).to_vector<double>();
      for (double& x : v) x = std::round(x * 50.0 * 8.0) / 8.0;
      if (dt == DType::UInt8)
        for (double& x : v) x = std::fmod(std::abs(std::round(x)), 256.0);
      out.push_back(from_vector(v, s, DType::Float64).to(dt));
    }
  }
  return out;
}

}  // namespace


// ---------------------------------------------------------------- .npy reading

TEST(Npy, ReadsEveryDtypeFromNumPy) {
  struct Case {
    const char* code;
    DType dt;
    const char* kind;
  };
  const Case cases[] = {{"f4", DType::Float32, "float"}, {"f8", DType::Float64, "float"},
                        {"f2", DType::Float16, "float"}, {"i4", DType::Int32, "int"},
                        {"i8", DType::Int64, "int"},     {"u1", DType::UInt8, "u1"},
                        {"b1", DType::Bool, "bool"},     {"i2", DType::Int32, "int"},
                        {"i1", DType::Int32, "int"},     {"u2", DType::Int32, "u1"}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.code);
    const std::string p = kData + "npy_" + c.code + "_3x5.npy";
    Tensor t = io::read_npy(p);
    EXPECT_TRUE(same(t, from_vector(formula_values(15, c.kind), {3, 5}, DType::Float64).to(c.dt)));
    EXPECT_TRUE(t.is_contiguous());
    // the in-memory parser gives the same tensor
    auto b = file_bytes(p);
    EXPECT_TRUE(same(io::read_npy_bytes(b.data(), b.size(), p), t));
    const io::NpyInfo info = io::npy_info(p);
    EXPECT_EQ(info.shape, (Shape{3, 5}));
    EXPECT_EQ(info.dtype, c.dt);
    EXPECT_FALSE(info.fortran_order);
    EXPECT_EQ(info.data_offset % 64, 0u);
  }
}

TEST(Npy, FortranOrderGivesCOrderTensor) {
  Tensor f = io::read_npy(kData + "npy_fortran_f4_3x4x5.npy");
  EXPECT_TRUE(io::npy_info(kData + "npy_fortran_f4_3x4x5.npy").fortran_order);
  EXPECT_TRUE(f.is_contiguous());
  EXPECT_EQ(f.strides(), (Shape{20, 5, 1}));
  EXPECT_TRUE(same(f, from_vector(formula_values(60, "float"), {3, 4, 5}, DType::Float32)));
  // int16 widened and transposed at once
  Tensor i = io::read_npy(kData + "npy_fortran_i2_4x6.npy");
  EXPECT_TRUE(same(i, from_vector(formula_values(24, "int"), {4, 6}, DType::Int32)));
}

TEST(Npy, ScalarEmptyAndFormatVersions) {
  Tensor s = io::read_npy(kData + "npy_scalar_f8.npy");
  EXPECT_EQ(s.dim(), 0);
  EXPECT_EQ(s.item(), 3.5);
  Tensor e = io::read_npy(kData + "npy_empty_f4_0x3.npy");
  EXPECT_EQ(e.shape(), (Shape{0, 3}));
  EXPECT_EQ(e.dtype(), DType::Float32);
  for (int v : {2, 3}) {
    const std::string p = kData + "npy_v" + std::to_string(v) + "_f4_2x3.npy";
    EXPECT_EQ(io::npy_info(p).version_major, v);
    EXPECT_TRUE(same(io::read_npy(p), from_vector(formula_values(6, "float"), {2, 3}, DType::Float32)));
  }
}

TEST(Npy, HeaderLiteralVariants) {
  const Tensor want = from_vector(formula_values(6, "int"), {2, 3}, DType::Int32);
  const std::vector<std::string> headers = {
      "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }",
      "{'descr': '<i4', 'fortran_order': False, 'shape': (2L, 3L), }",  // Python 2
      "{\"descr\":\"<i4\",\"fortran_order\":False,\"shape\":(2,3)}",
      "{ 'shape' : ( 2 , 3 , ) ,\t'fortran_order' : False , 'descr' : '<i4' }",
      "{'descr': '<i4', 'fortran_order': False, 'shape': [2, 3], 'extra': None}",
      "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }" + std::string(40, ' '),
  };
  for (const auto& h : headers) {
    SCOPED_TRACE(h);
    auto b = make_npy(h, int32_bytes(6));
    EXPECT_TRUE(same(io::read_npy_bytes(b.data(), b.size(), "mem.npy"), want));
  }
  for (int major : {2, 3}) {
    auto b = make_npy(headers[0], int32_bytes(6), major);
    EXPECT_TRUE(same(io::read_npy_bytes(b.data(), b.size(), "mem.npy"), want));
  }
  // () is a 0-d array, (6,) a vector; Fortran order of a vector is the same as C order
  auto b0 = make_npy("{'descr': '<i4', 'fortran_order': False, 'shape': ()}", int32_bytes(1));
  EXPECT_EQ(io::read_npy_bytes(b0.data(), b0.size(), "m").dim(), 0);
  auto b1 = make_npy("{'descr': '<i4', 'fortran_order': True, 'shape': (6,)}", int32_bytes(6));
  EXPECT_TRUE(same(io::read_npy_bytes(b1.data(), b1.size(), "m"), want.reshape({6})));
  // a bool file holding bytes other than 0/1 reads as True, as NumPy does
  auto bb = make_npy("{'descr': '|b1', 'fortran_order': False, 'shape': (3,)}", {0, 2, 255});
  EXPECT_EQ(io::read_npy_bytes(bb.data(), bb.size(), "m").to_vector<int>(), (std::vector<int>{0, 1, 1}));
}

TEST(Npy, UnsupportedDtypesNameFileAndField) {
  expect_error([] { io::read_npy(kData + "npy_bad_bigendian.npy"); },
               {"npy_bad_bigendian.npy", "big-endian", "'>f4'", "'descr'"});
  expect_error([] { io::read_npy(kData + "npy_bad_object.npy"); }, {"npy_bad_object.npy", "'|O'", "object", "'descr'"});
  expect_error([] { io::read_npy(kData + "npy_bad_complex.npy"); }, {"npy_bad_complex.npy", "'<c8'", "unsupported"});
  expect_error([] { io::read_npy(kData + "npy_bad_u8.npy"); }, {"npy_bad_u8.npy", "'<u8'", "unsupported"});
  expect_error([] { io::read_npy(kData + "npy_bad_structured.npy"); }, {"npy_bad_structured.npy", "structured"});
  auto b = make_npy("{'descr': '|f4', 'fortran_order': False, 'shape': (1,)}", {0, 0, 0, 0});
  expect_error([&] { io::read_npy_bytes(b.data(), b.size(), "pipe.npy"); }, {"pipe.npy", "'|f4'"});
}

TEST(Npy, MalformedHeaders) {
  struct Case {
    std::string header;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {"{'descr': '<i4', 'fortran_order': False}", "no 'shape' field"},
      {"{'shape': (6,), 'fortran_order': False}", "no 'descr' field"},
      {"{'descr': '<i4', 'shape': (6,)}", "no 'fortran_order' field"},
      {"{'descr': '<i4', 'fortran_order': False, 'shape': (-6,)}", "negative size"},
      {"{'descr': '<i4', 'fortran_order': False, 'shape': (2.5,)}", "malformed"},
      {"{'descr': '<i4', 'fortran_order': 1, 'shape': (6,)}", "'fortran_order' must be True or False"},
      {"{'descr': 4, 'fortran_order': False, 'shape': (6,)}", "'descr' must be a string"},
      {"{'descr': '<i4', 'fortran_order': False, 'shape': 6}", "'shape' must be a tuple"},
      {"{'descr': '<i4', 'fortran_order': False, 'shape': ('a',)}", "'shape' must be a tuple"},
      {"{'descr': '<i4, 'fortran_order': False, 'shape': (6,)}", "malformed"},
      {"{'descr': '<i4' 'fortran_order': False}", "malformed"},
      {"{'descr': '<i4', 'fortran_order': False, 'shape': (6,)} trailing", "after the dict"},
      {"[1, 2]", "not a dict"},
      {"", "malformed"},
      {"{'descr': '<i4', 'fortran_order': Fals, 'shape': (6,)}", "unknown word"},
      {"{'descr': '<i4', 'fortran_order': False, 'shape': (99999999999999999999,)}", "larger than int64"},
      {"{'a': " + std::string(40, '(') + "1" + std::string(40, ')') + "}", "nesting too deep"},
      {"{'descr': '<i4', 'fortran_order': False, 'shape': (6,)\x01}", "\\x01"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.header);
    auto b = make_npy(c.header, int32_bytes(6));
    expect_error([&] { io::read_npy_bytes(b.data(), b.size(), "bad.npy"); }, {"bad.npy", c.needle});
  }
}

TEST(Npy, TruncatedWrongMagicAndLyingSizes) {
  TempDir dir;
  const std::string src = kData + "npy_f4_3x5.npy";
  const auto good = file_bytes(src);
  // Truncation anywhere: in the magic, the preamble, the header, the data.
  for (size_t n : {size_t(0), size_t(3), size_t(6), size_t(9), size_t(40), size_t(127), good.size() - 30,
                   good.size() - 1}) {
    SCOPED_TRACE(n);
    const std::string p = dir / ("trunc" + std::to_string(n) + ".npy");
    put_file(p, std::vector<uint8_t>(good.begin(), good.begin() + n));
    const std::string needle = n == 0 ? "not an .npy file" : "truncated";
    expect_error([&] { io::read_npy(p); }, {p, needle});
    expect_error([&] { io::read_npy_bytes(good.data(), n, "mem.npy"); }, {"mem.npy", needle});
  }
  // Wrong magic; a zip passed as .npy; an unknown version.
  std::vector<uint8_t> gif = {'G', 'I', 'F', '8', '9', 'a', 0, 0, 0, 0, 0, 0};
  expect_error([&] { io::read_npy_bytes(gif.data(), gif.size(), "x.npy"); }, {"x.npy", "wrong magic"});
  auto z = file_bytes(kData + "npz_stored.npz");
  expect_error([&] { io::read_npy_bytes(z.data(), z.size(), "z.npy"); }, {"z.npy", "zip archive"});
  auto v4 = good;
  v4[6] = 4;
  expect_error([&] { io::read_npy_bytes(v4.data(), v4.size(), "v4.npy"); }, {"v4.npy", "version 4.0"});
  // Header length that lies.
  auto hl = good;
  hl[8] = 0xff;
  hl[9] = 0xff;
  expect_error([&] { io::read_npy_bytes(hl.data(), hl.size(), "hl.npy"); }, {"hl.npy", "header claims 65535"});
  // Shape bigger than the data, and shapes whose products overflow.
  auto big = make_npy("{'descr': '<i4', 'fortran_order': False, 'shape': (1000,)}", int32_bytes(6));
  expect_error([&] { io::read_npy_bytes(big.data(), big.size(), "big.npy"); }, {"big.npy", "needs 4000 data bytes"});
  put_file(dir / "big.npy", big);
  expect_error([&] { io::read_npy(dir / "big.npy"); }, {"big.npy", "needs 4000 data bytes"});
  auto ov = make_npy("{'descr': '<i4', 'fortran_order': False, 'shape': (4611686018427387904, 4)}", int32_bytes(6));
  expect_error([&] { io::read_npy_bytes(ov.data(), ov.size(), "ov.npy"); }, {"ov.npy", "more elements than int64"});
  auto ob = make_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (4611686018427387904,)}", int32_bytes(6));
  expect_error([&] { io::read_npy_bytes(ob.data(), ob.size(), "ob.npy"); }, {"ob.npy", "overflows the byte count"});
  auto oz = make_npy("{'descr': '<i4', 'fortran_order': True, 'shape': (0, 4294967296, 4294967296)}", {});
  expect_error([&] { io::read_npy_bytes(oz.data(), oz.size(), "oz.npy"); }, {"oz.npy", "int64"});
  // Missing file, folder.
  expect_error([&] { io::read_npy(dir / "nope.npy"); }, {"nope.npy", "cannot open"});
  expect_error([&] { io::read_npy(kData); }, {"not a regular file"});
}

// ---------------------------------------------------------------- .npy writing

TEST(Npy, WriteRoundTripEveryDtypeAndLayout) {
  TempDir dir;
  int k = 0;
  for (const Tensor& t : random_tensors(11)) {
    SCOPED_TRACE(k);
    const std::string p = dir / std::string("t").append(std::to_string(k++)).append(".npy");
    io::write_npy(p, t);
    EXPECT_TRUE(same(io::read_npy(p), t));
    EXPECT_EQ(io::npy_info(p).data_offset % 64, 0u);
    EXPECT_EQ(file_bytes(p), io::npy_bytes(t));
    if (t.dim() >= 2 && t.numel() > 1) {
      // non-contiguous views are written as the values they show
      Tensor v = t.transpose(0, t.dim() - 1);
      io::write_npy(p, v);
      EXPECT_TRUE(same(io::read_npy(p), v.contiguous()));
      Tensor nc = cortex::testing::noncontig(t);
      io::write_npy(p, nc);
      EXPECT_TRUE(same(io::read_npy(p), t));
    }
  }
  // The header is exactly what NumPy expects.
  auto b = io::npy_bytes(zeros({2, 3}));
  const std::string head(b.begin() + 10, b.begin() + 10 + (b[8] | (b[9] << 8)));
  EXPECT_EQ(head.rfind("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 0), 0u);
  EXPECT_EQ(head.back(), '\n');
  auto b1 = io::npy_bytes(zeros({7}, DType::Bool));
  EXPECT_NE(std::string(b1.begin(), b1.begin() + 80).find("'|b1', 'fortran_order': False, 'shape': (7,)"),
            std::string::npos);
  auto b0 = io::npy_bytes(scalar(1.0, DType::Float64));
  EXPECT_NE(std::string(b0.begin(), b0.begin() + 80).find("'shape': ()"), std::string::npos);
  EXPECT_EQ(dir.list().size(), static_cast<size_t>(k));  // no temporary files left
}

TEST(Npy, WriteRefusesBFloat16AndLeavesNoFile) {
  TempDir dir;
  expect_error([&] { io::write_npy(dir / "bf.npy", zeros({2}, DType::BFloat16)); }, {"bfloat16", "Float32", "safetensors"});
  expect_error([&] { io::write_npy(dir / "u.npy", Tensor()); }, {"undefined"});
  expect_error([&] { io::write_npy(dir / "no/such/dir/x.npy", zeros({2})); }, {"no/such/dir/x.npy", "cannot create"});
  EXPECT_TRUE(dir.list().empty());
}

// ---------------------------------------------------------------- atomic writes

TEST(AtomicFile, InterruptedWriteKeepsOldContent) {
  TempDir dir;
  const std::string p = dir / "r.npy";
  io::write_npy(p, full({3}, 1.0));
  {
    io::AtomicFile f(p);
    f.write("garbage", 7);
    EXPECT_EQ(f.temp_path(), p + ".tmp." + std::to_string(getpid()));
    EXPECT_TRUE(fs::exists(f.temp_path()));
    // destroyed without commit(): what an exception half-way through a writer does
  }
  EXPECT_TRUE(same(io::read_npy(p), full({3}, 1.0)));
  EXPECT_EQ(dir.list(), (std::vector<std::string>{"r.npy"}));
  io::write_npy(p, full({2}, 5.0, DType::Int64));  // overwrite goes through rename
  EXPECT_TRUE(same(io::read_npy(p), full({2}, 5.0, DType::Int64)));
  io::write_file_atomic(dir / "raw.bin", "abc", 3);
  EXPECT_EQ(file_bytes(dir / "raw.bin"), (std::vector<uint8_t>{'a', 'b', 'c'}));
}

// ---------------------------------------------------------------- CRC-32

TEST(Crc32, KnownValuesAndIncremental) {
  EXPECT_EQ(io::crc32("123456789", 9), 0xCBF43926u);
  EXPECT_EQ(io::crc32("", 0), 0u);
  // against a bitwise reference on random data of every length up to 70, and split anywhere
  Generator g(5);
  auto data = randint(0, 256, {300}, g, DType::Int64).to_vector<int64_t>();
  std::vector<uint8_t> d(data.begin(), data.end());
  for (size_t n = 0; n <= 70; ++n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; ++i) {
      c ^= d[i];
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (0xEDB88320u ^ (c >> 1)) : (c >> 1);
    }
    EXPECT_EQ(io::crc32(d.data(), n), ~c) << n;
  }
  for (size_t split : {0, 1, 7, 8, 9, 150, 300})
    EXPECT_EQ(io::crc32(d.data() + split, 300 - split, io::crc32(d.data(), split)), io::crc32(d.data(), 300));
}

// ---------------------------------------------------------------- .npz

namespace {
void expect_fixture_arrays(const std::map<std::string, Tensor>& m) {
  ASSERT_EQ(m.size(), 4u);
  EXPECT_TRUE(same(m.at("a"), from_vector(formula_values(12, "float"), {3, 4}, DType::Float32)));
  EXPECT_TRUE(same(m.at("b"), from_vector(formula_values(5, "int"), {5}, DType::Int64)));
  EXPECT_TRUE(same(m.at("c"), from_vector(formula_values(12, "u1"), {2, 2, 3}, DType::UInt8)));
  EXPECT_EQ(m.at("scalar").dim(), 0);
  EXPECT_EQ(m.at("scalar").item(), 2.25);
}

// Offsets inside a zip, for corrupting particular fields.
struct ZipLayout {
  size_t eocd, cd, first_local;
};
ZipLayout layout(const std::vector<uint8_t>& z) {
  auto rd32 = [&](size_t i) { return uint32_t(z[i]) | uint32_t(z[i + 1]) << 8 | uint32_t(z[i + 2]) << 16 | uint32_t(z[i + 3]) << 24; };
  size_t e = z.size() - 22;
  while (rd32(e) != 0x06054b50) --e;
  return {e, rd32(e + 16), 0};
}
}  // namespace

TEST(Npz, ReadsStoredDeflatedAndZip64) {
  for (const char* f : {"npz_stored.npz", "npz_deflated.npz", "npz_zip64.npz"}) {
    SCOPED_TRACE(f);
    expect_fixture_arrays(io::read_npz(kData + f));
    auto b = file_bytes(kData + f);
    expect_fixture_arrays(io::read_npz_bytes(b.data(), b.size(), f));
  }
  // members that are not .npy are skipped
  auto m = io::read_npz(kData + "npz_with_readme.npz");
  ASSERT_EQ(m.size(), 1u);
  EXPECT_TRUE(same(m.at("x"), from_vector(formula_values(6, "int"), {2, 3}, DType::Int32)));
}

TEST(Npz, WriteRoundTripStoredAndDeflated) {
  TempDir dir;
  std::vector<std::pair<std::string, Tensor>> arrays;
  int k = 0;
  for (const Tensor& t : random_tensors(21)) arrays.emplace_back("arr_" + std::to_string(k++), t);
  arrays.emplace_back("layer1/weight", cortex::testing::noncontig(from_vector(formula_values(12, "float"), {3, 4})));
  arrays.emplace_back("zeros", zeros({64, 64}));
  for (bool compress : {false, true}) {
    SCOPED_TRACE(compress);
    const std::string p = dir / (compress ? "c.npz" : "s.npz");
    io::write_npz(p, arrays, compress);
    auto back = io::read_npz(p);
    ASSERT_EQ(back.size(), arrays.size());
    for (const auto& [key, t] : arrays) EXPECT_TRUE(same(back.at(key), t.contiguous())) << key;
  }
  // deflate pays off on zeros; equal inputs give identical bytes
  EXPECT_LT(fs::file_size(dir / "c.npz"), fs::file_size(dir / "s.npz"));
  io::write_npz(dir / "c2.npz", arrays, true);
  EXPECT_EQ(file_bytes(dir / "c.npz"), file_bytes(dir / "c2.npz"));
  // the map overload and an empty archive
  io::write_npz(dir / "m.npz", std::map<std::string, Tensor>{{"x", full({2}, 3.0)}});
  EXPECT_TRUE(same(io::read_npz(dir / "m.npz").at("x"), full({2}, 3.0)));
  io::write_npz(dir / "e.npz", std::map<std::string, Tensor>{});
  EXPECT_TRUE(io::read_npz(dir / "e.npz").empty());
}

TEST(Npz, WriteErrorsLeaveNoFile) {
  TempDir dir;
  using Pairs = std::vector<std::pair<std::string, Tensor>>;
  expect_error([&] { io::write_npz(dir / "a.npz", Pairs{{"w", zeros({2}, DType::BFloat16)}}); },
               {"a.npz", "'w'", "bfloat16"});
  expect_error([&] { io::write_npz(dir / "d.npz", Pairs{{"w", zeros({2})}, {"w", zeros({3})}}); },
               {"duplicate key", "w.npy"});
  EXPECT_TRUE(dir.list().empty());
}

TEST(Npz, CorruptArchives) {
  TempDir dir;
  const auto good = file_bytes(kData + "npz_stored.npz");
  const auto deflated = file_bytes(kData + "npz_deflated.npz");
  auto check = [&](const std::vector<uint8_t>& b, const std::string& needle) {
    const std::string p = dir / "bad.npz";
    put_file(p, b);
    expect_error([&] { io::read_npz(p); }, {p, needle});
    expect_error([&] { io::read_npz_bytes(b.data(), b.size(), "mem.npz"); }, {"mem.npz", needle});
  };
  // truncated at several points: every prefix is refused, never read past
  for (size_t n : {size_t(0), size_t(10), size_t(30), good.size() / 2, good.size() - 23, good.size() - 1})
    check(std::vector<uint8_t>(good.begin(), good.begin() + n), "");
  check(std::vector<uint8_t>(good.begin(), good.begin() + good.size() / 2), "truncated");
  // wrong magic, and an .npy handed to the npz reader
  check(std::vector<uint8_t>(100, 'x'), "not an .npz/zip archive");
  check(file_bytes(kData + "npy_f4_3x5.npy"), "this is an .npy file");
  // a flipped data byte: CRC mismatch (stored), and in deflated data
  auto crc = good;
  crc[200] ^= 0x40;
  check(crc, "CRC-32 mismatch");
  auto dcrc = deflated;
  dcrc[dcrc.size() / 3] ^= 0x08;
  check(dcrc, "'");  // corrupt deflate or CRC, depending where the flip lands; names the member
  // central directory offset beyond the file, local header offset beyond the file
  const ZipLayout L = layout(good);
  auto cdoff = good;
  cdoff[L.eocd + 16] = 0xff;
  cdoff[L.eocd + 17] = 0xff;
  check(cdoff, "central directory");
  auto loff = good;
  // the first central entry's local header offset lives in its zip64 extra (np.savez forces zip64 locally
  // only), so patch the 32-bit field of the last entry instead: it is a plain offset
  size_t pos = L.cd, last = pos;
  while (pos + 46 <= L.eocd && loff[pos] == 0x50 && loff[pos + 1] == 0x4b && loff[pos + 2] == 1 && loff[pos + 3] == 2) {
    last = pos;
    pos += 46 + (loff[pos + 28] | loff[pos + 29] << 8) + (loff[pos + 30] | loff[pos + 31] << 8) +
           (loff[pos + 32] | loff[pos + 33] << 8);
  }
  loff[last + 42] = 0xf0;
  loff[last + 43] = 0xff;
  loff[last + 44] = 0xff;
  loff[last + 45] = 0x7f;
  check(loff, "outside the archive");
  // unsupported method, encryption, and a size claim DEFLATE cannot produce
  auto meth = good;
  meth[L.cd + 10] = 12;
  check(meth, "compression method 12");
  auto enc = good;
  enc[L.cd + 8] |= 1;
  check(enc, "encrypted");
  const ZipLayout D = layout(deflated);
  auto bomb = deflated;
  bomb[D.cd + 24] = 0xff;
  bomb[D.cd + 25] = 0xff;
  bomb[D.cd + 26] = 0xff;
  bomb[D.cd + 27] = 0x7f;
  check(bomb, "more than DEFLATE can expand");
  // a member whose .npy inside lies about its shape: the npy error names the archive and member
  auto lie = io::npy_bytes(zeros({2}));
  std::string s(lie.begin(), lie.end());
  s.replace(s.find("(2,)"), 4, "(9,)");
  std::vector<uint8_t> lb(s.begin(), s.end());
  expect_error([&] { io::read_npy_bytes(lb.data(), lb.size(), "f.npz: member 'a.npy'"); },
               {"f.npz: member 'a.npy'", "needs 36 data bytes"});
}
