# Shared helpers for the project's scripts.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$ROOT/scripts/postgres.sh"
. "$ROOT/localstack/localstack.sh"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

need_curl() {
  command -v curl >/dev/null || { echo "curl is missing: apt-get install curl" >&2; return 1; }
}
