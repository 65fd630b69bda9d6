// The readout training loop. Resume is exact because everything an epoch depends on is either a
// pure function of (seed, epoch) (batch order) or saved in the checkpoint: parameters, buffers,
// optimizer moments and step counts, the best-epoch snapshot, the early-stopping counters and
// the offsets of the model's random generators.
#include "models/readouts/train.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <numeric>
#include <random>
#include <set>

#include "autograd/losses.h"
#include "autograd/ops.h"
#include "autograd/optim.h"
#include "tensor/io/safetensors.h"

namespace cortex::models {

std::vector<int64_t> epoch_order(int64_t n, bool shuffle, uint64_t seed, int64_t epoch) {
  CORTEX_CHECK(n >= 0, "epoch_order: expected n >= 0, found ", n);
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  if (shuffle) {
    std::mt19937_64 rng(seed * 0x9e3779b97f4a7c15ULL + static_cast<uint64_t>(epoch) + 1);
    for (int64_t k = n - 1; k > 0; --k) std::swap(order[k], order[static_cast<int64_t>(rng() % (k + 1))]);
  }
  return order;
}

BatchSource in_memory_batches(const std::vector<Tensor>& maps, const Tensor& y, int64_t batch_size, bool shuffle,
                              uint64_t seed) {
  const char* fn = "in_memory_batches";
  CORTEX_CHECK(!maps.empty(), fn, ": expected at least one input tensor, found none");
  CORTEX_CHECK(y.defined() && y.dim() == 2, fn, ": expected y of shape (N, V), found ",
               y.defined() ? shape_str(y.shape()) : std::string("undefined"));
  const int64_t n = y.size(0);
  CORTEX_CHECK(n > 0, fn, ": expected at least one row, found 0");
  for (size_t i = 0; i < maps.size(); ++i)
    CORTEX_CHECK(maps[i].defined() && maps[i].dim() >= 1 && maps[i].size(0) == n, fn, ": expected input ", i,
                 " with ", n, " rows, found ", maps[i].defined() ? shape_str(maps[i].shape()) : std::string("undefined"));
  CORTEX_CHECK(batch_size > 0, fn, ": expected batch_size > 0, found ", batch_size);
  BatchSource src;
  src.n_batches = (n + batch_size - 1) / batch_size;
  src.get = [maps, y, n, batch_size, shuffle, seed](int64_t epoch, int64_t i) {
    const std::vector<int64_t> order = epoch_order(n, shuffle, seed, epoch);
    const int64_t lo = i * batch_size, hi = std::min(n, lo + batch_size);
    const Tensor idx = from_vector(std::vector<int64_t>(order.begin() + lo, order.begin() + hi), {hi - lo}, DType::Int64);
    Batch b;
    // The rows are chosen on the host; the (small) index goes to each tensor's device.
    for (const auto& m : maps) b.maps.push_back(index_select(m, 0, idx.to(m.device())));
    b.y = index_select(y, 0, idx.to(y.device()));
    return b;
  };
  return src;
}

double mean_pearson_r(const Tensor& pred, const Tensor& target) {
  CORTEX_CHECK(pred.defined() && target.defined() && pred.dim() == 2 && pred.shape() == target.shape(),
               "mean_pearson_r: expected pred and target of one 2-D shape, found ",
               pred.defined() ? shape_str(pred.shape()) : "undefined", " and ",
               target.defined() ? shape_str(target.shape()) : "undefined");
  const int64_t n = pred.size(0), v = pred.size(1);
  CORTEX_CHECK(n >= 2 && v >= 1, "mean_pearson_r: expected at least 2 rows and 1 column, found ", shape_str(pred.shape()));
  const auto p = pred.to(DType::Float64).contiguous().to_vector<double>();
  const auto t = target.to(DType::Float64).contiguous().to_vector<double>();
  double total = 0;
  for (int64_t j = 0; j < v; ++j) {
    double mp = 0, mt = 0;
    for (int64_t i = 0; i < n; ++i) mp += p[i * v + j] / n, mt += t[i * v + j] / n;
    double spt = 0, spp = 0, stt = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double a = p[i * v + j] - mp, b = t[i * v + j] - mt;
      spt += a * b, spp += a * a, stt += b * b;
    }
    total += (spp > 0 && stt > 0) ? spt / std::sqrt(spp * stt) : 0.0;
  }
  return total / v;
}

