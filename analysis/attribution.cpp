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

namespace {

// Gauss-Legendre nodes and weights on [0, 1] (n points): Newton's method on P_n from the
// Chebyshev guesses, in float64 (Golub-Welsch gives the same to rounding; n <= a few thousand here).
void gauss_legendre(int64_t n, std::vector<double>& a, std::vector<double>& w) {
  a.assign(size_t(n), 0), w.assign(size_t(n), 0);
  for (int64_t i = 0; i < n; ++i) {
    double t = std::cos(M_PI * (double(i) + 0.75) / (double(n) + 0.5)), dp = 1;
    for (int it = 0; it < 100; ++it) {
      double p0 = 1, p1 = t;  // P_0, P_1, then the recurrence up to P_n
      for (int64_t k = 2; k <= n; ++k) {
        const double p2 = ((2 * double(k) - 1) * t * p1 - (double(k) - 1) * p0) / double(k);
        p0 = p1, p1 = p2;
      }
      if (n == 1) p0 = 1, p1 = t;
      dp = double(n) * (t * p1 - p0) / (t * t - 1);
      const double dt = p1 / dp;
      t -= dt;
      if (std::fabs(dt) < 1e-15) break;
    }
    // Nodes from the right end down; stored in increasing alpha.
    a[size_t(n - 1 - i)] = (1 + t) / 2;
    w[size_t(n - 1 - i)] = 1 / ((1 - t * t) * dp * dp);  // 2 / ((1 - t^2) P_n'(t)^2), halved for [0, 1]
  }
}

}  // namespace

Quadrature parse_quadrature(const std::string& s) {
  if (s == "trapezoid") return Quadrature::Trapezoid;
  if (s == "adaptive") return Quadrature::Adaptive;
  if (s == "gausslegendre") return Quadrature::GaussLegendre;
  throw Error("integrated_gradients: the quadrature must be trapezoid, adaptive or gausslegendre, found '" + s + "'");
}

const char* quadrature_name(Quadrature q) {
  return q == Quadrature::Trapezoid ? "trapezoid" : q == Quadrature::Adaptive ? "adaptive" : "gausslegendre";
}

