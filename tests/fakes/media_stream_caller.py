"""`MediaStreamCaller`: plays Twilio's side of a bidirectional Media Stream against our app.

Like Twilio it sends `connected`, `start` (streamSid, callSid, accountSid, tracks,
customParameters, mediaFormat audio/x-mulaw 8000 Hz mono), then a `media` message every 20 ms for
the whole call (silence when the caller is quiet, speech while `say_wav` plays), `dtmf` on
request and `stop` on hang-up. It simulates the phone's playout of what the agent sends: agent
audio plays in real time; a `mark` is echoed back once the audio queued before it has played; a
`clear` drops queued audio and echoes pending marks at once.

    async with MediaStreamCaller(app_ws_url, custom_parameters={"from": "+15551234567"}) as caller:
        await caller.wait_for_agent_audio(timeout=5)   # the greeting
        await caller.wait_for_quiet(0.5, timeout=10)
        await caller.say_wav(speech_wav("I'd like to book a table"))
        await caller.wait_for_agent_audio(timeout=5)
        print(caller.greeting_latency, caller.turns[-1].voice_to_voice)
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.fakes.audio import FRAME_BYTES, ULAW_SILENCE, is_silent, read_ulaw_frames
from tests.fakes.twilio_rest import FakeTwilioREST, new_sid

FRAME_SECONDS = 0.02
SILENT_FRAME = ULAW_SILENCE * FRAME_BYTES


@dataclass
class AgentAudio:
    """One outbound `media` message from the agent, decoded."""

    at: float
    stream_sid: str
    audio: bytes


@dataclass
class Turn:
    """One caller utterance and when the agent's answer started."""

    label: str
    speech_started: float | None = None  # first non-silent caller frame sent
    speech_ended: float | None = None  # last non-silent caller frame sent
    first_agent_audio: float | None = None  # first non-silent agent frame received after speech_ended
    agent_talked_over: bool = False  # agent audio arrived while the caller was still speaking

    @property
    def voice_to_voice(self) -> float | None:
        """Seconds from the caller's last speech frame to the first agent audio frame after it."""
        if self.speech_ended is None or self.first_agent_audio is None:
            return None
        return self.first_agent_audio - self.speech_ended


