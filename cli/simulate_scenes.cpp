// cortex simulate-scenes: writes scenes with known pixel masks (data/scenes.h) for checking
// segmentation scores offline:
//
//   cortex simulate-scenes --out DIR [--images 16 --size 64 --classes 3 --objects 3 --border 0 --noise 8 --seed 0]
//
// DIR gets images.npy (uint8 (N, S, S, 3)), masks/NNNNN.png (VOC palette PNGs: class index per
// pixel, 0 background, 255 ignore), figure/NNNNN.png (figure-ground), labels.npy, figure.npy and
// scenes.json (docs/alignedcut.md, "Segmentation").
#include <chrono>
#include <iostream>

#include "cli/commands.h"
#include "data/scenes.h"

namespace cortex::cli {

Run add_simulate_scenes(CLI::App& app) {
  auto* sub = app.add_subcommand("simulate-scenes",
                                 "Write textured scenes with known class and figure-ground masks (palette PNGs)");
  auto cfg = std::make_shared<data::SceneConfig>();
  auto out = std::make_shared<std::string>();
  sub->add_option("--out", *out, "Output folder")->required();
  sub->add_option("--images", cfg->images, "Number of images")->capture_default_str()->check(CLI::Range(1, 1 << 20));
  sub->add_option("--size", cfg->size, "Image side in pixels")->capture_default_str()->check(CLI::Range(8, 2048));
  sub->add_option("--classes", cfg->classes, "Object classes (labels 1..K; 0 is background)")
      ->capture_default_str()
      ->check(CLI::Range(1, 254));
  sub->add_option("--objects", cfg->max_objects, "Most objects per image (each image draws 1..this many)")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  sub->add_option("--border", cfg->border, "Half-width in pixels of the ignore (255) band at label changes")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--noise", cfg->noise, "Pixel noise sd (0..255 units)")->capture_default_str()->check(CLI::NonNegativeNumber);
  sub->add_option("--seed", cfg->seed, "Philox seed")->capture_default_str();
  return [cfg, out] {
    const auto t0 = std::chrono::steady_clock::now();
    const data::Scenes s = data::simulate_scenes(*cfg);
    data::write_scenes(s, *out);
    const auto lab = s.figure.to_vector<uint8_t>();
    int64_t fg = 0, valid = 0;
    for (uint8_t v : lab) fg += v == 1, valid += v != 255;
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::cout << "wrote " << *out << ": " << cfg->images << " scenes of " << cfg->size << "x" << cfg->size << ", "
              << cfg->classes << " classes, figure fraction " << (valid ? static_cast<double>(fg) / valid : 0.0) << " ("
              << secs << " s)\n";
    return 0;
  };
}

}  // namespace cortex::cli
