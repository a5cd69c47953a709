#!/usr/bin/env bash
# test.sh: the test command. Installs dependencies, then builds and runs the
# whole test suite three times:
#   release  GCC,   Release,        no sanitizer
#   asan     Clang, Debug,          AddressSanitizer + UndefinedBehaviorSanitizer
#   tsan     Clang, RelWithDebInfo, ThreadSanitizer
# and runs the Release build's tests twice more, under GORO_DEBUG=migrate
# (every reschedule moves the goroutine to another thread) and
# GORO_DEBUG=shuffle (random run-queue order): the cheapest build, no
# rebuild, a few seconds each.
# Clang is Debian 12's clang 14 (override with GORO_CLANG_CC / GORO_CLANG_CXX),
# so that both compilers the project supports build it on every run.
# It goes on through all three when one fails, then prints per-build results
# and a closing line `N passed, N failed` (tests summed over the three ctest
# runs; a build that fails to configure or compile, or whose ctest run prints
# no summary, counts as one failure). Exits non-zero if anything failed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/deps.sh || { echo "test: installing dependencies failed"; echo "0 passed, 1 failed"; exit 1; }

jobs=2
clang_cc=${GORO_CLANG_CC:-clang-14}
clang_cxx=${GORO_CLANG_CXX:-clang++-14}
total_passed=0
total_failed=0
status=0
declare -a results=()

# Clang 14's sanitizer runtimes cannot map their shadow memory when the kernel
# randomizes mmap with more than 28 bits; run sanitized programs without ASLR then.
san_wrap=()
rnd_bits=$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 0)
if [ "$rnd_bits" -gt 28 ] && setarch "$(uname -m)" -R true 2>/dev/null; then
  san_wrap=(setarch "$(uname -m)" -R)
  echo "test: vm.mmap_rnd_bits=$rnd_bits, sanitized builds run with ASLR disabled"
fi

# run_build NAME CC CXX BUILD_TYPE SANITIZE [VAR=VALUE...]: configure, build
# and ctest build/NAME with the given environment for the sanitizer runtimes.
run_build() {
  local name=$1 cc=$2 cxx=$3 type=$4 san=$5
  shift 5
  local dir="build/$name" start=$SECONDS log wrap=()
  log="$dir/ctest.log"
  if [ -n "$san" ]; then wrap=("${san_wrap[@]}"); fi
  echo
  echo "======== $name: $cxx, $type${san:+, sanitize=$san}"
  if ! env "$@" CC="$cc" CXX="$cxx" cmake -S . -B "$dir" \
      -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" \
      -DCMAKE_BUILD_TYPE="$type" -DGORO_SANITIZE="$san" \
      -DGORO_BUILD_TESTS=ON -DGORO_BUILD_BENCH=ON; then
    results+=("$name: configure FAILED ($((SECONDS - start))s)")
    total_failed=$((total_failed + 1)); status=1
    return
  fi
  # Test discovery runs the (sanitized) test binary at build time.
  if ! env "$@" ${wrap[@]+"${wrap[@]}"} cmake --build "$dir" -j"$jobs"; then
    results+=("$name: build FAILED ($((SECONDS - start))s)")
    total_failed=$((total_failed + 1)); status=1
    return
  fi
  run_ctest "$name" "$dir" "$log" "$start" ${wrap[@]+"${wrap[@]}"} -- "$@"
}

# run_ctest NAME DIR LOG START [WRAPPER...] -- [VAR=VALUE...]: runs ctest in
# DIR with that environment and adds its summary to the totals.
run_ctest() {
  local name=$1 dir=$2 log=$3 start=$4
  shift 4
  local wrap=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do wrap+=("$1"); shift; done
  shift
  local rc=0
  env "$@" ${wrap[@]+"${wrap[@]}"} ctest --test-dir "$dir" --output-on-failure \
    -j"$jobs" --timeout 600 --no-tests=error 2>&1 | tee "$log" || rc=$?
  local elapsed=$((SECONDS - start))
  # ctest's summary: "95% tests passed, 1 tests failed out of 20"
  local summary
  summary=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n1)
  if [ -z "$summary" ]; then
    results+=("$name: ctest printed no summary, exit $rc (${elapsed}s)")
    total_failed=$((total_failed + 1)); status=1
    return
  fi
  local failed total
  failed=$(sed -E 's/^[0-9]+% tests passed, ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$summary")
  total=$(sed -E 's/^[0-9]+% tests passed, ([0-9]+) tests? failed out of ([0-9]+).*/\2/' <<<"$summary")
  total_passed=$((total_passed + total - failed))
  total_failed=$((total_failed + failed))
  if [ "$rc" -ne 0 ] || [ "$failed" -ne 0 ]; then status=1; fi
  results+=("$name: $((total - failed)) of $total tests passed, ctest exit $rc (${elapsed}s)")
}

run_build release gcc g++ Release ""
# The debug modes, on the Release build just made (skipped if it failed).
for mode in migrate shuffle; do
  if [ -x build/release/tests/goro_tests ]; then
    echo
    echo "======== release, GORO_DEBUG=$mode"
    run_ctest "release+$mode" build/release "build/release/ctest-$mode.log" "$SECONDS" -- \
      GORO_DEBUG="$mode"
  else
    results+=("release+$mode: no test binary"); total_failed=$((total_failed + 1)); status=1
  fi
done
run_build asan "$clang_cc" "$clang_cxx" Debug address \
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run_build tsan "$clang_cc" "$clang_cxx" RelWithDebInfo thread \
  TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/tests/tsan.supp"

echo
echo "======== results"
printf '%s\n' "${results[@]}"
echo "$total_passed passed, $total_failed failed"
exit $status
