// cortex linbridge: the inherent/bias split of a fitted encoder's Jacobian and per-voxel nonlinearity.
//
//   cortex linbridge --model fit/model.safetensors --data SUBJ --out DIR [--split test]
//                    [--wrt features|pixels] [--autodiff] [--save-jacobians J.npy] [--max-jacobian-bytes 8G]
//                    [--memory-budget 1G] [--compressor none|infonce] [--linear fit_linear/model.safetensors] [--batch 32] [--block 256]
//
// --model is a cortex fit model file of any readout (frozen or fine-tuned backbone); --data the
// subject folder it was fitted on. Over the images of --split, writes per-voxel AFD, energy share
// and r / R² of the full model and of its linear part (.npy and linbridge.json), per-ROI summaries
// and report.html (nonlinearity by ROI, histograms, full-vs-linear r scatter); --linear adds a
// linear control encoder's r. Definitions: docs/linbridge.md. The library call is analysis/linbridge_job.h.
#include <iostream>

#include "analysis/linbridge_job.h"
#include "cli/commands.h"
#include "dist/comm.h"

namespace cortex::cli {

Run add_linbridge(CLI::App& app) {
  auto* sub = app.add_subcommand("linbridge", "Jacobian inherent/bias split of an encoding model: per-voxel "
                                              "nonlinearity (AFD, energy share), its linear part's r, report");
  auto o = std::make_shared<analysis::LinBridgeJob>();
  auto max_bytes = std::make_shared<std::string>("8G"), budget = std::make_shared<std::string>("1G");
  sub->add_option("--model", o->model, "model.safetensors of cortex fit (any readout)")->required();
  sub->add_option("--data", o->data, "Subject folder in the Algonauts layout")->required();
  sub->add_option("--out", o->out, "Output folder")->required();
  sub->add_option("--split", o->split, "Images whose Jacobians are averaged and scored: train or test")
      ->check(CLI::IsMember({"train", "test"}))->capture_default_str();
  sub->add_option("--wrt", o->wrt, "Jacobians with respect to the readout's input (features) or the normalised "
                                    "image through the backbone (pixels)")->capture_default_str();
  sub->add_flag("--autodiff", o->autodiff, "The autodiff path even where a closed form exists (two-layer, ridge, linear)");
  sub->add_flag("--float64", o->float64, "Model and Jacobians in float64 (slower; for checks)");
  sub->add_option("--save-jacobians", o->save_jacobians, "Write the Jacobians to this .npy (streamed; the closed "
                                                         "forms write their compact form, docs/linbridge.md)");
  sub->add_option("--max-jacobian-bytes", *max_bytes, "Refuse a --save-jacobians file larger than this")
      ->capture_default_str();
  sub->add_option("--memory-budget", *budget, "Bytes of tangents and outputs per block of the autodiff path")
      ->capture_default_str();
  sub->add_flag("--energy-afd", o->energy_afd, "Also AFD on the stimulus-specific energy ||dJM_v(z)||^2 / E||JM_v||^2 "
                                             "(afd_energy.npy; closed form: V H^2 work per stimulus)");
  sub->add_option("--compressor", o->compressor, "none, or infonce: also the learned compressor's JM_down scores "
                                                 "(afd_down.npy, energy_share_down.npy, inherent_down.npy)")
      ->capture_default_str();
  sub->add_option("--compressor-seed", o->compressor_seed, "Seed of the compressor's projection, weights and pairs")
      ->capture_default_str();
  sub->add_option("--linear", o->linear_model, "A cortex fit --readout linear model on the same inputs (control)");
  sub->add_option("--weights", o->weights, "The backbone's weights, when they moved since the fit");
  sub->add_option("--device", o->device, kDeviceHelp)->check(device_check());
  sub->add_option("--nc-units", o->nc_units, kNcUnitsHelp)->check(CLI::IsMember({"auto", "fraction", "percent"}))
      ->capture_default_str();
  sub->add_option("--batch", o->batch, "Images per backbone pass")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--block", o->block, "Stimuli per block of the Jacobian statistics")->capture_default_str()
      ->check(CLI::PositiveNumber);
  return [o, max_bytes, budget] {
    o->max_jacobian_bytes = analysis::parse_bytes(*max_bytes, "--max-jacobian-bytes");
    o->memory_budget = analysis::parse_bytes(*budget, "--memory-budget");
    const analysis::LinBridgeSummary s = analysis::run_linbridge(*o);
    if (dist::is_root())  // under MPI ranks rank 0 wrote the files (docs/distributed.md)
      std::cout << s.line << "\nlinbridge: " << o->out << "/report.html, linbridge.json and the .npy files written\n";
    return 0;
  };
}

}  // namespace cortex::cli