namespace {

Tensor data_loss(LossKind k, const Tensor& pred, const Tensor& y) {
  switch (k) {
    case LossKind::MSE: return mse_loss(pred, y);
    case LossKind::L1: return l1_loss(pred, y);
    case LossKind::Poisson: return poisson_nll_loss(pred, y);
  }
  throw Error("train_readout: unknown loss kind");
}

Tensor i64(int64_t v) { return from_vector(std::vector<int64_t>{v}, {1}, DType::Int64); }
Tensor f64(double v) { return from_vector(std::vector<double>{v}, {1}, DType::Float64); }

struct LoopState {
  int64_t epoch = 0, best_epoch = -1, bad = 0;
  double best = -std::numeric_limits<double>::infinity();
};

using Optimizers = std::vector<std::unique_ptr<Optimizer>>;

// Optimizer g's state is saved under "optim/" for g = 0 and "optim<g>/" after (one group: the
// checkpoint keys of a run without lr_scale).
std::string optim_prefix(size_t g) { return g == 0 ? "optim/" : "optim" + std::to_string(g) + "/"; }

void save_checkpoint(const std::string& path, Readout& model, const Optimizers& optims,
                     const std::vector<std::pair<std::string, Tensor>>& best, const LoopState& st, uint64_t seed,
                     const std::set<std::string>& frozen) {
  std::vector<std::pair<std::string, Tensor>> out;
  for (auto& [n, t] : model.named_tensors())
    if (t->defined() && !frozen.count(n)) out.push_back({"model/" + n, detach(*t)});
  for (auto& [n, t] : best) out.push_back({"best/" + n, t});
  for (size_t g = 0; g < optims.size(); ++g)
    for (auto& [k, t] : optims[g]->state()) out.push_back({optim_prefix(g) + k, t});
  out.push_back({"train/epoch", i64(st.epoch)});
  out.push_back({"train/best_epoch", i64(st.best_epoch)});
  out.push_back({"train/bad_epochs", i64(st.bad)});
  out.push_back({"train/best_score", f64(st.best)});
  out.push_back({"train/seed", i64(static_cast<int64_t>(seed))});
  const auto gens = model.generators();
  for (size_t i = 0; i < gens.size(); ++i)
    out.push_back({"train/generator." + std::to_string(i) + ".offset", i64(static_cast<int64_t>(gens[i]->offset()))});
  io::write_safetensors(path, out);  // temp file + rename: an interrupted write leaves the old checkpoint
}

void load_checkpoint(const std::string& path, Readout& model, Optimizers& optims,
                     std::vector<std::pair<std::string, Tensor>>& best, LoopState& st, uint64_t seed,
                     const std::set<std::string>& frozen) {
  const auto all = io::load_safetensors(path);
  auto need = [&](const std::string& k) -> const Tensor& {
    auto it = all.find(k);
    CORTEX_CHECK(it != all.end(), "train_readout: checkpoint '", path, "' lacks '", k, "'");
    return it->second;
  };
  const int64_t saved_seed = static_cast<int64_t>(need("train/seed").at({0}));
  CORTEX_CHECK(saved_seed == static_cast<int64_t>(seed), "train_readout: checkpoint '", path, "' was made with seed ",
               saved_seed, ", expected ", static_cast<int64_t>(seed));
  NoGradGuard ng;
  for (auto& [n, t] : model.named_tensors()) {
    if (!t->defined() || frozen.count(n)) continue;
    const Tensor& v = need("model/" + n);
    CORTEX_CHECK(v.shape() == t->shape(), "train_readout: checkpoint '", path, "' has ", n, " of shape ",
                 shape_str(v.shape()), ", expected ", shape_str(t->shape()));
    t->copy_(v);  // in place: the optimizer holds these very handles
  }
  for (auto& [n, t] : best) t.copy_(need("best/" + n));
  for (size_t g = 0; g < optims.size(); ++g) {
    const std::string pre = optim_prefix(g);
    OptimizerState os;
    for (const auto& [k, t] : all)
      if (k.rfind(pre, 0) == 0) os[k.substr(pre.size())] = t.clone();
    CORTEX_CHECK(!os.empty(), "train_readout: checkpoint '", path, "' lacks the state of optimizer group ", g,
                 " (was it written with another lr_scale?)");
    optims[g]->load_state(os);
  }
  st.epoch = static_cast<int64_t>(need("train/epoch").at({0}));
  st.best_epoch = static_cast<int64_t>(need("train/best_epoch").at({0}));
  st.bad = static_cast<int64_t>(need("train/bad_epochs").at({0}));
  st.best = need("train/best_score").at({0});
  const auto gens = model.generators();
  for (size_t i = 0; i < gens.size(); ++i)
    gens[i]->set_offset(static_cast<uint64_t>(need("train/generator." + std::to_string(i) + ".offset").at({0})));
}

}  // namespace

