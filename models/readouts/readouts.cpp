// Readouts written with the differentiable ops only, so their gradients (w.r.t. parameters and
// feature maps) come from autograd and gradcheck holds them to finite differences.
#include "models/readouts/readouts.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "autograd/ops.h"
#include "models/readouts/ridge.h"

namespace cortex::models {
namespace {

// maps must match `layers` in count and (C, H, W), share batch size and dtype.
void check_maps(const char* who, const std::vector<Tensor>& maps, const std::vector<MapShape>& layers) {
  CORTEX_CHECK(maps.size() == layers.size(), who, ": expected ", layers.size(), " feature maps, found ",
               maps.size());
  for (size_t l = 0; l < maps.size(); ++l) {
    const Tensor& f = maps[l];
    CORTEX_CHECK(f.defined() && f.dim() == 4, who, ": expected map ", l, " to be 4-D (B, C, H, W), found ",
                 f.defined() ? shape_str(f.shape()) : std::string("undefined"));
    CORTEX_CHECK(f.size(1) == layers[l].c && f.size(2) == layers[l].h && f.size(3) == layers[l].w, who,
                 ": expected map ", l, " of (C, H, W) = (", layers[l].c, ", ", layers[l].h, ", ", layers[l].w,
                 "), found ", shape_str(f.shape()));
    CORTEX_CHECK(f.size(0) == maps[0].size(0), who, ": expected one batch size across maps, found ",
                 maps[0].size(0), " and ", f.size(0));
    CORTEX_CHECK(f.dtype() == maps[0].dtype(), who, ": expected one dtype across maps, found ",
                 dtype_name(maps[0].dtype()), " and ", dtype_name(f.dtype()));
  }
}

void check_layers(const char* who, const std::vector<MapShape>& layers, int64_t n_out) {
  CORTEX_CHECK(!layers.empty(), who, ": expected at least one layer, found none");
  for (const auto& s : layers)
    CORTEX_CHECK(s.c > 0 && s.h > 0 && s.w > 0, who, ": expected positive (C, H, W), found (", s.c, ", ", s.h, ", ",
                 s.w, ")");
  CORTEX_CHECK(n_out > 0, who, ": expected a positive number of outputs, found ", n_out);
}

Tensor randn_f(const Shape& s, Generator& g, double std) { return randn(s, g, 0.0, std, DType::Float32); }

// Pixel centres in [-1, 1] along a dim of n pixels: -1 + (2i + 1)/n.
Tensor centres(int64_t n, DType dt) {
  std::vector<double> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = -1.0 + (2.0 * i + 1.0) / n;
  return from_vector(v, {n}).to(dt);
}

// Normalised isotropic Gaussian fields (V, H*W) for mu (V, 2) as (x, y) and sigma (V).
Tensor gaussian_fields(const Tensor& mu, const Tensor& sigma, int64_t h, int64_t w) {
  const int64_t v = mu.size(0);
  const Tensor xs = centres(w, mu.dtype()).reshape({1, 1, w}), ys = centres(h, mu.dtype()).reshape({1, h, 1});
  const Tensor mx = mu.narrow(1, 0, 1).reshape({v, 1, 1}), my = mu.narrow(1, 1, 1).reshape({v, 1, 1});
  const Tensor s = sigma.reshape({v, 1, 1});
  const Tensor d2 = square(xs - mx) + square(ys - my);
  const Tensor g = exp(-d2 / (2.0 * square(s))).reshape({v, h * w});
  return g / sum(g, {1}, true);
}

}  // namespace

std::vector<Tensor> prune_channels(const std::vector<Tensor>& maps, double keep_fraction) {
  CORTEX_CHECK(keep_fraction > 0 && keep_fraction <= 1, "prune_channels: expected keep_fraction in (0, 1], found ",
               keep_fraction);
  CORTEX_CHECK(!maps.empty(), "prune_channels: expected at least one feature map, found none");
  NoGradGuard ng;
  std::vector<Tensor> out;
  for (size_t l = 0; l < maps.size(); ++l) {
    const Tensor& f = maps[l];
    CORTEX_CHECK(f.defined() && f.dim() == 4 && f.size(0) >= 2, "prune_channels: expected map ", l,
                 " of shape (B >= 2, C, H, W), found ", f.defined() ? shape_str(f.shape()) : std::string("undefined"));
    const auto sd = std_dev(mean(f.to(DType::Float64), {2, 3}), {0}).to_vector<double>();
    const int64_t c = f.size(1);
    const int64_t k = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(keep_fraction * c - 1e-9)));
    std::vector<int64_t> idx(c);
    std::iota(idx.begin(), idx.end(), 0);
    // Ties keep the lower channel index, so the selection is reproducible.
    std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return sd[a] > sd[b]; });
    idx.resize(k);
    std::sort(idx.begin(), idx.end());
    out.push_back(from_vector(idx, {k}, DType::Int64));
  }
  return out;
}

