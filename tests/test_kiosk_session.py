"""The Raspberry Pi kit (kiosk/) in a real Wayland session, against a real `signage serve`.

The kit's own scripts, installed by its own installer into a folder (`install.sh --root`), run
unchanged inside cage, a wlroots kiosk compositor, on its headless backend with the pixman
renderer, as an unprivileged user with a runtime folder of its own. Chromium draws through
Wayland (`--ozone-platform=wayland`, the kit's flag); grim takes the output's picture. The
watchdog runs every few seconds from here, as its systemd timer runs it every minute on a Pi.
Only the timings are shortened, through the environment the scripts read (lib.sh); the
production values are compared with docs/kiosk.md in test_kiosk_kit.py.

What this cannot cover: labwc itself (not packaged in Debian 12), lightdm's autologin, the
systemd timers, the cursor theme (cage shows no pointer without an input device) and
`wlr-randr` (cage 0.1.4 has no output management: rotation is cage's own `-r` here).

The screenshots go to a temporary folder named in the output (`pytest -s`), never the checkout.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect

from tests import helpers
from tests.helpers import ServeProcess, free_port, wait_until

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
KIT = REPO / "kiosk"
LIB = "usr/local/lib/signage-kiosk"
TEST_USER = "signage-kiosk-test"
OUTPUT = (1280, 720)  # wlroots' headless output

# Shortened for the test through the environment lib.sh reads; the production values (lib.sh,
# and the watchdog's timer once a minute) are those of docs/kiosk.md, checked in test_kiosk_kit.
TIMINGS = {
    "SIGNAGE_KIOSK_SERVER_WAIT": "2",
    "SIGNAGE_KIOSK_BACKOFF": "1",
    "SIGNAGE_KIOSK_BACKOFF_MAX": "4",
    "SIGNAGE_KIOSK_STEADY": "15",
    "SIGNAGE_KIOSK_GRACE": "5",
    "SIGNAGE_KIOSK_PROBE_TIMEOUT": "3",
}
WATCHDOG_INTERVAL = 2.0
STRIKES = 2
WAITING_PAGE_RETRY = 5  # waiting.html's default, in seconds
NO_CONTACT_S = 8  # the kiosk page's stale threshold, shortened through its test knob

probe_spec = importlib.util.spec_from_file_location("cdp_probe", KIT / "files" / "cdp-probe.py")
cdp_probe = importlib.util.module_from_spec(probe_spec)
probe_spec.loader.exec_module(cdp_probe)


def _tools_or_skip() -> str:
    """Debian's Chromium; skip when the session's tools are missing, except in CI."""
    chromium = os.environ.get("SIGNAGE_KIOSK_CHROMIUM") or shutil.which("chromium")
    missing = [t for t in ("cage", "grim") if not shutil.which(t)]
    if not chromium:
        missing.append("chromium")
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the kiosk session test: install {' '.join(missing)}")
        pytest.skip(f"no {', '.join(missing)} here (apt-get install cage grim xwayland chromium)")
    return chromium


# -- pictures: grim writes PPM, we keep PNG ---------------------------------------------------
class Picture:
    """An RGB picture from grim."""

    def __init__(self, width: int, height: int, rgb: bytes) -> None:
        self.width, self.height, self.rgb = width, height, rgb

    @classmethod
    def from_ppm(cls, data: bytes) -> Picture:
        m = re.match(rb"P6\s+(\d+)\s+(\d+)\s+255\s", data)
        assert m, f"not a PPM from grim: {data[:20]!r}"
        width, height = int(m[1]), int(m[2])
        rgb = data[m.end() : m.end() + width * height * 3]
        assert len(rgb) == width * height * 3, "short PPM"
        return cls(width, height, rgb)

    def pixel(self, x: int, y: int) -> tuple[int, int, int]:
        i = (y * self.width + x) * 3
        return self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]

    def png(self) -> bytes:
        """PNG, one unfiltered row at a time (no image library needed)."""
        row = self.width * 3
        raw = b"".join(b"\0" + self.rgb[y * row : (y + 1) * row] for y in range(self.height))

        def chunk(kind: bytes, data: bytes) -> bytes:
            body = kind + data
            return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

        head = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", head)
            + chunk(b"IDAT", zlib.compress(raw, 6))
            + chunk(b"IEND", b"")
        )


def png_pixel(data: bytes) -> tuple[int, int, int]:
    """The one pixel of a 1x1 PNG from Chromium (RGB or RGBA, 8 bits, any row filter)."""
    pos, idat, color_type = 8, b"", 2
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            assert struct.unpack(">II", body[:8]) == (1, 1) and body[8] == 8, "not a 1x1 PNG"
            color_type = body[9]
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    # A single pixel: filters 0 (none), 1 (sub), 2 (up), 3 (average) and 4 (Paeth) all leave
    # the bytes as they are, apart from 3, which adds half of nothing.
    assert raw[0] in (0, 1, 2, 3, 4) and color_type in (2, 6), f"unexpected PNG {raw[:2]!r}"
    return raw[1], raw[2], raw[3]


def close(a: tuple[int, ...], b: tuple[int, ...], tolerance: int = 24) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


STATE_JS = """JSON.stringify({
  href: location.href, title: document.title, feed: document.documentElement.dataset.feed || null,
  w: innerWidth, h: innerHeight,
  sw: document.documentElement.scrollWidth, sh: document.documentElement.scrollHeight,
  code: (document.getElementById("pair-code") || {}).textContent || null,
  fresh: (document.getElementById("freshness-text") || {}).textContent || null,
  rooms: document.querySelectorAll("[data-state]").length,
  unknown: document.querySelectorAll('[data-state="unknown"]').length})"""


# -- the page, through the kiosk's own debugging port ----------------------------------------
class Page:
    """Chromium's page over the DevTools protocol on 127.0.0.1 (the watchdog's port)."""

    def __init__(self, port: int) -> None:
        self.port = port

    def ws_url(self) -> str | None:
        try:
            pages = cdp_probe.list_pages(self.port, 2)
        except (OSError, ValueError):
            return None
        return pages[0].get("webSocketDebuggerUrl") if pages else None

    def call(self, method: str, params: dict | None = None, timeout: float = 5) -> Any:
        url = self.ws_url()
        assert url, "no page on the debugging port"
        with connect(url, open_timeout=timeout, max_size=2**24) as ws:
            ws.send(json.dumps({"id": 1, "method": method, "params": params or {}}))
            while True:
                reply = json.loads(ws.recv(timeout=timeout))
                if reply.get("id") == 1:
                    assert "error" not in reply, reply["error"]
                    return reply["result"]

    def eval(self, expression: str, timeout: float = 5) -> Any:
        """The value of a JS expression, or None when the page does not answer."""
        try:
            result = self.call(
                "Runtime.evaluate",
                {"expression": expression, "returnByValue": True},
                timeout=timeout,
            )
        except (OSError, TimeoutError, AssertionError, ValueError):
            return None
        return result.get("result", {}).get("value")

    def state(self) -> dict | None:
        """Where the page is and what it shows, or None when it does not answer."""
        value = self.eval(STATE_JS)
        return json.loads(value) if isinstance(value, str) else None

    def pixel(self, x: int, y: int) -> tuple[int, int, int]:
        """The page's own rendering of one CSS pixel (it has device pixel ratio 1 here)."""
        shot = self.call(
            "Page.captureScreenshot",
            {"format": "png", "clip": {"x": x, "y": y, "width": 1, "height": 1, "scale": 1}},
        )
        return png_pixel(base64.b64decode(shot["data"]))


