"""`FakeServer`: run a provider fake (an ASGI app) on 127.0.0.1 in a background thread.

Every fake records the requests it receives and can inject faults, so tests can assert on what
product code put on the wire and how it copes when a provider is slow, fails, hangs or drops.

Faults are armed from the test thread and consumed by the next matching requests, in order:
``fail_next`` (answer with an error status and the provider's error body), ``hang_next`` (accept
and never answer until the client gives up) and ``drop_next`` (cut the connection mid-response,
or close a websocket after its first message). ``latency`` delays every answer. A fault armed with
``path`` waits for a request whose path contains it (other requests pass untouched), so a test can
break one endpoint of a provider (its transcriptions, not its chat) for a whole call.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import uvicorn
from starlette.datastructures import UploadFile
from starlette.requests import Request

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass
class RecordedRequest:
    """One request as the fake received it (websocket handshakes have method ``WEBSOCKET``)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    form: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    body: bytes = b""
    at: float = field(default_factory=time.monotonic)


@dataclass
class _Fault:
    kind: str  # "fail" | "hang" | "drop"
    status: int = 500
    path: str | None = None  # only requests whose path contains this (None: any request)


class _Dropped(BaseException):
    """Raised inside a response to cut the connection (BaseException so handlers can't swallow it)."""


