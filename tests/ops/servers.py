"""Test helpers: serve any ASGI app (e.g. one of our roles) or a TLS endpoint on loopback."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from pathlib import Path
from typing import Any

from tests.fakes.base import ASGIApp, FakeServer


class AppServer(FakeServer):
    """Serve a given ASGI app on an ephemeral loopback port, with FakeServer's faults.

    The app's lifespan runs as under uvicorn in production, so what it opens (the runtime's database
    engine, clients) is closed when the server stops.
    """

    name = "app"
    lifespan = "on"

    def __init__(self, app: Any) -> None:
        super().__init__()
        self._given = app

    def build_app(self) -> ASGIApp:
        return self._given


def free_port() -> int:
    """A port nothing listens on (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def self_signed(tmp: Path, *, days: int, host: str = "localhost", name: str = "cert") -> tuple[Path, Path]:
    """A self-signed certificate for ``host`` (and 127.0.0.1) valid ``days`` days, made by openssl."""
    cert, key = tmp / f"{name}.pem", tmp / f"{name}.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-sha256",
            "-days",
            str(days),
            "-subj",
            f"/CN={host}/O=phone-agent tests",
            "-addext",
            f"subjectAltName=DNS:{host},IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


class TLSServer:
    """Accepts TLS handshakes with a given certificate on 127.0.0.1 (in a thread), then closes."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(5)
            try:
                with self.context.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                conn.close()

    def __enter__(self) -> TLSServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()
