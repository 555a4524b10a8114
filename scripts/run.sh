#!/usr/bin/env bash
# `make run`: build, start Postgres and LocalStack (kept under .dev/), run api and worker in the foreground,
# with authentication on: a dev HS256 secret is made once under .dev/, and a 24-hour token for the subject
# `dev` is written to .dev/token and printed with the web page's address. Ctrl-C (or SIGTERM) stops api,
# worker, LocalStack and Postgres.
set -euo pipefail
. "$(dirname "$0")/common.sh"
cd "$ROOT"

cargo build --bin api --bin worker --bin mint-token
"$ROOT/scripts/services.sh" start >/dev/null
eval "$("$ROOT/scripts/services.sh" env)"
export BIND_ADDR=${BIND_ADDR:-127.0.0.1:8080}
export PUBLIC_BASE_URL=${PUBLIC_BASE_URL:-http://$BIND_ADDR}
export LOG_FORMAT=${LOG_FORMAT:-pretty}
# The page the api serves itself, by either name.
export CORS_ALLOWED_ORIGINS=${CORS_ALLOWED_ORIGINS:-http://127.0.0.1:8080,$PUBLIC_BASE_URL}

# Secrets, made once and kept under .dev/ (so tokens and links survive a restart): the HS256 secret dev tokens
# are signed with, and the key of signed download links.
dev_secret "$DEV_JWT_SECRET"
unset AUTH_JWT_SECRET
export AUTH_JWT_SECRET_FILE=$DEV_JWT_SECRET
dev_secret "$DEV_LINK_KEY"
export LINK_SIGNING_KEY_FILE=$DEV_LINK_KEY
(umask 077 && target/debug/mint-token --sub dev --ttl 24h > "$ROOT/.dev/token")

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
cat >&2 <<EOF
api on http://$BIND_ADDR (Ctrl-C stops everything)
web page, signed in as dev for 24 h:
  http://$BIND_ADDR/#token=$(cat "$ROOT/.dev/token")
command line: export UPL_TOKEN_FILE=.dev/token; another owner's token: make token SUB=alice
EOF
wait -n "${pids[@]}"
