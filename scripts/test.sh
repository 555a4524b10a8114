#!/usr/bin/env bash
# `make test`: lint, then the whole suite (unit + end-to-end), then schemathesis against a throwaway Postgres and LocalStack
# on free ports. Both are stopped whatever happens; the exit code is the suite's.
set -euo pipefail
. "$(dirname "$0")/common.sh"
cd "$ROOT"
need_curl

echo "== fmt and clippy"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

echo "== unused dependencies"
# cargo-machete reads the sources, no build needed (2 s); installed once from crates.io (about 2.5 minutes on a
# busy 2-core machine; cargo-shear would also build rust-analyzer's parser). Pinned so a release cannot break CI.
if ! cargo machete --version >/dev/null 2>&1; then
  cargo install --locked --quiet cargo-machete --version 0.9.2
fi
cargo machete

work=$(mktemp -d /tmp/uploads-test.XXXXXX)
chmod 755 "$work"
ls_pid=
cleanup() {
  local rc=$?
  throwaway_services_stop "$work"
  if [ $rc -ne 0 ] && [ -f "$work/localstack.log" ]; then mkdir -p test-output; cp "$work/localstack.log" "$work/pg/server.log" test-output/ 2>/dev/null || true; fi
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== services"
throwaway_services_start "$work"
[ -x "$ROOT/scripts/test-prereqs.sh" ] && "$ROOT/scripts/test-prereqs.sh"

export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
export TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/postgres"
export TEST_S3_ENDPOINT="http://127.0.0.1:$ls_port"
export TEST_OUTPUT_DIR="$ROOT/test-output"
mkdir -p "$TEST_OUTPUT_DIR"
echo "Postgres on $pg_port, LocalStack on $ls_port"

echo "== tests"
# End-to-end tests run the api, worker and upl binaries as real processes too.
cargo build --workspace --bins --quiet
# No backtraces: a failure's last lines are then its panic message and location, which is what a CI log that
# keeps only the head and the tail still shows (async frames would push them out), even where the machine
# exports RUST_BACKTRACE=1. TEST_BACKTRACE=1 make test to see them.
export RUST_BACKTRACE=${TEST_BACKTRACE:-0}
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast --failure-output final
else
  cargo test --workspace --no-fail-fast
fi

echo "== contract (schemathesis against openapi.yaml)"
"$ROOT/scripts/schemathesis.sh"
