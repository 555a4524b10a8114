#!/usr/bin/env bash
# `make services`: start only the dev Postgres (data in .dev/pg) and LocalStack, and print the environment
# to point `cargo run` at them. `make services-stop` stops both.
set -euo pipefail
. "$(dirname "$0")/common.sh"
cd "$ROOT"
need_curl

PG_PORT=${PG_PORT:-54329}
LOCALSTACK_PORT=${LOCALSTACK_PORT:-4566}
S3_BUCKET=${S3_BUCKET:-uploads}
DEV="$ROOT/.dev"
mkdir -p "$DEV"
chmod 755 "$DEV"

services_start() {
  pg_start "$DEV/pg" "$PG_PORT"
  local bin; bin=$(pg_bin_dir)
  if ! "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'uploads'" | grep -q 1; then
    "$bin/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres uploads
  fi
  localstack_install "$DEV/localstack-venv"
  if ! localstack_healthy "$LOCALSTACK_PORT"; then
    localstack_start "$DEV/localstack-venv" "$LOCALSTACK_PORT" "$DEV/localstack-data" "$DEV/localstack.log" > "$DEV/localstack.pid"
    localstack_wait "$LOCALSTACK_PORT" "$DEV/localstack.log"
  fi
  localstack_init "$DEV/localstack-venv" "$LOCALSTACK_PORT" "$S3_BUCKET"
}

services_stop() {
  if [ -f "$DEV/localstack.pid" ]; then
    kill -- -"$(cat "$DEV/localstack.pid")" 2>/dev/null || true
    rm -f "$DEV/localstack.pid"
  fi
  pg_stop "$DEV/pg"
}

services_env() {
  cat <<ENV
export DATABASE_URL=postgres://postgres@127.0.0.1:$PG_PORT/uploads
export S3_ENDPOINT=http://127.0.0.1:$LOCALSTACK_PORT
export S3_REGION=us-east-1
export S3_BUCKET=$S3_BUCKET
export S3_FORCE_PATH_STYLE=true
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1
# For the test suite (each test makes its own database and bucket there):
export TEST_DATABASE_URL=postgres://postgres@127.0.0.1:$PG_PORT/postgres
export TEST_S3_ENDPOINT=http://127.0.0.1:$LOCALSTACK_PORT
ENV
}

case "${1:-start}" in
  start) services_start; echo "# Postgres and LocalStack are up; stop them with: make services-stop"; services_env ;;
  stop) services_stop ;;
  env) services_env ;;
  *) echo "usage: $0 [start|stop|env]" >&2; exit 2 ;;
esac
