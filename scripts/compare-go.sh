#!/usr/bin/env bash
# compare-go.sh: run goro's anchor workloads and Go's, interleaved, and print
# goro/Go ratios against the project's targets.
#
#   bash scripts/compare-go.sh [rounds] [workloads...]
#
# rounds defaults to 5; workloads default to all nine anchors. Further
# workloads (ctx_tree, fresh_timeout, ...) run against bench/go's twins; the
# sync toolbox's (rw_read_heavy, pool_getput, once_fast, sem_acqrel,
# errgroup_spawn) run goro-syncbench against bench/go.
# Each round runs every workload on goro, then at once on Go, so both see the
# same machine noise; the table shows each side's median and the median of the
# per-round goro/Go ratios (lower is better for every workload: ms, ns/op,
# bytes), with the lowest and highest of those ratios. Raw per-round values
# go to build/compare-go.tsv.
#
# Environment (all optional):
#   N=<n>             pass n to both programs (default: their own, 1000000)
#   GORO_ANCHORS=path use this goro-anchors binary instead of build/release's
#   GORO_REBUILD=1    run the incremental cmake build even if the binary exists
#   RUN_TIMEOUT=secs  per-run time limit (default 600)
#
# Exit status: 0 when every workload met its target, 1 when one missed or
# failed, 2 on a usage or setup error.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
go_src="$repo_root/../shared/anchors/go"
build_dir="$repo_root/build/release"
tsv="$repo_root/build/compare-go.tsv"
run_timeout="${RUN_TIMEOUT:-600}"

# Targets: goro/Go ratio to stay at or under. The nine shared anchors run
# against shared/anchors/go; the others against goro's own Go twins in
# bench/go (extra_go below).
declare -A target=(
  [skynet]=0.33 [spawn]=0.5 [mutex]=0.8 [timers]=0.5 [idle_mem]=1.5
  [pingpong]=0.33 [spsc_buffered]=0.5 [mpmc]=0.5 [select2]=0.5
  [ctx_tree]=1.0 [fresh_timeout]=1.0
  [rw_read_heavy]=1.0 [pool_getput]=1.0 [once_fast]=1.0
  [sem_acqrel]=1.0 [errgroup_spawn]=1.0
)
declare -A extra_go=([ctx_tree]=1 [fresh_timeout]=1
  [rw_read_heavy]=1 [pool_getput]=1 [once_fast]=1 [sem_acqrel]=1 [errgroup_spawn]=1)
# Workloads whose goro side is goro-syncbench (the others: goro-anchors).
declare -A sync_goro=([rw_read_heavy]=1 [pool_getput]=1 [once_fast]=1 [sem_acqrel]=1
  [errgroup_spawn]=1)

die() { echo "compare-go: $*" >&2; exit 2; }
note() { echo "compare-go: $*" >&2; }