# -- the session -------------------------------------------------------------------------------
def kiosk_user() -> tuple[int, int]:
    """(uid, gid) the session runs as: ourselves, or as root a system user of its own."""
    if os.geteuid() != 0:
        return os.getuid(), os.getgid()
    done = subprocess.run(["id", "-u", TEST_USER], capture_output=True, text=True)
    if done.returncode != 0:
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", "--shell",
             "/usr/sbin/nologin", "--comment", "signage kiosk session test", TEST_USER],
            check=True,
        )  # fmt: skip
    import pwd

    entry = pwd.getpwnam(TEST_USER)
    return entry.pw_uid, entry.pw_gid


def x11_socket_dir(uid: int) -> None:
    """cage starts Xwayland, which exits when /tmp/.X11-unix belongs to another user."""
    path = Path("/tmp/.X11-unix")
    if not path.exists():
        if os.geteuid() == 0:
            # As the system makes it at boot: otherwise the kiosk user's Xwayland would create
            # it as its own, and the next user's X server would be refused.
            path.mkdir(mode=0o1777)
            path.chmod(0o1777)
        return
    st = path.stat()
    if st.st_uid in (0, uid):
        return
    if os.geteuid() == 0:
        # Left by an earlier session of another user: give it back to root, sticky, as the
        # system makes it at boot (every user may then put a socket in it).
        os.chown(path, 0, 0)
        path.chmod(0o1777)
        return
    pytest.skip(f"{path} belongs to uid {st.st_uid}: cage's Xwayland would exit")


