#!/usr/bin/env bash
# Sanitizer and fuzzing runs of the C++ code (CPU only; CUDA off). Each mode builds its own tree.
#
#   bash tools/sanitize.sh asan [ctest args]   AddressSanitizer + UndefinedBehaviorSanitizer (clang):
#                                               the whole ctest suite in build-asan/
#   bash tools/sanitize.sh tsan                ThreadSanitizer: the concurrency tests in build-tsan/
#   bash tools/sanitize.sh fuzz [SECONDS] [SEED]  every libFuzzer target for SECONDS (default 60) each,
#                                               from its seed corpus; new inputs go to data/fuzz/NAME,
#                                               crashes are copied to tests/fuzz/regressions/NAME.
#                                               SEED (default: random) makes a run repeatable; the
#                                               test suite's smoke run uses a fixed one so that CI
#                                               does not fail at random on a finding unrelated to
#                                               the change under test (long runs find those).
# Installs what is missing with tools/setup.sh (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-asan}"
shift || true
jobs=$(nproc)

bash tools/setup.sh test >/dev/null  # clang and its runtimes are in the test set

configure() {  # DIR SANITIZERS [extra cmake args]
  local dir=$1 san=$2
  shift 2
  # No Python binding: an instrumented extension cannot be loaded into Debian's uninstrumented
  # python3 (the sanitizer runtime must come first); the C++ it runs is the suite's own code.
  CC=clang CXX=clang++ cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLONGVQ_CUDA=OFF \
    -DLONGVQ_PYTHON=OFF -DLONGVQ_SANITIZE="$san" "$@" >/dev/null
}

case "$mode" in
  asan)
    configure build-asan address,undefined -DLONGVQ_FUZZ=ON
    cmake --build build-asan -j "$jobs"
    # halt_on_error: any report fails the test; the 10^6-step runs are left to the normal build.
    export ASAN_OPTIONS=halt_on_error=1:detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
    (cd build-asan && ctest --output-on-failure -j "$jobs" -LE long "$@")
    ;;
  tsan)
    # The OpenMP runtime is not instrumented for TSan: these runs use one CPU thread per session
    # and many sessions on many threads; tools/tsan.supp silences libomp's own bookkeeping.
    configure build-tsan thread
    cmake --build build-tsan -j "$jobs" --target test_engine
    export TSAN_OPTIONS="halt_on_error=1 suppressions=$PWD/tools/tsan.supp" OMP_NUM_THREADS=1
    build-tsan/tests/engine/test_engine "[tsan]"
    ;;
  fuzz)
    seconds="${1:-60}"
    seed="${2:-0}"  # libFuzzer: 0 = random
    configure build-asan address,undefined -DLONGVQ_FUZZ=ON
    targets=(safetensors config state inputs text request)
    cmake --build build-asan -j "$jobs" --target "${targets[@]/#/fuzz_}"
    export ASAN_OPTIONS=halt_on_error=1:detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
    for t in "${targets[@]}"; do
      work="data/fuzz/$t"
      mkdir -p "$work" "tests/fuzz/regressions/$t"
      echo "fuzz_$t: ${seconds}s"
      status=0
      (cd "$work" && ../../../build-asan/tests/fuzz/fuzz_"$t" -max_total_time="$seconds" -max_len=65536 \
         -timeout=10 -rss_limit_mb=4096 -seed="$seed" -print_final_stats=1 . ../../../tests/fuzz/corpus/"$t" \
         2>&1 | tail -n 14) || status=$?
      for crash in "$work"/crash-* "$work"/timeout-* "$work"/oom-*; do
        [[ -e "$crash" ]] && cp "$crash" "tests/fuzz/regressions/$t/" && echo "finding: $crash (copied to tests/fuzz/regressions/$t)"
      done
      [[ $status -eq 0 ]] || { echo "fuzz_$t found a problem (exit $status)"; exit 1; }
    done
    ;;
  *)
    echo "usage: bash tools/sanitize.sh asan|tsan|fuzz [...]" >&2
    exit 2
    ;;
esac
