// The cortex concepts job (analysis/concepts_job.h; docs/alignedcut.md, "Concepts and trajectories").
#include "analysis/concepts_job.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "analysis/report.h"
#include "analysis/spectral/ncut.h"
#include "encoding/model_file.h"
#include "encoding/pipeline.h"
#include "tensor/io/atomic_file.h"
#include "tensor/io/image.h"
#include "tensor/io/npy.h"
#include "tensor/io/safetensors.h"

namespace cortex::analysis {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using encoding::split_commas;

// A colour per concept: hues evenly around the wheel, two lightnesses alternating so neighbours differ.
std::array<uint8_t, 3> concept_colour(int64_t c, int64_t C) {
  const double h = std::fmod(static_cast<double>(c) / static_cast<double>(std::max<int64_t>(C, 1)), 1.0) * 6.0;
  const double v = c % 2 == 0 ? 1.0 : 0.7, s = 0.85;
  const int i = static_cast<int>(std::floor(h)) % 6;
  const double f = h - std::floor(h), p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
  double r = v, g = t, b = p;
  switch (i) {
    case 1:
      r = q, g = v, b = p;
      break;
    case 2:
      r = p, g = v, b = t;
      break;
    case 3:
      r = p, g = q, b = v;
      break;
    case 4:
      r = t, g = p, b = v;
      break;
    case 5:
      r = v, g = p, b = q;
      break;
    default:
      break;
  }
  auto u = [](double x) { return static_cast<uint8_t>(std::lround(std::clamp(x, 0.0, 1.0) * 255)); };
  return {u(r), u(g), u(b)};
}

// Blue (-1) .. white (0) .. red (+1).
std::array<uint8_t, 3> diverging(double x) {
  x = std::clamp(x, -1.0, 1.0);
  auto u = [](double y) { return static_cast<uint8_t>(std::lround(std::clamp(y, 0.0, 1.0) * 255)); };
  return x >= 0 ? std::array<uint8_t, 3>{255, u(1 - x), u(1 - x)} : std::array<uint8_t, 3>{u(1 + x), u(1 + x), 255};
}

std::string img_tag(const std::vector<uint8_t>& png, const std::string& alt) {
  return "<img alt='" + alt + "' style='image-rendering:pixelated;margin:2px' src='data:image/png;base64," +
         base64(png) + "'>";
}

void write_png_file(const fs::path& path, const Tensor& img) { io::write_png(path.string(), img); }

void write_text(const fs::path& path, const std::string& s) {
  io::write_file_atomic(path.string(), s.data(), s.size());
}

}  // namespace

