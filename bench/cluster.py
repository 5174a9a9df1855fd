"""Fan-out through Redis: `signage serve --workers 4` vs one process, at 2,000 and 5,000 kiosks.

    .venv/bin/python bench/cluster.py [--counts 2000,5000] [--workers 4] [--flips 30]
                                      [--store postgresql|sqlite]

Everything on loopback and started here: the built-in Density simulator (in this process), a
real redis-server, a real PostgreSQL (tests/pg_server.py; `--store sqlite` to skip it), and the
servers as subprocesses. For each kiosk count: the fleet (`signage serve --workers N` with
SIGNAGE_REDIS_URL, the kiosks on its one port), then, in the same run, one `signage serve`
process without Redis at the same count. A room is flipped in the simulator `--flips` times;
latency is from the flip to the last kiosk's receipt (bench/relay.py's method and kiosk
clients, which run in this process and share its two cores with the servers).

Each worker is sized for its share (SIGNAGE_MAX_KIOSKS = kiosks / workers + 100): gunicorn's
gthread worker accepts no more than that (worker_connections), which spreads the sockets; left
unsized, the first worker to wake takes nearly all of them.

Reported per run: fan-out p50/p99, RSS per kiosk (workers, loaded minus idle), upstream presence
sockets for the floor (must be 1), the kiosks each worker holds, token requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from relay import (  # noqa: E402  (bench/relay.py: the single-process method and its kiosks)
    Kiosks,
    children,
    free_port,
    measure_flips,
    percentile,
    raise_file_limit,
    rss_kib,
    wait_http,
)

from signage.sim import SimServer, SimSettings  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402


def server_side_inodes(port: int) -> set[str]:
    """Socket inodes of established TCP connections whose local port is `port` (loopback)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as fh:
                next(fh)
                for line in fh:
                    fields = line.split()
                    local, state, inode = fields[1], fields[3], fields[9]
                    if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:
                        inodes.add(inode)
        except OSError:
            pass
    return inodes


