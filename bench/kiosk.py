"""Kiosk page benchmark: transfer size, first render on a Pi-class CPU, apply latency, heap.

    .venv/bin/python bench/kiosk.py [--runs 5] [--flips 40] [--updates 10000]

Everything on loopback: the built-in simulator and the real signage app (werkzeug, in this
process), driven by the system's headless Chromium through Playwright. Prints:

- transfer: every response a kiosk page load makes (page, CSS, JS, icon, service worker
  script, QR inline), each counted at its gzip size (target <= 60 KB);
- first render with live data, CPU throttled 4x through CDP Emulation.setCPUThrottlingRate:
  navigation start until the page shows the live state (target <= 1.5 s); also first
  contentful paint;
- apply latency: a room flipped in the simulator; from the socket message arriving in the page
  to the tile's data-state changing (MutationObserver) and to the next frame (target <= 50 ms);
- JS heap after 10,000 updates vs after 100 (target within 10%), each read after forcing
  garbage collection through CDP HeapProfiler.collectGarbage. The updates go through the
  page's own message handler (the path socket messages take) at full speed.
"""

from __future__ import annotations

import argparse
import gzip
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from signage import create_app  # noqa: E402
from signage.sim import SimServer, SimSettings  # noqa: E402
from tests.conftest import CHROMIUM_ARGS, chromium_path  # noqa: E402
from tests.helpers import ServerThread, wait_until  # noqa: E402

LIVE = "() => document.documentElement.dataset.feed === 'live'"

# Timestamps every socket message before the page's own handler sees it.
PROBE = """
(() => {
  const Native = window.WebSocket;
  window.__msgAt = [];
  window.WebSocket = function (url, protocols) {
    const ws = protocols === undefined ? new Native(url) : new Native(url, protocols);
    ws.addEventListener('message', () => { window.__msgAt.push(performance.now()); });
    return ws;
  };
  window.WebSocket.prototype = Native.prototype;
  Object.assign(window.WebSocket, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
})();
"""

WATCH = """
(rid) => new Promise((resolve) => {
  const el = document.querySelector(`#map [data-space-id="${rid}"]`);
  const before = el.dataset.state;
  const obs = new MutationObserver(() => {
    if (el.dataset.state === before) return;
    const changed = performance.now();
    const arrived = window.__msgAt[window.__msgAt.length - 1];
    obs.disconnect();
    requestAnimationFrame(() => resolve(
      {dom: changed - arrived, frame: performance.now() - arrived}));
  });
  obs.observe(el, {attributes: true, attributeFilter: ['data-state']});
})
"""

UPDATES = """
([count, rooms]) => {
  const st = signageKiosk.state();
  let seq = st.seq;
  for (let i = 0; i < count; i++) {
    const id = rooms[i % rooms.length];
    const free = (i + seq) % 2 === 0;
    seq += 1;
    signageKiosk.apply({type: 'update', epoch: st.epoch, seq: seq, feed: 'live',
      heard_age_s: 0.1, server_time: new Date().toISOString(),
      rooms: {[id]: {id: id, name: 'Room ' + (i % rooms.length), function: 'meeting_room',
        capacity: 6, counting_mode: 'oa', state: free ? 'free' : 'occupied', reason: null,
        last_known: free ? 'free' : 'occupied', occupied: !free, count: null,
        health: 'healthy', since_s: 0, source: 'socket'}}});
  }
  return seq;
}
"""


def gz(data: bytes) -> int:
    return len(gzip.compress(data, compresslevel=6))


def heap_used(cdp) -> float:
    cdp.send("HeapProfiler.collectGarbage")
    cdp.send("HeapProfiler.collectGarbage")
    return cdp.send("Runtime.getHeapUsage")["usedSize"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--flips", type=int, default=40)
    parser.add_argument("--updates", type=int, default=10_000)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="signage-bench-"))
    os.environ["SIGNAGE_CONFIG"] = str(tmp / "none.toml")
    sim_settings = SimSettings()
    with SimServer(sim_settings, seed=1) as sim:
        sim.world.update_settings(refresh_interval=5.0)
        app = create_app(
            {
                "DENSITY_API_URL": sim.url,
                "DENSITY_CLIENT_ID": sim_settings.client_id,
                "DENSITY_CLIENT_SECRET": sim_settings.client_secret,
                "DENSITY_API_TOKEN": "",
                "SIGNAGE_DATABASE": str(tmp / "signage.sqlite3"),
                "SIGNAGE_SECRET_KEY": "bench",
                "SIGNAGE_LOG_LEVEL": "WARNING",
            }
        )
        server = ServerThread(app).start()
        import logging

        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        try:
            floor = server.svc.directory.floors()[0].id
            rooms = [s.id for s in server.svc.directory.rooms_of(floor)]
            for i, rid in enumerate(rooms):
                sim.world.set_space(rid, presence=bool(i % 2), health="healthy")
            display, cred = server.add_display(floor)
            url = f"{server.url}/kiosk/{cred}"
            launch = {"args": CHROMIUM_ARGS, "headless": True}
            if chromium_path():
                launch["executable_path"] = chromium_path()
            with sync_playwright() as p:
                browser = p.chromium.launch(**launch)
                results = run(browser, url, sim, rooms, args)
                browser.close()
        finally:
            server.stop()

    cpu = os.cpu_count()
    print(
        f"kiosk page benchmark · {platform.machine()} · {cpu} cores"
        f" · Python {platform.python_version()}"
    )
    print(f"  {len(rooms)} rooms on the floor, loopback, werkzeug threaded server")
    for line in results:
        print("  " + line)


