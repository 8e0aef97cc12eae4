#!/usr/bin/env bash
# gpu_check.sh: the whole GPU check in one command, from the repository root of a GPU machine.
#
#   bash tools/gpu_check.sh [RESULTS_DIR] [--stage STAGE]... [--budget SECONDS]
#
# Prepare here first: `bash tools/gpu_pack.sh` packs the header-only build dependencies into
# .gpu-deps/ (the GPU machine may lack Catch2, CLI11 and nlohmann-json and cannot download them);
# carry that folder along. On the device tool: run `bash tools/gpu_check.sh $OUT` with
# carry [".gpu-deps"]; RESULTS_DIR (default gpu-results/) stays flat and small:
#   summary.md   stage by stage: passed / FAILED / skipped and why, durations, the machine, the
#                "cuda-invariants:" findings, the benchmark table (printed last, on stdout too)
#   build.log    configure + build;  tests.log  every test stage;  bench.log  the benchmark's log
#   table.md, bench.json   the benchmark (tools/bench/gpu_bench.py)
#
# Stages, in order (--stage runs only the named ones; repeatable; default all):
#   build       Release, CPU + CUDA for sm_90 only (CMAKE_CUDA_ARCHITECTURES=90, GPU_CHECK_ARCH
#               overrides), tests on, into build-gpu/ (GPU_CHECK_BUILD): the targets the stages
#               run; fails fast with the compiler's message. Then the device self-test
#               (test_cuda_smoke): without a GPU the script says so and exits 0 here.
#   ops         test_ops --backend cuda: every op against its reference, both EMA forms, long
#               sequences; then "[cuda-invariants]" (linear: a row alone vs in a batch)
#   invariants  test_engine --backend cuda "[cuda-invariants]": decode == chunked prefill ==
#               forward (code flips), batch 64 vs alone, graphs on == off, scratch growth after
#               recording, FFT form == scan
#   engine      test_engine --backend cuda (fixtures' parity, independent rows, bf16, planner),
#               its "[concurrency]" tests apart (threads capturing graphs while others
#               allocate), and test_cli --backend cuda "[shipped]" (shipped models' slices)
#   bench       EMA FFT form vs scan timings (test_ops "[.perf]"), then gpu_bench.py: engine CUDA
#               vs PyTorch CUDA (eager, CUDA graphs; torch.compile when time allows), bandwidth
#   sanitizer   compute-sanitizer memcheck and racecheck on a subset of the op tests, if the tool
#               runs on this machine (not on gVisor: the probe fails and the stage is skipped)
# The whole run fits --budget seconds (default 480, GPU_CHECK_BUDGET): a stage that would not
# fit in what is left is skipped and says so; each stage has a time cap. Exit status: 0 when every
# stage that ran passed (or there is no GPU), 1 otherwise. PYTHON (default python3) is the Python
# with PyTorch + CUDA for the benchmark.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

RESULTS=gpu-results
STAGES=()
BUDGET=${GPU_CHECK_BUDGET:-480}
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) sed -n '2,34p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --stage) [ $# -ge 2 ] || { echo "gpu_check.sh: --stage needs a name" >&2; exit 2; }; STAGES+=("$2"); shift 2 ;;
    --stage=*) STAGES+=("${1#--stage=}"); shift ;;
    --budget) [ $# -ge 2 ] || { echo "gpu_check.sh: --budget needs seconds" >&2; exit 2; }; BUDGET=$2; shift 2 ;;
    -*) echo "gpu_check.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
    *) RESULTS=$1; shift ;;
  esac
done
ALL=(build ops invariants engine bench sanitizer)
[ ${#STAGES[@]} -eq 0 ] && STAGES=("${ALL[@]}")
for s in "${STAGES[@]}"; do
  case " ${ALL[*]} " in *" $s "*) ;; *) echo "gpu_check.sh: unknown stage '$s' (stages: ${ALL[*]})" >&2; exit 2 ;; esac
