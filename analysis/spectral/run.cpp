// `cortex ncut` as a library call (run.h): input loading, picture planning, ncut(), colouring and
// the outputs.
#include "analysis/spectral/run.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "analysis/spectral/colour.h"
#include "dist/comm.h"
#include "tensor/io/image.h"
#include "tensor/io/npy.h"
#include "tensor/io/safetensors.h"

namespace cortex::analysis::spectral {
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const std::string& e : v) s += (s.empty() ? "" : ", ") + e;
  return s;
}

// The one array to analyse: the file's only array, or the key.
Tensor read_features(const NcutJob& o);
Tensor read_features(const std::string& input, const std::string& key) {
  NcutJob o;
  o.input = input;
  o.key = key;
  return read_features(o);
}
Tensor read_features(const NcutJob& o) {
  if (ends_with(o.input, ".npy")) {
    CORTEX_CHECK(o.key.empty(), "ncut: --key applies to .safetensors and .npz inputs, found --key ", o.key,
                 " with ", o.input);
    return io::read_npy(o.input);
  }
  std::map<std::string, Tensor> arrays;
  std::vector<std::string> keys;
  if (ends_with(o.input, ".safetensors")) {
    const io::SafeTensors st = io::SafeTensors::open(o.input);
    keys = st.keys();
    if (!o.key.empty() && st.contains(o.key)) return st.get(o.key);
    if (o.key.empty() && keys.size() == 1) return st.get(keys[0]);
  } else if (ends_with(o.input, ".npz")) {
    arrays = io::read_npz(o.input);
    for (auto& [k, v] : arrays) keys.push_back(k);
    if (!o.key.empty() && arrays.count(o.key)) return arrays.at(o.key);
    if (o.key.empty() && keys.size() == 1) return arrays.begin()->second;
  } else {
    throw Error("ncut: " + o.input + ": expected a .npy, .npz or .safetensors file");
  }
  CORTEX_CHECK(!keys.empty(), "ncut: ", o.input, ": expected at least one array, found none");
  CORTEX_CHECK(!o.key.empty(), "ncut: ", o.input, " holds ", keys.size(), " arrays; choose one with --key (",
               join(keys), ")");
  throw Error("ncut: " + o.input + ": no array named '" + o.key + "' (found " + join(keys) + ")");
}

// How the N nodes become pictures: B images of H x W after leaving out `skip` leading tokens of each.
struct Pictures {
  int64_t B = 0, H = 0, W = 0, skip = 0, per_image = 0;  // per_image: nodes per image in node order
};

int64_t int_sqrt(int64_t v) {
  if (v < 0) return -1;
  int64_t r = static_cast<int64_t>(std::llround(std::sqrt(double(v))));
  while (r * r > v) --r;
  while ((r + 1) * (r + 1) <= v) ++r;
  return r * r == v ? r : -1;
}

// Decided before any computation, so a layout that cannot be drawn fails in a second, not after the
// eigensolver.
Pictures plan_pictures(const Shape& s, const std::string& grid) {
  int64_t gh = 0, gw = 0;
  if (!grid.empty()) {
    char x = 0;
    std::istringstream is(grid);
    CORTEX_CHECK((is >> gh >> x >> gw) && (x == ',' || x == 'x') && is.peek() == EOF && gh > 0 && gw > 0,
                 "ncut: --grid expects H,W (two positive sizes), found '", grid, "'");
  }
  Pictures p;
  if (s.size() == 4) {
    CORTEX_CHECK(grid.empty() || (gh == s[2] && gw == s[3]), "ncut: --grid ", grid,
                 " disagrees with the feature maps' H x W = ", s[2], " x ", s[3]);
    p = {s[0], s[2], s[3], 0, s[2] * s[3]};
  } else if (s.size() == 3) {
    const int64_t T = s[1];
    if (gh > 0) {
      CORTEX_CHECK(gh * gw <= T, "ncut: --grid ", grid, " has ", gh * gw, " cells, more than the ", T,
                   " tokens per image");
      p = {s[0], gh, gw, T - gh * gw, T};
    } else if (int_sqrt(T) > 0) {
      p = {s[0], int_sqrt(T), int_sqrt(T), 0, T};
    } else if (int_sqrt(T - 1) > 0) {
      p = {s[0], int_sqrt(T - 1), int_sqrt(T - 1), 1, T};  // a CLS token, then a square of patches
    } else {
      throw Error(::cortex::detail::cat("ncut: --rgb-dir: ", T, " tokens per image is neither a square nor one more ",
                                        "than a square; say which tokens form the picture with --grid H,W (the first ",
                                        "T - H*W are left out)"));
    }
  } else if (s.size() == 2) {
    CORTEX_CHECK(gh > 0, "ncut: --rgb-dir with (N, d) features needs --grid H,W (N = B * H * W), found shape ",
                 shape_str(s));
    CORTEX_CHECK(s[0] % (gh * gw) == 0, "ncut: --grid ", grid, ": expected N = ", s[0],
                 " to be a multiple of H * W = ", gh * gw);
    p = {s[0] / (gh * gw), gh, gw, 0, gh * gw};
  }
  return p;
}

