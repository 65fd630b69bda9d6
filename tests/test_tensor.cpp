// Tensor: views without copies, copies and conversions, creation, Philox determinism, printing.
#include <gtest/gtest.h>

#include <omp.h>

#include <cmath>
#include <set>

#include "tensor/host_allocator.h"
#include "tensor/random.h"
#include "tensor/tensor.h"
#include "tests/test_util.h"

using namespace cortex;
using cortex::testing::allclose;

namespace {
Tensor iota(const Shape& s) {
  const int64_t n = shape_numel(s);
  std::vector<double> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<double>(i);
  return from_vector(v, s, DType::Float64);
}
}  // namespace

TEST(Tensor, CreationAndBasics) {
  Tensor z = zeros({2, 3});
  EXPECT_EQ(z.shape(), (Shape{2, 3}));
  EXPECT_EQ(z.strides(), (Shape{3, 1}));
  EXPECT_EQ(z.numel(), 6);
  EXPECT_EQ(z.dtype(), DType::Float32);
  EXPECT_TRUE(z.is_contiguous());
  EXPECT_EQ(full({2}, 2.5).at({1}), 2.5);
  EXPECT_EQ(scalar(3.0).dim(), 0);
  EXPECT_EQ(scalar(3.0).item(), 3.0);
  auto a = arange(0, 5, 2, DType::Int64).to_vector<int64_t>();
  EXPECT_EQ(a, (std::vector<int64_t>{0, 2, 4}));
  auto l = linspace(0, 1, 5, DType::Float64).to_vector<double>();
  EXPECT_EQ(l, (std::vector<double>{0, 0.25, 0.5, 0.75, 1.0}));
  Tensor e = eye(3, 4);
  EXPECT_EQ(e.shape(), (Shape{3, 4}));
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 4; ++j) EXPECT_EQ(e.at({i, j}), i == j ? 1.0 : 0.0);
  EXPECT_EQ(zeros({0, 3}).numel(), 0);
  EXPECT_CORTEX_ERROR(zeros({-1}), "negative");
  EXPECT_CORTEX_ERROR(zeros({int64_t(1) << 40, int64_t(1) << 40}), "int64");
  EXPECT_CORTEX_ERROR(from_vector(std::vector<float>{1, 2, 3}, {2, 2}), "do not fill");
}

TEST(Tensor, ViewsShareStorage) {
  Tensor x = iota({2, 3, 4});
  Tensor p = x.permute({2, 0, 1});
  EXPECT_EQ(p.shape(), (Shape{4, 2, 3}));
  EXPECT_EQ(p.storage(), x.storage());
  EXPECT_EQ(p.at({3, 1, 2}), x.at({1, 2, 3}));
  EXPECT_FALSE(p.is_contiguous());
  Tensor t = x.transpose(0, 2);
  EXPECT_EQ(t.at({3, 2, 1}), x.at({1, 2, 3}));
  // slice with a step, negative start
  Tensor s = x.slice(2, -3, 4, 2);  // indices 1, 3
  EXPECT_EQ(s.shape(), (Shape{2, 3, 2}));
  EXPECT_EQ(s.at({1, 2, 1}), x.at({1, 2, 3}));
  EXPECT_EQ(x.slice(0, 5, 9).shape(), (Shape{0, 3, 4}));  // clamped like Python
  Tensor sel = x.select(1, -1);
  EXPECT_EQ(sel.shape(), (Shape{2, 4}));
  EXPECT_EQ(sel.at({1, 0}), x.at({1, 2, 0}));
  Tensor u = x.unsqueeze(1);
  EXPECT_EQ(u.shape(), (Shape{2, 1, 3, 4}));
  EXPECT_EQ(u.squeeze(1).shape(), x.shape());
  EXPECT_EQ(u.squeeze().shape(), x.shape());
  Tensor e = from_vector(std::vector<double>{1, 2, 3}, {3, 1}).expand({2, 3, 4});
  EXPECT_EQ(e.strides(), (Shape{0, 1, 0}));
  EXPECT_EQ(e.at({1, 2, 3}), 3.0);
  EXPECT_CORTEX_ERROR(x.expand({2, 5, 4}), "cannot expand");
  EXPECT_CORTEX_ERROR(x.permute({0, 0, 1}), "repeated");
  EXPECT_CORTEX_ERROR(x.select(1, 3), "out of range");
  EXPECT_CORTEX_ERROR(x.transpose(0, 3), "out of range");
}

