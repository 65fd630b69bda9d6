// main() of the bench binaries: Google Benchmark's BENCHMARK_MAIN after the OpenMP wait policy the
// cortex programs start with (tensor/omp_defaults.h), so a bench measures what `cortex` runs with.
#pragma once
#include <benchmark/benchmark.h>

#include "tensor/omp_defaults.h"

#define CORTEX_BENCHMARK_MAIN()                                         \
  int main(int argc, char** argv) {                                     \
    cortex::apply_omp_defaults(argv);                                   \
    benchmark::Initialize(&argc, argv);                                 \
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;   \
    benchmark::RunSpecifiedBenchmarks();                                \
    benchmark::Shutdown();                                              \
    return 0;                                                           \
  }                                                                     \
  int main(int, char**)
