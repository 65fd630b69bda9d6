// cortex attribute: integrated gradients of a fitted encoding model's prediction with respect to the
// image pixels, for each voxel of a list or an ROI's mean.
//
//   cortex attribute --model fit/model.safetensors --images SUBJ|DIR|X.npy --voxels 3,7,10-12 --out DIR
//                    [--roi NAME [--data SUBJ]] [--index 0,2-4] [--baseline black|mean|blur] [--steps 50]
//                    [--quadrature adaptive|trapezoid|gausslegendre] [--tol 0.01] [--max-steps 0]
//                    [--channel-mean] [--blur-sigma 2] [--batch 32] [--weights W]
//
// Any cortex fit model (every readout, frozen or fine-tuned backbone). Writes attributions.npy,
// maps.npy, one PNG overlay per image and target, attribution.json and report.html; prints the
// completeness error (the attributions' sum against f(x) - f(baseline)) for every image and target.
// The maths: docs/attribution.md. The library call is analysis/attribute_job.h.
#include <iostream>

#include "analysis/attribute_job.h"
#include "cli/commands.h"
#include "dist/comm.h"

namespace cortex::cli {

Run add_attribute(CLI::App& app) {
  auto* sub = app.add_subcommand("attribute", "Integrated gradients of a fitted model: which pixels drive a voxel "
                                              "or an ROI (maps, overlays, completeness check, report)");
  auto o = std::make_shared<analysis::AttributeJob>();
  sub->add_option("--model", o->model, "model.safetensors of cortex fit")->required();
  sub->add_option("--images", o->images, "A subject folder (its test split), a folder of PNG/JPEG files, a uint8 "
                                         "(N, H, W, 3) .npy or an HDF5 brick")->required();
  sub->add_option("--out", o->out, "Output folder")->required();
  sub->add_option("--voxels", o->voxels, "Voxels (columns of the model's output), e.g. 3,7,10-12: one map each");
  sub->add_option("--roi", o->roi, "An ROI name: one map of the ROI's mean prediction");
  sub->add_option("--data", o->data, "Subject folder whose ROI masks define --roi (default: metrics.json beside "
                                     "the model)");
  sub->add_option("--index", o->index, "Which images, e.g. 0,2-4 (default: all)");
  sub->add_option("--baseline", o->baseline, "black, mean (of the images) or blur (Gaussian, sigma S/8)")
      ->check(CLI::IsMember({"black", "mean", "blur"}))->capture_default_str();
  sub->add_option("--steps", o->steps, "Intervals along the path (steps + 1 gradient evaluations)")
      ->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--quadrature", o->quadrature, "trapezoid (uniform), adaptive (refined where the completeness "
                                                 "error is, docs/attribution.md) or gausslegendre")
      ->check(CLI::IsMember({"trapezoid", "adaptive", "gausslegendre"}))->capture_default_str();
  sub->add_option("--tol", o->tol, "adaptive: keep refining past --steps until every completeness error is within "
                                   "this fraction of |f(x) - f(baseline)| (0: exactly --steps)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  sub->add_option("--max-steps", o->max_steps, "adaptive with --tol: at most this many intervals (0: 8 x --steps)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  sub->add_flag("--channel-mean", o->channel_mean, "Average the maps over colour channels");
  sub->add_option("--blur-sigma", o->blur_sigma, "Blur the maps by a Gaussian of this sigma in pixels (0: none)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  sub->add_option("--batch", o->batch, "Path points per forward pass")->capture_default_str()
      ->check(CLI::PositiveNumber);
  sub->add_option("--weights", o->weights, "The backbone's weights, when they moved since the fit");
  return [o] {
    const analysis::AttributeSummary s = analysis::run_attribute(*o);
    if (!dist::is_root()) return 0;  // under MPI ranks rank 0 wrote the files (docs/distributed.md)
    std::cout << s.line << "\nattribute: " << o->out << "/report.html, attribution.json, the .npy maps and the "
              << "overlays written\n";
    return 0;
  };
}

}  // namespace cortex::cli
