"""Relay benchmark: upstream frame -> last kiosk, for 100, 500 and 1000 kiosk sockets.

    .venv/bin/python bench/relay.py [--counts 100,500,1000] [--flips 40] [--worker gthread|gevent]

On loopback against the built-in simulator (in this process). The signage server runs as
`signage serve` (gunicorn, one worker) in a subprocess; kiosks are asyncio WebSocket clients in
this process. For each kiosk count, a room is flipped in the simulator `--flips` times and we
time from the flip (the simulator writes the upstream `live` frame at once) until the last
kiosk of the floor has the change. The same fan-out by a minimal asyncio `websockets` broadcast
server (bench/baseline_broadcast.py), fed by the same simulator socket, gives the ratio.

Also reported: server RSS per kiosk (worker process), upstream calls made, token requests, and
the latency of 50 kiosks with and without one stalled kiosk that never reads.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from signage.sim import SimServer, SimSettings  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(p) for p in fh.read().split()]
    except OSError:
        return []


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * pct / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


class Kiosks:
    """N WebSocket clients; each records when it first sees a room reach a given value."""

    def __init__(self) -> None:
        self.seen: list[dict[tuple[str, object], float]] = []
        self.ready = 0
        self.tasks: list[asyncio.Task] = []
        self.conns = []

    async def _one(self, url: str, index: int, mode: str) -> None:
        seen = self.seen[index]
        async with connect(
            url, compression=None, ping_interval=None, open_timeout=60, max_queue=None
        ) as ws:
            self.conns.append(ws)
            # The baseline relays upstream frames only; it has no snapshot to send on join.
            counted = mode != "signage"
            if counted:
                self.ready += 1
            async for raw in ws:
                now = time.perf_counter()
                message = json.loads(raw)
                if not counted:
                    counted = True
                    self.ready += 1
                if mode == "signage":
                    for sid, room in (message.get("rooms") or {}).items():
                        seen.setdefault((sid, room.get("occupied")), now)
                else:  # the baseline relays Density's frames as they are
                    for sid, entry in (message.get("data") or {}).items():
                        seen.setdefault((sid, entry.get("presence")), now)

    async def start(self, url: str, n: int, mode: str) -> None:
        for i in range(n):
            self.seen.append({})
            self.tasks.append(asyncio.create_task(self._one(url, len(self.seen) - 1, mode)))
            if i % 50 == 49:
                await asyncio.sleep(0.05)  # a building's screens do not all connect in 1 ms
        deadline = time.monotonic() + 120
        while self.ready < len(self.tasks):
            failed = [t for t in self.tasks if t.done() and t.exception()]
            if failed:
                raise RuntimeError(f"{len(failed)} kiosks failed: {failed[0].exception()!r}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"only {self.ready}/{len(self.tasks)} kiosks got a first message"
                )
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def measure_flips(
    sim: SimServer, kiosks: Kiosks, room: str, flips: int, indices: range | None = None
) -> list[float]:
    """Latency (ms) from each flip to the last kiosk that has it."""
    latencies = []
    group = indices if indices is not None else range(len(kiosks.seen))
    state = sim.world.space_state(room).presence
    for _ in range(flips):
        state = not state
        for i in group:  # forget this value from earlier messages (the snapshot included)
            kiosks.seen[i].pop((room, state), None)
        t0 = time.perf_counter()
        sim.world.set_space(room, presence=state, health="healthy")
        deadline = time.monotonic() + 10
        while True:
            times = [kiosks.seen[i].get((room, state)) for i in group]
            if all(t is not None for t in times):
                latencies.append((max(times) - t0) * 1000)
                break
            if time.monotonic() > deadline:
                missing = sum(1 for t in times if t is None)
                raise RuntimeError(f"{missing} kiosks never saw flip to {state}")
            await asyncio.sleep(0.002)
        await asyncio.sleep(0.15)
    return latencies


def stalled_socket(port: int, path: str) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    return s


class SignageServer:
    def __init__(self, sim: SimServer, tmp: str, worker: str) -> None:
        settings = SimSettings()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DENSITY_API_URL": sim.url,
            "DENSITY_CLIENT_ID": settings.client_id,
            "DENSITY_CLIENT_SECRET": settings.client_secret,
            "DENSITY_API_TOKEN": settings.static_token,
            "SIGNAGE_DATABASE": os.path.join(tmp, "bench.sqlite3"),
            "SIGNAGE_SECRET_KEY": "bench",
            "SIGNAGE_CONFIG": os.path.join(tmp, "none.toml"),
            "SIGNAGE_PUBLIC_URL": self.url,
            "SIGNAGE_MAX_KIOSKS": "1200",
            # Every bench kiosk shares one credential and one address, unlike a building.
            "SIGNAGE_KIOSK_MAX_PER_DISPLAY": "1200",
            "SIGNAGE_KIOSK_MAX_PER_ADDRESS": "1200",
            "SIGNAGE_KIOSK_QUEUE": "256",
            "SIGNAGE_HEARTBEAT_INTERVAL": "15",
            "SIGNAGE_WORKER_CLASS": worker,
        }
        self.proc: subprocess.Popen | None = None

    def cli(self, *args: str) -> str:
        return subprocess.run(
            [sys.executable, "-m", "signage", *args],
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "signage",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=open(os.environ.get("BENCH_SERVER_LOG", os.devnull), "ab"),
        )
        wait_http(f"{self.url}/healthz")

    def worker_pid(self) -> int:
        kids = children(self.proc.pid)
        return kids[0] if kids else self.proc.pid

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class Baseline:
    def __init__(self, sim: SimServer, floor: str) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "bench" / "baseline_broadcast.py"),
                "--port",
                str(self.port),
                "--density",
                sim.url,
                "--token",
                SimSettings().static_token,
                "--floor",
                floor,
            ]
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("baseline did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def raise_file_limit(wanted: int = 20000) -> None:
    """Every kiosk socket is a file descriptor; many systems allow only 1024 by default."""
    try:
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, wanted), hard))
    except (ValueError, OSError) as exc:
        print(f"could not raise the open-file limit: {exc}", file=sys.stderr)


async def run(args: argparse.Namespace) -> dict:
    raise_file_limit()
    counts = [int(c) for c in args.counts.split(",")]
    results: dict = {
        "machine": f"{platform.node()} {os.cpu_count()} cores, "
        f"{platform.python_version()}, {platform.platform()}",
        "worker": args.worker,
        "runs": [],
    }
    with (
        SimServer(SimSettings(refresh_interval=600), seed=1) as sim,
        tempfile.TemporaryDirectory() as tmp,
    ):
        state = sim.world.state()
        floor = sorted(state["floors"])[0]
        display_id = next(d for d, f in sorted(sim.world.displays.items()) if f == floor)
        room = next(
            sid
            for sid, sp in state["spaces"].items()
            if sp["floor_id"] == floor and sp["counting_mode"] == "oa"
        )
        server = SignageServer(sim, tmp, args.worker)
        info = json.loads(
            server.cli(
                "displays",
                "add",
                "--name",
                "Bench",
                "--floor",
                floor,
                "--density-display-id",
                display_id,
                "--json",
            )
        )
        socket_url = info["socket_url"]
        socket_path = "/ws/kiosk/" + socket_url.rsplit("/", 1)[1]
        for n in counts:
            calls_before = sim.calls()["calls"]
            server.start()
            rss_idle = rss_kib(server.worker_pid())
            kiosks = Kiosks()
            await kiosks.start(socket_url, n, "signage")
            await asyncio.sleep(1.0)
            rss_loaded = rss_kib(server.worker_pid())
            ours = await measure_flips(sim, kiosks, room, args.flips)
            calls_after = sim.calls()["calls"]
            upstream_sockets = sim.sockets_open(floor, kind="presence")
            await kiosks.stop()
            server.stop()

            baseline = Baseline(sim, floor)
            base_kiosks = Kiosks()
            await base_kiosks.start(f"ws://127.0.0.1:{baseline.port}/", n, "baseline")
            theirs = await measure_flips(sim, base_kiosks, room, args.flips)
            await base_kiosks.stop()
            baseline.stop()

            delta = {k: calls_after.get(k, 0) - calls_before.get(k, 0) for k in calls_after}
            run_result = {
                "kiosks": n,
                "p50_ms": round(statistics.median(ours), 1),
                "p99_ms": round(percentile(ours, 99), 1),
                "baseline_p50_ms": round(statistics.median(theirs), 1),
                "baseline_p99_ms": round(percentile(theirs, 99), 1),
                "p99_ratio": round(percentile(ours, 99) / max(0.001, percentile(theirs, 99)), 2),
                "rss_per_kiosk_kib": round((rss_loaded - rss_idle) / n, 1),
                "upstream_presence_sockets": upstream_sockets,
                "token_requests": delta.get("POST /v3/wayfinding/token", 0),
                "upstream_calls": {k: v for k, v in delta.items() if v},
            }
            results["runs"].append(run_result)
            print(json.dumps(run_result), flush=True)

        # 50 kiosks with and without a stalled one.
        server.start()
        kiosks = Kiosks()
        await kiosks.start(socket_url, 50, "signage")
        clean = await measure_flips(sim, kiosks, room, args.flips)
        stalled = stalled_socket(server.port, socket_path)
        await asyncio.sleep(0.5)
        with_stalled = await measure_flips(sim, kiosks, room, args.flips)
        stalled.close()
        await kiosks.stop()
        server.stop()
        results["stalled"] = {
            "kiosks": 50,
            "p99_ms_without": round(percentile(clean, 99), 1),
            "p99_ms_with_one_stalled": round(percentile(with_stalled, 99), 1),
        }
        print(json.dumps(results["stalled"]), flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="100,500,1000")
    parser.add_argument("--flips", type=int, default=40)
    parser.add_argument("--worker", default="gthread", choices=["gthread", "gevent"])
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "relay.json"))
    args = parser.parse_args()
    results = asyncio.run(run(args))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
