#include "data/simulate.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tensor/io/atomic_file.h"
#include "tensor/io/image.h"
#include "tensor/io/npy.h"
#include "tensor/random.h"

namespace fs = std::filesystem;

namespace cortex::data {
namespace {

constexpr double kPi = 3.14159265358979323846;

// Independent Philox streams per (seed, purpose, index): splitmix64 of the three.
uint64_t mix(uint64_t seed, uint64_t a, uint64_t b = 0) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * (a + 1) + 0xBF58476D1CE4E5B9ull * (b + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

struct Draws {  // a small cursor over a block of uniforms in [0, 1)
  std::vector<double> u;
  size_t i = 0;
  Draws(uint64_t seed, int64_t n) {
    Generator g(seed);
    u = rand({n}, g, 0.0, 1.0, DType::Float64).to_vector<double>();
  }
  double next(double lo = 0, double hi = 1) {
    CORTEX_CHECK(i < u.size(), "simulate: internal draw budget exhausted");
    return lo + (hi - lo) * u[i++];
  }
};

// A filter restricted to its non-zero box (the Gabor is zero beyond 3 sigma).
struct Box {
  int64_t r0 = 0, c0 = 0, h = 0, w = 0;
  std::vector<double> v;
  double dot(const double* gray, int64_t S) const {
    double s = 0;
    for (int64_t r = 0; r < h; ++r) {
      const double* g = gray + (r0 + r) * S + c0;
      const double* f = v.data() + r * w;
      for (int64_t c = 0; c < w; ++c) s += f[c] * g[c];
    }
    return s;
  }
};

Box box_of(const Tensor& full, int64_t S, double x, double y, double sigma) {
  Box b;
  b.r0 = std::clamp<int64_t>(static_cast<int64_t>(std::floor(y - 3 * sigma)), 0, S - 1);
  b.c0 = std::clamp<int64_t>(static_cast<int64_t>(std::floor(x - 3 * sigma)), 0, S - 1);
  const int64_t r1 = std::clamp<int64_t>(static_cast<int64_t>(std::ceil(y + 3 * sigma)), 0, S - 1);
  const int64_t c1 = std::clamp<int64_t>(static_cast<int64_t>(std::ceil(x + 3 * sigma)), 0, S - 1);
  b.h = r1 - b.r0 + 1;
  b.w = c1 - b.c0 + 1;
  const double* p = full.data<double>();
  for (int64_t r = 0; r < b.h; ++r)
    for (int64_t c = 0; c < b.w; ++c) b.v.push_back(p[(b.r0 + r) * S + b.c0 + c]);
  return b;
}

// The fixed random conv net of the "category" voxels: (S, S) gray -> (16, S/2, S/2) features.
struct ConvNet {
  static constexpr int C1 = 8, C2 = 16;
  std::vector<double> w1, b1, w2, b2;
  explicit ConvNet(uint64_t seed) {
    Generator g(seed);
    w1 = randn({C1 * 9}, g, 0, 1.0 / 3, DType::Float64).to_vector<double>();
    b1 = randn({C1}, g, 0, 0.1, DType::Float64).to_vector<double>();
    w2 = randn({C2 * C1 * 9}, g, 0, 1.0 / std::sqrt(9.0 * C1), DType::Float64).to_vector<double>();
    b2 = randn({C2}, g, 0, 0.1, DType::Float64).to_vector<double>();
  }
  std::vector<double> run(const double* gray, int64_t S) const {
    const int64_t H = S / 2;
    std::vector<double> a(C1 * S * S), p(C1 * H * H), out(C2 * H * H);
    auto at = [](const double* x, int64_t n, int64_t r, int64_t c) {  // zero padding
      return (r < 0 || c < 0 || r >= n || c >= n) ? 0.0 : x[r * n + c];
    };
    for (int k = 0; k < C1; ++k)
      for (int64_t r = 0; r < S; ++r)
        for (int64_t c = 0; c < S; ++c) {
          double s = b1[k];
          for (int i = 0; i < 3; ++i)
            for (int j = 0; j < 3; ++j) s += w1[k * 9 + i * 3 + j] * (at(gray, S, r + i - 1, c + j - 1) - 0.5);
          a[(k * S + r) * S + c] = std::max(s, 0.0);
        }
    for (int k = 0; k < C1; ++k)
      for (int64_t r = 0; r < H; ++r)
        for (int64_t c = 0; c < H; ++c) {
          const double* q = a.data() + k * S * S;
          p[(k * H + r) * H + c] =
              0.25 * (q[2 * r * S + 2 * c] + q[2 * r * S + 2 * c + 1] + q[(2 * r + 1) * S + 2 * c] + q[(2 * r + 1) * S + 2 * c + 1]);
        }
    for (int o = 0; o < C2; ++o)
      for (int64_t r = 0; r < H; ++r)
        for (int64_t c = 0; c < H; ++c) {
          double s = b2[o];
          for (int k = 0; k < C1; ++k)
            for (int i = 0; i < 3; ++i)
              for (int j = 0; j < 3; ++j) s += w2[((o * C1 + k) * 3 + i) * 3 + j] * at(p.data() + k * H * H, H, r + i - 1, c + j - 1);
          out[(o * H + r) * H + c] = std::max(s, 0.0);
        }
    return out;
  }
};

// Per-voxel model pieces, built once.
struct Model {
  std::vector<Box> filters;         // simple: 1; complex: 2 (0, 90 deg); normalized: 8 (4 orientations x 2 phases)
  std::vector<double> pool;         // category: Gaussian weights over (S/2)^2, summing to 1
  std::vector<double> channel;      // category: weights over the 16 channels
};

void write_json(const std::string& path, const nlohmann::json& j) {
  const std::string s = j.dump(1);
  io::write_file_atomic(path, s.data(), s.size());
}

std::string padded(int64_t v, int width) {
  std::string s = std::to_string(v);
  return s.size() < static_cast<size_t>(width) ? std::string(width - s.size(), '0') + s : s;
}

}  // namespace

const char* kind_name(VoxelKind k) {
  switch (k) {
    case VoxelKind::Simple: return "simple";
    case VoxelKind::Complex: return "complex";
    case VoxelKind::Normalized: return "normalized";
    case VoxelKind::Category: return "category";
  }
  return "unknown";
}

Tensor gabor_filter(int64_t size, double x, double y, double sigma, double theta, double freq, double phase) {
  CORTEX_CHECK(size > 0 && sigma > 0, "gabor_filter: expected size > 0 and sigma > 0, found ", size, " and ", sigma);
  Tensor g = zeros({size, size}, DType::Float64);
  double* p = g.data<double>();
  double norm = 0;
  for (int64_t r = 0; r < size; ++r)
    for (int64_t c = 0; c < size; ++c) {
      const double dx = c - x, dy = r - y;
      if (std::abs(dx) > 3 * sigma || std::abs(dy) > 3 * sigma) continue;
      const double xr = dx * std::cos(theta) + dy * std::sin(theta);
      const double v = std::exp(-(dx * dx + dy * dy) / (2 * sigma * sigma)) * std::cos(2 * kPi * freq * xr + phase);
      p[r * size + c] = v;
      norm += v * v;
    }
  CORTEX_CHECK(norm > 0, "gabor_filter: the filter at (", x, ", ", y, ") with sigma ", sigma, " is empty on a ", size,
               "-pixel grid");
  const double inv = 1.0 / std::sqrt(norm);
  for (int64_t i = 0; i < size * size; ++i) p[i] *= inv;
  return g;
}

Tensor image_to_gray(const Tensor& img) {
  CORTEX_CHECK(img.dim() == 3 && img.dtype() == DType::UInt8, "image_to_gray: expected uint8 (H, W, C), found ",
               dtype_name(img.dtype()), " ", shape_str(img.shape()));
  const Tensor c = img.contiguous();
  const int64_t H = c.size(0), W = c.size(1), C = c.size(2);
  Tensor g = empty({H, W}, DType::Float64);
  const uint8_t* s = c.data<uint8_t>();
  double* d = g.data<double>();
  for (int64_t i = 0; i < H * W; ++i) {
    double acc = 0;
    for (int64_t k = 0; k < C; ++k) acc += s[i * C + k];
    d[i] = acc / (255.0 * C);
  }
  return g;
}

Tensor procedural_image(int64_t S, uint64_t seed, int64_t idx) {
  CORTEX_CHECK(S >= 8, "procedural_image: expected size >= 8, found ", S);
  Draws u(mix(seed, 1, idx), 512);
  const int type = std::min(3, static_cast<int>(u.next() * 4));
  std::vector<double> base(S * S, 0.0);
  auto grating = [&](double amp, double theta, double cyc, double ph) {
    const double f = cyc / S;
    for (int64_t r = 0; r < S; ++r)
      for (int64_t c = 0; c < S; ++c)
        base[r * S + c] += amp * std::sin(2 * kPi * f * (c * std::cos(theta) + r * std::sin(theta)) + ph);
  };
  if (type == 0) {  // 1/f noise: random plane waves, amplitude 1/f, log-uniform frequencies
    for (int k = 0; k < 40; ++k) {
      const double cyc = std::exp(u.next(0, std::log(S / 3.0)));
      grating(1.0 / cyc, u.next(0, kPi), cyc, u.next(0, 2 * kPi));
    }
  } else if (type == 1) {  // an oriented grating, possibly in a round aperture
    grating(u.next(0.3, 1.0), u.next(0, kPi), u.next(2, S / 5.0), u.next(0, 2 * kPi));
    const double cx = u.next(0, S), cy = u.next(0, S), rad = u.next(S / 4.0, S);
    for (int64_t r = 0; r < S; ++r)
      for (int64_t c = 0; c < S; ++c)
        if ((c - cx) * (c - cx) + (r - cy) * (r - cy) > rad * rad) base[r * S + c] = 0;
  } else if (type == 2) {  // shapes: filled discs and rectangles on a flat background
    std::fill(base.begin(), base.end(), u.next(-0.5, 0.5));
    const int n = 2 + static_cast<int>(u.next(0, 5));
    for (int k = 0; k < n; ++k) {
      const bool disc = u.next() < 0.5;
      const double cx = u.next(0, S), cy = u.next(0, S), a = u.next(S / 16.0, S / 4.0), b = u.next(S / 16.0, S / 4.0);
      const double level = u.next(-1, 1);
      for (int64_t r = 0; r < S; ++r)
        for (int64_t c = 0; c < S; ++c) {
          const double dx = c - cx, dy = r - cy;
          if (disc ? dx * dx + dy * dy <= a * a : (std::abs(dx) <= a && std::abs(dy) <= b)) base[r * S + c] = level;
        }
    }
  } else {  // texture: a plaid of 2-3 gratings under a smooth random contrast envelope
    const int n = 2 + static_cast<int>(u.next(0, 2));
    for (int k = 0; k < n; ++k) grating(u.next(0.3, 1.0), u.next(0, kPi), u.next(4, S / 4.0), u.next(0, 2 * kPi));
    const double th = u.next(0, kPi), cyc = u.next(0.5, 2), ph = u.next(0, 2 * kPi);
    for (int64_t r = 0; r < S; ++r)
      for (int64_t c = 0; c < S; ++c)
        base[r * S + c] *= 0.6 + 0.4 * std::sin(2 * kPi * cyc / S * (c * std::cos(th) + r * std::sin(th)) + ph);
  }
  const auto [mn, mx] = std::minmax_element(base.begin(), base.end());
  const double lo = *mn, span = std::max(*mx - *mn, 1e-12);
  double gain[3], bias[3];
  for (int k = 0; k < 3; ++k) { gain[k] = u.next(0.6, 1.0); bias[k] = u.next(0, 0.4) * (1 - gain[k]) / 0.4; }
  Tensor img = empty({S, S, 3}, DType::UInt8);
  uint8_t* d = img.data<uint8_t>();
  for (int64_t i = 0; i < S * S; ++i) {
    const double v = (base[i] - lo) / span;
    for (int k = 0; k < 3; ++k) d[i * 3 + k] = static_cast<uint8_t>(std::lround(std::clamp(v * gain[k] + bias[k], 0.0, 1.0) * 255));
  }
  return img;
}

Tensor voxel_responses(const std::vector<Voxel>& voxels, const Tensor& images, uint64_t seed) {
  CORTEX_CHECK(images.dim() == 4 && images.dtype() == DType::UInt8 && images.size(1) == images.size(2),
               "voxel_responses: expected uint8 (N, S, S, C) images, found ", dtype_name(images.dtype()), " ",
               shape_str(images.shape()));
  const int64_t N = images.size(0), S = images.size(1), V = static_cast<int64_t>(voxels.size()), H = S / 2;
  std::vector<Model> models(V);
  bool any_cat = false;
  for (int64_t v = 0; v < V; ++v) {
    const Voxel& vx = voxels[v];
    Model& m = models[v];
    auto add = [&](double th, double ph) {
      m.filters.push_back(box_of(gabor_filter(S, vx.x, vx.y, vx.size, th, vx.frequency, ph), S, vx.x, vx.y, vx.size));
    };
    switch (vx.kind) {
      case VoxelKind::Simple: add(vx.orientation, vx.phase); break;
      case VoxelKind::Complex: add(vx.orientation, 0); add(vx.orientation, kPi / 2); break;
      case VoxelKind::Normalized:
        for (int k = 0; k < 4; ++k) { add(vx.orientation + k * kPi / 4, 0); add(vx.orientation + k * kPi / 4, kPi / 2); }
        break;
      case VoxelKind::Category: {
        any_cat = true;
        m.pool.resize(H * H);
        double s = 0;
        const double cx = vx.x / 2, cy = vx.y / 2, sg = vx.size / 2;
        for (int64_t r = 0; r < H; ++r)
          for (int64_t c = 0; c < H; ++c)
            s += m.pool[r * H + c] = std::exp(-((c - cx) * (c - cx) + (r - cy) * (r - cy)) / (2 * sg * sg));
        for (double& w : m.pool) w /= s;
        Generator g(mix(seed, 3, v));
        m.channel = randn({ConvNet::C2}, g, 0, 1, DType::Float64).to_vector<double>();
        break;
      }
    }
  }
  const ConvNet net(mix(seed, 2));
  Tensor out = empty({N, V}, DType::Float64);
  double* o = out.data<double>();
  const Tensor imgs = images.contiguous();
#pragma omp parallel for schedule(dynamic)
  for (int64_t n = 0; n < N; ++n) {
    const Tensor gray = image_to_gray(imgs.select(0, n));
    const double* g = gray.data<double>();
    std::vector<double> feat;
    if (any_cat) feat = net.run(g, S);
    for (int64_t v = 0; v < V; ++v) {
      const Voxel& vx = voxels[v];
      const Model& m = models[v];
      double r = 0;
      switch (vx.kind) {
        case VoxelKind::Simple: r = m.filters[0].dot(g, S); break;
        case VoxelKind::Complex: {
          const double a = m.filters[0].dot(g, S), b = m.filters[1].dot(g, S);
          r = std::sqrt(a * a + b * b);
          break;
        }
        case VoxelKind::Normalized: {
          double e[4], pool = 0;
          for (int k = 0; k < 4; ++k) {
            const double a = m.filters[2 * k].dot(g, S), b = m.filters[2 * k + 1].dot(g, S);
            e[k] = a * a + b * b;
            pool += e[k] / 4;
          }
          r = e[0] / (1.0 + pool);  // semi-saturation constant c^2 = 1 (energies are O(1)-O(10))
          break;
        }
        case VoxelKind::Category:
          for (int c = 0; c < ConvNet::C2; ++c) {
            double s = 0;
            const double* f = feat.data() + c * H * H;
            for (int64_t i = 0; i < H * H; ++i) s += f[i] * m.pool[i];
            r += m.channel[c] * s;
          }
          break;
      }
      o[n * V + v] = vx.gain * r + vx.offset;
    }
  }
  return out;
}

Tensor noise_ceiling_from_trials(const Tensor& trials) {
  CORTEX_CHECK(trials.dim() == 3 && trials.size(1) >= 2 && trials.size(0) >= 2,
               "noise_ceiling_from_trials: expected (images >= 2, repeats >= 2, voxels), found ", shape_str(trials.shape()));
  const int64_t M = trials.size(0), R = trials.size(1), V = trials.size(2);
  const std::vector<double> t = trials.to(DType::Float64).contiguous().to_vector<double>();
  Tensor nc = empty({V}, DType::Float64);
  double* out = nc.data<double>();
  for (int64_t v = 0; v < V; ++v) {
    double noise = 0, sum = 0, sum2 = 0;
    for (int64_t i = 0; i < M; ++i) {
      double m = 0, s2 = 0;
      for (int64_t r = 0; r < R; ++r) m += t[(i * R + r) * V + v];
      m /= R;
      for (int64_t r = 0; r < R; ++r) {
        const double d = t[(i * R + r) * V + v] - m;
        s2 += d * d;
        sum += t[(i * R + r) * V + v];
      }
      noise += s2 / (R - 1);
    }
    noise /= M;
    const double mean = sum / (M * R);
    for (int64_t k = 0; k < M * R; ++k) {
      const double d = t[k * V + v] - mean;
      sum2 += d * d;
    }
    const double total = sum2 / (M * R - 1);
    const double signal = std::max(0.0, total - noise);
    // No noise at all: the ceiling is 1 unless there is no signal either.
    if (noise <= 0) { out[v] = signal > 0 ? 1.0 : 0.0; continue; }
    const double ncsnr2 = signal / noise;
    out[v] = ncsnr2 / (ncsnr2 + 1.0 / R);
  }
  return nc;
}

Simulation simulate(const SimConfig& cfg) {
  CORTEX_CHECK(cfg.n_train >= 2 && cfg.n_test >= 2 && cfg.voxels >= 1, "simulate: expected train >= 2, test >= 2, voxels >= 1, found ",
               cfg.n_train, ", ", cfg.n_test, ", ", cfg.voxels);
  CORTEX_CHECK(cfg.image_size >= 16 && cfg.image_size <= 1024, "simulate: expected image size in [16, 1024], found ", cfg.image_size);
  CORTEX_CHECK(cfg.snr > 0 && std::isfinite(cfg.snr), "simulate: expected snr > 0, found ", cfg.snr);
  CORTEX_CHECK(cfg.repeats >= 2, "simulate: expected repeats >= 2 (the noise ceiling needs them), found ", cfg.repeats);
  CORTEX_CHECK(cfg.subject >= 1 && cfg.subject <= 99, "simulate: expected subject in [1, 99], found ", cfg.subject);
  Simulation sim;
  sim.config = cfg;
  const int64_t S = cfg.image_size, V = cfg.voxels, N = cfg.n_train, M = cfg.n_test;
  const uint64_t seed = mix(cfg.seed, 100, cfg.subject);
  // Voxels: kinds in four equal blocks (one ROI each), random receptive fields.
  sim.voxels.resize(V);
  int64_t per_hemi[2] = {0, 0};
  for (int64_t v = 0; v < V; ++v) {
    Draws u(mix(seed, 4, v), 16);
    Voxel& vx = sim.voxels[v];
    vx.kind = static_cast<VoxelKind>(std::min<int64_t>(3, v * 4 / V));
    vx.x = u.next(0.15 * S, 0.85 * S);
    vx.y = u.next(0.15 * S, 0.85 * S);
    vx.size = vx.kind == VoxelKind::Category ? std::exp(u.next(std::log(S / 8.0), std::log(S / 4.0)))
                                             : std::exp(u.next(std::log(S / 24.0), std::log(S / 8.0)));
    vx.orientation = u.next(0, kPi);
    vx.frequency = u.next(0.12, 0.2) / vx.size * 2.5;  // about 0.3-0.5 cycles per sigma
    vx.phase = u.next(0, 2 * kPi);
    vx.gain = 1;
    vx.offset = 0;
    vx.hemi = vx.x < S / 2.0 ? 1 : 0;  // left visual field -> right hemisphere
    vx.hemi_index = per_hemi[vx.hemi]++;
  }
  sim.train_images = empty({N, S, S, 3}, DType::UInt8);
  sim.test_images = empty({M, S, S, 3}, DType::UInt8);
#pragma omp parallel for schedule(dynamic)
  for (int64_t i = 0; i < N + M; ++i) {
    const Tensor im = procedural_image(S, seed, i);
    (i < N ? sim.train_images.select(0, i) : sim.test_images.select(0, i - N)).copy_(im);
  }
  // Standardise each voxel by its training mean and sd, so noise sd = 1 / snr for every voxel.
  const Tensor raw = voxel_responses(sim.voxels, sim.train_images, seed);
  const double* rp = raw.data<double>();
  for (int64_t v = 0; v < V; ++v) {
    double m = 0, s2 = 0;
    for (int64_t n = 0; n < N; ++n) m += rp[n * V + v];
    m /= N;
    for (int64_t n = 0; n < N; ++n) s2 += (rp[n * V + v] - m) * (rp[n * V + v] - m);
    const double sd = std::sqrt(s2 / (N - 1));
    Voxel& vx = sim.voxels[v];
    vx.gain = sd > 0 ? 1.0 / sd : 1.0;
    vx.offset = -m * vx.gain;
    vx.noise_sd = 1.0 / cfg.snr;
  }
  // Same arithmetic as voxel_responses with the new gain and offset, without recomputing the models.
  sim.train_clean = empty({N, V}, DType::Float64);
  for (int64_t i = 0; i < N * V; ++i)
    sim.train_clean.data<double>()[i] = sim.voxels[i % V].gain * rp[i] + sim.voxels[i % V].offset;
  sim.test_clean = voxel_responses(sim.voxels, sim.test_images, seed);
  Generator g(mix(seed, 5));
  const int64_t R = cfg.repeats;
  Tensor e1 = randn({N, V}, g, 0, 1, DType::Float64), e2 = randn({M, R, V}, g, 0, 1, DType::Float64);
  sim.train_fmri = empty({N, V}, DType::Float32);
  sim.test_trials = empty({M, R, V}, DType::Float32);
  sim.test_fmri = empty({M, V}, DType::Float32);
  const double *c1 = sim.train_clean.data<double>(), *c2 = sim.test_clean.data<double>();
  const double *n1 = e1.data<double>(), *n2 = e2.data<double>();
  float *f1 = sim.train_fmri.data<float>(), *tr = sim.test_trials.data<float>(), *f2 = sim.test_fmri.data<float>();
  for (int64_t i = 0; i < N * V; ++i) f1[i] = static_cast<float>(c1[i] + sim.voxels[i % V].noise_sd * n1[i]);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t v = 0; v < V; ++v) {
      double mean = 0;
      for (int64_t r = 0; r < R; ++r) {
        const float x = static_cast<float>(c2[i * V + v] + sim.voxels[v].noise_sd * n2[(i * R + r) * V + v]);
        tr[(i * R + r) * V + v] = x;
        mean += x;
      }
      f2[i * V + v] = static_cast<float>(mean / R);
    }
  sim.noise_ceiling = noise_ceiling_from_trials(sim.test_trials);
  return sim;
}

std::string write_simulation(const Simulation& sim, const std::string& out_dir) {
  CORTEX_CHECK(sim.train_fmri.defined() && !sim.voxels.empty(), "write_simulation: expected a simulation from simulate()");
  const fs::path subj = fs::path(out_dir) / ("subj" + padded(sim.config.subject, 2));
  const fs::path tr = subj / "training_split", te = subj / "test_split", roi = subj / "roi_masks";
  for (const fs::path& p : {tr / "training_fmri", tr / "training_images", te / "test_images", te / "test_fmri",
                            te / "noise_ceiling", roi}) {
    std::error_code ec;
    fs::create_directories(p, ec);
    CORTEX_CHECK(!ec, "write_simulation: cannot create ", p.string(), " (", ec.message(), ")");
  }
  const int64_t N = sim.train_images.size(0), M = sim.test_images.size(0), V = static_cast<int64_t>(sim.voxels.size());
  const int w = std::max<int>(4, static_cast<int>(std::to_string(std::max(N, M)).size()));
  // NSD ids are made up (1-based image number) but keep the challenge's file-name pattern.
  for (int64_t i = 0; i < N; ++i)
    io::write_png((tr / "training_images" / ("train-" + padded(i + 1, w) + "_nsd-" + padded(i + 1, 5) + ".png")).string(),
                  sim.train_images.select(0, i));
  for (int64_t i = 0; i < M; ++i)
    io::write_png((te / "test_images" / ("test-" + padded(i + 1, w) + "_nsd-" + padded(N + i + 1, 5) + ".png")).string(),
                  sim.test_images.select(0, i));
  const char* hemi[2] = {"lh", "rh"};
  for (int h = 0; h < 2; ++h) {
    std::vector<int64_t> cols;
    for (int64_t v = 0; v < V; ++v)
      if (sim.voxels[v].hemi == h) cols.push_back(v);
    const int64_t K = static_cast<int64_t>(cols.size());
    Tensor a = empty({N, K}, DType::Float32), b = empty({M, K}, DType::Float32), nc = empty({K}, DType::Float32),
           lab = empty({K}, DType::Int32);
    for (int64_t k = 0; k < K; ++k) {
      a.narrow(1, k, 1).copy_(sim.train_fmri.narrow(1, cols[k], 1));
      b.narrow(1, k, 1).copy_(sim.test_fmri.narrow(1, cols[k], 1));
      nc.narrow(0, k, 1).copy_(sim.noise_ceiling.narrow(0, cols[k], 1));
      lab.data<int32_t>()[k] = static_cast<int32_t>(sim.voxels[cols[k]].kind) + 1;
    }
    const std::string H = hemi[h];
    io::write_npy((tr / "training_fmri" / (H + "_training_fmri.npy")).string(), a);
    io::write_npy((te / "test_fmri" / (H + "_test_fmri.npy")).string(), b);
    io::write_npy((te / "noise_ceiling" / (H + "_noise_ceiling.npy")).string(), nc);
    io::write_npy((roi / (H + ".sim-kinds_challenge_space.npy")).string(), lab);
  }
  nlohmann::json mapping = {{"0", "Unknown"}};
  for (int k = 0; k < 4; ++k) mapping[std::to_string(k + 1)] = kind_name(static_cast<VoxelKind>(k));
  write_json((roi / "mapping_sim-kinds.json").string(), mapping);
  nlohmann::json gt;
  gt["config"] = {{"subject", sim.config.subject}, {"train", N}, {"test", M}, {"voxels", V},
                  {"image_size", sim.config.image_size}, {"seed", sim.config.seed}, {"snr", sim.config.snr},
                  {"repeats", sim.config.repeats}};
  gt["notes"] = "Voxel v is column hemi_index of its hemisphere's arrays; ground_truth.npz holds the noiseless "
                "responses in global voxel order (train_clean, test_clean) and the single test trials. "
                "response = gain * model + offset; see data/simulate.h for the models.";
  nlohmann::json vs = nlohmann::json::array();
  for (int64_t v = 0; v < V; ++v) {
    const Voxel& x = sim.voxels[v];
    vs.push_back({{"voxel", v}, {"kind", kind_name(x.kind)}, {"roi", kind_name(x.kind)}, {"hemi", hemi[x.hemi]},
                  {"hemi_index", x.hemi_index}, {"x", x.x}, {"y", x.y}, {"size", x.size}, {"orientation", x.orientation},
                  {"frequency", x.frequency}, {"phase", x.phase}, {"gain", x.gain}, {"offset", x.offset},
                  {"noise_sd", x.noise_sd}});
  }
  gt["voxels"] = vs;
  write_json((subj / "ground_truth.json").string(), gt);
  std::vector<double> x(V), y(V), sz(V), th(V);
  std::vector<int32_t> kind(V), hm(V);
  for (int64_t v = 0; v < V; ++v) {
    const Voxel& q = sim.voxels[v];
    x[v] = q.x; y[v] = q.y; sz[v] = q.size; th[v] = q.orientation;
    kind[v] = static_cast<int32_t>(q.kind); hm[v] = q.hemi;
  }
  io::write_npz((subj / "ground_truth.npz").string(),
                {{"train_clean", sim.train_clean}, {"test_clean", sim.test_clean}, {"test_trials", sim.test_trials},
                 {"x", from_vector(x)}, {"y", from_vector(y)}, {"size", from_vector(sz)},
                 {"orientation", from_vector(th)}, {"kind", from_vector(kind)}, {"hemi", from_vector(hm)}},
                true);
  return subj.string();
}

GroundTruth read_ground_truth(const std::string& subject_dir, const std::string& hemi) {
  const char* fn = "read_ground_truth";
  CORTEX_CHECK(hemi == "lh" || hemi == "rh" || hemi == "both", fn, ": expected hemi lh, rh or both, found '", hemi, "'");
  const fs::path path = fs::path(subject_dir) / "ground_truth.json";
  std::ifstream in(path);
  CORTEX_CHECK(in.good(), fn, ": cannot open ", path.string(), " (only folders written by cortex simulate have one)");
  nlohmann::json gt;
  try {
    gt = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    throw Error(std::string(fn) + ": " + path.string() + " is not valid JSON: " + e.what());
  }
  GroundTruth out;
  std::vector<Voxel> by_hemi[2];
  try {
    out.image_size = gt.at("config").at("image_size").get<int64_t>();
    for (const auto& j : gt.at("voxels")) {
      Voxel v{};
      const std::string kind = j.at("kind").get<std::string>();
      int k = 0;
      while (k < 4 && kind != kind_name(static_cast<VoxelKind>(k))) ++k;
      CORTEX_CHECK(k < 4, fn, ": ", path.string(), ": unknown voxel kind '", kind, "'");
      v.kind = static_cast<VoxelKind>(k);
      v.x = j.at("x").get<double>(), v.y = j.at("y").get<double>(), v.size = j.at("size").get<double>();
      v.orientation = j.at("orientation").get<double>(), v.frequency = j.at("frequency").get<double>();
      v.phase = j.at("phase").get<double>(), v.gain = j.at("gain").get<double>(), v.offset = j.at("offset").get<double>();
      v.noise_sd = j.at("noise_sd").get<double>();
      v.hemi = j.at("hemi").get<std::string>() == "rh" ? 1 : 0;
      v.hemi_index = j.at("hemi_index").get<int64_t>();
      by_hemi[v.hemi].push_back(v);
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string(fn) + ": " + path.string() + " lacks a field: " + e.what());
  }
  for (int h = 0; h < 2; ++h) {
    auto& vs = by_hemi[h];
    std::sort(vs.begin(), vs.end(), [](const Voxel& a, const Voxel& b) { return a.hemi_index < b.hemi_index; });
    for (size_t i = 0; i < vs.size(); ++i)
      CORTEX_CHECK(vs[i].hemi_index == static_cast<int64_t>(i), fn, ": ", path.string(), ": the ",
                   h ? "rh" : "lh", " voxels' hemi_index values are not 0..", vs.size() - 1);
  }
  if (hemi != "rh") out.voxels = by_hemi[0];
  if (hemi != "lh") out.voxels.insert(out.voxels.end(), by_hemi[1].begin(), by_hemi[1].end());
  return out;
}

}  // namespace cortex::data