TEST(Tensor, ViewAndReshape) {
  Tensor x = iota({2, 3, 4});
  Tensor v = x.view({6, -1});
  EXPECT_EQ(v.shape(), (Shape{6, 4}));
  EXPECT_EQ(v.storage(), x.storage());
  EXPECT_EQ(v.at({5, 3}), 23.0);
  // a transposed tensor cannot be flattened without a copy: view refuses, reshape copies
  Tensor t = x.transpose(1, 2);
  EXPECT_CORTEX_ERROR(t.view({-1}), "without a copy");
  Tensor r = t.reshape({-1});
  EXPECT_NE(r.storage(), x.storage());
  EXPECT_EQ(r.at({1}), x.at({0, 1, 0}));
  // splitting a dim of a non-contiguous tensor is still a view
  Tensor tv = t.view({2, 2, 2, 3});
  EXPECT_EQ(tv.storage(), x.storage());
  EXPECT_EQ(tv.at({1, 1, 0, 2}), x.at({1, 2, 2}));
  EXPECT_EQ(x.flatten(1).shape(), (Shape{2, 12}));
  EXPECT_CORTEX_ERROR(x.view({5, -1}), "cannot infer");
  EXPECT_CORTEX_ERROR(x.view({-1, -1}), "only one");
  // size-0 and size-1 dims
  Tensor z = zeros({0, 3});
  EXPECT_EQ(z.view({3, 0}).shape(), (Shape{3, 0}));
  EXPECT_EQ(zeros({1, 1}).view({}).dim(), 0);
}

TEST(Tensor, CopiesAndConversions) {
  Tensor x = iota({3, 4});
  Tensor t = x.t();
  Tensor c = t.contiguous();
  EXPECT_TRUE(c.is_contiguous());
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j < 3; ++j) EXPECT_EQ(c.at({i, j}), x.at({j, i}));
  EXPECT_TRUE(x.contiguous().is_same(x));
  // every dtype round-trips small integers
  for (DType dt : {DType::Float32, DType::Float64, DType::BFloat16, DType::Float16, DType::Int32, DType::Int64,
                   DType::UInt8}) {
    EXPECT_TRUE(allclose(x.to(dt).to(DType::Float64), x)) << dtype_name(dt);
  }
  EXPECT_EQ(x.to(DType::Bool).to_vector<uint8_t>()[0], 0);
  EXPECT_EQ(x.to(DType::Bool).to_vector<uint8_t>()[1], 1);
  // copy_ broadcasts and converts, and bumps the version counter
  Tensor y = zeros({3, 4}, DType::Float32);
  const uint64_t v0 = y.storage()->version;
  y.copy_(from_vector(std::vector<double>{1, 2, 3, 4}));
  EXPECT_EQ(y.at({2, 3}), 4.0);
  EXPECT_GT(y.storage()->version.load(), v0);
  // writing through a view changes the base
  x.select(0, 1).fill_(-1);
  EXPECT_EQ(x.at({1, 2}), -1.0);
  EXPECT_EQ(x.at({2, 2}), 10.0);
}

TEST(Tensor, HalfPrecisionRounding) {
  // bfloat16: 1 + 2^-8 is halfway between 1 and 1 + 2^-7 -> rounds to even (1)
  EXPECT_EQ(static_cast<float>(bfloat16(1.0f + std::ldexp(1.0f, -8))), 1.0f);
  EXPECT_EQ(static_cast<float>(bfloat16(1.0f + 3 * std::ldexp(1.0f, -8))), 1.0f + std::ldexp(1.0f, -6));
  EXPECT_TRUE(std::isnan(static_cast<float>(bfloat16(NAN))));
  // float16: max, overflow, subnormals, rounding to even
  EXPECT_EQ(static_cast<float>(float16(65504.0f)), 65504.0f);
  EXPECT_TRUE(std::isinf(static_cast<float>(float16(70000.0f))));
  EXPECT_EQ(static_cast<float>(float16(std::ldexp(1.0f, -24))), std::ldexp(1.0f, -24));
  EXPECT_EQ(static_cast<float>(float16(std::ldexp(1.0f, -26))), 0.0f);
  EXPECT_EQ(static_cast<float>(float16(1.0f + std::ldexp(1.0f, -11))), 1.0f);
  EXPECT_EQ(static_cast<float>(float16(1.0f + 3 * std::ldexp(1.0f, -11))), 1.0f + std::ldexp(1.0f, -9));
  EXPECT_EQ(static_cast<float>(float16(-2.5f)), -2.5f);
  EXPECT_TRUE(std::isnan(static_cast<float>(float16(NAN))));
  // every float16 bit pattern survives a round trip through float
  for (uint32_t b = 0; b < 65536; ++b) {
    float16 h;
    h.bits = static_cast<uint16_t>(b);
    const float f = h;
    if (std::isnan(f)) continue;
    EXPECT_EQ(float16(f).bits, h.bits) << b;
  }
}

