// cortex prune-sweep as a library call: the BOLDreams pruning study. One fwRF fit per keep
// fraction (channels per tap ranked by the std of their activation over the training images,
// models::prune_channels; with --finetune on the backbone as loaded, before fine-tuning), each into
// out/keep-<F>/ as cortex fit writes it, then r against the fraction kept (the paper's figure).
//
// Writes into `out`: keep-<F>/ (model.safetensors, predictions.npy, metrics.json, report.html),
// sweep.json (settings, per fraction: channels kept per tap, mean and median test r, per-ROI mean r),
// sweep.csv (one row per fraction and ROI, "all" for every voxel) and report.html (r against the
// fraction kept). Resumable: a fraction whose keep-<F>/metrics.json exists is read back, not refit,
// and an interrupted trained fit continues from its checkpoint; an `out` holding a sweep with other
// settings is refused. Every file goes through a temporary file and a rename.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "encoding/pipeline.h"

namespace cortex::analysis {

struct PruneSweepJob {
  encoding::EncodingSpec fit;               // cortex fit's flags; fit.out is the sweep's folder
  std::vector<double> fractions{1, 0.5, 0.25, 0.1, 0.05};
};

// "0.25" for 0.25: the folder name's number (shortest form that reads back to the same double).
std::string fraction_name(double f);

// Runs or resumes the sweep; returns what sweep.json holds.
nlohmann::json run_prune_sweep(const PruneSweepJob& job);

}  // namespace cortex::analysis
