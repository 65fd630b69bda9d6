// The CPU FFT of kernels/fft.h (kernels/cpu/fft.cpp, docs/fft.md), which rfft2 / irfft2 run on CPU
// tensors: values against a direct float64 DFT written here (separable sums, every twiddle's angle
// reduced in integers) over many sizes (every radix, primes up to 97 that take the generic odd
// butterfly, 64 = 8 8, 224 = 8 4 7, 225 = 3 3 5 5), odd and even widths, size-1 dims, batch dims and
// non-contiguous inputs, in float64 and float32 (tolerances relative to the RMS of the spectrum or
// of the image); irfft2 on half spectra that are not Hermitian (the DC / Nyquist imaginary parts
// ignored); the ops on the CPU against the emulated device's cos/sin products; bit-identical results
// at 1, 2, 3 and 8 threads; gradients at prime sizes; bad arguments. tests/test_dft.cpp holds the
// numpy fixtures and the gradchecks of the ops.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "kernels/fft.h"
#include "tests/test_util.h"

using namespace cortex;
using cortex::testing::expect_error;
using cortex::testing::noncontig;
using cortex::testing::randn;

namespace {

const std::vector<int64_t> kSmall = {1, 2, 3, 5, 7, 8, 11, 13, 16, 17, 31, 64};
const std::vector<int64_t> kLarge = {97, 224, 225};

// cos, sin of 2 pi q / n for q < n (double).
struct Trig {
  std::vector<double> c, s;
  explicit Trig(int64_t n) : c(static_cast<size_t>(n)), s(static_cast<size_t>(n)) {
    for (int64_t q = 0; q < n; ++q) {
      c[static_cast<size_t>(q)] = std::cos(2.0 * M_PI * static_cast<double>(q) / static_cast<double>(n));
      s[static_cast<size_t>(q)] = std::sin(2.0 * M_PI * static_cast<double>(q) / static_cast<double>(n));
    }
  }
};

// The half spectrum of every (h, w) plane of x, unscaled, by direct sums in float64.
std::pair<std::vector<double>, std::vector<double>> ref_rfft2(const Tensor& x) {
  const int64_t h = x.size(-2), w = x.size(-1), wf = w / 2 + 1, planes = x.numel() / (h * w);
  const std::vector<double> v = x.to(DType::Float64).contiguous().to_vector<double>();
  const Trig th(h), tw(w);
  std::vector<double> re(static_cast<size_t>(planes * h * wf)), im(re.size());
  std::vector<double> ar(static_cast<size_t>(h * wf)), ai(ar.size());
  for (int64_t b = 0; b < planes; ++b) {
    const double* xp = v.data() + b * h * w;
    for (int64_t r = 0; r < h; ++r)  // along w: A[r, l] = sum_c x[r, c] exp(-2 pi i l c / w)
      for (int64_t l = 0; l < wf; ++l) {
        double sr = 0, si = 0;
        for (int64_t c = 0; c < w; ++c) {
          const size_t q = static_cast<size_t>((l * c) % w);
          sr += xp[r * w + c] * tw.c[q];
          si -= xp[r * w + c] * tw.s[q];
        }
        ar[static_cast<size_t>(r * wf + l)] = sr;
        ai[static_cast<size_t>(r * wf + l)] = si;
      }
    for (int64_t k = 0; k < h; ++k)  // along h
      for (int64_t l = 0; l < wf; ++l) {
        double sr = 0, si = 0;
        for (int64_t r = 0; r < h; ++r) {
          const size_t q = static_cast<size_t>((k * r) % h);
          const double cr = th.c[q], ci = -th.s[q], a = ar[static_cast<size_t>(r * wf + l)],
                       bb = ai[static_cast<size_t>(r * wf + l)];
          sr += a * cr - bb * ci;
          si += a * ci + bb * cr;
        }
        re[static_cast<size_t>((b * h + k) * wf + l)] = sr;
        im[static_cast<size_t>((b * h + k) * wf + l)] = si;
      }
  }
  return {re, im};
}

// numpy.fft.irfft2(re + i im, s=(h, w)) * h * w for every plane, by direct sums in float64:
// x[r, c] = sum_l c_l Re(Y'[r, l] exp(2 pi i l c / w)), Y' the inverse sum over h, c_l = 1 at DC and
// (w even) Nyquist, 2 elsewhere; Re() drops the imaginary parts of those two columns by itself.
std::vector<double> ref_irfft2(const Tensor& re, const Tensor& im, int64_t w) {
  const int64_t h = re.size(-2), wf = w / 2 + 1, planes = re.numel() / (h * wf);
  const std::vector<double> vr = re.to(DType::Float64).contiguous().to_vector<double>();
  const std::vector<double> vi = im.to(DType::Float64).contiguous().to_vector<double>();
  const Trig th(h), tw(w);
  std::vector<double> x(static_cast<size_t>(planes * h * w)), yr(static_cast<size_t>(h * wf)), yi(yr.size());
  for (int64_t b = 0; b < planes; ++b) {
    for (int64_t r = 0; r < h; ++r)
      for (int64_t l = 0; l < wf; ++l) {
        double sr = 0, si = 0;
        for (int64_t k = 0; k < h; ++k) {
          const size_t q = static_cast<size_t>((k * r) % h), at = static_cast<size_t>((b * h + k) * wf + l);
          sr += vr[at] * th.c[q] - vi[at] * th.s[q];
          si += vr[at] * th.s[q] + vi[at] * th.c[q];
        }
        yr[static_cast<size_t>(r * wf + l)] = sr;
        yi[static_cast<size_t>(r * wf + l)] = si;
      }
    for (int64_t r = 0; r < h; ++r)
      for (int64_t c = 0; c < w; ++c) {
        double s = 0;
        for (int64_t l = 0; l < wf; ++l) {
          const double cl = (l == 0 || (w % 2 == 0 && l == w / 2)) ? 1.0 : 2.0;
          const size_t q = static_cast<size_t>((l * c) % w);
          s += cl * (yr[static_cast<size_t>(r * wf + l)] * tw.c[q] - yi[static_cast<size_t>(r * wf + l)] * tw.s[q]);
        }
        x[static_cast<size_t>((b * h + r) * w + c)] = s;
      }
  }
  return x;
}

double rms(const std::vector<double>& a, const std::vector<double>& b = {}) {
  double s = 0;
  for (double v : a) s += v * v;
  for (double v : b) s += v * v;
  const size_t n = a.size() + b.size();
  return n ? std::sqrt(s / static_cast<double>(n)) : 0.0;
}

// max |got - want * scale| <= tol * rms(want * scale) (or tol when that is 0).
::testing::AssertionResult close_rel(const Tensor& got, const std::vector<double>& want, double scale, double ref_rms,
                                     double tol) {
  const std::vector<double> g = got.to(DType::Float64).contiguous().to_vector<double>();
  if (g.size() != want.size())
    return ::testing::AssertionFailure() << "size " << g.size() << ", expected " << want.size();
  const double bound = tol * (ref_rms > 0 ? ref_rms * std::abs(scale) : 1.0);
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    const double e = std::abs(g[i] - want[i] * scale);
    if (!(e <= worst)) worst = e, at = i;  // NaN counts as worst
  }
  if (worst <= bound) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "max error " << worst << " at " << at << " (got " << g[at] << ", want "
                                       << want[at] * scale << ") > bound " << bound;
}

