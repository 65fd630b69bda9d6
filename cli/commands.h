// The `cortex` subcommands. Each registers its flags on the app and returns the function that runs
// it; cli/main.cpp turns errors into one line on stderr and the exit code (2 usage, 1 other).
#pragma once
#include <CLI/CLI.hpp>
#include <functional>

namespace cortex::cli {

using Run = std::function<int()>;
Run add_inspect(CLI::App& app);
Run add_randn(CLI::App& app);
Run add_ncut(CLI::App& app);
Run add_features(CLI::App& app);
Run add_simulate(CLI::App& app);
Run add_eval(CLI::App& app);
Run add_fit(CLI::App& app);
Run add_predict(CLI::App& app);

}  // namespace cortex::cli