class MediaStreamCaller:
    """Async context manager acting as Twilio on one call's Media Stream websocket."""

    def __init__(
        self,
        ws_url: str,
        *,
        custom_parameters: dict[str, str] | None = None,
        call_sid: str | None = None,
        account_sid: str | None = None,
        stream_sid: str | None = None,
        from_number: str = "+15005550006",
        to_number: str = "+15005550001",
        extra_headers: dict[str, str] | None = None,
        auth_token: str | None = None,
        twilio_rest: FakeTwilioREST | None = None,
        open_timeout: float = 10.0,
    ) -> None:
        self.ws_url = ws_url
        self.custom_parameters = dict(custom_parameters or {})
        self.account_sid = account_sid or (twilio_rest.account_sid if twilio_rest else new_sid("AC"))
        self.call_sid = call_sid or new_sid("CA")
        self.stream_sid = stream_sid or new_sid("MZ")
        self.from_number, self.to_number = from_number, to_number
        self.headers = dict(extra_headers or {})
        if auth_token is not None:  # sign the handshake as Twilio does (URL, no params)
            from twilio.request_validator import RequestValidator

            self.headers["X-Twilio-Signature"] = RequestValidator(auth_token).compute_signature(ws_url, {})
        self.twilio_rest, self.open_timeout = twilio_rest, open_timeout
        # records
        self.received: list[tuple[float, Any]] = []
        self.agent_audio: list[AgentAudio] = []
        self.marks_received: list[tuple[float, str]] = []
        self.marks_sent_back: list[tuple[float, str]] = []
        self.echoes_lost = 0  # mark echoes the agent had closed the stream before (not errors)
        self.clears: list[float] = []
        self.protocol_errors: list[str] = []
        self.played_audio = bytearray()  # what the caller actually heard
        self.turns: list[Turn] = []
        self.started_at: float | None = None
        self.first_agent_audio_at: float | None = None
        self.closed_at: float | None = None
        self.close_code: int | None = None
        self.ended_by: str | None = None  # "caller" | "agent_hangup" | "redirect" | "server_closed"
        self.redirects: list[dict[str, Any]] = []
        # internals
        self._ws: ClientConnection | None = None
        self._seq = 0
        self._chunk = 0
        self._outgoing: deque[bytes] = deque()
        self._outgoing_done: asyncio.Event | None = None
        self._current_turn: Turn | None = None
        self._playout: deque[bytes | str] = deque()  # bytes = audio frames, str = mark names
        self._changed = asyncio.Event()
        self._last_audible_at: float = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = False
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle --------------------------------------------------------------------------------
    async def __aenter__(self) -> MediaStreamCaller:
        self._loop = asyncio.get_running_loop()
        if self.twilio_rest is not None:
            self.twilio_rest.add_call(self.call_sid, from_=self.from_number, to=self.to_number)
            self.twilio_rest.on_call_update(self.call_sid, self._on_rest_update)
        self._ws = await connect(
            self.ws_url,
            additional_headers=self.headers,
            compression=None,
            open_timeout=self.open_timeout,
            max_size=None,
        )
        await self._send({"event": "connected", "protocol": "Call", "version": "1.0.0"}, numbered=False)
        start = {
            "streamSid": self.stream_sid,
            "accountSid": self.account_sid,
            "callSid": self.call_sid,
            "tracks": ["inbound"],
            "customParameters": self.custom_parameters,
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        }
        await self._send({"event": "start", "start": start, "streamSid": self.stream_sid})
        self.started_at = time.monotonic()
        self._last_audible_at = self.started_at
        self._tasks = [
            asyncio.create_task(self._receive_loop()),
            asyncio.create_task(self._uplink_loop()),
            asyncio.create_task(self._playout_loop()),
        ]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.hang_up()

    async def hang_up(self) -> None:
        """Send `stop` (as Twilio does when the caller hangs up) and close the websocket."""
        await self._end("caller")

    async def _end(self, reason: str) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.ended_by = self.ended_by or reason
        for task in self._tasks[1:]:
            task.cancel()
        if self._ws is not None and self.closed_at is None:
            stop = {"accountSid": self.account_sid, "callSid": self.call_sid}
            try:
                await self._send({"event": "stop", "stop": stop, "streamSid": self.stream_sid})
                await self._ws.close()
            except Exception:  # the app may already have closed the socket
                pass
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.closed_at is None:
            self.closed_at = time.monotonic()
        if self.twilio_rest is not None:  # the stream was the call's last verb: the call ends
            self.twilio_rest.network.stream_ended(self.call_sid)
        self._changed.set()

    def _on_rest_update(self, call: dict[str, Any]) -> None:
        """From the Twilio fake's thread: the agent hung up or redirected this call."""
        update = call.get("_update", {})
        reason = "agent_hangup" if update.get("Status") in ("completed", "canceled") else "redirect"
        if reason == "redirect":
            self.redirects.append(update)
        if self._loop is not None and not self._stopped:
            self.ended_by = self.ended_by or reason
            self._loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._end(reason)))

    # -- sending ----------------------------------------------------------------------------------
    async def _send(self, message: dict[str, Any], numbered: bool = True) -> None:
        assert self._ws is not None
        if numbered:
            self._seq += 1
            message = {"event": message["event"], "sequenceNumber": str(self._seq), **message}
        await self._ws.send(json.dumps(message))

    async def send_raw(self, text: str | bytes) -> None:
        """Send an arbitrary frame (for malformed-input tests)."""
        assert self._ws is not None
        await self._ws.send(text)

    async def send_dtmf(self, digit: str) -> None:
        """A keypad press, as Twilio reports it."""
        await self._send(
            {
                "event": "dtmf",
                "streamSid": self.stream_sid,
                "dtmf": {"track": "inbound_track", "digit": digit},
            }
        )

    async def say_wav(self, path: Path | str, label: str | None = None) -> Turn:
        """Stream a WAV as caller speech at real-time pace; returns the turn once sent."""
        return await self.say_frames(read_ulaw_frames(path), label or Path(path).name)

    async def say_frames(self, frames: list[bytes], label: str = "frames") -> Turn:
        """Stream 160-byte mu-law frames as caller speech; returns when the last has been sent."""
        turn = Turn(label=label)
        self.turns.append(turn)
        self._current_turn = turn
        done = self._outgoing_done = asyncio.Event()
        self._outgoing.extend(frames)
        await self._wait_until(
            lambda: done.is_set() or self._stopped,
            len(frames) * FRAME_SECONDS + 30,
            "caller speech to be sent",
        )
        if not done.is_set():
            raise ConnectionError(f"stream ended ({self.ended_by}) while the caller was speaking")
        self._current_turn = None
        return turn

    async def send_silence(self, seconds: float) -> None:
        """Let `seconds` of caller silence go by (silence frames keep flowing, as on a real call)."""
        await self.say_frames([SILENT_FRAME] * max(1, round(seconds / FRAME_SECONDS)), "silence")
        self.turns.pop()

    async def _uplink_loop(self) -> None:
        """One media message every 20 ms on a monotonic schedule (no sleep drift)."""
        next_at = time.monotonic()
        while True:
            frame = self._outgoing.popleft() if self._outgoing else SILENT_FRAME
            self._chunk += 1
            media = {
                "track": "inbound",
                "chunk": str(self._chunk),
                "timestamp": str((self._chunk - 1) * 20),
                "payload": base64.b64encode(frame).decode(),
            }
            await self._send({"event": "media", "media": media, "streamSid": self.stream_sid})
            turn = self._current_turn
            if turn is not None and frame is not SILENT_FRAME and not is_silent(frame):
                turn.speech_ended = time.monotonic()
                turn.speech_started = turn.speech_started or turn.speech_ended
                if turn.first_agent_audio is not None:  # the agent answered before the caller finished
                    turn.agent_talked_over, turn.first_agent_audio = True, None
            if not self._outgoing and self._outgoing_done is not None:
                self._outgoing_done.set()
                self._outgoing_done = None
                self._changed.set()
            next_at += FRAME_SECONDS
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    # -- receiving --------------------------------------------------------------------------------
    async def _receive_loop(self) -> None:
        assert self._ws is not None
        try:
            async for raw in self._ws:
                self._handle(raw)
        except ConnectionClosed as exc:  # ends the call like a server close
            if not self._stopped:  # (after our own hang-up, how the socket went down is no error)
                self.protocol_errors.append(f"receive failed: {exc!r}")
        except Exception as exc:
            self.protocol_errors.append(f"receive failed: {exc!r}")
        finally:
            self.close_code = self._ws.close_code
            if self.closed_at is None:
                self.closed_at = time.monotonic()
            if not self._stopped:
                self.ended_by = self.ended_by or "server_closed"
                self._stopped = True
                for task in self._tasks[1:]:
                    task.cancel()
            # the stream is over: what was still queued is never played (Twilio drops it too)
            self._playout = deque(item for item in self._playout if isinstance(item, str))
            if self.twilio_rest is not None:
                self.twilio_rest.network.stream_ended(self.call_sid)
            self._changed.set()

    def _handle(self, raw: str | bytes) -> None:
        now = time.monotonic()
        try:
            message = json.loads(raw)
            assert isinstance(message, dict)
        except (ValueError, AssertionError):
            self.received.append((now, raw))
            self.protocol_errors.append(f"not a JSON object: {raw[:80]!r}")
            return
        self.received.append((now, message))
        event = message.get("event")
        if event in ("media", "mark", "clear") and message.get("streamSid") != self.stream_sid:
            self.protocol_errors.append(f"{event} with streamSid {message.get('streamSid')!r}")
            return
        if event == "media":
            try:
                audio = base64.b64decode(message["media"]["payload"], validate=True)
            except (KeyError, TypeError, ValueError):
                self.protocol_errors.append("media without a valid base64 payload")
                return
            self.agent_audio.append(AgentAudio(now, message["streamSid"], audio))
            if not is_silent(audio):
                if self.first_agent_audio_at is None:
                    self.first_agent_audio_at = now
                turn = self.turns[-1] if self.turns else None
                if turn is not None and turn.speech_ended is not None and turn.first_agent_audio is None:
                    turn.first_agent_audio = now
            self._playout.extend(audio[i : i + FRAME_BYTES] for i in range(0, len(audio), FRAME_BYTES))
        elif event == "mark":
            name = str((message.get("mark") or {}).get("name", ""))
            self.marks_received.append((now, name))
            if self._playout:
                self._playout.append(name)
            else:
                self._echo_mark(name)
        elif event == "clear":
            self.clears.append(now)
            pending = [item for item in self._playout if isinstance(item, str)]
            self._playout.clear()
            for name in pending:
                self._echo_mark(name)
        else:
            self.protocol_errors.append(f"unexpected event {event!r}")
        self._changed.set()

    def _echo_mark(self, name: str) -> None:
        self.marks_sent_back.append((time.monotonic(), name))
        if self._ws is not None and not self._stopped:
            asyncio.ensure_future(self._send_echo(name))

    async def _send_echo(self, name: str) -> None:
        """A mark's echo, sent on its own: an agent that has just closed the stream gets none (the
        close may reach the socket between the mark and its echo, as on a real line)."""
        try:
            await self._send({"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}})
        except ConnectionClosed:
            self.echoes_lost += 1

    async def _playout_loop(self) -> None:
        """Play queued agent audio in real time; echo marks as the audio before them finishes."""
        next_at = time.monotonic()
        while True:
            while self._playout and isinstance(self._playout[0], str):
                self._echo_mark(str(self._playout.popleft()))
            if self._playout:
                frame = self._playout.popleft()
                assert isinstance(frame, bytes)
                self.played_audio.extend(frame)
                if not is_silent(frame):
                    self._last_audible_at = time.monotonic()
                while self._playout and isinstance(self._playout[0], str):
                    self._echo_mark(str(self._playout.popleft()))
                self._changed.set()
            next_at += FRAME_SECONDS
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    # -- waiting and measuring --------------------------------------------------------------------
    async def _wait_until(self, predicate: Any, timeout: float, what: str) -> None:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"MediaStreamCaller: timed out after {timeout}s waiting for {what}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), timeout=min(remaining, 0.05))
            except TimeoutError:
                pass

    async def wait_for_agent_audio(self, timeout: float = 10.0, since: float | None = None) -> float:  # noqa: ASYNC109
        """Wait for a non-silent agent frame received after `since` (default: now); returns its time."""
        since = time.monotonic() if since is None else since

        def heard() -> bool:
            return any(a.at >= since and not is_silent(a.audio) for a in reversed(self.agent_audio[-400:]))

        await self._wait_until(lambda: heard() or self.closed_at is not None, timeout, "agent audio")
        if not heard():
            raise ConnectionError(f"stream closed (code {self.close_code}) before any agent audio")
        return next(a.at for a in self.agent_audio if a.at >= since and not is_silent(a.audio))

    async def wait_for_quiet(self, seconds: float = 0.5, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until nothing is queued to play and the caller has heard silence for `seconds`."""
        await self._wait_until(
            lambda: (
                not any(isinstance(i, bytes) for i in self._playout)
                and time.monotonic() - self._last_audible_at >= seconds
            ),
            timeout,
            f"{seconds}s of quiet",
        )

    async def wait_for_close(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until the stream has ended (agent hang-up, redirect, or server close)."""
        await self._wait_until(lambda: self.closed_at is not None, timeout, "the stream to close")

    @property
    def greeting_latency(self) -> float | None:
        """Seconds from `start` to the first non-silent agent frame."""
        if self.started_at is None or self.first_agent_audio_at is None:
            return None
        return self.first_agent_audio_at - self.started_at

    @classmethod
    async def answer_outbound(
        cls, twilio_rest: FakeTwilioREST, call_sid: str, *, timeout: float = 20.0, **kwargs: Any  # noqa: ASYNC109
    ) -> MediaStreamCaller:
        """The callee of an outbound call: connects (on ``async with``) to the Media Stream the
        agent's answer TwiML gave the fake, with its parameters and a signed handshake."""
        stream = await twilio_rest.network.stream_for(call_sid, timeout)
        call = twilio_rest.calls[call_sid]
        return cls(
            stream["url"],
            custom_parameters=stream["parameters"],
            call_sid=call_sid,
            from_number=call["from"],
            to_number=call["to"],
            twilio_rest=twilio_rest,
            auth_token=twilio_rest.auth_token,
            **kwargs,
        )

    @property
    def agent_audio_bytes(self) -> bytes:
        """All agent audio received, concatenated."""
        return b"".join(a.audio for a in self.agent_audio)
