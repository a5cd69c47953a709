#!/usr/bin/env bash
# deps.sh [EXTRA_PACKAGE...]: installs what building and testing goro needs on
# Debian 12, plus any extra packages named (e.g. golang-go for
# scripts/compare-go.sh). Idempotent: packages already installed are checked
# with dpkg and cause no network I/O; `apt-get update` runs once, only when
# something is missing.
set -euo pipefail

packages=(
  build-essential   # make, libc headers
  cmake
  g++
  clang-14            # the sanitizer builds (and proof that Clang builds goro)
  libclang-rt-14-dev  # clang's ASan/UBSan/TSan runtimes
  googletest
  libgtest-dev
  libbenchmark-dev
  pkg-config
  libdw-dev           # elfutils: symbolizes goroutine dumps
  "$@"
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "deps: installing ${missing[*]}"
apt=(env DEBIAN_FRONTEND=noninteractive apt-get)
if [ "$(id -u)" -ne 0 ]; then
  apt=(sudo "${apt[@]}")
fi
"${apt[@]}" update -q
"${apt[@]}" install -y -q "${missing[@]}"
