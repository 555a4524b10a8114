# Shared helpers for the project's scripts.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$ROOT/scripts/postgres.sh"
. "$ROOT/localstack/localstack.sh"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The dev secrets under .dev/, made once: 32 random bytes as hex, readable by their owner only.
DEV_JWT_SECRET="$ROOT/.dev/jwt-secret"
DEV_LINK_KEY="$ROOT/.dev/link-key"
dev_secret() {
  local file=$1
  mkdir -p "$(dirname "$file")"
  if [ ! -s "$file" ]; then
    (umask 077 && python3 -c 'import secrets; print(secrets.token_hex(32))' > "$file")
  fi
  chmod 600 "$file"
}

need_curl() {
  command -v curl >/dev/null || { echo "curl is missing: apt-get install curl" >&2; return 1; }
}

# A throwaway Postgres and LocalStack on free ports, state under WORK (make test, make bench).
# Sets pg_port, ls_port and ls_pid; throwaway_services_stop WORK stops both, whatever state they are in.
throwaway_services_start() {
  local work=$1
  pg_port=$(free_port)
  pg_start "$work/pg" "$pg_port"
  localstack_install "$ROOT/.dev/localstack-venv"
  ls_port=$(free_port)
  ls_pid=$(localstack_start "$ROOT/.dev/localstack-venv" "$ls_port" "$work/localstack" "$work/localstack.log")
  localstack_wait "$ls_port" "$work/localstack.log"
}

throwaway_services_stop() {
  local work=$1
  [ -n "${ls_pid:-}" ] && kill -- -"$ls_pid" 2>/dev/null || true
  pg_stop "$work/pg"
  [ -n "${ls_pid:-}" ] && { for _ in $(seq 1 20); do kill -0 "$ls_pid" 2>/dev/null || break; sleep 0.25; done; kill -9 -- -"$ls_pid" 2>/dev/null || true; }
  return 0
}
