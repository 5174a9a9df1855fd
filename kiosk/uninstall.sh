#!/usr/bin/env bash
# Undo kiosk/install.sh: stop the timers, give the autologin back, remove every file and
# directory the kit created (from its manifest), put back the files it had replaced, and delete
# the kiosk user if the kit created it.
#
#   sudo ./uninstall.sh [--purge-packages] [--root DIR]
#
#   --purge-packages   also remove the packages install.sh installed (never ones already there)
#   --root DIR         undo an install made with --root DIR, running nothing; the commands that
#                      would run go to DIR/var/log/signage-kiosk-uninstall.log.
#                      Same as SIGNAGE_KIOSK_ROOT=DIR.
# Also kept on the Pi as /usr/local/lib/signage-kiosk/kit/uninstall.sh.
set -euo pipefail

STATE=/var/lib/signage-kiosk
INSTALL_LOG=/var/log/signage-kiosk-install.log
LOG=/var/log/signage-kiosk-uninstall.log
LIGHTDM=/etc/lightdm
MARK="#signage-kiosk# "

die() {
  printf 'uninstall.sh: error: %s\n' "$*" >&2
  exit 2
}

ROOT="${SIGNAGE_KIOSK_ROOT:-}"
purge=0
while (($#)); do
  case "$1" in
    -h | --help) sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --root) ROOT="${2?--root needs a directory}"; shift 2 ;;
    --purge-packages) purge=1; shift ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
if [[ -n "$ROOT" && "$ROOT" != / ]]; then
  [[ -d "$ROOT" ]] || die "--root $ROOT is not a directory"
  ROOT="$(cd "$ROOT" && pwd)"
  DRY=1
else
  ROOT=""
  DRY=0
  ((EUID == 0)) || die "run me as root: sudo $0"
fi

plan=()
((DRY)) && plan+=("# signage kiosk uninstall under $ROOT: nothing was run; 'run:' lines are what would run")
note() { plan+=("$*"); }
run() {
  local arg line=""
  for arg in "$@"; do
    if [[ "$arg" =~ ^[A-Za-z0-9_./:=,+@%-]+$ ]]; then line+=" $arg"; else line+=" '${arg//\'/\'\\\'\'}'"; fi
  done
  note "run:$line"
  ((DRY)) && return 0
  "$@"
}

if [[ ! -r "$ROOT$STATE/manifest" ]]; then
  echo "signage kiosk is not installed${ROOT:+ under $ROOT} (no $STATE/manifest): nothing to do"
  exit 0
fi
kiosk_user="$(cat "$ROOT$STATE/user" 2>/dev/null || true)"
created_user="$(cat "$ROOT$STATE/created-user" 2>/dev/null || true)"
packages=()
[[ -r "$ROOT$STATE/packages" ]] && mapfile -t packages < <(sed '/^$/d' "$ROOT$STATE/packages")

# 1. Stop the watchdog and the nightly reboot first, so neither acts on a half-removed kiosk.
timers=()
for timer in signage-kiosk-watchdog.timer signage-kiosk-reboot.timer; do
  [[ -e "$ROOT/etc/systemd/system/$timer" ]] && timers+=("$timer")
done
((${#timers[@]})) && { run systemctl disable --now "${timers[@]}" || true; }

# 2. Give the autologin back: the lines install.sh marked in lightdm.conf become live again.
if [[ -f "$ROOT$LIGHTDM/lightdm.conf" ]] && grep -q "^$MARK" "$ROOT$LIGHTDM/lightdm.conf"; then
  sed "s/^$MARK//" "$ROOT$LIGHTDM/lightdm.conf" >"$ROOT$LIGHTDM/lightdm.conf.signage-kiosk.tmp"
  cat "$ROOT$LIGHTDM/lightdm.conf.signage-kiosk.tmp" >"$ROOT$LIGHTDM/lightdm.conf"
  rm -f "$ROOT$LIGHTDM/lightdm.conf.signage-kiosk.tmp"
  note "edit: $LIGHTDM/lightdm.conf (autologin lines restored)"
fi

# 3. The kiosk user, if this kit created it: end its session (userdel refuses a user with
#    running processes), then delete it with its home (the Chromium profile is in there).
if [[ -n "$created_user" ]]; then
  if grep -qE "^$created_user:" "$ROOT/etc/passwd" 2>/dev/null || ((DRY)); then
    run loginctl terminate-user "$created_user" || true
    run userdel --remove "$created_user" || true
  fi
fi

# 4. Every file and link the kit created, or the file that was there before it.
mapfile -t entries <"$ROOT$STATE/manifest"
dirs=()
for entry in "${entries[@]}"; do
  kind="${entry%%$'\t'*}"
  path="${entry#*$'\t'}"
  [[ -n "$path" && "$path" == /* ]] || continue
  case "$kind" in
    d) dirs+=("$path") ;;
    f | l)
      if [[ -e "$ROOT$STATE/backup$path" || -L "$ROOT$STATE/backup$path" ]]; then
        rm -f "$ROOT$path"
        cp -a "$ROOT$STATE/backup$path" "$ROOT$path"
        note "restore: $path"
      elif [[ -e "$ROOT$path" || -L "$ROOT$path" ]]; then
        rm -f "$ROOT$path"
        note "remove: $path"
      fi
      ;;
  esac
done
# What the kit kept about itself, and its install log.
rm -rf "$ROOT$STATE/backup"
for path in "$STATE/manifest" "$STATE/user" "$STATE/created-user" "$STATE/packages" "$INSTALL_LOG"; do
  if [[ -e "$ROOT$path" ]]; then
    rm -f "$ROOT$path"
    note "remove: $path"
  fi
done

# 5. The directories it created, deepest first, when nothing else lives in them. The kiosk
#    user's own leftovers (Chromium profile, state) go with the user; a directory that still
#    holds someone else's files stays.
mapfile -t dirs < <(printf '%s\n' "${dirs[@]}" | awk '{ print length($0) "\t" $0 }' | sort -rn | cut -f2-)
for dir in "${dirs[@]}"; do
  [[ -n "$dir" && -d "$ROOT$dir" ]] || continue
  if [[ -n "$created_user" && -n "$kiosk_user" && "$dir" == "/home/$kiosk_user" ]]; then
    rm -rf "${ROOT:?}$dir"
    note "remove: $dir/"
  elif rmdir "$ROOT$dir" 2>/dev/null; then
    note "remove: $dir/"
  else
    note "keep: $dir/ (not empty)"
  fi
done

run systemctl daemon-reload

# 6. Packages, only when asked: Chromium may serve other purposes on this Pi by now.
if ((purge && ${#packages[@]})); then
  run env DEBIAN_FRONTEND=noninteractive apt-get purge -y "${packages[@]}"
  run apt-get autoremove -y
fi

mkdir -p "$ROOT/var/log"
printf '%s\n' "${plan[@]}" >"$ROOT$LOG"
echo "signage kiosk removed${ROOT:+ from $ROOT (nothing was run: see $ROOT$LOG)}"
if ((!purge)); then
  echo "Packages were left installed; \`$0 --purge-packages\` removes the ones install.sh added."
fi
((DRY)) || echo "Reboot to return the screen to its previous login: sudo reboot"