done
wants() { case " ${STAGES[*]} " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

mkdir -p "$RESULTS"
RESULTS=$(cd "$RESULTS" && pwd)
BUILD=${GPU_CHECK_BUILD:-build-gpu}
ARCH=${GPU_CHECK_ARCH:-90}
PYTHON=${PYTHON:-python3}
JOBS=$(nproc 2>/dev/null || echo 4)
SUMMARY=$RESULTS/summary.md
TESTS_LOG=$RESULTS/tests.log
START=$(date +%s)
FAILED=0
ROWS=()

elapsed() { echo $(( $(date +%s) - START )); }
left() { echo $(( BUDGET - $(elapsed) )); }
say() { echo "[gpu_check $(elapsed)s] $*"; }
row() { ROWS+=("| $1 | $2 | $3 | $4 |"); }  # stage, result, seconds, detail

write_summary() {
  {
    echo "# tools/gpu_check.sh: $(date -u +%Y-%m-%dT%H:%M:%SZ), $COMMIT"
    echo
    echo "Machine: $MACHINE"
    echo
    echo "| stage | result | seconds | detail |"
    echo "|---|---|---|---|"
    printf '%s\n' "${ROWS[@]}"
    echo
    echo "Total: $(elapsed) s of a $BUDGET s budget."
    if [ -s "$RESULTS/.invariants" ]; then
      echo
      echo "## Findings (cuda-invariants)"
      echo
      echo '```'
      cat "$RESULTS/.invariants"
      echo '```'
    fi
    if [ -s "$RESULTS/table.md" ]; then
      echo
      cat "$RESULTS/table.md"
    fi
  } > "$SUMMARY"
}

finish() {
  write_summary
  rm -f "$RESULTS/.invariants"
  echo
  cat "$SUMMARY"
  exit "$1"
}

# run_stage NAME ESTIMATE CAP CMD...: skipped when less than ESTIMATE seconds are left; killed
# after min(CAP, what is left) seconds; its output goes to tests.log (and the terminal).
run_stage() {
  local name=$1 estimate=$2 cap=$3
  shift 3
  local l
  l=$(left)
  if [ "$l" -lt "$estimate" ]; then
    say "$name: skipped (${l} s left, needs ~${estimate} s)"
    row "$name" skipped - "not enough time left (${l} s; needs ~${estimate} s)"
    return 0
  fi
  local limit=$(( cap < l - 5 ? cap : l - 5 ))
  say "$name: $* (limit ${limit} s)"
  local t0 rc
  t0=$(date +%s)
  echo "===== $name: $* =====" >> "$TESTS_LOG"
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$TESTS_LOG"
  rc=${PIPESTATUS[0]}
  local dt=$(( $(date +%s) - t0 ))
  case $rc in
    0) row "$name" passed "$dt" "$(tail -n 3 "$TESTS_LOG" | grep -E 'passed|assertions' | tail -n 1)" ;;
    124|137) FAILED=1; row "$name" "TIMED OUT" "$dt" "killed after ${limit} s (tests.log has what ran)" ;;
    77) row "$name" skipped "$dt" "no GPU (exit 77)" ;;
    *) FAILED=1; row "$name" FAILED "$dt" "exit $rc; $(grep -E 'FAILED|failed' "$TESTS_LOG" | tail -n 1 | cut -c1-160)" ;;
  esac
  return 0
}

# --- the machine -------------------------------------------------------------------------------
if git rev-parse --git-dir > /dev/null 2>&1; then
  COMMIT="commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- 2>/dev/null || echo ' + uncommitted changes')"
else
  COMMIT="no git checkout here (the tree as copied)"
fi
NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
MACHINE="$(uname -srm); $(nproc) cores; nvcc $("$NVCC" --version 2>/dev/null | grep -o 'release [0-9.]*' | cut -d' ' -f2 || echo '?'); \
cmake $(cmake --version 2>/dev/null | head -n 1 | awk '{print $3}'); $(c++ --version 2>/dev/null | head -n 1); \
GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -n 1 || true)"
[ -n "${MACHINE##*GPU: }" ] || MACHINE="${MACHINE}none seen by nvidia-smi"
say "$MACHINE"
: > "$TESTS_LOG"

