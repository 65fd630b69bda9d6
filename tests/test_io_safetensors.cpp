// safetensors: reading files made by the Python library (and by hand: BF16, unaligned data),
// zero-copy views of the mapping, writing, and every kind of corrupt header.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "tensor/io/atomic_file.h"
#include "tensor/io/safetensors.h"
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

double formula(int64_t i, const std::string& kind) {
  if (kind == "int") return static_cast<double>((i * 37) % 101 - 50);
  if (kind == "float") return static_cast<double>((i * 37) % 101 - 50) / 8.0;
  if (kind == "u1") return static_cast<double>((i * 37) % 256);
  return i % 3 == 0 ? 1.0 : 0.0;
}
Tensor formula_tensor(const Shape& s, const std::string& kind, DType dt) {
  std::vector<double> v(shape_numel(s));
  for (size_t i = 0; i < v.size(); ++i) v[i] = formula(static_cast<int64_t>(i), kind);
  return from_vector(v, s, DType::Float64).to(dt);
}

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

// A file from a header text and a data section.
std::vector<uint8_t> make_st(const std::string& header, size_t data_bytes, uint64_t claimed_len = UINT64_MAX) {
  const uint64_t len = claimed_len == UINT64_MAX ? header.size() : claimed_len;
  std::vector<uint8_t> b(8 + header.size() + data_bytes, 0);
  for (int i = 0; i < 8; ++i) b[i] = static_cast<uint8_t>(len >> (8 * i));
  if (!header.empty()) std::memcpy(b.data() + 8, header.data(), header.size());
  return b;
}

}  // namespace

TEST(SafeTensors, ReadsPythonLibraryFile) {
  const std::string p = kData + "st_numpy.safetensors";
  auto st = io::SafeTensors::open(p);
  const std::vector<std::string> keys = {"bool", "empty", "f16", "f32", "f64", "i16", "i32", "i64",
                                         "layer1.0.conv1.weight", "scalar", "u8"};
  EXPECT_EQ(st.keys(), keys);
  EXPECT_EQ(st.size(), keys.size());
  EXPECT_EQ(st.metadata().at("format"), "np");
  EXPECT_EQ(st.metadata().at("source"), "make_io_fixtures.py");
  EXPECT_EQ(st.info("i16").dtype_name, "I16");
  EXPECT_EQ(st.info("i16").dtype, DType::Int32);
  EXPECT_EQ(st.info("layer1.0.conv1.weight").shape, (Shape{4, 3, 3, 3}));
  EXPECT_TRUE(same(st.get("f32"), formula_tensor({3, 4}, "float", DType::Float32)));
  EXPECT_TRUE(same(st.get("f64"), formula_tensor({2, 3}, "float", DType::Float64)));
  EXPECT_TRUE(same(st.get("f16"), formula_tensor({5}, "float", DType::Float16)));
  EXPECT_TRUE(same(st.get("i64"), formula_tensor({2, 2}, "int", DType::Int64)));
  EXPECT_TRUE(same(st.get("i32"), formula_tensor({3}, "int", DType::Int32)));
  EXPECT_TRUE(same(st.get("i16"), formula_tensor({2, 3}, "int", DType::Int32)));
  EXPECT_TRUE(same(st.get("u8"), formula_tensor({4}, "u1", DType::UInt8)));
  EXPECT_TRUE(same(st.get("bool"), formula_tensor({2, 3}, "bool", DType::Bool)));
  EXPECT_TRUE(same(st.get("layer1.0.conv1.weight"), formula_tensor({4, 3, 3, 3}, "float", DType::Float32)));
  EXPECT_EQ(st.get("scalar").dim(), 0);
  EXPECT_EQ(st.get("scalar").item(), 1.5);
  EXPECT_EQ(st.get("empty").shape(), (Shape{0, 4}));
  EXPECT_TRUE(st.contains("f32"));
  EXPECT_FALSE(st.contains("f33"));
  expect_error([&] { st.get("f33"); }, {p, "no tensor named 'f33'", "f32"});
  // in-memory parsing gives the same
  auto bytes = io::read_file_bytes(p);
  auto mem = io::SafeTensors::from_bytes(bytes.data(), bytes.size(), "mem");
  EXPECT_EQ(mem.keys(), keys);
  for (const auto& k : keys) EXPECT_TRUE(same(mem.get(k), st.get(k))) << k;
  EXPECT_EQ(io::load_safetensors(p).size(), keys.size());
}