TEST(Random, SameNumbersForEveryThreadCount) {
  auto draw = [](int threads) {
    omp_set_num_threads(threads);
    Generator g(42);
    auto u = rand({300000}, g).to_vector<float>();
    auto n = randn({1001}, g, 0, 1, DType::Float64).to_vector<double>();
    return std::make_pair(u, n);
  };
  auto a = draw(1), b = draw(2);
  omp_set_num_threads(2);
  EXPECT_EQ(a.first, b.first);
  EXPECT_EQ(a.second, b.second);
}

TEST(Random, Statistics) {
  Generator g(7);
  auto u = rand({200000}, g, -1, 3, DType::Float64).to_vector<double>();
  double m = 0, mn = 1e9, mx = -1e9;
  for (double v : u) { m += v; mn = std::min(mn, v); mx = std::max(mx, v); }
  m /= u.size();
  EXPECT_NEAR(m, 1.0, 0.02);
  EXPECT_GE(mn, -1.0);
  EXPECT_LT(mx, 3.0);
  auto n = randn({200000}, g, 2.0, 0.5, DType::Float64).to_vector<double>();
  double s = 0, s2 = 0;
  for (double v : n) { s += v; s2 += v * v; }
  const double mean = s / n.size(), var = s2 / n.size() - mean * mean;
  EXPECT_NEAR(mean, 2.0, 0.01);
  EXPECT_NEAR(var, 0.25, 0.01);
  auto r = randint(-3, 4, {70000}, g).to_vector<int64_t>();
  std::vector<int> counts(7, 0);
  for (int64_t v : r) { ASSERT_GE(v, -3); ASSERT_LT(v, 4); counts[v + 3]++; }
  for (int c : counts) EXPECT_NEAR(c, 10000, 500);
  auto p = randperm(1000, g).to_vector<int64_t>();
  std::set<int64_t> seen(p.begin(), p.end());
  EXPECT_EQ(seen.size(), 1000u);
  EXPECT_EQ(*seen.begin(), 0);
  EXPECT_EQ(*seen.rbegin(), 999);
  // successive draws differ, same seed repeats
  Generator g1(1), g2(1);
  auto d1 = rand({4}, g1).to_vector<float>(), d2 = rand({4}, g1).to_vector<float>();
  EXPECT_NE(d1, d2);
  EXPECT_EQ(d1, rand({4}, g2).to_vector<float>());
}

TEST(Random, PhiloxKnownAnswer) {
  // Known-answer vector from the Random123 distribution (kat_vectors): philox4x32_10 with
  // counter {0,0,0,0} and key {0,0} gives 6627e8d5 e169c58d bc57ac4c 9b00dbd8.
  uint32_t out[4];
  Philox4x32::block(0, 0, out);
  EXPECT_EQ(out[0], 0x6627e8d5u);
  EXPECT_EQ(out[1], 0xe169c58du);
  EXPECT_EQ(out[2], 0xbc57ac4cu);
  EXPECT_EQ(out[3], 0x9b00dbd8u);
}

TEST(Tensor, Printing) {
  Tensor x = from_vector(std::vector<float>{1.5f, -2.0f, 3.25f, 0.0f}, {2, 2});
  const std::string s = x.str();
  EXPECT_NE(s.find("1.5000"), std::string::npos) << s;
  EXPECT_NE(s.find("shape=[2, 2]"), std::string::npos) << s;
  EXPECT_NE(s.find("dtype=float32"), std::string::npos) << s;
  const std::string big = zeros({100}).str();
  EXPECT_NE(big.find("..."), std::string::npos) << big;
  EXPECT_NE(from_vector(std::vector<int64_t>{7}).str().find("[7]"), std::string::npos);
}

TEST(Tensor, DevicesAndErrors) {
  EXPECT_EQ(Device::parse("cuda:1"), Device::cuda(1));
  EXPECT_EQ(Device::parse("cpu"), Device::cpu());
  EXPECT_CORTEX_ERROR(Device::parse("gpu"), "expected 'cpu'");
  EXPECT_CORTEX_ERROR(dtype_from_name("complex64"), "unknown dtype");
  EXPECT_CORTEX_ERROR(zeros({2}).data<double>(), "float32");
  EXPECT_CORTEX_ERROR(Tensor().shape(), "undefined");
  if (!cuda_available()) {
    EXPECT_ANY_THROW(zeros({2}).to(Device::cuda(0)));
  }
}