rounds=5
if [[ $# -gt 0 && "$1" =~ ^[0-9]+$ ]]; then
  rounds="$1"
  shift
fi
[[ "$rounds" -ge 1 ]] || die "rounds must be at least 1"
workloads=("$@")
for w in "${workloads[@]}"; do
  [[ -n "${target[$w]+x}" ]] || die "unknown workload '$w' (known: ${!target[*]})"
done
n_arg=()
if [[ -n "${N:-}" ]]; then
  [[ "$N" =~ ^[0-9]+$ ]] || die "N must be a positive integer"
  n_arg=("$N")
fi

# --- Go ----------------------------------------------------------------------
if ! command -v go >/dev/null 2>&1; then
  note "go not found: installing golang-go"
  sudo_cmd=()
  if [[ "$(id -u)" -ne 0 ]]; then sudo_cmd=(sudo); fi
  export DEBIAN_FRONTEND=noninteractive
  if ! "${sudo_cmd[@]}" apt-get install -y golang-go; then
    "${sudo_cmd[@]}" apt-get update
    "${sudo_cmd[@]}" apt-get install -y golang-go
  fi
  command -v go >/dev/null 2>&1 || die "go still missing after installing golang-go"
fi
[[ -f "$go_src/main.go" ]] || die "Go anchors not found at $go_src"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# GOTOOLCHAIN=local: never try to download another toolchain.
(cd "$go_src" && GOFLAGS=-mod=mod GOTOOLCHAIN=local go build -o "$tmp/goanchor" .) \
  || die "building the Go anchors failed"
go_bin="$tmp/goanchor"
extra_src="$repo_root/bench/go"
(cd "$extra_src" && GOFLAGS=-mod=mod GOTOOLCHAIN=local go build -o "$tmp/gobench" .) \
  || die "building bench/go failed"
extra_bin="$tmp/gobench"

# --- goro --------------------------------------------------------------------
goro_bin="${GORO_ANCHORS:-$build_dir/bench/goro-anchors}"
if [[ -z "${GORO_ANCHORS:-}" ]]; then
  if [[ ! -x "$goro_bin" ]]; then
    note "building goro-anchors (Release) in $build_dir"
    cmake -S "$repo_root" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release >&2 \
      || die "cmake configure failed"
    cmake --build "$build_dir" -j2 --target goro-anchors >&2 || die "building goro-anchors failed"
  elif [[ "${GORO_REBUILD:-0}" == 1 ]]; then
    cmake --build "$build_dir" -j2 --target goro-anchors >&2 || die "building goro-anchors failed"
  fi
fi
[[ -x "$goro_bin" ]] || die "no goro-anchors at $goro_bin"
goro_sync_bin="$(dirname "$goro_bin")/goro-syncbench"
if [[ -z "${GORO_ANCHORS:-}" ]] && [[ ! -x "$goro_sync_bin" || "${GORO_REBUILD:-0}" == 1 ]]; then
  cmake --build "$build_dir" -j2 --target goro-syncbench >&2 || die "building goro-syncbench failed"
fi

# Default workloads: all of them (goro-anchors implements every anchor).
if [[ ${#workloads[@]} -eq 0 ]]; then
  workloads=(skynet pingpong spsc_buffered mpmc select2 spawn mutex timers idle_mem)
fi

# --- runs --------------------------------------------------------------------
# run_one <binary> <workload>: prints the value; returns the program's status.
run_one() {
  local bin="$1" w="$2" out rc
  set +e
  out="$(timeout "$run_timeout" "$bin" "$w" "${n_arg[@]}" 2>"$tmp/stderr" </dev/null)"
  rc=$?
  set -e
  if [[ $rc -ne 0 ]]; then
    cat "$tmp/stderr" >&2
    return $rc
  fi
  # The line is "name value unit".
  local name value unit
  read -r name value unit <<<"$(grep -m1 "^$w " <<<"$out" || true)"
  if [[ "$name" != "$w" || -z "$value" ]]; then
    note "$bin $w: unexpected output: $out"
    return 99
  fi
  echo "$value $unit"
}

mkdir -p "$(dirname "$tsv")"
printf 'round\tworkload\tgoro\tgo\tunit\tratio\n' >"$tsv"
declare -A skipped=() failed=() units=()
nproc_="$(nproc 2>/dev/null || echo '?')"
note "goro: $goro_bin"
note "go:   $(go version) ($go_bin)"
note "$rounds round(s) of: ${workloads[*]}${N:+ (n=$N)}; $nproc_ cores"

for ((r = 1; r <= rounds; r++)); do
  for w in "${workloads[@]}"; do
    [[ -z "${skipped[$w]+x}" && -z "${failed[$w]+x}" ]] || continue
    set +e
    grb="$goro_bin"
    [[ -z "${sync_goro[$w]+x}" ]] || grb="$goro_sync_bin"
    g="$(run_one "$grb" "$w")"
    rc=$?
    set -e
    if [[ $rc -eq 3 ]]; then
      note "$w: not implemented in goro yet, skipped"
      skipped[$w]=1
      continue
    elif [[ $rc -ne 0 ]]; then
      note "$w: goro-anchors failed (exit $rc) in round $r"
      failed[$w]="goro exit $rc"
      continue
    fi
    gob="$go_bin"
    [[ -z "${extra_go[$w]+x}" ]] || gob="$extra_bin"
    set +e
    o="$(run_one "$gob" "$w")"
    rc=$?
    set -e
    if [[ $rc -ne 0 ]]; then
      note "$w: Go failed (exit $rc) in round $r"
      failed[$w]="go exit $rc"
      continue
    fi
    gv="${g%% *}" gu="${g#* }" ov="${o%% *}" ou="${o#* }"
    [[ "$gu" == "$ou" ]] || note "$w: units differ: goro '$gu', Go '$ou'"
    units[$w]="$gu"
    ratio="$(awk -v a="$gv" -v b="$ov" 'BEGIN { if (b + 0 == 0) print "nan"; else printf "%.6f", a / b }')"
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$w" "$gv" "$ov" "$gu" "$ratio" >>"$tsv"
    note "round $r: $w goro $gv Go $ov $gu (ratio $ratio)"
  done
done

# --- table -------------------------------------------------------------------
# median <tsv column> <workload>
median() {
  awk -F'\t' -v col="$1" -v w="$2" 'NR > 1 && $2 == w && $col != "nan" { print $col }' "$tsv" \
    | sort -g \
    | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "-"; exit }
        if (NR % 2) m = v[(NR + 1) / 2]; else m = (v[NR / 2] + v[NR / 2 + 1]) / 2
        s = sprintf("%.6f", m); sub(/0+$/, "", s); sub(/\.$/, "", s)
        print s
      }'
}

# spread <workload>: the lowest and highest per-round goro/Go ratio, "min-max".
# On these VMs a round can land in a slow machine state for both sides; a wide
# spread says the median needs more rounds.
spread() {
  awk -F'\t' -v w="$1" 'NR > 1 && $2 == w && $6 != "nan" {
      if (n++ == 0 || $6 < lo) lo = $6; if (n == 1 || $6 > hi) hi = $6 }
    END { if (n == 0) print "-"; else printf "%.2f-%.2f", lo, hi }' "$tsv"
}

status=0
echo
printf '%-14s %14s %14s %-16s %9s %11s %7s %s\n' workload goro Go unit goro/Go rounds target ""
for w in "${workloads[@]}"; do
  t="${target[$w]}"
  if [[ -n "${skipped[$w]+x}" ]]; then
    printf '%-14s %14s %14s %-16s %9s %11s %7s %s\n' "$w" - - - - - "$t" "skipped (not in goro yet)"
    continue
  fi
  if [[ -n "${failed[$w]+x}" && -z "${units[$w]+x}" ]]; then
    printf '%-14s %14s %14s %-16s %9s %11s %7s %s\n' "$w" - - - - - "$t" "FAIL (${failed[$w]})"
    status=1
    continue
  fi
  gm="$(median 3 "$w")"
  om="$(median 4 "$w")"
  rm_="$(median 6 "$w")"
  verdict="$(awk -v r="$rm_" -v t="$t" 'BEGIN { print (r != "-" && r + 0 <= t + 0) ? "ok" : "MISS" }')"
  [[ -z "${failed[$w]+x}" ]] || verdict="$verdict, FAIL in a later round (${failed[$w]})"
  [[ "$verdict" == ok ]] || status=1
  rfmt="$(awk -v r="$rm_" 'BEGIN { if (r == "-") print "-"; else printf "%.3f", r }')"
  printf '%-14s %14s %14s %-16s %9s %11s %7s %s\n' "$w" "$gm" "$om" "${units[$w]}" "$rfmt" \
    "$(spread "$w")" "$t" "$verdict"
done
echo
echo "raw values: $tsv"
exit $status