// rgb (N, c) in node order -> the picture nodes of every image, (B * H * W, c).
Tensor picture_rows(const Tensor& rgb, const Pictures& p) {
  if (p.skip == 0) return rgb;
  Tensor out = empty({p.B * p.H * p.W, rgb.size(1)}, rgb.dtype());
  for (int64_t b = 0; b < p.B; ++b)
    out.narrow(0, b * p.H * p.W, p.H * p.W).copy_(rgb.narrow(0, b * p.per_image + p.skip, p.H * p.W));
  return out;
}

// One source of a multi-input graph: a file and a key, its features, its rows in the stacked graph.
struct Source {
  std::string file, key;
  Tensor feats;        // as read (float16/bfloat16 already float32); released once stacked
  Shape shape;         // its shape, kept for the metadata
  int64_t offset = 0;  // first row in the graph
  int64_t nodes = 0;
  bool has_pics = false;
  Pictures pics;
};

std::string source_name(const Source& s) { return s.key.empty() ? s.file : s.file + ":" + s.key; }

// A heatmap query: source, image, row and column of the picture grid.
struct Query {
  int64_t input = 0, image = 0, row = 0, col = 0;
};

std::vector<Query> parse_heatmap(const std::string& spec) {
  std::vector<Query> qs;
  std::string item;
  std::istringstream all(spec);
  while (std::getline(all, item, ';')) {
    if (item.empty()) continue;
    Query q;
    long long a = 0, b = 0, c = 0, d = 0;
    int used = 0;
    const size_t colon = item.find(':');
    bool ok = false;
    if (colon == std::string::npos) {
      ok = std::sscanf(item.c_str(), "%lld,%lld,%lld%n", &b, &c, &d, &used) == 3 && used == int(item.size());
    } else {
      ok = std::sscanf(item.c_str(), "%lld:%lld,%lld,%lld%n", &a, &b, &c, &d, &used) == 4 && used == int(item.size());
    }
    CORTEX_CHECK(ok && a >= 0 && b >= 0 && c >= 0 && d >= 0, "ncut: --heatmap expects [INPUT:]IMG,ROW,COL with ",
                 "non-negative integers, separated by ';', found '", item, "'");
    q = {a, b, c, d};
    qs.push_back(q);
  }
  CORTEX_CHECK(!qs.empty(), "ncut: --heatmap expects at least one [INPUT:]IMG,ROW,COL, found '", spec, "'");
  return qs;
}

// Cosine values (B * H * W) -> uint8 pictures (B, H, W, 3): -1 .. 1 as blue .. white .. red.
Tensor diverging_colours(const Tensor& v, int64_t B, int64_t H, int64_t W) {
  const std::vector<double> x = v.to_vector<double>();
  Tensor img = empty({B, H, W, 3}, DType::UInt8);
  uint8_t* o = img.data<uint8_t>();
  for (size_t i = 0; i < x.size(); ++i) {
    const double t = std::clamp(std::isfinite(x[i]) ? x[i] : 0.0, -1.0, 1.0);
    const double r = t >= 0 ? 1 : 1 + t, g = 1 - std::abs(t), b = t <= 0 ? 1 : 1 - t;
    o[3 * i] = static_cast<uint8_t>(std::lround(r * 255));
    o[3 * i + 1] = static_cast<uint8_t>(std::lround(g * 255));
    o[3 * i + 2] = static_cast<uint8_t>(std::lround(b * 255));
  }
  return img;
}