void check_rfft2(const Tensor& x, double scale) {
  const auto [rr, ri] = ref_rfft2(x);
  const double r = rms(rr, ri);
  const double tol = x.dtype() == DType::Float64 ? 1e-13 : 2e-6;
  const kernels::RealSpectrum y = kernels::rfft2(x, scale);
  Shape want_shape = x.shape();
  want_shape.back() = x.size(-1) / 2 + 1;
  ASSERT_EQ(y.re.shape(), want_shape);
  ASSERT_EQ(y.im.shape(), want_shape);
  ASSERT_EQ(y.re.dtype(), x.dtype());
  EXPECT_TRUE(close_rel(y.re, rr, scale, r, tol)) << "re";
  EXPECT_TRUE(close_rel(y.im, ri, scale, r, tol)) << "im";
}

void check_irfft2(const Tensor& re, const Tensor& im, int64_t w, double scale) {
  const std::vector<double> want = ref_irfft2(re, im, w);
  const double tol = re.dtype() == DType::Float64 ? 1e-13 : 2e-6;
  const Tensor x = kernels::irfft2(re, im, w, scale);
  Shape want_shape = re.shape();
  want_shape.back() = w;
  ASSERT_EQ(x.shape(), want_shape);
  ASSERT_EQ(x.dtype(), re.dtype());
  EXPECT_TRUE(close_rel(x, want, scale, rms(want), tol));
}

}  // namespace