// ---------------------------------------------------------------- FwRF
FwRF::FwRF(const std::vector<MapShape>& layers_, int64_t n_vox_, const std::vector<Tensor>& keep_, uint64_t seed)
    : layers(layers_), n_vox(n_vox_), keep(keep_) {
  check_layers("FwRF", layers, n_vox);
  CORTEX_CHECK(keep.empty() || keep.size() == layers.size(), "FwRF: expected no keep list or one per layer (",
               layers.size(), "), found ", keep.size());
  Generator g(seed);
  int64_t total = 0;
  for (size_t l = 0; l < layers.size(); ++l) {
    int k = -1;
    for (size_t j = 0; j < l; ++j)
      if (layers[j].h == layers[l].h && layers[j].w == layers[l].w) k = rf_of[j];
    if (k < 0) {
      k = static_cast<int>(rf.size());
      // A flat start (each map pools the whole field evenly) plus noise to break symmetry.
      rf.push_back(randn_f({n_vox, layers[l].h, layers[l].w}, g, 0.01) + 1.0 / (layers[l].h * layers[l].w));
    }
    rf_of.push_back(k);
    int64_t c = layers[l].c;
    if (!keep.empty()) {
      const Tensor& kk = keep[l];
      CORTEX_CHECK(kk.defined() && kk.dim() == 1 && kk.dtype() == DType::Int64 && kk.numel() > 0, "FwRF: expected keep.",
                   l, " a non-empty 1-D int64 tensor");
      for (int64_t i : kk.to_vector<int64_t>())
        CORTEX_CHECK(i >= 0 && i < layers[l].c, "FwRF: expected keep.", l, " indices in [0, ", layers[l].c,
                     "), found ", i);
      c = kk.numel();
    }
    total += c;
  }
  for (size_t k = 0; k < rf.size(); ++k) register_parameter("rf." + std::to_string(k), &rf[k]);
  weight = randn_f({total, n_vox}, g, 1.0 / std::sqrt(static_cast<double>(total)));
  bias = zeros({n_vox});
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
  for (size_t l = 0; l < keep.size(); ++l) register_buffer("keep." + std::to_string(l), &keep[l]);
}

Tensor FwRF::read(const std::vector<Tensor>& maps) {
  check_maps("FwRF", maps, layers);
  Tensor y;
  int64_t off = 0;
  for (size_t l = 0; l < maps.size(); ++l) {
    Tensor f = keep.empty() ? maps[l] : index_select(maps[l], 1, keep[l]);
    const int64_t b = f.size(0), c = f.size(1), hw = layers[l].h * layers[l].w;
    const Tensor r = rf[rf_of[l]].reshape({n_vox, hw});
    const Tensor s = matmul(f.reshape({b, c, hw}), r.t());  // (B, C, V)
    const Tensor term = sum(s * weight.narrow(0, off, c), {1});
    y = y.defined() ? y + term : term;
    off += c;
  }
  return y + bias;
}

// ---------------------------------------------------------------- Gaussian fwRF
GaussianFwRF::GaussianFwRF(const std::vector<MapShape>& layers_, int64_t n_vox_) : layers(layers_), n_vox(n_vox_) {
  check_layers("GaussianFwRF", layers, n_vox);
  int64_t total = 0;
  for (const auto& s : layers) total += s.c;
  mu = zeros({n_vox, 2});
  sigma = full({n_vox}, 0.5);
  weight = zeros({total, n_vox});
  bias = zeros({n_vox});
  register_parameter("mu", &mu);
  register_parameter("sigma", &sigma);
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
}

