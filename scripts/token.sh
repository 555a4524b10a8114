#!/usr/bin/env bash
# `make token SUB=alice [TTL=24h]`: prints a bearer token for another subject, signed with the dev secret that
# `make run` uses (made here if `make run` has not made it yet).
set -euo pipefail
. "$(dirname "$0")/common.sh"
cd "$ROOT"

cargo build --quiet --bin mint-token
dev_secret "$DEV_JWT_SECRET"
AUTH_JWT_SECRET_FILE=$DEV_JWT_SECRET exec target/debug/mint-token --sub "${SUB:-dev}" --ttl "${TTL:-24h}"