TEST(Fft, Rfft2MatchesDirectSumEverySmallSizePair) {
  uint64_t seed = 1;
  for (int64_t h : kSmall)
    for (int64_t w : kSmall)
      for (DType dt : {DType::Float64, DType::Float32}) {
        SCOPED_TRACE(std::to_string(h) + " x " + std::to_string(w) + " " + dtype_name(dt));
        check_rfft2(randn({2, h, w}, seed++, dt), 0.5);
      }
}

TEST(Fft, Irfft2MatchesDirectSumOnNonHermitianSpectraEverySmallSizePair) {
  // random half spectra: the DC and Nyquist columns have imaginary parts irfft2 must ignore
  uint64_t seed = 1000;
  for (int64_t h : kSmall)
    for (int64_t w : kSmall)
      for (DType dt : {DType::Float64, DType::Float32}) {
        SCOPED_TRACE(std::to_string(h) + " x " + std::to_string(w) + " " + dtype_name(dt));
        const int64_t wf = w / 2 + 1;
        check_irfft2(randn({2, h, wf}, seed, dt), randn({2, h, wf}, seed + 1, dt), w, 1.0 / 3.0);
        seed += 2;
      }
}

TEST(Fft, LargeSizesPrimesAndImageSizes) {
  // 97 (prime: one generic odd stage), 224 = 8 4 7, 225 = 3 3 5 5, against small and each other
  uint64_t seed = 2000;
  for (int64_t h : kLarge)
    for (int64_t w : {int64_t{1}, int64_t{16}, int64_t{97}, int64_t{224}, int64_t{225}}) {
      const bool big = h * w > 97 * 224;
      for (DType dt : {DType::Float64, DType::Float32}) {
        if (big && dt == DType::Float64) continue;  // the float64 reference is the slow part: float32 only
        SCOPED_TRACE(std::to_string(h) + " x " + std::to_string(w) + " " + dtype_name(dt));
        check_rfft2(randn({1, h, w}, seed++, dt), 1.0);
        check_rfft2(randn({1, w, h}, seed++, dt), 1.0);
        const int64_t wf = w / 2 + 1;
        check_irfft2(randn({1, h, wf}, seed, dt), randn({1, h, wf}, seed + 1, dt), w, 1.0 / static_cast<double>(h * w));
        seed += 2;
      }
    }
}

TEST(Fft, LargePlaneAgainstTheClosedFormOfTwoImpulses) {
  // 700 x 512: the work buffers (6 or 8 times 700 * 257 values) are past what a thread keeps
  // between calls, so both transforms take the other buffer path. x = delta(7, 3) + 2 delta(400, 301) (the
  // second in the other half of the rows: the imaginary part of the packed signals) has the spectrum
  // X[k, l] = e^{-2 pi i (7 k / H + 3 l / W)} + 2 e^{-2 pi i (400 k / H + 301 l / W)}.
  const int64_t h = 700, w = 512, wf = w / 2 + 1;
  std::vector<double> xv(static_cast<size_t>(h * w), 0.0);
  xv[7 * w + 3] = 1.0;
  xv[400 * w + 301] = 2.0;
  const Tensor x = from_vector(xv, {1, h, w}, DType::Float64);
  const kernels::RealSpectrum y = kernels::rfft2(x, 1.0);
  const std::vector<double> re = y.re.to_vector<double>(), im = y.im.to_vector<double>();
  double worst = 0;
  for (int64_t k = 0; k < h; ++k)
    for (int64_t l = 0; l < wf; ++l) {
      const double a = 2.0 * M_PI * (static_cast<double>((7 * k) % h) / h + static_cast<double>((3 * l) % w) / w);
      const double b = 2.0 * M_PI * (static_cast<double>((400 * k) % h) / h + static_cast<double>((301 * l) % w) / w);
      const size_t at = static_cast<size_t>(k * wf + l);
      worst = std::max(worst, std::abs(re[at] - (std::cos(a) + 2.0 * std::cos(b))));
      worst = std::max(worst, std::abs(im[at] + (std::sin(a) + 2.0 * std::sin(b))));
    }
  EXPECT_LT(worst, 1e-12);
  const std::vector<double> back = kernels::irfft2(y.re, y.im, w, 1.0 / static_cast<double>(h * w)).to_vector<double>();
  double worst_back = 0;
  for (size_t i = 0; i < back.size(); ++i) worst_back = std::max(worst_back, std::abs(back[i] - xv[i]));
  EXPECT_LT(worst_back, 1e-14);
}

