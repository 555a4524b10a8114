# LocalStack (S3 only), run natively from a pinned venv. Sourced by scripts/*.sh; not run directly.
# Functions: localstack_install VENV; localstack_start VENV PORT DATA_DIR LOG; localstack_wait PORT; localstack_init VENV PORT BUCKET

LOCALSTACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$LOCALSTACK_DIR/../scripts/venv.sh"

localstack_install() {
  venv_install "$1" "$LOCALSTACK_DIR/requirements.txt" "LocalStack (about 30 s)"
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