Tensor GaussianFwRF::pooled(const std::vector<Tensor>& maps) {
  check_maps("GaussianFwRF", maps, layers);
  std::vector<Tensor> parts;
  for (size_t l = 0; l < maps.size(); ++l) {
    const int64_t b = maps[l].size(0), c = layers[l].c, hw = layers[l].h * layers[l].w;
    const Tensor g = gaussian_fields(mu, sigma, layers[l].h, layers[l].w);  // (V, HW)
    parts.push_back(matmul(maps[l].reshape({b, c, hw}), g.t()));            // (B, C, V)
  }
  return parts.size() == 1 ? parts[0] : concat(parts, 1);
}

Tensor GaussianFwRF::read(const std::vector<Tensor>& maps) { return sum(pooled(maps) * weight, {1}) + bias; }

GaussianFwRFFit fit_gaussian_fwrf(const std::vector<Tensor>& maps, const Tensor& Y, const std::vector<double>& xs,
                                  const std::vector<double>& ys, const std::vector<double>& sigmas,
                                  const std::vector<double>& alphas, int folds, uint64_t seed) {
  const char* fn = "fit_gaussian_fwrf";
  CORTEX_CHECK(!maps.empty(), fn, ": expected at least one feature map, found none");
  CORTEX_CHECK(!xs.empty() && !ys.empty() && !sigmas.empty(), fn, ": expected non-empty x, y and sigma grids");
  for (double s : sigmas) CORTEX_CHECK(s > 0, fn, ": expected every sigma > 0, found ", s);
  CORTEX_CHECK(Y.defined() && Y.dim() == 2 && Y.size(0) == maps[0].size(0), fn, ": expected Y of shape (",
               maps[0].size(0), ", V), found ", Y.defined() ? shape_str(Y.shape()) : std::string("undefined"));
  std::vector<MapShape> layers;
  for (const auto& m : maps) {
    CORTEX_CHECK(m.defined() && m.dim() == 4, fn, ": expected 4-D feature maps (B, C, H, W)");
    layers.push_back({m.size(1), m.size(2), m.size(3)});
  }
  NoGradGuard ng;
  const int64_t v = Y.size(1);
  auto model = std::make_shared<GaussianFwRF>(layers, v);
  int64_t total = model->weight.size(0);
  const Tensor y64 = Y.to(DType::Float64);
  std::vector<double> best(v, -INFINITY), bx(v), by(v), bs(v), w(total * v), b(v);
  GaussianFwRF probe(layers, 1);  // one field at a time
  for (double sg : sigmas)
    for (double yy : ys)
      for (double xx : xs) {
        probe.mu = from_vector(std::vector<double>{xx, yy}, {1, 2}).to(maps[0].dtype());
        probe.sigma = full({1}, sg, maps[0].dtype());
        const Tensor feats = probe.pooled(maps).reshape({maps[0].size(0), total}).to(DType::Float64);
        const RidgeCV r = fit_ridge_cv(feats, y64, alphas, folds, seed);
        const auto sc = r.cv_scores.to_vector<double>();
        const auto wv = r.weights.to_vector<double>();
        const auto iv = r.intercept.to_vector<double>();
        const int64_t na = static_cast<int64_t>(alphas.size());
        for (int64_t j = 0; j < v; ++j) {
          double s = -INFINITY;
          for (int64_t a = 0; a < na; ++a) s = std::max(s, sc[a * v + j]);
          if (s > best[j]) {  // strict: ties keep the earlier candidate
            best[j] = s, bx[j] = xx, by[j] = yy, bs[j] = sg, b[j] = iv[j];
            for (int64_t k = 0; k < total; ++k) w[k * v + j] = wv[k * v + j];
          }
        }
      }
  std::vector<double> mu(2 * v);
  for (int64_t j = 0; j < v; ++j) mu[2 * j] = bx[j], mu[2 * j + 1] = by[j];
  model->mu = from_vector(mu, {v, 2}).to(DType::Float32);
  model->sigma = from_vector(bs, {v}).to(DType::Float32);
  model->weight = from_vector(w, {total, v}).to(DType::Float32);
  model->bias = from_vector(b, {v}).to(DType::Float32);
  return {model, from_vector(best, {v})};
}

