// cortex oracle-miou: scores Ncut eigenvectors against segmentation masks by the oracle mIoU
// (analysis/segmentation.h, docs/alignedcut.md "Segmentation"):
//
//   cortex oracle-miou --eig eig.safetensors --masks masks/ [--grid 14x14] [--figure-ground]
//                      [--no-background] [--out scores.json]
//
// --eig: the .safetensors `cortex ncut` writes ("eigenvectors", (N, k)) or a .npy (N, k) or
// (B, h, w, k); nodes in the order of ncut (image, row, column). --masks: a folder of PNG masks
// (palette or grey; with --figure-ground read as binary masks) or a .npy (B, H, W) of labels.
// The masks are brought to the grid by area majority; --grid defaults to the square grid
// sqrt(N / B) x sqrt(N / B). A multi-input file of cortex ncut (node_input; docs/spectral.md 7.1)
// is scored per source, each with its own grid, against the same masks. --center subtracts the mean
// eigenvector row (per source) first: unaligned sources of one graph differ by such an offset
// (docs/alignedcut.md, "One graph over layers and models").
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "analysis/segmentation.h"
#include "analysis/spectral/run.h"
#include "cli/commands.h"
#include "tensor/io/atomic_file.h"
#include "tensor/io/npy.h"
#include "tensor/io/safetensors.h"

