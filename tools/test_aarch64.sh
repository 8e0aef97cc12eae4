#!/usr/bin/env bash
# The CPU engine on 64-bit ARM: cross-builds the engine's libraries and its op, loader, engine and
# serving tests for aarch64 (Debian's g++-aarch64-linux-gnu, tools/cmake/aarch64-linux-gnu.cmake,
# -DLONGVQ_FRONTENDS=OFF: no CLI, server, Python binding or CUDA) and runs them under
# qemu-aarch64 with ctest, which runs every test case of the x86 `ctest -L cpu` run of those
# suites except the million-step runs (label long). On aarch64 the kernels are the portable ones
# (cpu_isa() is generic), held to the same tolerances and bit-for-bit promises as on x86.
# Usage: bash tools/test_aarch64.sh [extra ctest args]   (build directory: $LONGVQ_ARM_BUILD or build-arm)
set -euo pipefail
cd "$(dirname "$0")/.."

bash tools/setup.sh arm
build="${LONGVQ_ARM_BUILD:-build-arm}"
jobs=$(nproc)
# -O1 outside the kernels (they are -O3 in every build type, kernels/cpu/CMakeLists.txt): the
# tests' own code compiles faster and is not what they measure (NDEBUG, as in Release).
cmake -S . -B "$build" -G Ninja \
  -DCMAKE_TOOLCHAIN_FILE="$PWD/tools/cmake/aarch64-linux-gnu.cmake" \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O1 -DNDEBUG" \
  -DLONGVQ_FRONTENDS=OFF -DLONGVQ_CUDA=OFF -DLONGVQ_TESTS=ON
cmake --build "$build" -j "$jobs"
(cd "$build" && ctest --output-on-failure -j "$jobs" -LE long "$@")
