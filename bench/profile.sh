#!/usr/bin/env bash
# Profiles the release api with perf (no server code changed): (a) 4 concurrent 256 MiB downloads through
# the API, (b) single-chunk presign at 64 connections. Starts the same servers as `make bench`; writes
# perf data and its reports under bench/profile/ (git-ignored) and prints the top self symbols.
#   bench/profile.sh [downloads] [presign] [syscalls]   (default: all three)
#   syscalls: counts the api's and nginx's socket system calls while each serves the same downloads.
#   PROFILE_DOWNLOAD_MIB (256)  PROFILE_DOWNLOAD_ROUNDS (5: 4 x 256 MiB five times, for enough samples)
#   PROFILE_PRESIGN_SECONDS (15)  PROFILE_FREQ (999 Hz)
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
stat_pids=()
bench_pids=()
cleanup() {
  local rc=$?
  [ -n "$perf_pid" ] && kill -INT "$perf_pid" 2>/dev/null && wait "$perf_pid" 2>/dev/null || true
  for pid in "${stat_pids[@]:-}"; do [ -n "$pid" ] && kill -INT "$pid" 2>/dev/null || true; done
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
  perf record -q -e cpu-clock -F "$freq" --call-graph dwarf,65528 -p "$BENCH_API_PID" -o "$out/$name.perf.data" 2>"$out/$name.record.log" &
  perf_pid=$!
  sleep 1
  "$ROOT/target/release/bench" --out "$out/$name.json" "$@"
  kill -INT "$perf_pid"; wait "$perf_pid" || true; perf_pid=
  # --no-inline: resolving inlined frames runs addr2line over every sample (minutes); symbols suffice.
  perf report -i "$out/$name.perf.data" --stdio --no-inline --no-children --sort dso,symbol --percent-limit 0.5 -g none \
    2>/dev/null | sed 's/[ -]*$//' >"$out/$name.self.txt"
  perf report -i "$out/$name.perf.data" --stdio --no-inline --children --sort symbol --percent-limit 0.3 -g none \
    2>/dev/null | sed 's/[ -]*$//' >"$out/$name.children.txt"
  perf report -i "$out/$name.perf.data" --stdio --no-inline --no-children --sort dso -g none \
    2>/dev/null | sed 's/[ -]*$//' >"$out/$name.dso.txt"
  echo "== $name: top self symbols ($out/$name.self.txt)"
  grep -v '^#' "$out/$name.self.txt" | grep -v '^$' | head -n 30
}

# System calls and context switches of the api and of nginx (its workers) while `bench` downloads the same
# object through each (whole, one range, 8 ranges: 3 x 256 MiB apiece): bytes per write and per read.
syscalls() {
  local events=syscalls:sys_enter_writev,syscalls:sys_enter_write,syscalls:sys_enter_sendmsg
  events+=,syscalls:sys_enter_recvfrom,syscalls:sys_enter_read,syscalls:sys_enter_readv
  events+=,syscalls:sys_enter_epoll_wait,context-switches,cpu-clock
  local workers; workers=$(pgrep -d, -P "$BENCH_NGINX_PID")
  perf stat -e "$events" -p "$BENCH_API_PID" -o "$out/syscalls.api.txt" & stat_pids+=($!)
  perf stat -e "$events" -p "$workers" -o "$out/syscalls.nginx.txt" & stat_pids+=($!)
  sleep 1
  "$ROOT/target/release/bench" --out "$out/syscalls.json" --only downloads --rounds 1 --download-mib "${PROFILE_DOWNLOAD_MIB:-256}"
  kill -INT "${stat_pids[@]}"; wait "${stat_pids[@]}" || true; stat_pids=()
  echo "== syscalls ($out/syscalls.api.txt, $out/syscalls.nginx.txt)"
  grep -hE 'syscalls|context|cpu-clock|Performance' "$out/syscalls.api.txt" "$out/syscalls.nginx.txt"
}

# Presign at 64 connections: the api with call graphs (as profile does), and the whole machine without, from
# which this cluster's backends are picked out afterwards (by their parent, the postmaster); Postgres's own
# counters around the load give commits, rows and buffer hits per request, and how many updates were HOT.
pg_query() {
  "$(pg_bin_dir)/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -tA -F ' ' -c "$1"
}

presign() {
  local counters="SELECT xact_commit, xact_rollback, tup_returned, tup_fetched, tup_inserted, tup_updated, tup_deleted, blks_hit FROM pg_stat_database WHERE datname = 'postgres'"
  perf record -q -e cpu-clock -F "$freq" -a -o "$out/presign.system.perf.data" 2>"$out/presign.system.record.log" &
  stat_pids+=($!)
  local tables="SELECT relname, n_tup_upd, n_tup_hot_upd, n_dead_tup FROM pg_stat_user_tables WHERE relname IN ('uploads', 'chunks') ORDER BY relname"
  pg_query "$counters" >"$out/presign.pgstat.txt"
  pg_query "$tables" >>"$out/presign.pgstat.txt"
  profile presign --only presign --connections 64 --rounds 1 --duration "${PROFILE_PRESIGN_SECONDS:-15}"
  pg_query "$counters" >>"$out/presign.pgstat.txt"
  sleep 1  # table counters reach pg_stat_user_tables when the backends report them
  pg_query "$tables" >>"$out/presign.pgstat.txt"
  kill -INT "${stat_pids[@]}"; wait "${stat_pids[@]}" || true; stat_pids=()
  perf report -i "$out/presign.system.perf.data" --stdio --no-inline --sort comm --percent-limit 1 2>/dev/null \
    | sed 's/[ -]*$//' >"$out/presign.system.comm.txt"
  # Other Postgres clusters may run on the machine: only this cluster's backends (the api's pool) count.
  local backends; backends=$(pgrep -d, -P "$BENCH_PG_PID")
  perf report -i "$out/presign.system.perf.data" --stdio --no-inline --pid "$backends" --percentage relative \
    --sort dso,symbol --percent-limit 0.5 2>/dev/null | sed 's/[ -]*$//' >"$out/presign.postgres.txt"
  perf report -i "$out/presign.system.perf.data" --stdio --no-inline --pid "$backends" --percentage relative \
    --sort dso 2>/dev/null | sed 's/[ -]*$//' >"$out/presign.postgres.dso.txt"
  echo "== presign: pg_stat_database before, tables before, database after, tables after"
  echo "   (commits, rollbacks, returned, fetched, inserted, updated, deleted, hits; table, updates, HOT updates, dead)"
  cat "$out/presign.pgstat.txt"
}

cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(downloads presign syscalls)
for case in "${cases[@]}"; do
  case $case in
    downloads) profile downloads --only api-downloads --rounds "${PROFILE_DOWNLOAD_ROUNDS:-5}" --download-mib "${PROFILE_DOWNLOAD_MIB:-256}" ;;
    presign) presign ;;
    syscalls) syscalls ;;
    *) echo "unknown profile $case (downloads, presign, syscalls)" >&2; exit 2 ;;
  esac
done
