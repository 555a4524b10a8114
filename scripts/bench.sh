#!/usr/bin/env bash
# `make bench`: this service beside the tools people would pick instead, in one run on one machine: Uppy
# Companion (control plane), nginx proxy_pass and a direct presigned GET (downloads), aws-sdk-s3 (uploads).
# Starts its own Postgres, LocalStack, release api + worker, Companion and nginx on free loopback ports,
# stops them whatever happens, prints the ratio table and writes bench/results.json.
# Knobs (README "Benchmark"): BENCH_QUICK=1, BENCH_ROUNDS, BENCH_DURATION, BENCH_CONNECTIONS,
# BENCH_DOWNLOAD_MIB, BENCH_UPLOAD_MIB, BENCH_ONLY, BENCH_OUT.
set -euo pipefail
. "$(dirname "$0")/common.sh"
. "$ROOT/bench/stack.sh"
cd "$ROOT"
need_curl

work=$(mktemp -d /tmp/uploads-bench.XXXXXX)
chmod 755 "$work"
ls_pid=
bench_pids=()
cleanup() {
  local rc=$?
  bench_stack_down "$work"
  if [ $rc -ne 0 ]; then
    for log in api.log worker.log companion.log nginx/error.log; do
      [ -s "$work/$log" ] && { echo "--- $log" >&2; tail -n 15 "$work/$log" >&2; }
    done
  fi
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== prerequisites and release build" >&2
bench_prereqs
bench_build
echo "== services" >&2
bench_stack_up "$work"
echo "== bench (BENCH_QUICK=${BENCH_QUICK:-0}) on $(nproc) cores" >&2
"$ROOT/target/release/bench" --out "${BENCH_OUT:-$ROOT/bench/results.json}"
