"""The Raspberry Pi kiosk kit (kiosk/) and the server deployment files (deploy/).

install.sh and uninstall.sh run for real against a fake Pi root filesystem built in tmp_path
(`--root`): they write their files there and only log the commands (apt-get, useradd,
systemctl) they would run. The scripts they install then run from that tree, with fake
`wlr-randr` on the PATH, a real HTTP server on loopback, and a real headless Chromium for the
watchdog's probe and the waiting page. Nothing here needs a Pi, labwc or a running systemd.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from signage import config as settings
from tests.conftest import CHROMIUM_ARGS, chromium_path

REPO = Path(__file__).resolve().parent.parent
KIT = REPO / "kiosk"
DEPLOY = REPO / "deploy"
LIB = "usr/local/lib/signage-kiosk"
INSTALL_LOG = "var/log/signage-kiosk-install.log"
UNINSTALL_LOG = "var/log/signage-kiosk-uninstall.log"
MACHINE_ID = "5c1d6e0b9a8f4e3d8c7b6a5f4e3d2c1b"
CREDENTIAL = "Zq8xVw3kLmN0pR5tS7uY9aBcDeFgHiJk"


# -- helpers ---------------------------------------------------------------------------------
def fake_pi(root: Path, *, machine_id: str = MACHINE_ID, codename: str = "bookworm") -> Path:
    """A Raspberry Pi OS root as far as the installer looks: users, lightdm, sessions, dpkg."""
    for d in (
        "etc/lightdm",
        "etc/systemd/system",
        "usr/local/lib",
        "usr/local/share",
        "usr/share/wayland-sessions",
        "var/lib/dpkg",
        "var/log",
        "home/pi",
    ):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "etc/os-release").write_text(
        f'PRETTY_NAME="Debian GNU/Linux 12 ({codename})"\nVERSION_CODENAME={codename}\nID=debian\n'
    )
    (root / "etc/machine-id").write_text(machine_id + "\n")
    (root / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/bash\npi:x:1000:1000:,,,:/home/pi:/bin/bash\n"
    )
    (root / "etc/group").write_text("root:x:0:\nvideo:x:44:pi\nrender:x:105:pi\npi:x:1000:\n")
    # What raspi-config (or the Imager) leaves: the first user logged in automatically.
    (root / "etc/lightdm/lightdm.conf").write_text(
        "[LightDM]\n\n[Seat:*]\ngreeter-session=pi-greeter-labwc\n"
        "user-session=LXDE-pi-labwc\nautologin-user=pi\nautologin-session=LXDE-pi-labwc\n"
        "#autologin-user-timeout=0\n"
    )
    (root / "usr/share/wayland-sessions/LXDE-pi-labwc.desktop").write_text(
        "[Desktop Entry]\nName=LXDE-pi-labwc\nExec=/usr/bin/labwc-pi\n"
    )
    (root / "var/lib/dpkg/status").write_text(
        "Package: curl\nStatus: install ok installed\n\n"
        "Package: python3\nStatus: install ok installed\n\n"
        "Package: wlr-randr\nStatus: deinstall ok config-files\n\n"
    )
    return root


@pytest.fixture
def pi(tmp_path: Path) -> Path:
    return fake_pi(tmp_path / "root")


def install(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run kiosk/install.sh against the fake root."""
    result = subprocess.run(
        ["bash", str(KIT / "install.sh"), "--root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def uninstall(root: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["bash", str(KIT / "uninstall.sh"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SIGNAGE_KIOSK_ROOT": str(root)},
    )
    assert result.returncode == 0, result.stderr
    return result


def tree(root: Path, exclude: tuple[str, ...] = ()) -> dict[str, tuple]:
    """Every path under root with its kind, mode and content hash (or link target)."""
    out: dict[str, tuple] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel in exclude:
            continue
        st = path.lstat()
        if path.is_symlink():
            out[rel] = ("link", os.readlink(path))
        elif path.is_dir():
            out[rel] = ("dir", oct(st.st_mode & 0o7777))
        else:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            out[rel] = ("file", oct(st.st_mode & 0o7777), digest)
    return out


def log_lines(root: Path, name: str = INSTALL_LOG) -> list[str]:
    return (root / name).read_text().splitlines()


def commands(root: Path, name: str = INSTALL_LOG) -> list[str]:
    return [line[len("run: ") :] for line in log_lines(root, name) if line.startswith("run: ")]


