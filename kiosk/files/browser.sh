#!/usr/bin/env bash
# Keep Chromium showing the signage server, full screen, for as long as the session lives.
#   browser.sh                  run the loop (started by kiosk-session.sh from labwc's autostart)
#   browser.sh --print-command  print the Chromium command line for the current config and exit
# Each round: check the server answers, open it (or the local waiting page when it does not),
# wait for Chromium to exit, back off, start again. The watchdog ends a stuck Chromium by the
# pid this loop records; the loop then brings it back.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"

kiosk_load_config
[[ -n "$SERVER_URL" ]] || { kiosk_log "SERVER_URL is empty in $SIGNAGE_KIOSK_CONF"; exit 1; }
origin="$(kiosk_origin "$SERVER_URL")" || { kiosk_log "SERVER_URL is not an http(s) URL"; exit 1; }

state_dir="$(kiosk_state_dir)"
pid_file="$state_dir/chromium.pid"
# A profile of its own: pairing cookies and the page's service worker survive restarts, and
# nothing a person did in a desktop Chromium on this Pi leaks in.
profile_dir="${XDG_DATA_HOME:-$HOME/.local/share}/signage-kiosk/chromium"
waiting_page="$(readlink -m "$here/../../share/signage-kiosk/waiting.html")"

find_chromium() {
  local name
  for name in "${SIGNAGE_KIOSK_CHROMIUM:-}" chromium chromium-browser; do
    [[ -n "$name" ]] && command -v "$name" 2>/dev/null && return 0
  done
  return 1
}

chromium_flags() {
  flags=(
    --kiosk                                # full screen, no tabs, address bar or menus to escape to
    --noerrdialogs                         # no modal error dialogs nobody in a lobby can dismiss
    --disable-session-crashed-bubble       # no "Chromium didn't shut down correctly" after a power cut
    --hide-crash-restore-bubble            # the same bubble under its newer name (Chromium 112+)
    --no-first-run                         # no welcome page on the first start of a fresh profile
    --no-default-browser-check             # no "make Chromium your default browser" bar
    --ozone-platform=wayland               # draw on labwc directly, not through Xwayland
    --start-maximized                      # cover the output even before kiosk mode takes hold
    --disable-pinch                        # a touch screen cannot be zoomed out of the layout
    --overscroll-history-navigation=0      # a swipe cannot navigate back to the pairing page
    --password-store=basic                 # no "unlock your keyring" prompt on an autologin seat
    --disable-features=Translate           # no "translate this page?" bubble over the map
    --check-for-update-interval=31536000   # no "Chromium is out of date" nag: apt updates it
    --remote-debugging-address=127.0.0.1   # the watchdog's view of the page, bound to this Pi only
    "--remote-debugging-port=$DEBUG_PORT"  # the port the watchdog asks (DEBUG_PORT in the config)
    "--user-data-dir=$profile_dir"         # the dedicated profile above (remote debugging needs one)
  )
  if [[ "$origin" == http://* ]]; then
    # Plain HTTP on the LAN: without this the kiosk page's service worker (offline start, fast
    # reloads) is refused, since service workers only run on secure origins. Only this origin.
    flags+=("--unsafely-treat-insecure-origin-as-secure=$origin")
  fi
}

# file:// page that shows "waiting for the server", retries on its own and goes to the server.
waiting_url() {
  local host
  host="$(hostname 2>/dev/null || echo '')"
  printf 'file://%s?url=%s&host=%s\n' "$waiting_page" "$(urlencode "$SERVER_URL")" "$(urlencode "$host")"
}

urlencode() {
  local s="$1" out="" c i
  for ((i = 0; i < ${#s}; i++)); do
    c="${s:i:1}"
    case "$c" in
      [A-Za-z0-9._~-]) out+="$c" ;;
      *) out+="$(printf '%%%02X' "'$c")" ;;
    esac
  done
  printf '%s' "$out"
}

# After a power cut Chromium marks the profile as crashed and offers to restore tabs; the flags
# above hide the bubble, and this makes sure the profile itself says it exited cleanly.
mark_clean_exit() {
  local prefs="$profile_dir/Default/Preferences"
  [[ -f "$prefs" ]] || return 0
  sed -i -e 's/"exited_cleanly":[[:space:]]*false/"exited_cleanly":true/' \
    -e 's/"exit_type":[[:space:]]*"[^"]*"/"exit_type":"Normal"/' "$prefs" || true
}

if [[ "${1:-}" == "--print-command" ]]; then
  chromium_flags
  printf '%s\n' "$(find_chromium || echo chromium)" "${flags[@]}" "$SERVER_URL"
  exit 0
fi

chromium="$(find_chromium)" || { kiosk_log "no chromium or chromium-browser on PATH"; exit 1; }
mkdir -p "$state_dir" "$profile_dir"
chromium_flags

child=""
stop() {
  [[ -n "$child" ]] && kill -TERM "$child" 2>/dev/null
  rm -f "$pid_file"
  exit 0
}
trap stop TERM INT HUP

backoff=$KIOSK_BACKOFF_FIRST
while :; do
  # Check the URL answers before (re)loading: Chromium's own error page never retries, ours does.
  if "$here/wait-for-server.sh" --timeout "$KIOSK_SERVER_WAIT" "$SERVER_URL"; then
    url="$SERVER_URL"
  else
    url="$(waiting_url)"
  fi
  mark_clean_exit
  started=$SECONDS
  "$chromium" "${flags[@]}" "$url" 9>&- &  # (fd 9 is the session lock: Chromium need not hold it)
  child=$!
  printf '%s\n' "$child" >"$pid_file"
  kiosk_log "Chromium started (pid $child) on $(kiosk_mask_url "${url%%\?*}")"
  status=0
  wait "$child" || status=$?
  rm -f "$pid_file"
  child=""
  ran=$((SECONDS - started))
  # A Chromium that ran for a while is restarted quickly; one that keeps dying at once is
  # restarted less and less often (2 s, 4, 8... up to a minute) so it does not spin the CPU.
  ((ran > KIOSK_STEADY)) && backoff=$KIOSK_BACKOFF_FIRST
  kiosk_log "Chromium exited (status $status after ${ran}s); starting it again in ${backoff}s"
  sleep "$backoff" &
  wait $! || true
  backoff=$((backoff * 2 > KIOSK_BACKOFF_MAX ? KIOSK_BACKOFF_MAX : backoff * 2))
done
