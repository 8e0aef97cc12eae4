#!/usr/bin/env bash
# Installs every build, test and reference dependency of longvq with apt. Idempotent:
# packages already present are skipped, so re-running costs a few seconds.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  catch2 libcli11-dev nlohmann-json3-dev
  python3-torch python3-numpy python3-pytest
  # Debian's torch calls whatever libblas.so.3 is installed; without OpenBLAS that is the
  # reference BLAS, about 18x slower here.
  libopenblas0-pthread
  # tools/sanitize.sh (part of tools/test.sh): clang with its sanitizer and libFuzzer runtimes,
  # and LLVM's OpenMP for the clang builds.
  clang libclang-rt-14-dev libomp-14-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all dependencies present"
fi