// The 2-D embedding as a 512 x 512 scatter, each node a 2 x 2 dot of its rgb colour on white.
void write_scatter(const std::string& path, const Tensor& emb2, const Tensor& rgb) {
  const int64_t S = 512, margin = 8, n = emb2.size(0);
  const std::vector<double> e = emb2.to_vector<double>();
  const std::vector<double> c = rgb.to_vector<double>();
  double lo[2] = {e[0], e[1]}, hi[2] = {e[0], e[1]};
  for (int64_t i = 0; i < n; ++i)
    for (int a = 0; a < 2; ++a) lo[a] = std::min(lo[a], e[2 * i + a]), hi[a] = std::max(hi[a], e[2 * i + a]);
  Tensor img = full({S, S, 3}, 255, DType::UInt8);
  uint8_t* o = img.data<uint8_t>();
  for (int64_t i = 0; i < n; ++i) {
    int64_t px[2];
    for (int a = 0; a < 2; ++a) {
      const double span = hi[a] > lo[a] ? hi[a] - lo[a] : 1;
      px[a] = margin + static_cast<int64_t>((e[2 * i + a] - lo[a]) / span * double(S - 2 * margin - 2));
    }
    for (int64_t dy = 0; dy < 2; ++dy)
      for (int64_t dx = 0; dx < 2; ++dx)
        for (int ch = 0; ch < 3; ++ch)
          o[((S - 1 - (px[1] + dy)) * S + px[0] + dx) * 3 + ch] =
              static_cast<uint8_t>(std::lround(std::clamp(c[3 * i + ch], 0.0, 1.0) * 255));
  }
  io::write_png(path, img);
}

// Cosine similarity of the rows `nodes` of x (N, c) to every row, (Q, N) float32, accumulated in
// float64; a zero row is similar to nothing (0).
template <class T>
void cosine_rows_impl(const T* x, int64_t N, int64_t c, const std::vector<int64_t>& nodes, float* h) {
  std::vector<double> norm(N);
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    double s2 = 0;
    for (int64_t j = 0; j < c; ++j) s2 += double(x[n * c + j]) * double(x[n * c + j]);
    norm[n] = std::sqrt(s2);
  }
  for (size_t qi = 0; qi < nodes.size(); ++qi) {
    const T* q = x + nodes[qi] * c;
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      double dot = 0;
      for (int64_t j = 0; j < c; ++j) dot += double(q[j]) * double(x[n * c + j]);
      const double den = norm[nodes[qi]] * norm[n];
      h[int64_t(qi) * N + n] = static_cast<float>(den > 0 ? dot / den : 0.0);
    }
  }
}
Tensor cosine_rows(const Tensor& x_in, const std::vector<int64_t>& nodes) {
  const Tensor x = x_in.dtype() == DType::Float64 ? x_in.contiguous() : x_in.to(DType::Float32).contiguous();
  const int64_t N = x.size(0), c = x.size(1);
  Tensor h = empty({static_cast<int64_t>(nodes.size()), N}, DType::Float32);
  if (x.dtype() == DType::Float64) {
    cosine_rows_impl(x.data<double>(), N, c, nodes, h.data<float>());
  } else {
    cosine_rows_impl(x.data<float>(), N, c, nodes, h.data<float>());
  }
  return h;
}

std::filesystem::path make_dir(const std::filesystem::path& dir, const char* flag) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  CORTEX_CHECK(!ec && std::filesystem::is_directory(dir), "ncut: cannot create ", flag, " '", dir.string(), "': ",
               ec.message());
  return dir;
}

std::string two(int64_t i) {
  char b[32];
  std::snprintf(b, sizeof b, "%02lld", static_cast<long long>(i));
  return b;
}

}  // namespace

