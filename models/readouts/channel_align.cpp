// Channel align (models/readouts/channel_align.h): written with the differentiable ops, so its
// gradients, the eigen-constraint's included (eigh_topk's VJP, docs/autodiff.md 4.12), come from
// autograd. Equations and defaults: docs/alignedcut.md, "Channel align".
#include "models/readouts/channel_align.h"

#include <algorithm>
#include <cmath>

#include "autograd/ops.h"
#include "kernels/linalg.h"
#include "models/readouts/ridge.h"

namespace cortex::models {
namespace {

const char* kWho = "ChannelAlign";

void check_inputs(const std::vector<Tensor>& maps, const std::vector<MapShape>& layers) {
  CORTEX_CHECK(maps.size() == layers.size(), kWho, ": expected ", layers.size(), " feature maps, found ", maps.size());
  for (size_t l = 0; l < maps.size(); ++l) {
    const Tensor& f = maps[l];
    CORTEX_CHECK(f.defined() && f.dim() == 4, kWho, ": expected map ", l, " to be 4-D (B, C, H, W), found ",
                 f.defined() ? shape_str(f.shape()) : std::string("undefined"));
    CORTEX_CHECK(f.size(1) == layers[l].c && f.size(2) == layers[l].h && f.size(3) == layers[l].w, kWho,
                 ": expected map ", l, " of (C, H, W) = (", layers[l].c, ", ", layers[l].h, ", ", layers[l].w,
                 "), found ", shape_str(f.shape()));
    CORTEX_CHECK(f.size(0) == maps[0].size(0), kWho, ": expected one batch size across maps, found ",
                 maps[0].size(0), " and ", f.size(0));
    CORTEX_CHECK(f.dtype() == maps[0].dtype(), kWho, ": expected one dtype across maps, found ",
                 dtype_name(maps[0].dtype()), " and ", dtype_name(f.dtype()));
  }
}

// (B, C, H, W) -> (B * H * W, C): one row per token, token (b, h, w) at row (b H + h) W + w.
Tensor tokens(const Tensor& f) {
  const int64_t b = f.size(0), c = f.size(1), hw = f.size(2) * f.size(3);
  return f.reshape({b, c, hw}).transpose(1, 2).reshape({b * hw, c});
}

// The Ncut-normalised cosine affinity D^-1/2 A D^-1/2 of the rows of x (m, d), as
// analysis/spectral builds it (A_ij = exp((cos_ij - 1) / t), self-loops 1), with ops. Also A.
std::pair<Tensor, Tensor> ncut_graph(const Tensor& x, double t) {
  // sqrt(|x|^2 + tiny) instead of max(|x|, eps): smooth, and the same for any non-zero row.
  const Tensor n = x / sqrt(sum(square(x), {1}, true) + 1e-30);
  const Tensor a = exp((matmul(n, n.t()) - 1.0) / t);
  const Tensor s = rsqrt(sum(a, {1}));
  return {a * s.unsqueeze(1) * s.unsqueeze(0), a};
}

Tensor projector(const Tensor& v) { return matmul(v, v.t()); }

}  // namespace

ChannelAlign::ChannelAlign(const std::vector<MapShape>& layers_, int64_t n_out_, const ChannelAlignOptions& o,
                           uint64_t seed)
    : layers(layers_), n_out(n_out_), opt(o), gen(seed + 0x5eed) {
  CORTEX_CHECK(!layers.empty(), kWho, ": expected at least one layer, found none");
  for (const auto& s : layers)
    CORTEX_CHECK(s.c > 0 && s.h > 0 && s.w > 0, kWho, ": expected positive (C, H, W), found (", s.c, ", ", s.h, ", ",
                 s.w, ")");
  CORTEX_CHECK(n_out > 0, kWho, ": expected a positive number of outputs, found ", n_out);
  CORTEX_CHECK(opt.dim > 0, kWho, ": expected a shared dimension D > 0, found ", opt.dim);
  for (double w : {opt.eigen, opt.focal, opt.zero_centre, opt.covariance})
    CORTEX_CHECK(w >= 0 && std::isfinite(w), kWho, ": expected regulariser weights >= 0, found ", w);
  CORTEX_CHECK(opt.eig_k >= 1, kWho, ": expected eig_k >= 1, found ", opt.eig_k);
  CORTEX_CHECK(opt.nodes >= 2, kWho, ": expected at least 2 sampled nodes, found ", opt.nodes);
  CORTEX_CHECK(opt.temperature > 0 && std::isfinite(opt.temperature), kWho, ": expected a temperature > 0, found ",
               opt.temperature);
  CORTEX_CHECK(opt.focal_gamma >= 0 && std::isfinite(opt.focal_gamma), kWho, ": expected focal_gamma >= 0, found ",
               opt.focal_gamma);
  Generator g(seed);
  align.reserve(layers.size());  // register_parameter keeps pointers into it
  for (const auto& s : layers)
    align.push_back(randn(Shape{opt.dim, s.c}, g, 0.0, 1.0 / std::sqrt(static_cast<double>(s.c)), DType::Float32));
  for (size_t l = 0; l < align.size(); ++l) register_parameter("align." + std::to_string(l), &align[l]);
  head_weight = randn(Shape{n_out, opt.dim}, g, 0.0, 1.0 / std::sqrt(static_cast<double>(opt.dim)), DType::Float32);
  head_bias = zeros({n_out});
  register_parameter("head.weight", &head_weight);
  register_parameter("head.bias", &head_bias);
}

Tensor ChannelAlign::read(const std::vector<Tensor>& maps) {
  check_inputs(maps, layers);
  if (training()) last_maps_ = maps;
  // The token mean commutes with W_l (linear): pool first, then align, B rows instead of B H W.
  Tensor z;
  for (size_t l = 0; l < maps.size(); ++l) {
    const Tensor zl = linear(mean(maps[l], {2, 3}), align[l]);  // (B, D)
    z = z.defined() ? z + zl : zl;
  }
  return linear(z, head_weight, head_bias);
}

std::vector<Tensor> ChannelAlign::aligned_features(const std::vector<Tensor>& maps) {
  check_inputs(maps, layers);
  std::vector<Tensor> out;
  for (size_t l = 0; l < maps.size(); ++l) {
    const int64_t b = maps[l].size(0), hw = layers[l].h * layers[l].w;
    out.push_back(linear(tokens(maps[l]), align[l]).reshape({b, hw, opt.dim}));
  }
  return out;
}

std::pair<Tensor, Tensor> ChannelAlign::eigen_constraint(int64_t layer, const Tensor& nodes) {
  CORTEX_CHECK(layer >= 0 && layer < static_cast<int64_t>(layers.size()), kWho, ": no layer ", layer);
  CORTEX_CHECK(nodes.defined() && nodes.dim() == 2 && nodes.size(1) == layers[layer].c && nodes.size(0) >= 2, kWho,
               ": expected nodes (m >= 2, ", layers[layer].c, ") for layer ", layer, ", found ",
               nodes.defined() ? shape_str(nodes.shape()) : std::string("undefined"));
  const DType dt = align[static_cast<size_t>(layer)].dtype();
  const int64_t m = nodes.size(0), k = std::min(opt.eig_k, m);
  // Float64 inside: the eigenvector derivative divides by eigengaps, which float32 resolves only
  // to ~1e-4 (docs/autodiff.md 4.12).
  const Tensor xb = detach(nodes).to(DType::Float64);
  const Tensor xa = linear(nodes.to(dt), align[static_cast<size_t>(layer)]).to(DType::Float64);
  Tensor pb, ab;
  {
    NoGradGuard ng;
    auto [nb, a] = ncut_graph(xb, opt.temperature);
    pb = projector(eigh_topk(nb, k).vectors);
    ab = a;
  }
  auto [na, unused] = ncut_graph(xa, opt.temperature);
  (void)unused;
  Tensor va;
  try {
    va = eigh_topk(na, k).vectors;
  } catch (const Error& e) {
    throw Error(std::string(kWho) + ": the eigen-constraint of layer " + std::to_string(layer) + ": " + e.what());
  }
  const Tensor d2 = square(projector(va) - pb);
  const Tensor eig = sum(d2) / static_cast<double>(k);
  // Focal: weights (1 - A_b)^gamma, normalised to mean 1 so the two terms share a scale.
  const Tensor w = pow(clamp(1.0 - ab, 0.0, 1.0), opt.focal_gamma);
  const double wm = mean(w).item();
  const Tensor focal = wm > 0 ? sum(d2 * w) / (static_cast<double>(k) * wm) : sum(d2) * 0.0;
  return {eig.to(dt), focal.to(dt)};
}

ChannelAlign::Penalties ChannelAlign::penalties(const std::vector<Tensor>& maps, bool all) {
  check_inputs(maps, layers);
  const bool want_eig = all || opt.eigen > 0 || opt.focal > 0;
  const bool want_zero = all || opt.zero_centre > 0, want_cov = all || opt.covariance > 0;
  Penalties p;
  const double nl = static_cast<double>(layers.size());
  auto acc = [nl](Tensor& into, const Tensor& v) { into = into.defined() ? into + v / nl : v / nl; };
  for (size_t l = 0; l < layers.size(); ++l) {
    const Tensor tok = tokens(maps[l]);  // (N_l, C_l)
    const int64_t n = tok.size(0), m = std::min(opt.nodes, n);
    if (m < 2) continue;  // one token: no graph, no spread
    const Tensor idx = randperm(n, gen).narrow(0, 0, m);
    const Tensor nodes = index_select(tok, 0, idx);
    if (want_eig) {
      auto [e, f] = eigen_constraint(static_cast<int64_t>(l), nodes);
      acc(p.eigen, e);
      acc(p.focal, f);
    }
    if (want_zero || want_cov) {
      const Tensor za = linear(nodes.to(align[l].dtype()), align[l]);  // (m, D)
      const Tensor mu = mean(za, {0});
      if (want_zero) acc(p.zero_centre, sum(square(mu)) / (mean(sum(square(za), {1})) + 1e-30));
      if (want_cov) {
        // |C|_F^2 through the (m, m) Gram (cheaper than D x D when m < D); diag C_d = mean_i zc_id^2.
        const Tensor zc = za - mu;
        const double inv_m = 1.0 / static_cast<double>(m);
        const Tensor c2 = sum(square(matmul(zc, zc.t()) * inv_m));
        const Tensor d2 = sum(square(sum(square(zc), {0}) * inv_m));
        acc(p.covariance, (c2 - d2) / (c2 + 1e-30));
      }
    }
  }
  return p;
}

Tensor ChannelAlign::penalty() {
  CORTEX_CHECK(!last_maps_.empty(), kWho, ": penalty() regularises the last training batch; call read() in "
                                          "training mode first");
  const std::vector<Tensor> maps = std::move(last_maps_);
  last_maps_.clear();
  const Penalties p = penalties(maps);
  Tensor total = zeros({}, head_weight.dtype());
  if (opt.eigen > 0 && p.eigen.defined()) total = total + opt.eigen * p.eigen;
  if (opt.focal > 0 && p.focal.defined()) total = total + opt.focal * p.focal;
  if (opt.zero_centre > 0 && p.zero_centre.defined()) total = total + opt.zero_centre * p.zero_centre;
  if (opt.covariance > 0 && p.covariance.defined()) total = total + opt.covariance * p.covariance;
  return total;
}

void ChannelAlign::warm_start(const std::vector<Tensor>& maps, const Tensor& y, const std::vector<double>& alphas,
                              int folds, uint64_t seed) {
  check_inputs(maps, layers);
  NoGradGuard ng;
  const int64_t n = maps[0].size(0);
  CORTEX_CHECK(y.defined() && y.dim() == 2 && y.size(0) == n && y.size(1) == n_out, kWho,
               ": warm_start expected responses (", n, ", ", n_out, "), found ",
               y.defined() ? shape_str(y.shape()) : std::string("undefined"));
  std::vector<Tensor> pooled;
  for (const Tensor& f : maps) pooled.push_back(mean(f, {2, 3}).to(DType::Float64));
  const Tensor x = concat(pooled, 1);                       // (N, sum C)
  const Tensor xc = x - mean(x, {0}, true);
  const int64_t total = x.size(1);
  const kernels::Svd sv = kernels::svd(xc.contiguous());     // vh (r, sum C), rows by decreasing variance
  const int64_t r = std::min<int64_t>(sv.vh.size(0), opt.dim);
  // Axes beyond the data's rank start small and random (a zero row would never move: its gradient
  // needs the head column, which ridge leaves at 0 for a zero feature).
  Generator g(seed + 17);
  Tensor w = randn(Shape{opt.dim, total}, g, 0.0, 1e-2 / std::sqrt(static_cast<double>(total)), DType::Float64);
  if (r > 0) w.narrow(0, 0, r).copy_(sv.vh.narrow(0, 0, r));
  // Unit mean square of the aligned pooled features: keeps Adam's steps on W and the head comparable.
  const Tensor zc = matmul(xc, w.t());
  const double rms = std::sqrt(mean(square(zc)).item());
  if (rms > 0) w = w / rms;
  int64_t off = 0;
  for (size_t l = 0; l < layers.size(); ++l) {
    align[l] = w.narrow(1, off, layers[l].c).to(align[l].dtype()).contiguous();
    off += layers[l].c;
  }
  const Tensor z = matmul(x, w.t()).to(head_weight.dtype());  // (N, D)
  const RidgeCV fit = fit_ridge_cv(z.contiguous(), y.to(head_weight.dtype()).contiguous(), alphas, folds, seed);
  head_weight = fit.weights.t().contiguous();
  head_bias = fit.intercept.contiguous();
}

}  // namespace cortex::models
