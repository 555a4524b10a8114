#!/usr/bin/env bash
# `make bench`: download throughput through the API against a direct presigned GET from LocalStack in the
# same run (so the figures are ratios, not machine-dependent absolutes), and the API's peak RSS meanwhile.
# Starts its own Postgres and LocalStack on free ports, like `make test`, and stops them whatever happens.
#   BENCH_SIZE_MIB (default 512)  object size    BENCH_RUNS (default 3)  runs per case, best kept
#   BENCH_PROFILE  (default dev)  `release` builds the api optimised (what production runs)
set -euo pipefail
. "$(dirname "$0")/common.sh"
cd "$ROOT"
need_curl

size_mib=${BENCH_SIZE_MIB:-512}
runs=${BENCH_RUNS:-3}
profile=${BENCH_PROFILE:-dev}

work=$(mktemp -d /tmp/uploads-bench.XXXXXX)
chmod 755 "$work"
ls_pid= api_pid= sampler_pid=
cleanup() {
  local rc=$?
  [ -n "$sampler_pid" ] && kill "$sampler_pid" 2>/dev/null || true
  [ -n "$api_pid" ] && kill "$api_pid" 2>/dev/null || true
  throwaway_services_stop "$work"
  [ $rc -ne 0 ] && [ -f "$work/api.log" ] && tail -n 20 "$work/api.log" >&2
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== build ($profile)" >&2
if [ "$profile" = release ]; then
  cargo build --release --bin api --quiet; api_bin=target/release/api
else
  cargo build --bin api --quiet; api_bin=target/debug/api
fi

echo "== services" >&2
throwaway_services_start "$work"
localstack_init "$ROOT/.dev/localstack-venv" "$ls_port" bench

api_port=$(free_port)
base="http://127.0.0.1:$api_port"
AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 \
DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/postgres" S3_ENDPOINT="http://127.0.0.1:$ls_port" \
S3_BUCKET=bench S3_FORCE_PATH_STYLE=true BIND_ADDR="127.0.0.1:$api_port" RUST_LOG=warn \
LINK_SIGNING_KEY="$(head -c 32 /dev/urandom | base64)" \
  "$api_bin" >"$work/api.log" 2>&1 &
api_pid=$!
for _ in $(seq 1 100); do curl -fsS "$base/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

echo "== upload ${size_mib} MiB" >&2
id=$(python3 "$ROOT/scripts/bench_upload.py" "$base" "$size_mib")
file="$base/v1/files/$id"
size=$((size_mib * 1024 * 1024))
direct=$(curl -fsS -o /dev/null -w '%{redirect_url}' "$file?redirect=true")

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$api_pid/status"; }
baseline=$(rss_kib)
( peak=$baseline; while kill -0 "$api_pid" 2>/dev/null; do r=$(rss_kib); [ "${r:-0}" -gt "$peak" ] && peak=$r && echo "$peak" >"$work/peak"; sleep 0.05; done ) &
sampler_pid=$!

# Best of $runs, in MB/s (curl's average download speed for the whole transfer).
best_speed() {
  local best=0 s
  for _ in $(seq 1 "$runs"); do
    s=$(curl -fsS -o /dev/null -w '%{speed_download}' "$@")
    best=$(python3 -c "print(max($best, $s))")
  done
  python3 -c "print(f'{$best / 1e6:.0f}')"
}
parallel_speed() {  # 4 downloads at once: their summed throughput
  local n=4 start end pids=()
  start=$(date +%s.%N)
  for _ in $(seq 1 $n); do curl -fsS -o /dev/null "$@" & pids+=($!); done
  wait "${pids[@]}"
  end=$(date +%s.%N)
  python3 -c "print(f'{$n * $size / ($end - $start) / 1e6:.0f}')"
}

echo "== measure (best of $runs)" >&2
half=$((size / 2))
d200=$(best_speed "$direct")
a200=$(best_speed "$file")
d206=$(best_speed -H "Range: bytes=1-$((size - 2))" "$direct")
a206=$(best_speed -H "Range: bytes=1-$((size - 2))" "$file")
amulti=$(best_speed -H "Range: bytes=0-$((half - 2)),$half-" "$file")
dpar=$(parallel_speed "$direct")
apar=$(parallel_speed "$file")
kill "$sampler_pid" 2>/dev/null || true; wait "$sampler_pid" 2>/dev/null || true; sampler_pid=
peak=$(cat "$work/peak" 2>/dev/null || echo "$baseline")

ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
echo
echo "Downloads of a ${size_mib} MiB object, api built '$profile', $(nproc) cores; MB/s, best of $runs"
printf '%-44s %8s %8s %8s\n' "case" "api" "direct" "api/direct"
printf '%-44s %8s %8s %8s\n' "200 whole object" "$a200" "$d200" "$(ratio "$a200" "$d200")"
printf '%-44s %8s %8s %8s\n' "206 one range (all but 2 bytes)" "$a206" "$d206" "$(ratio "$a206" "$d206")"
printf '%-44s %8s %8s %8s\n' "206 multipart/byteranges (2 halves) vs 200" "$amulti" "$d200" "$(ratio "$amulti" "$d200")"
printf '%-44s %8s %8s %8s\n' "4 concurrent 200s, summed" "$apar" "$dpar" "$(ratio "$apar" "$dpar")"
echo "api RSS: baseline $((baseline / 1024)) MiB, peak $((peak / 1024)) MiB during $((runs * 5 + 8)) downloads of ${size_mib} MiB"