namespace cortex::cli {
namespace {

// rows (P, k) minus their mean row, float64: removes the offset that tells the sources of a joint
// graph apart (and Ncut's near-constant first eigenvector) before the cosine to a class centre.
Tensor centre_rows(const Tensor& rows_in) {
  const Tensor rows = rows_in.reshape({-1, rows_in.size(rows_in.dim() - 1)});
  const int64_t n = rows.size(0), k = rows.size(1);
  std::vector<double> v = rows.to_vector<double>(), mean(k, 0.0);
  for (int64_t a = 0; a < n; ++a)
    for (int64_t e = 0; e < k; ++e) mean[e] += v[a * k + e];
  for (double& m : mean) m /= double(std::max<int64_t>(n, 1));
  for (int64_t a = 0; a < n; ++a)
    for (int64_t e = 0; e < k; ++e) v[a * k + e] -= mean[e];
  return from_vector(v, {n, k});
}

}  // namespace

Run add_oracle_miou(CLI::App& app) {
  auto* sub = app.add_subcommand("oracle-miou", "Oracle mIoU of Ncut eigenvectors against PNG or .npy masks");
  struct Opts {
    std::string eig, masks, grid, out;
    bool figure = false, no_background = false, centre = false;
  };
  auto o = std::make_shared<Opts>();
  sub->add_option("--eig", o->eig, "Eigenvectors: cortex ncut's .safetensors, or .npy (N, k) / (B, h, w, k)")->required();
  sub->add_option("--masks", o->masks, "Folder of PNG masks (file-name order) or .npy (B, H, W) labels")->required();
  sub->add_option("--grid", o->grid, "Patch grid HxW of the eigenvectors (default: square, sqrt(N / B))");
  sub->add_flag("--figure-ground", o->figure, "Score figure (labels > 0) against background");
  sub->add_flag("--no-background", o->no_background, "Do not score class 0");
  sub->add_option("--out", o->out, "Write the scores as JSON here");
  sub->add_flag("--center", o->centre,
                "Subtract the mean eigenvector row (of each source of a multi-input file) before scoring");
  return [o] {
    Tensor eig;
    std::map<std::string, Tensor> m;
    if (o->eig.size() > 4 && o->eig.substr(o->eig.size() - 4) == ".npy") {
      eig = io::read_npy(o->eig);
    } else {
      m = io::load_safetensors(o->eig);
      CORTEX_CHECK(m.count("eigenvectors") != 0, o->eig, ": expected a tensor named \"eigenvectors\" (as cortex ncut ",
                   "writes), found none");
      eig = m.at("eigenvectors");
    }
    CORTEX_CHECK(eig.dim() >= 2, o->eig, ": expected eigenvectors (N, k) or (B, h, w, k), found shape ",
                 shape_str(eig.shape()));
    const Tensor masks = analysis::load_masks(o->masks, o->figure);
    const int64_t B = masks.size(0), k = eig.size(eig.dim() - 1), N = eig.numel() / std::max<int64_t>(k, 1);
    analysis::OracleOptions opt;
    opt.include_background = !o->no_background;
    auto to_json = [&](const analysis::OracleResult& r, int64_t gh, int64_t gw) {
      nlohmann::json j;
      j["miou"] = r.miou, j["grid"] = {gh, gw}, j["images"] = B, j["eigenvectors"] = k;
      j["figure_ground"] = o->figure;
      j["centred"] = o->centre;
      for (size_t c = 0; c < r.classes.size(); ++c)
        j["classes"].push_back({{"label", r.classes[c]}, {"iou", r.iou[c]}, {"threshold", r.best_threshold[c]},
                                {"patches", r.patches[c]}});
      return j;
    };
    auto write_json = [&](const nlohmann::json& j) {
      if (o->out.empty()) return;
      const std::string text = j.dump(2) + "\n";
      io::write_file_atomic(o->out, text.data(), text.size());
    };
    if (m.count("node_input") != 0) {
      // cortex ncut over several sources (docs/spectral.md 7.1): each source scored on its own, its
      // picture nodes only (rows offset + b * per_image + skip .. + H * W), against the same masks.
      CORTEX_CHECK(o->grid.empty(), "oracle-miou: --grid applies to single-input eigenvectors; ", o->eig,
                   " holds several sources, each with its own grid in its metadata");
      const std::vector<analysis::spectral::NcutSource> src =
          analysis::spectral::ncut_sources(io::SafeTensors::open(o->eig).metadata());
      const Tensor ev = eig.reshape({N, k});
      nlohmann::json all;
      all["per_input"] = nlohmann::json::array();
      double best = -1;
      int64_t best_i = -1;
      for (size_t i = 0; i < src.size(); ++i) {
        const analysis::spectral::NcutSource& s = src[i];
        const std::string name = s.key.empty() ? s.file : s.file + ":" + s.key;
        CORTEX_CHECK(s.has_grid, "oracle-miou: source ", i, " (", name, ") has no picture grid (an (N, d) input ",
                     "without --grid, or a token count that is not a square); rerun cortex ncut with --grid H,W");
        CORTEX_CHECK(s.images == B, "oracle-miou: source ", i, " (", name, ") has ", s.images, " images, but ",
                     o->masks, " has ", B, " masks");
        const int64_t gh = s.H, gw = s.W;
        const Tensor picked = analysis::spectral::source_picture_rows(ev, s);
        const Tensor rows = o->centre ? centre_rows(picked) : picked;
        const analysis::OracleResult r = analysis::oracle_miou(rows, analysis::downsample_mask(masks, gh, gw), opt);
        nlohmann::json j = to_json(r, gh, gw);
        j["input"] = i, j["source"] = name;
        all["per_input"].push_back(j);
        if (r.miou > best) best = r.miou, best_i = static_cast<int64_t>(i);
        std::printf("input %2zu %s: oracle mIoU %.4f over %zu classes (grid %lldx%lld)\n", i, name.c_str(), r.miou,
                    r.classes.size(), static_cast<long long>(gh), static_cast<long long>(gw));
      }
      all["miou"] = best, all["best_input"] = best_i, all["images"] = B, all["eigenvectors"] = k;
      all["figure_ground"] = o->figure, all["centred"] = o->centre;
      write_json(all);
      std::printf("best: input %lld, oracle mIoU %.4f (%lld images, k %lld)\n", static_cast<long long>(best_i), best,
                  static_cast<long long>(B), static_cast<long long>(k));
      return 0;
    }
    CORTEX_CHECK(N % B == 0, "oracle-miou: ", N, " eigenvector rows do not split over the ", B, " masks of ", o->masks);
    int64_t gh = 0, gw = 0;
    if (!o->grid.empty()) {
      char x = 0;
      long long h = 0, w = 0;
      CORTEX_CHECK(std::sscanf(o->grid.c_str(), "%lld%c%lld", &h, &x, &w) == 3 && (x == 'x' || x == 'X') && h > 0 && w > 0,
                   "oracle-miou: --grid must be HxW with positive H and W, found '", o->grid, "'");
      gh = h, gw = w;
    } else {
      gh = gw = std::llround(std::sqrt(static_cast<double>(N / B)));
      CORTEX_CHECK(gh * gw == N / B, "oracle-miou: ", N / B, " nodes per image is not a square grid; give --grid HxW");
    }
    CORTEX_CHECK(gh * gw * B == N, "oracle-miou: --grid ", gh, "x", gw, " times ", B, " masks is ", gh * gw * B,
                 " nodes, but the eigenvectors have ", N);
    const analysis::OracleResult r =
        analysis::oracle_miou(o->centre ? centre_rows(eig) : eig, analysis::downsample_mask(masks, gh, gw), opt);
    write_json(to_json(r, gh, gw));
    std::printf("oracle mIoU %.4f over %zu classes (%lld images, grid %lldx%lld, k %lld)\n", r.miou, r.classes.size(),
                static_cast<long long>(B), static_cast<long long>(gh), static_cast<long long>(gw),
                static_cast<long long>(k));
    for (size_t c = 0; c < r.classes.size(); ++c)
      std::printf("  class %3d: IoU %.4f at threshold %.2f (%lld patches)\n", r.classes[c], r.iou[c],
                  r.best_threshold[c], static_cast<long long>(r.patches[c]));
    return 0;
  };
}

}  // namespace cortex::cli
