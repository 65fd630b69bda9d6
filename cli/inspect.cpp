// cortex inspect FILE...: what is inside arrays, weights and images, without writing Python.
#include <cmath>
#include <cstdio>
#include <iomanip>
#include <iostream>
#include <limits>

#include "cli/commands.h"
#include "tensor/io/image.h"
#include "tensor/io/npy.h"
#include "tensor/io/safetensors.h"
#include "tensor/tensor.h"

namespace cortex::cli {
using namespace cortex::io;
namespace {

std::string extension(const std::string& path) {
  const auto dot = path.find_last_of('.');
  const auto slash = path.find_last_of('/');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return "";
  std::string e = path.substr(dot);
  for (char& c : e) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return e;
}

// One line per array: name, shape, dtype, and for numbers min/max/mean and the NaN count.
void describe(const std::string& name, const Tensor& t) {
  std::cout << "  " << std::left << std::setw(40) << name << " " << std::setw(18) << shape_str(t.shape()) << " "
            << std::setw(8) << dtype_name(t.dtype());
  if (t.numel() == 0) {
    std::cout << " (empty)\n";
    return;
  }
  // One pass in float64 over the elements, in chunks so a large tensor is not copied whole.
  const Tensor flat = t.reshape({-1});
  const int64_t n = flat.numel(), chunk = int64_t(1) << 22;
  double mn = std::numeric_limits<double>::infinity(), mx = -mn, sum = 0;
  int64_t nan = 0;
  for (int64_t s = 0; s < n; s += chunk) {
    const int64_t c = std::min(chunk, n - s);
    auto v = flat.slice(0, s, s + c).to(DType::Float64).to_vector<double>();
    for (double x : v) {
      if (std::isnan(x)) { ++nan; continue; }
      mn = std::min(mn, x);
      mx = std::max(mx, x);
      sum += x;
    }
  }
  std::cout << std::setprecision(6) << " min " << mn << "  max " << mx << "  mean "
            << (n > nan ? sum / static_cast<double>(n - nan) : std::nan("")) << "  NaN " << nan << "\n";
}

void inspect_file(const std::string& path) {
  const std::string ext = extension(path);
  if (ext == ".npy") {
    std::cout << path << ": npy\n";
    describe("(array)", read_npy(path));
  } else if (ext == ".npz") {
    auto arrays = read_npz(path);
    std::cout << path << ": npz, " << arrays.size() << " arrays\n";
    for (auto& [k, v] : arrays) describe(k, v);
  } else if (ext == ".safetensors") {
    SafeTensors st = SafeTensors::open(path);
    std::cout << path << ": safetensors, " << st.size() << " tensors\n";
    for (auto& [k, v] : st.metadata()) std::cout << "  metadata " << k << " = " << v << "\n";
    for (const std::string& k : st.keys()) describe(k, st.get(k));
  } else if (ext == ".png" || ext == ".jpg" || ext == ".jpeg") {
    Tensor img = read_image(path, ImageMode::Native);
    std::cout << path << ": image " << img.size(1) << " x " << img.size(0) << " pixels, " << img.size(2)
              << " channel" << (img.size(2) == 1 ? "" : "s") << "\n";
  } else {
    throw Error("inspect: " + path + ": unsupported file type '" + ext +
                "' (expected .npy, .npz, .safetensors, .png, .jpg or .jpeg)");
  }
}

}  // namespace

Run add_inspect(CLI::App& app) {
  auto* sub = app.add_subcommand("inspect", "Names, shapes, dtypes and value ranges of arrays, weights and images");
  auto files = std::make_shared<std::vector<std::string>>();
  sub->add_option("files", *files, "Files: .npy .npz .safetensors .png .jpg")->required()->check(CLI::ExistingFile);
  return [files] {
    for (const std::string& f : *files) inspect_file(f);
    return 0;
  };
}

}  // namespace cortex::cli