class Session:
    """The kit installed in a folder, its session script run by cage as the kiosk user."""

    def __init__(
        self, url: str, shots: Path, *, rotate: int = 0, rotation: int = 0, strikes: int = STRIKES
    ) -> None:
        self.chromium = _tools_or_skip()
        self.uid, self.gid = kiosk_user()
        x11_socket_dir(self.uid)
        self.shots = shots
        self.port = free_port()
        self.page = Page(self.port)
        self.dir = Path(tempfile.mkdtemp(prefix="signage-kiosk-session-"))
        self.dir.chmod(0o755)
        self.root = self.dir / "root"
        self.home = self.dir / "home"
        self.runtime = self.dir / "run"
        for d in (self.root / "etc", self.home, self.runtime):
            d.mkdir(parents=True)
        (self.root / "etc/os-release").write_text("VERSION_CODENAME=bookworm\n")
        (self.root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
        (self.root / "etc/group").write_text("root:x:0:\n")
        done = subprocess.run(
            ["bash", str(KIT / "install.sh"), "--root", str(self.root), "--debug-port",
             str(self.port), "--strikes", str(strikes), "--rotation", str(rotation), url],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        self.conf = self.root / "etc/signage-kiosk.conf"
        # As on a Pi: root's file, readable by the kiosk user's group only.
        os.chown(self.conf, os.geteuid(), self.gid)
        for d in (self.home, self.runtime):
            os.chown(d, self.uid, self.gid)
        self.runtime.chmod(0o700)
        self.lib = self.root / LIB
        self.state = self.home / ".local/state/signage-kiosk"
        self.log = self.dir / "session.log"
        self.env = {
            "HOME": str(self.home),
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "XDG_RUNTIME_DIR": str(self.runtime),
            "WLR_BACKENDS": "headless",
            "WLR_RENDERER": "pixman",
            "WLR_LIBINPUT_NO_DEVICES": "1",
            "SIGNAGE_KIOSK_CONF": str(self.conf),
            "SIGNAGE_KIOSK_CHROMIUM": self.chromium,
            **TIMINGS,
        }
        # cage 0.1.4 (Debian 12) hands a full-screen client's buffer straight to the output
        # (direct scan-out); on the headless backend with pixman that commit fails and the
        # picture freezes on Chromium's first, not yet full-screen, frame. Any rotation turns
        # scan-out off: a landscape screen is therefore turned 180 degrees (grim's picture
        # comes out upright), a portrait one 90.
        self.rotate = rotate or 180
        self.proc: subprocess.Popen | None = None
        self.watchdog_log: list[tuple[float, str]] = []
        self._watchdog_stop = threading.Event()
        self._watchdog: threading.Thread | None = None

    @property
    def size(self) -> tuple[int, int]:
        return OUTPUT if self.rotate % 180 == 0 else OUTPUT[::-1]

    def _as_user(self) -> dict[str, Any]:
        if os.geteuid() != 0:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def start(self) -> Session:
        out = open(self.log, "ab")
        self.proc = subprocess.Popen(
            ["cage", "-d", *["-r"] * (self.rotate // 90), "--", f"{self.lib}/kiosk-session.sh"],
            env=self.env, cwd=self.home, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, **self._as_user(),
        )  # fmt: skip
        out.close()
        wait_until(
            lambda: (self.runtime / "wayland-0").exists() or self.proc.poll() is not None,
            timeout=20,
            message="cage's socket",
        )
        assert self.proc.poll() is None, f"cage exited: {self.log_text()[-2000:]}"
        self._watchdog = threading.Thread(target=self._watch, daemon=True)
        self._watchdog.start()
        return self

    def _watch(self) -> None:
        """What signage-kiosk-watchdog.timer does on a Pi, every WATCHDOG_INTERVAL."""
        while not self._watchdog_stop.wait(WATCHDOG_INTERVAL):
            done = subprocess.run(
                [str(self.lib / "watchdog.sh")],
                env=self.env, capture_output=True, text=True, timeout=60, **self._as_user(),
            )  # fmt: skip
            for line in done.stderr.splitlines():
                self.watchdog_log.append((time.monotonic(), line))

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def chromium_pid(self) -> int | None:
        try:
            pid = int((self.state / "chromium.pid").read_text())
        except (OSError, ValueError):
            return None
        return pid if Path(f"/proc/{pid}").exists() else None

    def grim(self) -> Picture:
        done = subprocess.run(
            ["grim", "-t", "ppm", "-"],
            env={**self.env, "WAYLAND_DISPLAY": "wayland-0"},
            capture_output=True, timeout=30, **self._as_user(),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        return Picture.from_ppm(done.stdout)

    def screenshot(self, name: str) -> Picture:
        picture = self.grim()
        (self.shots / f"{name}.png").write_bytes(picture.png())
        return picture

    def page_state(self) -> dict:
        return self.page.state() or {}

    def stop(self) -> None:
        self._watchdog_stop.set()
        if self._watchdog:
            self._watchdog.join(timeout=30)
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        # browser.sh and Chromium outlive cage: end every process of this session, by pid.
        if self.proc:
            for _ in range(20):
                left = session_pids(self.proc.pid)
                if not left:
                    break
                for pid in left:
                    try:
                        os.kill(pid, signal.SIGKILL if _ > 5 else signal.SIGTERM)
                    except ProcessLookupError:
                        pass
                time.sleep(0.5)
        remove_stale_x_locks(self.uid)
        shutil.rmtree(self.dir, ignore_errors=True)


def remove_stale_x_locks(uid: int) -> None:
    """The lock and socket of an Xwayland of ours that did not outlive cage (cage aborts on
    SIGTERM, so its Xwayland never cleans up). A live X server's lock is left alone."""
    for lock in Path("/tmp").glob(".X*-lock"):
        try:
            if lock.stat().st_uid != uid:
                continue
            found = re.search(r"\d+", lock.read_text(errors="replace"))
        except OSError:
            continue
        pid = int(found[0]) if found else 0
        if pid and Path(f"/proc/{pid}").exists():
            continue
        display = lock.name[2:-5]
        lock.unlink(missing_ok=True)
        Path(f"/tmp/.X11-unix/X{display}").unlink(missing_ok=True)
    # A socket without a lock has no server behind it.
    for sock in Path("/tmp/.X11-unix").glob("X*"):
        try:
            if sock.stat().st_uid == uid and not Path(f"/tmp/.{sock.name}-lock").exists():
                sock.unlink()
        except OSError:
            continue


def session_pids(sid: int) -> list[int]:
    """The processes of the session that cage led (start_new_session made its pid the id)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[3]) == sid and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


# -- checks ------------------------------------------------------------------------------------
def mismatches(session: Session, picture: Picture) -> list[tuple]:
    """Points where the screen differs from the page's own rendering of itself."""
    width, height = picture.width, picture.height
    out = []
    for fx in (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0):
        for fy in (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0):
            x, y = round(fx * (width - 1)), round(fy * (height - 1))
            want, got = session.page.pixel(x, y), picture.pixel(x, y)
            if not close(want, got):
                out.append(((x, y), want, got))
    return out


def assert_full_screen(session: Session, name: str, timeout: float = 15) -> Picture:
    """Chromium covers the whole output with the page: no bars, no scrollbars, same pixels.

    Saves the screenshot as NAME.png. The compositor's picture must be the page's own
    rendering on a grid from corner to corner: a bubble, a desktop, a smaller window or a
    frame Chromium has not painted yet would differ somewhere on it. A clock or an age may
    change between the two pictures, so two points may differ. Waits for Chromium's first
    paint (a new browser shows white for a moment) up to TIMEOUT seconds.
    """
    width, height = session.size
    deadline = time.monotonic() + timeout
    # A new Chromium opens a small window and goes full screen a moment later (under a second
    # here). An infobar or a tab strip would take height from the page; scrollbars, width.
    state = wait_page(
        session, lambda s: (s["w"], s["h"]) == (width, height), timeout, f"{name}: full screen"
    )
    assert state["sw"] <= width and state["sh"] <= height, f"{name}: page scrolls: {state}"
    while True:
        picture = session.grim()
        assert (picture.width, picture.height) == (width, height), name
        wrong = mismatches(session, picture)
        if len(wrong) <= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    (session.shots / f"{name}.png").write_bytes(picture.png())
    assert len(wrong) <= 2, f"{name}: the screen differs from the page at {wrong}"
    return picture


def wait_page(session: Session, test: Callable[[dict], bool], timeout: float, what: str) -> dict:
    return wait_until(
        lambda: (s := session.page_state()) and test(s) and s,
        timeout=timeout,
        interval=0.25,
        message=what,
    )


def restart_pauses(session: Session) -> list[int]:
    """The pauses browser.sh logged before restarting Chromium, in seconds."""
    found = re.findall(r"^signage-kiosk: .*starting it again in (\d+)s$", session.log_text(), re.M)
    return [int(n) for n in found]


# -- fixtures ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shots() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="signage-kiosk-screenshots-"))
    print(f"\nkiosk session screenshots: {folder}")
    return folder


@pytest.fixture
def server(sim, tmp_path):
    env = helpers.serve_env(
        sim, tmp_path, SIGNAGE_TEST_MODE=1, SIGNAGE_HEARTBEAT_INTERVAL=1, SIGNAGE_FEED_LINGER=2
    )
    proc = ServeProcess(env)
    yield proc
    proc.stop()


def add_display(server: ServeProcess, sim) -> dict:
    display_id, floor_id = sorted(sim.world.displays.items())[0]
    out = server.cli(
        "displays", "add", "--name", "Lobby", "--floor", floor_id,
        "--density-display-id", display_id, "--json",
    )  # fmt: skip
    return json.loads(out)


# -- the tests ---------------------------------------------------------------------------------
def test_boot_crash_hang_and_server_outage(server, sim, shots, tmp_path):
    """Waiting page, then the map; a killed browser and a hung page come back; an outage is aged."""
    started = time.monotonic()
    display = add_display(server, sim)
    url = f"{display['kiosk_url']}?no_contact_s={NO_CONTACT_S}"
    session = Session(url, shots)
    try:
        session.start()
        # -- boot, server down: the kit's waiting page, full screen --------------------------
        wait_page(session, lambda s: s["href"].startswith("file://"), 60, "the waiting page")
        wait_until(
            lambda: session.grim().pixel(OUTPUT[0] // 2, 5) == (17, 17, 17),
            timeout=20,
            message="the waiting page on screen (#111)",
        )
        assert_full_screen(session, "1-boot-waiting")
        # -- the server comes up: the map within the waiting page's retry, and live -----------
        server.start(tmp_path / "serve.log")
        up = time.monotonic()
        wait_page(
            session,
            lambda s: s["href"] == url,
            WAITING_PAGE_RETRY + 5,
            "the kiosk page after the server came up",
        )
        wait_page(session, lambda s: s["feed"] == "live", 20, "a live feed")
        boot_s = time.monotonic() - up
        assert_full_screen(session, "2-boot-kiosk")

        # -- crash: kill -9, then the same page again after the first pause ------------------
        pid = session.chromium_pid()
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        wait_until(
            lambda: (p := session.chromium_pid()) and p != pid, timeout=20, message="a new Chromium"
        )
        respawn_s = time.monotonic() - killed
        wait_page(session, lambda s: s["href"] == url and s["feed"] == "live", 30, "back live")
        assert respawn_s <= float(TIMINGS["SIGNAGE_KIOSK_BACKOFF"]) + 6, respawn_s
        assert_full_screen(session, "3-after-crash")

        # -- five crashes in a row: the pause doubles up to its cap; the screen stays dark ---
        crashes = 5
        for n in range(crashes):
            pid = wait_until(session.chromium_pid, timeout=30, message="Chromium again")
            os.kill(pid, signal.SIGKILL)
            wait_until(lambda p=pid: session.chromium_pid() != p, timeout=10, message="gone")
            if n == 2:  # in a pause: nothing on screen, no desktop, no terminal
                dark = session.screenshot("3b-between-crashes")
                assert dark.rgb.count(0) == len(dark.rgb), "something is drawn between crashes"
        first = int(TIMINGS["SIGNAGE_KIOSK_BACKOFF"])
        cap = int(TIMINGS["SIGNAGE_KIOSK_BACKOFF_MAX"])
        # (browser.sh logs its pause just after it removes the pid file)
        pauses = wait_until(
            lambda: len(p := restart_pauses(session)) == crashes + 1 and p,
            timeout=5,
            message="a pause logged for each crash",
        )
        assert pauses == [first, first * 2, cap, cap, cap, cap], pauses
        wait_page(session, lambda s: s["href"] == url and s["feed"] == "live", 40, "back live")

        # -- hang: the page busy-loops; the watchdog's strikes end Chromium; the map returns --
        pid = session.chromium_pid()
        wait_until(
            lambda: (
                time.time() - (session.state / "chromium.pid").stat().st_mtime
                > float(TIMINGS["SIGNAGE_KIOSK_GRACE"])
            ),
            timeout=30,
            message="Chromium past the watchdog's grace",
        )
        session.page.eval(f"location.replace({json.dumps(url + '&hang=1')}); 1")
        wait_until(
            lambda: session.page.eval("1", timeout=2) is None, timeout=20, message="page hung"
        )
        hung = time.monotonic()
        before = len(session.watchdog_log)
        wait_until(
            lambda: (p := session.chromium_pid()) and p != pid,
            timeout=STRIKES * (WATCHDOG_INTERVAL + 5) + 10 + cap + 20,
            message="the watchdog restarting Chromium",
        )
        hang_s = time.monotonic() - hung
        lines = [line for _, line in session.watchdog_log[before:]]
        restart = [x for x in lines if f"restarting Chromium (pid {pid}) after {STRIKES}" in x]
        assert restart and "renderer hung" in restart[0], lines  # seen through the probe
        assert sum("strike " in x for x in lines) == STRIKES - 1, lines
        wait_page(session, lambda s: s["href"] == url and s["feed"] == "live", 40, "back live")
        assert_full_screen(session, "4-after-hang")

        # -- server gone past the stale threshold: the last map stays, with its age -----------
        pid = session.chromium_pid()
        gone = time.monotonic()  # (the page counts from the last message it had, a little before)
        server.stop()
        wait_page(session, lambda s: s["feed"] == "stale", 15, "stale as soon as the socket drops")
        stale = wait_page(
            session,
            lambda s: (s["fresh"] or "").startswith("No connection since") and s["unknown"],
            NO_CONTACT_S + 15,
            "past the stale threshold: rooms unknown, and since when",
        )
        stale_s = time.monotonic() - gone
        # Heartbeats come every second: the last one came at most that long before the stop.
        assert stale_s >= NO_CONTACT_S - 1.5, f"rooms went unknown after {stale_s:.1f}s"
        assert re.search(r"\d:\d\d", stale["fresh"]), f"no time on the stale page: {stale}"
        assert stale["href"] == url and stale["rooms"] >= 5, stale  # the same map, still drawn
        assert_full_screen(session, "5-server-gone")
        assert session.chromium_pid() == pid, "the browser was restarted during the outage"
        back = time.monotonic()
        server.start(tmp_path / "serve.log")
        wait_page(session, lambda s: s["feed"] == "live" and not s["unknown"], 45, "live again")
        live_again_s = time.monotonic() - back
        assert session.chromium_pid() == pid, "the browser was restarted to get live again"
        assert_full_screen(session, "6-live-again")
        restarts = [x for _, x in session.watchdog_log if "restarting Chromium" in x]
        assert len(restarts) == 1, restarts  # the hang, and nothing else
    finally:
        session.stop()
    print(
        f"\nboot to live map {boot_s:.1f}s, respawn {respawn_s:.1f}s, hang to restart"
        f" {hang_s:.1f}s, stale after {stale_s:.1f}s, live again {live_again_s:.1f}s,"
        f" pauses {pauses}, wall time {time.monotonic() - started:.0f}s"
    )


def test_pairing_on_a_portrait_screen(server, sim, shots, tmp_path):
    """A fresh kit given the server's URL shows a code; `signage displays pair` makes it a kiosk."""
    started = time.monotonic()
    display = add_display(server, sim)
    server.start(tmp_path / "serve.log")
    # The kit's own ROTATION too: wlr-randr cannot act on cage 0.1.4 (no output management),
    # and the kiosk must start all the same. (Were it to act, it would set the same transform.)
    session = Session(server.url + "/", shots, rotate=90, rotation=90)
    try:
        session.start()
        state = wait_page(session, lambda s: bool(s["code"]), 60, "a pairing code")
        picture = assert_full_screen(session, "7-pairing-portrait")
        assert picture.width < picture.height, "the picture is not portrait"
        out = server.cli("displays", "pair", state["code"], str(display["id"]))
        assert "paired" in out
        paired = time.monotonic()
        wait_page(
            session,
            lambda s: "/kiosk/" in s["href"] and s["feed"] == "live",
            20,
            "the display's kiosk page",
        )
        pair_s = time.monotonic() - paired
        assert_full_screen(session, "8-paired-portrait")
        assert "no outputs found: cannot rotate" in session.log_text()
    finally:
        session.stop()
    print(f"\npaired to live map {pair_s:.1f}s, wall time {time.monotonic() - started:.0f}s")
