#!/usr/bin/env bash
# Restart the kiosk's Chromium when its page is dead. Run every minute by
# signage-kiosk-watchdog.timer, as the kiosk user.
# Asks Chromium through its remote-debugging port on 127.0.0.1 (cdp-probe.py): the endpoint
# must answer, the page must not be an error or crash page, and it must evaluate JavaScript.
# A failed check is a strike; after WATCHDOG_STRIKES strikes in a row (3 minutes by default,
# so one slow moment is forgiven) the browser is ended and browser.sh's loop starts it again,
# which first checks that the server answers.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"

kiosk_load_config
state_dir="$(kiosk_state_dir)"
pid_file="$state_dir/chromium.pid"
strikes_file="$state_dir/watchdog-strikes"

strikes=0
if [[ -r "$strikes_file" ]]; then read -r strikes <"$strikes_file" || true; fi
[[ "$strikes" =~ ^[0-9]+$ ]] || strikes=0
set_strikes() {
  mkdir -p "$state_dir"
  printf '%s\n' "$1" >"$strikes_file"
}

pid=""
if [[ -r "$pid_file" ]]; then read -r pid <"$pid_file" || true; fi
if ! [[ "$pid" =~ ^[0-9]+$ ]] || ! kill -0 "$pid" 2>/dev/null; then
  # No session (not logged in yet, or between two rounds of the loop): nothing to judge.
  ((strikes == 0)) || set_strikes 0
  exit 0
fi
age=$(($(date +%s) - $(stat -c %Y "$pid_file")))
if ((age < KIOSK_GRACE)); then  # a fresh Chromium gets time to load its page
  exit 0
fi

if verdict="$(python3 "$here/cdp-probe.py" --port "$DEBUG_PORT" --timeout "$KIOSK_PROBE_TIMEOUT")"; then
  if ((strikes > 0)); then
    kiosk_log "watchdog: page healthy again after $strikes strike(s)"
    set_strikes 0
  fi
  exit 0
fi

strikes=$((strikes + 1))
if ((strikes < WATCHDOG_STRIKES)); then
  kiosk_log "watchdog: strike $strikes of $WATCHDOG_STRIKES: $verdict"
  set_strikes "$strikes"
  exit 0
fi

kiosk_log "watchdog: restarting Chromium (pid $pid) after $strikes strikes: $verdict"
set_strikes 0
kill -TERM "$pid" 2>/dev/null || exit 0
# A hung browser may ignore SIGTERM: give it ten seconds to close its profile, then insist.
for _ in 1 2 3 4 5 6 7 8 9 10; do
  kill -0 "$pid" 2>/dev/null || exit 0
  sleep 1
done
kiosk_log "watchdog: Chromium (pid $pid) ignored SIGTERM: killing it"
kill -KILL "$pid" 2>/dev/null || true
