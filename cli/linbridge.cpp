// cortex linbridge: the inherent/bias split of a fitted encoder's Jacobian and per-voxel nonlinearity.
//
//   cortex linbridge --model fit/model.safetensors --data SUBJ --out DIR [--split test]
//                    [--linear fit_linear/model.safetensors] [--batch 32] [--block 256] [--device cpu]
//
// --model is a cortex fit model file of --readout two-layer (or linear); --data the subject folder
// it was fitted on. Over the images of --split, writes per-voxel AFD, energy share and r / R² of the
// full model and of its linear part (.npy and linbridge.json), per-ROI summaries and report.html
// (nonlinearity by ROI, histograms, full-vs-linear r scatter); --linear adds a linear control
// encoder's r. Definitions: docs/linbridge.md. The library call is analysis/linbridge_job.h.
#include <iostream>

#include "analysis/linbridge_job.h"
#include "cli/commands.h"
#include "dist/comm.h"

namespace cortex::cli {

Run add_linbridge(CLI::App& app) {
  auto* sub = app.add_subcommand("linbridge", "Jacobian inherent/bias split of an encoder: per-voxel nonlinearity "
                                              "(AFD, energy share), its linear part's r, report");
  auto o = std::make_shared<analysis::LinBridgeJob>();
  sub->add_option("--model", o->model, "model.safetensors of cortex fit --readout two-layer (or linear)")->required();
  sub->add_option("--data", o->data, "Subject folder in the Algonauts layout")->required();
  sub->add_option("--out", o->out, "Output folder")->required();
  sub->add_option("--split", o->split, "Images whose Jacobians are averaged and scored: train or test")
      ->check(CLI::IsMember({"train", "test"}))->capture_default_str();
  sub->add_option("--linear", o->linear_model, "A cortex fit --readout linear model on the same inputs (control)");
  sub->add_option("--weights", o->weights, "The backbone's weights, when they moved since the fit");
  sub->add_option("--device", o->device, kDeviceHelp)->check(device_check());
  sub->add_option("--nc-units", o->nc_units, kNcUnitsHelp)->check(CLI::IsMember({"auto", "fraction", "percent"}))
      ->capture_default_str();
  sub->add_option("--batch", o->batch, "Images per backbone pass")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--block", o->block, "Stimuli per block of the Jacobian statistics")->capture_default_str()
      ->check(CLI::PositiveNumber);
  return [o] {
    const analysis::LinBridgeSummary s = analysis::run_linbridge(*o);
    if (dist::is_root())  // under MPI ranks rank 0 wrote the files (docs/distributed.md)
      std::cout << s.line << "\nlinbridge: " << o->out << "/report.html, linbridge.json and the .npy files written\n";
    return 0;
  };
}

}  // namespace cortex::cli