TEST(Fft, StridedInputsBatchDimsAndSizeOneDims) {
  for (DType dt : {DType::Float64, DType::Float32}) {
    SCOPED_TRACE(dtype_name(dt));
    // a transposed view, a strided view with a gap (noncontig), and batch dims of size 1
    check_rfft2(randn({2, 3, 13, 10}, 1, dt).transpose(2, 3), 1.0);
    check_rfft2(noncontig(randn({3, 1, 7, 9}, 2, dt)), 1.0);
    check_rfft2(randn({1, 1, 1, 1}, 3, dt), 2.0);
    check_rfft2(randn({5, 1, 8}, 4, dt), 1.0);
    check_rfft2(randn({4, 9, 1}, 5, dt), 1.0);
    check_rfft2(randn({2, 2, 2, 6, 6}, 6, dt), 1.0);
    check_irfft2(noncontig(randn({2, 3, 11, 5}, 7, dt)), randn({2, 3, 11, 5}, 8, dt), 9, 1.0);
    check_irfft2(randn({2, 3, 5, 11}, 9, dt).transpose(2, 3), noncontig(randn({2, 3, 11, 5}, 10, dt)), 8, 1.0);
    check_irfft2(randn({1, 1, 1}, 11, dt), randn({1, 1, 1}, 12, dt), 1, 1.0);
    check_irfft2(randn({3, 1, 2}, 13, dt), randn({3, 1, 2}, 14, dt), 2, 1.0);
    check_irfft2(randn({6, 1}, 15, dt), randn({6, 1}, 16, dt), 1, 1.0);
  }
  // empty batch: empty results of the right shape
  const kernels::RealSpectrum y = kernels::rfft2(zeros({0, 4, 6}, DType::Float32), 1.0);
  EXPECT_EQ(y.re.shape(), (Shape{0, 4, 4}));
  EXPECT_EQ(kernels::irfft2(y.re, y.im, 7, 1.0).shape(), (Shape{0, 4, 7}));
}

TEST(Fft, OpsOnCpuMatchTheCosSinProductsOfTheEmulatedDevice) {
  // the ops' two paths: the FFT on the CPU, the products with cos/sin matrices on the emulated device
  for (const Shape& s : {Shape{2, 17, 12}, Shape{1, 3, 24, 21}, Shape{7, 1}}) {
    SCOPED_TRACE(shape_str(s));
    const Tensor x = randn(s, 20, DType::Float64);
    const Spectrum2 a = rfft2(x, FftNorm::Ortho), b = rfft2(x.to(Device::emu()), FftNorm::Ortho);
    EXPECT_TRUE(cortex::testing::allclose(a.re, b.re.to(Device::cpu()), 0.0, 1e-12));
    EXPECT_TRUE(cortex::testing::allclose(a.im, b.im.to(Device::cpu()), 0.0, 1e-12));
    const Tensor za = irfft2(a.re, a.im, s.back(), FftNorm::Ortho);
    const Tensor zb = irfft2(b.re, b.im, s.back(), FftNorm::Ortho);
    EXPECT_TRUE(cortex::testing::allclose(za, zb.to(Device::cpu()), 0.0, 1e-12));
    EXPECT_TRUE(cortex::testing::allclose(za, x, 0.0, 1e-12));
  }
}

