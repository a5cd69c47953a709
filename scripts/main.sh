#!/usr/bin/env bash
# main.sh: the main job. Installs dependencies, builds goro in Release with
# GCC (build/release) and runs examples/pipeline (goro-pipeline) on its
# built-in sample: a word-frequency pipeline with parallel stages, progress,
# Ctrl-C handling and error reporting, printing its totals and top words.
#
# Environment: GORO_MAIN=anchors  run the anchor workloads instead (each
#                                 `name value unit` figure line of bench/goro-anchors)
#              GORO_PIPELINE_ARGS extra arguments for goro-pipeline
#                                 (default: --repeat 20000 --workers 4)
#              GORO_ANCHOR_N      n for every anchor workload (default: the program's, 1,000,000)
#              GORO_WORKLOADS     space-separated anchor workloads (default below)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

build=build/release

bash scripts/deps.sh

echo "== configure ($build: GCC, Release)"
CC=gcc CXX=g++ cmake -S . -B "$build" \
  -DCMAKE_C_COMPILER=gcc -DCMAKE_CXX_COMPILER=g++ \
  -DCMAKE_BUILD_TYPE=Release -DGORO_SANITIZE=

if [ "${GORO_MAIN:-pipeline}" != anchors ]; then
  echo "== build"
  cmake --build "$build" -j2 --target goro-pipeline
  args=(${GORO_PIPELINE_ARGS:---repeat 20000 --workers 4})
  echo "== goro-pipeline ${args[*]}"
  exec "$build/examples/goro-pipeline" "${args[@]}"
fi

workloads=(${GORO_WORKLOADS:-skynet pingpong spsc_buffered mpmc select2 spawn mutex timers idle_mem ctx_tree fresh_timeout})
echo "== build"
cmake --build "$build" -j2 --target goro-anchors

anchors="$build/bench/goro-anchors"
if [ ! -x "$anchors" ]; then
  echo "main: $anchors was not built"
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
  else
    report+=("$w: FAILED (exit $rc)")
    failed=1
  fi
done

echo
echo "== results"
printf '%s\n' "${report[@]}"
exit $failed
