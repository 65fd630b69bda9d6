// Integrated gradients (analysis/attribution.h, docs/attribution.md).
#include "analysis/attribution.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "tensor/error.h"

namespace cortex::analysis {
namespace {

void check_image(const Tensor& t, const char* what) {
  CORTEX_CHECK(t.defined() && t.dim() == 3 && t.size(0) == 3 && t.size(1) >= 1 && t.size(2) >= 1 &&
                   (t.dtype() == DType::Float32 || t.dtype() == DType::Float64),
               "integrated_gradients: expected ", what, " as float (3, H, W), found ",
               t.defined() ? dtype_name(t.dtype()) + std::string(" ") + shape_str(t.shape()) : "an undefined tensor");
}

std::vector<double> host64(const Tensor& t) { return t.to(Device::cpu()).to(DType::Float64).contiguous().to_vector<double>(); }

bool all_finite(const std::vector<double>& v) {
  return std::all_of(v.begin(), v.end(), [](double a) { return std::isfinite(a); });
}

// A normalised 1-D Gaussian cut at 3 sigma (radius at least 1).
std::vector<double> kernel1d(double sigma) {
  const int r = std::max(1, int(std::ceil(3 * sigma)));
  std::vector<double> k(2 * r + 1);
  for (int i = -r; i <= r; ++i) k[size_t(i + r)] = std::exp(-0.5 * i * i / (sigma * sigma));
  return k;
}

// One separable pass along rows (dim = 1) or columns (dim = 0) of an (H, W) plane, renormalised
// by the kernel mass inside the image.
void blur_pass(const double* in, double* out, int64_t H, int64_t W, const std::vector<double>& k, bool along_w) {
  const int64_t r = int64_t(k.size() / 2);
  for (int64_t i = 0; i < H; ++i)
    for (int64_t j = 0; j < W; ++j) {
      double s = 0, m = 0;
      for (int64_t d = -r; d <= r; ++d) {
        const int64_t ii = along_w ? i : i + d, jj = along_w ? j + d : j;
        if (ii < 0 || ii >= H || jj < 0 || jj >= W) continue;
        const double w = k[size_t(d + r)];
        s += w * in[ii * W + jj], m += w;
      }
      out[i * W + j] = s / m;
    }
}

}  // namespace

Tensor voxel_targets(const std::vector<int64_t>& voxels, int64_t V) {
  CORTEX_CHECK(!voxels.empty(), "voxel_targets: no voxels given");
  std::vector<float> w(voxels.size() * size_t(V), 0.0f);
  for (size_t k = 0; k < voxels.size(); ++k) {
    CORTEX_CHECK(voxels[k] >= 0 && voxels[k] < V, "voxel_targets: voxel ", voxels[k], " is out of range: the model "
                 "predicts ", V, " voxels");
    w[k * size_t(V) + size_t(voxels[k])] = 1.0f;
  }
  return from_vector(w, {int64_t(voxels.size()), V});
}

Tensor mean_target(const std::vector<int64_t>& cols, int64_t V) {
  CORTEX_CHECK(!cols.empty(), "mean_target: the ROI has no voxels");
  std::vector<double> w(size_t(V), 0.0);
  for (int64_t c : cols) {
    CORTEX_CHECK(c >= 0 && c < V, "mean_target: column ", c, " is out of range: the model predicts ", V, " voxels");
    w[size_t(c)] += 1.0 / double(cols.size());
  }
  return from_vector(w, {1, V}, DType::Float64).to(DType::Float32);
}

IGResult integrated_gradients(const ImageFn& f, const Tensor& x_in, const Tensor& b_in, const Tensor& targets,
                              const IGOptions& opt) {
  check_image(x_in, "the image");
  check_image(b_in, "the baseline");
  CORTEX_CHECK(b_in.shape() == x_in.shape(), "integrated_gradients: the baseline ", shape_str(b_in.shape()),
               " differs from the image ", shape_str(x_in.shape()));
  CORTEX_CHECK(opt.steps >= 1, "integrated_gradients: steps must be >= 1, found ", opt.steps);
  CORTEX_CHECK(opt.batch >= 1, "integrated_gradients: batch must be >= 1, found ", opt.batch);
  CORTEX_CHECK(targets.defined() && targets.dim() == 2 && targets.size(0) >= 1,
               "integrated_gradients: expected targets (K >= 1, V), found ",
               targets.defined() ? shape_str(targets.shape()) : "an undefined tensor");
  const Tensor x = x_in.to(Device::cpu()).to(DType::Float32).contiguous();
  const Tensor b = b_in.to(Device::cpu()).to(DType::Float32).contiguous();
  CORTEX_CHECK(all_finite(host64(x)) && all_finite(host64(b)), "integrated_gradients: the image or the baseline has "
               "non-finite values");
  const int64_t K = targets.size(0), m = opt.steps, P = m + 1;
  const Tensor T = targets.to(DType::Float32).contiguous();
  const Tensor diff = sub(x, b);

  std::vector<Tensor> acc(static_cast<size_t>(K));  // float64 (3, H, W): sum_k w_k g(a_k) per target
  std::vector<double> f0(static_cast<size_t>(K)), f1(static_cast<size_t>(K));
  for (int64_t lo = 0; lo < P; lo += opt.batch) {
    const int64_t n = std::min(opt.batch, P - lo);
    std::vector<float> alpha(static_cast<size_t>(n)), wt(static_cast<size_t>(n));
    for (int64_t j = 0; j < n; ++j) {
      const int64_t k = lo + j;
      alpha[size_t(j)] = float(double(k) / double(m));
      wt[size_t(j)] = float((k == 0 || k == m ? 0.5 : 1.0) / double(m));
    }
    Tensor pts;
    {
      NoGradGuard ng;
      pts = add(b.reshape({1, 3, x.size(1), x.size(2)}),
                mul(from_vector(alpha, {n, 1, 1, 1}), diff.reshape({1, 3, x.size(1), x.size(2)})))
                .contiguous();
    }
    pts = with_grad(pts);
    const Tensor y = f(pts);
    CORTEX_CHECK(y.defined() && y.dim() == 2 && y.size(0) == n && y.size(1) == T.size(1),
                 "integrated_gradients: the model gave ", y.defined() ? shape_str(y.shape()) : "nothing", " for ", n,
                 " images; the targets weigh ", T.size(1), " outputs");
    const Tensor yt = [&] {
      NoGradGuard ng;
      return matmul(detach(y), T.t()).to(DType::Float64).contiguous();  // (n, K)
    }();
    const std::vector<double> ytv = yt.to_vector<double>();
    if (lo == 0)
      for (int64_t k = 0; k < K; ++k) f0[size_t(k)] = ytv[size_t(k)];
    if (lo + n == P)
      for (int64_t k = 0; k < K; ++k) f1[size_t(k)] = ytv[size_t((n - 1) * K + k)];
    const Tensor w = from_vector(wt, {n, 1});
    for (int64_t k = 0; k < K; ++k) {
      // Cotangent (n, V): the target's weights times each point's trapezoid weight.
      const Tensor cot = mul(w, T.narrow(0, k, 1)).contiguous();
      const Tensor g = grad({y}, {pts}, {cot}, false, /*retain_graph=*/k + 1 < K)[0];
      NoGradGuard ng;
      const Tensor s = sum(g.to(DType::Float64), {0});
      acc[size_t(k)] = acc[size_t(k)].defined() ? add(acc[size_t(k)], s) : s;
    }
  }

  IGResult r;
  std::vector<Tensor> maps;
  NoGradGuard ng;
  for (int64_t k = 0; k < K; ++k) {
    const Tensor a = mul(diff.to(DType::Float64), acc[size_t(k)]).contiguous();
    const double tot = sum(a).item();
    const double df = f1[size_t(k)] - f0[size_t(k)], err = std::fabs(tot - df);
    r.f_x.push_back(f1[size_t(k)]), r.f_base.push_back(f0[size_t(k)]), r.total.push_back(tot);
    r.abs_error.push_back(err);
    r.rel_error.push_back(df != 0 ? err / std::fabs(df) : (err == 0 ? 0.0 : std::numeric_limits<double>::infinity()));
    maps.push_back(a.to(DType::Float32));
  }
  r.attr = stack(maps, 0).contiguous();
  return r;
}

Baseline parse_baseline(const std::string& s) {
  if (s == "black") return Baseline::Black;
  if (s == "mean") return Baseline::Mean;
  if (s == "blur") return Baseline::Blur;
  throw Error("attribute: --baseline must be black, mean or blur, found '" + s + "'");
}

const char* baseline_name(Baseline b) {
  return b == Baseline::Black ? "black" : b == Baseline::Mean ? "mean" : "blur";
}

double blur_baseline_sigma(int64_t S) { return std::max(1.0, double(S) / 8.0); }

Tensor make_baseline(Baseline b, const Tensor& x, const Tensor& mean_image, double blur_sigma) {
  check_image(x, "the image");
  if (b == Baseline::Black) return zeros(x.shape());
  if (b == Baseline::Mean) {
    check_image(mean_image, "the mean image");
    CORTEX_CHECK(mean_image.shape() == x.shape(), "make_baseline: the mean image ", shape_str(mean_image.shape()),
                 " differs from the image ", shape_str(x.shape()));
    return mean_image.to(DType::Float32).contiguous();
  }
  CORTEX_CHECK(blur_sigma > 0 && std::isfinite(blur_sigma), "make_baseline: the blur sigma must be > 0, found ",
               blur_sigma);
  return gaussian_blur(x, blur_sigma);
}

Tensor gaussian_blur(const Tensor& maps, double sigma) {
  CORTEX_CHECK(maps.defined() && maps.dim() == 3 && maps.numel() > 0, "gaussian_blur: expected maps (C, H, W), found ",
               maps.defined() ? shape_str(maps.shape()) : "an undefined tensor");
  CORTEX_CHECK(sigma >= 0 && std::isfinite(sigma), "gaussian_blur: sigma must be >= 0, found ", sigma);
  if (sigma == 0) return maps.to(Device::cpu()).to(DType::Float32).contiguous().clone();
  const int64_t C = maps.size(0), H = maps.size(1), W = maps.size(2);
  std::vector<double> v = host64(maps), tmp(static_cast<size_t>(H * W)), out(v.size());
  const std::vector<double> k = kernel1d(sigma);
  for (int64_t c = 0; c < C; ++c) {
    blur_pass(v.data() + c * H * W, tmp.data(), H, W, k, true);
    blur_pass(tmp.data(), out.data() + c * H * W, H, W, k, false);
  }
  return from_vector(out, {C, H, W}, DType::Float64).to(DType::Float32);
}

Tensor postprocess(const Tensor& attr, bool channel_mean, double blur_sigma) {
  CORTEX_CHECK(attr.defined() && attr.dim() == 3, "postprocess: expected attributions (C, H, W), found ",
               attr.defined() ? shape_str(attr.shape()) : "an undefined tensor");
  NoGradGuard ng;
  Tensor a = attr.to(Device::cpu()).to(DType::Float32);
  if (channel_mean) a = mean(a, {0}, true);
  return gaussian_blur(a.contiguous(), blur_sigma);
}

namespace {
Tensor plane(const Tensor& map) {
  CORTEX_CHECK(map.defined() && (map.dim() == 2 || map.dim() == 3) && map.numel() > 0,
               "attribution_peak: expected a map (H, W) or (C, H, W), found ",
               map.defined() ? shape_str(map.shape()) : "an undefined tensor");
  NoGradGuard ng;
  const Tensor m = map.to(Device::cpu()).to(DType::Float64);
  return (map.dim() == 3 ? sum(m, {0}) : m).contiguous();
}
}  // namespace

std::array<double, 2> attribution_peak(const Tensor& map, double smooth) {
  const Tensor p = plane(map);
  const int64_t H = p.size(0), W = p.size(1);
  const std::vector<double> a = host64(gaussian_blur(abs(p).reshape({1, H, W}), smooth));
  const size_t i = size_t(std::max_element(a.begin(), a.end()) - a.begin());
  return {double(int64_t(i) % W), double(int64_t(i) / W)};
}

std::array<double, 2> attribution_centre_of_mass(const Tensor& map) {
  const Tensor p = plane(map);
  const int64_t H = p.size(0), W = p.size(1);
  const std::vector<double> a = host64(p);
  double s = 0, sx = 0, sy = 0;
  for (int64_t i = 0; i < H; ++i)
    for (int64_t j = 0; j < W; ++j) {
      const double w = a[size_t(i * W + j)] * a[size_t(i * W + j)];
      s += w, sx += w * double(j), sy += w * double(i);
    }
  if (s == 0) return {double(W - 1) / 2, double(H - 1) / 2};
  return {sx / s, sy / s};
}

Tensor overlay(const Tensor& pixels, const Tensor& map, int64_t scale) {
  check_image(pixels, "the image");
  CORTEX_CHECK(map.defined() && map.dim() == 2 && map.size(0) == pixels.size(1) && map.size(1) == pixels.size(2),
               "overlay: expected a map (", pixels.size(1), ", ", pixels.size(2), "), found ",
               map.defined() ? shape_str(map.shape()) : "an undefined tensor");
  CORTEX_CHECK(scale >= 1 && scale <= 64, "overlay: scale must be in [1, 64], found ", scale);
  const int64_t H = map.size(0), W = map.size(1);
  const std::vector<double> px = host64(pixels), a = host64(map);
  double amax = 0;
  for (double v : a)
    if (std::isfinite(v)) amax = std::max(amax, std::fabs(v));
  std::vector<uint8_t> out(size_t(H * scale * W * scale * 3));
  for (int64_t i = 0; i < H * scale; ++i)
    for (int64_t j = 0; j < W * scale; ++j) {
      const int64_t si = i / scale, sj = j / scale, q = si * W + sj;
      const double grey = (px[size_t(q)] + px[size_t(H * W + q)] + px[size_t(2 * H * W + q)]) / 3;
      const double v = std::isfinite(a[size_t(q)]) && amax > 0 ? a[size_t(q)] / amax : 0.0;
      const double alpha = std::min(1.0, std::fabs(v));
      const double col[3] = {v > 0 ? 1.0 : 0.0, 0.0, v > 0 ? 0.0 : 1.0};
      for (int c = 0; c < 3; ++c) {
        const double o = (1 - alpha) * 0.6 * grey + alpha * col[c];  // the image dimmed, so colour stands out
        out[size_t((i * W * scale + j) * 3 + c)] = uint8_t(std::lround(std::clamp(o, 0.0, 1.0) * 255));
      }
    }
  return from_vector(out, {H * scale, W * scale, 3}, DType::UInt8);
}

}  // namespace cortex::analysis
