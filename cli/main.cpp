// cortex: the command-line front end. One subcommand per job.
#include <cstdio>
#include <iostream>
#include <string>

#include "cli/commands.h"
#include "kernels/dispatch.h"
#include "tensor/error.h"

namespace {

// --verbose: which ops fell back to the host (no kernel on their device) and how often.
void print_fallbacks() {
  const auto stats = cortex::kernels::fallback_stats();
  if (stats.empty()) {
    std::cerr << "cortex: no op fell back to the host\n";
    return;
  }
  std::cerr << "cortex: ops that fell back to the host (no kernel on their device), op=calls:";
  for (const auto& [op, n] : stats) std::cerr << " " << op << "=" << n;
  std::cerr << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cortexgrad: brain encoding models from images, from scratch in C++/CUDA"};
  app.set_version_flag("--version", std::string("cortex ") + CORTEX_VERSION);
  app.require_subcommand(1);
  bool verbose = false;
  app.add_flag("--verbose", verbose, "At exit, list the ops that fell back to the host and how often (cortex --verbose fit ...)");
  std::vector<std::pair<CLI::App*, cortex::cli::Run>> commands;
  auto add = [&](cortex::cli::Run (*f)(CLI::App&)) {
    const size_t before = app.get_subcommands({}).size();
    cortex::cli::Run run = f(app);
    commands.emplace_back(app.get_subcommands({})[before], run);
  };
  add(cortex::cli::add_inspect);
  add(cortex::cli::add_randn);
  add(cortex::cli::add_ncut);
  add(cortex::cli::add_features);
  add(cortex::cli::add_simulate);
  add(cortex::cli::add_simulate_scenes);
  add(cortex::cli::add_oracle_miou);
  add(cortex::cli::add_eval);
  add(cortex::cli::add_fit);
  add(cortex::cli::add_predict);
  add(cortex::cli::add_compare);
  add(cortex::cli::add_linbridge);
  add(cortex::cli::add_prune_sweep);
  add(cortex::cli::add_attribute);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string msg = e.what();
    if (msg.empty()) msg = e.get_name();
    std::cerr << "cortex: " << msg << " (see cortex --help)\n";
    return 2;
  }
  int code = 0;
  try {
    for (auto& [sub, run] : commands)
      if (sub->parsed()) code = run();
  } catch (const cortex::Error& e) {
    std::cerr << "cortex: error: " << e.what() << "\n";
    code = 1;
  } catch (const std::exception& e) {
    std::cerr << "cortex: error: " << e.what() << "\n";
    code = 1;
  }
  if (verbose) print_fallbacks();
  return code;
}
