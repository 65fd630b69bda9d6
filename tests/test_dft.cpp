// rfft2 / irfft2 / fft_frequencies / fft_scale (autograd/ops_fft.cpp): values against numpy.fft
// fixtures (tests/data/dft/make_dft_fixtures.py: odd and even H and W, size 1, batch dims, the three
// norms, and irfft2 of half spectra that are not the spectrum of a real image, where numpy ignores
// the imaginary parts of the DC and Nyquist columns) and against a direct float64 sum at larger odd
// sizes, the round trip (up to 3 x 224 x 224), the derivatives against
// central finite differences (VJP, JVP, the transpose identity, batched, second order), the VJP of
// irfft2 against its closed form c * rfft2(g) / (H W) (docs/autodiff.md 4.13), and bad inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "tensor/io/npy.h"
#include "tests/test_util.h"

using namespace cortex;
using cortex::testing::allclose;
using cortex::testing::expect_error;
using cortex::testing::noncontig;
using cortex::testing::randn;

namespace {

const std::map<std::string, Tensor>& fixtures() {
  static const std::map<std::string, Tensor> f = io::read_npz(std::string(CORTEX_TEST_DATA) + "/dft/dft.npz");
  return f;
}
const Tensor& fx(const std::string& key) {
  auto it = fixtures().find(key);
  if (it == fixtures().end()) throw Error("test_dft: fixture " + key + " missing from tests/data/dft/dft.npz");
  return it->second;
}

constexpr int kCases = 12;  // CASES in make_dft_fixtures.py
// "c<i>_" (built by appending: GCC 12 warns falsely (-Wrestrict) on "c" + std::to_string(i)).
std::string case_prefix(int i) {
  std::string c = "c";
  c += std::to_string(i);
  c += "_";
  return c;
}  // CASES in make_dft_fixtures.py
const std::vector<std::pair<FftNorm, std::string>> kNorms = {
    {FftNorm::Backward, "backward"}, {FftNorm::Ortho, "ortho"}, {FftNorm::Forward, "forward"}};

double max_abs(const Tensor& t) { return t.numel() ? amax(abs(t.to(DType::Float64))).item() : 0.0; }

// |a - b| <= tol * max(1, max |b|) everywhere.
::testing::AssertionResult close_scaled(const Tensor& a, const Tensor& b, double tol) {
  return allclose(a, b, 0.0, tol * std::max(1.0, max_abs(b)));
}

}  // namespace

TEST(Dft, Rfft2MatchesNumpyFloat64AllNorms) {
  for (int i = 0; i < kCases; ++i) {
    const std::string c = case_prefix(i);
    const Tensor& x = fx(c + "x");
    for (const auto& [norm, name] : kNorms) {
      SCOPED_TRACE(c + name + " shape " + shape_str(x.shape()));
      Spectrum2 y = rfft2(x, norm);
      EXPECT_TRUE(close_scaled(y.re, fx(c + "re_" + name), 1e-13));
      EXPECT_TRUE(close_scaled(y.im, fx(c + "im_" + name), 1e-13));
    }
  }
}

TEST(Dft, Irfft2MatchesNumpyOnNonHermitianSpectra) {
  // zre, zim are random: the imaginary parts of the DC and Nyquist columns are not zero, and the
  // DC column is not Hermitian along H. numpy ignores exactly what irfft2 must ignore.
  for (int i = 0; i < kCases; ++i) {
    const std::string c = case_prefix(i);
    const Tensor& want0 = fx(c + "xz_backward");
    const int64_t w = want0.size(-1);
    for (const auto& [norm, name] : kNorms) {
      SCOPED_TRACE(c + name + " shape " + shape_str(want0.shape()));
      EXPECT_TRUE(close_scaled(irfft2(fx(c + "zre"), fx(c + "zim"), w, norm), fx(c + "xz_" + name), 1e-13));
    }
  }
}

TEST(Dft, Float32MatchesNumpyAndStridedInputs) {
  for (int i = 0; i < kCases; ++i) {
    const std::string c = case_prefix(i);
    SCOPED_TRACE(c);
    const Tensor x = noncontig(fx(c + "x").to(DType::Float32));
    Spectrum2 y = rfft2(x);
    EXPECT_EQ(y.re.dtype(), DType::Float32);
    EXPECT_TRUE(close_scaled(y.re, fx(c + "re_backward"), 2e-6));
    EXPECT_TRUE(close_scaled(y.im, fx(c + "im_backward"), 2e-6));
    const Tensor& want = fx(c + "xz_ortho");
    const Tensor z = irfft2(noncontig(fx(c + "zre").to(DType::Float32)), fx(c + "zim").to(DType::Float32),
                            want.size(-1), FftNorm::Ortho);
    EXPECT_EQ(z.dtype(), DType::Float32);
    EXPECT_TRUE(close_scaled(z, want, 2e-6));
  }
}