NcutMethod parse_method(const std::string& s) {
  if (s == "exact") return NcutMethod::Exact;
  if (s == "nystrom") return NcutMethod::Nystrom;
  if (s == "fowlkes") return NcutMethod::Fowlkes;
  throw Error("ncut: expected a method exact, nystrom or fowlkes, found '" + s + "'");
}
Sampling parse_sampling(const std::string& s) {
  if (s == "fps") return Sampling::Fps;
  if (s == "random") return Sampling::Random;
  throw Error("ncut: expected a sampling fps or random, found '" + s + "'");
}
Affinity parse_affinity(const std::string& s) {
  if (s == "cosine") return Affinity::Cosine;
  if (s == "rbf") return Affinity::Rbf;
  throw Error("ncut: expected an affinity cosine or rbf, found '" + s + "'");
}
EigSolver parse_solver(const std::string& s) {
  for (EigSolver e : {EigSolver::Auto, EigSolver::Dense, EigSolver::Lanczos, EigSolver::Subspace})
    if (s == solver_name(e)) return e;
  throw Error("ncut: expected a solver auto, dense, lanczos or subspace, found '" + s + "'");
}

std::vector<NcutSource> ncut_sources(const std::map<std::string, std::string>& meta) {
  std::vector<NcutSource> out;
  const auto sources = meta.find("sources");
  if (sources != meta.end()) {
    nlohmann::json js;
    try {
      js = nlohmann::json::parse(sources->second);
    } catch (const std::exception& e) {
      throw Error(std::string("ncut_sources: the \"sources\" metadata is not JSON: ") + e.what());
    }
    CORTEX_CHECK(js.is_array() && !js.empty(), "ncut_sources: expected \"sources\" to be a non-empty JSON array");
    for (const nlohmann::json& e : js) {
      NcutSource s;
      try {
        s.file = e.at("file").get<std::string>(), s.key = e.at("key").get<std::string>();
        s.shape = e.at("shape").get<Shape>();
        s.offset = e.at("offset").get<int64_t>(), s.nodes = e.at("nodes").get<int64_t>();
        s.has_grid = !e.at("grid").is_null();
        if (s.has_grid) {
          s.images = e.at("images").get<int64_t>(), s.skip = e.at("skip").get<int64_t>();
          s.H = e.at("grid").at(0).get<int64_t>(), s.W = e.at("grid").at(1).get<int64_t>();
        }
      } catch (const nlohmann::json::exception& x) {
        throw Error(std::string("ncut_sources: a \"sources\" entry lacks a field or has the wrong type: ") + x.what());
      }
      CORTEX_CHECK(s.offset >= 0 && s.nodes >= 0 && (!s.has_grid || (s.images >= 0 && s.H > 0 && s.W > 0 &&
                                                                     s.skip >= 0 && s.images * (s.skip + s.H * s.W) == s.nodes)),
                   "ncut_sources: inconsistent source ", out.size(), " (offset ", s.offset, ", nodes ", s.nodes,
                   ", images ", s.images, ", grid ", s.H, "x", s.W, ", skip ", s.skip, ")");
      out.push_back(s);
    }
    return out;
  }
  const auto shape = meta.find("input_shape");
  CORTEX_CHECK(shape != meta.end(), "ncut_sources: expected \"sources\" or \"input_shape\" metadata (as cortex ncut ",
               "writes), found neither");
  NcutSource s;
  std::string text = shape->second;
  for (char& ch : text)
    if (ch == '[' || ch == ']' || ch == ',') ch = ' ';
  std::istringstream is(text);
  for (int64_t v = 0; is >> v;) s.shape.push_back(v);
  CORTEX_CHECK(s.shape.size() >= 2 && s.shape.size() <= 4 && is.eof(), "ncut_sources: cannot read input_shape '",
               shape->second, "'");
  s.file = meta.count("input") ? meta.at("input") : "", s.key = meta.count("key") ? meta.at("key") : "";
  s.nodes = s.shape.size() == 4 ? s.shape[0] * s.shape[2] * s.shape[3]   // as flatten_features
            : s.shape.size() == 3 ? s.shape[0] * s.shape[1] : s.shape[0];
  try {
    const Pictures p = plan_pictures(s.shape, "");
    s.has_grid = true, s.images = p.B, s.H = p.H, s.W = p.W, s.skip = p.skip;
  } catch (const Error&) {
    s.has_grid = false;  // (N, d) or a token count without a square: the grid was not recorded
  }
  out.push_back(s);
  return out;
}

