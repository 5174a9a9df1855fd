"""Soak: 500 kiosks for 30 minutes through a busy simulated day.

    .venv/bin/python bench/soak.py [--kiosks 500] [--minutes 30] [--speed 60]

The simulator plays its `day` scenario (people coming and going, sensors failing and
recovering, socket drops, forced 429 bursts) at `--speed`x. `signage serve` runs as in
production; kiosks are asyncio clients in this process that apply the protocol as a player
should: they check every update's sequence number, ask for a resync when a heartbeat shows a
gap, and reconnect when cut.

Reported: the server worker's RSS over time (first vs last fifth, and the slope), 429s that our
own traffic drew from the simulator's rate limiter (the scenario's forced bursts are counted
apart), sequence gaps and resyncs, reconnects, and upstream calls by endpoint.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from relay import SignageServer, raise_file_limit, rss_kib  # noqa: E402

from signage.sim import SimServer, SimSettings  # noqa: E402


class SoakKiosk:
    """A player that checks its sequence numbers and resyncs on a gap."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.epoch: str | None = None
        self.seq: int | None = None
        self.messages = 0
        self.gaps = 0
        self.resyncs = 0
        self.reconnects = 0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                async with connect(
                    self.url, compression=None, open_timeout=30, ping_interval=None
                ) as ws:
                    async for raw in ws:
                        message = json.loads(raw)
                        self.messages += 1
                        kind, seq, epoch = message["type"], message.get("seq"), message.get("epoch")
                        if kind == "snapshot" or epoch != self.epoch:
                            self.epoch, self.seq = epoch, seq
                        elif kind == "update":
                            if seq != self.seq + 1:
                                self.gaps += 1
                            self.seq = seq
                        elif kind == "heartbeat" and seq is not None and seq > self.seq:
                            self.resyncs += 1  # we missed something: ask for a snapshot
                            await ws.send(json.dumps({"type": "resync"}))
                        if stop.is_set():
                            return
            except (TimeoutError, OSError, ConnectionClosed):
                pass
            if not stop.is_set():
                self.reconnects += 1
                await asyncio.sleep(0.5 + (hash(self) % 100) / 50)


async def run(args: argparse.Namespace) -> dict:
    raise_file_limit()
    result: dict = {
        "machine": f"{platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}",
        "kiosks": args.kiosks,
        "minutes": args.minutes,
        "speed": args.speed,
    }
    with (
        SimServer(SimSettings(), seed=7, scenario="day", speed=args.speed) as sim,
        tempfile.TemporaryDirectory() as tmp,
    ):
        server = SignageServer(sim, tmp, "gthread")
        server.env["SIGNAGE_HEARTBEAT_INTERVAL"] = "15"
        by_floor: dict[str, str] = {}
        for display_id, floor_id in sorted(sim.world.displays.items()):
            by_floor.setdefault(floor_id, display_id)
        urls = []
        for floor_id, display_id in sorted(by_floor.items()):
            info = json.loads(
                server.cli(
                    "displays",
                    "add",
                    "--name",
                    f"Soak {floor_id[-4:]}",
                    "--floor",
                    floor_id,
                    "--density-display-id",
                    display_id,
                    "--json",
                )
            )
            urls.append(info["socket_url"])
        server.start()
        stop = asyncio.Event()
        kiosks = [SoakKiosk(urls[i % len(urls)]) for i in range(args.kiosks)]
        tasks = [asyncio.create_task(k.run(stop)) for k in kiosks]
        started = time.monotonic()
        samples: list[tuple[float, int]] = []
        deadline = started + args.minutes * 60
        while time.monotonic() < deadline:
            await asyncio.sleep(min(30, max(1, deadline - time.monotonic())))
            elapsed = (time.monotonic() - started) / 60
            samples.append((round(elapsed, 2), rss_kib(server.worker_pid())))
            print(
                f"{elapsed:5.1f} min  worker RSS {samples[-1][1] / 1024:.1f} MiB  "
                f"messages {sum(k.messages for k in kiosks)}",
                flush=True,
            )
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        calls = sim.calls()
        server.stop()

    fifth = max(1, len(samples) // 5)
    first = statistics.mean(r for _, r in samples[1 : 1 + fifth]) if len(samples) > 1 else 0
    last = statistics.mean(r for _, r in samples[-fifth:])
    xs, ys = [t for t, _ in samples], [r for _, r in samples]
    slope = statistics.linear_regression(xs, ys).slope if len(samples) > 2 else 0.0
    result.update(
        {
            "rss_mib_first_fifth": round(first / 1024, 1),
            "rss_mib_last_fifth": round(last / 1024, 1),
            "rss_slope_kib_per_min": round(slope, 1),
            "rss_samples": samples,
            "messages": sum(k.messages for k in kiosks),
            "sequence_gaps": sum(k.gaps for k in kiosks),
            "resyncs": sum(k.resyncs for k in kiosks),
            "reconnects": sum(k.reconnects for k in kiosks),
            "rate_limited_by_density": calls["rate_limited"],
            "all_429": calls["status"].get("429", 0),
            "upstream_calls": calls["calls"],
        }
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kiosks", type=int, default=500)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--speed", type=float, default=60)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "soak.json"))
    args = parser.parse_args()
    result = asyncio.run(run(args))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    summary = {k: v for k, v in result.items() if k not in ("rss_samples", "upstream_calls")}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