TEST(Dft, RoundTripAllNormsOddEvenAndSizeOne) {
  const std::vector<Shape> shapes = {{1, 1}, {1, 7}, {6, 1}, {2, 2}, {7, 10}, {9, 5}, {2, 3, 8, 8}, {4, 1, 3, 4}};
  uint64_t seed = 10;
  for (const Shape& s : shapes)
    for (DType dt : {DType::Float64, DType::Float32})
      for (const auto& [norm, name] : kNorms) {
        SCOPED_TRACE(shape_str(s) + " " + name + " " + dtype_name(dt));
        const Tensor x = randn(s, seed++, dt);
        Spectrum2 y = rfft2(x, norm);
        const Tensor back = irfft2(y.re, y.im, s.back(), norm);
        EXPECT_EQ(back.shape(), s);
        EXPECT_TRUE(close_scaled(back, x, dt == DType::Float64 ? 1e-13 : 2e-6));
      }
}

TEST(Dft, EmptyBatchGivesEmptyResults) {
  Spectrum2 y = rfft2(zeros({0, 3, 5}, DType::Float64));
  EXPECT_EQ(y.re.shape(), (Shape{0, 3, 3}));
  EXPECT_EQ(y.im.shape(), (Shape{0, 3, 3}));
  EXPECT_EQ(irfft2(y.re, y.im, 5).shape(), (Shape{0, 3, 5}));
  EXPECT_EQ(irfft2(y.re, y.im, 4).shape(), (Shape{0, 3, 4}));  // 4/2 + 1 = 3 columns too
}

TEST(Dft, GradcheckRfft2AllNormsWithSecondOrder) {
  GradcheckOptions o;
  o.check_second_order = true;
  const std::vector<Shape> shapes = {{1, 1}, {3, 4}, {5, 5}, {4, 1}, {2, 3, 6}};
  uint64_t seed = 100;
  for (const Shape& s : shapes)
    for (const auto& [norm, name] : kNorms) {
      SCOPED_TRACE(shape_str(s) + " " + name);
      const FftNorm n = norm;
      EXPECT_GRADCHECK([n](const std::vector<Tensor>& in) {
                         Spectrum2 y = rfft2(in[0], n);
                         return std::vector<Tensor>{y.re, y.im};
                       },
                       {randn(s, seed++)}, o);
    }
}

TEST(Dft, GradcheckIrfft2BothInputsOddAndEvenWidth) {
  GradcheckOptions o;
  o.check_second_order = true;
  // (H, w): odd and even w (with and without a Nyquist column), w = 1 and 2, H = 1.
  const std::vector<std::pair<Shape, int64_t>> cases = {{{3, 3}, 4}, {{4, 3}, 5}, {{1, 2}, 2}, {{3, 1}, 1},
                                                        {{2, 2, 4}, 6}, {{5, 4}, 7}};
  uint64_t seed = 200;
  for (const auto& [s, w] : cases)
    for (const auto& [norm, name] : kNorms) {
      SCOPED_TRACE(shape_str(s) + " w " + std::to_string(w) + " " + name);
      const FftNorm n = norm;
      const int64_t ww = w;
      EXPECT_GRADCHECK([n, ww](const std::vector<Tensor>& in) { return std::vector<Tensor>{irfft2(in[0], in[1], ww, n)}; },
                       {randn(s, seed), randn(s, seed + 1)}, o);
      seed += 2;
    }
}

TEST(Dft, GradcheckIrfft2WithOneConstantInput) {
  // Only re (or only im) is an input: the other's tangent is undefined (taken as zero) and its
  // gradient is not computed.
  const Tensor re = randn({4, 4}, 250), im = randn({4, 4}, 251);
  GradcheckOptions o;
  o.check_second_order = true;
  EXPECT_GRADCHECK([im](const std::vector<Tensor>& in) { return std::vector<Tensor>{irfft2(in[0], im, 7)}; }, {re}, o);
  EXPECT_GRADCHECK([re](const std::vector<Tensor>& in) { return std::vector<Tensor>{irfft2(re, in[0], 6)}; }, {im}, o);
}

