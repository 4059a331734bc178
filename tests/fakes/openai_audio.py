"""FakeOpenAI's audio and embeddings endpoints: /v1/audio/transcriptions, /v1/audio/speech,
/v1/embeddings — request checks and response shapes as the real API and the `openai` SDK use them.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from collections.abc import AsyncIterator
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from tests.fakes.audio import pcm16_rms, pcm16_wav_bytes, tone_pcm16, ulaw_to_pcm16
from tests.fakes.openai_chat import OpenAIError, missing

if TYPE_CHECKING:
    from tests.fakes.openai import FakeOpenAI

AUDIO_EXTENSIONS = ("flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "oga", "ogg", "wav", "webm")
VOICES = (
    "alloy",
    "ash",
    "ballad",
    "coral",
    "echo",
    "fable",
    "onyx",
    "nova",
    "sage",
    "shimmer",
    "verse",
    "marin",
    "cedar",
)
SPEECH_FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")
TTS_SAMPLE_RATE = 24000
SILENCE_RMS = 120.0


class AudioEndpoints:
    """Handlers bound to one `FakeOpenAI` (its knobs, queues and records)."""

    def __init__(self, fake: FakeOpenAI) -> None:
        self.fake = fake

    # -- transcriptions ---------------------------------------------------------------------------
    async def transcriptions(self, request: Request) -> Response:
        fake = self.fake
        fake.check_auth(request)
        async with request.form() as form:  # closed on exit: the upload is spooled to a temporary file
            fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
            include = form.getlist("include[]") + form.getlist("include")
            upload = form.get("file")
            audio = b"" if upload is None or isinstance(upload, str) else await upload.read()
        record: dict[str, Any] = dict(fields)
        fake.transcription_requests.append(record)
        if upload is None or isinstance(upload, str):
            raise missing("file")
        if not fields.get("model"):
            raise missing("model")
        model = fake.check_model(fields["model"])
        record["file"] = {
            "filename": upload.filename,
            "content_type": upload.content_type,
            "size": len(audio),
        }
        extension = (upload.filename or "").rsplit(".", 1)[-1].lower()
        if extension not in AUDIO_EXTENSIONS:
            raise OpenAIError(
                400,
                f"Invalid file format. Supported formats: {list(AUDIO_EXTENSIONS)}",
                param="file",
                code="invalid_value",
            )
        duration, speech = _wav_duration_and_speech(audio) if extension == "wav" else (1.0, True)
        if duration < 0.1:
            raise OpenAIError(
                400,
                "Audio file is too short. Minimum audio length is 0.1 seconds.",
                param="file",
                code="audio_too_short",
            )
        response_format = fields.get("response_format", "json")
        is_whisper = model.startswith("whisper")
        if response_format not in (
            ("json", "text", "srt", "verbose_json", "vtt") if is_whisper else ("json", "text")
        ):
            raise OpenAIError(
                400,
                f"response_format '{response_format}' is not compatible with model '{model}'. "
                "Use 'json' or 'text'.",
                param="response_format",
                code="unsupported_value",
            )
        if "logprobs" in include and (is_whisper or response_format != "json"):
            raise OpenAIError(
                400,
                "logprobs are only supported with gpt-4o-transcribe models and response_format 'json'.",
                param="include",
                code="unsupported_value",
            )
        text = (fake.transcripts.popleft() if fake.transcripts else fake.default_transcript) if speech else ""
        record["answered"] = text
        await asyncio.sleep(fake.stt_latency)
        if response_format == "text":
            return PlainTextResponse(text + "\n")
        if response_format in ("srt", "vtt"):
            return PlainTextResponse(_subtitles(text, duration, response_format))
        body: dict[str, Any] = {"text": text}
        if response_format == "verbose_json":
            body = {
                "task": "transcribe",
                "language": "english",
                "duration": round(duration, 2),
                "text": text,
                "segments": [
                    {
                        "id": 0,
                        "seek": 0,
                        "start": 0.0,
                        "end": round(duration, 2),
                        "text": text,
                        "tokens": [],
                        "temperature": 0.0,
                        "avg_logprob": -0.2,
                        "compression_ratio": 1.0,
                        "no_speech_prob": 0.01,
                    }
                ]
                if text
                else [],
                "usage": {"type": "duration", "seconds": max(1, round(duration))},
            }
        elif is_whisper:
            body["usage"] = {"type": "duration", "seconds": max(1, round(duration))}
        else:
            words = text.split()
            body["usage"] = {
                "type": "tokens",
                "input_tokens": int(duration * 10),
                "output_tokens": len(words),
                "total_tokens": int(duration * 10) + len(words),
                "input_token_details": {"text_tokens": 0, "audio_tokens": int(duration * 10)},
            }
            if "logprobs" in include:
                body["logprobs"] = [{"token": w, "logprob": -0.01, "bytes": list(w.encode())} for w in words]
        return JSONResponse(body)

    # -- speech -----------------------------------------------------------------------------------
    async def speech(self, request: Request) -> Response:
        fake = self.fake
        fake.check_auth(request)
        body = await fake.json_body(request)
        if not isinstance(body, dict):
            raise OpenAIError(400, "Invalid request body: expected an object.")
        fake.speech_requests.append(body)
        for name in ("model", "input", "voice"):
            if name not in body:
                raise missing(name)
        fake.check_model(body["model"])
        text = body["input"]
        if not isinstance(text, str) or len(text) > 4096:
            raise OpenAIError(
                400,
                "Invalid 'input': string too long. Expected a string with maximum length 4096.",
                param="input",
                code="string_above_max_length",
            )
        voice = body["voice"]
        if isinstance(voice, str) and voice not in VOICES:
            raise OpenAIError(
                400,
                f"Invalid value: '{voice}'. Supported values are: "
                + ", ".join(f"'{v}'" for v in VOICES)
                + ".",
                param="voice",
                code="invalid_value",
            )
        response_format = body.get("response_format", "mp3")
        if response_format not in SPEECH_FORMATS:
            raise OpenAIError(
                400,
                f"Invalid value: '{response_format}'. Supported values are: 'mp3', 'opus', "
                "'aac', 'flac', 'wav', and 'pcm'.",
                param="response_format",
                code="invalid_value",
            )
        if response_format not in ("pcm", "wav"):
            # An honest limit of the fake: it has no mp3/opus/aac/flac encoder.
            raise OpenAIError(
                400,
                f"FakeOpenAI only renders 'pcm' and 'wav', not '{response_format}'.",
                param="response_format",
                code="unsupported_value",
            )
        pcm = tone_pcm16(text, TTS_SAMPLE_RATE)
        audio = pcm if response_format == "pcm" else pcm16_wav_bytes(pcm, TTS_SAMPLE_RATE)
        media = "audio/pcm" if response_format == "pcm" else "audio/wav"
        return StreamingResponse(self._paced(audio), media_type=media)

    async def _paced(self, audio: bytes) -> AsyncIterator[bytes]:
        fake = self.fake
        await asyncio.sleep(fake.tts_first_audio_latency)
        step = TTS_SAMPLE_RATE * 2 // 10  # 100 ms
        for start in range(0, len(audio), step):
            if start and fake.tts_realtime_factor:
                await asyncio.sleep(0.1 / fake.tts_realtime_factor)
            yield audio[start : start + step]

    # -- embeddings -------------------------------------------------------------------------------
    async def embeddings(self, request: Request) -> Response:
        fake = self.fake
        fake.check_auth(request)
        body = await fake.json_body(request)
        if not isinstance(body, dict):
            raise OpenAIError(400, "Invalid request body: expected an object.")
        fake.embedding_requests.append(body)
        if "input" not in body:
            raise missing("input")
        if "model" not in body:
            raise OpenAIError(400, "you must provide a model parameter")
        model = fake.check_model(body["model"])
        inputs = body["input"]
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs or len(inputs) > 2048:
            raise OpenAIError(
                400,
                "'$.input' is invalid. Please check the API reference: "
                "https://platform.openai.com/docs/api-reference.",
                param="input",
            )
        for i, item in enumerate(inputs):
            if not isinstance(item, str) or not item.strip():
                raise OpenAIError(
                    400,
                    f"Invalid 'input[{i}]': string must be non-empty.",
                    param=f"input[{i}]",
                    code="invalid_value",
                )
        native = 3072 if model == "text-embedding-3-large" else 1536
        dims = body.get("dimensions", native)
        if "dimensions" in body and (
            model == "text-embedding-ada-002" or not isinstance(dims, int) or not 1 <= dims <= native
        ):
            raise OpenAIError(
                400, f"This model does not support specifying dimensions={dims}.", param="dimensions"
            )
        encoding = body.get("encoding_format", "float")
        if encoding not in ("float", "base64"):
            raise OpenAIError(
                400,
                f"Invalid value: '{encoding}'. Supported values are: 'float' and 'base64'.",
                param="encoding_format",
                code="invalid_value",
            )
        data = []
        for index, text in enumerate(inputs):
            vector = embed_text(text, dims)
            value: Any = (
                base64.b64encode(vector.astype("<f4").tobytes()).decode()
                if encoding == "base64"
                else vector.tolist()
            )
            data.append({"object": "embedding", "index": index, "embedding": value})
        tokens = sum(len(t.split()) for t in inputs)
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )


@lru_cache(maxsize=8192)
def _word_vector(word: str, dims: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(dims)


def embed_text(text: str, dims: int = 1536) -> np.ndarray:
    """Deterministic unit vector: the normalised sum of per-word random vectors (bag of words)."""
    words = re.findall(r"[a-z0-9']+", text.lower()) or [text]
    total = np.zeros(dims)
    for word in words:
        total += _word_vector(word, dims)
    norm = np.linalg.norm(total)
    return (total / norm if norm else total).astype(np.float32)


def _wav_duration_and_speech(data: bytes) -> tuple[float, bool]:
    """Duration of a WAV body and whether it holds anything above silence."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise OpenAIError(
            400,
            "Invalid file format. The audio file could not be decoded.",
            param="file",
            code="invalid_value",
        )
    pos, fmt_tag, rate, bits, channels = 12, 1, 16000, 16, 1
    while pos + 8 <= len(data):
        chunk_id, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        body = data[pos + 8 : pos + 8 + size]
        if chunk_id == b"fmt ":
            fmt_tag = int.from_bytes(body[0:2], "little")
            channels = int.from_bytes(body[2:4], "little") or 1
            rate = int.from_bytes(body[4:8], "little") or 16000
            bits = int.from_bytes(body[14:16], "little") or 16
        elif chunk_id == b"data":
            frame_bytes = channels * bits // 8 or 1
            duration = len(body) / frame_bytes / rate
            pcm = ulaw_to_pcm16(body) if fmt_tag == 7 else body if bits == 16 else b""
            return duration, (pcm16_rms(pcm) >= SILENCE_RMS) if pcm else True
        pos += 8 + size + (size & 1)
    raise OpenAIError(
        400, "Invalid file format. The audio file could not be decoded.", param="file", code="invalid_value"
    )


def _subtitles(text: str, duration: float, kind: str) -> str:
    end = f"00:00:{duration:06.3f}"
    if kind == "srt":
        return f"1\n00:00:00,000 --> {end.replace('.', ',')}\n{text}\n\n"
    return f"WEBVTT\n\n00:00:00.000 --> {end}\n{text}\n\n"
