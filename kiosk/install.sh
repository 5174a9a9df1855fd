#!/usr/bin/env bash
# Turn a Raspberry Pi (Raspberry Pi OS Bookworm or later, labwc on Wayland) into a signage
# kiosk: a screen that boots straight into the signage server's page and stays there.
#
#   sudo ./install.sh [options] URL
#
# URL: the signage server (https://signage.example.com/: the screen shows a pairing code), or a
# display URL (https://signage.example.com/kiosk/...: the screen opens that display directly).
# Without URL, the SERVER_URL already in /etc/signage-kiosk.conf is used (to re-apply a config).
#
# Options (each defaults to the value already in /etc/signage-kiosk.conf, then to the default):
#   --user NAME            kiosk user to create and log in automatically (default: kiosk)
#   --rotation DEG         0, 90, 180 or 270: rotate the picture through the compositor
#   --output NAME          the output to rotate, as wlr-randr names it (default: all)
#   --reboot-window W      nightly reboot window, e.g. 03:00-04:00; "" for none
#   --debug-port N         Chromium's remote-debugging port on 127.0.0.1 (default: 9222)
#   --strikes N            failed watchdog checks in a row before Chromium restarts (default: 3)
#   --session NAME         the labwc session to log into (default: found in wayland-sessions)
#   --root DIR             install into DIR as if it were / and run nothing (for tests); the
#                          commands that would run are written to DIR/var/log/signage-kiosk-install.log.
#                          Same as SIGNAGE_KIOSK_ROOT=DIR.
#
# Running it again gives the same result: every file is compared before it is written, and
# kiosk/uninstall.sh (also kept in /usr/local/lib/signage-kiosk/kit/) undoes all of it.
set -euo pipefail
shopt -u patsub_replacement 2>/dev/null || true # "&" in a URL stays a literal "&" below

kit="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
files="$kit/files"

LIB=/usr/local/lib/signage-kiosk
SHARE=/usr/local/share/signage-kiosk
CONF=/etc/signage-kiosk.conf
STATE=/var/lib/signage-kiosk
LOG=/var/log/signage-kiosk-install.log
UNITS=/etc/systemd/system
LIGHTDM=/etc/lightdm
MARK="#signage-kiosk# "

die() {
  printf 'install.sh: error: %s\n' "$*" >&2
  exit 2
}
say() { printf '%s\n' "$*"; }

# -- arguments -----------------------------------------------------------------------------------
ROOT="${SIGNAGE_KIOSK_ROOT:-}"
declare -A given=()
url=""
while (($#)); do
  case "$1" in
    -h | --help) sed -n '2,25p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --root) ROOT="${2?--root needs a directory}"; shift 2 ;;
    --user) given[KIOSK_USER]="${2?--user needs a name}"; shift 2 ;;
    --rotation) given[ROTATION]="${2?--rotation needs 0, 90, 180 or 270}"; shift 2 ;;
    --output) given[OUTPUT]="${2?--output needs a name}"; shift 2 ;;
    --reboot-window) given[REBOOT_WINDOW]="${2?--reboot-window needs HH:MM-HH:MM or \"\"}"; shift 2 ;;
    --debug-port) given[DEBUG_PORT]="${2?--debug-port needs a port}"; shift 2 ;;
    --strikes) given[WATCHDOG_STRIKES]="${2?--strikes needs a number}"; shift 2 ;;
    --session) given[SESSION]="${2?--session needs a name}"; shift 2 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *)
      [[ -z "$url" ]] || die "one URL only (got '$url' and '$1')"
      url="$1"
      shift
      ;;
  esac
done

if [[ -n "$ROOT" && "$ROOT" != / ]]; then
  [[ -d "$ROOT" ]] || die "--root $ROOT is not a directory"
  ROOT="$(cd "$ROOT" && pwd)"
  DRY=1 # a fake root: write files under it, run no command
else
  ROOT=""
  DRY=0
  ((EUID == 0)) || die "run me as root: sudo $0 ..."