// The emulated CUDA device: host memory, its own device tag, memcpy moves both ways.
TEST(Tensor, EmulatedDevice) {
  EXPECT_EQ(Device::parse("emu"), Device::emu());
  EXPECT_EQ(Device::emu().str(), "emu");
  EXPECT_EQ(Device::parse(Device::emu().str()), Device::emu());
  EXPECT_TRUE(Device::emu().is_emu() && Device::emu().is_host_memory());
  EXPECT_FALSE(Device::emu().is_cpu() || Device::emu().is_cuda());
  EXPECT_FALSE(Device::cuda(0).is_host_memory());
  EXPECT_NE(Device::emu(), Device::cpu());
  EXPECT_CORTEX_ERROR(Device::parse("emu:1"), "expected 'cpu', 'emu'");

  const Tensor x = iota({3, 4});
  const Tensor e = x.to(Device::emu());
  EXPECT_EQ(e.device(), Device::emu());
  EXPECT_EQ(e.storage()->device, Device::emu());
  EXPECT_NE(e.raw_data(), x.raw_data());  // a copy, not shared storage
  // Its data pointer is host memory: readable directly.
  EXPECT_EQ(e.data<double>()[5], 5.0);
  EXPECT_EQ(e.at({2, 3}), 11.0);
  EXPECT_NE(e.str().find("device=emu"), std::string::npos) << e.str();

  // Back to the CPU: new CPU storage with the same values; views and conversions stay on emu.
  const Tensor back = e.to(Device::cpu());
  EXPECT_EQ(back.device(), Device::cpu());
  EXPECT_NE(back.raw_data(), e.raw_data());
  EXPECT_TRUE(allclose(back, x, 0, 0));
  const Tensor v = e.t().slice(0, 1, 4, 2);  // non-contiguous view on emu
  EXPECT_EQ(v.device(), Device::emu());
  EXPECT_TRUE(allclose(v.to(Device::cpu()), x.t().slice(0, 1, 4, 2), 0, 0));
  EXPECT_EQ(v.contiguous().device(), Device::emu());
  EXPECT_EQ(v.clone().device(), Device::emu());
  EXPECT_TRUE(allclose(v.clone().to(Device::cpu()), x.t().slice(0, 1, 4, 2), 0, 0));
  const Tensor f = e.to(DType::Float32);
  EXPECT_EQ(f.device(), Device::emu());
  EXPECT_EQ(f.to_vector<float>()[7], 7.0f);

  // Creation on emu, copy_ in both directions, fill_.
  Tensor z = zeros({3, 4}, DType::Float64, Device::emu());
  EXPECT_EQ(z.device(), Device::emu());
  z.copy_(x);  // from the CPU
  EXPECT_TRUE(allclose(z.to(Device::cpu()), x, 0, 0));
  Tensor c = zeros({3, 4}, DType::Float64);
  c.copy_(e);  // to the CPU
  EXPECT_TRUE(allclose(c, x, 0, 0));
  z.narrow(0, 1, 1).fill_(-1.0);
  EXPECT_EQ(z.at({1, 2}), -1.0);
  EXPECT_EQ(arange(0, 4, 1, DType::Int64, Device::emu()).to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(eye(2, -1, DType::Float32, Device::emu()).device(), Device::emu());
  Generator g(3), h(3);
  EXPECT_TRUE(allclose(randn({5}, g, 0, 1, DType::Float32, Device::emu()).to(Device::cpu()),
                       randn({5}, h, 0, 1, DType::Float32), 0, 0));
}

TEST(HostAllocator, LargeBlocksAreReusedAndReleased) {
  host::empty_cache();
  const size_t before = host::cached_bytes();
  EXPECT_EQ(before, 0u);
  void* first = nullptr;
  {
    Tensor a = zeros({9, 1000, 1000});  // 36 MB: cached when freed
    first = a.raw_data();
  }
  EXPECT_EQ(host::cached_bytes(), size_t(35) << 20);  // 36,000,000 bytes rounded up to whole MiB
  {
    Tensor b = ones({9, 1000, 1000});  // same rounded size: the same block, and correctly filled
    EXPECT_EQ(b.raw_data(), first);
    EXPECT_EQ(host::cached_bytes(), 0u);
    EXPECT_EQ(b.at({8, 999, 999}), 1.0);
    Tensor small = zeros({10});          // small blocks bypass the cache
    Tensor mid = zeros({3, 1000, 1000});  // so do blocks below 32 MiB (glibc's heap)
  }
  EXPECT_EQ(host::cached_bytes(), size_t(35) << 20);
  host::empty_cache();
  EXPECT_EQ(host::cached_bytes(), 0u);
}

TEST(Tensor, EmptyTensorsAreContiguousWhateverTheirStrides) {
  // A [3, 0, 4] slice of a [3, 5, 4] tensor keeps the parent's strides; with no element out of
  // place it is contiguous, and it copies between devices like any other.
  Tensor x = zeros({3, 5, 4});
  Tensor e = x.slice(1, 2, 2);
  EXPECT_EQ(e.shape(), (Shape{3, 0, 4}));
  EXPECT_TRUE(e.is_contiguous());
  Tensor d = e.to(Device::emu());
  EXPECT_EQ(d.shape(), (Shape{3, 0, 4}));
  EXPECT_EQ(d.to(Device::cpu()).numel(), 0);
}
