// cortex dream: maximally exciting images of a fitted encoding model for one voxel or an ROI's mean.
//
//   cortex dream --model fit/model.safetensors --voxel 7 | --roi NAME [--data SUBJ] --out DIR
//                [--steps 200] [--seeds 4] [--seed 0] [--param fourier|pixels] [--lr 0.05] [--jitter 4]
//                [--tv 0] [--l2 0] [--diversity 0] [--diversity-space pixels|features]
//                [--decorrelate | --no-decorrelate] [--images TRAIN] [--weights W]
//
// Writes dream_<b>.png, dream.npy, dream.json and report.html (the contact sheet: each dream's
// predicted response beside the best --images image's). The objective: docs/dream.md. The library
// call is analysis/dream_job.h.
#include <iostream>

#include "analysis/dream_job.h"
#include "cli/commands.h"

namespace cortex::cli {

Run add_dream(CLI::App& app) {
  auto* sub = app.add_subcommand("dream", "Maximally exciting images of a fitted model for a voxel or an ROI "
                                          "(PNGs, dream.npy, dream.json, a contact sheet in the report)");
  auto o = std::make_shared<analysis::DreamJob>();
  sub->add_option("--model", o->model, "model.safetensors of cortex fit")->required();
  sub->add_option("--out", o->out, "Output folder")->required();
  sub->add_option("--voxel", o->voxel, "The target: one voxel (a column of the model's output)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--roi", o->roi, "The target: an ROI's mean prediction");
  sub->add_option("--data", o->data, "Subject folder whose ROI masks define --roi (default: metrics.json beside "
                                     "the model)");
  sub->add_option("--images", o->images, "Images (e.g. the training images: a folder of PNG/JPEG, a uint8 .npy, a "
                                         "subject folder or an HDF5 brick) whose best predicted response is shown "
                                         "beside the dreams");
  sub->add_option("--steps", o->steps, "Adam steps")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--seeds", o->seeds, "Images, one per seed (batched)")->capture_default_str()
      ->check(CLI::PositiveNumber);
  sub->add_option("--seed", o->seed, "The first seed")->capture_default_str()->check(CLI::NonNegativeNumber);
  sub->add_option("--param", o->param, "fourier (a scaled half spectrum) or pixels")
      ->check(CLI::IsMember({"fourier", "pixels"}))->capture_default_str();
  sub->add_option("--lr", o->lr, "Adam's learning rate")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--jitter", o->jitter, "Roll each image by up to this many pixels each step")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  sub->add_option("--tv", o->tv, "Total-variation weight")->capture_default_str()->check(CLI::NonNegativeNumber);
  sub->add_option("--l2", o->l2, "Weight of the mean squared distance from grey")->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--diversity", o->diversity, "Weight of the images' mean pairwise cosine (needs --seeds >= 2)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  sub->add_option("--diversity-space", o->diversity_space, "What --diversity compares: the centred pixels, or the "
                                                             "Gram matrices of the backbone's first tap (Lucid's)")
      ->check(CLI::IsMember({"pixels", "features"}))->capture_default_str();
  sub->add_flag("--decorrelate,!--no-decorrelate", o->decorrelate, "Parameterise the image in Lucid's decorrelated "
                                                                  "colour space (default off: docs/dream.md)");
  sub->add_option("--weights", o->weights, "The backbone's weights, when they moved since the fit");
  return [o] {
    const analysis::DreamSummary s = analysis::run_dream(*o);
    std::cout << s.line << "\ndream: " << o->out << "/report.html, dream.json, dream.npy and the PNGs written\n";
    return 0;
  };
}

}  // namespace cortex::cli