fi

# Kiosk URLs carry the display's credential: it goes into the config file, never into a log.
mask_url() { printf '%s\n' "$1" | sed -E 's#/(kiosk|phone)/[^/?#]+#/\1/…#g'; }

# http(s), a host name or address, an optional port and path; nothing a shell or a config line
# could misread (no spaces, quotes, backslashes, "$" or backticks), no user:password@.
valid_url() {
  [[ "$1" =~ ^https?://([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?(/[^[:space:]\"\'\\\`\$\<\>]*)?$ ]]
}

# Read one key from the existing config (same rules as lib.sh: KEY=value, optional quotes).
conf_value() {
  local key="$1" file="$ROOT$CONF" line value
  [[ -r "$file" ]] || return 1
  while IFS= read -r line || [[ -n "$line" ]]; do
    [[ "$line" =~ ^[[:space:]]*${key}[[:space:]]*=[[:space:]]*(.*)$ ]] || continue
    value="${BASH_REMATCH[1]}"
    value="${value%"${value##*[![:space:]]}"}"
    if [[ "$value" =~ ^\"(.*)\"$ || "$value" =~ ^\'(.*)\'$ ]]; then value="${BASH_REMATCH[1]}"; fi
    printf '%s\n' "$value"
    return 0
  done <"$file"
  return 1
}

# A setting: the command line, else the existing config, else the default.
setting() {
  local key="$1" default="$2" value
  if [[ -v "given[$key]" ]]; then
    printf '%s\n' "${given[$key]}"
  elif value="$(conf_value "$key")"; then
    printf '%s\n' "$value"
  else
    printf '%s\n' "$default"
  fi
}

if [[ -z "$url" ]]; then
  url="$(conf_value SERVER_URL || true)"
  [[ -n "$url" ]] || die "give the signage server's URL, e.g. sudo $0 https://signage.example.com/"
fi
if ! valid_url "$url"; then
  die "'$(mask_url "$url")' is not a server URL: it must start with http:// or https://, then a host name (e.g. https://signage.example.com/ or http://192.168.1.20:8000/)"
fi
if [[ "$url" =~ ^https?://[^/]+/?$ ]]; then
  url="${url%/}/"
  mode_text="server URL: the screen will show a pairing code"
elif [[ "$url" =~ ^https?://[^/]+/kiosk/[^/?#]+ ]]; then
  mode_text="display URL: the screen opens that display directly, no pairing"
else
  mode_text="URL with a path: the screen opens it as given"
fi

ROTATION="$(setting ROTATION 0)"
OUTPUT="$(setting OUTPUT "")"
REBOOT_WINDOW="$(setting REBOOT_WINDOW "")"
DEBUG_PORT="$(setting DEBUG_PORT 9222)"
WATCHDOG_STRIKES="$(setting WATCHDOG_STRIKES 3)"
# The kiosk user of an earlier install, unless told otherwise.
prior_user="$(cat "$ROOT$STATE/user" 2>/dev/null || true)"
KIOSK_USER="${given[KIOSK_USER]:-${prior_user:-kiosk}}"

[[ "$ROTATION" =~ ^(0|90|180|270)$ ]] || die "--rotation must be 0, 90, 180 or 270 (got '$ROTATION')"
[[ "$OUTPUT" =~ ^[A-Za-z0-9._-]*$ ]] || die "--output must be an output name like HDMI-A-1 (got '$OUTPUT')"
if ! [[ "$DEBUG_PORT" =~ ^[1-9][0-9]{3,4}$ ]] || ((DEBUG_PORT > 65535)); then
  die "--debug-port must be a port from 1024 to 65535 (got '$DEBUG_PORT')"
fi
[[ "$WATCHDOG_STRIKES" =~ ^[1-9][0-9]?$ ]] || die "--strikes must be a number from 1 to 99 (got '$WATCHDOG_STRIKES')"
[[ "$KIOSK_USER" =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] || die "--user must be a plain user name (got '$KIOSK_USER')"
[[ "$KIOSK_USER" != root ]] || die "the kiosk must not run as root"

# The nightly reboot: a minute inside the window, the same one every night for this Pi and a
# different one for its neighbours (from a hash of /etc/machine-id), so that a building's
# screens do not all reboot and reconnect at once.
reboot_time=""
if [[ -n "$REBOOT_WINDOW" ]]; then
  [[ "$REBOOT_WINDOW" =~ ^([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-3]):([0-5][0-9])$ ]] ||
    die "--reboot-window must look like 03:00-04:00 (got '$REBOOT_WINDOW')"
  start=$((10#${BASH_REMATCH[1]} * 60 + 10#${BASH_REMATCH[2]}))
  end=$((10#${BASH_REMATCH[3]} * 60 + 10#${BASH_REMATCH[4]}))
  length=$(((end - start + 1440) % 1440)) # a window may cross midnight: 23:30-00:30
  ((length > 0)) || die "--reboot-window $REBOOT_WINDOW is empty"
  machine_id="$(cat "$ROOT/etc/machine-id" 2>/dev/null || cat "$ROOT/etc/hostname" 2>/dev/null || true)"
  hash="$(printf '%s' "$machine_id" | cksum)"
  minute=$(((start + ${hash%% *} % length) % 1440))
  printf -v reboot_time '%02d:%02d' $((minute / 60)) $((minute % 60))
fi

# -- what this run does, and its log ---------------------------------------------------------------
plan=()
if ((DRY)); then
  plan+=("# signage kiosk install under $ROOT: nothing was run; 'run:' lines are what would run")
fi
note() { plan+=("$*"); }

# Run a command, or in a fake root only write down that it would run.
run() {
  local arg line=""
  for arg in "$@"; do
    if [[ "$arg" =~ ^[A-Za-z0-9_./:=,+@%-]+$ ]]; then line+=" $arg"; else line+=" '${arg//\'/\'\\\'\'}'"; fi
  done
  note "run:$line"
  ((DRY)) && return 0
  "$@"
}

# The manifest lists what this kit created (f file, l link, d directory), so that uninstall.sh
# removes exactly that: nothing it did not create, nothing left behind.
declare -A manifest=()
if [[ -r "$ROOT$STATE/manifest" ]]; then
  while IFS=$'\t' read -r kind path; do
    [[ -n "$path" ]] && manifest["$path"]="$kind"
  done <"$ROOT$STATE/manifest"
fi
changed_units=0

owner_ok() { # path user group: the owner matches (a fake root cannot have our users: skip)
  ((DRY)) && return 0
  [[ "$(stat -c %U:%G "$1")" == "$2:$3" ]]
}

ensure_dir() { # path mode user group: create each missing level
  local dir="$1" mode="$2" user="$3" group="$4" sofar="" part
  local -a parts
  IFS=/ read -r -a parts <<<"${dir#/}"
  for part in "${parts[@]}"; do
    sofar+="/$part"
    [[ -d "$ROOT$sofar" ]] && continue
    mkdir -m "$mode" "$ROOT$sofar"
    ((DRY)) || chown "$user:$group" "$ROOT$sofar"
    manifest["$sofar"]=d
    note "mkdir: $sofar ($mode $user:$group)"
  done
}

# Install SRC as DEST unless DEST already has that content, mode and owner.
put_file() { # src dest mode user group
  local src="$1" dest="$2" mode="$3" user="$4" group="$5" full="$ROOT$2"
  ensure_dir "${dest%/*}" 0755 "$user" "$group"
  if [[ -f "$full" && ! -L "$full" ]] && cmp -s "$src" "$full" &&
    [[ "$(stat -c %a "$full")" == "${mode#0}" ]] && owner_ok "$full" "$user" "$group"; then
    note "keep: $dest" # (a file that was there before, identical, is not ours to remove)
    return 0
  fi
  # A file that was there before us (another autostart, say) is kept for uninstall.sh.
  if [[ -e "$full" && ! -v "manifest[$dest]" && ! -e "$ROOT$STATE/backup$dest" ]]; then
    ensure_dir "$STATE/backup${dest%/*}" 0700 root root
    cp -a "$full" "$ROOT$STATE/backup$dest"
    note "backup: $dest"
  fi
  rm -f "$full"
  install -m "$mode" "$src" "$full"
  ((DRY)) || chown "$user:$group" "$full"
  manifest["$dest"]=f
  note "write: $dest ($mode $user:$group)"
  [[ "$dest" != "$UNITS"/* ]] || changed_units=1
}

put_link() { # target dest
  local target="$1" dest="$2" full="$ROOT$2"
  # (-ef: the link leads to the target; no readlink process for each of the cursor names)
  if [[ -L "$full" && "$full" -ef "$ROOT${dest%/*}/$target" ]]; then
    note "keep: $dest"
    return 0
  fi
  ln -sfn "$target" "$full"
  manifest["$dest"]=l
  note "link: $dest -> $target"
}

remove_file() { # dest: one of ours that this configuration no longer wants
  local dest="$1"
  [[ -e "$ROOT$dest" || -L "$ROOT$dest" ]] || return 0
  rm -f "$ROOT$dest"
  unset "manifest[$dest]"
  note "remove: $dest"
  [[ "$dest" != "$UNITS"/* ]] || changed_units=1
}

tmp="$(mktemp -d)"
# On a failure half-way (apt-get without network, say), still record what was created, so
# that uninstall.sh can remove it.
on_exit() {
  local status=$?
  if ((status != 0 && ${#manifest[@]})); then
    ensure_dir "$STATE" 0755 root root
    for path in "${!manifest[@]}"; do
      printf '%s\t%s\n' "${manifest[$path]}" "$path"
    done | sort -k2 >"$ROOT$STATE/manifest"
    echo "install.sh: stopped half-way; $STATE/manifest lists what was created" >&2
  fi
  rm -rf "$tmp"
}
trap on_exit EXIT

# Copy a template, replacing @KEY@ with values: render SRC KEY=VALUE... (prints the new path).
render() {
  local src="$1" out content pair
  shift
  out="$tmp/${src##*/}.$RANDOM"
  content="$(<"$src")"
  for pair in "$@"; do
    content="${content//"@${pair%%=*}@"/"${pair#*=}"}"
  done
  printf '%s\n' "$content" >"$out"
  printf '%s\n' "$out"
}

installed() { # package: installed according to dpkg's status file (no dpkg call: works in a fake root)
  [[ -r "$ROOT/var/lib/dpkg/status" ]] || return 1
  awk -v p="$1" '
    /^Package: / { name = $2 }
    /^Status: / && name == p && $0 ~ / installed$/ { found = 1 }
    /^$/ { name = "" }
    END { exit !found }' "$ROOT/var/lib/dpkg/status"
}

# -- 1. the operating system ---------------------------------------------------------------------
# Bookworm and later run labwc on Wayland; the LXDE autostart of older releases is ignored there.
codename="$(sed -n 's/^VERSION_CODENAME=//p' "$ROOT/etc/os-release" 2>/dev/null | tr -d '"' || true)"
case "$codename" in
  buster | bullseye) die "Raspberry Pi OS $codename is too old: this kit needs Bookworm or later (labwc)" ;;
  "") say "warning: cannot tell the OS release from /etc/os-release; assuming Bookworm or later" ;;
esac

# The labwc session to log into: Raspberry Pi OS's own (its panel stays under the full-screen
# browser), else plain labwc (Raspberry Pi OS Lite, once the packages below are in).
session="${given[SESSION]:-}"
need_desktop=0
if [[ -z "$session" ]]; then
  for candidate in rpd-labwc LXDE-pi-labwc labwc; do
    if [[ -f "$ROOT/usr/share/wayland-sessions/$candidate.desktop" ]]; then
      session="$candidate"
      break
    fi
  done
  if [[ -z "$session" ]]; then
    session=labwc
    need_desktop=1
  fi
fi
[[ "$session" =~ ^[A-Za-z0-9._-]+$ ]] || die "--session must be a session name (got '$session')"

# -- 2. packages ---------------------------------------------------------------------------------
# Chromium (Raspberry Pi OS names it chromium-browser on Bookworm, chromium later), wlr-randr for
# rotation, curl for the server check, python3 for the watchdog's look into the page.
if installed chromium || installed chromium-browser; then
  chromium_pkg=""
elif [[ "$codename" == bookworm ]]; then
  chromium_pkg=chromium-browser
else
  chromium_pkg=chromium
fi
wanted=(wlr-randr curl python3)
[[ -n "$chromium_pkg" ]] && wanted=("$chromium_pkg" "${wanted[@]}")
((need_desktop)) && wanted+=(labwc lightdm)
missing=()
for pkg in "${wanted[@]}"; do
  installed "$pkg" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  run apt-get update
  run env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
fi
if ((need_desktop)); then
  # Raspberry Pi OS Lite boots to a console: boot to the display manager instead.
  run systemctl set-default graphical.target
fi

# -- 3. the kiosk user -----------------------------------------------------------------------------
# A user of its own with no password (useradd leaves it locked): the browser runs with no rights
# over the rest of the Pi, and nobody can log in as it over SSH. video/render/input: the GPU and
# a touch screen.
user_line="$(grep -E "^$KIOSK_USER:" "$ROOT/etc/passwd" 2>/dev/null || true)"
created_user=0
if [[ -z "$user_line" ]]; then
  groups=()
  for g in video render input; do
    grep -qE "^$g:" "$ROOT/etc/group" 2>/dev/null && groups+=("$g")
  done
  group_list="$(IFS=,; printf '%s' "${groups[*]}")"
  run useradd --create-home --user-group ${group_list:+--groups "$group_list"} \
    --comment "signage kiosk" --shell /bin/bash "$KIOSK_USER"
  created_user=1
  home="/home/$KIOSK_USER"
else
  home="$(cut -d: -f6 <<<"$user_line")"
fi
if ((DRY)); then
  user_group="$KIOSK_USER" # the fake root has no such user: ownership is not applied there
else
  user_group="$(id -gn "$KIOSK_USER")"
fi
ensure_dir "$home" 0700 "$KIOSK_USER" "$user_group"

# -- 4. the config file ----------------------------------------------------------------------------
# One file the scripts read. Readable by the kiosk user, not by everyone: a display URL in it
# is the display's credential.
put_file "$(render "$kit/kiosk.conf" LIB_DIR="$LIB" SERVER_URL="$url" ROTATION="$ROTATION" \
  OUTPUT="$OUTPUT" REBOOT_WINDOW="$REBOOT_WINDOW" DEBUG_PORT="$DEBUG_PORT" \
  WATCHDOG_STRIKES="$WATCHDOG_STRIKES")" "$CONF" 0640 root "$user_group"

# -- 5. the scripts, the waiting page, and a copy of this kit ----------------------------------------
for script in kiosk-session.sh display-setup.sh browser.sh wait-for-server.sh watchdog.sh \
  reboot-if-due.sh cdp-probe.py; do
  put_file "$files/$script" "$LIB/$script" 0755 root root
done
put_file "$files/lib.sh" "$LIB/lib.sh" 0644 root root
put_file "$files/waiting.html" "$SHARE/waiting.html" 0644 root root
# The kit itself, so that the Pi can re-apply its config or uninstall without the checkout.
put_file "$kit/install.sh" "$LIB/kit/install.sh" 0755 root root
put_file "$kit/uninstall.sh" "$LIB/kit/uninstall.sh" 0755 root root
put_file "$kit/kiosk.conf" "$LIB/kit/kiosk.conf" 0644 root root
for f in "$files"/*; do
  mode=0644
  [[ -x "$f" ]] && mode=0755
  put_file "$f" "$LIB/kit/files/${f##*/}" "$mode" root root
done

# -- 6. the labwc session of the kiosk user --------------------------------------------------------
# labwc runs ~/.config/labwc/autostart when the session starts: that starts our session script
# (screen set-up, then the Chromium loop). Raspberry Pi OS merges it with the system autostart.
ensure_dir "$home/.config/labwc" 0755 "$KIOSK_USER" "$user_group"
put_file "$(render "$files/autostart" LIB_DIR="$LIB")" "$home/.config/labwc/autostart" 0644 "$KIOSK_USER" "$user_group"
put_file "$files/environment" "$home/.config/labwc/environment" 0644 "$KIOSK_USER" "$user_group"

# -- 7. no cursor ------------------------------------------------------------------------------------
# A cursor theme whose cursors are a single transparent pixel, chosen for labwc (environment
# above) and as the user's default theme (what Chromium falls back to). unclutter is X11-only.
theme="$home/.icons/signage-blank"
ensure_dir "$theme/cursors" 0755 "$KIOSK_USER" "$user_group"
# Xcursor file: header, one table-of-contents entry, one 1x1 image chunk whose pixel is 0 (ARGB).
printf 'Xcur\x10\x00\x00\x00\x00\x00\x01\x00\x01\x00\x00\x00\x02\x00\xfd\xff\x18\x00\x00\x00\x1c\x00\x00\x00\x24\x00\x00\x00\x02\x00\xfd\xff\x18\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00' >"$tmp/blank-cursor"
put_file "$tmp/blank-cursor" "$theme/cursors/left_ptr" 0644 "$KIOSK_USER" "$user_group"
for name in default arrow top_left_arrow pointer hand1 hand2 text xterm ibeam wait watch progress \
  left_ptr_watch half-busy crosshair cross move fleur grab grabbing openhand closedhand dnd-move \
  not-allowed no-drop crossed_circle help question_arrow context-menu cell vertical-text alias \
  copy all-scroll col-resize row-resize sb_h_double_arrow sb_v_double_arrow n-resize e-resize \
  s-resize w-resize ne-resize nw-resize se-resize sw-resize ew-resize ns-resize nesw-resize \
  nwse-resize top_side bottom_side left_side right_side top_left_corner top_right_corner \
  bottom_left_corner bottom_right_corner zoom-in zoom-out; do
  put_link left_ptr "$theme/cursors/$name"
done
printf '[Icon Theme]\nName=signage-blank\nComment=Transparent cursors for the signage kiosk\n' >"$tmp/index.theme"
put_file "$tmp/index.theme" "$theme/index.theme" 0644 "$KIOSK_USER" "$user_group"
printf '[Icon Theme]\nInherits=signage-blank\n' >"$tmp/default.theme"
ensure_dir "$home/.icons/default" 0755 "$KIOSK_USER" "$user_group"
put_file "$tmp/default.theme" "$home/.icons/default/index.theme" 0644 "$KIOSK_USER" "$user_group"

# -- 8. log in automatically -----------------------------------------------------------------------
# lightdm reads lightdm.conf.d/*.conf and then lightdm.conf, which wins: an autologin set there
# (raspi-config, the Imager) is commented out with a mark, so that ours applies and
# uninstall.sh can put it back exactly.
put_file "$(render "$files/lightdm-autologin.conf" KIOSK_USER="$KIOSK_USER" SESSION="$session")" \
  "$LIGHTDM/lightdm.conf.d/60-signage-kiosk.conf" 0644 root root
if [[ -f "$ROOT$LIGHTDM/lightdm.conf" ]]; then
  sed -E "s/^(autologin-user|autologin-session)=/${MARK}&/" "$ROOT$LIGHTDM/lightdm.conf" >"$tmp/lightdm.conf"
  if cmp -s "$tmp/lightdm.conf" "$ROOT$LIGHTDM/lightdm.conf"; then
    note "keep: $LIGHTDM/lightdm.conf"
  else
    cat "$tmp/lightdm.conf" >"$ROOT$LIGHTDM/lightdm.conf" # in place: keeps its owner and mode
    note "edit: $LIGHTDM/lightdm.conf (autologin lines marked ${MARK% })"
  fi
fi

# -- 9. the watchdog and the nightly reboot --------------------------------------------------------
# System timers (they run without a session), the watchdog as the kiosk user.
put_file "$(render "$files/signage-kiosk-watchdog.service" LIB_DIR="$LIB" KIOSK_USER="$KIOSK_USER")" \
  "$UNITS/signage-kiosk-watchdog.service" 0644 root root
put_file "$files/signage-kiosk-watchdog.timer" "$UNITS/signage-kiosk-watchdog.timer" 0644 root root
if [[ -n "$reboot_time" ]]; then
  put_file "$(render "$files/signage-kiosk-reboot.service" LIB_DIR="$LIB")" \
    "$UNITS/signage-kiosk-reboot.service" 0644 root root
  put_file "$(render "$files/signage-kiosk-reboot.timer" REBOOT_TIME="$reboot_time" REBOOT_WINDOW="$REBOOT_WINDOW")" \
    "$UNITS/signage-kiosk-reboot.timer" 0644 root root
elif [[ -e "$ROOT$UNITS/signage-kiosk-reboot.timer" ]]; then
  run systemctl disable --now signage-kiosk-reboot.timer
  remove_file "$UNITS/signage-kiosk-reboot.timer"
  remove_file "$UNITS/signage-kiosk-reboot.service"
fi
((changed_units)) && run systemctl daemon-reload
run systemctl enable --now signage-kiosk-watchdog.timer
[[ -n "$reboot_time" ]] && run systemctl enable --now signage-kiosk-reboot.timer

# -- 10. what uninstall.sh needs to know -------------------------------------------------------------
ensure_dir "$STATE" 0755 root root
printf '%s\n' "$KIOSK_USER" >"$tmp/user"
put_file "$tmp/user" "$STATE/user" 0644 root root
if ((created_user)) || [[ -e "$ROOT$STATE/created-user" ]]; then
  # This kit made the user, so uninstall.sh may delete it (never a user that was there before).
  printf '%s\n' "$KIOSK_USER" >"$tmp/created-user"
  put_file "$tmp/created-user" "$STATE/created-user" 0644 root root
fi
if ((${#missing[@]})) || [[ -e "$ROOT$STATE/packages" ]]; then
  # Packages this kit installed: `uninstall.sh --purge-packages` removes these and no others.
  { cat "$ROOT$STATE/packages" 2>/dev/null || true; printf '%s\n' "${missing[@]}"; } | sed '/^$/d' | sort -u >"$tmp/packages"
  put_file "$tmp/packages" "$STATE/packages" 0644 root root
fi
for path in "${!manifest[@]}"; do
  printf '%s\t%s\n' "${manifest[$path]}" "$path"
done | sort -k2 >"$tmp/manifest"
put_file "$tmp/manifest" "$STATE/manifest" 0644 root root

mkdir -p "$ROOT/var/log"
printf '%s\n' "${plan[@]}" >"$ROOT$LOG"

say "signage kiosk installed${ROOT:+ under $ROOT (nothing was run: see $ROOT$LOG)}"
say "  $mode_text: $(mask_url "$url")"
say "  user $KIOSK_USER, session $session, rotation $ROTATION, debug port 127.0.0.1:$DEBUG_PORT"
if [[ -n "$reboot_time" ]]; then
  say "  nightly reboot at $reboot_time (window $REBOOT_WINDOW)"
else
  say "  no nightly reboot"
fi
if [[ "$url" == http://* ]]; then
  say "  plain HTTP: Chromium treats $(printf '%s' "$url" | grep -oE '^http://[^/]+') as secure so that the page's service worker runs"
fi
((DRY)) || say "Reboot to start the kiosk: sudo reboot"
