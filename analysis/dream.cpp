// Maximally exciting images (analysis/dream.h, docs/dream.md).
#include "analysis/dream.h"

#include <algorithm>
#include <cmath>

#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "autograd/optim.h"
#include "tensor/error.h"
#include "tensor/random.h"

namespace cortex::analysis {

DreamParam parse_dream_param(const std::string& s) {
  if (s == "fourier") return DreamParam::Fourier;
  if (s == "pixels") return DreamParam::Pixels;
  throw Error("dream: expected the parameterisation fourier or pixels, found '" + s + "'");
}

const char* dream_param_name(DreamParam p) { return p == DreamParam::Fourier ? "fourier" : "pixels"; }

DiversitySpace parse_diversity_space(const std::string& s) {
  if (s == "pixels") return DiversitySpace::Pixels;
  if (s == "features") return DiversitySpace::Features;
  throw Error("dream: expected the diversity space pixels or features, found '" + s + "'");
}

const char* diversity_space_name(DiversitySpace d) { return d == DiversitySpace::Pixels ? "pixels" : "features"; }

Tensor colour_correlation_sqrt() {
  // Lucid (lucid/optvis/param/color.py, also lucent): the square root of ImageNet's colour
  // correlation matrix from its SVD, rows R, G, B; divided by its largest column norm so that the
  // map never lengthens a step (the first column, luminance, has norm 1 after the division).
  const double m[3][3] = {{0.26, 0.09, 0.02}, {0.27, 0.00, -0.05}, {0.27, -0.09, 0.03}};
  double top = 0;
  for (int k = 0; k < 3; ++k) top = std::max(top, std::sqrt(m[0][k] * m[0][k] + m[1][k] * m[1][k] + m[2][k] * m[2][k]));
  std::vector<double> v;
  for (int c = 0; c < 3; ++c)
    for (int k = 0; k < 3; ++k) v.push_back(m[c][k] / top);
  return from_vector(v, {3, 3});
}

Tensor decorrelate_colour(const Tensor& t) {
  CORTEX_CHECK(t.defined() && t.dim() == 4 && t.size(1) == 3, "decorrelate_colour: expected (B, 3, H, W), found ",
               t.defined() ? shape_str(t.shape()) : "an undefined tensor");
  const int64_t B = t.size(0), H = t.size(2), W = t.size(3);
  // (3, 3) @ (B, 3, H W): Lucid's t_flat @ M^T with the channels first.
  const Tensor M = colour_correlation_sqrt().to(t.dtype()).to(t.device());
  return matmul(M, t.reshape({B, 3, H * W})).reshape({B, 3, H, W});
}

Tensor gram_cosines(const Tensor& a) {
  CORTEX_CHECK(a.defined() && a.dim() >= 2 && a.dim() <= 4 && a.size(0) >= 1 && a.numel() > 0,
               "gram_cosines: expected activations (B, C, H, W), (B, T, D) or (B, F), found ",
               a.defined() ? shape_str(a.shape()) : "an undefined tensor");
  const int64_t B = a.size(0);
  // X (B, P, C): P positions of C channels; G_b = X_b^T X_b (C, C) and <G_b, G_c> = ||X_b X_c^T||^2.
  Tensor X;
  if (a.dim() == 4) X = a.reshape({B, a.size(1), -1}).transpose(1, 2);
  else if (a.dim() == 3) X = a;
  else X = a.unsqueeze(1);
  const int64_t P = X.size(1), C = X.size(2);
  Tensor inner;  // (B, B): <G_b, G_c>
  if (C <= P) {
    const Tensor G = matmul(X.transpose(1, 2), X).reshape({B, C * C});
    inner = matmul(G, G.t());
  } else {
    const Tensor Y = X.reshape({B * P, C});
    inner = sum(square(matmul(Y, Y.t())).reshape({B, P, B, P}), {1, 3});
  }
  // cos = <G_b, G_c> / (|G_b| |G_c|); 1e-10 is added to |G_b|^2 under the root (Lucid's l2_normalize clamps at it).
  const Tensor n = sqrt(add(sum(mul(inner, eye(B, B, inner.dtype(), inner.device())), {1}, true), 1e-10));  // (B, 1): |G_b|
  return div(div(inner, n), n.t());
}

Tensor fourier_image(const Tensor& re, const Tensor& im, int64_t S, bool decorrelate) {
  CORTEX_CHECK(re.defined() && im.defined() && re.dim() == 4 && re.shape() == im.shape() && S >= 1 &&
                   re.size(2) == S && re.size(3) == S / 2 + 1,
               "fourier_image: expected re and im (B, C, ", S, ", ", S / 2 + 1, "), found ",
               re.defined() ? shape_str(re.shape()) : "undefined", " and ", im.defined() ? shape_str(im.shape()) : "undefined");
  const Tensor s = fft_scale(S, S, re.dtype(), re.device());  // (S, S/2 + 1): 1 / max(|f|, 1/S)
  // Lucid's constants: the ortho inverse of the scaled spectrum, / 4 before the sigmoid, so that a
  // start of sd 0.01 is a near-grey image with a 1/f spectrum.
  const Tensor t = div(irfft2(mul(re, s), mul(im, s), S, FftNorm::Ortho), 4.0);
  return sigmoid(decorrelate ? decorrelate_colour(t) : t);
}

Tensor roll2(const Tensor& x, int64_t dy, int64_t dx) {
  CORTEX_CHECK(x.defined() && x.dim() == 4, "roll2: expected (B, C, H, W), found ",
               x.defined() ? shape_str(x.shape()) : "an undefined tensor");
  Tensor y = x;
  for (int d = 0; d < 2; ++d) {
    const int64_t n = y.size(2 + d), k = ((d == 0 ? dy : dx) % n + n) % n;
    if (k == 0) continue;
    // torch.roll: out[i] = in[(i - k) mod n], i.e. the last k entries first.
    y = concat({y.narrow(2 + d, n - k, k), y.narrow(2 + d, 0, n - k)}, 2 + d);
  }
  return y;
}

Tensor dream_loss(const TapFn& f, const Tensor& x, const Tensor& target, const DreamOptions& opt,
                  const std::vector<std::array<int64_t, 2>>& shifts, std::vector<double>* targets) {
  CORTEX_CHECK(x.defined() && x.dim() == 4 && x.size(1) == 3, "dream_loss: expected images (B, 3, S, S), found ",
               x.defined() ? shape_str(x.shape()) : "an undefined tensor");
  const int64_t B = x.size(0);
  CORTEX_CHECK(int64_t(shifts.size()) == B, "dream_loss: expected ", B, " shifts, found ", shifts.size());
  std::vector<Tensor> rolled;
  for (int64_t b = 0; b < B; ++b) rolled.push_back(roll2(x.narrow(0, b, 1), shifts[size_t(b)][0], shifts[size_t(b)][1]));
  const auto [y, acts] = f(B == 1 ? rolled[0] : concat(rolled, 0));
  const bool features = opt.diversity > 0 && B >= 2 && opt.diversity_space == DiversitySpace::Features;
  CORTEX_CHECK(!features || (acts.defined() && acts.size(0) == B), "dream_loss: the feature-space diversity needs "
               "the model's layer activations for the ", B, " images, found ",
               acts.defined() ? shape_str(acts.shape()) : "none (a model that gives only its outputs)");
  CORTEX_CHECK(y.defined() && y.dim() == 2 && y.size(0) == B && target.dim() == 2 && target.size(0) == 1 &&
                   y.size(1) == target.size(1),
               "dream_loss: the model gave ", y.defined() ? shape_str(y.shape()) : "nothing", " for ", B,
               " images; the target weighs ", target.size(1), " outputs");
  const Tensor t = matmul(y, target.to(y.dtype()).t());  // (B, 1)
  if (targets) {
    NoGradGuard ng;
    *targets = detach(t).to(DType::Float64).contiguous().to_vector<double>();
  }
  Tensor loss = neg(sum(t));
  if (opt.tv > 0) {
    const int64_t S = x.size(2), W = x.size(3);
    Tensor tvb;  // (B): mean |vertical difference| + mean |horizontal difference| per image
    if (S > 1) tvb = mean(abs(sub(x.narrow(2, 1, S - 1), x.narrow(2, 0, S - 1))), {1, 2, 3});
    if (W > 1) {
      const Tensor h = mean(abs(sub(x.narrow(3, 1, W - 1), x.narrow(3, 0, W - 1))), {1, 2, 3});
      tvb = tvb.defined() ? add(tvb, h) : h;
    }
    if (tvb.defined()) loss = add(loss, mul(sum(tvb), opt.tv));
  }
  if (opt.l2 > 0) loss = add(loss, mul(sum(mean(square(sub(x, 0.5)), {1, 2, 3})), opt.l2));
  if (opt.diversity > 0 && B >= 2) {
    Tensor g;  // (B, B) cosines
    if (features) {
      // Lucid's objectives.diversity: the layer's Gram matrices of the (jittered) images the model saw.
      g = gram_cosines(acts);
    } else {
      const Tensor p = x.reshape({B, -1});
      const Tensor c = sub(p, mean(p, {1}, true));
      const Tensor u = div(c, sqrt(add(sum(square(c), {1}, true), 1e-12)));  // unit rows
      g = matmul(u, u.t());
    }
    const Tensor off = sub(sum(g), sum(mul(g, eye(B, B, g.dtype(), g.device()))));  // the off-diagonal sum
    loss = add(loss, mul(off, opt.diversity * double(B) / double(B * (B - 1))));
  }
  return loss;
}

namespace {
TapFn outputs_only(const ImageFn& f) {
  return [&f](const Tensor& x) { return std::pair<Tensor, Tensor>{f(x), Tensor()}; };
}
}  // namespace

Tensor dream_loss(const ImageFn& f, const Tensor& x, const Tensor& target, const DreamOptions& opt,
                  const std::vector<std::array<int64_t, 2>>& shifts, std::vector<double>* targets) {
  return dream_loss(outputs_only(f), x, target, opt, shifts, targets);
}

std::vector<double> target_values(const ImageFn& f, const Tensor& images, const Tensor& target, int64_t batch) {
  CORTEX_CHECK(images.defined() && images.dim() == 4 && batch >= 1, "target_values: expected images (N, 3, S, S) "
               "and batch >= 1");
  NoGradGuard ng;
  std::vector<double> out;
  for (int64_t lo = 0; lo < images.size(0); lo += batch) {
    const int64_t n = std::min(batch, images.size(0) - lo);
    const Tensor y = f(images.narrow(0, lo, n).contiguous());
    CORTEX_CHECK(y.dim() == 2 && y.size(0) == n && y.size(1) == target.size(1), "target_values: the model gave ",
                 shape_str(y.shape()), " for ", n, " images; the target weighs ", target.size(1), " outputs");
    const std::vector<double> t = matmul(y, target.to(y.dtype()).t()).to(DType::Float64).contiguous().to_vector<double>();
    out.insert(out.end(), t.begin(), t.end());
  }
  return out;
}

DreamResult dream(const TapFn& f, int64_t S, const Tensor& target, const DreamOptions& opt,
                  const std::function<void(int64_t, double)>& progress) {
  CORTEX_CHECK(S >= 2, "dream: expected an image size >= 2, found ", S);
  CORTEX_CHECK(opt.steps >= 1, "dream: steps must be >= 1, found ", opt.steps);
  CORTEX_CHECK(opt.seeds >= 1, "dream: seeds must be >= 1, found ", opt.seeds);
  CORTEX_CHECK(opt.lr > 0 && std::isfinite(opt.lr), "dream: lr must be > 0, found ", opt.lr);
  CORTEX_CHECK(opt.jitter >= 0 && opt.jitter < S, "dream: jitter must be in [0, ", S, "), found ", opt.jitter);
  for (auto [name, v] : {std::pair{"tv", opt.tv}, {"l2", opt.l2}, {"diversity", opt.diversity}, {"init_sd", opt.init_sd}})
    CORTEX_CHECK(v >= 0 && std::isfinite(v), "dream: ", name, " must be >= 0, found ", v);
  CORTEX_CHECK(opt.diversity == 0 || opt.seeds >= 2, "dream: the diversity term needs seeds >= 2, found ", opt.seeds);
  CORTEX_CHECK(target.defined() && target.dim() == 2 && target.size(0) == 1 && target.size(1) >= 1,
               "dream: expected a target (1, V), found ", target.defined() ? shape_str(target.shape()) : "undefined");
  const int64_t B = opt.seeds;
  const Tensor T = target.to(DType::Float32).contiguous();

  // One generator per image: its start, then its jitter, so image b depends on seed + b alone.
  std::vector<Generator> gens;
  for (int64_t b = 0; b < B; ++b) gens.emplace_back(opt.seed + uint64_t(b));
  std::vector<Tensor> params;
  if (opt.param == DreamParam::Fourier) {
    std::vector<Tensor> re, im;
    for (auto& g : gens) {
      re.push_back(randn({1, 3, S, S / 2 + 1}, g, 0.0, opt.init_sd));
      im.push_back(randn({1, 3, S, S / 2 + 1}, g, 0.0, opt.init_sd));
    }
    params = {with_grad(concat(re, 0).contiguous()), with_grad(concat(im, 0).contiguous())};
  } else {
    std::vector<Tensor> z;
    for (auto& g : gens) z.push_back(randn({1, 3, S, S}, g, 0.0, opt.init_sd));
    params = {with_grad(concat(z, 0).contiguous())};
  }
  auto image = [&] {
    if (opt.param == DreamParam::Fourier) return fourier_image(params[0], params[1], S, opt.decorrelate);
    return sigmoid(opt.decorrelate ? decorrelate_colour(params[0]) : params[0]);
  };

  AdamOptions ao;
  ao.lr = opt.lr;
  Adam adam(params, ao);
  DreamResult r;
  std::vector<std::array<int64_t, 2>> shifts(size_t(B), {0, 0});
  for (int64_t step = 1; step <= opt.steps; ++step) {
    if (opt.jitter > 0)
      for (int64_t b = 0; b < B; ++b) {
        const std::vector<int64_t> d = randint(-opt.jitter, opt.jitter + 1, {2}, gens[size_t(b)]).to_vector<int64_t>();
        shifts[size_t(b)] = {d[0], d[1]};
      }
    std::vector<double> tb;
    const Tensor loss = dream_loss(f, image(), T, opt, shifts, &tb);
    const double lv = loss.item() / double(B);
    CORTEX_CHECK(std::isfinite(lv), "dream: the loss is not finite at step ", step, " (lower --lr?)");
    double mt = 0;
    for (double v : tb) mt += v / double(B);
    r.loss.push_back(lv), r.objective.push_back(mt);
    adam.zero_grad();
    backward(loss);
    adam.step();
    if (progress) progress(step, lv);
  }
  {
    NoGradGuard ng;
    r.images = image().contiguous();
  }
  r.response = target_values([&f](const Tensor& x) { return f(x).first; }, r.images, T, B);
  return r;
}

DreamResult dream(const ImageFn& f, int64_t S, const Tensor& target, const DreamOptions& opt,
                  const std::function<void(int64_t, double)>& progress) {
  CORTEX_CHECK(opt.diversity == 0 || opt.diversity_space == DiversitySpace::Pixels, "dream: the feature-space "
               "diversity needs a model that exposes a layer's activations (a TapFn); this one gives only its outputs");
  return dream(outputs_only(f), S, target, opt, progress);
}

double pearson(const std::vector<double>& a, const std::vector<double>& b) {
  CORTEX_CHECK(a.size() == b.size() && !a.empty(), "pearson: expected two equally long non-empty vectors, found ",
               a.size(), " and ", b.size());
  double ma = 0, mb = 0;
  for (size_t i = 0; i < a.size(); ++i) ma += a[i], mb += b[i];
  ma /= double(a.size()), mb /= double(b.size());
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    sab += (a[i] - ma) * (b[i] - mb), saa += (a[i] - ma) * (a[i] - ma), sbb += (b[i] - mb) * (b[i] - mb);
  }
  return (saa > 0 && sbb > 0) ? sab / std::sqrt(saa * sbb) : NAN;
}

}  // namespace cortex::analysis
