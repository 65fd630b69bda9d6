// cortex-profile: the memory-traffic profile of a named kernel on the emulated CUDA device, one
// table per kernel launch, with a roofline estimate for a named GPU (docs/profile.md). Built only
// by the profiling build (scripts/simt-profile.sh):
//   build-simt-profile/kernels/cuda/simt/profile/cortex-profile gemm7 --shape 256,256,256 --gpu h100
#include <CLI/CLI.hpp>
#include <iostream>
#include <string>
#include <vector>

#include "kernels/cuda/simt/profile/cases.h"
#include "tensor/error.h"

int main(int argc, char** argv) {
  namespace prof = cortex::simt::profile;
  CLI::App app{"cortex-profile: global/shared memory traffic of a kernel on the emulated CUDA device, counted "
               "per warp-level request, with a roofline ESTIMATE for a GPU (docs/profile.md)"};
  std::string kernel, shape_text, gpu = "h100";
  bool list = false;
  app.add_option("kernel", kernel, "The kernel (--list shows them)");
  app.add_option("--shape", shape_text, "Comma-separated sizes (the kernel's own, see --list; default its default)");
  app.add_option("--gpu", gpu, "GPU for the roofline estimate: h100 (SXM) or h200 (SXM)");
  app.add_flag("--list", list, "List the kernels, their shapes and defaults");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    if (list || kernel.empty()) {
      for (const prof::Case& c : prof::cases()) {
        std::string def;
        for (int64_t d : c.default_shape) def += (def.empty() ? "" : ",") + std::to_string(d);
        std::cout << c.name << "  --shape " << c.shape << " (default " << def << ")  " << c.what << "\n";
      }
      if (!list) {
        std::cerr << "cortex-profile: expected a kernel name (listed above)\n";
        return 2;
      }
      return 0;
    }
    const prof::Gpu& g = prof::gpu(gpu);
    std::vector<int64_t> shape;
    if (!shape_text.empty()) {
      std::string s = shape_text;
      for (char& ch : s)
        if (ch == 'x') ch = ',';
      for (const std::string& p : CLI::detail::split(s, ',')) {
        std::size_t used = 0;
        long long v = 0;
        try {
          v = std::stoll(p, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        CORTEX_CHECK(used == p.size() && !p.empty(), "--shape: expected comma-separated integers, found \"",
                     shape_text, "\"");
        shape.push_back(v);
      }
    }
    const std::vector<prof::KernelProfile> launches = prof::run_case(kernel, shape);
    CORTEX_CHECK(prof::saw_instrumented_code(),
                 "no load or store was instrumented: this binary's kernels were not built with "
                 "-fsanitize-coverage=trace-pc-guard,trace-loads,trace-stores");
    for (const prof::KernelProfile& p : launches) std::cout << prof::format(p, g) << "\n";
  } catch (const std::exception& e) {
    std::cerr << "cortex-profile: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
