// The `cortex` subcommands. Each registers its flags on the app and returns the function that runs
// it; cli/main.cpp turns errors into one line on stderr and the exit code (2 usage, 1 other).
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "encoding/pipeline.h"
#include "tensor/device.h"

namespace cortex::cli {

using Run = std::function<int()>;

// --device of features, fit and predict, and comma-separated flags: encoding/pipeline.h.
using encoding::device_option;
using encoding::split_commas;
// Checks a --device value while the command line is parsed, so a bad name is a usage error.
inline CLI::Validator device_check() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        try {
          Device::parse(s);
          return {};
        } catch (const std::exception& e) {
          return e.what();
        }
      },
      "DEVICE");
}
inline const char* kDeviceHelp = "cpu, emu (the emulated CUDA device), cuda or cuda:N (default: cuda when a GPU is "
                                 "present, else cpu)";

// --nc-units of fit and eval: the units of the noise-ceiling file (data/dataset.h: NcUnits).
inline const char* kNcUnitsHelp = "Noise-ceiling file units: auto (percent when its largest value exceeds 1.5), "
                                  "fraction or percent";

Run add_inspect(CLI::App& app);
Run add_randn(CLI::App& app);
Run add_ncut(CLI::App& app);
Run add_features(CLI::App& app);
Run add_simulate(CLI::App& app);
Run add_simulate_scenes(CLI::App& app);
Run add_oracle_miou(CLI::App& app);
Run add_eval(CLI::App& app);
Run add_fit(CLI::App& app);
Run add_predict(CLI::App& app);
Run add_compare(CLI::App& app);
Run add_linbridge(CLI::App& app);
Run add_prune_sweep(CLI::App& app);
// cortex fit's flags on `sub`, into `o` (cortex prune-sweep takes the same ones).
void add_fit_options(CLI::App* sub, encoding::EncodingSpec* o);
Run add_attribute(CLI::App& app);
Run add_concepts(CLI::App& app);
Run add_dream(CLI::App& app);

}  // namespace cortex::cli
