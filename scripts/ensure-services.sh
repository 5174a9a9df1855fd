#!/usr/bin/env bash
# Make sure the servers the tests start themselves are installed: PostgreSQL (the store's
# second backend) and Redis (fan-out between processes). Prints PostgreSQL's bin folder.
# HAProxy (the load-balancer example's test) is installed when we can; without it that test skips.
# Order for PostgreSQL: $SIGNAGE_PG_BIN, then Debian's /usr/lib/postgresql/<newest>/bin, then
# `initdb` on the PATH. Only as root with apt-get do we install what is missing.
set -euo pipefail

pg_bindir() {
  if [[ -n "${SIGNAGE_PG_BIN:-}" && -x "${SIGNAGE_PG_BIN}/initdb" ]]; then
    printf '%s\n' "$SIGNAGE_PG_BIN"
    return 0
  fi
  local newest
  # Versions sort as versions: 9.6 < 10 < 15. An unmatched glob stays literal and fails -x.
  newest="$(printf '%s\n' /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)"
  if [[ -x "$newest" ]]; then
    dirname "$newest"
    return 0
  fi
  if path="$(command -v initdb 2>/dev/null)"; then
    dirname "$(readlink -f "$path")"
    return 0
  fi
  return 1
}

missing=()
pg_bindir >/dev/null || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)

if ! command -v haproxy >/dev/null 2>&1 && [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null 2>&1; then
  missing+=(haproxy)
fi

if ((${#missing[@]})); then
  if [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${missing[*]} for the tests" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq "${missing[@]}" >&2
  else
    echo "missing ${missing[*]}: install them (apt-get install ${missing[*]})," \
      "or set SIGNAGE_PG_BIN to PostgreSQL's bin folder" >&2
    exit 1
  fi
fi

pg_bindir
