// cortex fit's outputs besides the model file: predictions.npy, metrics.json (the schema of
// analysis/scores.h, plus train_images, test_images, inputs, readout, tap, finetune, epochs and
// best_val_r for trained readouts, position_error on simulated data; when the test split was
// scored also data, hemi, responses_fingerprint, the per-voxel r and r2, and roi_columns: ROI name
// -> response columns, which cortex compare reads) and report.html, each written atomically into o.out.
#pragma once
#include "encoding/pipeline.h"

namespace cortex::analysis {

struct FitSummary {
  bool scored = false;          // the test split had responses
  double mean_r = 0;            // mean test r over voxels
  bool has_score = false;       // a noise ceiling was there
  double challenge_score = 0;
};

FitSummary write_fit_outputs(const encoding::EncodingSpec& o, const encoding::FitResult& r);

}  // namespace cortex::analysis
