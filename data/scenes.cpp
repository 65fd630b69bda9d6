// The scene simulator (scenes.h).
#include "data/scenes.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "tensor/io/atomic_file.h"
#include "tensor/io/mask.h"
#include "tensor/io/npy.h"
#include "tensor/random.h"

namespace cortex::data {

namespace {

// Uniform draws from image i's Philox stream, one counter after another.
struct Stream {
  uint64_t seed, base;
  int64_t i = 0;
  double u(double lo, double hi) { return philox_uniform_value(seed, base, i++, lo, hi); }
  int pick(int n) { return std::min(n - 1, static_cast<int>(u(0, n))); }
};

struct Rgb {
  double r, g, b;
};

Rgb hsv(double h, double s, double v) {
  h = (h - std::floor(h)) * 6;
  const int k = static_cast<int>(h) % 6;
  const double f = h - std::floor(h), p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
  switch (k) {
    case 0: return {v, t, p};
    case 1: return {q, v, p};
    case 2: return {p, v, t};
    case 3: return {p, q, v};
    case 4: return {t, p, v};
    default: return {v, p, q};
  }
}

struct ClassTexture {
  double orientation, frequency;  // radians, cycles per pixel
  Rgb colour;
};

ClassTexture class_texture(int c, int K) {  // c in 1..K
  return {(c - 1) * M_PI / K, 0.06 + 0.18 * (c - 1) / std::max(1, K - 1), hsv(static_cast<double>(c - 1) / K, 0.8, 0.9)};
}

enum Shape { Ellipse = 0, Rectangle = 1, Blob = 2 };

}  // namespace

Scenes simulate_scenes(const SceneConfig& cfg) {
  CORTEX_CHECK(cfg.images >= 1, "simulate_scenes: need at least one image, found ", cfg.images);
  CORTEX_CHECK(cfg.size >= 8 && cfg.size <= 2048, "simulate_scenes: the image size must be in 8..2048, found ", cfg.size);
  CORTEX_CHECK(cfg.classes >= 1 && cfg.classes <= 254, "simulate_scenes: the class count must be in 1..254, found ",
               cfg.classes);
  CORTEX_CHECK(cfg.max_objects >= 1 && cfg.max_objects <= 64, "simulate_scenes: max_objects must be in 1..64, found ",
               cfg.max_objects);
  CORTEX_CHECK(cfg.border >= 0 && cfg.border <= cfg.size / 4, "simulate_scenes: the ignore border must be in 0..size/4 (",
               cfg.size / 4, "), found ", cfg.border);
  CORTEX_CHECK(std::isfinite(cfg.noise) && cfg.noise >= 0, "simulate_scenes: the pixel noise sd must be >= 0, found ",
               cfg.noise);
  const int64_t N = cfg.images, S = cfg.size;
  const int K = cfg.classes;
  Scenes out;
  out.config = cfg;
  out.images = empty({N, S, S, 3}, DType::UInt8);
  out.labels = empty({N, S, S}, DType::UInt8);
  out.figure = empty({N, S, S}, DType::UInt8);
  uint8_t* img_all = out.images.data<uint8_t>();
  uint8_t* lab_all = out.labels.data<uint8_t>();
  uint8_t* fig_all = out.figure.data<uint8_t>();
#pragma omp parallel for schedule(dynamic)
  for (int64_t n = 0; n < N; ++n) {
    Stream rs{cfg.seed, static_cast<uint64_t>(n) << 24};
    const uint64_t noise_base = (static_cast<uint64_t>(n) << 24) + (uint64_t(1) << 23);
    std::vector<double> px(static_cast<size_t>(S * S * 3));
    std::vector<uint8_t> lab(static_cast<size_t>(S * S), 0);
    // Background: two greyish low-contrast gratings.
    Rgb bc[2];
    double bt[2], bf[2], bp[2];
    for (int g = 0; g < 2; ++g) {
      bc[g] = hsv(rs.u(0, 1), rs.u(0, 0.25), rs.u(0.35, 0.75));
      bt[g] = rs.u(0, M_PI), bf[g] = rs.u(0.02, 0.25), bp[g] = rs.u(0, 2 * M_PI);
    }
    for (int64_t y = 0; y < S; ++y)
      for (int64_t x = 0; x < S; ++x) {
        double v[3] = {0, 0, 0};
        for (int g = 0; g < 2; ++g) {
          const double w = 0.5 * (0.75 + 0.2 * std::sin(2 * M_PI * bf[g] * (x * std::cos(bt[g]) + y * std::sin(bt[g])) + bp[g]));
          v[0] += w * bc[g].r, v[1] += w * bc[g].g, v[2] += w * bc[g].b;
        }
        for (int ch = 0; ch < 3; ++ch) px[(y * S + x) * 3 + ch] = 255 * v[ch];
      }
    const int objects = 1 + rs.pick(cfg.max_objects);
    for (int o = 0; o < objects; ++o) {
      const int c = 1 + rs.pick(K);
      const ClassTexture tex = class_texture(c, K);
      const int shape = rs.pick(3);
      const double cx = rs.u(0.2, 0.8) * S, cy = rs.u(0.2, 0.8) * S;
      double a = rs.u(0.12, 0.3) * S, b = rs.u(0.12, 0.3) * S;
      if (shape == Rectangle) a *= 0.85, b *= 0.85;  // about the area of an ellipse of the same axes
      const double ang = rs.u(0, M_PI), h1 = rs.u(0, 2 * M_PI), h2 = rs.u(0, 2 * M_PI);
      const double theta = tex.orientation + rs.u(-1, 1) * M_PI / 18, phase = rs.u(0, 2 * M_PI);
      const double jr = rs.u(-0.05, 0.05), jg = rs.u(-0.05, 0.05), jb = rs.u(-0.05, 0.05);
      const double col[3] = {std::clamp(tex.colour.r + jr, 0.0, 1.0), std::clamp(tex.colour.g + jg, 0.0, 1.0),
                             std::clamp(tex.colour.b + jb, 0.0, 1.0)};
      for (int64_t y = 0; y < S; ++y)
        for (int64_t x = 0; x < S; ++x) {
          const double dx = x + 0.5 - cx, dy = y + 0.5 - cy;
          const double u = (dx * std::cos(ang) + dy * std::sin(ang)) / a, v = (-dx * std::sin(ang) + dy * std::cos(ang)) / b;
          bool inside;
          if (shape == Ellipse) {
            inside = u * u + v * v <= 1;
          } else if (shape == Rectangle) {
            inside = std::abs(u) <= 1 && std::abs(v) <= 1;
          } else {
            const double phi = std::atan2(v, u);
            const double r = 1 + 0.2 * std::sin(3 * phi + h1) + 0.12 * std::sin(5 * phi + h2);
            inside = u * u + v * v <= r * r;
          }
          if (!inside) continue;
          lab[y * S + x] = static_cast<uint8_t>(c);
          const double w = 0.55 + 0.4 * std::sin(2 * M_PI * tex.frequency * (x * std::cos(theta) + y * std::sin(theta)) + phase);
          for (int ch = 0; ch < 3; ++ch) px[(y * S + x) * 3 + ch] = 255 * col[ch] * w;
        }
    }
    uint8_t* img = img_all + n * S * S * 3;
    for (int64_t i = 0; i < S * S * 3; ++i) {
      const double v = px[i] + (cfg.noise > 0 ? philox_normal_value(cfg.seed, noise_base, i, 0, cfg.noise) : 0.0);
      img[i] = static_cast<uint8_t>(std::clamp(std::lround(v), 0L, 255L));
    }
    uint8_t* l = lab_all + n * S * S;
    uint8_t* f = fig_all + n * S * S;
    const int B = cfg.border;
    for (int64_t y = 0; y < S; ++y)
      for (int64_t x = 0; x < S; ++x) {
        const uint8_t c = lab[y * S + x];
        bool edge = false;
        for (int64_t yy = std::max<int64_t>(0, y - B); yy <= std::min(S - 1, y + B) && !edge; ++yy)
          for (int64_t xx = std::max<int64_t>(0, x - B); xx <= std::min(S - 1, x + B); ++xx)
            if (lab[yy * S + xx] != c) {
              edge = true;
              break;
            }
        l[y * S + x] = edge ? io::kMaskIgnore : c;
        f[y * S + x] = edge ? io::kMaskIgnore : c == 0 ? 0 : 1;
      }
  }
  return out;
}

void write_scenes(const Scenes& s, const std::string& dir) {
  namespace fs = std::filesystem;
  CORTEX_CHECK(s.images.defined() && s.labels.defined() && s.figure.defined(), "write_scenes: the scenes are incomplete");
  std::error_code ec;
  fs::create_directories(fs::path(dir) / "masks", ec);
  fs::create_directories(fs::path(dir) / "figure", ec);
  CORTEX_CHECK(fs::is_directory(fs::path(dir) / "masks") && fs::is_directory(fs::path(dir) / "figure"), dir,
               ": cannot create the output folder (", ec.message(), ")");
  const int64_t N = s.images.size(0);
  for (int64_t n = 0; n < N; ++n) {
    char name[32];
    std::snprintf(name, sizeof name, "%05lld.png", static_cast<long long>(n));
    io::write_index_mask((fs::path(dir) / "masks" / name).string(), s.labels.select(0, n).contiguous());
    io::write_binary_mask((fs::path(dir) / "figure" / name).string(), s.figure.select(0, n).contiguous());
  }
  io::write_npy((fs::path(dir) / "labels.npy").string(), s.labels);
  io::write_npy((fs::path(dir) / "figure.npy").string(), s.figure);
  nlohmann::json j;
  const SceneConfig& c = s.config;
  j["images"] = c.images, j["size"] = c.size, j["classes"] = c.classes, j["max_objects"] = c.max_objects;
  j["border"] = c.border, j["noise"] = c.noise, j["seed"] = c.seed;
  j["ignore_label"] = io::kMaskIgnore;
  for (int k = 1; k <= c.classes; ++k) {
    const ClassTexture t = class_texture(k, c.classes);
    j["class_textures"].push_back({{"label", k},
                                   {"orientation_deg", t.orientation * 180 / M_PI},
                                   {"frequency_cycles_per_pixel", t.frequency},
                                   {"rgb", {t.colour.r, t.colour.g, t.colour.b}}});
  }
  const std::string text = j.dump(2) + "\n";
  io::write_file_atomic((fs::path(dir) / "scenes.json").string(), text.data(), text.size());
  // images.npy last: its presence says the folder is complete.
  io::write_npy((fs::path(dir) / "images.npy").string(), s.images);
}

}  // namespace cortex::data