# --- build -------------------------------------------------------------------------------------
if wants build; then
  t0=$(date +%s)
  DEPS=()
  dep_note="system packages"
  if [ -d .gpu-deps ]; then  # the packed copies (tools/gpu_pack.sh) win: the versions tested here
    DEPS=(-DCMAKE_PREFIX_PATH="$REPO/.gpu-deps")
    dep_note=".gpu-deps/ (tools/gpu_pack.sh)"
  fi
  GEN=()
  command -v ninja > /dev/null && GEN=(-G Ninja)
  export CMAKE_POLICY_VERSION_MINIMUM=3.5  # CMake 4 refuses old packages' policy versions without it
  say "build: configure ($BUILD, sm_$ARCH, Release, deps from $dep_note)"
  if ! cmake -S . -B "$BUILD" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DLONGVQ_CUDA=ON -DLONGVQ_TESTS=ON \
       -DCMAKE_CUDA_ARCHITECTURES="$ARCH" "${DEPS[@]}" > "$RESULTS/build.log" 2>&1; then
    cat "$RESULTS/build.log"
    hint=""
    grep -q "Catch2\|CLI11\|nlohmann" "$RESULTS/build.log" && hint=" (missing dependency: run \`bash tools/gpu_pack.sh\` on a machine that has them and carry .gpu-deps)"
    row build FAILED $(( $(date +%s) - t0 )) "configure failed$hint; build.log"
    FAILED=1
    finish 1
  fi
  grep -E '^(Catch2|CLI11|nlohmann_json)_DIR' "$BUILD/CMakeCache.txt" >> "$RESULTS/build.log"
  # Only what the stages run (the loaders', fuzz and long-run tests are CPU-only: ctest here has them).
  TARGETS=(test_cuda_smoke test_ops test_engine test_cli longvq_cli engine_bench)
  say "build: cmake --build $BUILD -j $JOBS --target ${TARGETS[*]}"
  if ! cmake --build "$BUILD" -j "$JOBS" --target "${TARGETS[@]}" >> "$RESULTS/build.log" 2>&1; then
    echo "----- the first errors (all of it is in build.log) -----"
    grep -n -m 25 -E 'error|Error|FAILED' "$RESULTS/build.log"
    row build FAILED $(( $(date +%s) - t0 )) "compile failed: $(grep -m 1 -E 'error' "$RESULTS/build.log" | cut -c1-200)"
    FAILED=1
    finish 1
  fi
  warnings=$(grep -c -E 'warning' "$RESULTS/build.log" || true)
  row build passed $(( $(date +%s) - t0 )) "sm_$ARCH, deps from $dep_note, ${warnings} warning lines"
fi

for bin in tests/cuda/test_cuda_smoke tests/ops/test_ops tests/engine/test_engine tests/cli/test_cli engine_bench; do
  if [ ! -x "$BUILD/$bin" ]; then
    say "$BUILD/$bin is missing: run the build stage first"
    row setup FAILED - "$BUILD/$bin missing (run --stage build)"
    finish 1
  fi
done

# --- is there a GPU? -----------------------------------------------------------------------------
"$BUILD/tests/cuda/test_cuda_smoke" > "$RESULTS/.smoke" 2>&1
rc=$?
cat "$RESULTS/.smoke" >> "$TESTS_LOG"
if [ $rc -eq 77 ]; then
  say "no GPU: $(tail -n 1 "$RESULTS/.smoke")"
  row gpu "no GPU" - "$(tail -n 1 "$RESULTS/.smoke" | cut -c1-200); the other stages need one"
  rm -f "$RESULTS/.smoke"
  finish 0
elif [ $rc -ne 0 ]; then
  cat "$RESULTS/.smoke"
  row gpu FAILED - "the device self-test failed: the machine or the toolkit, not longvq (tests.log)"
  rm -f "$RESULTS/.smoke"
  finish 1
fi
row gpu passed - "test_cuda_smoke: $(tail -n 1 "$RESULTS/.smoke" | cut -c1-160)"
rm -f "$RESULTS/.smoke"