TrainResult train_readout(Readout& model, const BatchSource& train, const BatchSource& val, const TrainOptions& opt) {
  const char* fn = "train_readout";
  CORTEX_CHECK(train.n_batches > 0 && train.get, fn, ": expected a training source with batches, found ",
               train.n_batches);
  CORTEX_CHECK(val.n_batches > 0 && val.get, fn, ": expected a validation source with batches, found ", val.n_batches);
  CORTEX_CHECK(opt.max_epochs > 0, fn, ": expected max_epochs > 0, found ", opt.max_epochs);
  CORTEX_CHECK(opt.lr > 0 && std::isfinite(opt.lr), fn, ": expected lr > 0, found ", opt.lr);
  CORTEX_CHECK(opt.patience > 0, fn, ": expected patience > 0, found ", opt.patience);
  CORTEX_CHECK(opt.weight_decay >= 0 && opt.penalty_weight >= 0, fn,
               ": expected weight_decay and penalty_weight >= 0, found ", opt.weight_decay, " and ", opt.penalty_weight);
  CORTEX_CHECK(!opt.resume || !opt.checkpoint.empty(), fn, ": expected a checkpoint path to resume from, found none");

  model.requires_grad(true);
  // One optimizer per distinct lr multiple, in order of first appearance.
  std::vector<double> scales;
  std::vector<std::vector<Tensor>> groups;
  std::set<std::string> frozen;
  for (auto& [n, t] : model.named_parameters()) {
    if (!t->defined()) continue;
    const double s = opt.lr_scale ? opt.lr_scale(n) : 1.0;
    CORTEX_CHECK(s >= 0 && std::isfinite(s), fn, ": expected an lr_scale >= 0, found ", s, " for '", n, "'");
    if (s == 0) {
      *t = detach(*t);
      frozen.insert(n);
      continue;
    }
    const size_t g = static_cast<size_t>(std::find(scales.begin(), scales.end(), s) - scales.begin());
    if (g == scales.size()) scales.push_back(s), groups.emplace_back();
    groups[g].push_back(*t);
  }
  CORTEX_CHECK(!groups.empty(), fn, ": the model has no parameters to train");
  Optimizers optims;
  for (size_t g = 0; g < groups.size(); ++g) {
    const double lr = opt.lr * scales[g];
    if (opt.optim == OptimKind::Adam)
      optims.push_back(std::make_unique<Adam>(groups[g], AdamOptions{lr, 0.9, 0.999, 1e-8, opt.weight_decay}));
    else
      optims.push_back(std::make_unique<AdamW>(groups[g], AdamWOptions{lr, 0.9, 0.999, 1e-8, opt.weight_decay}));
  }

  // The best epoch's parameters (restored at the end).
  std::vector<std::pair<std::string, Tensor>> best;
  std::vector<Tensor*> trained;  // the handles `best` mirrors, in the same order
  for (auto& [n, t] : model.named_parameters())
    if (t->defined() && !frozen.count(n)) best.push_back({n, detach(*t).clone()}), trained.push_back(t);

  LoopState st;
  if (opt.resume && std::filesystem::exists(opt.checkpoint))
    load_checkpoint(opt.checkpoint, model, optims, best, st, opt.seed, frozen);

  TrainResult res;
  int64_t run_here = 0;
  while (st.epoch < opt.max_epochs && st.bad < opt.patience) {
    if (opt.stop_after > 0 && run_here >= opt.stop_after) break;
    model.train(true);
    double loss_sum = 0;
    for (int64_t i = 0; i < train.n_batches; ++i) {
      const Batch b = train.get(st.epoch, i);
      for (auto& o : optims) o->zero_grad();
      Tensor loss = data_loss(opt.loss, model.read(b.maps), b.y);
      if (opt.penalty_weight > 0) {
        const Tensor pen = model.penalty();
        if (pen.defined()) loss = loss + opt.penalty_weight * pen;
      }
      const double lv = loss.item();
      CORTEX_CHECK(std::isfinite(lv), fn, ": the loss became ", lv, " at epoch ", st.epoch, " batch ", i,
                   " (try a smaller lr)");
      backward(loss);
      for (auto& o : optims) o->step();
      loss_sum += lv;
    }
    model.train(false);
    std::vector<Tensor> preds, ys;
    {
      NoGradGuard ng;
      for (int64_t i = 0; i < val.n_batches; ++i) {
        const Batch b = val.get(st.epoch, i);
        preds.push_back(model.read(b.maps));
        ys.push_back(b.y);
      }
    }
    const double r = mean_pearson_r(concat(preds, 0), concat(ys, 0));
    if (r > st.best) {
      st.best = r, st.best_epoch = st.epoch, st.bad = 0;
      NoGradGuard ng;
      for (size_t k = 0; k < best.size(); ++k) best[k].second.copy_(*trained[k]);
    } else {
      ++st.bad;
    }
    EpochReport rep{st.epoch, loss_sum / train.n_batches, r, st.best, st.best_epoch};
    ++st.epoch;
    ++run_here;
    if (!opt.checkpoint.empty()) save_checkpoint(opt.checkpoint, model, optims, best, st, opt.seed, frozen);
    res.history.push_back(rep);
    if (opt.progress) opt.progress(rep);
  }
  res.epochs = st.epoch;
  res.best_epoch = st.best_epoch;
  res.best_r = st.best;
  res.finished = st.epoch >= opt.max_epochs || st.bad >= opt.patience;
  if (res.finished) {
    NoGradGuard ng;
    for (size_t k = 0; k < best.size(); ++k) trained[k]->copy_(best[k].second);
  }
  return res;
}

