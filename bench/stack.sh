# The servers `make bench` measures, started and stopped together. Sourced by scripts/bench.sh and
# bench/profile.sh after scripts/common.sh; not run directly.
# Functions: bench_prereqs; bench_build; bench_stack_up WORK; bench_stack_down WORK
# bench_stack_up exports the BENCH_* variables the `bench` binary reads.

BENCH_DIR="$ROOT/bench"

# nginx (Debian's nginx-light) and node + npm where missing, as root with apt; Companion from the lockfile.
bench_prereqs() {
  local missing=()
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
  command -v node >/dev/null || missing+=(nodejs)
  command -v npm >/dev/null || missing+=(npm)
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
      echo "missing: ${missing[*]} (install with: sudo apt-get install ${missing[*]})" >&2
      return 1
    fi
    echo "installing ${missing[*]} (once)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  local companion="$BENCH_DIR/companion"
  if [ ! -x "$companion/node_modules/.bin/companion" ] || [ "$companion/package-lock.json" -nt "$companion/node_modules/.package-lock.json" ]; then
    (cd "$companion" && npm ci --no-audit --no-fund --loglevel=error >&2)
  fi
}

# The release build of everything measured, in one cargo call so features unify once.
bench_build() {
  cargo build --release --quiet -p api -p worker -p client -p bench --bins
}

wait_http() {
  local url=$1 name=$2 log=$3 i
  for i in $(seq 1 200); do
    curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "$name did not answer $url within 20 s" >&2
  tail -n 20 "$log" >&2
  return 1
}

# Starts Postgres, LocalStack, api, worker, Companion and nginx; their pids in bench_pids (stopped by
# bench_stack_down whatever state they are in).
bench_stack_up() {
  local work=$1 bucket=bench
  bench_pids=()
  throwaway_services_start "$work"
  localstack_init "$ROOT/.dev/localstack-venv" "$ls_port" "$bucket"

  local api_port worker_log companion_port nginx_port
  api_port=$(free_port)
  export AUTH_JWT_SECRET
  AUTH_JWT_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
  export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
  local db="postgres://postgres@127.0.0.1:$pg_port/postgres"
  # The services' own defaults otherwise (logging included), as Companion's and nginx's are, but for the
  # per-owner limits: every bench request is one owner's, and initiate creates thousands of uploads.
  DATABASE_URL=$db S3_ENDPOINT="http://127.0.0.1:$ls_port" S3_BUCKET=$bucket S3_FORCE_PATH_STYLE=true \
  BIND_ADDR="127.0.0.1:$api_port" DOWNLOAD_URL_TTL=1h LINK_SIGNING_KEY="$(head -c 32 /dev/urandom | base64)" \
  MAX_ACTIVE_UPLOADS=100000000 MAX_ACTIVE_BYTES=1000000000000000000 \
    "$ROOT/target/release/api" >"$work/api.log" 2>&1 &
  BENCH_API_PID=$!; bench_pids+=("$BENCH_API_PID")
  wait_http "http://127.0.0.1:$api_port/readyz" api "$work/api.log"
  DATABASE_URL=$db S3_ENDPOINT="http://127.0.0.1:$ls_port" S3_BUCKET=$bucket S3_FORCE_PATH_STYLE=true \
  WORKER_POLL_INTERVAL=500ms \
    "$ROOT/target/release/worker" >"$work/worker.log" 2>&1 &
  bench_pids+=($!)

  companion_port=$(free_port)
  mkdir -p "$work/companion"
  (cd "$BENCH_DIR/companion" && exec env NODE_ENV=production COMPANION_PORT="$companion_port" \
    COMPANION_SECRET="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
    COMPANION_DOMAIN="127.0.0.1:$companion_port" COMPANION_PROTOCOL=http COMPANION_DATADIR="$work/companion" \
    COMPANION_PREAUTH_SECRET="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
    COMPANION_CLIENT_ORIGINS=true COMPANION_UPLOAD_URLS="http://127.0.0.1:$ls_port/" \
    COMPANION_AWS_KEY=test COMPANION_AWS_SECRET=test COMPANION_AWS_BUCKET=$bucket COMPANION_AWS_REGION=us-east-1 \
    COMPANION_AWS_ENDPOINT="http://127.0.0.1:$ls_port" COMPANION_AWS_FORCE_PATH_STYLE=true \
    node serve.mjs >"$work/companion.log" 2>&1) &
  BENCH_COMPANION_PID=$!; bench_pids+=("$BENCH_COMPANION_PID")

  nginx_port=$(free_port)
  mkdir -p "$work/nginx"
  sed -e "s|@PREFIX@|$work/nginx|g" -e "s|@PORT@|$nginx_port|g" -e "s|@UPSTREAM@|127.0.0.1:$ls_port|g" \
    "$BENCH_DIR/nginx.conf.template" >"$work/nginx/nginx.conf"
  "$(command -v nginx || echo /usr/sbin/nginx)" -p "$work/nginx" -c "$work/nginx/nginx.conf" >"$work/nginx/stdout.log" 2>&1 &
  BENCH_NGINX_PID=$!; bench_pids+=("$BENCH_NGINX_PID")

  wait_http "http://127.0.0.1:$companion_port/" companion "$work/companion.log"
  # nginx proxies to LocalStack: its health route answers through it too.
  wait_http "http://127.0.0.1:$nginx_port/_localstack/health" nginx "$work/nginx/error.log"

  export BENCH_API_URL="http://127.0.0.1:$api_port" BENCH_COMPANION_URL="http://127.0.0.1:$companion_port"
  export BENCH_NGINX_URL="http://127.0.0.1:$nginx_port" BENCH_S3_ENDPOINT="http://127.0.0.1:$ls_port"
  export BENCH_BUCKET=$bucket BENCH_API_PID BENCH_COMPANION_PID BENCH_NGINX_PID
  BENCH_PG_PID=$(head -n 1 "$work/pg/postmaster.pid"); export BENCH_PG_PID
  export BENCH_UPL="$ROOT/target/release/upl" BENCH_WORK="$work"
  BENCH_COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
  git -C "$ROOT" diff --quiet HEAD 2>/dev/null || BENCH_COMMIT="$BENCH_COMMIT-dirty"
  export BENCH_COMMIT
  echo "api $BENCH_API_URL, companion $BENCH_COMPANION_URL, nginx $BENCH_NGINX_URL, S3 $BENCH_S3_ENDPOINT" >&2
}

# Stops, in reverse order, every process bench_stack_up started, then Postgres and LocalStack.
bench_stack_down() {
  local work=$1 pid i
  for pid in "${bench_pids[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  for pid in "${bench_pids[@]:-}"; do
    [ -n "$pid" ] || continue
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  bench_pids=()
  throwaway_services_stop "$work"
}