def run(browser, url, sim, rooms, args) -> list[str]:
    out: list[str] = []

    def step(text: str) -> None:
        print(f"  … {text}", file=sys.stderr, flush=True)

    # -- transfer ---------------------------------------------------------------------------
    ctx = browser.new_context(viewport={"width": 1920, "height": 1080})
    page = ctx.new_page()
    bodies: dict[str, int] = {}

    def record(response):
        try:
            bodies[response.url] = gz(response.body())
        except Exception:
            pass

    page.on("response", record)
    page.goto(url)
    page.wait_for_function(LIVE, timeout=15_000)
    page.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=15_000)
    sw_url = url.split("/kiosk/")[0] + "/kiosk/sw.js"
    if sw_url not in bodies:
        bodies[sw_url] = gz(page.request.get(sw_url).body())
    total = sum(bodies.values())

    def label(u: str) -> str:
        name = u.rsplit("/", 1)[-1].split("?")[0]
        return name if "/static/" in u or name == "sw.js" else "page"

    parts = ", ".join(f"{label(u)} {b / 1024:.1f}" for u, b in bodies.items())
    out.append(f"transfer (gzip each response): {total / 1024:.1f} KB  [{parts}]  target <= 60 KB")
    ctx.close()

    step(out[-1])
    # -- first render with live data, CPU 4x slower ------------------------------------------
    times, fcps = [], []
    for _ in range(args.runs):
        ctx = browser.new_context(viewport={"width": 1920, "height": 1080}, service_workers="block")
        page = ctx.new_page()
        cdp = ctx.new_cdp_session(page)
        cdp.send("Emulation.setCPUThrottlingRate", {"rate": 4})
        page.goto(url, wait_until="commit")
        page.wait_for_function(LIVE, timeout=15_000, polling="raf")
        times.append(page.evaluate("performance.now()"))
        fcps.append(
            page.evaluate(
                "(performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime || 0"
            )
        )
        ctx.close()
    out.append(
        f"first render, live data, CPU x4: median {statistics.median(times):.0f} ms,"
        f" max {max(times):.0f} ms (FCP median {statistics.median(fcps):.0f} ms)  target <= 1500 ms"
    )

    step(out[-1])
    # -- message to DOM --------------------------------------------------------------------
    for rate in (1, 4):
        ctx = browser.new_context(viewport={"width": 1920, "height": 1080})
        ctx.add_init_script(PROBE)
        page = ctx.new_page()
        page.goto(url)
        page.wait_for_function(LIVE, timeout=15_000)
        cdp = ctx.new_cdp_session(page)
        cdp.send("Emulation.setCPUThrottlingRate", {"rate": rate})
        dom, frame = [], []
        for i in range(args.flips):
            rid = rooms[i % len(rooms)]
            state = page.evaluate(
                f"document.querySelector('#map [data-space-id=\"{rid}\"]').dataset.state"
            )
            page.evaluate(f"(rid) => {{ window.__watch = ({WATCH})(rid); }}", rid)
            sim.world.set_space(rid, presence=state == "free", health="healthy")
            got = page.evaluate("() => window.__watch")
            dom.append(got["dom"])
            frame.append(got["frame"])
        dom.sort()
        frame.sort()
        p95 = lambda v: v[min(len(v) - 1, int(len(v) * 0.95))]  # noqa: E731
        out.append(
            f"message -> DOM (CPU x{rate}, {args.flips} flips):"
            f" median {statistics.median(dom):.1f} ms,"
            f" p95 {p95(dom):.1f}, max {dom[-1]:.1f}; -> next frame median"
            f" {statistics.median(frame):.1f} ms, p95 {p95(frame):.1f}  target <= 50 ms"
        )
        ctx.close()
        step(out[-1])

    # -- heap after 100 vs 10,000 updates ------------------------------------------------------
    ctx = browser.new_context(viewport={"width": 1920, "height": 1080})
    page = ctx.new_page()
    page.goto(url)
    page.wait_for_function(LIVE, timeout=15_000)
    cdp = ctx.new_cdp_session(page)
    page.evaluate(UPDATES, [100, rooms])
    page.wait_for_timeout(200)
    after_100 = heap_used(cdp)
    done = 100
    started = time.monotonic()
    while done < args.updates:
        n = min(1000, args.updates - done)
        page.evaluate(UPDATES, [n, rooms])
        done += n
    elapsed = time.monotonic() - started
    page.wait_for_timeout(200)
    after_all = heap_used(cdp)
    wait_until(lambda: page.evaluate(f"({LIVE})()"), timeout=5)
    growth = (after_all - after_100) / after_100 * 100
    out.append(
        f"JS heap after GC: {after_100 / 1e6:.2f} MB after 100 updates,"
        f" {after_all / 1e6:.2f} MB after {args.updates:,} ({growth:+.1f}%)  target within 10%"
        f"  [{args.updates - 100:,} updates applied in {elapsed:.1f} s]"
    )
    stats = page.evaluate("signageKiosk.stats")
    out.append(
        f"page handler: max {stats['maxApplyMs']:.1f} ms per message"
        f" over {stats['messages']:,} messages"
    )
    ctx.close()
    return out


if __name__ == "__main__":
    main()
