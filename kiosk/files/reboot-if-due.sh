#!/usr/bin/env bash
# The nightly reboot, run by signage-kiosk-reboot.timer inside REBOOT_WINDOW. A fresh boot
# clears whatever a week of uptime leaves behind (GPU memory, a wedged Wi-Fi driver).
# Skipped when the Pi has been up for less than an hour: a Pi has no battery-backed clock, and
# a clock corrected by NTP just after a power cut must not reboot a screen that just came up.
set -euo pipefail
min_uptime="${SIGNAGE_KIOSK_MIN_UPTIME:-3600}"
read -r uptime _ </proc/uptime
uptime="${uptime%%.*}"
if ((uptime < min_uptime)); then
  echo "signage-kiosk: up for ${uptime}s only: skipping tonight's reboot"
  exit 0
fi
echo "signage-kiosk: nightly reboot"
exec systemctl reboot
