#!/usr/bin/env bash
# Profiles the release api with perf (no server code changed): (a) 4 concurrent 256 MiB downloads through
# the API, (b) single-chunk presign at 64 connections. Starts the same servers as `make bench`; writes
# perf data and the top of each report under bench/profile/ (git-ignored) and prints the reports' heads.
#   PROFILE_DOWNLOAD_MIB (256)  PROFILE_PRESIGN_SECONDS (15)  PROFILE_FREQ (999 Hz)
set -euo pipefail
. "$(dirname "$0")/../scripts/common.sh"
. "$ROOT/bench/stack.sh"
cd "$ROOT"
need_curl
command -v perf >/dev/null || { echo "perf is missing: apt-get install linux-perf" >&2; exit 1; }

out="$ROOT/bench/profile"
mkdir -p "$out"
work=$(mktemp -d /tmp/uploads-profile.XXXXXX)
chmod 755 "$work"
ls_pid= perf_pid=
bench_pids=()
cleanup() {
  local rc=$?
  [ -n "$perf_pid" ] && kill -INT "$perf_pid" 2>/dev/null && wait "$perf_pid" 2>/dev/null || true
  bench_stack_down "$work"
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bench_prereqs
bench_build
bench_stack_up "$work"
freq=${PROFILE_FREQ:-999}

# Samples the api process (all threads) while `bench` runs one scenario. The release build has no frame
# pointers, so call graphs come from DWARF unwinding of the stack (.eh_frame).
profile() {
  local name=$1; shift
  perf record -q -e cpu-clock -F "$freq" --call-graph dwarf,32768 -p "$BENCH_API_PID" -o "$out/$name.perf.data" 2>"$out/$name.record.log" &
  perf_pid=$!
  sleep 1
  "$ROOT/target/release/bench" --out "$work/$name.json" "$@"
  kill -INT "$perf_pid"; wait "$perf_pid" || true; perf_pid=
  perf report -i "$out/$name.perf.data" --stdio --no-children --sort dso,symbol --percent-limit 0.7 -g none \
    >"$out/$name.self.txt" 2>/dev/null
  perf report -i "$out/$name.perf.data" --stdio --children --sort symbol --percent-limit 3 -g none \
    >"$out/$name.children.txt" 2>/dev/null
  echo "== $name: top self symbols ($out/$name.self.txt)"
  grep -v '^#' "$out/$name.self.txt" | grep -v '^$' | head -n 30
}

profile downloads --only api-downloads --rounds 1 --download-mib "${PROFILE_DOWNLOAD_MIB:-256}"
profile presign --only presign --connections 64 --rounds 1 --duration "${PROFILE_PRESIGN_SECONDS:-15}"
