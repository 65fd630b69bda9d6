// Training loop for the differentiable readouts (and the data-driven conv core): minibatches from
// memory or a callback, Adam/AdamW, MSE/L1/Poisson loss plus the readout's own penalty, early
// stopping on the validation mean Pearson r, and an atomically written checkpoint every epoch
// from which a resumed run ends with exactly the parameters of an uninterrupted one.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "models/backbone.h"
#include "models/layers.h"
#include "models/readouts/readouts.h"

namespace cortex::models {

struct Batch {
  std::vector<Tensor> maps;  // the readout's inputs (feature maps, flat features, or images)
  Tensor y;                  // (B, n_out) responses
};

// n_batches per epoch; get(epoch, i) returns batch i of that epoch. It must be a pure function
// of (epoch, i) for resume to reproduce a run (in_memory_batches is).
struct BatchSource {
  int64_t n_batches = 0;
  std::function<Batch(int64_t epoch, int64_t index)> get;
};

// The order of n rows in `epoch`: 0..n-1, or with `shuffle` a permutation drawn from (seed, epoch)
// alone (mt19937_64 and a hand-written Fisher-Yates, so every platform draws the same).
std::vector<int64_t> epoch_order(int64_t n, bool shuffle, uint64_t seed, int64_t epoch);

// Rows of maps (each (N, ...)) and y (N, V) in batches of batch_size (the last one smaller), in
// epoch_order.
BatchSource in_memory_batches(const std::vector<Tensor>& maps, const Tensor& y, int64_t batch_size, bool shuffle,
                              uint64_t seed = 0);

enum class LossKind { MSE, L1, Poisson };
enum class OptimKind { Adam, AdamW };

struct EpochReport {
  int64_t epoch = 0;         // 0-based epoch just finished
  double train_loss = 0;     // mean over its batches (data loss + penalty)
  double val_r = 0;          // mean Pearson r over outputs on the validation set
  double best_r = 0;         // best val_r so far
  int64_t best_epoch = -1;
};

struct TrainOptions {
  int64_t max_epochs = 100;
  double lr = 1e-3;
  double weight_decay = 0;  // Adam: L2 through the gradient; AdamW: decoupled
  OptimKind optim = OptimKind::Adam;
  LossKind loss = LossKind::MSE;
  double penalty_weight = 0;  // times Readout::penalty()
  int64_t patience = 10;      // epochs without a better val r before stopping
  uint64_t seed = 0;          // recorded in the checkpoint; a resume with another seed is refused
  std::string checkpoint;     // "" for none; written (temp file + rename) after every epoch
  bool resume = false;        // continue from `checkpoint` when the file exists
  int64_t stop_after = -1;    // > 0: return after this many epochs in this call (an interruption)
  // Per-parameter learning rate as a multiple of lr, by full parameter name (e.g. a smaller rate
  // for a pretrained backbone being fine-tuned); unset: 1 for every parameter. Parameters with
  // the same multiple share one optimizer. 0 freezes a parameter: it gets no gradient and is left
  // out of the checkpoint (it must be the same constant when resuming).
  std::function<double(const std::string& name)> lr_scale;
  std::function<void(const EpochReport&)> progress;
};

struct TrainResult {
  int64_t epochs = 0;      // epochs finished in total (including those before a resume)
  int64_t best_epoch = -1;
  double best_r = 0;
  bool finished = false;   // false when stop_after interrupted it
  std::vector<EpochReport> history;  // the epochs run in this call
};

// Trains `model` in place; at the end (finished) its parameters are those of the best epoch.
TrainResult train_readout(Readout& model, const BatchSource& train, const BatchSource& val, const TrainOptions& opt);

// Mean over columns of the Pearson r between pred and target (N >= 2, V), in float64; a constant
// column counts as r = 0.
double mean_pearson_r(const Tensor& pred, const Tensor& target);

// The data-driven core of Lurz et al. 2020: `layers` conv layers (kernel k, same padding, ELU)
// from images (B, in_ch, H, W) to (B, hidden, H, W), read out by a GaussianReadout. Names:
// "core.<i>.weight", "core.<i>.bias", "readout.*".
class ConvGaussianModel : public Readout {
 public:
  ConvGaussianModel(int64_t in_ch, int64_t hidden, int64_t layers, int64_t kernel, int64_t h, int64_t w,
                    int64_t n_out, GaussSigma kind = GaussSigma::Isotropic, bool elu_output = false, uint64_t seed = 0);
  Tensor read(const std::vector<Tensor>& maps) override;
  Tensor penalty() override { return readout->penalty(); }
  std::vector<Generator*> generators() override { return readout->generators(); }
  std::string type_name() const override { return "ConvGaussianModel"; }
  Tensor rf_centres() override { return readout->rf_centres(); }
  std::vector<std::shared_ptr<Conv2d>> convs;
  std::shared_ptr<GaussianReadout> readout;
};

// A backbone fine-tuned end to end with a readout on its taps: images (B, 3, H, W) -> the taps'
// activations, in the order given -> the readout. The backbone always runs in evaluation mode
// (BatchNorm running statistics and dropout frozen, as is usual when fine-tuning on the few
// thousand images of an fMRI set) while its parameters learn. Names: "backbone.*" (the backbone's
// own state_dict names under that prefix), "readout.*".
class BackboneReadout : public Readout {
 public:
  BackboneReadout(std::shared_ptr<Backbone> backbone, std::vector<std::string> taps, std::shared_ptr<Readout> readout);
  Tensor read(const std::vector<Tensor>& maps) override;
  Tensor penalty() override { return readout->penalty(); }
  std::vector<Generator*> generators() override { return readout->generators(); }
  std::string type_name() const override { return "BackboneReadout"; }
  Tensor rf_centres() override { return readout->rf_centres(); }
  Tensor rf_maps() override { return readout->rf_maps(); }
  std::shared_ptr<Backbone> backbone;
  std::vector<std::string> taps;
  std::shared_ptr<Readout> readout;
};

}  // namespace cortex::models
