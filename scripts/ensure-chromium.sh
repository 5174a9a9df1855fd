#!/usr/bin/env bash
# Print the path of a Chromium the browser tests can drive; install Debian's when none is found.
# Order: $SIGNAGE_CHROMIUM, then chromium / chromium-browser / google-chrome on the PATH, then a
# browser Playwright downloaded itself. Only as root with apt-get do we install one.
set -euo pipefail

found() { printf '%s\n' "$1"; exit 0; }

if [[ -n "${SIGNAGE_CHROMIUM:-}" && -x "${SIGNAGE_CHROMIUM}" ]]; then
  found "$SIGNAGE_CHROMIUM"
fi
for name in chromium chromium-browser google-chrome google-chrome-stable; do
  if path="$(command -v "$name" 2>/dev/null)"; then
    found "$path"
  fi
done
for path in "${PLAYWRIGHT_BROWSERS_PATH:-$HOME/.cache/ms-playwright}"/chromium-*/chrome-linux/chrome; do
  if [[ -x "$path" ]]; then
    found "$path"
  fi
done

if [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null 2>&1; then
  echo "no Chromium found: installing Debian's chromium" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq chromium >&2
  found "$(command -v chromium)"
fi

echo "no Chromium found: install one (apt-get install chromium) or set SIGNAGE_CHROMIUM" >&2
exit 1
