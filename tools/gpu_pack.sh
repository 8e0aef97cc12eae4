#!/usr/bin/env bash
# Packs the header-only build dependencies into .gpu-deps/ (ignored by git), for a GPU machine
# that lacks them and cannot download them: tools/gpu_check.sh points CMake at the folder.
#
#   bash tools/gpu_pack.sh            # here, before the GPU session
#   bash tools/gpu_pack.sh --check    # also configure and build a test with ONLY the packed copies
#
# Then carry the folder along (the device tool's `carry: [".gpu-deps"]`) and run
# `bash tools/gpu_check.sh $OUT` there. What it packs (a CMake install prefix, ~2.5 MiB):
#   include/catch2/catch.hpp + lib/cmake/Catch2/ (Catch2 v2: the single header, its CMake
#                              package and Catch.cmake; not the prebuilt Catch2WithMain library,
#                              which longvq does not use, nor its import file that would demand it)
#   include/CLI/ + share/cmake/CLI11/          (CLI11)
#   include/nlohmann/ + share/cmake/nlohmann_json/  (nlohmann-json 3)
# Sources: this machine's Debian packages (catch2, libcli11-dev, nlohmann-json3-dev; installed by
# `bash tools/setup.sh test`), found under /usr/include, /usr/lib/cmake and /usr/share/cmake.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=.gpu-deps
CHECK=0
case "${1:-}" in
  --check) CHECK=1 ;;
  -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  "") ;;
  *) echo "gpu_pack.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
esac

need() {  # need PATH WHAT: the path must exist here
  if [ ! -e "$1" ]; then
    echo "gpu_pack.sh: $1 is missing ($2); run \`bash tools/setup.sh test\` first" >&2
    exit 1
  fi
}
need /usr/include/catch2/catch.hpp "Catch2 v2's single header"
need /usr/lib/cmake/Catch2/Catch2Config.cmake "Catch2's CMake package"
need /usr/include/CLI/CLI.hpp "CLI11's headers"
need /usr/share/cmake/CLI11/CLI11Config.cmake "CLI11's CMake package"
need /usr/include/nlohmann/json.hpp "nlohmann-json's headers"
need /usr/share/cmake/nlohmann_json/nlohmann_jsonConfig.cmake "nlohmann-json's CMake package"

rm -rf "$OUT"
mkdir -p "$OUT/include" "$OUT/lib/cmake/Catch2" "$OUT/share/cmake"
cp -r /usr/include/catch2 /usr/include/CLI /usr/include/nlohmann "$OUT/include/"
# Catch2's package, without Catch2Targets-none.cmake: that file imports the prebuilt
# libCatch2WithMain.a (1.7 MiB, built for this machine) and fails the configure when it is
# absent; longvq links Catch2::Catch2 (the header) only.
for f in Catch2Config.cmake Catch2ConfigVersion.cmake Catch2Targets.cmake Catch.cmake CatchAddTests.cmake \
         ParseAndAddCatchTests.cmake; do
  cp "/usr/lib/cmake/Catch2/$f" "$OUT/lib/cmake/Catch2/"
done
cp -r /usr/share/cmake/CLI11 /usr/share/cmake/nlohmann_json "$OUT/share/cmake/"
{
  echo "Packed by tools/gpu_pack.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ) from:"
  dpkg-query -W -f '  ${Package} ${Version}\n' catch2 libcli11-dev nlohmann-json3-dev 2>/dev/null || true
} > "$OUT/PACKED.txt"
echo "gpu_pack.sh: $(du -sh "$OUT" | cut -f1) in $OUT/ ($(find "$OUT" -type f | wc -l) files); carry it: \"$OUT\""

if [ "$CHECK" = 1 ]; then
  # Configure with the system's copies hidden (a private mount namespace: nothing outside this
  # command sees it), so that only the packed ones can be found, then build one test that needs
  # all three. Needs root or user namespaces (unshare).
  dir=$(mktemp -d /tmp/longvq-gpu-pack-check.XXXXXX)
  empty=$(mktemp -d /tmp/longvq-empty.XXXXXX)
  repo=$(pwd)
  unshare -m --propagation private bash -euo pipefail -c "
    for p in /usr/include/catch2 /usr/include/CLI /usr/include/nlohmann /usr/lib/cmake/Catch2 \
             /usr/share/cmake/CLI11 /usr/share/cmake/nlohmann_json; do mount --bind '$empty' \"\$p\"; done
    test ! -e /usr/include/catch2/catch.hpp
    cmake -S '$repo' -B '$dir' -G Ninja -DCMAKE_BUILD_TYPE=Release -DLONGVQ_CUDA=OFF -DLONGVQ_TESTS=ON \
          -DCMAKE_PREFIX_PATH='$repo/$OUT' > '$dir/configure.log'
    grep -E '^(Catch2|CLI11|nlohmann_json)_DIR' '$dir/CMakeCache.txt'
    cmake --build '$dir' --target test_cli -j 2 > '$dir/build.log'
    '$dir/tests/cli/test_cli' '[shipped]' | grep -E 'passed|failed'
  " || { echo "gpu_pack.sh: the build with only the packed copies FAILED (logs in $dir)" >&2; exit 1; }
  rm -rf "$dir" "$empty"
  echo "gpu_pack.sh: a build that sees only $OUT/ (system copies hidden) configured, built test_cli and passed"
fi
