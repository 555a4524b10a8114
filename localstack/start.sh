#!/usr/bin/env bash
# Start LocalStack on its own in the foreground-managed background (for `make services`).
# Usage: localstack/start.sh [VENV] [PORT] [DATA_DIR] [BUCKET]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/localstack.sh"
venv=${1:-$here/../.dev/localstack-venv}
port=${2:-4566}
data=${3:-$here/../.dev/localstack-data}
bucket=${4:-uploads}
localstack_install "$venv"
if ! localstack_healthy "$port"; then
  localstack_start "$venv" "$port" "$data" "$data/localstack.log" > "$data/localstack.pid"
  localstack_wait "$port" "$data/localstack.log"
fi
localstack_init "$venv" "$port" "$bucket"