TEST(SafeTensors, ZeroCopyViewsOutliveTheHandle) {
  TempDir dir;
  const std::string p = dir / "w.safetensors";
  io::write_safetensors(p, {{"a", formula_tensor({64, 3}, "float", DType::Float32)},
                            {"b", formula_tensor({5}, "int", DType::Int64)}});
  Tensor a1, a2;
  {
    auto st = io::SafeTensors::open(p);
    a1 = st.get("a");
    a2 = st.get("a");
  }  // the handle is gone; the mapping lives on in the tensors
  EXPECT_EQ(a1.raw_data(), a2.raw_data());  // both view the same mapped bytes: no copy
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a1.raw_data()) % 4, 0u);
  EXPECT_TRUE(same(a1, formula_tensor({64, 3}, "float", DType::Float32)));
  // Writing to a view changes neither the file nor a fresh mapping (private copy-on-write).
  a1.fill_(7.0);
  EXPECT_EQ(a2.at({0, 0}), 7.0);
  EXPECT_TRUE(same(io::SafeTensors::open(p).get("a"), formula_tensor({64, 3}, "float", DType::Float32)));
}

TEST(SafeTensors, BFloat16AndUnalignedFiles) {
  auto st = io::SafeTensors::open(kData + "st_bf16.safetensors");
  EXPECT_EQ(st.metadata().at("format"), "pt");
  Tensor w = st.get("w");
  EXPECT_EQ(w.dtype(), DType::BFloat16);
  EXPECT_TRUE(same(w.to(DType::Float32), formula_tensor({2, 4}, "float", DType::Float32)));
  EXPECT_TRUE(same(st.get("b"), formula_tensor({4}, "float", DType::Float32)));
  // Header length 8k+2: the F32/F64 bytes sit at odd addresses; each such tensor is copied.
  auto un = io::SafeTensors::open(kData + "st_unaligned.safetensors");
  Tensor x = un.get("x"), y = un.get("y");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(x.raw_data()) % 4, 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(y.raw_data()) % 8, 0u);
  EXPECT_TRUE(same(x, formula_tensor({3}, "float", DType::Float32)));
  EXPECT_TRUE(same(y, formula_tensor({2}, "float", DType::Float64)));
}

TEST(SafeTensors, WriteRoundTripLayoutAndHeader) {
  TempDir dir;
  Generator g(3);
  std::vector<std::pair<std::string, Tensor>> ts;
  const DType dts[] = {DType::Float32, DType::Float64, DType::Float16, DType::BFloat16,
                       DType::Int32,   DType::Int64,   DType::UInt8,   DType::Bool};
  int k = 0;
  for (DType dt : dts) {
    for (int rep = 0; rep < 2; ++rep, ++k) {
      const int64_t nd = randint(0, 4, {1}, g).item<int64_t>();
      Shape s = randint(1, 6, {nd}, g).to_vector<int64_t>();
      if (k == 5 && nd > 0) s[0] = 0;
      Tensor t = randint(0, 200, s, g, DType::Int64).to(dt);
      if (t.dim() >= 2) t = cortex::testing::noncontig(t);
      ts.emplace_back(std::string("t").append(std::to_string(k)), t);
    }
  }
  ts.emplace_back("encoder.layers.encoder_layer_0.ln_1.weight", scalar(1.25));
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"note", "caf\xc3\xa9"}};
  const std::string p = dir / "rt.safetensors";
  io::write_safetensors(p, ts, meta);
  EXPECT_EQ(dir.count(), 1u);  // no temporary left behind
  auto st = io::SafeTensors::open(p);
  EXPECT_EQ(st.metadata(), meta);
  for (const auto& [name, t] : ts) {
    Tensor r = st.get(name);
    EXPECT_TRUE(same(r, t.contiguous())) << name;
    // every tensor is aligned in the file, so every get() is a view
    EXPECT_EQ(reinterpret_cast<uintptr_t>(r.raw_data()) % r.element_size(), 0u) << name;
  }
  // Header: padded to 8 with spaces, __metadata__ first, data ordered by element size then name.
  auto bytes = io::read_file_bytes(p);
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; --i) hlen = (hlen << 8) | bytes[i];
  EXPECT_EQ(hlen % 8, 0u);
  const std::string text(bytes.begin() + 8, bytes.begin() + 8 + static_cast<long>(hlen));
  EXPECT_EQ(text.rfind("{\"__metadata__\":", 0), 0u);
  auto h = nlohmann::ordered_json::parse(text);
  size_t prev_size = 8;
  std::string prev_name;
  uint64_t prev_end = 0;
  for (auto it = h.begin(); it != h.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    const size_t es = dtype_size(st.info(it.key()).dtype);
    EXPECT_TRUE(es < prev_size || (es == prev_size && it.key() > prev_name)) << it.key();
    EXPECT_EQ(it.value()["data_offsets"][0].get<uint64_t>(), prev_end);
    prev_end = it.value()["data_offsets"][1].get<uint64_t>();
    prev_size = es;
    prev_name = it.key();
  }
  EXPECT_EQ(bytes, io::safetensors_bytes(ts, meta));
  // map overload, no metadata: no __metadata__ key
  io::write_safetensors(dir / "m.safetensors", std::map<std::string, Tensor>{{"z", zeros({2})}});
  EXPECT_TRUE(io::SafeTensors::open(dir / "m.safetensors").metadata().empty());
}

