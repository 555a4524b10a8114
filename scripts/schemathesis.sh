#!/usr/bin/env bash
# The contract check of `make test`: schemathesis (pinned, in a venv under .dev/) fuzzes a real api process
# from openapi.yaml, stateful phase included, and fails on any answer the spec does not describe.
#
# Needs TEST_DATABASE_URL (an admin URL of a Postgres) and TEST_S3_ENDPOINT (LocalStack), as scripts/test.sh
# exports them; makes its own database and bucket there. The api must be built (target/debug/api, mint-token).
# Bounded: a fixed seed and a fixed number of cases per operation (SCHEMATHESIS_MAX_EXAMPLES, default 30), so
# the same run is repeated everywhere and takes the same time. Reports go to $TEST_OUTPUT_DIR/schemathesis.
set -euo pipefail
. "$(dirname "$0")/common.sh"
cd "$ROOT"

: "${TEST_DATABASE_URL:?TEST_DATABASE_URL is not set: run through make test}"
: "${TEST_S3_ENDPOINT:?TEST_S3_ENDPOINT is not set: run through make test}"
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-test} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-test}
venv="$ROOT/.dev/schemathesis-venv"
out="${TEST_OUTPUT_DIR:-$ROOT/test-output}/schemathesis"
mkdir -p "$out"

venv_install "$venv" "$ROOT/scripts/schemathesis/requirements.txt" schemathesis

# A database and a bucket of its own, so what the fuzzer leaves behind touches no other test.
name="contract_$(python3 -c 'import secrets; print(secrets.token_hex(6))')"
"$(pg_bin_dir)/psql" -q "$TEST_DATABASE_URL" -c "CREATE DATABASE $name"
curl -fsS -X PUT "$TEST_S3_ENDPOINT/${name//_/-}" --aws-sigv4 "aws:amz:us-east-1:s3" \
  --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -o /dev/null

port=$(free_port)
hex32() { python3 -c 'import secrets; print(secrets.token_hex(32))'; }
export AUTH_JWT_SECRET=$(hex32)
token=$(target/debug/mint-token --sub schemathesis --ttl 1h)
api_pid=
stop_api() { [ -n "$api_pid" ] && kill "$api_pid" 2>/dev/null && wait "$api_pid" 2>/dev/null; return 0; }
trap stop_api EXIT

# Limits high enough that the fuzzer's hundreds of creates are not all 429 (429 is checked by the e2e suite).
DATABASE_URL="${TEST_DATABASE_URL%/*}/$name" S3_ENDPOINT=$TEST_S3_ENDPOINT S3_BUCKET=${name//_/-} S3_FORCE_PATH_STYLE=true \
  BIND_ADDR=127.0.0.1:$port PUBLIC_BASE_URL=http://127.0.0.1:$port LINK_SIGNING_KEY=$(hex32) LOG_FORMAT=json \
  MAX_ACTIVE_UPLOADS=1000000 MAX_ACTIVE_BYTES=1000000000000000000 RUST_LOG=${RUST_LOG:-warn} \
  target/debug/api >"$out/api.log" 2>&1 &
api_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  kill -0 "$api_pid" 2>/dev/null || { tail -n 20 "$out/api.log" >&2; exit 1; }
  sleep 0.2
done

echo "schemathesis against the api on $port (seed 1, ${SCHEMATHESIS_MAX_EXAMPLES:-30} cases per operation)"
# From $out: schemathesis keeps its replay data under the working directory. One worker: with two threads,
# Hypothesis's parsing of lambdas trips CPython 3.11's "AST constructor recursion depth mismatch" now and then.
cd "$out"
SCHEMATHESIS_HOOKS="$ROOT/scripts/schemathesis/hooks.py" \
  "$venv/bin/schemathesis" --config-file "$ROOT/scripts/schemathesis/schemathesis.toml" run "$ROOT/openapi.yaml" --url "http://127.0.0.1:$port" \
  --header "Authorization: Bearer $token" \
  --seed 1 --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-30}" \
  --phases examples,coverage,fuzzing,stateful --checks all \
  --workers 1 --request-timeout 30 --no-color --generation-database none \
  --report junit --report-dir "$out" "$@"
