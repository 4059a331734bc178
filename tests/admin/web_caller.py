"""`WebCaller`: plays the admin softphone's side of ``/admin/web-call`` (what ``softphone.js`` does).

It opens the websocket with the admin session cookie and the page's Origin, sends ``start`` with the
CSRF token and the test caller number, then 20 ms of 16 kHz PCM every 20 ms (silence when quiet,
speech while ``say`` plays). Agent audio is "played" in real time; a ``mark`` is echoed once the
audio before it has played; ``clear`` drops what is queued (its marks are never echoed).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from tests.admin.conftest import PASSWORD
from tests.fakes.audio import pcm16_rms

RATE = 16000
FRAME_BYTES = 640  # 20 ms of 16 kHz 16-bit mono
FRAME_SECONDS = 0.02
SILENT = b"\x00" * FRAME_BYTES
AUDIBLE_RMS = 200.0


def audible(pcm: bytes) -> bool:
    """Whether 16-bit PCM is louder than near-silence."""
    return pcm16_rms(pcm) >= AUDIBLE_RMS


@dataclass
class Session:
    """A logged-in admin: the session cookie and the page's CSRF token."""

    cookie: str
    csrf: str


def admin_session(base_url: str, password: str = PASSWORD) -> Session:
    """Log in on a running agent (as a browser does) and read the CSRF token of /admin."""
    with httpx.Client(base_url=base_url, follow_redirects=False, timeout=20) as client:
        page = client.get("/admin/login")
        token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        done = client.post("/admin/login", data={"password": password, "csrf_token": token, "next": "/admin"})
        assert done.status_code == 303, done.text
        admin = client.get("/admin")
        csrf = admin.text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
        return Session(cookie=client.cookies["pa_admin"], csrf=csrf)


@dataclass
class WebTurn:
    """One utterance of the owner and when the agent's answer started."""

    speech_started: float | None = None
    speech_ended: float | None = None
    first_agent_audio: float | None = None

    @property
    def voice_to_voice(self) -> float | None:
        """Seconds from the last speech frame sent to the first audible agent audio received."""
        if self.speech_ended is None or self.first_agent_audio is None:
            return None
        return self.first_agent_audio - self.speech_ended


