#!/usr/bin/env bash
# Wait until the signage server answers its health check, or give up after a time budget.
#   wait-for-server.sh [--timeout SECONDS] [--interval SECONDS] URL
# URL is the server root or a display URL; the check goes to <origin>/healthz, which answers
# 200 {"status": "ok"} whenever the server process is up. Exit 0 when it answered, 1 when the
# budget ran out (the caller then shows the local "waiting for the server" page instead).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"

timeout=30
interval=2
while (($#)); do
  case "$1" in
    --timeout) timeout="$2"; shift 2 ;;
    --interval) interval="$2"; shift 2 ;;
    -h | --help) sed -n '2,6p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) break ;;
  esac
done
url="${1:?usage: wait-for-server.sh [--timeout S] [--interval S] URL}"
if ! [[ "$timeout" =~ ^[0-9]+$ && "$interval" =~ ^[1-9][0-9]*$ ]]; then
  kiosk_log "--timeout and --interval take whole seconds"
  exit 2
fi
origin="$(kiosk_origin "$url")" || { kiosk_log "not an http(s) URL: $(kiosk_mask_url "$url")"; exit 2; }

deadline=$((SECONDS + timeout))
attempt=0
while :; do
  attempt=$((attempt + 1))
  # --max-time bounds one try even when the network swallows packets (a cable pulled mid-boot);
  # no proxy: a lobby Pi talks to the server directly.
  if body="$(curl --silent --show-error --fail --max-time 5 --noproxy '*' \
    --header 'Accept: application/json' "$origin/healthz" 2>/dev/null)" &&
    [[ "$body" =~ \"status\"[[:space:]]*:[[:space:]]*\"ok\" ]]; then
    ((attempt > 1)) && kiosk_log "server $origin answers (after $attempt tries)"
    exit 0
  fi
  if ((SECONDS + interval > deadline)); then
    kiosk_log "server $origin did not answer within ${timeout}s ($attempt tries)"
    exit 1
  fi
  sleep "$interval"
done
