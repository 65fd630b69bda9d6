// cortex fit: an encoding model from images to voxels, end to end on one dataset.
//
//   cortex fit --data subj01/ --arch alexnet --weights alexnet.safetensors --tap features.5
//              --out fit/   (one line)
//
// Inputs per image: the backbone's activations at --tap (comma-separated for several layers;
// images resized to --image-size, no crop, so receptive fields keep their positions, and normalised
// with the backbone's statistics, CLIP's for the CLIP layout, else ImageNet's: encoding/features.h),
// the grey image itself for --tap pixels, or for --readout core the grey image at --core-size.
// Readouts (models/readouts/readouts.h has the equations):
//   ridge          each tap average-pooled to --pool x --pool, flattened and concatenated; per-voxel
//                  penalties chosen by --folds-fold cross-validation over --alphas;
//   gaussian-fwrf  St-Yves & Naselaris: a Gaussian pooling field per voxel chosen by grid search
//                  (--grid x --grid centres, --sigmas) with ridge weights over the taps' channels;
//   gaussian       Lurz et al. 2020 on one tap's (C, H, W) map: --sigma full, uncorrelated or
//                  isotropic spreads, --shared-features N groups of voxels sharing features,
//                  --position-mlp COORDS.npy positions from a retinotopic MLP on voxel coordinates;
//   factorized     Klindt et al. 2017 on one tap's map;
//   fwrf           BOLDreams: free-form spatial maps per map size over the taps, channels pruned to
//                  the top --keep fraction by std;
//   pooled-linear  AlignedCut: global average pools of the taps, then linear;
//   two-layer      linear -> sigmoid (--hidden units) -> linear on the pooled features; `linear` is
//                  its linear control, trained the same way;
//   core           a 3-layer conv net trained from the grey images with a Gaussian readout;
//   channel-align  AlignedCut: each tap's channels mapped into one shared space of --hidden dims,
//                  token means summed, a linear head; L1 loss unless --loss says otherwise, and
//                  the eigen-constraint, focal, zero-centre and covariance regularisers
//                  (--align-reg; docs/alignedcut.md). Starts from ridge on the aligned features.
// The trained ones use Adam or AdamW (--optim, --weight-decay) on --loss (mse, l1, poisson) + --l1
// times the readout's penalty, early stopping on a --val-fraction of the training images, a
// checkpoint every epoch (--resume continues an interrupted fit to the same result).
// Frozen backbone: its features are computed once; with --cache DIR they are also written there,
// keyed by everything they depend on, and read back by the next fit that needs the same ones.
// --finetune trains the backbone end to end with a map readout (gaussian, factorized, fwrf,
// pooled-linear) at --backbone-lr times --lr; only the layers up to the last tap learn.
// --init-from MODEL (Lurz et al.'s transfer) starts the core or the fine-tuned backbone from an
// earlier fit's model file, for new voxels or a new subject, with a fresh readout; --freeze core
// or backbone keeps them fixed, --freeze none (the default) trains them further.
// Splits: the Algonauts layout's own train / test folders, or for plain pairs a seeded
// --test-fraction; early stopping holds out a seeded --val-fraction of the training rows. Index
// files (--train-idx, --val-idx, and for plain pairs --test-idx: 1-D integer .npy of rows on disk)
// replace the seeded draws.
// Evaluation on the test split (Algonauts layout: test_split/ when it holds responses): Pearson r,
// R², the challenge score, per ROI, and on a folder written by
// cortex simulate the distance of each fitted receptive-field position from the planted one.
// Outputs in --out: model.safetensors (docs/model-file.md), predictions.npy (test images x
// voxels), metrics.json and report.html, each written through a temporary file and renamed.
// --random-weights SEED builds the backbone with seeded random weights instead of --weights (for
// checks without pretrained weights, as in the demo). --nc-units states the noise-ceiling file's
// units (data/dataset.h: NcUnits; auto by default).
// This file only turns flags into an encoding::EncodingSpec: the pipeline is encoding/pipeline.h
// (encoding::fit, encoding::predict), the outputs besides the model file analysis/fit_report.h.
#include <chrono>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <memory>

#include "analysis/fit_report.h"
#include "cli/commands.h"
#include "dist/comm.h"
#include "encoding/pipeline.h"

