// Image decoding throughput (tensor/io: libjpeg-turbo and libpng behind io::decode_image), against
// PIL on the same files: bench/peers/image_peer.py, which also writes them (500 x 375 photos as
// baseline 4:2:0 q90, 4:4:4 q95 and progressive JPEGs; 425 x 425 RGB PNGs; 24 files a case).
// Each iteration decodes every file of a case from bytes in memory to RGB, on one thread, as the
// peer times Image.open(BytesIO).convert("RGB"). Counter: images/s.
// Run: python3 bench/peers/image_peer.py --make    (writes $CORTEX_BENCH_IMAGES or /tmp/cortex_bench_images)
//      OMP_NUM_THREADS=1 build/bench/bench_image
//      OMP_NUM_THREADS=1 python3 bench/peers/image_peer.py
#include <benchmark/benchmark.h>

#include "bench/bench_main.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "tensor/io/atomic_file.h"
#include "tensor/io/image.h"

using namespace cortex;
namespace fs = std::filesystem;

namespace {

std::string bench_dir() {
  const char* d = std::getenv("CORTEX_BENCH_IMAGES");
  return d != nullptr && *d != '\0' ? d : "/tmp/cortex_bench_images";
}

void decode_case(benchmark::State& st, const std::string& prefix) {
  const std::string dir = bench_dir();
  std::vector<std::string> paths;
  if (fs::is_directory(dir))
    for (const auto& e : fs::directory_iterator(dir))
      if (e.path().filename().string().rfind(prefix + "_", 0) == 0) paths.push_back(e.path().string());
  if (paths.empty()) {
    st.SkipWithError(("no " + prefix + "_* files in " + dir + ": run bench/peers/image_peer.py --make").c_str());
    return;
  }
  std::sort(paths.begin(), paths.end());
  std::vector<std::vector<uint8_t>> blobs;
  for (const auto& p : paths) blobs.push_back(io::read_file_bytes(p));
  for (auto _ : st) {
    for (const auto& b : blobs) {
      Tensor img = io::decode_image(b.data(), b.size(), prefix);
      benchmark::DoNotOptimize(img.raw_data());
    }
  }
  st.counters["images/s"] = benchmark::Counter(static_cast<double>(st.iterations() * blobs.size()),
                                               benchmark::Counter::kIsRate);
}

}  // namespace

BENCHMARK_CAPTURE(decode_case, jpeg_420_q90, std::string("jpeg_420_q90"))->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(decode_case, jpeg_444_q95, std::string("jpeg_444_q95"))->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(decode_case, jpeg_progressive, std::string("jpeg_progressive"))
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(decode_case, png_rgb, std::string("png_rgb"))->Unit(benchmark::kMillisecond)->UseRealTime();

CORTEX_BENCHMARK_MAIN();