def conf(root: Path) -> dict[str, str]:
    pairs = re.findall(r"^([A-Z_]+)=(.*)$", (root / "etc/signage-kiosk.conf").read_text(), re.M)
    return dict(pairs)


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def run_script(root: Path, name: str, *args: str, env: dict | None = None, timeout: float = 30):
    """Run one of the installed scripts from the fake root, as the kiosk user would."""
    home = root / "home/kiosk"
    return subprocess.run(
        ["bash", str(root / LIB / name), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={
            **os.environ,
            "HOME": str(home),
            "SIGNAGE_KIOSK_CONF": str(root / "etc/signage-kiosk.conf"),
            **(env or {}),
        },
    )


def wait_until(predicate: Callable[[], object], timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- shellcheck ------------------------------------------------------------------------------
def shell_scripts() -> list[Path]:
    found = []
    for base in (KIT, DEPLOY):
        for path in sorted(base.rglob("*")):
            if not path.is_file():
                continue
            first = path.read_bytes()[:64]
            if path.suffix == ".sh" or first.startswith(b"#!/usr/bin/env bash"):
                found.append(path)
    return found


def test_shellcheck_passes_on_every_script(tmp_path):
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("shellcheck is missing in CI (apt-get install shellcheck)")
        pytest.skip("shellcheck is not installed")
    scripts = shell_scripts()
    assert {p.name for p in scripts} >= {
        "install.sh",
        "uninstall.sh",
        "browser.sh",
        "wait-for-server.sh",
        "watchdog.sh",
        "display-setup.sh",
        "kiosk-session.sh",
        "reboot-if-due.sh",
        "lib.sh",
    }
    result = subprocess.run(
        [shellcheck, "--external-sources", *map(str, scripts)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # labwc runs the autostart with sh: the installed file must be valid sh too.
    root = fake_pi(tmp_path / "root")
    install(root, "https://signage.example.com/")
    autostart = root / "home/kiosk/.config/labwc/autostart"
    result = subprocess.run([shellcheck, "--shell=sh", str(autostart)], capture_output=True)
    assert result.returncode == 0, result.stdout


def test_every_script_uses_strict_mode():
    for path in shell_scripts():
        if path.name == "lib.sh":  # sourced: inherits the caller's
            continue
        assert "set -euo pipefail" in path.read_text(), path


# -- install.sh ------------------------------------------------------------------------------
def test_install_writes_the_kiosk(pi):
    result = install(pi, "--reboot-window", "03:00-04:00", "http://signage.lan:8000/")
    assert "pairing code" in result.stdout

    values = conf(pi)
    assert values == {
        "SERVER_URL": "http://signage.lan:8000/",
        "ROTATION": "0",
        "OUTPUT": "",
        "REBOOT_WINDOW": "03:00-04:00",
        "DEBUG_PORT": "9222",
        "WATCHDOG_STRIKES": "3",
    }
    assert mode(pi / "etc/signage-kiosk.conf") == 0o640  # a display URL is a credential

    for script in (
        "kiosk-session.sh",
        "display-setup.sh",
        "browser.sh",
        "wait-for-server.sh",
        "watchdog.sh",
        "reboot-if-due.sh",
        "cdp-probe.py",
    ):
        path = pi / LIB / script
        assert path.read_bytes() == (KIT / "files" / script).read_bytes()
        assert mode(path) == 0o755, script
    assert mode(pi / LIB / "lib.sh") == 0o644
    assert mode(pi / LIB / "kit/install.sh") == 0o755
    assert mode(pi / LIB / "kit/uninstall.sh") == 0o755

    # The labwc autostart starts the session script, in the background (labwc waits for it).
    autostart = (pi / "home/kiosk/.config/labwc/autostart").read_text()
    assert "/usr/local/lib/signage-kiosk/kiosk-session.sh >/dev/null 2>&1 &" in autostart
    assert "@" not in autostart.replace(">/dev/null 2>&1 &", "")
    env = (pi / "home/kiosk/.config/labwc/environment").read_text()
    assert "XCURSOR_THEME=signage-blank" in env
    assert mode(pi / "home/kiosk") == 0o700

    # The waiting page, where browser.sh looks for it.
    page = (pi / "usr/local/share/signage-kiosk/waiting.html").read_text()
    assert "/healthz" in page and "location.replace(target)" in page

    # Autologin: our drop-in, and raspi-config's lines in lightdm.conf marked, not deleted.
    dropin = (pi / "etc/lightdm/lightdm.conf.d/60-signage-kiosk.conf").read_text()
    assert "[Seat:*]" in dropin
    assert "autologin-user=kiosk\n" in dropin
    assert "autologin-session=LXDE-pi-labwc\n" in dropin
    lightdm = (pi / "etc/lightdm/lightdm.conf").read_text()
    assert "\n#signage-kiosk# autologin-user=pi\n" in lightdm
    assert "\n#signage-kiosk# autologin-session=LXDE-pi-labwc\n" in lightdm
    assert "\nautologin-user=" not in lightdm

    units = pi / "etc/systemd/system"
    watchdog = (units / "signage-kiosk-watchdog.service").read_text()
    assert "User=kiosk\n" in watchdog
    assert "ExecStart=/usr/local/lib/signage-kiosk/watchdog.sh\n" in watchdog
    timer = (units / "signage-kiosk-watchdog.timer").read_text()
    assert "OnUnitActiveSec=1min" in timer and "WantedBy=timers.target" in timer
    reboot = (units / "signage-kiosk-reboot.service").read_text()
    assert "ExecStart=/usr/local/lib/signage-kiosk/reboot-if-due.sh" in reboot
    assert re.search(
        r"^OnCalendar=\*-\*-\* 03:\d\d:00$",
        (units / "signage-kiosk-reboot.timer").read_text(),
        re.M,
    )
    for unit in units.iterdir():
        assert "@" not in unit.read_text(), unit
        assert mode(unit) == 0o644

    # A transparent Xcursor: magic, one image of 1x1 pixels, and that pixel fully transparent.
    cursor = (pi / "home/kiosk/.icons/signage-blank/cursors/left_ptr").read_bytes()
    assert cursor[:4] == b"Xcur"
    _, _, _, ntoc = struct.unpack("<4sIII", cursor[:16])
    _, _, position = struct.unpack("<III", cursor[16:28])
    size, kind, _, _, width, height = struct.unpack("<IIIIII", cursor[position : position + 24])
    assert (ntoc, size, kind, width, height) == (1, 36, 0xFFFD0002, 1, 1)
    assert cursor[position + 36 :] == b"\0\0\0\0" and len(cursor) == position + 40
    assert os.readlink(pi / "home/kiosk/.icons/signage-blank/cursors/pointer") == "left_ptr"
    assert "Inherits=signage-blank" in (pi / "home/kiosk/.icons/default/index.theme").read_text()

    # Nothing ran: the log says what would. wlr-randr is only "deinstalled" in dpkg's status.
    assert commands(pi) == [
        "apt-get update",
        "env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium-browser wlr-randr",
        "useradd --create-home --user-group --groups video,render --comment 'signage kiosk'"
        " --shell /bin/bash kiosk",
        "systemctl daemon-reload",
        "systemctl enable --now signage-kiosk-watchdog.timer",
        "systemctl enable --now signage-kiosk-reboot.timer",
    ]
    written = {line.split()[1] for line in log_lines(pi) if line.startswith("write: ")}
    assert "/etc/signage-kiosk.conf" in written
    assert "/home/kiosk/.config/labwc/autostart" in written


def test_installs_chromium_by_its_current_name_and_lite_gets_a_desktop(tmp_path):
    root = fake_pi(tmp_path / "root", codename="trixie")
    (root / "usr/share/wayland-sessions/LXDE-pi-labwc.desktop").unlink()  # Raspberry Pi OS Lite
    install(root, "https://signage.example.com/")
    assert "apt-get install -y chromium wlr-randr labwc lightdm" in commands(root)[1]
    assert "systemctl set-default graphical.target" in commands(root)
    dropin = (root / "etc/lightdm/lightdm.conf.d/60-signage-kiosk.conf").read_text()
    assert "autologin-session=labwc\n" in dropin


def test_second_run_changes_nothing(pi):
    install(
        pi, "--rotation", "90", "--reboot-window", "03:00-04:00", "https://signage.example.com/"
    )
    first_tree = tree(pi, exclude=(INSTALL_LOG,))
    first_commands = commands(pi)

    install(pi)  # no URL, no options: everything comes from /etc/signage-kiosk.conf
    assert tree(pi, exclude=(INSTALL_LOG,)) == first_tree
    changes = [
        line
        for line in log_lines(pi)
        if line.split(":")[0] in ("write", "mkdir", "link", "edit", "backup", "remove")
    ]
    assert changes == []
    # The same commands, except the unit reload: no unit file changed.
    assert commands(pi) == [c for c in first_commands if c != "systemctl daemon-reload"]
    assert (pi / "etc/lightdm/lightdm.conf").read_text().count("#signage-kiosk#") == 2

    # A third run with the same options given again: still nothing written.
    install(
        pi, "--rotation", "90", "--reboot-window", "03:00-04:00", "https://signage.example.com/"
    )
    assert tree(pi, exclude=(INSTALL_LOG,)) == first_tree


def test_uninstall_leaves_nothing_behind(pi):
    before = tree(pi)
    install(pi, "--reboot-window", "03:00-04:00", "http://signage.lan:8000/")
    install(pi)
    result = uninstall(pi)
    assert "removed" in result.stdout
    # The same tree as before install, but for uninstall's own record of what it did.
    assert tree(pi, exclude=(UNINSTALL_LOG,)) == before
    assert commands(pi, UNINSTALL_LOG) == [
        "systemctl disable --now signage-kiosk-watchdog.timer signage-kiosk-reboot.timer",
        "loginctl terminate-user kiosk",
        "userdel --remove kiosk",
        "systemctl daemon-reload",
    ]
    # Nothing to undo a second time.
    assert "not installed" in uninstall(pi).stdout


def test_uninstall_restores_what_install_replaced_and_keeps_an_existing_user(pi):
    autostart = pi / "home/pi/.config/labwc/autostart"
    autostart.parent.mkdir(parents=True)
    autostart.write_text("swayidle -w timeout 600 'wlopm --off \\*' resume 'wlopm --on \\*' &\n")
    before = tree(pi)
    install(pi, "--user", "pi", "https://signage.example.com/")
    assert "kiosk-session.sh" in autostart.read_text()
    assert not any(c.startswith("useradd") for c in commands(pi))
    assert "User=pi\n" in (pi / "etc/systemd/system/signage-kiosk-watchdog.service").read_text()

    uninstall(pi, "--purge-packages")
    assert tree(pi, exclude=(UNINSTALL_LOG,)) == before
    planned = commands(pi, UNINSTALL_LOG)
    assert not any("userdel" in c for c in planned)  # the kit did not create pi
    assert (
        "env DEBIAN_FRONTEND=noninteractive apt-get purge -y chromium-browser wlr-randr" in planned
    )


def test_a_failed_install_can_still_be_uninstalled(pi):
    # Half-way through, the units folder cannot be created (here: a file is in the way).
    shutil.rmtree(pi / "etc/systemd")
    (pi / "etc/systemd").write_text("")
    before = tree(pi)
    result = install(pi, "https://signage.example.com/", check=False)
    assert result.returncode != 0
    assert "stopped half-way" in result.stderr
    uninstall(pi)
    assert tree(pi, exclude=(UNINSTALL_LOG,)) == before


@pytest.mark.parametrize(
    ("url", "expected_text"),
    [
        ("https://signage.example.com", "pairing code"),
        (f"https://signage.example.com/kiosk/{CREDENTIAL}", "opens that display directly"),
    ],
)
def test_server_url_and_display_url(pi, url, expected_text):
    result = install(pi, url)
    assert expected_text in result.stdout
    assert conf(pi)["SERVER_URL"] == (url + "/" if url.count("/") == 2 else url)
    # The credential is in the config (the Pi needs it), never on the terminal or in the log.
    assert CREDENTIAL not in result.stdout + result.stderr
    assert CREDENTIAL not in (pi / INSTALL_LOG).read_text()


@pytest.mark.parametrize(
    "url",
    [
        "ftp://signage.example.com/",
        "signage.example.com",
        "http://",
        "https://signage.example.com/a b",
        "javascript:alert(1)",
        "http://user:secret@signage.example.com/",
        "https://signage.example.com/$(reboot)",
    ],
)
def test_a_bad_url_is_refused_and_nothing_is_written(pi, url):
    before = tree(pi)
    result = install(pi, url, check=False)
    assert result.returncode == 2
    assert "must start with http:// or https://" in result.stderr
    assert tree(pi) == before


def test_bad_options_are_refused(pi):
    before = tree(pi)
    for args in (
        ("--rotation", "45"),
        ("--reboot-window", "3am-4am"),
        ("--reboot-window", "03:00-03:00"),
        ("--debug-port", "80"),
        ("--user", "root"),
        ("--bogus",),
    ):
        result = install(pi, *args, "https://signage.example.com/", check=False)
        assert result.returncode == 2, args
        assert result.stderr.startswith("install.sh: error:"), args
    assert install(pi, check=False).returncode == 2  # no URL and no config yet
    assert tree(pi) == before


# -- the Chromium launcher -------------------------------------------------------------------
EXPECTED_FLAGS = [
    "--kiosk",
    "--noerrdialogs",
    "--disable-session-crashed-bubble",
    "--hide-crash-restore-bubble",
    "--no-first-run",
    "--ozone-platform=wayland",
    "--start-maximized",
    "--disable-pinch",
    "--overscroll-history-navigation=0",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=9333",
]


@pytest.mark.parametrize(
    ("url", "insecure_origin"),
    [
        ("http://signage.lan:8000/", "http://signage.lan:8000"),
        (f"http://10.1.2.3/kiosk/{CREDENTIAL}", "http://10.1.2.3"),
        ("https://signage.example.com/", None),
    ],
)
def test_chromium_command_line(pi, url, insecure_origin):
    install(pi, "--debug-port", "9333", url)
    result = run_script(pi, "browser.sh", "--print-command", env={"SIGNAGE_KIOSK_CHROMIUM": "true"})
    assert result.returncode == 0, result.stderr
    argv = result.stdout.splitlines()
    for flag in EXPECTED_FLAGS:
        assert flag in argv
    profile = pi / "home/kiosk/.local/share/signage-kiosk/chromium"
    assert f"--user-data-dir={profile}" in argv
    insecure = [a for a in argv if a.startswith("--unsafely-treat-insecure-origin-as-secure")]
    if insecure_origin:
        assert insecure == [f"--unsafely-treat-insecure-origin-as-secure={insecure_origin}"]
    else:
        assert insecure == []
    assert argv[-1] == url
    assert "--incognito" not in argv  # pairing lives in the profile's cookies


def test_every_chromium_flag_gives_its_reason():
    text = (KIT / "files/browser.sh").read_text()
    array = text[text.index("  flags=(\n") : text.index("\n  )\n", text.index("  flags=(\n"))]
    lines = [line for line in array.splitlines()[1:] if line.strip()]
    assert len(lines) >= 14
    for line in lines:
        assert re.match(r'^\s+"?--[a-z-]+.*\s# \S', line), line


# -- the screen: rotation and blanking -------------------------------------------------------
@pytest.fixture
def fake_bin(tmp_path: Path) -> Path:
    """A bin folder with a wlr-randr that lists two outputs and records every other call."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "wlr-randr.calls"
    script = bin_dir / "wlr-randr"
    script.write_text(
        "#!/bin/sh\n"
        "if [ $# -eq 0 ]; then\n"
        "  printf 'HDMI-A-1 \"Lobby TV\"\\n  Enabled: yes\\n  Transform: normal\\n'\n"
        "  printf 'HDMI-A-2 \"(none)\"\\n  Enabled: no\\n'\n"
        "  exit 0\n"
        "fi\n"
        f'echo "$*" >>"{calls}"\n'
    )
    script.chmod(0o755)
    return bin_dir


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--rotation", "90"), ["--output HDMI-A-1 --transform 90"]),
        (("--rotation", "270", "--output", "HDMI-A-2"), ["--output HDMI-A-2 --transform 270"]),
        (("--rotation", "0"), []),
    ],
)
def test_rotation_goes_through_wlr_randr(pi, fake_bin, args, expected):
    install(pi, *args, "https://signage.example.com/")
    assert conf(pi)["ROTATION"] == args[1]
    path = f"{fake_bin}:{os.environ['PATH']}"
    result = run_script(pi, "display-setup.sh", env={"PATH": path})
    assert result.returncode == 0, result.stderr
    calls = fake_bin.parent / "wlr-randr.calls"
    assert (calls.read_text().splitlines() if calls.exists() else []) == expected


# -- the nightly reboot ----------------------------------------------------------------------
def reboot_time(tmp_path: Path, machine_id: str, window: str) -> str:
    root = fake_pi(tmp_path / f"root-{machine_id}-{window.replace(':', '')}", machine_id=machine_id)
    install(root, "--reboot-window", window, "https://signage.example.com/")
    timer = (root / "etc/systemd/system/signage-kiosk-reboot.timer").read_text()
    return re.search(r"^OnCalendar=\*-\*-\* (\d\d:\d\d):00$", timer, re.M).group(1)


def minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def test_reboot_time_is_in_the_window_and_staggered_per_device(tmp_path):
    ids = [f"{n:032x}" for n in (1, 2, 3, 4)]
    times = [reboot_time(tmp_path, machine_id, "03:00-04:00") for machine_id in ids]
    assert all(180 <= minutes(t) < 240 for t in times), times
    assert len(set(times)) > 1, times  # neighbours do not reboot at the same minute
    assert reboot_time(tmp_path / "again", ids[0], "03:00-04:00") == times[0]  # stable

    # A window across midnight.
    late = reboot_time(tmp_path, MACHINE_ID, "23:30-00:30")
    assert minutes(late) >= 23 * 60 + 30 or minutes(late) < 30, late


def test_clearing_the_reboot_window_removes_the_timer(pi):
    install(pi, "--reboot-window", "03:00-04:00", "https://signage.example.com/")
    install(pi, "--reboot-window", "")
    assert not (pi / "etc/systemd/system/signage-kiosk-reboot.timer").exists()
    assert not (pi / "etc/systemd/system/signage-kiosk-reboot.service").exists()
    assert "systemctl disable --now signage-kiosk-reboot.timer" in commands(pi)
    assert conf(pi)["REBOOT_WINDOW"] == ""
    manifest = (pi / "var/lib/signage-kiosk/manifest").read_text()
    assert "/etc/systemd/system/signage-kiosk-reboot" not in manifest


# -- waiting for the server ------------------------------------------------------------------
class _Health(http.server.BaseHTTPRequestHandler):
    status = 200
    cors = True

    def do_GET(self):  # noqa: N802 (http.server's name)
        path = self.path.split("?")[0]
        if path == "/healthz":
            body = json.dumps({"status": "ok"} if self.status == 200 else {"error": "x"}).encode()
            self.send_response(self.status)
            self.send_header("Content-Type", "application/json")
            if self.cors:
                self.send_header("Access-Control-Allow-Origin", "*")
        else:
            body = b"<!doctype html><title>kiosk</title><p>floor map"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def health_server() -> Iterator[Callable[..., str]]:
    """Start HTTP servers on loopback answering /healthz; returns a factory giving their URL."""
    servers = []

    def start(status: int = 200, cors: bool = True) -> str:
        handler = type("Handler", (_Health,), {"status": status, "cors": cors})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    try:
        yield start
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def test_wait_for_server(pi, health_server):
    install(pi, "https://signage.example.com/")
    up = health_server()
    started = time.monotonic()
    result = run_script(pi, "wait-for-server.sh", "--timeout", "5", f"{up}/kiosk/{CREDENTIAL}")
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 3

    # A server answering 503 (or a proxy with nothing behind it) is not ready; nobody listening
    # is not either. Both give up when the budget is spent, and never print the credential.
    # (A budget of 1 s with 1 s between tries: two tries. A budget of 0: one try.)
    for url, budget in ((health_server(status=503), "1"), (f"http://127.0.0.1:{free_port()}", "0")):
        started = time.monotonic()
        result = run_script(
            pi,
            "wait-for-server.sh",
            "--timeout",
            budget,
            "--interval",
            "1",
            f"{url}/kiosk/{CREDENTIAL}",
        )
        assert result.returncode == 1
        assert time.monotonic() - started < 8
        assert "did not answer" in result.stderr
        assert CREDENTIAL not in result.stderr
    bad = run_script(pi, "wait-for-server.sh", "--interval", "0.5", up)
    assert bad.returncode == 2 and "whole seconds" in bad.stderr


# -- the watchdog ----------------------------------------------------------------------------
def test_watchdog_restarts_the_browser_after_strikes(pi):
    install(pi, "--debug-port", str(free_port()), "--strikes", "3", "https://signage.example.com/")
    state = pi / "home/kiosk/.local/state/signage-kiosk"
    state.mkdir(parents=True)
    # Stands in for Chromium: alive, but nothing answers on the debugging port. Reaped at once
    # when it ends, as browser.sh reaps the real one (a zombie would still look alive).
    browser = subprocess.Popen(["sleep", "60"])
    threading.Thread(target=browser.wait, daemon=True).start()
    try:
        (state / "chromium.pid").write_text(f"{browser.pid}\n")
        env = {"SIGNAGE_KIOSK_GRACE": "0"}
        for strike in (1, 2):
            result = run_script(pi, "watchdog.sh", env=env)
            assert result.returncode == 0, result.stderr
            assert f"strike {strike} of 3" in result.stderr
            assert "debugging endpoint" in result.stderr
            assert browser.poll() is None
        result = run_script(pi, "watchdog.sh", env=env)
        assert "restarting Chromium" in result.stderr
        wait_until(lambda: browser.poll() is not None, 5, "the browser to be ended")
        assert (state / "watchdog-strikes").read_text().strip() == "0"
        # No browser (the loop is between two rounds): nothing to judge, nothing done.
        result = run_script(pi, "watchdog.sh", env=env)
        assert result.returncode == 0 and result.stderr == ""
    finally:
        if browser.poll() is None:
            browser.kill()
        browser.wait()


def test_watchdog_leaves_a_fresh_browser_alone(pi):
    install(pi, "--debug-port", str(free_port()), "--strikes", "1", "https://signage.example.com/")
    state = pi / "home/kiosk/.local/state/signage-kiosk"
    state.mkdir(parents=True)
    browser = subprocess.Popen(["sleep", "60"])
    try:
        (state / "chromium.pid").write_text(f"{browser.pid}\n")
        result = run_script(pi, "watchdog.sh")  # default grace: 90 s after a (re)start
        assert result.returncode == 0 and result.stderr == ""
        assert browser.poll() is None
    finally:
        browser.kill()
        browser.wait()


# -- with a real headless Chromium -----------------------------------------------------------
@pytest.fixture
def headless(tmp_path: Path) -> Iterator[Callable[[str], int]]:
    """Start headless Chromium on a page with remote debugging; returns the debugging port."""
    chromium = chromium_path()
    if chromium is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("no Chromium in CI (browser tests are never skipped there)")
        pytest.skip("no Chromium to drive")
    procs: list[subprocess.Popen] = []

    def start(url: str) -> int:
        profile = tmp_path / f"profile-{len(procs)}"
        proc = subprocess.Popen(
            [
                chromium,
                "--headless=new",
                *CHROMIUM_ARGS,
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                url,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(proc)
        active = profile / "DevToolsActivePort"
        wait_until(lambda: active.exists() and active.read_text().strip(), 20, "Chromium")
        return int(active.read_text().split()[0])

    try:
        yield start
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def pages(port: int) -> list[dict]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
        return [t for t in json.load(r) if t["type"] == "page"]


def probe(pi: Path, port: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["python3", str(pi / LIB / "cdp-probe.py"), "--port", str(port), "--timeout", "3"],
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.browser
def test_cdp_probe_tells_a_live_page_from_an_error_page(pi, headless, health_server):
    install(pi, "https://signage.example.com/")
    server = health_server()
    port = headless(f"{server}/kiosk/{CREDENTIAL}")
    wait_until(lambda: any(p["title"] == "kiosk" for p in pages(port)), 10, "the page")
    result = probe(pi, port)
    assert result.returncode == 0, result.stdout
    assert result.stdout.startswith("ok: http://127.0.0.1")
    assert CREDENTIAL not in result.stdout

    # Chromium's own error page: /json/list still shows the URL asked for, the page knows better.
    dead = f"http://127.0.0.1:{free_port()}/kiosk/{CREDENTIAL}"
    for page in pages(port):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/json/close/{page['id']}", timeout=5)
    request = urllib.request.Request(f"http://127.0.0.1:{port}/json/new?{dead}", method="PUT")
    urllib.request.urlopen(request, timeout=5)
    result = wait_until(
        lambda: (r := probe(pi, port)).returncode == 1 and "error page" in r.stdout and r,
        10,
        "the error page to be seen",
    )
    assert CREDENTIAL not in result.stdout

    # Nothing listening on the port: the browser is gone or hung.
    result = probe(pi, free_port())
    assert result.returncode == 1 and "does not answer" in result.stdout


@pytest.mark.browser
@pytest.mark.parametrize("cors", [True, False])
def test_waiting_page_goes_to_the_server_once_it_answers(pi, headless, health_server, cors):
    install(pi, "https://signage.example.com/")
    server = health_server(cors=cors)
    target = f"{server}/kiosk/{CREDENTIAL}"
    page = pi / "usr/local/share/signage-kiosk/waiting.html"
    port = headless(
        f"file://{page}?url={urllib.request.quote(target, safe='')}&host=lobby-3&retry=1"
    )
    wait_until(lambda: any(p["url"] == target for p in pages(port)), 15, "the redirect")


@pytest.mark.browser
def test_waiting_page_waits_while_the_server_is_down(pi, headless):
    install(pi, "https://signage.example.com/")
    target = f"http://127.0.0.1:{free_port()}/kiosk/{CREDENTIAL}"
    page = pi / "usr/local/share/signage-kiosk/waiting.html"
    port = headless(f"file://{page}?url={urllib.request.quote(target, safe='')}&retry=1")
    wait_until(lambda: any(p["url"].startswith("file://") for p in pages(port)), 10, "the page")
    # A retry later it is still the waiting page, telling what it waits for.
    deadline = time.monotonic() + 1.3
    while time.monotonic() < deadline:
        assert all(p["url"].startswith("file://") for p in pages(port))
        time.sleep(0.25)
    assert all(p["title"] == "signage: waiting for the server" for p in pages(port))


# -- deploy/ ---------------------------------------------------------------------------------
def test_signage_service_unit():
    unit = (DEPLOY / "signage.service").read_text()
    directives = dict(re.findall(r"^([A-Za-z]+)=(.*)$", unit, re.M))
    assert directives["User"] == "signage"
    assert directives["EnvironmentFile"] == "/etc/signage/signage.env"
    assert directives["ExecStart"].endswith("signage serve --host 127.0.0.1 --port 8000")
    assert directives["Restart"] == "on-failure"
    assert directives["KillSignal"] == "SIGTERM"
    # Above gunicorn's graceful timeout (10 s in signage/cli/serve.py), so kiosks get their 1012.
    assert int(directives["TimeoutStopSec"]) > 10
    assert int(directives["LimitNOFILE"]) >= 65536
    assert directives["NoNewPrivileges"] == "yes"
    assert directives["ProtectSystem"] == "strict"
    assert directives["ReadWritePaths"] == f"{directives['WorkingDirectory']}/instance"
    assert re.search(r'"graceful_timeout": 10\b', (REPO / "signage/cli/serve.py").read_text())


def test_units_pass_systemd_analyze(pi):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    install(pi, "--reboot-window", "03:00-04:00", "https://signage.example.com/")
    units = [
        DEPLOY / "signage.service",
        *sorted((pi / "etc/systemd/system").glob("signage-kiosk-*")),
    ]
    result = subprocess.run(
        [analyze, "verify", "--man=no", *map(str, units)], capture_output=True, text=True
    )
    problems = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if line.strip()
        and "is not executable" not in line
        and "not a directory" not in line
        and "Failed to resolve user" not in line
        and "No such file" not in line
    ]
    assert problems == []


def nginx_location(conf: str, name: str) -> str:
    start = conf.index(f"location {name} {{")
    return conf[start : conf.index("\n    }", start)]


def test_nginx_example(tmp_path):
    conf = (DEPLOY / "nginx-signage.conf").read_text()
    ws = nginx_location(conf, "/ws/")
    assert "proxy_pass http://signage;" in ws
    assert "proxy_http_version 1.1;" in ws
    assert "proxy_set_header Upgrade $http_upgrade;" in ws
    assert "proxy_set_header Connection $signage_connection_upgrade;" in ws
    assert "proxy_buffering off;" in ws
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in ws
    read_timeout = int(re.search(r"proxy_read_timeout (\d+)s;", ws).group(1))
    ping = settings.SETTINGS_BY_NAME["SIGNAGE_KIOSK_PING_INTERVAL"].default
    assert read_timeout >= 75 and read_timeout > 2 * ping
    assert "server 127.0.0.1:8000;" in conf

    # The access log never carries a credential: no raw request line or URI, and the map masks
    # every route of the app whose path holds one.
    log_format = conf[conf.index("log_format") : conf.index(";", conf.index("log_format"))]
    assert "$request " not in log_format and "$request_uri" not in log_format
    assert "$signage_log_uri" in log_format
    for line in re.findall(r"access_log (.*);", conf):
        assert line.endswith(" signage_masked"), line
    pattern = re.search(r'"~(\^.*?)"\s+"([^"]+)";', conf)
    regex = re.compile(pattern.group(1).replace("(?<", "(?P<"))
    replacement = pattern.group(2)

    def logged(uri: str) -> str:
        m = regex.match(uri)
        if not m:
            return uri
        return re.sub(r"\$\{(\w+)\}", lambda v: m.group(v.group(1)), replacement)

    from signage import create_app

    database = str(tmp_path / "signage.sqlite3")
    app = create_app({"TESTING": True, "SIGNAGE_DATABASE": database, "SIGNAGE_SECRET_KEY": "x"})
    routes = [r.rule for r in app.url_map.iter_rules() if "<credential>" in r.rule]
    assert "/ws/kiosk/<credential>" in routes and "/kiosk/<credential>" in routes
    for rule in routes:
        uri = rule.replace("<credential>", CREDENTIAL) + "?v=2"
        assert CREDENTIAL not in logged(uri), rule
        assert logged(uri).endswith("?v=2")
    assert logged("/kiosk/sw.js") == "/kiosk/sw.js"
    assert logged("/healthz") == "/healthz"


def test_nginx_example_passes_nginx_t(tmp_path):
    nginx = shutil.which("nginx", path=f"{os.environ.get('PATH', '')}:/usr/sbin")
    if nginx is None:
        pytest.skip("nginx is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=signage.example.com", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    site = (DEPLOY / "nginx-signage.conf").read_text()
    site = site.replace("/etc/letsencrypt/live/signage.example.com/fullchain.pem", str(cert))
    site = site.replace("/etc/letsencrypt/live/signage.example.com/privkey.pem", str(key))
    site = site.replace("/var/log/nginx/", f"{tmp_path}/")
    (tmp_path / "site.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  include {tmp_path}/site.conf;\n}}\n"
    )
    result = subprocess.run(
        [nginx, "-t", "-q", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_env_example_names_real_settings():
    text = (DEPLOY / "signage.env.example").read_text()
    names = re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, re.M)
    assert names
    for name in names:
        assert name in settings.SETTINGS_BY_NAME, name


# -- docs ------------------------------------------------------------------------------------
def test_docs_cover_every_setting_and_option():
    docs = (REPO / "docs/kiosk.md").read_text()
    for key in conf_keys():
        assert f"`{key}`" in docs, key
    options = set(re.findall(r"^#\s+(--[a-z-]+)", (KIT / "install.sh").read_text(), re.M))
    assert options >= {"--user", "--rotation", "--reboot-window", "--root"}
    for option in options:
        assert f"`{option}" in docs, option
    assert "--purge-packages" in docs
    assert "tested" in docs.lower() and "real hardware" in docs.lower()
    deploy_readme = (DEPLOY / "README.md").read_text()
    for word in (
        "certbot",
        "Strict-Transport-Security",
        "unsafely-treat-insecure-origin-as-secure",
    ):
        assert word in deploy_readme, word


def conf_keys() -> list[str]:
    return re.findall(r"^([A-Z_]+)=@", (KIT / "kiosk.conf").read_text(), re.M)


def kit_timings() -> dict[str, int]:
    """Every timing of the kit, in seconds (or a count), read from the scripts themselves."""
    files = KIT / "files"
    lib = (files / "lib.sh").read_text()
    found = {
        key: int(value)
        for key, value in re.findall(
            r'^(KIOSK_[A-Z_]+)="\$\{SIGNAGE_KIOSK_[A-Z_]+:-(\d+)\}"', lib, re.M
        )
    }
    found["WATCHDOG_STRIKES"] = int(re.search(r'^WATCHDOG_STRIKES="(\d+)"', lib, re.M)[1])
    wait = (files / "wait-for-server.sh").read_text()
    found["curl --max-time"] = int(re.search(r"curl [^\n]*--max-time (\d+)", wait)[1])
    found["interval"] = int(re.search(r"^interval=(\d+)$", wait, re.M)[1])
    found["retryS"] = int(
        re.search(
            r'Number\(params\.get\("retry"\)\) \|\| (\d+)', (files / "waiting.html").read_text()
        )[1]
    )
    timer = (files / "signage-kiosk-watchdog.timer").read_text()
    for key in ("OnBootSec", "OnUnitActiveSec"):
        value = re.search(rf"^{key}=(\d+)min$", timer, re.M)
        found[key] = int(value[1]) * 60
    watchdog = (files / "watchdog.sh").read_text()
    # The ignored-SIGTERM wait: one second per number in the loop before `kill -KILL`.
    loop = re.search(r"for _ in ([\d ]+); do\n\s+kill -0 \"\$pid\"[^\n]*\n\s+sleep 1", watchdog)
    found["kill -KILL"] = len(loop[1].split())
    # The browser loop and the watchdog take their values from lib.sh, not literals of their own.
    browser = (files / "browser.sh").read_text()
    assert '--timeout "$KIOSK_SERVER_WAIT"' in browser and "backoff=$KIOSK_BACKOFF_FIRST" in browser
    assert '--timeout "$KIOSK_PROBE_TIMEOUT"' in watchdog and "age < KIOSK_GRACE" in watchdog
    installer = (KIT / "install.sh").read_text()
    assert re.search(r"setting WATCHDOG_STRIKES (\d+)", installer)[1] == str(
        found["WATCHDOG_STRIKES"]
    )
    return found


def test_docs_give_the_scripts_timings():
    """docs/kiosk.md's timings table and its boot steps say what the scripts do."""
    docs = (REPO / "docs/kiosk.md").read_text()
    timings = kit_timings()
    rows = re.findall(r"^\| [^|]+ \| (\d+)(?: s)? \| `([^`]+)` \([^)]+\) \|$", docs, re.M)
    table = {key: int(value) for value, key in rows}
    assert table == timings, "docs/kiosk.md's timings table differs from the scripts"
    steps = docs[docs.index("And at every boot:") : docs.index("All the timings in one place")]
    t = timings
    for sentence in (
        f"5 s per try, a try every\n   {t['interval']} s, for up to {t['KIOSK_SERVER_WAIT']} s",
        f"checks again every {t['retryS']} s",
        f"after {t['KIOSK_BACKOFF_FIRST']} s,\n   then {2 * t['KIOSK_BACKOFF_FIRST']}, "
        f"{4 * t['KIOSK_BACKOFF_FIRST']}… up to {t['KIOSK_BACKOFF_MAX']} s",
        f"ran for {t['KIOSK_STEADY']} s or more is\n"
        f"   restarted after {t['KIOSK_BACKOFF_FIRST']} s",
        f"(the first time {t['OnBootSec'] // 60} minutes after boot)",
        f"less than {t['KIOSK_GRACE']} s ago",
        f"JavaScript within\n"
        f"   {t['KIOSK_PROBE_TIMEOUT']} s. After {t['WATCHDOG_STRIKES']} strikes",
        f"still there {t['kill -KILL']} s later",
    ):
        assert sentence in steps, f"docs/kiosk.md's boot steps do not say: {sentence!r}"
    assert t["curl --max-time"] == 5 and t["OnUnitActiveSec"] == 60  # "5 s per try", "Every minute"
    assert f"tries again every {t['retryS']} s" in docs  # the pairing section
