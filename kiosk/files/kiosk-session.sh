#!/usr/bin/env bash
# The kiosk session, started by labwc's autostart for the kiosk user: set up the screen, then
# hand over to the Chromium loop. One instance only: labwc can run the autostart again when its
# configuration is reloaded, and two browsers would fight over the screen and the debug port.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"

state_dir="$(kiosk_state_dir)"
mkdir -p "$state_dir"
exec 9>"$state_dir/session.lock"
if ! flock -n 9; then
  kiosk_log "a kiosk session is already running for this user"
  exit 0
fi

"$here/display-setup.sh" || kiosk_log "display setup failed; starting the browser anyway"
exec "$here/browser.sh"
