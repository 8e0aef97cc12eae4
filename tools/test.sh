#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: ctest (C++, CUDA tests skip visibly
# without a GPU), then pytest (the Python reference). Stops at the first failing suite.
# Usage: bash tools/test.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."

bash tools/setup.sh
jobs=$(nproc)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$jobs"
(cd build && ctest --output-on-failure -j "$jobs")
# Debian's torch lives in /usr/bin/python3, not in whatever python3 is first on PATH.
/usr/bin/python3 -m pytest -q tests/python "$@"
