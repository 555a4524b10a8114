#!/usr/bin/env bash
# Browser-test prerequisites, installed where missing: Debian's chromium (+ driver), ffmpeg (makes the test
# video), and playwright-core (drives the system Chromium; it never downloads a browser of its own).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
command -v ffmpeg >/dev/null || missing+=(ffmpeg)
command -v node >/dev/null || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing: ${missing[*]} (install with: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "installing ${missing[*]} (once)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cd "$ROOT/tests/browser"
if [ ! -d node_modules/playwright-core ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error >&2
fi
