#!/usr/bin/env bash
# main.sh: the main job. Installs dependencies, builds goro in Release with
# GCC (build/release) and runs the anchor workloads of shared/anchors with
# bench/goro-anchors, printing each `name value unit` figure line.
#
# Environment: GORO_ANCHOR_N   n for every workload (default: the program's, 1,000,000)
#              GORO_WORKLOADS  space-separated workloads (default below)
# A workload that exits non-zero saying "not implemented" is reported and
# skipped; any other failure makes the job fail.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

workloads=(${GORO_WORKLOADS:-skynet pingpong spsc_buffered mpmc select2 spawn mutex timers idle_mem})
build=build/release

bash scripts/deps.sh

echo "== configure ($build: GCC, Release)"
CC=gcc CXX=g++ cmake -S . -B "$build" \
  -DCMAKE_C_COMPILER=gcc -DCMAKE_CXX_COMPILER=g++ \
  -DCMAKE_BUILD_TYPE=Release -DGORO_SANITIZE=
echo "== build"
if [ -f bench/anchors.cpp ]; then
  cmake --build "$build" -j2 --target goro-anchors
else
  cmake --build "$build" -j2
fi

anchors="$build/bench/goro-anchors"
if [ ! -x "$anchors" ]; then
  echo "main: $anchors was not built (bench/anchors.cpp missing?)"
  exit 1
fi

declare -a report=()
failed=0
for w in "${workloads[@]}"; do
  echo "== $w"
  args=("$w")
  if [ -n "${GORO_ANCHOR_N:-}" ]; then args+=("$GORO_ANCHOR_N"); fi
  set +e
  out=$(timeout 900 "$anchors" "${args[@]}" 2>&1)
  rc=$?
  set -e
  printf '%s\n' "$out"
  if [ $rc -eq 0 ]; then
    figure=$(printf '%s\n' "$out" | grep -E '^[A-Za-z0-9_]+ [-+0-9.eE]+ [^ ]+$' | tail -n1 || true)
    report+=("$w: ${figure:-ok (no figure line)}")
  elif printf '%s\n' "$out" | grep -qi 'not implemented'; then
    report+=("$w: not implemented (exit $rc), skipped")
  else
    report+=("$w: FAILED (exit $rc)")
    failed=1
  fi
done

echo
echo "== results"
printf '%s\n' "${report[@]}"
exit $failed
