#!/usr/bin/env bash
# Installs the project's build dependencies from Debian's packages when they are missing; does
# nothing when they are all there. Needs root (or sudo) only when something must be installed.
set -euo pipefail
# libjpeg62-turbo-dev and libpng-dev (with zlib1g-dev) decode images as PIL does; libstb-dev is kept
# for stb_image_write (PNG and .npz encoding). openmpi-bin and libopenmpi-dev: the jobs sharded over MPI
# ranks (docs/distributed.md) and their tests (ctest label mpi).
pkgs=(cmake g++ make libeigen3-dev nlohmann-json3-dev libcli11-dev libstb-dev libjpeg62-turbo-dev libpng-dev zlib1g-dev
  libgtest-dev libgmock-dev libbenchmark-dev jq openmpi-bin libopenmpi-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
((${#missing[@]} == 0)) && exit 0
echo "setup-deps: installing ${missing[*]}"
sudo=""
[[ $(id -u) -ne 0 ]] && sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