IGResult integrated_gradients(const ImageFn& f, const Tensor& x_in, const Tensor& b_in, const Tensor& targets,
                              const IGOptions& opt) {
  check_image(x_in, "the image");
  check_image(b_in, "the baseline");
  CORTEX_CHECK(b_in.shape() == x_in.shape(), "integrated_gradients: the baseline ", shape_str(b_in.shape()),
               " differs from the image ", shape_str(x_in.shape()));
  CORTEX_CHECK(opt.steps >= 1, "integrated_gradients: steps must be >= 1, found ", opt.steps);
  CORTEX_CHECK(opt.batch >= 1, "integrated_gradients: batch must be >= 1, found ", opt.batch);
  CORTEX_CHECK(opt.rounds >= 1, "integrated_gradients: rounds must be >= 1, found ", opt.rounds);
  CORTEX_CHECK(opt.initial >= 0, "integrated_gradients: initial must be >= 0, found ", opt.initial);
  CORTEX_CHECK(opt.tol >= 0 && std::isfinite(opt.tol), "integrated_gradients: tol must be >= 0, found ", opt.tol);
  CORTEX_CHECK(opt.max_steps == 0 || opt.max_steps >= opt.steps, "integrated_gradients: max_steps must be 0 or >= "
               "steps (", opt.steps, "), found ", opt.max_steps);
  CORTEX_CHECK(opt.tol_floor.empty() || int64_t(opt.tol_floor.size()) == targets.size(0),
               "integrated_gradients: expected tol_floor empty or one per target (", targets.size(0), "), found ",
               opt.tol_floor.size());
  for (double v : opt.tol_floor)
    CORTEX_CHECK(v >= 0 && std::isfinite(v), "integrated_gradients: tol_floor must be >= 0 and finite, found ", v);
  CORTEX_CHECK(targets.defined() && targets.dim() == 2 && targets.size(0) >= 1,
               "integrated_gradients: expected targets (K >= 1, V), found ",
               targets.defined() ? shape_str(targets.shape()) : "an undefined tensor");
  const Tensor x = x_in.to(Device::cpu()).to(DType::Float32).contiguous();
  const Tensor b = b_in.to(Device::cpu()).to(DType::Float32).contiguous();
  CORTEX_CHECK(all_finite(host64(x)) && all_finite(host64(b)), "integrated_gradients: the image or the baseline has "
               "non-finite values");
  const Tensor T = targets.to(Device::cpu()).to(DType::Float32).contiguous();
  const int64_t K = T.size(0), H = x.size(1), W = x.size(2), P = opt.steps + 1;
  const Tensor diff = sub(x, b);
  const Tensor diff64 = diff.to(DType::Float64);

  // The path points a through f, `batch` at a time. With weights wt (one per point) each target's
  // backward pass carries wt * t as the cotangent and its gradients are summed into acc (nothing
  // per point is kept); without, each point's gradient map is kept (grads[k]: float32 (n, 3, H, W))
  // with s[p * Kt + k] = g_k(a_p) . (x - b), the integrand. F[p * Kt + k] = t_k . f(b + a_p (x - b)).
  struct Eval {
    std::vector<double> F, s;
    std::vector<std::vector<Tensor>> grads;  // per target, per batch
  };
  auto evaluate = [&](const std::vector<double>& a, const std::vector<double>* wt, const Tensor& Tk,
                      std::vector<Tensor>& acc) {
    const int64_t Kt = Tk.size(0), n_all = int64_t(a.size());
    Eval e;
    e.grads.resize(size_t(Kt));
    for (int64_t lo = 0; lo < n_all; lo += opt.batch) {
      const int64_t n = std::min(opt.batch, n_all - lo);
      std::vector<float> alpha(static_cast<size_t>(n));
      for (int64_t j = 0; j < n; ++j) alpha[size_t(j)] = float(a[size_t(lo + j)]);
      Tensor pts;
      {
        NoGradGuard ng;
        pts = add(b.reshape({1, 3, H, W}), mul(from_vector(alpha, {n, 1, 1, 1}), diff.reshape({1, 3, H, W})))
                  .contiguous();
      }
      pts = with_grad(pts);
      const Tensor y = f(pts);
      CORTEX_CHECK(y.defined() && y.dim() == 2 && y.size(0) == n && y.size(1) == Tk.size(1),
                   "integrated_gradients: the model gave ", y.defined() ? shape_str(y.shape()) : "nothing", " for ", n,
                   " images; the targets weigh ", Tk.size(1), " outputs");
      {
        NoGradGuard ng;
        const std::vector<double> ytv = matmul(detach(y), Tk.t()).to(DType::Float64).contiguous().to_vector<double>();
        e.F.insert(e.F.end(), ytv.begin(), ytv.end());  // (n, Kt)
      }
      std::vector<float> wv(static_cast<size_t>(n), 1.0f);
      if (wt)
        for (int64_t j = 0; j < n; ++j) wv[size_t(j)] = float((*wt)[size_t(lo + j)]);
      const Tensor w = from_vector(wv, {n, 1});
      std::vector<double> sb(static_cast<size_t>(n * Kt));
      for (int64_t k = 0; k < Kt; ++k) {
        const Tensor cot = mul(w, Tk.narrow(0, k, 1)).contiguous();
        const Tensor g = grad({y}, {pts}, {cot}, false, /*retain_graph=*/k + 1 < Kt)[0];
        NoGradGuard ng;
        if (wt) {
          const Tensor sg = sum(g.to(DType::Float64), {0});
          acc[size_t(k)] = acc[size_t(k)].defined() ? add(acc[size_t(k)], sg) : sg;
        } else {
          const Tensor gc = g.contiguous();
          const std::vector<double> sk =
              sum(mul(gc.to(DType::Float64), diff64.reshape({1, 3, H, W})), {1, 2, 3}).to_vector<double>();
          for (int64_t j = 0; j < n; ++j) sb[size_t(j * Kt + k)] = sk[size_t(j)];
          e.grads[size_t(k)].push_back(gc);
        }
      }
      if (!wt) e.s.insert(e.s.end(), sb.begin(), sb.end());
    }
    return e;
  };

  // Adaptive: one target at a time, each with its own grid (and its gradient maps kept until the
  // grid is final: 4 (steps + 1) 3 H W bytes). The fixed rules: all targets share the forward passes.
  const int64_t group = opt.rule == Quadrature::Adaptive ? 1 : K;
  IGResult r;
  r.rule = opt.rule;
  std::vector<Tensor> maps;
  for (int64_t k0 = 0; k0 < K; k0 += group) {
    const int64_t Kt = std::min(group, K - k0);
    const Tensor Tk = T.narrow(0, k0, Kt).contiguous();
    std::vector<Tensor> acc(static_cast<size_t>(Kt));  // float64 (3, H, W): sum_p w_p g(a_p) per target
    std::vector<double> f0(static_cast<size_t>(Kt)), f1(static_cast<size_t>(Kt));
    std::vector<double> nodes;
    if (opt.rule == Quadrature::Trapezoid) {
      const int64_t m = opt.steps;
      std::vector<double> a(static_cast<size_t>(P)), wt(static_cast<size_t>(P));
      for (int64_t p = 0; p < P; ++p)
        a[size_t(p)] = double(p) / double(m), wt[size_t(p)] = (p == 0 || p == m ? 0.5 : 1.0) / double(m);
      const Eval e = evaluate(a, &wt, Tk, acc);
      for (int64_t k = 0; k < Kt; ++k) f0[size_t(k)] = e.F[size_t(k)], f1[size_t(k)] = e.F[size_t(m * Kt + k)];
      nodes = a;
    } else if (opt.rule == Quadrature::GaussLegendre) {
      std::vector<double> a, wt;
      gauss_legendre(P, a, wt);
      evaluate(a, &wt, Tk, acc);
      // The end points are not nodes: one forward pass of the two, for the completeness check.
      NoGradGuard ng;
      const Tensor ends = stack({b, x}, 0).contiguous();
      const std::vector<double> yv = matmul(f(ends), Tk.t()).to(DType::Float64).contiguous().to_vector<double>();
      for (int64_t k = 0; k < Kt; ++k) f0[size_t(k)] = yv[size_t(k)], f1[size_t(k)] = yv[size_t(Kt + k)];
      nodes = a;
    } else {
      // Adaptive (docs/attribution.md, "Adaptive quadrature"): a uniform grid of steps / 2 intervals,
      // then rounds that bisect the intervals with the largest trapezoid error, measured exactly per
      // interval as |h (g_l + g_r) / 2 - (F_r - F_l)| (the gradient theorem on the interval), summed
      // over the group's targets relative to each one's variation along the path (the group is one
      // target today; the sum keeps the code right for any grouping).
      const int64_t m0 = std::clamp<int64_t>(opt.initial > 0 ? opt.initial : opt.steps / 2, 1, opt.steps);
      std::vector<double> a(static_cast<size_t>(m0 + 1));
      for (int64_t p = 0; p <= m0; ++p) a[size_t(p)] = double(p) / double(m0);
      std::vector<double> F, s;
      std::vector<std::vector<Tensor>> per(static_cast<size_t>(Kt));  // per target, per node: (3, H, W)
      auto take = [&](const std::vector<double>& an) {
        const Eval e = evaluate(an, nullptr, Tk, acc);
        F.insert(F.end(), e.F.begin(), e.F.end());
        s.insert(s.end(), e.s.begin(), e.s.end());
        for (int64_t k = 0; k < Kt; ++k)
          for (const Tensor& gb : e.grads[size_t(k)])
            for (int64_t j = 0; j < gb.size(0); ++j) per[size_t(k)].push_back(gb.select(0, j));
      };
      take(a);
      std::vector<double> scale(static_cast<size_t>(Kt), 0.0);  // total variation of F on the first grid
      for (int64_t k = 0; k < Kt; ++k) {
        for (int64_t p = 0; p < m0; ++p) scale[size_t(k)] += std::fabs(F[size_t((p + 1) * Kt + k)] - F[size_t(p * Kt + k)]);
        if (!(scale[size_t(k)] > 0)) scale[size_t(k)] = 1;
      }
      // The nodes' indices into a, F, s and per, in increasing alpha.
      auto by_position = [&] {
        std::vector<size_t> ord(a.size());
        for (size_t i = 0; i < ord.size(); ++i) ord[i] = i;
        std::sort(ord.begin(), ord.end(), [&](size_t i, size_t j) { return a[i] < a[j]; });
        return ord;
      };
      int64_t left = opt.steps - m0;
      int64_t round = std::max<int64_t>(1, (left + opt.rounds - 1) / opt.rounds);
      const int64_t max_steps = opt.max_steps > 0 ? opt.max_steps : 8 * opt.steps;
      // Whether every target of the group is within tol: the trapezoid sum of the integrand over the
      // grid against F's end points (the attributions' sum, in float64).
      auto within_tol = [&] {
        const std::vector<size_t> ord = by_position();
        for (int64_t k = 0; k < Kt; ++k) {
          double tot = 0;
          for (size_t q = 0; q + 1 < ord.size(); ++q)
            tot += (a[ord[q + 1]] - a[ord[q]]) * (s[ord[q] * size_t(Kt) + size_t(k)] + s[ord[q + 1] * size_t(Kt) + size_t(k)]) / 2;
          const double df = F[ord.back() * size_t(Kt) + size_t(k)] - F[ord.front() * size_t(Kt) + size_t(k)];
          const double floor_k = opt.tol_floor.empty() ? 0.0 : opt.tol_floor[size_t(k0 + k)];
          if (!(std::fabs(tot - df) <= opt.tol * std::max(std::fabs(df), floor_k))) return false;
        }
        return true;
      };
      for (;;) {
        if (left == 0) {
          const int64_t used = int64_t(a.size()) - 1;
          if (opt.tol <= 0 || used >= max_steps || within_tol()) break;
          round = std::max<int64_t>(4, used / 8);
          left = std::min(round, max_steps - used);
        }
        const std::vector<size_t> ord = by_position();
        std::vector<std::pair<double, size_t>> err;  // (score, interval's left position in ord)
        for (size_t q = 0; q + 1 < ord.size(); ++q) {
          const size_t l = ord[q], rr = ord[q + 1];
          const double h = a[rr] - a[l];
          double e = 0;
          for (int64_t k = 0; k < Kt; ++k) {
            const double tr = h * (s[l * size_t(Kt) + size_t(k)] + s[rr * size_t(Kt) + size_t(k)]) / 2;
            const double ex = F[rr * size_t(Kt) + size_t(k)] - F[l * size_t(Kt) + size_t(k)];
            e += std::fabs(tr - ex) / scale[size_t(k)];
          }
          err.push_back({e, q});
        }
        const int64_t n = std::min({left, round, int64_t(err.size())});
        // The n largest errors; ties broken by position, so the grid is a function of the values alone.
        std::stable_sort(err.begin(), err.end(), [](const auto& u, const auto& v) { return u.first > v.first; });
        std::vector<double> an;
        for (int64_t i = 0; i < n; ++i) {
          const size_t q = err[size_t(i)].second;
          an.push_back((a[ord[q]] + a[ord[q + 1]]) / 2);
        }
        std::sort(an.begin(), an.end());
        a.insert(a.end(), an.begin(), an.end());
        take(an);
        left -= n;
      }
      // The trapezoid weights of the final grid: w_p = (a_{p+1} - a_{p-1}) / 2.
      const std::vector<size_t> ord = by_position();
      std::vector<double> wts(ord.size());
      for (size_t q = 0; q < ord.size(); ++q)
        wts[q] = ((q + 1 < ord.size() ? a[ord[q + 1]] : a[ord[q]]) - (q > 0 ? a[ord[q - 1]] : a[ord[q]])) / 2;
      NoGradGuard ng;
      for (int64_t k = 0; k < Kt; ++k) {
        std::vector<Tensor> gs;
        for (size_t q = 0; q < ord.size(); ++q) gs.push_back(per[size_t(k)][ord[q]]);
        const Tensor w = from_vector(wts, {int64_t(wts.size()), 1, 1, 1}, DType::Float64);
        acc[size_t(k)] = sum(mul(stack(gs, 0).to(DType::Float64), w), {0});
      }
      for (int64_t k = 0; k < Kt; ++k)
        f0[size_t(k)] = F[ord.front() * size_t(Kt) + size_t(k)], f1[size_t(k)] = F[ord.back() * size_t(Kt) + size_t(k)];
      for (size_t q = 0; q < ord.size(); ++q) nodes.push_back(a[ord[q]]);
    }
    for (int64_t k = 0; k < Kt; ++k) r.nodes.push_back(nodes);
    NoGradGuard ng;
    for (int64_t k = 0; k < Kt; ++k) {
      const Tensor am = mul(diff64, acc[size_t(k)]).contiguous();
      const double tot = sum(am).item();
      const double df = f1[size_t(k)] - f0[size_t(k)], err = std::fabs(tot - df);
      r.f_x.push_back(f1[size_t(k)]), r.f_base.push_back(f0[size_t(k)]), r.total.push_back(tot);
      r.abs_error.push_back(err);
      r.rel_error.push_back(df != 0 ? err / std::fabs(df) : (err == 0 ? 0.0 : std::numeric_limits<double>::infinity()));
      maps.push_back(am.to(DType::Float32));
    }
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
