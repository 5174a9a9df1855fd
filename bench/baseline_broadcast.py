"""The baseline for bench/relay.py: a minimal asyncio `websockets` broadcast server.

It holds one upstream socket to the (simulated) Density floor and relays every frame as it is
to every connected client with `websockets.broadcast`. No queues, no state, no honesty rules:
the least work a relay can do, to measure ours against.
"""

from __future__ import annotations

import argparse
import asyncio

import httpx
from websockets.asyncio.client import connect
from websockets.asyncio.server import broadcast, serve


async def main(port: int, density: str, token: str, floor: str) -> None:
    clients = set()

    async def handler(ws):
        clients.add(ws)
        try:
            await ws.wait_closed()
        finally:
            clients.discard(ws)

    async with serve(handler, "127.0.0.1", port, compression=None, ping_interval=None):
        while True:
            async with httpx.AsyncClient() as http:
                response = await http.post(
                    f"{density}/v3/analytics/ws/floor/{floor}/presence",
                    headers={"Authorization": f"Bearer {token}"},
                )
            async with connect(response.json()["ws_url"], compression=None) as upstream:
                async for frame in upstream:
                    broadcast(clients, frame)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--density", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--floor", required=True)
    args = parser.parse_args()
    asyncio.run(main(args.port, args.density, args.token, args.floor))