def kiosk_sockets(pid: int, inodes: set[str]) -> int:
    """How many of those connections a process holds: the kiosks on that worker."""
    count = 0
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:[") and link[8:-1] in inodes:
                count += 1
    except OSError:
        pass
    return count


class Server:
    """`signage serve` in a subprocess: the fleet (--workers, Redis) or one process."""

    def __init__(self, env: dict[str, str], workers: int, max_kiosks: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.env = {
            **env,
            "SIGNAGE_PUBLIC_URL": self.url,
            "SIGNAGE_MAX_KIOSKS": str(max_kiosks),
        }
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        args = [sys.executable, "-m", "signage", "serve", "--host", "127.0.0.1"]
        args += ["--port", str(self.port), "--workers", str(self.workers)]
        self.proc = subprocess.Popen(
            args,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=open(os.environ.get("BENCH_SERVER_LOG", os.devnull), "ab"),
        )
        wait_http(f"{self.url}/healthz", timeout=60)
        deadline = time.monotonic() + 30
        while len(self.worker_pids()) < self.workers and time.monotonic() < deadline:
            time.sleep(0.1)

    def worker_pids(self) -> list[int]:
        return children(self.proc.pid) if self.proc else []

    def rss(self) -> int:
        return sum(rss_kib(pid) for pid in self.worker_pids())

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


async def measure(
    sim: SimServer, server: Server, socket_url: str, floor: str, room: str, n: int, flips: int
) -> dict:
    calls_before = sim.calls()["calls"]
    server.start()
    await asyncio.sleep(1.0)
    rss_idle = server.rss()
    kiosks = Kiosks()
    started = time.monotonic()
    await kiosks.start(socket_url, n, "signage")
    connect_s = time.monotonic() - started
    await asyncio.sleep(2.0)
    rss_loaded = server.rss()
    inodes = server_side_inodes(server.port)
    per_worker = sorted((kiosk_sockets(p, inodes) for p in server.worker_pids()), reverse=True)
    latencies = await measure_flips(sim, kiosks, room, flips)
    upstream = sim.sockets_open(floor, kind="presence")
    calls_after = sim.calls()["calls"]
    await kiosks.stop()
    server.stop()
    delta = {k: calls_after.get(k, 0) - calls_before.get(k, 0) for k in calls_after}
    return {
        "kiosks": n,
        "workers": server.workers,
        "p50_ms": round(statistics.median(latencies), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "max_ms": round(max(latencies), 1),
        "rss_per_kiosk_kib": round((rss_loaded - rss_idle) / n, 1),
        "rss_workers_mib": round(rss_loaded / 1024, 1),
        "kiosks_per_worker": per_worker,
        "connect_s": round(connect_s, 1),
        "upstream_presence_sockets": upstream,
        "token_requests": delta.get("POST /v3/wayfinding/token", 0),
    }


async def run(args: argparse.Namespace) -> dict:
    raise_file_limit(60000)
    counts = [int(c) for c in args.counts.split(",")]
    results: dict = {
        "machine": f"{platform.node()} {os.cpu_count()} cores, "
        f"{platform.python_version()}, {platform.platform()}",
        "store": args.store,
        "runs": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        redis_server = RedisServer(Path(tmp) / "redis").start()
        pg = None
        try:
            if args.store == "postgresql":
                from tests.pg_server import PgServer

                pg = PgServer().start()
                database = pg.create_database()
            else:
                database = os.path.join(tmp, "bench.sqlite3")
            with SimServer(SimSettings(refresh_interval=600), seed=1) as sim:
                settings = SimSettings()
                base = {
                    **os.environ,
                    "DENSITY_API_URL": sim.url,
                    "DENSITY_CLIENT_ID": settings.client_id,
                    "DENSITY_CLIENT_SECRET": settings.client_secret,
                    "DENSITY_API_TOKEN": settings.static_token,
                    "SIGNAGE_DATABASE": database,
                    "SIGNAGE_SECRET_KEY": "bench",
                    "SIGNAGE_CONFIG": os.path.join(tmp, "none.toml"),
                    "SIGNAGE_KIOSK_QUEUE": "256",
                    "SIGNAGE_HEARTBEAT_INTERVAL": "15",
                    "SIGNAGE_LOG_LEVEL": "WARNING",
                    # Every bench kiosk shares one credential and one address, unlike a building.
                    "SIGNAGE_KIOSK_MAX_PER_DISPLAY": "100000",
                    "SIGNAGE_KIOSK_MAX_PER_ADDRESS": "100000",
                }
                state = sim.world.state()
                floor = sorted(state["floors"])[0]
                display_id = next(d for d, f in sorted(sim.world.displays.items()) if f == floor)
                room = next(
                    sid
                    for sid, sp in state["spaces"].items()
                    if sp["floor_id"] == floor and sp["counting_mode"] == "oa"
                )
                cli = [sys.executable, "-m", "signage"]
                subprocess.run([*cli, "init-db"], env=base, check=True, capture_output=True)
                info = json.loads(
                    subprocess.run(
                        [*cli, "displays", "add", "--name", "Bench", "--floor", floor,
                         "--density-display-id", display_id, "--json"],
                        env={**base, "SIGNAGE_PUBLIC_URL": "http://127.0.0.1:1"},
                        check=True, capture_output=True, text=True,
                    ).stdout
                )  # fmt: skip
                credential = info["socket_url"].rsplit("/", 1)[1]
                fleet_env = {**base, "SIGNAGE_REDIS_URL": redis_server.url}
                for n in counts:
                    for label, env, workers, max_kiosks in (
                        ("fleet", fleet_env, args.workers, -(-n // args.workers) + 100),
                        ("single", base, 1, n + 100),
                    ):
                        server = Server(env, workers, max_kiosks)
                        url = f"ws://127.0.0.1:{server.port}/ws/kiosk/{credential}"
                        try:
                            result = await measure(sim, server, url, floor, room, n, args.flips)
                        except Exception as exc:  # say what broke and go on with the next
                            server.stop()
                            result = {"kiosks": n, "workers": workers, "error": repr(exc)[:300]}
                        result["setup"] = label
                        results["runs"].append(result)
                        print(json.dumps(result), flush=True)
        finally:
            if pg is not None:
                pg.remove()
            redis_server.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="2000,5000")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--flips", type=int, default=30)
    parser.add_argument("--store", default="postgresql", choices=["postgresql", "sqlite"])
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "cluster.json"))
    args = parser.parse_args()
    results = asyncio.run(run(args))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
