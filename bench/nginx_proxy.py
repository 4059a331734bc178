"""What deploy/nginx.conf adds to the media-stream leg: websocket echo round trips of one Twilio-sized
frame (160 bytes of mu-law as base64 JSON), direct to uvicorn vs through nginx with TLS on loopback.

    .venv/bin/python -m bench.nginx_proxy [--frames 2000]

Prints p50/p95/p99 in ms for both paths. Figures only; nothing passes or fails.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import ssl
import statistics
import tempfile
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from tests.deploy.nginx import configure, running
from tests.ops.servers import AppServer
from websockets.asyncio.client import connect

FRAME = json.dumps({"event": "media", "media": {"payload": base64.b64encode(b"\xff" * 160).decode()}})


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        await websocket.send_text(message.get("text") or "")


async def round_trips(url: str, frames: int, context: ssl.SSLContext | None) -> list[float]:
    times = []
    async with connect(url, ssl=context, compression=None) as ws:
        for _ in range(50):  # warm-up
            await ws.send(FRAME)
            await ws.recv()
        for _ in range(frames):
            started = time.perf_counter()
            await ws.send(FRAME)
            await ws.recv()
            times.append(1000 * (time.perf_counter() - started))
    return times


def summary(name: str, times: list[float]) -> str:
    q = statistics.quantiles(times, n=100)
    return f"{name:<22} p50 {q[49]:6.3f} ms   p95 {q[94]:6.3f} ms   p99 {q[98]:6.3f} ms   (n={len(times)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=2000)
    frames = parser.parse_args().frames
    app = Starlette(routes=[WebSocketRoute("/media-stream", echo)])
    with tempfile.TemporaryDirectory() as tmp, AppServer(app) as bridge:
        nginx = configure(Path(tmp), "127.0.0.1:9", f"127.0.0.1:{bridge.port}")
        with running(nginx):
            context = ssl.create_default_context(cafile=str(nginx.cert))
            direct = asyncio.run(round_trips(f"ws://127.0.0.1:{bridge.port}/media-stream", frames, None))
            proxied = asyncio.run(
                round_trips(f"wss://localhost:{nginx.https_port}/media-stream", frames, context)
            )
    print(summary("direct (uvicorn)", direct))
    print(summary("nginx + TLS", proxied))
    added = statistics.median(proxied) - statistics.median(direct)
    print(f"nginx adds {added:.3f} ms per round trip at the median (two proxy hops per round trip)")


if __name__ == "__main__":
    main()
