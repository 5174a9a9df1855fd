# shellcheck shell=bash disable=SC2034  # the settings below are read by the sourcing scripts
# Shared by the signage kiosk scripts on the Pi: reading /etc/signage-kiosk.conf and logging.
# Sourced, never run. The config is parsed, not sourced: it is data, and a stray `$(...)` in it
# must not run as the kiosk user (or as root, for the watchdog's unit).

SIGNAGE_KIOSK_CONF="${SIGNAGE_KIOSK_CONF:-/etc/signage-kiosk.conf}"

# Defaults for every key; the installer writes the same ones into the config file.
SERVER_URL=""
ROTATION="0"
OUTPUT=""
REBOOT_WINDOW=""
DEBUG_PORT="9222"
WATCHDOG_STRIKES="3"

# Timings, in seconds. These are the production values (docs/kiosk.md gives the same numbers,
# and a test compares them); the environment can shorten them, which only the session test does.
KIOSK_SERVER_WAIT="${SIGNAGE_KIOSK_SERVER_WAIT:-20}"      # browser.sh: /healthz before Chromium starts
KIOSK_BACKOFF_FIRST="${SIGNAGE_KIOSK_BACKOFF:-2}"         # browser.sh: first pause before a restart
KIOSK_BACKOFF_MAX="${SIGNAGE_KIOSK_BACKOFF_MAX:-60}"      # browser.sh: the pause doubles up to this
KIOSK_STEADY="${SIGNAGE_KIOSK_STEADY:-300}"               # browser.sh: a run this long resets the pause
KIOSK_GRACE="${SIGNAGE_KIOSK_GRACE:-90}"                  # watchdog.sh: a fresh Chromium is left alone
KIOSK_PROBE_TIMEOUT="${SIGNAGE_KIOSK_PROBE_TIMEOUT:-10}"  # watchdog.sh: the page must answer within this

# Where the session keeps its pid file and the watchdog its strike count.
kiosk_state_dir() {
  printf '%s\n' "${XDG_STATE_HOME:-${HOME:?HOME is not set}/.local/state}/signage-kiosk"
}

kiosk_log() {
  # The journal when there is one (labwc's autostart has no terminal), stderr always.
  printf 'signage-kiosk: %s\n' "$*" >&2
  if [[ -S /dev/log ]] && command -v logger >/dev/null 2>&1; then
    logger -t signage-kiosk -- "$*" 2>/dev/null || true
  fi
}

# Kiosk URLs carry the display's credential: never print the part after /kiosk/.
kiosk_mask_url() {
  local url="$1"
  printf '%s\n' "$url" | sed -E 's#/(kiosk|phone)/[^/?#]+#/\1/…#g'
}

# Read KEY=value lines (optionally quoted) for the known keys; ignore comments and the rest.
kiosk_load_config() {
  local file="$SIGNAGE_KIOSK_CONF" line key value
  [[ -r "$file" ]] || { kiosk_log "config $file is missing or unreadable"; return 1; }
  while IFS= read -r line || [[ -n "$line" ]]; do
    [[ "$line" =~ ^[[:space:]]*([A-Z_]+)[[:space:]]*=[[:space:]]*(.*)$ ]] || continue
    key="${BASH_REMATCH[1]}"
    value="${BASH_REMATCH[2]}"
    value="${value%"${value##*[![:space:]]}"}"
    if [[ "$value" =~ ^\"(.*)\"$ || "$value" =~ ^\'(.*)\'$ ]]; then
      value="${BASH_REMATCH[1]}"
    fi
    case "$key" in
      SERVER_URL | ROTATION | OUTPUT | REBOOT_WINDOW | DEBUG_PORT | WATCHDOG_STRIKES)
        printf -v "$key" '%s' "$value"
        ;;
    esac
  done <"$file"
  if ! [[ "$DEBUG_PORT" =~ ^[0-9]+$ ]] || ((DEBUG_PORT < 1024 || DEBUG_PORT > 65535)); then
    kiosk_log "DEBUG_PORT '$DEBUG_PORT' is not a port from 1024 to 65535: using 9222"
    DEBUG_PORT=9222
  fi
  if ! [[ "$WATCHDOG_STRIKES" =~ ^[1-9][0-9]*$ ]]; then
    kiosk_log "WATCHDOG_STRIKES '$WATCHDOG_STRIKES' is not a positive number: using 3"
    WATCHDOG_STRIKES=3
  fi
}

# scheme://host[:port] of a URL (the part Chromium and the browser's security model care about).
kiosk_origin() {
  local url="$1"
  [[ "$url" =~ ^(https?://[^/?#]+) ]] || return 1
  printf '%s\n' "${BASH_REMATCH[1],,}"
}