namespace cortex::cli {
namespace {

using Clock = std::chrono::steady_clock;
using FitOpts = encoding::EncodingSpec;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

int run_fit(const FitOpts& o) {
  const auto t0 = Clock::now();
  const encoding::FitResult r = encoding::fit(o);                    // model.safetensors
  if (!dist::is_root()) return 0;  // under MPI ranks (docs/distributed.md) rank 0 writes the outputs
  const analysis::FitSummary s = analysis::write_fit_outputs(o, r);  // predictions, metrics.json, report.html
  if (s.scored) {
    std::cout << "fit: " << o.readout << " on " << r.source << ": mean r " << std::setprecision(3) << s.mean_r
              << " over " << r.voxels << " voxels";
    if (s.has_score && std::isfinite(s.challenge_score))
      std::cout << ", challenge score " << std::fixed << std::setprecision(1) << s.challenge_score;
    std::cout << "; results in " << o.out << "\n";
  }
  std::cerr << "fit: done in " << std::setprecision(1) << seconds_since(t0) << " s\n";
  return 0;
}

}  // namespace

// cortex predict: a model written by cortex fit applied to new images.
//
//   cortex predict --model fit/model.safetensors --images imgs/|images.npy --out pred.npy
//                  [--weights backbone.safetensors]   (one line)
//
// The settings (readout, backbone, taps, pooling, image size) come from the model file's metadata
// (docs/model-file.md; a file of another format_version or missing a key is refused, nothing written);
// --weights is needed only when the fit used a weights file that has moved (a fine-tuned backbone
// is inside the model file). Images: a folder of PNG/JPEG files (sorted by name), a uint8
// (N, H, W, 3) .npy or an HDF5 brick (.hdf5/.h5, dataset "imgBrick"); the output is (N, voxels)
// float32.
Run add_predict(CLI::App& app) {
  auto* sub = app.add_subcommand("predict", "Predict voxel responses to new images with a model from cortex fit");
  struct P {
    std::string model, images, weights, out, device;
    int64_t batch = 32;
  };
  auto p = std::make_shared<P>();
  sub->add_option("--model", p->model, "model.safetensors written by cortex fit")->required();
  sub->add_option("--images", p->images, "Folder of PNG/JPEG files, a uint8 (N, H, W, 3) .npy or an HDF5 brick")
      ->required();
  sub->add_option("--weights", p->weights, "Backbone weights, when not where the fit found them");
  sub->add_option("--batch", p->batch, "Images per forward pass")->capture_default_str();
  sub->add_option("--out", p->out, "Output .npy (images, voxels)")->required();
  sub->add_option("--device", p->device, std::string("Where the frozen backbone runs: ") + kDeviceHelp)
      ->check(device_check());
  return [p] {
    std::string readout;
    const Tensor pred = encoding::predict(p->model, p->images, p->weights, p->out, p->batch, p->device, &readout);
    std::cout << "predict: " << shape_str(pred.shape()) << " predictions (" << readout << ") written to " << p->out << "\n";
    return 0;
  };
}

void add_fit_options(CLI::App* sub, encoding::EncodingSpec* o) {
  sub->add_option("--data", o->data, "Subject folder (Algonauts layout) or a folder of images.npy + responses.npy")
      ->required();
  sub->add_option("--hemi", o->hemi, "lh, rh or both")->capture_default_str();
  sub->add_option("--arch", o->arch, "Backbone preset (alexnet, resnet50, vit_b_16, ...)");
  sub->add_option("--config", o->config, "Backbone JSON config instead of --arch");
  sub->add_option("--weights", o->weights, "Backbone weights (.safetensors, PyTorch state_dict names)");
  sub->add_option("--random-weights", o->random_weights, "Seeded random backbone weights instead of --weights");
  sub->add_option("--readout", o->readout,
                  "ridge, gaussian-fwrf, gaussian, factorized, fwrf, pooled-linear, two-layer, linear, core or "
                  "channel-align "
                  "(see the top of cli/fit.cpp)")
      ->capture_default_str();
  sub->add_option("--tap", o->tap, "Backbone layer(s) whose activations are the features, comma-separated; "
                  "'pixels': the grey image itself, no backbone (ridge, two-layer, linear)");
  sub->add_option("--cache", o->cache, "Folder for backbone features: computed once, reused by later fits");
  sub->add_flag("--finetune", o->finetune, "Train the backbone end to end with a map readout");
  sub->add_option("--backbone-lr", o->backbone_lr, "--finetune: the backbone's learning rate as a multiple of --lr")
      ->capture_default_str();
  sub->add_option("--epochs", o->epochs, "Trained readouts: most epochs (early stopping on validation r)")
      ->capture_default_str();
  sub->add_option("--lr", o->lr, "Trained readouts: Adam learning rate (default 1e-2; 1e-3 for two-layer, linear)");
  sub->add_option("--loss", o->loss, "Trained readouts: mse, l1 or poisson (gaussian, core)")->capture_default_str();
  sub->add_option("--optim", o->optim, "Trained readouts: adam (weight decay as L2 in the gradient) or adamw "
                  "(decoupled)")->capture_default_str();
  sub->add_option("--weight-decay", o->weight_decay, "Trained readouts: weight decay")->capture_default_str();
  sub->add_option("--l1", o->l1, "Trained readouts: weight of the readout's penalty (L1 on features)")
      ->capture_default_str();
  sub->add_option("--val-fraction", o->val_fraction, "Trained readouts: part of training images for early stopping")
      ->capture_default_str();
  sub->add_option("--hidden", o->hidden, "two-layer: hidden units; channel-align: the shared dimension D")
      ->capture_default_str();
  sub->add_option("--align-reg", o->align_reg, "channel-align: regulariser weights and settings, e.g. "
                  "eigen=1,focal=0,zero=0.01,cov=0.01,k=10,nodes=200,t=1,gamma=2 (docs/alignedcut.md)");
  sub->add_option("--keep", o->keep, "fwrf: keep this fraction of channels per tap (top by std)")->capture_default_str();
  sub->add_option("--grid", o->grid, "gaussian-fwrf: candidate centres per axis")->capture_default_str();
  sub->add_option("--sigmas", o->sigmas, "gaussian-fwrf: candidate sizes (map half-widths are 1)")->capture_default_str();
  sub->add_option("--sigma", o->sigma, "gaussian: the spread of each voxel's sampling position: full (2x2), "
                  "uncorrelated (x, y) or isotropic")->capture_default_str();
  sub->add_option("--shared-features", o->shared_features, "gaussian: share feature vectors within N contiguous "
                  "groups of voxels (0: off)")->capture_default_str();
  sub->add_option("--position-mlp", o->position_mlp, "gaussian: positions from a retinotopic MLP on these voxel "
                  "coordinates (float (voxels, D) .npy)");
  sub->add_option("--init-from", o->init_from, "Start the core (--readout core) or the backbone (--finetune) from "
                  "this model.safetensors of an earlier fit; the readout starts fresh");
  sub->add_option("--freeze", o->freeze, "With --init-from: core or backbone keeps the loaded weights fixed, none "
                  "(default) trains them further");
  sub->add_option("--core-size", o->core_size, "core: images are resized to this size")->capture_default_str();
  sub->add_flag("--resume", o->resume, "Trained readouts: continue from --out/checkpoint.safetensors");
  sub->add_option("--pool", o->pool, "ridge, two-layer, linear: average-pool each map to pool x pool")
      ->capture_default_str();
  sub->add_option("--image-size", o->image_size, "Images are resized to this square size")->capture_default_str();
  sub->add_option("--batch", o->batch, "Images per forward pass")->capture_default_str();
  sub->add_option("--alphas", o->alphas, "Ridge penalties to cross-validate (ridge, gaussian-fwrf)")->capture_default_str();
  sub->add_option("--folds", o->folds, "Cross-validation folds")->capture_default_str();
  sub->add_option("--test-fraction", o->test_fraction, "Plain pairs: held-out fraction")->capture_default_str();
  sub->add_option("--train-idx", o->train_idx, "Splits from files: 1-D integer .npy of training rows (plain pairs: "
                  "rows of responses.npy; Algonauts: rows of training_split)");
  sub->add_option("--val-idx", o->val_idx, "Rows for early stopping (trained readouts; ridge and gaussian-fwrf "
                  "cross-validate over train + val)");
  sub->add_option("--test-idx", o->test_idx, "Plain pairs: held-out rows");
  sub->add_option("--seed", o->seed, "Folds, splits and initial weights")->capture_default_str();
  sub->add_option("--nc-units", o->nc_units, kNcUnitsHelp)->check(CLI::IsMember({"auto", "fraction", "percent"}))
      ->capture_default_str();
  sub->add_flag("--drop-nan", o->drop_nan, "Skip images whose responses contain NaN (they are refused otherwise)");
  sub->add_option("--out", o->out, "Output folder")->required();
  sub->add_option("--dtype", o->dtype,
                  "Compute dtype of the frozen backbone's GEMMs, convolutions and attention: fp32, or bf16 (bfloat16 "
                  "operands, float32 accumulation; docs/bf16.md). Recorded in the model file; predict follows it")
      ->capture_default_str();
  sub->add_option("--device", o->device, std::string("Where the frozen backbone and ridge CV run (trained readouts fit on the host): ") +
                                             kDeviceHelp)
      ->check(device_check());
}

Run add_fit(CLI::App& app) {
  auto* sub = app.add_subcommand("fit", "Fit an encoding model from a backbone's features (or a core) to voxel responses");
  auto o = std::make_shared<FitOpts>();
  add_fit_options(sub, o.get());
  return [o, sub] {
    if (o->readout == "channel-align" && sub->count("--loss") == 0) o->loss = "l1";  // the paper's loss
    return run_fit(*o);
  };
}

}  // namespace cortex::cli
