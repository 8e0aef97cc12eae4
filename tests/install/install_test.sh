#!/usr/bin/env bash
# cmake --install into a fresh prefix, then use it the way a user would (tests/install/CMakeLists.txt):
#   install_test.sh CMAKE BUILD_DIR CONSUMER_SOURCE_DIR GENERATOR [CONSUMER CMAKE ARGS...]
# Checks the layout, that the installed CLI finds the installed default model from anywhere (and
# after the prefix is moved), that a CLI without one says where it looked, and that an outside
# CMake project builds against find_package(longvq) and runs the installed model.
set -euo pipefail
cmake=$1 build=$(cd "$2" && pwd) consumer=$(cd "$3" && pwd) generator=$4
shift 4  # the rest: the consumer's configure arguments (the build's compiler, its sanitizer flags)
tmp=$(mktemp -d /tmp/longvq-install-test.XXXXXX)  # outside the build tree: nothing of it is reachable upward
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "--- $* ($SECONDS s)"; }
unset LONGVQ_MODEL LONGVQ_CUDA_MODULE

step "cmake --install $build --prefix $tmp/prefix"
"$cmake" --install "$build" --prefix "$tmp/prefix" > "$tmp/install.log" || { cat "$tmp/install.log"; fail "install failed"; }
p=$tmp/prefix

step "layout"
for f in bin/longvq include/longvq/engine/longvq.h include/longvq/loaders/config.h \
         lib/cmake/longvq/longvqConfig.cmake lib/cmake/longvq/longvqConfigVersion.cmake \
         lib/cmake/longvq/longvqTargets.cmake lib/liblongvq.a lib/liblongvq_serving.a; do
  [[ -e $p/$f ]] || fail "$p/$f is missing"
done
for m in austen-lm listops fashion-seq; do
  for f in config.json model.safetensors README.md; do
    [[ -f $p/share/longvq/models/$m/$f ]] || fail "$p/share/longvq/models/$m/$f is missing"
  done
done
[[ -x $p/bin/longvq && ! -L $p/bin/longvq ]] || fail "bin/longvq is not an executable file"
[[ -z $(find "$p/share/longvq/models" -name '*.tsv') ]] || fail "training logs (*.tsv) were installed"
if grep -q "LONGVQ_HAVE_CUDA=1" "$p/lib/cmake/longvq/longvqTargets.cmake"; then
  [[ -f $p/lib/longvq/liblongvq_cuda_backend.so ]] || fail "a CUDA build installed no lib/longvq/liblongvq_cuda_backend.so"
fi
# No absolute path of the source or build tree in what was installed as text.
if grep -rlF -e "$build" "$p/lib/cmake" "$p/include"; then fail "the build tree's path is in the files above"; fi

step "the installed CLI, from another directory, LONGVQ_MODEL unset"
mkdir "$tmp/elsewhere"
cd "$tmp/elsewhere"
out=$("$p/bin/longvq" generate -n 5 --temp 0 -p x) || fail "longvq generate failed"
[[ -n $out ]] || fail "longvq generate printed nothing"
echo "generate: ${out}"
info=$("$p/bin/longvq" info --json) || fail "longvq info failed"
grep -qF "\"model\":\"$p/share/longvq/models/austen-lm\"" <<< "${info//[[:space:]]/}" \
  || fail "longvq info does not report $p/share/longvq/models/austen-lm: ${info:0:300}"

step "a moved prefix finds its own model"
mv "$p" "$tmp/moved"
info=$("$tmp/moved/bin/longvq" info --json) || fail "longvq info of the moved prefix failed"
grep -qF "\"model\":\"$tmp/moved/share/longvq/models/austen-lm\"" <<< "${info//[[:space:]]/}" \
  || fail "the moved prefix's longvq info does not report its own model: ${info:0:300}"
mv "$tmp/moved" "$p"

step "a CLI with no model anywhere says where it looked and what to do"
mkdir -p "$tmp/lonely/bin" && cp "$p/bin/longvq" "$tmp/lonely/bin/"
set +e; err=$("$tmp/lonely/bin/longvq" info 2>&1 >/dev/null); code=$?; set -e
[[ $code == 1 ]] || fail "exit $code without a model (want 1): $err"
for want in "$tmp/lonely/share/longvq/models/austen-lm" "$tmp/lonely/bin/models/austen-lm" "-m DIR" "LONGVQ_MODEL"; do
  grep -qF -- "$want" <<< "$err" || fail "the message lacks '$want': $err"
done

step "an outside project: find_package(longvq) + longvq::engine"
"$cmake" -S "$consumer" -B "$tmp/consumer" -G "$generator" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$p" "$@" > "$tmp/consumer.log" 2>&1 || { cat "$tmp/consumer.log"; fail "the consumer's configure failed"; }
"$cmake" --build "$tmp/consumer" >> "$tmp/consumer.log" 2>&1 || { cat "$tmp/consumer.log"; fail "the consumer's build failed"; }
got=$("$tmp/consumer/consumer") || fail "the consumer failed: $got"
[[ $(head -n 1 <<< "$got") == "$p/share/longvq/models/austen-lm" ]] || fail "the consumer loaded another model: $got"
echo "consumer: $(tail -n 1 <<< "$got")"
# The package's prefix is compiled into the consumer: its CUDA module is found from anywhere.
"$tmp/consumer/consumer" --cuda-module-candidates | grep -qxF "$p/lib/longvq/liblongvq_cuda_backend.so" \
  || fail "the consumer does not look for the CUDA module in $p/lib/longvq"
step "passed"
