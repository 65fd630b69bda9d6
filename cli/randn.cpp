// cortex randn: writes seeded standard-normal arrays, for trying commands and benchmarks without data.
#include <iostream>
#include <sstream>

#include "cli/commands.h"
#include "tensor/io/npy.h"
#include "tensor/io/safetensors.h"
#include "tensor/random.h"

namespace cortex::cli {
using namespace cortex::io;

Run add_randn(CLI::App& app) {
  auto* sub = app.add_subcommand("randn", "Write seeded standard-normal arrays to .npy or .safetensors");
  struct Opts {
    std::string shape = "4,5";
    std::string out;
    std::string dtype = "float32";
    std::vector<std::string> names{"x"};
    uint64_t seed = 0;
  };
  auto o = std::make_shared<Opts>();
  sub->add_option("--shape", o->shape, "Comma-separated sizes, e.g. 64,3,224,224")->capture_default_str();
  sub->add_option("--out", o->out, "Output file (.npy, or .safetensors for several named arrays)")->required();
  sub->add_option("--dtype", o->dtype, "float32 or float64")->capture_default_str();
  sub->add_option("--names", o->names, "Tensor names for .safetensors")->delimiter(',');
  sub->add_option("--seed", o->seed, "Philox seed")->capture_default_str();
  return [o] {
    Shape shape;
    for (const std::string& item : split_commas(o->shape, true)) {
      char* end = nullptr;
      const long long v = std::strtoll(item.c_str(), &end, 10);
      CORTEX_CHECK(!item.empty() && *end == '\0' && v >= 0, "randn: --shape expects comma-separated sizes, found '",
                   o->shape, "'");
      shape.push_back(v);
    }
    const DType dt = dtype_from_name(o->dtype);
    CORTEX_CHECK(dt == DType::Float32 || dt == DType::Float64, "randn: --dtype must be float32 or float64, found ",
                 o->dtype);
    Generator gen(o->seed);
    const bool st = o->out.size() > 12 && o->out.substr(o->out.size() - 12) == ".safetensors";
    if (st) {
      std::vector<std::pair<std::string, Tensor>> ts;
      for (const std::string& n : o->names) ts.emplace_back(n, randn(shape, gen, 0, 1, dt));
      write_safetensors(o->out, ts);
    } else {
      CORTEX_CHECK(o->out.size() > 4 && o->out.substr(o->out.size() - 4) == ".npy", "randn: --out must end in .npy or ",
                   ".safetensors, found '", o->out, "'");
      write_npy(o->out, randn(shape, gen, 0, 1, dt));
    }
    std::cout << "wrote " << o->out << "\n";
    return 0;
  };
}

}  // namespace cortex::cli
