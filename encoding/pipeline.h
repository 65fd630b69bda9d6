// The encoding pipeline as a library (moved from cli/fit.cpp): the encoding spec, the backbone and
// readout factories, feature extraction through the on-disk feature cache, the input standardiser,
// splits, the model file's settings, and predict. cortex fit and predict are flags -> EncodingSpec
// -> these functions. Error messages keep the flag names users type ("fit: --readout ...").
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "encoding/features.h"
#include "encoding/model_file.h"
#include "models/backbone.h"
#include "models/readouts/readouts.h"
#include "models/readouts/train.h"
#include "tensor/tensor.h"

namespace cortex::encoding {

// Everything an encoding model is made from: data and splits, backbone (preset --arch or JSON
// --config; --weights or seeded --random-weights), taps, readout and its options, training.
// The fields are cortex fit's flags of the same names (cli/fit.cpp documents them).
struct EncodingSpec {
  std::string data, hemi = "lh", arch, config, weights, tap, out, alphas = "1e-2,1e-1,1,10,1e2,1e3,1e4,1e5";
  std::string readout = "ridge", loss = "mse", optim = "adam", cache, sigmas = "0.1,0.2,0.4";
  std::string train_idx, val_idx, test_idx, nc_units = "auto";
  std::string device;  // where a frozen backbone and ridge CV run (trained readouts: the host): see device_option
  std::string dtype = "fp32";  // the frozen backbone's compute dtype: fp32 or bf16 (docs/bf16.md)
  int64_t epochs = 60, core_size = 32, hidden = 128, grid = 7;
  double lr = 0, l1 = 1e-4, weight_decay = 0, val_fraction = 0.1, keep = 1.0, backbone_lr = 0.1;
  bool resume = false, finetune = false;
  int64_t random_weights = -1, image_size = 224, pool = 4, batch = 32, folds = 5;
  double test_fraction = 0.2;
  uint64_t seed = 0;
  bool drop_nan = false;
  // --readout gaussian (models/readouts/readouts.h, GaussianReadout): the spread's form (--sigma
  // full, uncorrelated or isotropic), features shared by N contiguous groups of voxels
  // (--shared-features N; 0: one feature vector per voxel), and --position-mlp COORDS.npy: positions
  // from a retinotopic MLP (30 hidden units, one hidden layer) on each voxel's coordinates, a float
  // (voxels, D) .npy. position_coords: those coordinates once read (fit), or the model file's
  // "source_grid" (predict).
  std::string sigma = "isotropic", position_mlp;
  // Transfer (Lurz et al.): --init-from MODEL starts the core (--readout core) or the fine-tuned
  // backbone (--finetune) from a model file of an earlier fit, with a fresh readout; --freeze core
  // or backbone keeps those weights fixed (lr_scale 0: out of the optimizer), none (the default
  // with --init-from) trains everything from the loaded weights.
  std::string init_from, freeze;
  int64_t shared_features = 0;
  Tensor position_coords;
  // --readout channel-align (models/readouts/channel_align.h): --hidden is the shared dimension D;
  // --align-reg "eigen=1,focal=0,zero=0.01,cov=0.01,k=10,nodes=200,t=1,gamma=2" overrides the
  // regularisers' weights and settings (empty: the defaults of ChannelAlignOptions).
  std::string align_reg;
};

// --device: cpu, emu (the emulated CUDA device), cuda or cuda:N. Empty (not given) means cuda
// when a GPU is present, else cpu; decided only when called, so that nothing else starts the driver.
Device device_option(const std::string& s);

// "a,b,c" -> {"a", "b", "c"}, for every comma-separated flag; empty items are kept when keep_empty
// (for callers that refuse them), else dropped.
std::vector<std::string> split_commas(const std::string& s, bool keep_empty = false);

// Comma-separated positive numbers (--alphas, --sigmas); `flag` names them in errors.
std::vector<double> parse_positive(const std::string& s, const char* flag);

// A readout kind: what it reads and whether the training loop fits it (else closed form / grid search).
struct ReadoutKind {
  const char* name;
  Input input;
  bool trained;
};
const ReadoutKind& kind_of(const std::string& name);  // an error listing the kinds for an unknown name
Input input_of(const EncodingSpec& o);                  // Images when fine-tuning
int64_t input_size(const EncodingSpec& o);              // core_size for the core, else image_size

// Checks a spec before any work: one cortex::Error naming the flag.
void check_opts(const EncodingSpec& o);

// The backbone of a spec: seeded random weights (alexnet, resnets) or a weights file.
std::shared_ptr<models::Backbone> make_backbone(const EncodingSpec& o);

// How a spec's images become the readout's inputs (encoding/features.h), and the inputs of every
// row of d ("<what> features" in the progress line).
InputSpec input_spec(const EncodingSpec& o, const models::Backbone* m);
std::vector<Tensor> extract(models::Backbone* m, const data::Dataset& d, const EncodingSpec& o, const char* what);

// The feature cache: extract() through --cache DIR. The file is named by a hash of everything the
// inputs depend on (backbone, weights file identity, taps, image size, preprocessing, input kind,
// pooling, and `images`: the rows' identity, see rows_identity), and the full key is checked inside.
std::vector<Tensor> features(models::Backbone* m, const data::Dataset& d, const EncodingSpec& o, const char* what,
                             const std::string& images);
std::string rows_identity(const data::Dataset& d, const std::string& source, const std::string& split);

// The readout factory: the readout of kind o.readout for inputs of these shapes (batch dim
// included) and V outputs; keep: fwrf's kept channels per map (empty: all).
std::shared_ptr<models::Readout> make_readout(const EncodingSpec& o, const std::vector<Shape>& in, int64_t V,
                                              const std::vector<Tensor>& keep);
// A fine-tuned backbone with its readout, built on the taps' shapes from one blank image; keep:
// fwrf's kept channels per tap (empty: all; finetuned_keep reads them back from a model file).
std::shared_ptr<models::BackboneReadout> make_finetuned(const EncodingSpec& o, std::shared_ptr<models::Backbone> bb,
                                                        int64_t V, const std::vector<Tensor>& keep = {});
// The name of a trained readout's output bias in a model file (its length is the voxel count):
// readout.bias (core), head.bias (channel-align), fc2.bias (two-layer), fc.bias (linear), else bias.
std::string readout_bias_key(const std::string& readout);
// The kept channels a fine-tuned model file records ("readout.keep.<l>"; empty when not pruned).
std::vector<Tensor> finetuned_keep(const std::map<std::string, Tensor>& tensors);
// --keep with --finetune: channels ranked by the std over the given training rows of their spatial
// mean, through the backbone as it is before fine-tuning (models::prune_channels), one batch at a time.
std::vector<Tensor> rank_channels_before_finetuning(models::Backbone* bb, const data::Dataset& d,
                                                    const std::vector<int64_t>& rows, const EncodingSpec& o);

// Trained readouts on flat features (two-layer, linear) see them z-scored with the training set's
// column means and standard deviations (kept in the model file as "input_mean" / "input_std"):
// pooled backbone activations can be large enough to saturate the encoder's sigmoid from the start.
struct Standardizer {
  Tensor mean, std;  // (1, F) float32
  static Standardizer fit(const Tensor& x);
  Tensor apply(const Tensor& x) const;
};
bool standardized(const std::string& readout);

// Predictions of a readout for inputs held in memory, `batch` rows at a time; of a fine-tuned
// model, preparing d's images batch by batch.
Tensor predict_inputs(models::Readout& net, const std::vector<Tensor>& in, int64_t batch);
Tensor predict_images(models::BackboneReadout& net, const data::Dataset& d, const EncodingSpec& o);
// Training batches of d's rows `rows`, decoded and prepared on demand (fine-tuning).
models::BatchSource image_batches(const data::Dataset& d, const std::vector<int64_t>& rows, int64_t batch,
                                  bool shuffle, const EncodingSpec& o, const models::Backbone* m);

// A split of the rows on disk as indices into d (rows drop_nan skipped leave every part, noted on stderr).
data::Split kept(const data::Split& on_disk, const data::Dataset& d);

// The model file (docs/model-file.md): a spec's settings, and a module's state written with them.
ModelSettings settings_of(const EncodingSpec& o);
// The inverse: the spec that rebuilds a model file's inputs and readout (what cortex predict runs),
// with `weights` (empty: the file's own, or its random:SEED), `batch` and `device` from the caller;
// `who` starts the error messages.
EncodingSpec spec_of_model(const std::map<std::string, Tensor>& tensors, const ModelSettings& m,
                           const std::string& model_path, const std::string& weights, int64_t batch,
                           const std::string& device, const char* who);
void write_state(const std::string& path, models::Module& m, const EncodingSpec& o, const Standardizer& z = {});

// What encoding::fit made: the data it used, the fitted readout and its predictions of the test split.
struct FitResult {
  data::Dataset train, test;              // the splits (test: the held-out images and their responses)
  Tensor pred;                            // (test images, voxels); undefined when the test split is empty
  std::shared_ptr<models::Readout> net;   // the fitted readout (null for ridge, whose state is in the model file)
  std::string source, in_shapes;          // what the inputs were ("alexnet features.5"), their shapes
  int64_t voxels = 0;
  int64_t epochs = -1;                    // trained readouts: epochs run (else -1)
  double best_val_r = 0;                  // trained readouts: best mean validation r
};

// cortex fit without its report: checks the spec, loads the data and splits (Algonauts layout or
// plain pairs; noise ceiling as a fraction, data::NcUnits), extracts the features (through the
// cache), fits the readout (ridge CV, Gaussian fwRF grid search, or training with early stopping
// and checkpoints; fine-tuning the backbone with --finetune), writes o.out/model.safetensors and
// predicts the test split. Progress on stderr.
FitResult fit(const EncodingSpec& o);

// cortex predict: the model file at model_path applied to the images at `images` (a folder of
// PNG/JPEG files, a uint8 (N, H, W, 3) .npy or an HDF5 brick), written to `out` as float32
// (N, voxels). weights: the backbone's weights when they moved since the fit (else from the file).
// A model file of another format_version or missing a key is refused before anything is written.
// Returns the predictions; *readout (when given) receives the readout kind.
Tensor predict(const std::string& model_path, const std::string& images, const std::string& weights,
               const std::string& out, int64_t batch, const std::string& device, std::string* readout = nullptr);

}  // namespace cortex::encoding