// ---------------------------------------------------------------- Factorized
Factorized::Factorized(MapShape layer_, int64_t n_out_, uint64_t seed) : layer(layer_), n_out(n_out_) {
  check_layers("Factorized", {layer}, n_out);
  Generator g(seed);
  spatial = randn_f({n_out, layer.h, layer.w}, g, 1.0);
  features = randn_f({n_out, layer.c}, g, 1.0 / std::sqrt(static_cast<double>(layer.c)));
  bias = zeros({n_out});
  register_parameter("spatial", &spatial);
  register_parameter("features", &features);
  register_parameter("bias", &bias);
}

namespace {
Tensor unit_spatial(const Tensor& spatial, int64_t n, int64_t hw) {
  const Tensor s = spatial.reshape({n, hw});
  return s / sqrt(sum(square(s), {1}, true));
}
}  // namespace

Tensor Factorized::read(const std::vector<Tensor>& maps) {
  check_maps("Factorized", maps, {layer});
  const int64_t b = maps[0].size(0), hw = layer.h * layer.w;
  const Tensor s = matmul(maps[0].reshape({b, layer.c, hw}), unit_spatial(spatial, n_out, hw).t());  // (B, C, N)
  return sum(s * features.t(), {1}) + bias;
}

Tensor Factorized::penalty() {
  const Tensor s = unit_spatial(spatial, n_out, layer.h * layer.w);
  return sum(sum(abs(s), {1}) * sum(abs(features), {1}));
}

// ---------------------------------------------------------------- Gaussian readout
GaussianReadout::GaussianReadout(MapShape layer_, int64_t n_out_, GaussSigma kind_, double init_sigma, bool elu_output_,
                                 const std::vector<int64_t>& shared_groups, uint64_t seed, const PositionMLP& retinotopy)
    : layer(layer_), n_out(n_out_), kind(kind_), elu_output(elu_output_), gen(seed ^ 0x9e3779b97f4a7c15ULL) {
  check_layers("GaussianReadout", {layer}, n_out);
  CORTEX_CHECK(init_sigma > 0, "GaussianReadout: expected init_sigma > 0, found ", init_sigma);
  Generator g(seed);
  if (retinotopy.coords.defined()) {
    const Tensor& c = retinotopy.coords;
    CORTEX_CHECK(c.dim() == 2 && c.size(0) == n_out && c.size(1) >= 1 && is_floating(c.dtype()),
                 "GaussianReadout: expected retinotopic coords of shape (", n_out, ", D) float, found ",
                 dtype_name(c.dtype()), " ", shape_str(c.shape()));
    CORTEX_CHECK(retinotopy.hidden >= 1 && retinotopy.layers >= 0, "GaussianReadout: expected a position MLP with ",
                 "hidden >= 1 and layers >= 0, found ", retinotopy.hidden, " and ", retinotopy.layers);
    NoGradGuard ng;
    const Tensor c64 = c.to(DType::Float64);
    const Tensor centred = c64 - mean(c64, {0}, true);
    const double scale = amax(abs(centred)).item();
    CORTEX_CHECK(std::isfinite(scale), "GaussianReadout: retinotopic coords hold a non-finite value");
    source_grid = (scale > 0 ? centred / scale : centred).to(DType::Float32).contiguous();
    register_buffer("source_grid", &source_grid);
    int64_t in = c.size(1);
    for (int64_t l = 0; l <= retinotopy.layers; ++l) {
      const int64_t out = l == retinotopy.layers ? 2 : retinotopy.hidden;
      auto lin = std::make_shared<Linear>(in, out);
      lin->weight = randn_f({out, in}, g, 1.0 / std::sqrt(static_cast<double>(in)));
      // The last layer starts small, so the first positions sit near the centre as free mu do.
      if (l == retinotopy.layers) lin->weight = (lin->weight * 0.1).contiguous();
      mu_transform.push_back(register_module("mu_transform." + std::to_string(l), lin));
      in = out;
    }
  } else {
    mu = rand({n_out, 2}, g, -0.1, 0.1, DType::Float32);
  }
  switch (kind) {
    case GaussSigma::Full: {
      sigma = zeros({n_out, 2, 2});
      sigma.select(1, 0).select(1, 0).fill_(init_sigma);
      sigma.select(1, 1).select(1, 1).fill_(init_sigma);
      break;
    }
    case GaussSigma::Uncorrelated: sigma = full({n_out, 2}, init_sigma); break;
    case GaussSigma::Isotropic: sigma = full({n_out, 1}, init_sigma); break;
  }
  if (mu.defined()) register_parameter("mu", &mu);
  register_parameter("sigma", &sigma);
  int64_t rows = n_out;
  if (!shared_groups.empty()) {
    CORTEX_CHECK(static_cast<int64_t>(shared_groups.size()) == n_out, "GaussianReadout: expected one group id per neuron (",
                 n_out, "), found ", shared_groups.size());
    const int64_t g_max = *std::max_element(shared_groups.begin(), shared_groups.end());
    for (int64_t gi : shared_groups)
      CORTEX_CHECK(gi >= 0, "GaussianReadout: expected group ids >= 0, found ", gi);
    rows = g_max + 1;
    group_index = from_vector(shared_groups, {n_out}, DType::Int64);
  }
  features = full({rows, layer.c}, 1.0 / layer.c);
  register_parameter("features", &features);
  if (group_index.defined()) {
    scales = ones({n_out});
    register_parameter("scales", &scales);
    register_buffer("group_index", &group_index);
  }
  bias = zeros({n_out});
  register_parameter("bias", &bias);
}