TEST(Dft, MatchesNaiveFloat64SumAtLargerOddSizes) {
  // X[k, l] = sum_{h, w} x[h, w] exp(-2 pi i (k h / H + l w / W)), summed directly, at sizes past
  // the fixtures' (the matmul's rounding grows with H and W).
  for (const auto& [h, w] : std::vector<std::pair<int64_t, int64_t>>{{45, 37}, {33, 64}}) {
    SCOPED_TRACE(std::to_string(h) + "x" + std::to_string(w));
    const Tensor x = randn({h, w}, 900 + h);
    const std::vector<double> xv = x.to_vector<double>();
    const int64_t wf = w / 2 + 1;
    std::vector<double> re(static_cast<size_t>(h * wf)), im(re.size());
    for (int64_t k = 0; k < h; ++k)
      for (int64_t l = 0; l < wf; ++l) {
        double sr = 0, si = 0;
        for (int64_t a = 0; a < h; ++a)
          for (int64_t b = 0; b < w; ++b) {
            const double ang = 2 * M_PI * (static_cast<double>((k * a) % h) / h + static_cast<double>((l * b) % w) / w);
            sr += xv[static_cast<size_t>(a * w + b)] * std::cos(ang);
            si -= xv[static_cast<size_t>(a * w + b)] * std::sin(ang);
          }
        re[static_cast<size_t>(k * wf + l)] = sr;
        im[static_cast<size_t>(k * wf + l)] = si;
      }
    Spectrum2 y = rfft2(x);
    EXPECT_TRUE(close_scaled(y.re, from_vector(re, {h, wf}), 1e-13));
    EXPECT_TRUE(close_scaled(y.im, from_vector(im, {h, wf}), 1e-13));
    Spectrum2 y32 = rfft2(x.to(DType::Float32));
    EXPECT_TRUE(close_scaled(y32.re, from_vector(re, {h, wf}), 1e-5));
    EXPECT_TRUE(close_scaled(irfft2(y32.re, y32.im, w), x, 1e-5));
  }
}

TEST(Dft, RoundTripAtImageSizeFloat32) {
  const Tensor x = randn({3, 224, 224}, 950, DType::Float32);
  Spectrum2 y = rfft2(x, FftNorm::Ortho);
  EXPECT_TRUE(close_scaled(irfft2(y.re, y.im, 224, FftNorm::Ortho), x, 5e-6));
}

TEST(Dft, GradcheckFrequencySpaceImageParameterisation) {
  // The use it is built for: an image from a scaled spectrum, then a nonlinear loss.
  const int64_t h = 5, w = 6;
  const Tensor scale = fft_scale(h, w, DType::Float64);
  GradcheckOptions o;
  o.check_second_order = true;
  EXPECT_GRADCHECK([&](const std::vector<Tensor>& in) {
                     const Tensor img = irfft2(mul(in[0], scale), mul(in[1], scale), w, FftNorm::Ortho);
                     return std::vector<Tensor>{sum(square(sigmoid(img)))};
                   },
                   {randn({2, h, w / 2 + 1}, 300), randn({2, h, w / 2 + 1}, 301)}, o);
}

TEST(Dft, Irfft2VjpIsWeightedRfft2NotPlainRfft2) {
  // The closed form of docs/autodiff.md 4.13: (gre, gim) = c * rfft2(g) / (H W), c = 1 at DC and
  // the Nyquist column, 2 elsewhere; checked column by column against plain rfft2(g) / (H W).
  for (int64_t w : {6, 7}) {
    const int64_t h = 5, wf = w / 2 + 1;
    Tensor re = with_grad(randn({h, wf}, 400 + w)), im = with_grad(randn({h, wf}, 500 + w));
    const Tensor g = randn({h, w}, 600 + w);
    std::vector<Tensor> gr = grad({irfft2(re, im, w)}, {re, im}, {g});
    Spectrum2 sp = rfft2(g);
    const double n = static_cast<double>(h * w);
    for (int64_t l = 0; l < wf; ++l) {
      const double c = (l == 0 || (w % 2 == 0 && l == w / 2)) ? 1.0 : 2.0;
      SCOPED_TRACE("w " + std::to_string(w) + " column " + std::to_string(l) + " c " + std::to_string(c));
      EXPECT_TRUE(close_scaled(gr[0].select(1, l), mul(sp.re.select(1, l), c / n), 1e-14));
      EXPECT_TRUE(close_scaled(gr[1].select(1, l), mul(sp.im.select(1, l), c / n), 1e-14));
    }
  }
}