# The random ~100 M model for the benchmark is generated on the CPU while the tests run.
GEN_PID=""
if wants bench; then
  if "$PYTHON" -c "import torch" 2> /dev/null; then
    ( cd tools && "$PYTHON" -c "
import sys; sys.path.insert(0, 'bench')
import compare
compare.ensure_random(compare.WORK / 'random-100m', compare.RANDOM_100M)
" ) > "$RESULTS/bench.log" 2>&1 &
    GEN_PID=$!
  fi
fi

T=$BUILD/tests
wants ops && run_stage ops 40 150 "$T/ops/test_ops" --backend cuda
wants ops && run_stage ops-invariants 15 90 "$T/ops/test_ops" --backend cuda "[cuda-invariants]"
wants invariants && run_stage invariants 25 120 "$T/engine/test_engine" --backend cuda "[cuda-invariants]"
grep -h '^cuda-invariants:' "$TESTS_LOG" > "$RESULTS/.invariants" 2> /dev/null
wants engine && run_stage engine 40 150 "$T/engine/test_engine" --backend cuda "~[concurrency]"
wants engine && run_stage concurrency 10 60 "$T/engine/test_engine" --backend cuda "[concurrency]"
wants engine && run_stage shipped-models 15 90 "$T/cli/test_cli" --backend cuda "[shipped]"

# --- bench -------------------------------------------------------------------------------------
if wants bench; then
  if ! "$PYTHON" -c "import torch; assert torch.cuda.is_available()" 2>> "$RESULTS/bench.log"; then
    row bench skipped - "$PYTHON has no PyTorch with CUDA"
  elif [ "$(left)" -lt 60 ]; then
    row bench skipped - "not enough time left ($(left) s)"
  else
    t0=$(date +%s)
    if [ -n "$GEN_PID" ]; then
      say "bench: waiting for the random 100 M model"
      wait "$GEN_PID" || say "bench: generating the random model failed (bench.log)"
    fi
    perf=$(mktemp)
    say "bench: EMA, FFT form vs scan"
    timeout 60 "$T/ops/test_ops" --backend cuda "perf: CUDA ema*" 2>&1 | tee "$perf" >> "$RESULTS/bench.log"
    compile=()
    [ "$(left)" -gt 330 ] && compile=(--compile)
    budget=$(( $(left) - 15 ))
    say "bench: gpu_bench.py (budget ${budget} s${compile[*]:+, with torch.compile})"
    PYTHONUNBUFFERED=1 timeout --kill-after=10 $(( budget + 20 )) "$PYTHON" tools/bench/gpu_bench.py \
      --engine "$BUILD/engine_bench" --out "$RESULTS" --budget "$budget" --ema-perf "$perf" "${compile[@]}" \
      >> "$RESULTS/bench.log" 2>&1
    rc=$?
    rm -f "$perf"
    if [ $rc -eq 0 ] && [ -s "$RESULTS/table.md" ]; then
      row bench passed $(( $(date +%s) - t0 )) "table.md, bench.json"
    else
      FAILED=1
      row bench FAILED $(( $(date +%s) - t0 )) "gpu_bench.py exit $rc (bench.log: $(tail -n 1 "$RESULTS/bench.log" | cut -c1-160))"
    fi
  fi
fi

# --- sanitizer ---------------------------------------------------------------------------------
if wants sanitizer; then
  CS=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2> /dev/null || true)
  if [ -z "$CS" ]; then
    row sanitizer skipped - "compute-sanitizer not found"
  elif [ "$(left)" -lt 45 ]; then
    row sanitizer skipped - "not enough time left ($(left) s)"
  elif ! timeout 60 "$CS" --tool memcheck --error-exitcode 99 "$BUILD/tests/cuda/test_cuda_smoke" > "$RESULTS/.probe" 2>&1; then
    row sanitizer skipped - "compute-sanitizer does not run here: $(grep -v '^$' "$RESULTS/.probe" | tail -n 1 | cut -c1-160)"
    cat "$RESULTS/.probe" >> "$TESTS_LOG"
  else
    cat "$RESULTS/.probe" >> "$TESTS_LOG"
    # Small cases of the kernels with device-side indexing; memcheck also checks cuBLAS/cuFFT calls.
    run_stage memcheck 30 $(( $(left) / 2 > 30 ? $(left) / 2 : 30 )) "$CS" --tool memcheck --error-exitcode 99 \
      "$T/ops/test_ops" --backend cuda \
      "[embed_tokens],[mean_pool],vq_attention: stateful*,ema: stateful*,ema: every case*,stateful ops: state_rows*"
    run_stage racecheck 20 $(( $(left) - 5 )) "$CS" --tool racecheck --error-exitcode 99 "$T/ops/test_ops" --backend cuda \
      "vq_attention: stateful from an empty state*,ema: stateful split*"
  fi
  rm -f "$RESULTS/.probe"
fi

grep -h '^cuda-invariants:' "$TESTS_LOG" > "$RESULTS/.invariants" 2> /dev/null
finish $FAILED
