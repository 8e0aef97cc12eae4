#!/usr/bin/env bash
# Installs longvq's dependencies with apt, in two sets:
#
#   bash tools/setup.sh run    what building and running the product needs (tools/longvq.sh):
#                              compiler, CMake, Ninja, CLI11, nlohmann-json and the libraries the
#                              server and the Python binding link
#   bash tools/setup.sh test   the run set plus the test and reference toolchain (tools/test.sh):
#                              Catch2, PyTorch, numpy, pytest, OpenBLAS, clang with its sanitizer
#                              and libFuzzer runtimes, and the services the tests start
#   bash tools/setup.sh bench  the test set plus what the benchmarks under tools/bench plot with
#   bash tools/setup.sh arm    what the aarch64 cross build and its tests under qemu need
#                              (tools/test_aarch64.sh): CMake, Ninja, the header-only libraries,
#                              the aarch64 cross compiler and qemu's user-mode emulator
#
# With no argument: `test` (everything). Idempotent: packages already present are skipped, so a
# re-run costs well under a second. Measured sizes and times are in the README.
set -euo pipefail

profile="${1:-test}"

run_packages=(
  build-essential cmake ninja-build pkg-config
  libcli11-dev nlohmann-json3-dev
  # longvq serve, and its --session-store redis://
  libcpp-httplib-dev libhiredis-dev
  # the Python binding (import longvq) and its arrays
  pybind11-dev python3-dev python3-numpy
)

test_packages=(
  catch2
  python3-torch python3-numpy python3-pytest
  # Debian's torch calls whatever libblas.so.3 is installed; without OpenBLAS that is the
  # reference BLAS, about 18x slower here.
  libopenblas0-pthread
  # tools/sanitize.sh (part of tools/test.sh): clang with its sanitizer and libFuzzer runtimes,
  # and LLVM's OpenMP for the clang builds.
  clang libclang-rt-14-dev libomp-14-dev
  # the server tests' HTTP client beside Python's standard library, and the services the
  # multi-replica tests start (tests/server/test_replicas.py)
  curl redis-server nginx
  # python3 -m longvq.dask and its tests (a real scheduler and workers; dataframes need pandas)
  python3-distributed python3-pandas
  # tools/test_aarch64.sh (part of tools/test.sh): the arm set below
)

# tools/test_aarch64.sh: the aarch64 cross compiler (its libstdc++ and libgomp come with it) and
# qemu-aarch64 to run what it builds; the header-only libraries are the host's.
arm_packages=(
  g++-aarch64-linux-gnu qemu-user
)

# tools/bench/*.py draw their plots with matplotlib; no test needs it.
bench_packages=(
  python3-matplotlib
)

case "$profile" in
  run) packages=("${run_packages[@]}") ;;
  test) packages=("${run_packages[@]}" "${test_packages[@]}" "${arm_packages[@]}") ;;
  bench) packages=("${run_packages[@]}" "${test_packages[@]}" "${arm_packages[@]}" "${bench_packages[@]}") ;;
  arm) packages=(cmake ninja-build nlohmann-json3-dev catch2 "${arm_packages[@]}") ;;
  list-run) printf '%s\n' "${run_packages[@]}"; exit 0 ;;
  list-test) printf '%s\n' "${run_packages[@]}" "${test_packages[@]}" "${arm_packages[@]}"; exit 0 ;;
  *)
    echo "usage: bash tools/setup.sh [run|test|bench|arm]   (run: build and run the product; test: also every test tool; bench: also the benchmarks' plotting; arm: the aarch64 cross build and qemu)" >&2
    exit 2
    ;;
esac

missing=()
installed=$(dpkg-query -W -f='${Package} ${Status}\n' "${packages[@]}" 2>/dev/null | awk '/install ok installed/ {print $1}' || true)
for p in "${packages[@]}"; do
  grep -qx "$p" <<<"$installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "setup ($profile): installing ${missing[*]}"
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup ($profile): all dependencies present"
fi