std::vector<std::string> run_concepts_job(const ConceptsJob& job, const std::function<void(const std::string&)>& log) {
  const char* op = "concepts";
  const auto t0 = Clock::now();
  auto seconds = [&] { return std::chrono::duration<double>(Clock::now() - t0).count(); };
  CORTEX_CHECK(!job.out.empty(), op, ": expected --out DIR, found none");
  CORTEX_CHECK(job.space == "tsne" || job.space == "eigenvectors", op,
               ": expected --space tsne or eigenvectors, found '", job.space, "'");
  CORTEX_CHECK(job.tsne_dims == 2 || job.tsne_dims == 3, op, ": expected --tsne-dims 2 or 3, found ", job.tsne_dims);
  CORTEX_CHECK(job.max_images >= 0, op, ": expected --max-images >= 0, found ", job.max_images);

  // Features: one (B, C_l, H_l, W_l) map per key.
  const std::vector<std::string> keys = split_commas(job.keys, false);
  CORTEX_CHECK(!keys.empty(), op, ": expected --key a,b,... naming the layers, found none");
  const std::map<std::string, Tensor> file = io::load_safetensors(job.features);
  std::vector<Tensor> maps;
  std::vector<std::pair<int64_t, int64_t>> grids;
  for (const std::string& k : keys) {
    if (file.count(k) == 0) {
      std::string have;
      for (const auto& [name, t] : file) have += (have.empty() ? "" : ", ") + name;
      throw Error(std::string(op) + ": " + job.features + " has no tensor '" + k + "'; it has: " + have);
    }
    const Tensor& f = file.at(k);
    CORTEX_CHECK(f.dim() == 4, op, ": ", job.features, ": '", k, "' should be feature maps (B, C, H, W), found ",
                 shape_str(f.shape()), " (tap a ViT as 'name:grid')");
    CORTEX_CHECK(maps.empty() || f.size(0) == maps[0].size(0), op, ": ", job.features, ": '", k, "' has ", f.size(0),
                 " images, '", keys[0], "' has ", maps[0].size(0));
    maps.push_back(f);
    grids.emplace_back(f.size(2), f.size(3));
  }
  const int64_t B = maps[0].size(0), L = static_cast<int64_t>(keys.size());
  CORTEX_CHECK(B >= 1, op, ": ", job.features, ": expected at least one image, found 0");

  // The channel-align model: align.<l> and head.weight, for the same taps.
  auto [tensors, settings] = encoding::read_model_file(job.model);
  CORTEX_CHECK(settings.readout == "channel-align", op, ": ", job.model,
               ": expected a channel-align model file (cortex ", "fit --readout channel-align), found readout '",
               settings.readout, "'");
  const std::vector<std::string> taps = split_commas(settings.tap, false);
  CORTEX_CHECK(taps == keys, op, ": ", job.model, " aligns taps '", settings.tap, "', --key gives '", job.keys,
               "' (the same layers in the same order are needed)");
  std::vector<Tensor> align;
  for (int64_t l = 0; l < L; ++l) {
    const std::string name = "align." + std::to_string(l);
    CORTEX_CHECK(tensors.count(name) != 0, op, ": ", job.model, ": expected a tensor '", name, "', found none");
    align.push_back(tensors.at(name));
    CORTEX_CHECK(align[l].dim() == 2 && align[l].size(1) == maps[l].size(1), op, ": ", job.model, ": ", name, " is ",
                 shape_str(align[l].shape()), ", expected (D, ", maps[l].size(1), ") for the ", maps[l].size(1),
                 " channels of '", keys[l], "'");
  }
  CORTEX_CHECK(tensors.count("head.weight") != 0, op, ": ", job.model, ": expected a tensor 'head.weight', found none");
  const Tensor head = tensors.at("head.weight");
  const Tensor aligned = align_nodes(maps, align);  // (N, D)
  const int64_t N = aligned.size(0), D = aligned.size(1);
  CORTEX_CHECK(head.dim() == 2 && head.size(1) == D, op, ": ", job.model, ": head.weight is ", shape_str(head.shape()),
               ", expected (V, ", D, ")");
  const int64_t V = head.size(0);
  CORTEX_CHECK(job.concepts.concepts >= 1 && job.concepts.concepts <= N, op, ": expected 1 <= concepts <= N = ", N,
               ", found ", job.concepts.concepts);

  // Optional inputs read before any long computation, so their mistakes end the job at once.
  Tensor images;
  if (!job.images.empty()) {
    images = io::read_npy(job.images);
    CORTEX_CHECK(images.dtype() == DType::UInt8 && images.dim() == 4 && images.size(3) == 3 && images.size(0) == B, op,
                 ": ", job.images, ": expected uint8 (", B, ", H, W, 3) images, found ", dtype_name(images.dtype()),
                 " ", shape_str(images.shape()));
  }
  std::vector<std::pair<std::string, std::vector<int64_t>>> rois;
  if (!job.rois.empty()) {
    nlohmann::json m;
    try {
      std::ifstream f(job.rois);
      CORTEX_CHECK(f.good(), op, ": cannot open --rois ", job.rois);
      m = nlohmann::json::parse(f);
    } catch (const nlohmann::json::exception& e) {
      throw Error(std::string(op) + ": " + job.rois + ": not valid JSON (" + e.what() + ")");
    }
    CORTEX_CHECK(m.is_object() && !m.empty(), op, ": ", job.rois, ": expected {\"roi\": [voxel column, ...]}");
    for (auto it = m.begin(); it != m.end(); ++it) {
      CORTEX_CHECK(it.value().is_array() && !it.value().empty(), op, ": ", job.rois, ": ROI ", it.key(),
                   " should list voxel columns");
      std::vector<int64_t> cols;
      for (const auto& c : it.value()) {
        CORTEX_CHECK(c.is_number_integer() && c.get<int64_t>() >= 0 && c.get<int64_t>() < V, op, ": ", job.rois,
                     ": ROI ", it.key(), " lists ", c.dump(), ", expected a voxel column in [0, ", V, ")");
        cols.push_back(c.get<int64_t>());
      }
      rois.emplace_back(it.key(), cols);
    }
  }

  // The spectral embedding: cortex ncut's file, checked before anything long runs, or the job's own.
  Tensor eig, embedding;
  std::string source;
  if (!job.ncut.empty()) {
    const std::map<std::string, Tensor> e = io::load_safetensors(job.ncut);
    CORTEX_CHECK(e.count("eigenvectors") != 0, op, ": ", job.ncut, ": expected a tensor 'eigenvectors' (cortex ncut's ",
                 "output), found none");
    eig = e.at("eigenvectors");
    CORTEX_CHECK(eig.dim() == 2 && eig.size(0) == N, op, ": ", job.ncut, ": eigenvectors are ", shape_str(eig.shape()),
                 ", expected (", N, ", k): one row per node of the ", L, " layers, layer-major");
    if (e.count("node_input") != 0) {
      const std::vector<int64_t> ni = e.at("node_input").to(DType::Int64).to_vector<int64_t>();
      CORTEX_CHECK(static_cast<int64_t>(ni.size()) == N, op, ": ", job.ncut, ": node_input has ", ni.size(),
                   " entries, expected ", N);
      int64_t n = 0;
      for (int64_t l = 0; l < L; ++l)
        for (int64_t i = 0; i < B * grids[l].first * grids[l].second; ++i, ++n)
          CORTEX_CHECK(ni[n] == l, op, ": ", job.ncut, ": node ", n, " comes from input ", ni[n], ", expected layer ",
                       l, " (the graph's sources must be the --key layers, in order)");
    }
    source = job.ncut;
    if (job.space == "tsne" && e.count("tsne") != 0 && e.at("tsne").dim() == 2 &&
        e.at("tsne").size(1) == job.tsne_dims && e.at("tsne").size(0) == N) {
      embedding = e.at("tsne").to(DType::Float64);
      source += " (its tsne)";
    }
  }
  log("nodes " + std::to_string(N) + " (" + std::to_string(L) + " layers x " + std::to_string(B) + " images), D " +
      std::to_string(D) + ", voxels " + std::to_string(V));
  if (job.ncut.empty()) {
    spectral::NcutOptions no;
    no.k = std::min(job.k, N);
    no.samples = job.samples;
    no.knn = job.knn;
    no.seed = job.seed;
    log("ncut of the aligned nodes: k " + std::to_string(no.k) + ", " + std::to_string(std::min(job.samples, N)) +
        " samples");
    eig = spectral::ncut(aligned, no).eigenvectors;
    source = "ncut of the aligned activations";
    log("ncut done at " + std::to_string(seconds()) + " s");
  }
  if (!embedding.defined()) {
    if (job.space == "tsne") {
      embedding = spectral_tsne(eig, job.tsne_dims, job.tsne_samples, job.seed);
      log("spectral t-SNE (" + std::to_string(job.tsne_dims) + "-D) done at " + std::to_string(seconds()) + " s");
    } else {
      embedding = eig.to(DType::Float64);
    }
  }

  const Concepts c = find_concepts(embedding, job.concepts);
  const int64_t C = job.concepts.concepts;
  const ConceptStats stats = concept_activations(aligned, c.member, C);
  const Tensor bmaps = brain_maps(stats.mean, head);
  const Trajectories traj = trajectories(c.nearest, C, B, grids);

  // Node -> (layer, image, row, column).
  auto locate = [&](int64_t n) {
    int64_t l = 0;
    while (n >= B * grids[l].first * grids[l].second) n -= B * grids[l].first * grids[l].second, ++l;
    const int64_t W = grids[l].second, H = grids[l].first;
    return std::array<int64_t, 4>{l, n / (H * W), (n / W) % H, n % W};
  };

  fs::create_directories(job.out);
  const fs::path out(job.out);
  const std::vector<int64_t> centres = c.centres.to_vector<int64_t>(), counts = c.counts.to_vector<int64_t>();
  const std::vector<double> pts = c.centre_points.to_vector<double>(), mean = stats.mean.to_vector<double>(),
                            sd = stats.std.to_vector<double>(), bm = bmaps.to_vector<double>(),
                            tr = traj.transitions.to_vector<double>();
  const int64_t e = embedding.size(1);
  const bool quantile = job.concepts.radius == 0;

  nlohmann::json js;
  js["concepts"] = C;
  js["nodes"] = N;
  js["layers"] = keys;
  js["images"] = B;
  js["dim"] = D;
  js["voxels"] = V;
  js["space"] = job.space == "tsne" ? "spectral t-SNE " + std::to_string(e) + "-D" : "eigenvectors";
  js["embedding_from"] = source;
  js["radius"] = c.radius;
  js["radius_rule"] = quantile ? "quantile " + std::to_string(job.concepts.radius_quantile) +
                                     " of the nodes' distances to their nearest centre"
                               : "given";
  js["trajectory_grid"] = {traj.gh, traj.gw};
  nlohmann::json list = nlohmann::json::array();
  for (int64_t k = 0; k < C; ++k) {
    const auto where = locate(centres[k]);
    nlohmann::json item;
    item["centre_node"] = centres[k];
    item["centre_layer"] = keys[where[0]];
    item["centre_image"] = where[1];
    item["centre_row"] = where[2];
    item["centre_col"] = where[3];
    item["centre_point"] = std::vector<double>(pts.begin() + k * e, pts.begin() + (k + 1) * e);
    item["radius"] = c.radius;
    item["count"] = counts[k];
    item["mean"] = std::vector<double>(mean.begin() + k * D, mean.begin() + (k + 1) * D);
    item["std"] = std::vector<double>(sd.begin() + k * D, sd.begin() + (k + 1) * D);
    item["brain_map"] = std::vector<double>(bm.begin() + k * V, bm.begin() + (k + 1) * V);
    list.push_back(item);
  }
  js["list"] = list;
  nlohmann::json tj = nlohmann::json::array();
  for (int64_t l = 0; l + 1 < L; ++l) {
    nlohmann::json m = nlohmann::json::array();
    for (int64_t a = 0; a < C; ++a)
      m.push_back(std::vector<double>(tr.begin() + (l * C + a) * C, tr.begin() + (l * C + a + 1) * C));
    tj.push_back({{"from", keys[l]}, {"to", keys[l + 1]}, {"matrix", m}});
  }
  js["transitions"] = tj;

  std::vector<std::string> written;
  auto npy = [&](const std::string& name, const Tensor& t) {
    io::write_npy((out / name).string(), t);
    written.push_back((out / name).string());
  };
  npy("concepts.npy", c.member);
  npy("nearest.npy", c.nearest);
  npy("embedding.npy", embedding);  // float64: exactly what the centres were picked in
  npy("concept_mean.npy", stats.mean);
  npy("concept_std.npy", stats.std);
  npy("brain_maps.npy", bmaps);
  npy("transitions.npy", traj.transitions);
  npy("trajectories.npy", traj.path);
  if (job.write_aligned) {
    std::vector<std::pair<std::string, Tensor>> per_layer;
    int64_t row = 0;
    for (int64_t l = 0; l < L; ++l) {
      const auto [H, W] = grids[l];
      per_layer.emplace_back(
          keys[l], aligned.slice(0, row, row + B * H * W).view({B, H, W, D}).permute({0, 3, 1, 2}).contiguous());
      row += B * H * W;
    }
    io::write_safetensors((out / "aligned.safetensors").string(), per_layer,
                          {{"model", job.model}, {"features", job.features}});
    written.push_back((out / "aligned.safetensors").string());
  }
  write_text(out / "concepts.json", js.dump(1) + "\n");
  written.push_back((out / "concepts.json").string());

  // Pictures: masks per layer and image, transition heatmaps, brain maps.
  const fs::path pics = out / "pictures";
  fs::create_directories(pics);
  const std::vector<int64_t> near = c.nearest.to_vector<int64_t>(), member = c.member.to_vector<int64_t>();
  const int64_t shown = std::min(B, job.max_images);
  const int64_t S = images.defined() ? images.size(1) : 0, SW = images.defined() ? images.size(2) : 0;
  const std::vector<uint8_t> px = images.defined() ? images.contiguous().to_vector<uint8_t>() : std::vector<uint8_t>{};
  std::vector<std::vector<std::string>> mask_tags(L);
  int64_t offset = 0;
  for (int64_t l = 0; l < L; ++l) {
    const auto [H, W] = grids[l];
    // Image size: the picture's, or 8 pixels per cell (at least 64 pixels a side) without images.
    const int64_t ph = S > 0 ? S : std::max<int64_t>(8 * H, 64), pw = S > 0 ? SW : std::max<int64_t>(8 * W, 64);
    for (int64_t b = 0; b < shown; ++b) {
      std::vector<uint8_t> img(ph * pw * 3);
      for (int64_t y = 0; y < ph; ++y)
        for (int64_t x = 0; x < pw; ++x) {
          const int64_t n = offset + (b * H + y * H / ph) * W + x * W / pw;
          const auto col = concept_colour(near[n], C);
          // Inside a sphere: the concept's colour; outside (nearest centre only): half as strong.
          const double a = member[n] >= 0 ? 0.6 : 0.3;
          for (int ch = 0; ch < 3; ++ch) {
            const double base = S > 0 ? px[((b * S + y) * SW + x) * 3 + ch] : 128.0;
            img[(y * pw + x) * 3 + ch] = static_cast<uint8_t>(std::lround((1 - a) * base + a * col[ch]));
          }
        }
      const Tensor t = from_vector(img, {ph, pw, 3}, DType::UInt8);
      char name[64];
      std::snprintf(name, sizeof name, "mask_layer%02lld_image%04lld.png", static_cast<long long>(l),
                    static_cast<long long>(b));
      write_png_file(pics / name, t);
      written.push_back((pics / name).string());
      mask_tags[l].push_back(img_tag(io::encode_png(t), keys[l] + " image " + std::to_string(b)));
    }
    offset += B * H * W;
  }
  const int64_t cell = std::max<int64_t>(4, 240 / C);
  std::vector<std::string> trans_tags;
  for (int64_t l = 0; l + 1 < L; ++l) {
    std::vector<uint8_t> img(C * cell * C * cell * 3);
    for (int64_t y = 0; y < C * cell; ++y)
      for (int64_t x = 0; x < C * cell; ++x) {
        const double v = tr[(l * C + y / cell) * C + x / cell];  // 0 white .. 1 dark red
        const auto col = diverging(v);
        for (int ch = 0; ch < 3; ++ch) img[(y * C * cell + x) * 3 + ch] = static_cast<uint8_t>(col[ch] * (1 - 0.5 * v));
      }
    const Tensor t = from_vector(img, {C * cell, C * cell, 3}, DType::UInt8);
    char name[64];
    std::snprintf(name, sizeof name, "transitions_%02lld.png", static_cast<long long>(l));
    write_png_file(pics / name, t);
    written.push_back((pics / name).string());
    trans_tags.push_back(img_tag(io::encode_png(t), keys[l] + " to " + keys[l + 1]));
  }
  // Brain maps: one row per concept, one column per voxel (at least 2 pixels each), scaled by the
  // largest |value| over all concepts, blue negative, red positive.
  double big = 0;
  for (double v : bm) big = std::max(big, std::abs(v));
  const int64_t vx = std::max<int64_t>(2, 600 / std::max<int64_t>(V, 1)), rh = 16;
  std::vector<uint8_t> strip(C * rh * V * vx * 3);
  for (int64_t y = 0; y < C * rh; ++y)
    for (int64_t x = 0; x < V * vx; ++x) {
      const auto col = diverging(big > 0 ? bm[(y / rh) * V + x / vx] / big : 0.0);
      for (int ch = 0; ch < 3; ++ch) strip[(y * V * vx + x) * 3 + ch] = col[ch];
    }
  const Tensor strip_t = from_vector(strip, {C * rh, V * vx, 3}, DType::UInt8);
  write_png_file(pics / "brain_maps.png", strip_t);
  written.push_back((pics / "brain_maps.png").string());

  ReportData d;
  d.title = "concepts and trajectories";
  d.summary = {{"features", job.features},
               {"model", job.model},
               {"layers", settings.tap},
               {"nodes", std::to_string(N) + " (" + std::to_string(B) + " images)"},
               {"shared space D", std::to_string(D)},
               {"embedding", js["space"].get<std::string>() + ", from " + source},
               {"concepts", std::to_string(C) + " (farthest-point sampling)"},
               {"sphere radius", std::to_string(c.radius) + " (" + js["radius_rule"].get<std::string>() + ")"},
               {"trajectory grid", std::to_string(traj.gh) + "x" + std::to_string(traj.gw)}};
  std::string legend = "<div>";
  for (int64_t k = 0; k < C; ++k) {
    const auto col = concept_colour(k, C);
    char hex[8];
    std::snprintf(hex, sizeof hex, "#%02x%02x%02x", col[0], col[1], col[2]);
    legend += "<span style='display:inline-block;padding:2px 6px;margin:2px;background:" + std::string(hex) +
              "'>concept " + std::to_string(k) + "</span>";
  }
  legend += "</div>";
  d.figures.push_back({legend, "Concept colours (masks: strong inside the concept's sphere, faint outside)"});
  for (int64_t l = 0; l < L; ++l) {
    std::string row;
    for (const std::string& t : mask_tags[l]) row += t;
    if (!row.empty()) d.figures.push_back({row, "Nearest concept of every node, layer " + keys[l]});
  }
  for (int64_t l = 0; l + 1 < L; ++l)
    d.figures.push_back(
        {trans_tags[l], "Transitions " + keys[l] + " -> " + keys[l + 1] +
                            " (row a, column b: fraction of the pixels in concept a that are in b at the "
                            "next layer; white 0, dark red 1)"});
  d.figures.push_back({img_tag(io::encode_png(strip_t), "brain maps"),
                       "Brain maps: one row per concept, one column per voxel; head.weight x concept mean, blue "
                       "negative, red positive, scaled by the largest |value| (" +
                           std::to_string(big) + ")"});
  if (!rois.empty()) {
    std::vector<std::string> groups, series;
    std::vector<std::vector<double>> h(C), err(C);
    for (const auto& [name, cols] : rois) groups.push_back(name);
    for (int64_t k = 0; k < C; ++k) {
      series.push_back("concept " + std::to_string(k));
      for (const auto& [name, cols] : rois) {
        double s = 0;
        for (int64_t v : cols) s += bm[k * V + v];
        h[k].push_back(s / static_cast<double>(cols.size()));
        err[k].push_back(std::nan(""));
      }
    }
    d.figures.push_back({svg_grouped_bars(groups, series, h, err, "mean brain map"), "Brain maps, mean per ROI"});
  }
  Table t;
  t.caption = "Concepts";
  t.header = {"concept", "centre (layer, image, row, col)", "members", "|mean|", "mean std", "brain map range"};
  for (int64_t k = 0; k < C; ++k) {
    const auto w = locate(centres[k]);
    double nm = 0, ms = 0, lo = 1e300, hi = -1e300;
    for (int64_t j = 0; j < D; ++j) nm += mean[k * D + j] * mean[k * D + j], ms += sd[k * D + j] / D;
    for (int64_t v = 0; v < V; ++v) lo = std::min(lo, bm[k * V + v]), hi = std::max(hi, bm[k * V + v]);
    std::ostringstream a, b2, r;
    a.precision(4), b2.precision(4), r.precision(4);
    a << std::sqrt(nm);
    b2 << ms;
    r << lo << " .. " << hi;
    t.rows.push_back(
        {std::to_string(k),
         keys[w[0]] + ", " + std::to_string(w[1]) + ", " + std::to_string(w[2]) + ", " + std::to_string(w[3]),
         std::to_string(counts[k]), a.str(), b2.str(), r.str()});
  }
  d.tables.push_back(t);
  write_report((out / "report.html").string(), d);
  written.push_back((out / "report.html").string());

  std::ostringstream summary;
  summary << C << " concepts over " << N << " nodes, radius " << c.radius << "; members:";
  for (int64_t k = 0; k < C; ++k) summary << " " << counts[k];
  std::vector<std::string> lines{summary.str()};
  lines.push_back("wrote " + std::to_string(written.size()) + " files to " + job.out + " in " +
                  std::to_string(seconds()) + " s");
  return lines;
}

}  // namespace cortex::analysis
