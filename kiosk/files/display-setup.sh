#!/usr/bin/env bash
# Set up the screen at the start of the kiosk session: rotation, and no blanking.
# Runs inside the labwc session (it needs WAYLAND_DISPLAY), before Chromium starts.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"

kiosk_load_config || true

# Screen blanking: Raspberry Pi OS implements "blank the screen" as a swayidle line in labwc's
# autostart, and its labwc session merges the system autostart with ours. A lobby screen stays
# on: night mode is the app's job (it dims the page and keeps HDMI up, so the TV does not go to
# "no signal" and wander off to another input). Only this user's swayidle is stopped.
if command -v pkill >/dev/null 2>&1 && pkill -x -u "$(id -u)" swayidle 2>/dev/null; then
  kiosk_log "stopped swayidle: the screen must not blank"
fi

# Rotation through the compositor. The app can also rotate itself (the display setting
# `rotation`); use one or the other, not both, or the picture turns twice.
case "$ROTATION" in
  "" | 0 | normal) exit 0 ;;
  90 | 180 | 270 | flipped | flipped-90 | flipped-180 | flipped-270) transform="$ROTATION" ;;
  *) kiosk_log "ROTATION '$ROTATION' is not 0, 90, 180 or 270: not rotating"; exit 0 ;;
esac
command -v wlr-randr >/dev/null 2>&1 || { kiosk_log "wlr-randr is missing: cannot rotate"; exit 0; }

# The outputs appear a moment after labwc starts: ask a few times before giving up.
outputs=()
for _ in 1 2 3 4 5 6 7 8 9 10; do
  if [[ -n "$OUTPUT" ]]; then
    outputs=("$OUTPUT")
  else
    # Output names start a line, their properties are indented below: keep the enabled ones.
    mapfile -t outputs < <(wlr-randr 2>/dev/null |
      awk '/^[^[:space:]]/ { name = $1 } /^[[:space:]]+Enabled: yes/ { print name }')
  fi
  ((${#outputs[@]})) && break
  sleep 1
done
((${#outputs[@]})) || { kiosk_log "no outputs found: cannot rotate"; exit 0; }

for output in "${outputs[@]}"; do
  if wlr-randr --output "$output" --transform "$transform"; then
    kiosk_log "rotated $output to $transform"
  else
    kiosk_log "could not rotate $output to $transform"
  fi
done
