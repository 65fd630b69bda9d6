#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang (AddressSanitizer + UBSan) in build-fuzz/ and runs
# each for SECONDS (default 20) from a seed corpus made of the test fixtures (tests/data/io/).
# Exits non-zero if any fuzzer finds a crash, a sanitizer error, a leak or a hang; the reproducer is
# left in build-fuzz/artifacts/ (replay it with: build-fuzz/fuzz/fuzz_<name> <file>).
#   scripts/fuzz.sh [SECONDS]        JOBS=n for the build's parallelism (default 2),
#                                    TARGETS="image npz" to run only those fuzzers (default all)
set -euo pipefail
secs=${1:-20}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$root/build-fuzz
art=$build/artifacts
jobs=${JOBS:-2}
read -r -a targets <<<"${TARGETS:-npy npz safetensors image mask}"

sudo=""
[[ $(id -u) -ne 0 ]] && sudo="sudo"
install() {
  echo "fuzz.sh: installing $*"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# clang itself, then its libFuzzer/sanitizer runtime and its OpenMP runtime (the project's
# find_package(OpenMP) needs libomp when the compiler is clang). Checked by compiling, not by name.
command -v clang++ >/dev/null || install clang
ver=$(clang++ --version | sed -n 's/.*clang version \([0-9]*\).*/\1/p' | head -n1)
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' >"$probe/f.cpp"
printf '#include <omp.h>\nint main() { return omp_get_max_threads() > 0 ? 0 : 1; }\n' >"$probe/o.cpp"
missing=()
clang++ -fsanitize=fuzzer,address,undefined "$probe/f.cpp" -o "$probe/f" 2>/dev/null || missing+=("libclang-rt-$ver-dev")
clang++ -fopenmp "$probe/o.cpp" -o "$probe/o" 2>/dev/null || missing+=("libomp-$ver-dev")
if ((${#missing[@]})); then
  install "${missing[@]}"
  clang++ -fsanitize=fuzzer,address,undefined "$probe/f.cpp" -o "$probe/f" ||
    { echo "fuzz.sh: clang++ -fsanitize=fuzzer still fails after installing ${missing[*]}" >&2; exit 2; }
fi

cmake -S "$root" -B "$build" -DCMAKE_CXX_COMPILER=clang++ -DCORTEX_BUILD_FUZZ=ON -DCORTEX_CUDA=OFF \
  -DCORTEX_BUILD_TESTS=OFF -DCORTEX_BUILD_BENCH=OFF >"$build.configure.log" 2>&1 ||
  { cat "$build.configure.log" >&2; exit 2; }
make -C "$build" -j"$jobs" "${targets[@]/#/fuzz_}"

# Seed corpora (fuzz/corpus-*/ is git-ignored; what the fuzzers find accumulates there between runs).
data=$root/tests/data/io
seed() {
  local dir=$root/fuzz/corpus-$1
  shift
  mkdir -p "$dir"
  cp -n "$@" "$dir/"
}
seed npy "$data"/npy_*.npy
seed npz "$data"/npz_*.npz
seed safetensors "$data"/st_*.safetensors
# The image seeds: every colour type, bit depth, subsampling and progressive variant of decode/
# (libpng and libjpeg-turbo paths), and the files that crashed stb_image.
seed image "$data"/img_grey_20x30.png "$data"/img_rgba_20x30.png "$data"/img_palette_75x50.png \
  "$data"/img_port_75x50.png "$data"/img_land_120x160.jpg "$data"/jpeg_bad_*.jpg "$data"/png_bad_*.png \
  "$data"/decode/*.jpg "$data"/decode/*.png
# The mask seeds: palette PNGs at 8 and 4 bits, an 8-bit grey mask, and the palette image.
seed mask "$data"/mask_*.png "$data"/img_palette_75x50.png "$data"/img_grey_20x30.png

mkdir -p "$art"
status=0
for t in "${targets[@]}"; do
  log=$art/$t.log
  echo "fuzz.sh: fuzz_$t for ${secs}s"
  if "$build/fuzz/fuzz_$t" "$root/fuzz/corpus-$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -max_len=65536 -artifact_prefix="$art/$t-" -print_final_stats=1 >"$log" 2>&1; then
    grep -E "^stat::number_of_executed_units|^Done" "$log" | tr '\n' ' '
    echo
  else
    echo "fuzz.sh: fuzz_$t FAILED; log $log, reproducer under $art/" >&2
    grep -E "ERROR|SUMMARY|runtime error|==[0-9]+==" "$log" | head -n 20 >&2 || true
    status=1
  fi
done
exit $status