Tensor source_picture_rows(const Tensor& rows, const NcutSource& s) {
  CORTEX_CHECK(rows.defined() && rows.dim() == 2, "source_picture_rows: expected rows (N, c), found ",
               rows.defined() ? shape_str(rows.shape()) : std::string("undefined"));
  CORTEX_CHECK(s.has_grid, "source_picture_rows: source ", s.file, s.key.empty() ? "" : ":", s.key,
               " has no picture grid (an (N, d) input, or a token count that is not a square; cortex ncut --grid H,W)");
  CORTEX_CHECK(s.offset + s.nodes <= rows.size(0), "source_picture_rows: the source's rows ", s.offset, " .. ",
               s.offset + s.nodes - 1, " are outside the ", rows.size(0), " rows given");
  Pictures p;
  p.B = s.images, p.H = s.H, p.W = s.W, p.skip = s.skip, p.per_image = s.skip + s.H * s.W;
  return picture_rows(rows.narrow(0, s.offset, s.nodes), p).contiguous();
}

std::vector<std::string> run_ncut_job(const NcutJob& o, const PhaseProgress& progress_in,
                                      const std::function<void(const std::string&)>& log_in) {
  auto progress = [&](const char* phase, double done, double s) {
    if (progress_in) progress_in(phase, done, s);
  };
  auto log = [&](const std::string& line) {
    if (log_in) log_in(line);
  };
  CORTEX_CHECK(ends_with(o.out, ".safetensors"), "ncut: --out must end in .safetensors, found '", o.out, "'");
  CORTEX_CHECK(o.input.empty() || o.inputs.empty(), "ncut: expected the input in `input` or in `inputs`, found both (",
               o.input, " and ", join(o.inputs), ")");
  CORTEX_CHECK(o.key.empty() || o.keys.empty(), "ncut: expected the key in `key` or in `keys`, found both");
  const std::vector<std::string> files = o.inputs.empty() ? std::vector<std::string>{o.input} : o.inputs;
  const std::vector<std::string> keys = o.keys.empty() ? std::vector<std::string>{o.key} : o.keys;
  for (const std::string& f : files) CORTEX_CHECK(!f.empty(), "ncut: expected an input file, found an empty name");
  for (size_t a = 0; a < keys.size(); ++a)
    CORTEX_CHECK(keys.size() == 1 || !keys[a].empty(), "ncut: --key: expected names separated by ',', found an empty one");
  const bool multi = files.size() * keys.size() > 1;
  const bool want_rgb = o.rgb || !o.rgb_dir.empty();
  CORTEX_CHECK(!want_rgb || o.tsne_samples >= 2, "ncut: expected --tsne-samples >= 2, found ", o.tsne_samples);
  CORTEX_CHECK(o.tsne_dims == 0 || o.tsne_dims == 2 || o.tsne_dims == 3, "ncut: expected --tsne-dims 2 or 3, found ",
               o.tsne_dims);
  CORTEX_CHECK(o.tsne_dims == 0 || o.tsne_samples >= 2, "ncut: expected --tsne-samples >= 2, found ", o.tsne_samples);
  CORTEX_CHECK(o.heatmap.empty() == o.heatmap_dir.empty(), "ncut: --heatmap and --heatmap-dir go together, found only ",
               o.heatmap.empty() ? "--heatmap-dir" : "--heatmap");
  const std::vector<Query> queries = o.heatmap.empty() ? std::vector<Query>{} : parse_heatmap(o.heatmap);
  const auto t_start = Clock::now();

  auto t0 = Clock::now();
  std::vector<Source> src;
  for (const std::string& f : files)
    for (const std::string& k : keys) {
      Source s;
      s.file = f, s.key = k;
      s.feats = read_features(f, k);
      // Half-precision storage computes in float32; integers are refused by ncut() with a clear message.
      if (s.feats.dtype() == DType::Float16 || s.feats.dtype() == DType::BFloat16) s.feats = s.feats.to(DType::Float32);
      s.shape = s.feats.shape();
      log("ncut: " + f + (k.empty() ? "" : " : ") + k + ": " + shape_str(s.feats.shape()) + " " +
          dtype_name(s.feats.dtype()));
      src.push_back(std::move(s));
    }
  // Pictures are decided before any computation, so a layout that cannot be drawn fails in a second.
  // Several sources record their layout when they have one (node_position), needed or not.
  const bool need_pics = !o.rgb_dir.empty() || !queries.empty();
  // One grid for every source, or one per source separated by ';' (models with different token counts).
  std::vector<std::string> grids;
  {
    std::string g;
    std::istringstream is(o.grid);
    while (std::getline(is, g, ';')) grids.push_back(g);
    if (grids.empty()) grids.push_back("");
    CORTEX_CHECK(grids.size() == 1 || grids.size() == src.size(), "ncut: --grid: expected one H,W or one per source (",
                 src.size(), ", separated by ';'), found ", grids.size(), " in '", o.grid, "'");
  }
  for (size_t a = 0; a < src.size(); ++a) {
    Source& s = src[a];
    const std::string& grid = grids.size() == 1 ? grids[0] : grids[a];
    if (need_pics) {
      s.pics = plan_pictures(s.feats.shape(), grid), s.has_pics = true;
    } else if (multi) {
      try {
        s.pics = plan_pictures(s.feats.shape(), grid), s.has_pics = true;
      } catch (const Error&) {
        s.has_pics = false;  // no picture layout: node_position is not written
      }
    }
  }
  Tensor feats;
  if (!multi) {
    feats = src[0].feats;  // the single-input path, as before
    src[0].nodes = flatten_features(feats).size(0);
  } else {
    // One graph: every source flattened as ncut() flattens one input, stacked in source order.
    std::vector<Tensor> flat;
    DType dt = src[0].feats.dtype();
    for (const Source& s : src) {
      flat.push_back(flatten_features(s.feats));
      if (s.feats.dtype() != dt) dt = DType::Float32;  // mixed float dtypes compute in float32
    }
    int64_t N = 0;
    for (size_t a = 0; a < src.size(); ++a) {
      CORTEX_CHECK(flat[a].size(1) == flat[0].size(1), "ncut: one graph needs one channel width d, found ",
                   source_name(src[0]), " ", shape_str(src[0].feats.shape()), " (d = ", flat[0].size(1), ") and ",
                   source_name(src[a]), " ", shape_str(src[a].feats.shape()), " (d = ", flat[a].size(1),
                   "); bring them to a shared width first (channel-align output or a projection)");
      src[a].offset = N, src[a].nodes = flat[a].size(0);
      N += flat[a].size(0);
    }
    feats = empty({N, flat[0].size(1)}, dt);
    for (size_t a = 0; a < src.size(); ++a) {
      if (src[a].nodes > 0) feats.narrow(0, src[a].offset, src[a].nodes).copy_(flat[a].to(dt));
      flat[a] = Tensor(), src[a].feats = Tensor();  // the stacked copy is the only one the Ncut needs
    }
    log("ncut: one graph over " + std::to_string(src.size()) + " sources: " + shape_str(feats.shape()));
  }
  for (const Query& q : queries) {
    CORTEX_CHECK(q.input < int64_t(src.size()), "ncut: --heatmap ", q.input, ":", q.image, ",", q.row, ",", q.col,
                 ": expected an input index below ", src.size());
    const Pictures& p = src[q.input].pics;
    CORTEX_CHECK(q.image < p.B && q.row < p.H && q.col < p.W, "ncut: --heatmap ", q.input, ":", q.image, ",", q.row,
                 ",", q.col, ": expected image < ", p.B, ", row < ", p.H, ", column < ", p.W, " in ",
                 source_name(src[q.input]));
  }
  progress("read", 1, since(t0));

  NcutOptions no = o.options;
  // Under MPI ranks only the Nystrom propagation is sharded (docs/distributed.md); the other methods
  // would run whole on every rank.
  CORTEX_CHECK(dist::size() == 1 || no.method == NcutMethod::Nystrom, "ncut: --method ", method_name(no.method),
               " is not sharded over MPI ranks (nystrom is); found ", dist::size(), " ranks: run it as one process");
  no.progress = [&](const char* phase, double done, double s) { progress(phase, done, s); };
  const NcutResult r = ncut(feats, no);
  if (!dist::is_root()) return {};  // every rank has the result; rank 0 colours and writes it
  const int64_t N = r.eigenvectors.size(0), k = no.k;
  char line[256];
  std::snprintf(line, sizeof line, "ncut: %s, %s affinity (%s %.4g), N = %lld, m = %lld, k = %lld; eigenvalues %.4f .. %.4f",
                method_name(no.method), affinity_name(no.affinity), no.affinity == Affinity::Cosine ? "t" : "sigma",
                r.t, static_cast<long long>(N), static_cast<long long>(r.sample_indices.numel()),
                static_cast<long long>(k), r.eigenvalues.at({0}), r.eigenvalues.at({k - 1}));
  log(line);

  std::vector<std::pair<std::string, Tensor>> outs = {
      {"eigenvalues", r.eigenvalues}, {"eigenvectors", r.eigenvectors}, {"sample_indices", r.sample_indices}};
  bool all_pics = true;
  for (const Source& s : src) all_pics = all_pics && s.has_pics;
  if (multi) {
    Tensor node_input = empty({N}, DType::Int64);
    int64_t* ni = node_input.data<int64_t>();
    for (size_t a = 0; a < src.size(); ++a)
      for (int64_t n = 0; n < src[a].nodes; ++n) ni[src[a].offset + n] = static_cast<int64_t>(a);
    outs.emplace_back("node_input", node_input);
    if (all_pics) {
      Tensor pos = empty({N, 3}, DType::Int64);
      int64_t* pp = pos.data<int64_t>();
      for (const Source& s : src)
        for (int64_t n = 0; n < s.nodes; ++n) {
          const Pictures& p = s.pics;
          const int64_t b = n / p.per_image, t = n % p.per_image - p.skip;
          int64_t* row = pp + 3 * (s.offset + n);
          row[0] = b, row[1] = t < 0 ? -1 : t / p.W, row[2] = t < 0 ? -1 : t % p.W;
        }
      outs.emplace_back("node_position", pos);
    }
  }
  std::vector<std::string> pngs;
  Tensor rgb, embedding3;
  ColourOptions co;
  co.samples = o.tsne_samples;
  co.seed = no.seed;
  if (want_rgb) {
    t0 = Clock::now();
    const Colouring c = colour_eigenvectors(r.eigenvectors, co);
    rgb = c.rgb, embedding3 = c.embedding;
    outs.emplace_back("rgb", c.rgb);
    progress("colour", 1, since(t0));
    if (!o.rgb_dir.empty()) {
      t0 = Clock::now();
      const std::filesystem::path dir = make_dir(o.rgb_dir, "--rgb-dir");
      for (size_t a = 0; a < src.size(); ++a) {
        const Source& s = src[a];
        const Pictures& p = s.pics;
        const Tensor imgs = to_images(picture_rows(c.rgb.narrow(0, s.offset, s.nodes), p), p.B, p.H, p.W);
        const std::filesystem::path sub = multi ? make_dir(dir / ("input_" + two(a)), "--rgb-dir") : dir;
        for (std::string& f : write_pngs(imgs, (sub / "image").string())) pngs.push_back(std::move(f));
      }
      progress("png", 1, since(t0));
    }
  }
  std::vector<std::string> extra;  // what else was written
  if (o.tsne_dims > 0) {
    t0 = Clock::now();
    Tensor emb;
    if (o.tsne_dims == 3 && embedding3.defined()) {
      emb = embedding3;  // the embedding the rgb is made from
    } else {
      ColourOptions to = co;
      to.tsne.dims = o.tsne_dims;
      emb = spectral_tsne(r.eigenvectors, to);
    }
    outs.emplace_back("tsne", emb);
    if (o.tsne_dims == 2 && !o.rgb_dir.empty()) {
      const std::string path = (std::filesystem::path(o.rgb_dir) / "tsne_2d.png").string();
      write_scatter(path, emb, rgb);
      extra.push_back("wrote " + path + ": the 2-D spectral t-SNE, nodes in their rgb colours");
    }
    progress("tsne", 1, since(t0));
  }
  if (!queries.empty()) {
    t0 = Clock::now();
    const std::filesystem::path dir = make_dir(o.heatmap_dir, "--heatmap-dir");
    const int64_t Q = static_cast<int64_t>(queries.size());
    std::vector<int64_t> query_nodes;
    for (const Query& q : queries) {
      const Source& s = src[q.input];
      query_nodes.push_back(s.offset + q.image * s.pics.per_image + s.pics.skip + q.row * s.pics.W + q.col);
    }
    const Tensor heat = cosine_rows(o.heatmap_features ? flatten_features(feats) : r.eigenvectors, query_nodes);
    for (int64_t qi = 0; qi < Q; ++qi) {
      for (size_t a = 0; a < src.size(); ++a) {
        const Pictures& p = src[a].pics;
        const std::string stem = "heatmap_" + two(qi) + (multi ? "_input_" + two(a) : std::string());
        const Tensor rows = picture_rows(heat.select(0, qi).narrow(0, src[a].offset, src[a].nodes).reshape({src[a].nodes, 1}), p);
        io::write_npy((dir / (stem + ".npy")).string(), rows.contiguous().reshape({p.B, p.H, p.W}));
        const std::filesystem::path sub =
            make_dir(multi ? dir / ("heatmap_" + two(qi)) / ("input_" + two(a)) : dir / ("heatmap_" + two(qi)),
                     "--heatmap-dir");
        write_pngs(diverging_colours(rows, p.B, p.H, p.W), (sub / "image").string());
      }
    }
    outs.emplace_back("heatmap", heat);
    extra.push_back("wrote " + std::to_string(Q) + " heatmap" + (Q == 1 ? "" : "s") + " (.npy and PNGs) to " +
                    o.heatmap_dir);
    progress("heatmap", 1, since(t0));
  }

  t0 = Clock::now();
  std::ostringstream tval;
  tval << r.t;
  std::map<std::string, std::string> meta = {
      {"method", method_name(no.method)},        {"affinity", affinity_name(no.affinity)},
      {"t", tval.str()},                         {"k", std::to_string(k)},
      {"samples", std::to_string(r.sample_indices.numel())},
      {"knn", std::to_string(no.knn)},           {"sampling", sampling_name(no.sampling)},
      {"search_dims", std::to_string(no.search_dims)},
      {"seed", std::to_string(no.seed)},         {"input", join(files)},
      {"key", join(keys)},                       {"input_shape", shape_str(feats.shape())},
      {"node_order", feats.dim() == 4 ? "(b * H + h) * W + w" : feats.dim() == 3 ? "b * T + t" : "n"}};
  if (multi) {
    nlohmann::json js = nlohmann::json::array();
    for (const Source& s : src) {
      const int64_t d = static_cast<int64_t>(s.shape.size());
      js.push_back({{"file", s.file},
                    {"key", s.key},
                    {"shape", s.shape},
                    {"offset", s.offset},
                    {"nodes", s.nodes},
                    {"node_order", d == 4 ? "(b * H + h) * W + w" : d == 3 ? "b * T + t" : "n"},
                    {"images", s.has_pics ? nlohmann::json(s.pics.B) : nlohmann::json(nullptr)},
                    {"grid", s.has_pics ? nlohmann::json({s.pics.H, s.pics.W}) : nlohmann::json(nullptr)},
                    {"skip", s.has_pics ? s.pics.skip : 0}});
    }
    meta["node_order"] = "the sources stacked in order, each in its own node_order (sources)";
    meta["inputs"] = std::to_string(src.size());
    meta["sources"] = js.dump();
  }
  if (o.tsne_dims > 0) meta["tsne_dims"] = std::to_string(o.tsne_dims);
  if (!queries.empty()) meta["heatmap"] = o.heatmap, meta["heatmap_of"] = o.heatmap_features ? "features" : "eigenvectors";
  io::write_safetensors(o.out, outs, meta);  // a temporary file renamed into place
  progress("write", 1, since(t0));
  progress("total", 1, since(t_start));

  std::string also;
  for (size_t a = 3; a < outs.size(); ++a) also += ", " + outs[a].first + " " + shape_str(outs[a].second.shape());
  std::vector<std::string> wrote = {"wrote " + o.out + ": eigenvalues " + shape_str(r.eigenvalues.shape()) +
                                    ", eigenvectors " + shape_str(r.eigenvectors.shape()) + ", sample_indices " +
                                    shape_str(r.sample_indices.shape()) + also};
  if (!pngs.empty())
    wrote.push_back("wrote " + std::to_string(pngs.size()) + " PNG" + (pngs.size() == 1 ? "" : "s") +
                    (multi ? " (" + std::to_string(src.size()) + " sources, one subfolder each)"
                           : " (" + std::to_string(src[0].pics.H) + " x " + std::to_string(src[0].pics.W) + ")") +
                    " to " + o.rgb_dir);
  for (std::string& e : extra) wrote.push_back(std::move(e));
  return wrote;
}

}  // namespace cortex::analysis::spectral
