"""Audio helpers for the fakes and tests: G.711 mu-law, WAV reading, speech and tone synthesis.

`speech_wav(text)` renders real speech with espeak-ng and converts it with sox to the format a
Twilio Media Stream carries (8 kHz mono mu-law WAV), cached by text so repeated runs are cheap.
`tone_pcm16` makes the deterministic, non-silent audio the TTS fakes send (~70 ms per character).
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

FRAME_BYTES = 160  # 20 ms of 8 kHz mu-law
ULAW_SILENCE = b"\xff"
MS_PER_CHAR = 70

_BIAS = 0x84
_CLIP14 = 8159


def pcm16_to_ulaw(pcm: bytes) -> bytes:
    """Encode 16-bit little-endian PCM to G.711 mu-law (bit-exact with the reference codec)."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.int32) >> 2  # 14-bit, as G.711 specifies
    negative = samples < 0
    magnitude = np.minimum(np.where(negative, -samples, samples), _CLIP14) + 0x21
    segment = np.clip(np.floor(np.log2(magnitude)).astype(np.int32) - 5, 0, 8)
    mantissa = (magnitude >> (np.minimum(segment, 7) + 1)) & 0x0F
    uval = np.where(segment >= 8, 0x7F, (segment << 4) | mantissa)
    encoded = np.where(negative, uval ^ 0x7F, uval ^ 0xFF)
    return encoded.astype(np.uint8).tobytes()


def ulaw_to_pcm16(data: bytes) -> bytes:
    """Decode G.711 mu-law to 16-bit little-endian PCM."""
    u = ~np.frombuffer(data, dtype=np.uint8).astype(np.int32) & 0xFF
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + _BIAS) << exponent) - _BIAS
    return np.where(sign != 0, -magnitude, magnitude).astype("<i2").tobytes()


def pcm16_rms(pcm: bytes) -> float:
    """Root-mean-square level of 16-bit PCM (0..32768)."""
    if len(pcm) < 2:
        return 0.0
    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples * samples)))


def ulaw_rms(data: bytes) -> float:
    """RMS level of mu-law audio, measured on the decoded PCM."""
    return pcm16_rms(ulaw_to_pcm16(data))


def is_silent(data: bytes, threshold: float = 200.0) -> bool:
    """Whether mu-law audio is (near) silence."""
    return ulaw_rms(data) < threshold