@dataclass
class WebCaller:
    """Async context manager acting as the softphone page on one web call."""

    base_url: str  # http://127.0.0.1:PORT
    session: Session
    caller: str = "+15550100200"
    origin: str | None = None  # default: base_url (the page's own origin)
    csrf: str | None = None  # default: the session's
    started: dict[str, Any] | None = None
    error: str | None = None
    audio: list[tuple[float, bytes]] = field(default_factory=list)
    marks_received: list[str] = field(default_factory=list)
    marks_sent_back: list[str] = field(default_factory=list)
    clears: list[float] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    turns: list[WebTurn] = field(default_factory=list)
    close_code: int | None = None
    closed_at: float | None = None

    def __post_init__(self) -> None:
        self._ws: ClientConnection | None = None
        self._outgoing: deque[bytes] = deque()
        self._playout: deque[bytes | str] = deque()
        self._last_audible = time.monotonic()
        self._tasks: list[asyncio.Task[None]] = []
        self._turn: WebTurn | None = None
        self._sent = asyncio.Event()  # the owner's speech has all been sent
        self._closed = asyncio.Event()

    async def __aenter__(self) -> WebCaller:
        url = self.base_url.replace("https://", "wss://").replace("http://", "ws://") + "/admin/web-call"
        headers = {"Cookie": f"pa_admin={self.session.cookie}", "Origin": self.origin or self.base_url}
        self._ws = await connect(url, additional_headers=headers, compression=None, max_size=None)
        start = {"event": "start", "caller": self.caller, "csrf": self.csrf or self.session.csrf}
        await self._ws.send(json.dumps(start))
        first = json.loads(await asyncio.wait_for(self._ws.recv(), timeout=20))
        if first.get("event") == "error":
            self.error = first.get("message")
            await self._wait_close()
            return self
        assert first.get("event") == "started", first
        self.started = first
        self._tasks = [
            asyncio.create_task(self._receive()),
            asyncio.create_task(self._uplink()),
            asyncio.create_task(self._play()),
        ]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.hang_up()

    async def hang_up(self) -> None:
        """Close the socket (the page's "Hang up")."""
        for task in self._tasks[1:]:
            task.cancel()
        if self._ws is not None:
            await self._ws.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.closed_at = self.closed_at or time.monotonic()

    async def _wait_close(self) -> None:
        assert self._ws is not None
        try:
            while True:
                await asyncio.wait_for(self._ws.recv(), timeout=5)
        except Exception:  # closed (the expected end) or timed out
            self.close_code = self._ws.close_code
            self.closed_at = time.monotonic()

    # -- the owner speaks -------------------------------------------------------------------------
    async def say(self, pcm: bytes) -> WebTurn:
        """Send 16 kHz PCM as the owner's speech at real-time pace; returns once it is all sent."""
        turn = WebTurn()
        self.turns.append(turn)
        step = range(0, len(pcm), FRAME_BYTES)
        self._outgoing.extend(pcm[i : i + FRAME_BYTES].ljust(FRAME_BYTES, b"\x00") for i in step)
        self._turn = turn
        self._sent.clear()
        await asyncio.wait_for(self._sent.wait(), timeout=len(step) * FRAME_SECONDS + 30)
        self._turn = None
        return turn

    async def _uplink(self) -> None:
        assert self._ws is not None
        next_at = time.monotonic()
        while True:
            frame = self._outgoing.popleft() if self._outgoing else SILENT
            await self._ws.send(frame)
            if not self._outgoing:
                self._sent.set()
            if self._turn is not None and frame is not SILENT and audible(frame):
                self._turn.speech_ended = time.monotonic()
                self._turn.speech_started = self._turn.speech_started or self._turn.speech_ended
                self._turn.first_agent_audio = None  # an answer must come after the last word
            next_at += FRAME_SECONDS
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    # -- the agent speaks -------------------------------------------------------------------------
    async def _receive(self) -> None:
        assert self._ws is not None
        try:
            async for raw in self._ws:
                now = time.monotonic()
                if isinstance(raw, bytes):
                    self.audio.append((now, raw))
                    if audible(raw):
                        for turn in self.turns:
                            if turn.speech_ended is not None and turn.first_agent_audio is None:
                                turn.first_agent_audio = now
                    self._playout.extend(raw[i : i + FRAME_BYTES] for i in range(0, len(raw), FRAME_BYTES))
                    continue
                message = json.loads(raw)
                self.events.append(message)
                if message.get("event") == "mark":
                    self.marks_received.append(message["name"])
                    self._playout.append(message["name"])
                elif message.get("event") == "clear":
                    self.clears.append(now)
                    self._playout.clear()
        finally:
            self.close_code = self._ws.close_code
            self.closed_at = time.monotonic()
            self._closed.set()
            self._sent.set()

    async def _play(self) -> None:
        assert self._ws is not None
        next_at = time.monotonic()
        while True:
            while self._playout and isinstance(self._playout[0], str):
                name = str(self._playout.popleft())
                self.marks_sent_back.append(name)
                await self._ws.send(json.dumps({"event": "mark", "name": name}))
            if self._playout:
                frame = self._playout.popleft()
                if isinstance(frame, bytes) and audible(frame):
                    self._last_audible = time.monotonic()
            next_at += FRAME_SECONDS
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    # -- waiting ----------------------------------------------------------------------------------
    async def wait_for_agent_audio(self, timeout: float = 20.0, since: float | None = None) -> float:  # noqa: ASYNC109
        """Wait for audible agent audio received after ``since`` (default now); returns its time."""
        since = time.monotonic() if since is None else since
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.closed_at is None:
            for at, pcm in reversed(self.audio[-200:]):
                if at >= since and audible(pcm):
                    return next(a for a, p in self.audio if a >= since and audible(p))
            await asyncio.sleep(0.02)
        raise TimeoutError(f"no agent audio (closed: {self.closed_at is not None}, code {self.close_code})")

    async def wait_for_quiet(self, seconds: float = 0.6, timeout: float = 30.0) -> None:  # noqa: ASYNC109
        """Wait until nothing is queued to play and the agent has been quiet for ``seconds``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            queued = any(isinstance(item, bytes) for item in self._playout)
            if not queued and time.monotonic() - self._last_audible >= seconds:
                return
            await asyncio.sleep(0.02)
        raise TimeoutError(f"the agent did not go quiet for {seconds}s")

    async def wait_for_close(self, timeout: float = 15.0) -> None:  # noqa: ASYNC109
        """Wait until the agent has closed the call."""
        await asyncio.wait_for(self._closed.wait(), timeout=timeout)