TEST(SafeTensors, WriteErrors) {
  TempDir dir;
  using Pairs = std::vector<std::pair<std::string, Tensor>>;
  expect_error([&] { io::write_safetensors(dir / "d.safetensors", Pairs{{"w", zeros({2})}, {"w", zeros({2})}}); },
               {"d.safetensors", "duplicate tensor name 'w'"});
  expect_error([&] { io::write_safetensors(dir / "m.safetensors", Pairs{{"__metadata__", zeros({2})}}); },
               {"'__metadata__' cannot name a tensor"});
  expect_error([&] { io::write_safetensors(dir / "u.safetensors", Pairs{{"u", Tensor()}}); }, {"'u' is undefined"});
  expect_error([&] { io::write_safetensors(dir / "x.safetensors", Pairs{{"bad\xff", zeros({1})}}); }, {"UTF-8"});
  EXPECT_EQ(dir.count(), 0u);
}

TEST(SafeTensors, CorruptFiles) {
  TempDir dir;
  const auto good = io::read_file_bytes(kData + "st_numpy.safetensors");
  auto check = [&](const std::vector<uint8_t>& b, const std::string& needle) {
    const std::string p = dir / "bad.safetensors";
    put_file(p, b);
    expect_error([&] { io::SafeTensors::open(p); }, {p, needle});
    expect_error([&] { io::SafeTensors::from_bytes(b.data(), b.size(), "mem.st"); }, {"mem.st", needle});
  };
  // truncated: in the length, in the header, in the data
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; --i) hlen = (hlen << 8) | good[i];
  for (size_t n : {size_t(0), size_t(5), size_t(8), size_t(100), static_cast<size_t>(8 + hlen - 1)})
    check(std::vector<uint8_t>(good.begin(), good.begin() + n), n < 8 ? "truncated" : "exceeds the file");
  check(std::vector<uint8_t>(good.begin(), good.end() - 1), "outside the data section");
  // wrong magic: a PNG is not a safetensors file
  check(io::read_file_bytes(kData + "img_grey_20x30.png"), "header length");
  check(make_st("[1, 2]  ", 0), "does not start with '{'");
  check(make_st("{\"a\": }  ", 0), "invalid JSON header");
  check(make_st("{\"a\xff\": 1}", 0), "invalid JSON header");
  check(make_st("{\"x\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}", 8), "invalid JSON header");
  check(make_st("{}", 0, 1ull << 40), "exceeds the file");
  const auto huge = make_st("{" + std::string(100'000'010, ' ') + "}", 0);
  expect_error([&] { io::SafeTensors::from_bytes(huge.data(), huge.size(), "huge.st"); }, {"huge.st", "100 MB"});
  // header sizes that lie
  auto T = [](const std::string& dtype, const std::string& shape, const std::string& offs) {
    return "{\"x\": {\"dtype\": \"" + dtype + "\", \"shape\": " + shape + ", \"data_offsets\": " + offs + "}}";
  };
  check(make_st(T("F32", "[2, 3]", "[0, 24]"), 16), "outside the data section");
  check(make_st(T("F32", "[2, 3]", "[0, 20]"), 24), "needs 24");
  check(make_st(T("F32", "[2, 3]", "[8, 4]"), 24), "outside the data section");
  check(make_st(T("U16", "[2]", "[0, 4]"), 4), "unsupported dtype 'U16'");
  check(make_st(T("F8_E4M3", "[2]", "[0, 2]"), 2), "unsupported dtype");
  check(make_st(T("F32", "[4611686018427387904, 4611686018427387904]", "[0, 0]"), 0), "more elements than int64");
  check(make_st(T("F64", "[4611686018427387904]", "[0, 0]"), 0), "overflows the byte count");
  check(make_st(T("F32", "[0, 4294967296, 4294967296]", "[0, 0]"), 0), "int64");
  check(make_st(T("F32", "[-2]", "[0, 0]"), 0), "non-negative");
  check(make_st(T("F32", "[1.5]", "[0, 0]"), 0), "non-negative integers");
  check(make_st(T("F32", "[2]", "[0]"), 8), "'data_offsets' must be [begin, end]");
  check(make_st(T("F32", "[2]", "[0, -8]"), 8), "non-negative");
  check(make_st("{\"x\": {\"shape\": [2], \"data_offsets\": [0, 8]}}", 8), "'dtype'");
  check(make_st("{\"x\": [1]}", 8), "entry must be an object");
  check(make_st("{\"__metadata__\": {\"k\": 1}}", 0), "__metadata__ value for 'k' must be a string");
  check(make_st("{\"__metadata__\": [1]}", 0), "__metadata__ must be an object");
  check(make_st("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}, "
                "\"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}",
                12),
        "overlap");
  // empty tensors may sit anywhere; gaps between tensors are allowed
  auto ok = make_st("{\"a\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [4, 4]}, "
                    "\"b\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
                    8);
  EXPECT_EQ(io::SafeTensors::from_bytes(ok.data(), ok.size(), "ok").size(), 2u);
}