def cache_dir() -> Path:
    """Where synthesised speech is cached (PHONE_AGENT_FAKES_CACHE or the temp dir)."""
    path = Path(os.environ.get("PHONE_AGENT_FAKES_CACHE", Path(tempfile.gettempdir()) / "phone-agent-fakes"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def speech_wav(text: str, path: Path | str | None = None, *, voice: str = "en-us", wpm: int = 165) -> Path:
    """Render `text` as 8 kHz mono mu-law WAV with espeak-ng + sox (cached by text)."""
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is not installed: apt-get install -y espeak-ng sox")
    key = hashlib.sha256(f"{voice}|{wpm}|{text}".encode()).hexdigest()[:16]
    cached = cache_dir() / f"speech-{key}.wav"
    if not cached.exists():
        with tempfile.TemporaryDirectory() as tmp:
            raw = Path(tmp) / "raw.wav"
            subprocess.run(
                ["espeak-ng", "-v", voice, "-s", str(wpm), "-w", str(raw), text],
                check=True,
                capture_output=True,
            )
            staged = Path(tmp) / "out.wav"
            subprocess.run(
                ["sox", str(raw), "-r", "8000", "-c", "1", "-e", "u-law", "-b", "8", str(staged)],
                check=True,
                capture_output=True,
            )
            os.replace(staged, cached)
    if path is None:
        return cached
    target = Path(path)
    shutil.copyfile(cached, target)
    return target


def read_ulaw(path: Path | str) -> bytes:
    """The mu-law sample bytes of an 8 kHz mono WAV (mu-law, or 16-bit PCM which is converted)."""
    path = Path(path)
    data = path.read_bytes()
    if data[:4] != b"RIFF":
        raise ValueError(f"{path} is not a WAV file")
    pos = 12
    fmt_tag = channels = rate = bits = None
    while pos + 8 <= len(data):
        chunk_id, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        body = data[pos + 8 : pos + 8 + size]
        if chunk_id == b"fmt ":
            fmt_tag = int.from_bytes(body[0:2], "little")
            channels = int.from_bytes(body[2:4], "little")
            rate = int.from_bytes(body[4:8], "little")
            bits = int.from_bytes(body[14:16], "little")
        elif chunk_id == b"data":
            if channels != 1 or rate != 8000:
                raise ValueError(f"{path}: need 8 kHz mono, got {rate} Hz x{channels}")
            if fmt_tag == 7:
                return body
            if fmt_tag == 1 and bits == 16:
                return pcm16_to_ulaw(body)
            raise ValueError(f"{path}: unsupported WAV encoding {fmt_tag}/{bits} bits")
        pos += 8 + size + (size & 1)
    raise ValueError(f"{path}: no data chunk")


def read_ulaw_frames(path: Path | str) -> list[bytes]:
    """The WAV's audio as 160-byte (20 ms) mu-law frames, the last padded with silence."""
    audio = read_ulaw(path)
    frames = [audio[i : i + FRAME_BYTES] for i in range(0, len(audio), FRAME_BYTES)]
    if frames and len(frames[-1]) < FRAME_BYTES:
        frames[-1] = frames[-1] + ULAW_SILENCE * (FRAME_BYTES - len(frames[-1]))
    return frames


def write_pcm16_wav(path: Path | str, pcm: bytes, sample_rate: int) -> Path:
    """Write mono 16-bit PCM as a WAV file."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm)
    return Path(path)


def pcm16_wav_bytes(pcm: bytes, sample_rate: int) -> bytes:
    """A complete mono 16-bit WAV file in memory."""
    header = b"RIFF" + (36 + len(pcm)).to_bytes(4, "little") + b"WAVEfmt "
    header += (16).to_bytes(4, "little") + (1).to_bytes(2, "little") + (1).to_bytes(2, "little")
    header += sample_rate.to_bytes(4, "little") + (sample_rate * 2).to_bytes(4, "little")
    header += (2).to_bytes(2, "little") + (16).to_bytes(2, "little")
    return header + b"data" + len(pcm).to_bytes(4, "little") + pcm


def char_frequency(char: str) -> float:
    """The tone the fakes use for a character (so different texts sound different)."""
    return 220.0 + (ord(char) % 40) * 12.0


def tone_pcm16(text: str, sample_rate: int, ms_per_char: int = MS_PER_CHAR) -> bytes:
    """Non-silent 16-bit PCM standing in for speech: one short tone per character."""
    per_char = max(1, sample_rate * ms_per_char // 1000)
    ramp = max(1, sample_rate // 200)  # 5 ms fades avoid clicks between characters
    envelope = np.ones(per_char)
    envelope[:ramp] = np.linspace(0.0, 1.0, ramp)
    envelope[-ramp:] = np.linspace(1.0, 0.0, ramp)
    t = np.arange(per_char) / sample_rate
    pieces = []
    for char in text:
        amplitude = 6000.0 if char.isspace() else 9000.0
        pieces.append(amplitude * envelope * np.sin(2 * math.pi * char_frequency(char) * t))
    if not pieces:
        return b""
    return np.concatenate(pieces).astype("<i2").tobytes()


def speech_pcm16(text: str, sample_rate: int, *, voice: str = "en-us", wpm: int = 165) -> bytes:
    """Real speech for `text` as mono 16-bit PCM at `sample_rate` (espeak-ng + sox, cached by text)."""
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is not installed: apt-get install -y espeak-ng sox")
    key = hashlib.sha256(f"{voice}|{wpm}|{sample_rate}|{text}".encode()).hexdigest()[:16]
    cached = cache_dir() / f"speech-{key}.s16"
    if not cached.exists():
        with tempfile.TemporaryDirectory() as tmp:
            raw = Path(tmp) / "raw.wav"
            subprocess.run(
                ["espeak-ng", "-v", voice, "-s", str(wpm), "-w", str(raw), text],
                check=True,
                capture_output=True,
            )
            staged = Path(tmp) / "out.s16"
            subprocess.run(
                [
                    "sox",
                    str(raw),
                    "-r",
                    str(sample_rate),
                    "-c",
                    "1",
                    "-e",
                    "signed",
                    "-b",
                    "16",
                    "-t",
                    "raw",
                    str(staged),
                ],
                check=True,
                capture_output=True,
            )
            os.replace(staged, cached)
    return cached.read_bytes()
