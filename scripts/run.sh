#!/usr/bin/env bash
# `make run`: build, start Postgres and LocalStack (kept under .dev/), run api and worker in the foreground.
# Ctrl-C (or SIGTERM) stops api, worker, LocalStack and Postgres.
set -euo pipefail
. "$(dirname "$0")/common.sh"
cd "$ROOT"

cargo build --bin api --bin worker
"$ROOT/scripts/services.sh" start >/dev/null
eval "$("$ROOT/scripts/services.sh" env)"
export BIND_ADDR=${BIND_ADDR:-127.0.0.1:8080}
export PUBLIC_BASE_URL=${PUBLIC_BASE_URL:-http://$BIND_ADDR}
export LOG_FORMAT=${LOG_FORMAT:-pretty}
# The key that signs file links: made once and kept under .dev/, so links survive a restart.
if [ -z "${LINK_SIGNING_KEY:-}" ] && [ -z "${LINK_SIGNING_KEY_FILE:-}" ]; then
  key_file="$ROOT/.dev/link-signing-key"
  [ -s "$key_file" ] || (umask 077 && head -c 32 /dev/urandom | base64 >"$key_file")
  export LINK_SIGNING_KEY_FILE=$key_file
fi
# The page the api serves itself, by either name.
export CORS_ALLOWED_ORIGINS=${CORS_ALLOWED_ORIGINS:-http://127.0.0.1:8080,$PUBLIC_BASE_URL}

pids=()
stop_all() {
  trap - INT TERM EXIT
  echo "stopping api, worker, LocalStack and Postgres" >&2
  [ ${#pids[@]} -gt 0 ] && kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  "$ROOT/scripts/services.sh" stop
}
trap stop_all EXIT
trap 'exit 0' INT TERM

target/debug/api & pids+=($!)
target/debug/worker & pids+=($!)
echo "api on http://$BIND_ADDR (Ctrl-C stops everything)" >&2
wait -n "${pids[@]}"
