# A Python tool pinned by a requirements file, in a venv of its own. Sourced; not run directly.
# venv_install VENV REQUIREMENTS WHAT: (re)installs only when REQUIREMENTS changed since the last install.
venv_install() {
  local venv=$1 req=$2 what=$3
  local stamp="$venv/.requirements.sha256" want
  want=$(sha256sum "$req" | cut -d' ' -f1)
  if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  command -v python3 >/dev/null || { echo "python3 is missing: apt-get install python3 python3-venv" >&2; return 1; }
  echo "installing $what into $venv (once)" >&2
  python3 -m venv "$venv" || { echo "python3 -m venv failed: apt-get install python3-venv" >&2; return 1; }
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req" >&2 || return 1
  echo "$want" > "$stamp"
}