Tensor GaussianReadout::mean_positions() {
  if (mu_transform.empty()) return mu;
  Tensor h = source_grid.to(sigma.dtype());
  for (size_t l = 0; l < mu_transform.size(); ++l) {
    h = (*mu_transform[l])(h);
    if (l + 1 < mu_transform.size()) h = elu(h);
  }
  return tanh(h);
}

Tensor GaussianReadout::positions(int64_t batch) {
  CORTEX_CHECK(batch > 0, "GaussianReadout: expected a positive batch size, found ", batch);
  const Tensor m = mean_positions();
  Tensor pos;
  if (!training()) {
    pos = m.unsqueeze(0).expand({batch, n_out, 2});
  } else {
    const Tensor eps = randn({batch, n_out, 2}, gen, 0.0, 1.0, m.dtype(), m.device());
    if (kind == GaussSigma::Full)
      pos = m + matmul(sigma.unsqueeze(0), eps.unsqueeze(-1)).squeeze(-1);  // L eps per neuron
    else
      pos = m + sigma * eps;  // (N, 2) or (N, 1) broadcast over (B, N, 2)
  }
  return clamp(pos, -1.0, 1.0);
}

Tensor GaussianReadout::read(const std::vector<Tensor>& maps) {
  check_maps("GaussianReadout", maps, {layer});
  const Tensor& f = maps[0];
  const int64_t b = f.size(0);
  const Tensor grid = positions(b).reshape({b, n_out, 1, 2});
  const Tensor smp = grid_sample(f, grid, /*align_corners=*/true).reshape({b, layer.c, n_out});
  Tensor feat = features;
  if (group_index.defined()) feat = index_select(features, 0, group_index) * scales.unsqueeze(1);
  Tensor y = sum(smp * feat.t(), {1}) + bias;
  return elu_output ? elu(y) + 1.0 : y;
}

Tensor GaussianReadout::penalty() { return sum(abs(features)); }

// ---------------------------------------------------------------- pooled-linear
PooledLinear::PooledLinear(const std::vector<MapShape>& layers_, int64_t n_out, uint64_t seed) : layers(layers_) {
  check_layers("PooledLinear", layers, n_out);
  int64_t total = 0;
  for (const auto& s : layers) total += s.c;
  Generator g(seed);
  weight = randn_f({n_out, total}, g, 1.0 / std::sqrt(static_cast<double>(total)));
  bias = zeros({n_out});
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
}

Tensor PooledLinear::read(const std::vector<Tensor>& maps) {
  check_maps("PooledLinear", maps, layers);
  std::vector<Tensor> pooled;
  for (const auto& m : maps) pooled.push_back(mean(m, {2, 3}));
  return linear(pooled.size() == 1 ? pooled[0] : concat(pooled, 1), weight, bias);
}

