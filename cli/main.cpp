// cortex: the command-line front end. One subcommand per job.
#include <cstdio>
#include <iostream>
#include <string>

#include "cli/commands.h"
#include "dist/comm.h"
#include "tensor/omp_defaults.h"
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

// The subcommands that run sharded over MPI ranks (docs/distributed.md); the others are refused under
// more than one rank, so that no two ranks write the same files.
bool sharded(const std::string& name) {
  return name == "features" || name == "fit" || name == "ncut" || name == "linbridge" ||
         name == "attribute";
}

int run_main(int argc, char** argv);

}  // namespace

int main(int argc, char** argv) {
  // A short OpenMP spin unless the user chose a wait policy (restarts the program once; before MPI).
  cortex::apply_omp_defaults(argv);
  // MPI starts only when a launcher (mpirun, srun) started this process: plain cortex never uses it.
  cortex::dist::init(argc, argv);
  const int code = run_main(argc, argv);
  cortex::dist::finalize();
  return code;
}

namespace {

int run_main(int argc, char** argv) {
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
  add(cortex::cli::add_concepts);
  add(cortex::cli::add_attribute);
  add(cortex::cli::add_dream);
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
    // A rank that cannot parse its arguments would leave the others waiting in check_same_job:
    // fail_job ends them there (dist/comm.h).
    if (cortex::dist::size() > 1) {
      cortex::dist::fail_job(msg + " (see cortex --help)");
      return 2;
    }
    std::cerr << "cortex: " << msg << " (see cortex --help)\n";
    return 2;
  }
  const int ranks = cortex::dist::size();
  if (ranks > 1) {
    // Every rank reaches the same verdict here, so each prints its line and exits cleanly.
    try {
      cortex::dist::check_same_job(argc, argv);
      for (auto& [sub, run] : commands)
        CORTEX_CHECK(!sub->parsed() || sharded(sub->get_name()), sub->get_name(), ": not sharded over MPI ranks ",
                     "(features, fit --readout ridge, ncut --method nystrom, linbridge and attribute are); found ", ranks,
                     " ranks: run it as one process");
    } catch (const cortex::dist::RankFailed&) {
      return 1;  // a rank that could not parse its arguments printed why (above)
    } catch (const std::exception& e) {
      std::fprintf(stderr, "cortex: rank %d: %s\n", cortex::dist::rank(), e.what());  // one write: ranks share stderr
      return 1;
    }
  }
  int code = 0;
  try {
    for (auto& [sub, run] : commands)
      if (sub->parsed()) code = run();
    cortex::dist::finish_job();
  } catch (const cortex::dist::RankFailed&) {
    code = 1;  // another rank failed and printed why; this one stops quietly
  } catch (const std::exception& e) {
    // Under several ranks the others may wait in a collective for this one: fail_job ends them
    // there, and every rank then finalizes and exits 1 (dist/comm.h).
    if (ranks > 1)
      cortex::dist::fail_job(std::string("error: ") + e.what());
    else
      std::cerr << "cortex: error: " << e.what() << "\n";
    code = 1;
  }
  if (verbose) print_fallbacks();
  // What this rank moved (docs/distributed.md; scripts/bench-mpi.sh reads these lines).
  if (ranks > 1) std::fprintf(stderr, "cortex: %s\n", cortex::dist::traffic_line().c_str());  // one write
  return code;
}

}  // namespace
