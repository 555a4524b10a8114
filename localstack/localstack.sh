# LocalStack (S3 only), run natively from a pinned venv. Sourced by scripts/*.sh; not run directly.
# Functions: localstack_install VENV; localstack_start VENV PORT DATA_DIR LOG; localstack_wait PORT; localstack_init VENV PORT BUCKET

LOCALSTACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

localstack_install() {
  local venv=$1 req="$LOCALSTACK_DIR/requirements.txt"
  local stamp="$venv/.requirements.sha256" want
  want=$(sha256sum "$req" | cut -d' ' -f1)
  if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  command -v python3 >/dev/null || { echo "python3 is missing: apt-get install python3 python3-venv" >&2; return 1; }
  echo "installing LocalStack into $venv (about 30 s, once)" >&2
  python3 -m venv "$venv" || { echo "python3 -m venv failed: apt-get install python3-venv" >&2; return 1; }
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req" >&2 || return 1
  echo "$want" > "$stamp"
}

localstack_healthy() {
  curl -fsS "http://127.0.0.1:$1/_localstack/health" 2>/dev/null | grep -q '"s3": "\(running\|available\)"'
}

# Starts LocalStack in the background; prints its pid.
localstack_start() {
  local venv=$1 port=$2 data=$3 log=$4
  mkdir -p "$data"
  # Presigned-URL signature checks on: tampered or expired URLs must fail as on AWS.
  # hypercorn binds to 127.0.0.1 as asked; the default twisted gateway listens on every interface.
  GATEWAY_LISTEN="127.0.0.1:$port" GATEWAY_SERVER="${LOCALSTACK_GATEWAY_SERVER:-hypercorn}" \
  SERVICES=s3 EAGER_SERVICE_LOADING=1 S3_SKIP_SIGNATURE_VALIDATION=0 \
  LOCALSTACK_VOLUME_DIR="$data" DISABLE_EVENTS=1 SKIP_SSL_CERT_DOWNLOAD=1 \
    setsid "$venv/bin/python" -m localstack.runtime.main >"$log" 2>&1 < /dev/null &
  echo $!
}

localstack_wait() {
  local port=$1 log=${2:-} i
  for i in $(seq 1 120); do
    localstack_healthy "$port" && return 0
    sleep 0.5
  done
  echo "LocalStack did not become healthy on port $port within 60 s" >&2
  [ -n "$log" ] && tail -n 30 "$log" >&2
  return 1
}

localstack_init() {
  local venv=$1 port=$2 bucket=$3
  "$venv/bin/python" "$LOCALSTACK_DIR/init.py" "http://127.0.0.1:$port" "$bucket" >&2
}