// ---------------------------------------------------------------- encoders
namespace {
std::shared_ptr<Linear> init_linear(int64_t in, int64_t out, Generator& g) {
  auto l = std::make_shared<Linear>(in, out);
  l->weight = randn_f({out, in}, g, 1.0 / std::sqrt(static_cast<double>(in)));
  return l;
}
const Tensor& flat_input(const char* who, const std::vector<Tensor>& maps, int64_t in) {
  CORTEX_CHECK(maps.size() == 1, who, ": expected one (B, ", in, ") input, found ", maps.size());
  CORTEX_CHECK(maps[0].defined() && maps[0].dim() == 2 && maps[0].size(1) == in, who, ": expected input (B, ", in,
               "), found ", maps[0].defined() ? shape_str(maps[0].shape()) : std::string("undefined"));
  return maps[0];
}
}  // namespace

TwoLayerEncoder::TwoLayerEncoder(int64_t in, int64_t hidden, int64_t out, uint64_t seed) {
  CORTEX_CHECK(in > 0 && hidden > 0 && out > 0, "TwoLayerEncoder: expected positive sizes, found in ", in,
               " hidden ", hidden, " out ", out);
  Generator g(seed);
  fc1 = register_module("fc1", init_linear(in, hidden, g));
  fc2 = register_module("fc2", init_linear(hidden, out, g));
}

Tensor TwoLayerEncoder::read(const std::vector<Tensor>& maps) {
  return (*fc2)(sigmoid((*fc1)(flat_input("TwoLayerEncoder", maps, fc1->in_features))));
}

LinearEncoder::LinearEncoder(int64_t in, int64_t out, uint64_t seed) {
  CORTEX_CHECK(in > 0 && out > 0, "LinearEncoder: expected positive sizes, found in ", in, " out ", out);
  Generator g(seed);
  fc = register_module("fc", init_linear(in, out, g));
}

Tensor LinearEncoder::read(const std::vector<Tensor>& maps) {
  return (*fc)(flat_input("LinearEncoder", maps, fc->in_features));
}

// ---------------------------------------------------------------- receptive-field centres
namespace {
// mu (N, 2) in [-1, 1] over pixel centres (align_corners) -> fractions of an (H, W) map.
Tensor centres_from_grid(const Tensor& mu, int64_t H, int64_t W) {
  NoGradGuard ng;
  const Tensor m = mu.to(DType::Float64).contiguous();
  const double* p = m.data<double>();
  Tensor out = empty({m.size(0), 2}, DType::Float64);
  double* o = out.data<double>();
  for (int64_t v = 0; v < m.size(0); ++v) {
    o[2 * v] = ((p[2 * v] + 1) / 2 * (W - 1) + 0.5) / W;
    o[2 * v + 1] = ((p[2 * v + 1] + 1) / 2 * (H - 1) + 0.5) / H;
  }
  return out;
}
// The cell of the largest |value| of each map (N, H, W), as fractions.
Tensor centres_from_peaks(const Tensor& maps) {
  NoGradGuard ng;
  const Tensor a = abs(maps.to(DType::Float64)).contiguous();
  const int64_t N = a.size(0), H = a.size(1), W = a.size(2);
  Tensor out = empty({N, 2}, DType::Float64);
  double* o = out.data<double>();
  for (int64_t v = 0; v < N; ++v) {
    const double* p = a.data<double>() + v * H * W;
    const int64_t best = std::max_element(p, p + H * W) - p;
    o[2 * v] = (best % W + 0.5) / W;
    o[2 * v + 1] = (best / W + 0.5) / H;
  }
  return out;
}
}  // namespace

Tensor GaussianReadout::rf_centres() {
  NoGradGuard ng;
  return centres_from_grid(clamp(mean_positions(), -1.0, 1.0), layer.h, layer.w);
}
Tensor GaussianFwRF::rf_centres() { return centres_from_grid(mu, layers[0].h, layers[0].w); }
Tensor Factorized::rf_centres() { return centres_from_peaks(spatial); }
Tensor Factorized::rf_maps() { return detach(spatial); }
Tensor FwRF::rf_centres() { return centres_from_peaks(rf_maps()); }
Tensor FwRF::rf_maps() { return detach(rf[static_cast<size_t>(rf_of[0])]); }

}  // namespace cortex::models
