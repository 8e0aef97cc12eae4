#!/usr/bin/env bash
# Installs what is missing, builds the `longvq` binary (Release) and runs it with your arguments:
#   bash tools/longvq.sh generate -p "It is a truth universally acknowledged" -n 200
# Re-running is cheap: setup skips installed packages and the build is incremental.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
{
  bash "$repo/tools/setup.sh" run  # the build and run set only (README: what it installs)
  cmake -S "$repo" -B "$repo/build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$repo/build" -j "$(nproc)" --target longvq_cli
} 1>&2  # stdout carries only what longvq prints
exec "$repo/build/longvq" "$@"