TEST(Fft, BitIdenticalAtEveryThreadCount) {
  const int saved = omp_get_max_threads();
  for (DType dt : {DType::Float32, DType::Float64}) {
    const Tensor x = randn({2, 3, 31, 224}, 30, dt), re = randn({5, 97, 13}, 31, dt), im = randn({5, 97, 13}, 32, dt);
    const Tensor small = randn({400, 5, 6}, 33, dt);  // many small planes, grouped several to a chunk
    std::vector<std::vector<double>> ref;
    for (int nt : {1, 2, 3, 8}) {
      omp_set_num_threads(nt);
      const kernels::RealSpectrum y = kernels::rfft2(x, 1.0);
      const kernels::RealSpectrum ys = kernels::rfft2(small, 1.0);
      const std::vector<Tensor> outs = {y.re,  y.im, kernels::irfft2(re, im, 24, 0.5), kernels::irfft2(re, im, 25, 0.5),
                                        ys.re, ys.im, kernels::irfft2(ys.re, ys.im, 6, 1.0)};
      std::vector<std::vector<double>> got;
      for (const Tensor& t : outs) got.push_back(t.to(DType::Float64).to_vector<double>());
      if (nt == 1) {
        ref = got;
        continue;
      }
      for (size_t i = 0; i < got.size(); ++i)
        EXPECT_TRUE(std::memcmp(got[i].data(), ref[i].data(), got[i].size() * sizeof(double)) == 0)
            << dtype_name(dt) << " output " << i << " differs between 1 and " << nt << " threads";
    }
  }
  omp_set_num_threads(saved);
}

TEST(Fft, GradcheckAtPrimeAndMixedSizes) {
  // the VJP and JVP are the ops themselves (autograd/ops_fft.cpp): at sizes that take the odd radices
  uint64_t seed = 40;
  for (const Shape& s : {Shape{2, 7, 11}, Shape{13, 6}, Shape{9, 10}}) {
    SCOPED_TRACE(shape_str(s));
    EXPECT_GRADCHECK([](const std::vector<Tensor>& in) {
                       Spectrum2 y = rfft2(in[0], FftNorm::Ortho);
                       return std::vector<Tensor>{y.re, y.im};
                     },
                     {randn(s, seed++)});
    Shape hs = s;
    const int64_t w = s.back();
    hs.back() = w / 2 + 1;
    EXPECT_GRADCHECK([w](const std::vector<Tensor>& in) { return std::vector<Tensor>{irfft2(in[0], in[1], w)}; },
                     {randn(hs, seed), randn(hs, seed + 1)});
    seed += 2;
  }
}

TEST(Fft, BadArgumentsThrowClearErrors) {
  const Tensor x = randn({4, 6}, 1);
  expect_error([&] { kernels::rfft2(x.to(DType::Int64), 1.0); }, {"rfft2: expected x to be float32 or float64"});
  expect_error([&] { kernels::rfft2(randn({5}, 1), 1.0); }, {"rfft2: expected x of shape (..., H, W)"});
  expect_error([&] { kernels::rfft2(zeros({3, 0}, DType::Float32), 1.0); }, {"with H, W >= 1, found [3, 0]"});
  expect_error([&] { kernels::rfft2(x, std::nan("")); }, {"rfft2: expected a finite scale"});
  const Tensor re = randn({4, 4}, 2), im = randn({4, 4}, 3);
  expect_error([&] { kernels::irfft2(re, im, 0, 1.0); }, {"irfft2: expected an output width w >= 1, found w = 0"});
  expect_error([&] { kernels::irfft2(re, im, 8, 1.0); }, {"irfft2: expected re of shape (..., H, 5)"});
  expect_error([&] { kernels::irfft2(re, randn({3, 4}, 4), 6, 1.0); }, {"irfft2: expected im of the shape of re"});
  expect_error([&] { kernels::irfft2(re, im.to(DType::Float32), 6, 1.0); }, {"irfft2: expected operands of one dtype"});
  expect_error([&] { kernels::irfft2(re, im, 6, INFINITY); }, {"irfft2: expected a finite scale"});
}
