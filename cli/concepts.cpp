// cortex concepts: AlignedCut concepts and trajectories (analysis/concepts_job.h, docs/alignedcut.md
// "Concepts and trajectories"):
//
//   cortex concepts --features feats.safetensors --key features.4,features.7 --model fit/model.safetensors
//                   --concepts 8 --out concepts/ [--ncut eig.safetensors] [--images images.npy]   (one line)
//
// Flags -> analysis::ConceptsJob -> run_concepts_job. Progress to stderr, what was written to stdout.
#include <cstdio>
#include <iostream>

#include "analysis/concepts_job.h"
#include "cli/commands.h"

namespace cortex::cli {

Run add_concepts(CLI::App& app) {
  auto* sub = app.add_subcommand("concepts",
                                 "AlignedCut concepts (FPS in the spectral t-SNE space, spheres, brain "
                                 "maps through a channel-align readout) and per-pixel trajectories");
  auto j = std::make_shared<analysis::ConceptsJob>();
  sub->add_option("--features", j->features, "Feature maps .safetensors (cortex features), one (B, C, H, W) per key")
      ->required()
      ->check(CLI::ExistingFile);
  sub->add_option("--key", j->keys, "The layers, comma-separated, as the model's --tap")->required();
  sub->add_option("--model", j->model, "model.safetensors of cortex fit --readout channel-align")
      ->required()
      ->check(CLI::ExistingFile);
  sub->add_option("--concepts", j->concepts.concepts, "Concept centres C")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  sub->add_option("--out", j->out, "Output folder")->required();
  sub->add_option("--ncut", j->ncut, "cortex ncut's output on the aligned nodes, layer-major (default: computed here)")
      ->check(CLI::ExistingFile);
  sub->add_option("--space", j->space, "Where the centres are picked: tsne (spectral t-SNE) or eigenvectors")
      ->capture_default_str()
      ->check(CLI::IsMember({"tsne", "eigenvectors"}));
  sub->add_option("--tsne-dims", j->tsne_dims, "Spectral t-SNE dimensions, 2 or 3")
      ->capture_default_str()
      ->check(CLI::IsMember({2, 3}));
  sub->add_option("--tsne-samples", j->tsne_samples, "Nodes the t-SNE runs on (the rest copy their nearest)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{2}, int64_t{1} << 40));
  sub->add_option("--radius", j->concepts.radius, "Sphere radius in embedding units (default: by --radius-quantile)")
      ->check(CLI::PositiveNumber);
  sub->add_option("--radius-quantile", j->concepts.radius_quantile,
                  "Radius = this quantile of the nodes' distances to their nearest centre")
      ->capture_default_str()
      ->check(CLI::Range(1e-9, 1.0));
  sub->add_option("--k", j->k, "Eigenvectors of the job's own ncut")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--samples", j->samples, "Nystrom samples of the job's own ncut")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  sub->add_option("--knn", j->knn, "KNN of the job's own ncut's propagation")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  sub->add_option("--seed", j->seed, "Seed of the sampling and t-SNE")->capture_default_str();
  sub->add_option("--images", j->images, "uint8 (B, H, W, 3) .npy drawn under the concept masks")
      ->check(CLI::ExistingFile);
  sub->add_option("--rois", j->rois, "JSON {\"roi\": [voxel column, ...]}: brain maps per ROI")
      ->check(CLI::ExistingFile);
  sub->add_option("--max-images", j->max_images, "Images drawn per layer")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  sub->add_flag("--write-aligned", j->write_aligned,
                "Also write DIR/aligned.safetensors: each layer's aligned maps (B, D, H, W), keyed by layer, for "
                "cortex ncut --key a,b,... (then rerun with --ncut)");
  return [j] {
    for (const std::string& line :
         analysis::run_concepts_job(*j, [](const std::string& l) { std::fprintf(stderr, "%s\n", l.c_str()); }))
      std::cout << line << "\n";
    return 0;
  };
}

}  // namespace cortex::cli