class _QuietDrops(logging.Filter):
    """Hide uvicorn's complaint about the responses we cut on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "without completing response" not in record.getMessage()


logging.getLogger("uvicorn.error").addFilter(_QuietDrops())


class FakeServer:
    """Base class: subclasses implement `build_app()` and may override `error_body()`."""

    name = "fake"
    lifespan = "off"  # uvicorn's lifespan setting: a fake has no startup or shutdown of its own

    def __init__(self) -> None:
        self.latency: float = 0.0
        self.requests: list[RecordedRequest] = []
        self._faults: deque[_Fault] = deque()
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self.port: int = 0
        self._app: ASGIApp | None = None

    # -- subclass hooks ---------------------------------------------------------------------------
    def build_app(self) -> ASGIApp:  # pragma: no cover - abstract
        """Return the ASGI app speaking the provider's protocol."""
        raise NotImplementedError

    def error_body(self, status: int) -> dict[str, Any]:
        """The provider's JSON error body for an injected failure with `status`."""
        return {"error": {"message": f"Injected failure {status}", "status": status}}

    def reset_state(self) -> None:
        """Forget provider-specific state (subclasses extend)."""

    # -- lifecycle --------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """http://127.0.0.1:PORT"""
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        """ws://127.0.0.1:PORT"""
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> FakeServer:
        """Bind an ephemeral port and serve in a background thread; returns once accepting."""
        if self._thread is not None:
            return self
        self._app = self.build_app()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._asgi,
            log_level="warning",
            ws="websockets-sansio",
            lifespan=self.lifespan,
            interface="asgi3",
            timeout_graceful_shutdown=1,
            timeout_keep_alive=30,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._serve, args=(self._server, sock), name=f"{self.name}-server", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} fake failed to start")
            time.sleep(0.005)
        return self

    def _serve(self, server: uvicorn.Server, sock: socket.socket) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stopping = asyncio.Event()
            await server.serve(sockets=[sock])

        asyncio.run(main())

    def stop(self) -> None:
        """Stop serving; hanging requests are released and the thread joined."""
        if self._server is None or self._thread is None:
            return
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Any:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)

    # -- faults and records -----------------------------------------------------------------------
    def fail_next(self, n: int = 1, status: int = 500, *, path: str | None = None) -> None:
        """The next `n` requests (to `path`, if given) get `status` with the provider's error body."""
        with self._lock:
            self._faults.extend(_Fault("fail", status, path) for _ in range(n))

    def hang_next(self, n: int = 1, *, path: str | None = None) -> None:
        """The next `n` requests (to `path`, if given) are accepted and never answered."""
        with self._lock:
            self._faults.extend(_Fault("hang", path=path) for _ in range(n))

    def drop_next(self, n: int = 1, *, path: str | None = None) -> None:
        """The next `n` requests (to `path`, if given) have their connection cut mid-response."""
        with self._lock:
            self._faults.extend(_Fault("drop", path=path) for _ in range(n))

    def reset(self) -> None:
        """Clear records, faults, latency and provider state."""
        with self._lock:
            self._faults.clear()
            self.requests.clear()
        self.latency = 0.0
        self.reset_state()

    def requests_to(self, path_substring: str) -> list[RecordedRequest]:
        """Recorded requests whose path contains `path_substring`."""
        return [r for r in list(self.requests) if path_substring in r.path]

    def _take_fault(self, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.path is None or fault.path in path:
                    self._faults.remove(fault)
                    return fault
            return None

    async def wait_stopping(self) -> None:
        """Resolve when the server is stopping (used by hanging handlers)."""
        assert self._stopping is not None
        await self._stopping.wait()

    # -- the ASGI wrapper -------------------------------------------------------------------------
    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self._app is not None
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        else:  # lifespan, when the subclass turns it on
            await self._app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self._app is not None
        body = b""
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
        record = await _record_http(scope, body)
        with self._lock:
            self.requests.append(record)
        fault = self._take_fault(record.path)
        if self.latency:
            await asyncio.sleep(self.latency)
        if fault is not None and fault.kind == "fail":
            await _send_json(send, fault.status, self.error_body(fault.status))
            return
        if fault is not None and fault.kind == "hang":
            await self._hang(receive)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        if fault is None:
            await self._app(scope, replay, send)
            return
        # drop: pass the headers, then cut the connection before the body is complete
        sent_chunks = 0

        async def dropping_send(message: Message) -> None:
            nonlocal sent_chunks
            if message["type"] == "http.response.body":
                if sent_chunks == 0 and message.get("more_body", False):
                    sent_chunks += 1
                    await send(message)
                    return
                raise _Dropped()
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"content-length"]
                headers.append((b"content-length", b"1000000"))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self._app(scope, replay, dropping_send)
        except _Dropped:
            return

    async def _hang(self, receive: Receive) -> None:
        """Wait until the client disconnects or the server stops."""
        disconnect = asyncio.ensure_future(_wait_disconnect(receive))
        stopping = asyncio.ensure_future(self.wait_stopping())
        await asyncio.wait({disconnect, stopping}, return_when=asyncio.FIRST_COMPLETED)
        disconnect.cancel()
        stopping.cancel()

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self._app is not None
        record = RecordedRequest(
            method="WEBSOCKET",
            path=scope["path"],
            query=dict(parse_qsl(scope.get("query_string", b"").decode())),
            headers={k.decode().lower(): v.decode() for k, v in scope.get("headers", [])},
        )
        with self._lock:
            self.requests.append(record)
        fault = self._take_fault(record.path)
        if self.latency:
            await asyncio.sleep(self.latency)
        if fault is not None and fault.kind == "fail":
            await self._reject_websocket(receive, send, fault.status, self.error_body(fault.status))
            return
        if fault is not None and fault.kind == "hang":
            # accept the handshake, then never say anything; swallow what the client sends
            await receive()  # websocket.connect
            await send({"type": "websocket.accept"})
            stopping = asyncio.ensure_future(self.wait_stopping())
            try:
                while True:
                    get = asyncio.ensure_future(receive())
                    done, _ = await asyncio.wait({get, stopping}, return_when=asyncio.FIRST_COMPLETED)
                    if stopping in done:
                        get.cancel()
                        await send({"type": "websocket.close", "code": 1001})
                        return
                    if get.result()["type"] == "websocket.disconnect":
                        return
            finally:
                stopping.cancel()
        if fault is None:
            await self._app(scope, receive, send)
            return
        # drop: let the first server message through, then close with 1011 mid-stream; later
        # sends are discarded and the app's next receive sees the disconnect.
        sent, dropped = 0, asyncio.Event()

        async def dropping_send(message: Message) -> None:
            nonlocal sent
            if dropped.is_set():
                return
            await send(message)
            if message["type"] == "websocket.send":
                sent += 1
                if sent >= 1:
                    dropped.set()
                    await send({"type": "websocket.close", "code": 1011, "reason": "injected drop"})

        async def dropping_receive() -> Message:
            if dropped.is_set():
                return {"type": "websocket.disconnect", "code": 1011}
            get = asyncio.ensure_future(receive())
            stop = asyncio.ensure_future(dropped.wait())
            done, _ = await asyncio.wait({get, stop}, return_when=asyncio.FIRST_COMPLETED)
            if get in done:
                stop.cancel()
                return get.result()
            get.cancel()
            return {"type": "websocket.disconnect", "code": 1011}

        await self._app(scope, dropping_receive, dropping_send)

    async def _reject_websocket(
        self, receive: Receive, send: Send, status: int, body: dict[str, Any]
    ) -> None:
        """Refuse a websocket handshake with an HTTP status and JSON body."""
        await receive()  # websocket.connect
        data = json.dumps(body).encode()
        await send(
            {
                "type": "websocket.http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(data)).encode()),
                ],
            }
        )
        await send({"type": "websocket.http.response.body", "body": data})


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _send_json(send: Send, status: int, payload: Any) -> None:
    data = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": data})


async def _record_http(scope: Scope, body: bytes) -> RecordedRequest:
    headers = {k.decode().lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    record = RecordedRequest(
        method=scope["method"],
        path=scope["path"],
        query=dict(parse_qsl(scope.get("query_string", b"").decode())),
        headers=headers,
        body=body,
    )
    content_type = headers.get("content-type", "")
    if content_type.startswith("application/json"):
        try:
            record.json = json.loads(body)
        except ValueError:
            record.json = None
    elif content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        record.form = await parse_form(scope, body)
    return record


async def parse_form(scope: Scope, body: bytes) -> dict[str, Any]:
    """Parse a urlencoded or multipart body; files become {filename, content_type, data}."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    request = Request({**scope, "type": "http"}, receive)
    try:
        form = await request.form()
    except Exception:  # a malformed body is recorded raw; the handler answers it
        return {}
    result: dict[str, Any] = {}
    try:
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                item: Any = {
                    "filename": value.filename,
                    "content_type": value.content_type,
                    "data": await value.read(),
                }
            else:
                item = value
            if key in result:
                existing = result[key]
                result[key] = existing + [item] if isinstance(existing, list) else [existing, item]
            else:
                result[key] = item
    finally:
        await form.close()  # uploaded files are spooled to temporary files
    return result