ConvGaussianModel::ConvGaussianModel(int64_t in_ch, int64_t hidden, int64_t layers, int64_t kernel, int64_t h, int64_t w,
                                     int64_t n_out, GaussSigma kind, bool elu_output, uint64_t seed) {
  CORTEX_CHECK(in_ch > 0 && hidden > 0 && h > 0 && w > 0 && n_out > 0, "ConvGaussianModel: expected positive sizes");
  CORTEX_CHECK(layers >= 1 && layers <= 8, "ConvGaussianModel: expected 1 to 8 conv layers, found ", layers);
  CORTEX_CHECK(kernel > 0 && kernel % 2 == 1, "ConvGaussianModel: expected an odd kernel size, found ", kernel);
  auto core = std::make_shared<Sequential>();
  Generator g(seed);
  for (int64_t i = 0; i < layers; ++i) {
    const int64_t cin = i == 0 ? in_ch : hidden;
    auto c = std::make_shared<Conv2d>(cin, hidden, kernel, 1, kernel / 2);
    c->weight = randn({hidden, cin, kernel, kernel}, g, 0.0, 1.0 / std::sqrt(static_cast<double>(cin * kernel * kernel)));
    core->push_back(c);
    convs.push_back(c);
  }
  register_module("core", core);
  readout = register_module("readout", std::make_shared<GaussianReadout>(MapShape{hidden, h, w}, n_out, kind, 0.1,
                                                                         elu_output, std::vector<int64_t>{}, seed + 1));
}

Tensor ConvGaussianModel::read(const std::vector<Tensor>& maps) {
  CORTEX_CHECK(maps.size() == 1, "ConvGaussianModel: expected one image batch, found ", maps.size(), " inputs");
  Tensor x = maps[0];
  for (auto& c : convs) x = elu((*c)(x));
  return readout->read({x});
}

BackboneReadout::BackboneReadout(std::shared_ptr<Backbone> b, std::vector<std::string> tap_list,
                                 std::shared_ptr<Readout> r)
    : taps(std::move(tap_list)) {
  CORTEX_CHECK(b && r, "BackboneReadout: expected a backbone and a readout");
  CORTEX_CHECK(!taps.empty(), "BackboneReadout: expected at least one tap, found none");
  backbone = register_module("backbone", std::move(b));
  readout = register_module("readout", std::move(r));
}

Tensor BackboneReadout::read(const std::vector<Tensor>& maps) {
  CORTEX_CHECK(maps.size() == 1 && maps[0].defined() && maps[0].dim() == 4, "BackboneReadout: expected one image ",
               "batch (B, 3, H, W), found ", maps.size(), " inputs");
  backbone->train(false);  // frozen statistics and no dropout, whatever mode the loop set
  const auto got = backbone->features(maps[0], taps);
  std::vector<Tensor> feats;
  for (const auto& t : taps) feats.push_back(got.at(t));
  return readout->read(feats);
}

}  // namespace cortex::models