TEST(Dft, TransposeIdentityExplicit) {
  // <irfft2(re, im), g> == <re, gre> + <im, gim> and <rfft2(x), (vr, vi)> == <x, gx>, float64.
  for (const auto& [norm, name] : kNorms) {
    SCOPED_TRACE(name);
    const int64_t h = 7, w = 8, wf = 5;
    Tensor re = with_grad(randn({2, h, wf}, 700)), im = with_grad(randn({2, h, wf}, 701));
    const Tensor g = randn({2, h, w}, 702);
    std::vector<Tensor> gr = grad({irfft2(re, im, w, norm)}, {re, im}, {g});
    const double lhs = sum(mul(irfft2(detach(re), detach(im), w, norm), g)).item();
    const double rhs = sum(mul(detach(re), gr[0])).item() + sum(mul(detach(im), gr[1])).item();
    EXPECT_NEAR(lhs, rhs, 1e-11 * std::max(1.0, std::abs(lhs)));

    Tensor x = with_grad(randn({h, 9}, 703));
    const Tensor vr = randn({h, 5}, 704), vi = randn({h, 5}, 705);
    Spectrum2 y = rfft2(x, norm);
    const Tensor gx = grad({y.re, y.im}, {x}, {vr, vi})[0];
    const double l2 = sum(mul(detach(y.re), vr)).item() + sum(mul(detach(y.im), vi)).item();
    EXPECT_NEAR(l2, sum(mul(detach(x), gx)).item(), 1e-11 * std::max(1.0, std::abs(l2)));
  }
}

TEST(Dft, FrequenciesAndScaleMatchNumpy) {
  for (const auto& [h, w] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {4, 6}, {5, 7}, {8, 8}, {3, 10}}) {
    SCOPED_TRACE(std::to_string(h) + "x" + std::to_string(w));
    const Tensor& want = fx("fx_" + std::to_string(h) + "x" + std::to_string(w));
    EXPECT_TRUE(allclose(fft_frequencies(h, w, DType::Float64), want, 0, 1e-15));
    EXPECT_TRUE(allclose(fft_frequencies(h, w), want, 1e-7, 1e-8));  // float32 by default
    // scale = 1 / max(|f|, 1 / max(H, W)): max(H, W) at DC, 1/|f| elsewhere (|f| >= 1/max(H, W)
    // off DC, so the floor acts only there).
    const std::vector<double> f = want.to_vector<double>(), sc = fft_scale(h, w, DType::Float64).to_vector<double>();
    ASSERT_EQ(f.size(), sc.size());
    EXPECT_DOUBLE_EQ(sc[0], static_cast<double>(std::max(h, w)));
    for (size_t i = 1; i < f.size(); ++i) EXPECT_NEAR(sc[i], 1.0 / f[i], 1e-12 * sc[i]) << "at " << i;
  }
}

TEST(Dft, BadInputsThrowClearErrors) {
  const Tensor x = randn({4, 6}, 800);
  expect_error([&] { rfft2(randn({6}, 1)); }, {"rfft2", "(..., H, W)", "[6]"});
  expect_error([&] { rfft2(zeros({3, 0}, DType::Float64)); }, {"rfft2", "H, W >= 1", "[3, 0]"});
  expect_error([&] { rfft2(zeros({0, 3}, DType::Float64)); }, {"rfft2", "H, W >= 1"});
  expect_error([&] { rfft2(zeros({3, 4}, DType::Int64)); }, {"rfft2", "float32 or float64", "int64"});
  expect_error([&] { rfft2(Tensor()); }, {"rfft2", "undefined"});
  Spectrum2 y = rfft2(x);  // (4, 4)
  expect_error([&] { irfft2(y.re, y.im, 5); }, {"irfft2", "(..., H, 3)", "w = 5", "[4, 4]"});
  expect_error([&] { irfft2(y.re, y.im, 0); }, {"irfft2", "w >= 1", "w = 0"});
  expect_error([&] { irfft2(y.re, y.im.slice(0, 0, 3), 6); }, {"irfft2", "im of the shape of re", "[3, 4]"});
  expect_error([&] { irfft2(y.re, y.im.to(DType::Float32), 6); }, {"irfft2", "one dtype", "float64", "float32"});
  expect_error([&] { irfft2(y.re.select(0, 0), y.im.select(0, 0), 6); }, {"irfft2", "(..., H, 4)"});
  expect_error([&] { irfft2(y.re.to(DType::Int32), y.im, 6); }, {"irfft2", "float32 or float64", "int32"});
  expect_error([&] { fft_frequencies(0, 3); }, {"fft_frequencies", "H, W >= 1", "H = 0"});
  expect_error([&] { fft_frequencies(3, 3, DType::Int64); }, {"fft_frequencies", "float32 or float64"});
  expect_error([&] { fft_scale(2, -1); }, {"fft_scale", "W = -1"});
}
