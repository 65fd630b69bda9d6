// Oracle mIoU and mask downsampling (segmentation.h). Float64 throughout: P patches x k dims is small
// next to the Ncut that made the embedding.
#include "analysis/segmentation.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

#include "tensor/io/mask.h"
#include "tensor/io/npy.h"

namespace cortex::analysis {

namespace {

std::vector<int64_t> labels_of(const Tensor& labels, const char* what) {
  CORTEX_CHECK(labels.defined(), what, ": the labels tensor is undefined");
  CORTEX_CHECK(labels.dtype() == DType::UInt8 || labels.dtype() == DType::Int32 || labels.dtype() == DType::Int64, what,
               ": expected uint8, int32 or int64 labels, found ", dtype_name(labels.dtype()));
  return labels.to(Device::cpu()).contiguous().to(DType::Int64).to_vector<int64_t>();
}

}  // namespace

std::vector<double> default_threshold_grid() {
  std::vector<double> g;
  for (int i = -50; i < 50; ++i) g.push_back(i / 50.0);
  return g;
}

OracleResult oracle_miou(const Tensor& embedding, const Tensor& labels, const OracleOptions& opt) {
  CORTEX_CHECK(embedding.defined(), "oracle_miou: the embedding tensor is undefined");
  CORTEX_CHECK(embedding.dtype() == DType::Float32 || embedding.dtype() == DType::Float64,
               "oracle_miou: expected a float32 or float64 embedding, found ", dtype_name(embedding.dtype()));
  CORTEX_CHECK(embedding.dim() >= 2, "oracle_miou: expected an embedding (P, k) or (..., k), found shape ",
               shape_str(embedding.shape()));
  const int64_t k = embedding.size(embedding.dim() - 1);
  const int64_t P = k == 0 ? 0 : embedding.numel() / k;
  CORTEX_CHECK(k >= 1 && P >= 1, "oracle_miou: the embedding has no patches or no dimensions, shape ",
               shape_str(embedding.shape()));
  const std::vector<int64_t> lab = labels_of(labels, "oracle_miou");
  CORTEX_CHECK(static_cast<int64_t>(lab.size()) == P, "oracle_miou: the embedding has ", P, " patches (shape ",
               shape_str(embedding.shape()), ") but the labels have ", lab.size(), " (shape ", shape_str(labels.shape()),
               ")");
  CORTEX_CHECK(!opt.thresholds.empty(), "oracle_miou: the threshold grid is empty");
  std::vector<double> grid = opt.thresholds;
  for (double t : grid) CORTEX_CHECK(std::isfinite(t), "oracle_miou: the threshold grid holds a non-finite value ", t);
  std::sort(grid.begin(), grid.end());
  grid.erase(std::unique(grid.begin(), grid.end()), grid.end());
  const std::vector<double> e = embedding.to(Device::cpu()).contiguous().to(DType::Float64).to_vector<double>();
  for (size_t i = 0; i < e.size(); ++i)
    CORTEX_CHECK(std::isfinite(e[i]), "oracle_miou: the embedding holds a non-finite value at patch ",
                 static_cast<int64_t>(i) / k, ", dimension ", static_cast<int64_t>(i) % k);

  std::map<int64_t, int64_t> count;
  for (int64_t l : lab)
    if (l != opt.ignore && (opt.include_background || l != 0)) ++count[l];
  CORTEX_CHECK(!count.empty(), "oracle_miou: no patch carries a label to score (all are ignore",
               opt.include_background ? "" : " or background", ")");
  std::vector<double> norm(static_cast<size_t>(P));
  for (int64_t p = 0; p < P; ++p) {
    double s = 0;
    for (int64_t j = 0; j < k; ++j) s += e[p * k + j] * e[p * k + j];
    norm[p] = std::sqrt(s);
  }
  const size_t T = grid.size();
  OracleResult r;
  for (const auto& [c, n] : count) {
    std::vector<double> centre(static_cast<size_t>(k), 0.0);
    for (int64_t p = 0; p < P; ++p)
      if (lab[p] == c)
        for (int64_t j = 0; j < k; ++j) centre[j] += e[p * k + j];
    double cn = 0;
    for (double& v : centre) v /= static_cast<double>(n), cn += v * v;
    cn = std::sqrt(cn);
    // A patch with score s is predicted at every tau < s: with j = #{tau < s}, it counts for
    // grid[0 .. j-1]. Counting j per patch and summing from the top gives all T IoUs in one pass.
    std::vector<int64_t> in_at(T + 1, 0), out_at(T + 1, 0);
    for (int64_t p = 0; p < P; ++p) {
      if (lab[p] == opt.ignore) continue;
      double dot = 0;
      for (int64_t j = 0; j < k; ++j) dot += e[p * k + j] * centre[j];
      const double denom = norm[p] * cn;
      const double s = denom > 0 ? dot / denom : 0.0;  // a zero vector is orthogonal to everything
      const size_t j = static_cast<size_t>(std::lower_bound(grid.begin(), grid.end(), s) - grid.begin());
      (lab[p] == c ? in_at : out_at)[j]++;
    }
    double best = -1, best_t = grid[0];
    int64_t in_pred = 0, out_pred = 0;
    std::vector<double> iou(T);
    for (size_t t = T; t-- > 0;) {  // predicted at grid[t]: patches with j > t
      in_pred += in_at[t + 1], out_pred += out_at[t + 1];
      iou[t] = static_cast<double>(in_pred) / static_cast<double>(n + out_pred);
    }
    for (size_t t = 0; t < T; ++t)
      if (iou[t] > best) best = iou[t], best_t = grid[t];
    r.classes.push_back(static_cast<int>(c));
    r.iou.push_back(best);
    r.best_threshold.push_back(best_t);
    r.patches.push_back(n);
  }
  double s = 0;
  for (double v : r.iou) s += v;
  r.miou = s / static_cast<double>(r.iou.size());
  return r;
}

Tensor downsample_mask(const Tensor& masks_in, int64_t gh, int64_t gw) {
  CORTEX_CHECK(masks_in.defined(), "downsample_mask: the mask tensor is undefined");
  CORTEX_CHECK(masks_in.dim() == 2 || masks_in.dim() == 3, "downsample_mask: expected masks (N, H, W) or (H, W), found shape ",
               shape_str(masks_in.shape()));
  const Tensor masks = masks_in.dim() == 2 ? masks_in.unsqueeze(0) : masks_in;
  const int64_t N = masks.size(0), H = masks.size(1), W = masks.size(2);
  CORTEX_CHECK(gh >= 1 && gh <= H && gw >= 1 && gw <= W, "downsample_mask: the grid must satisfy 1 <= gh <= H and ",
               "1 <= gw <= W, found grid ", gh, "x", gw, " for masks of ", H, "x", W);
  const std::vector<int64_t> m = labels_of(masks, "downsample_mask");
  std::vector<int64_t> out(static_cast<size_t>(N * gh * gw));
  std::map<int64_t, int64_t> votes;
  for (int64_t b = 0; b < N; ++b)
    for (int64_t i = 0; i < gh; ++i)
      for (int64_t j = 0; j < gw; ++j) {
        votes.clear();
        for (int64_t y = i * H / gh; y < (i + 1) * H / gh; ++y)
          for (int64_t x = j * W / gw; x < (j + 1) * W / gw; ++x) ++votes[m[(b * H + y) * W + x]];
        int64_t best = 0, label = 0;
        for (const auto& [l, v] : votes)  // ascending labels: the first maximum is the smaller label
          if (v > best) best = v, label = l;
        out[(b * gh + i) * gw + j] = label;
      }
  Shape shape = masks_in.dim() == 2 ? Shape{gh, gw} : Shape{N, gh, gw};
  return from_vector(out, shape).to(masks.dtype());
}

Tensor load_masks(const std::string& path, bool binary) {
  namespace fs = std::filesystem;
  if (fs::is_directory(path)) {
    std::vector<std::string> files;
    for (const auto& e : fs::directory_iterator(path))
      if (e.is_regular_file() && e.path().extension() == ".png") files.push_back(e.path().string());
    std::sort(files.begin(), files.end());
    CORTEX_CHECK(!files.empty(), path, ": expected PNG masks (*.png) in this folder, found none");
    std::vector<Tensor> masks;
    for (const auto& f : files) {
      masks.push_back(binary ? io::read_binary_mask(f) : io::read_index_mask(f));
      CORTEX_CHECK(masks.back().shape() == masks.front().shape(), f, ": mask of ", masks.back().size(0), "x",
                   masks.back().size(1), " pixels, but ", files.front(), " has ", masks.front().size(0), "x",
                   masks.front().size(1), " (all masks must have one size)");
    }
    const int64_t H = masks[0].size(0), W = masks[0].size(1);
    Tensor out = empty({static_cast<int64_t>(masks.size()), H, W}, DType::UInt8);
    for (size_t i = 0; i < masks.size(); ++i)
      std::copy_n(masks[i].contiguous().data<uint8_t>(), H * W, out.data<uint8_t>() + static_cast<int64_t>(i) * H * W);
    return out;
  }
  Tensor t = io::read_npy(path);
  CORTEX_CHECK(t.dim() == 2 || t.dim() == 3, path, ": expected masks (N, H, W) or (H, W), found shape ",
               shape_str(t.shape()));
  CORTEX_CHECK(t.dtype() == DType::UInt8 || t.dtype() == DType::Int32 || t.dtype() == DType::Int64, path,
               ": expected uint8, int32 or int64 masks, found ", dtype_name(t.dtype()));
  std::vector<int64_t> v = t.to(DType::Int64).to_vector<int64_t>();
  for (size_t i = 0; i < v.size(); ++i)
    CORTEX_CHECK(v[i] >= 0 && v[i] <= 255, path, ": mask labels must be in 0..255, found ", v[i], " at element ", i);
  Tensor out = t.dim() == 2 ? t.unsqueeze(0).to(DType::UInt8) : t.to(DType::UInt8);
  return binary ? figure_ground(out) : out.contiguous();
}

Tensor figure_ground(const Tensor& labels, int ignore) {
  std::vector<int64_t> l = labels_of(labels, "figure_ground");
  for (int64_t& v : l) v = v == 0 ? 0 : v == ignore ? ignore : 1;
  return from_vector(l, labels.shape()).to(labels.dtype());
}

}  // namespace cortex::analysis
