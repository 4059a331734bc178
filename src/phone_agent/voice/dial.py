"""Dial a running agent without a phone: play Twilio's side of a call over the same protocol.

``dial(...)`` asks ``/phone/incoming`` for TwiML exactly as Twilio does (a signed POST; the
Twilio auth token is the only credential needed), connects to the ``<Stream>`` it names, sends
``connected``/``start`` and 20 ms mu-law ``media`` frames, plays the agent's audio back in real
time (echoing ``mark``s as they play, honouring ``clear``), and measures every turn.
Caller speech comes from text (espeak-ng) or WAV files.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import shutil
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from pipecat.audio.utils import create_file_resampler, pcm_to_ulaw, ulaw_to_pcm
from twilio.request_validator import RequestValidator
from websockets.asyncio.client import connect

from phone_agent.errors import PhoneAgentError

FRAME_BYTES = 160  # 20 ms of 8 kHz mu-law
FRAME_SECS = 0.02
SILENCE = b"\xff" * FRAME_BYTES
SPEECH_RMS = 200.0


class DialError(PhoneAgentError):
    """The agent could not be dialled (the message says what to check)."""

    status_code = 502


class NotAnswered(DialError):
    """The agent answered the webhook without a media stream (its fallback action)."""


@dataclass
class Utterance:
    """One thing the caller says: text (spoken with espeak-ng) or a WAV file."""

    label: str
    frames: list[bytes]


@dataclass
class TurnTiming:
    """One exchange as the caller experienced it."""

    said: str
    speech_secs: float
    voice_to_voice: float | None = None  # caller's last speech frame → first agent audio
    agent_speech_secs: float = 0.0


@dataclass
class CallReport:
    """What happened on the call."""

    call_sid: str
    stream_url: str
    greeting_latency: float | None = None
    greeting_secs: float = 0.0
    turns: list[TurnTiming] = field(default_factory=list)
    marks_echoed: int = 0
    clears: int = 0
    closed_by_agent: bool = False


def _is_speech(ulaw: bytes) -> bool:
    pcm = np.frombuffer(_ULAW_TABLE[np.frombuffer(ulaw, dtype=np.uint8)].tobytes(), dtype="<i2")
    return bool(pcm.size) and float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) >= SPEECH_RMS


def _ulaw_table() -> np.ndarray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    magnitude = ((((u & 0x0F) << 3) + 0x84) << ((u >> 4) & 0x07)) - 0x84
    return np.where(u & 0x80, -magnitude, magnitude).astype("<i2")


_ULAW_TABLE = _ulaw_table()


async def _to_frames(pcm: bytes, rate: int) -> list[bytes]:
    ulaw = await pcm_to_ulaw(pcm, rate, 8000, create_file_resampler())
    ulaw += b"\xff" * (-len(ulaw) % FRAME_BYTES)
    return [ulaw[i : i + FRAME_BYTES] for i in range(0, len(ulaw), FRAME_BYTES)]


def _read_wav(path: Path) -> tuple[bytes, int, int]:
    """(data, sample rate, format tag) of a mono WAV: PCM 16-bit (1) or mu-law (7)."""
    data = path.read_bytes()
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise DialError(f"{path}: not a WAV file.")
    pos, fmt, rate, bits, channels = 12, 1, 8000, 16, 1
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        body = data[pos + 8 : pos + 8 + size]
        if chunk == b"fmt ":
            fmt = int.from_bytes(body[0:2], "little")
            channels = int.from_bytes(body[2:4], "little")
            rate = int.from_bytes(body[4:8], "little")
            bits = int.from_bytes(body[14:16], "little")
        elif chunk == b"data":
            if channels != 1 or (fmt, bits) not in ((1, 16), (7, 8)):
                raise DialError(f"{path}: use a mono 16-bit PCM or 8-bit mu-law WAV.")
            return body, rate, fmt
        pos += 8 + size + (size & 1)
    raise DialError(f"{path}: WAV without audio data.")


async def wav_utterance(path: Path) -> Utterance:
    """Caller speech from a WAV file."""
    audio, rate, fmt = await asyncio.to_thread(_read_wav, path)
    if fmt == 7:
        audio = await ulaw_to_pcm(audio, rate, rate, create_file_resampler())
    return Utterance(path.name, await _to_frames(audio, rate))


async def text_utterance(text: str, *, voice: str = "en-us") -> Utterance:
    """Caller speech rendered from text with espeak-ng."""
    if shutil.which("espeak-ng") is None:
        raise DialError("espeak-ng is not installed (apt-get install espeak-ng), or pass WAV files.")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "say.wav"
        await asyncio.to_thread(
            subprocess.run, ["espeak-ng", "-v", voice, "-w", str(out), text], check=True, capture_output=True
        )
        audio, rate, _ = await asyncio.to_thread(_read_wav, out)
    return Utterance(text, await _to_frames(audio, rate))


async def request_stream(
    base_url: str, *, auth_token: str, call_sid: str, caller: str, callee: str, account_sid: str
) -> tuple[str, dict[str, str]]:
    """POST /phone/incoming as Twilio would; returns the Stream URL and its parameters."""
    url = base_url.rstrip("/") + "/phone/incoming"
    form = {
        "CallSid": call_sid,
        "AccountSid": account_sid,
        "From": caller,
        "To": callee,
        "CallStatus": "ringing",
        "Direction": "inbound",
    }
    signature = RequestValidator(auth_token).compute_signature(url, form)
    try:
        async with httpx.AsyncClient(timeout=15) as client:
            response = await client.post(url, data=form, headers={"X-Twilio-Signature": signature})
    except httpx.HTTPError as exc:
        raise DialError(f"cannot reach {url}: {exc}") from exc
    if response.status_code == 403:
        raise DialError(f"{url} refused the signature: check the Twilio auth token (and PUBLIC_URL).")
    if response.status_code != 200:
        raise DialError(f"{url} answered HTTP {response.status_code}.")
    stream = ET.fromstring(response.text).find("./Connect/Stream")
    if stream is None or not stream.get("url"):
        raise NotAnswered(f"{url} did not answer with <Connect><Stream>.")
    params = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
    return str(stream.get("url")), params


class _Phone:
    """Twilio's side of one Media Stream: uplink at 20 ms pace, real-time playout, marks."""

    def __init__(self, ws: object, stream_sid: str, report: CallReport) -> None:
        self.ws, self.stream_sid, self.report = ws, stream_sid, report
        self.outgoing: deque[bytes] = deque()
        self.playout: deque[bytes | str] = deque()
        self.last_agent_audio = 0.0  # when the phone last played agent speech
        self.first_agent_audio: float | None = None
        self.closed = asyncio.Event()
        self.sent_all = asyncio.Event()
        self.last_caller_speech = 0.0  # when the last voiced caller frame went out
        self.seq = 0

    async def send(self, message: dict[str, object]) -> None:
        self.seq += 1
        await self.ws.send(json.dumps({"sequenceNumber": str(self.seq), **message}))  # type: ignore[attr-defined]

    async def uplink(self) -> None:
        chunk, next_at = 0, time.monotonic()
        while not self.closed.is_set():
            frame = self.outgoing.popleft() if self.outgoing else SILENCE
            if frame is not SILENCE and _is_speech(frame):
                self.last_caller_speech = time.monotonic()
            if not self.outgoing:
                self.sent_all.set()
            chunk += 1
            media = {"track": "inbound", "chunk": str(chunk), "timestamp": str((chunk - 1) * 20)}
            media["payload"] = base64.b64encode(frame).decode()
            await self.send({"event": "media", "streamSid": self.stream_sid, "media": media})
            next_at += FRAME_SECS
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def play(self) -> None:
        next_at = time.monotonic()
        while not self.closed.is_set():
            while self.playout and isinstance(self.playout[0], str):
                await self._echo(str(self.playout.popleft()))
            if self.playout:
                frame = self.playout.popleft()
                if isinstance(frame, bytes) and _is_speech(frame):
                    self.last_agent_audio = time.monotonic()
                    self.first_agent_audio = self.first_agent_audio or self.last_agent_audio
            next_at += FRAME_SECS
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def _echo(self, name: str) -> None:
        self.report.marks_echoed += 1
        await self.send({"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}})

    async def receive(self) -> None:
        try:
            async for raw in self.ws:  # type: ignore[attr-defined]
                message = json.loads(raw)
                event = message.get("event")
                if event == "media":
                    audio = base64.b64decode(message["media"]["payload"])
                    self.playout.extend(audio[i : i + FRAME_BYTES] for i in range(0, len(audio), FRAME_BYTES))
                elif event == "mark":
                    name = str(message.get("mark", {}).get("name", ""))
                    self.playout.append(name) if self.playout else await self._echo(name)
                elif event == "clear":
                    self.report.clears += 1
                    pending = [m for m in self.playout if isinstance(m, str)]
                    self.playout.clear()
                    for name in pending:
                        await self._echo(name)
        except Exception:  # the agent closed the stream
            pass
        finally:
            self.report.closed_by_agent = not self.closed.is_set()
            self.closed.set()

    async def wait_agent_quiet(self, quiet: float, timeout: float) -> None:  # noqa: ASYNC109
        """Wait until the agent has said something and then been quiet for ``quiet`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.closed.is_set():
            playing = any(isinstance(item, bytes) for item in self.playout)
            if self.last_agent_audio and not playing and time.monotonic() - self.last_agent_audio >= quiet:
                return
            await asyncio.sleep(0.05)

    def speech_since(self, since: float) -> float:
        return max(0.0, self.last_agent_audio - since) if self.last_agent_audio > since else 0.0


async def dial(
    base_url: str,
    utterances: list[Utterance],
    *,
    auth_token: str,
    caller: str = "+15005550006",
    callee: str = "+15005550001",
    quiet_secs: float = 1.0,
    reply_timeout: float = 30.0,
) -> CallReport:
    """Call the agent at ``base_url``, say each utterance in turn, and report the timings."""
    call_sid, account_sid = "CA" + secrets.token_hex(16), "AC" + secrets.token_hex(16)
    stream_sid = "MZ" + secrets.token_hex(16)
    stream_url, params = await request_stream(
        base_url,
        auth_token=auth_token,
        call_sid=call_sid,
        caller=caller,
        callee=callee,
        account_sid=account_sid,
    )
    report = CallReport(call_sid=call_sid, stream_url=stream_url)
    signature = RequestValidator(auth_token).compute_signature(stream_url, {})
    try:
        ws = await connect(
            stream_url,
            additional_headers={"X-Twilio-Signature": signature},
            compression=None,
            open_timeout=15,
        )
    except Exception as exc:  # refused, unreachable, bad handshake
        raise DialError(f"cannot open the media stream {stream_url}: {exc}") from exc
    phone = _Phone(ws, stream_sid, report)
    await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
    start = {
        "streamSid": stream_sid,
        "accountSid": account_sid,
        "callSid": call_sid,
        "tracks": ["inbound"],
        "customParameters": params,
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    }
    await phone.send({"event": "start", "streamSid": stream_sid, "start": start})
    started = time.monotonic()
    tasks = [asyncio.create_task(c) for c in (phone.receive(), phone.uplink(), phone.play())]
    try:
        await phone.wait_agent_quiet(quiet_secs, reply_timeout)
        if phone.first_agent_audio:
            report.greeting_latency = phone.first_agent_audio - started
            report.greeting_secs = phone.speech_since(phone.first_agent_audio)
        for utterance in utterances:
            if phone.closed.is_set():
                break
            phone.sent_all.clear()
            phone.outgoing.extend(utterance.frames)
            waits = [asyncio.ensure_future(phone.sent_all.wait()), asyncio.ensure_future(phone.closed.wait())]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for waiting in waits:
                waiting.cancel()
            spoke_until = phone.last_caller_speech or time.monotonic()
            turn = TurnTiming(utterance.label, len(utterance.frames) * FRAME_SECS)
            report.turns.append(turn)
            deadline = time.monotonic() + reply_timeout
            while phone.last_agent_audio <= spoke_until and time.monotonic() < deadline:
                if phone.closed.is_set():
                    break
                await asyncio.sleep(0.01)
            if phone.last_agent_audio > spoke_until:
                first = phone.last_agent_audio
                turn.voice_to_voice = first - spoke_until
                await phone.wait_agent_quiet(quiet_secs, reply_timeout)
                turn.agent_speech_secs = phone.speech_since(first)
    finally:
        if not phone.closed.is_set():
            try:
                await phone.send({"event": "stop", "streamSid": stream_sid, "stop": {"callSid": call_sid}})
                phone.closed.set()
                await ws.close()
            except Exception:  # already closed by the agent
                pass
        phone.closed.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return report
