"""`FakeElevenLabs`: the multi-context TTS websocket as Pipecat's `ElevenLabsTTSService` uses it,
plus the HTTP text-to-speech endpoints (plain, `/stream`, `/with-timestamps`), voices and user.

    with FakeElevenLabs(first_audio_latency=0.15, realtime_factor=5) as fake:
        tts = ElevenLabsTTSService(api_key=fake.api_key, url=fake.ws_url, voice_id="voice-1")
        ... fake.contexts["ctx"].text, fake.contexts["ctx"].voice_settings

Audio is a non-silent tone, 70 ms per character, in the requested `output_format`
(pcm_8000/16000/22050/24000/44100/48000 or ulaw_8000), sent `realtime_factor` times faster than
real time after `first_audio_latency`. The API key is checked (`xi-api-key` header).
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from tests.fakes.audio import MS_PER_CHAR
from tests.fakes.base import ASGIApp, FakeServer
from tests.fakes.elevenlabs_ws import ContextRecord, MultiContextSession, bytes_per_char, encode_audio

__all__ = ["FakeElevenLabs", "ContextRecord", "OUTPUT_FORMATS"]

OUTPUT_FORMATS = ("pcm_8000", "pcm_16000", "pcm_22050", "pcm_24000", "pcm_44100", "pcm_48000", "ulaw_8000")
REAL_ONLY_FORMATS = (
    "mp3_22050_32",
    "mp3_44100_64",
    "mp3_44100_96",
    "mp3_44100_128",
    "mp3_44100_192",
    "alaw_8000",
    "opus_48000_64",
    "pcm_32000",
)
VOICE_SETTING_KEYS = {"stability", "similarity_boost", "style", "use_speaker_boost", "speed"}


class ElevenLabsError(Exception):
    """An HTTP error in ElevenLabs' `{"detail": {"status", "message"}}` shape."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.body = status, {"detail": {"status": code, "message": message}}


class FakeElevenLabs(FakeServer):
    """Local ElevenLabs API. Records `.contexts` (by context id), `.connections`, `.messages`,
    `.http_requests`; knobs `first_audio_latency`, `realtime_factor`, `max_contexts`."""

    name = "elevenlabs"

    def __init__(
        self, *, api_key: str = "fake-xi-key", first_audio_latency: float = 0.0, realtime_factor: float = 5.0
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.first_audio_latency = first_audio_latency
        self.realtime_factor = realtime_factor  # 0 = as fast as possible
        self.max_contexts = 5
        self.voices: dict[str, str] = {"21m00Tcm4TlvDq8ikWAM": "Rachel", "EXAVITQu4vr4xnSDxMaL": "Sarah"}
        self.accept_any_voice = True  # False: unknown voice ids are refused like the real API does
        self.contexts: dict[str, ContextRecord] = {}
        self.connections: list[dict[str, Any]] = []  # {"voice_id", "query", "headers"}
        self.messages: list[dict[str, Any]] = []  # every websocket message received, in order
        self.close_codes: list[tuple[int, str]] = []  # closes the fake initiated
        self.http_requests: list[dict[str, Any]] = []

    def reset_state(self) -> None:
        for records in (self.connections, self.messages, self.close_codes, self.http_requests):
            records.clear()
        self.contexts.clear()

    def error_body(self, status: int) -> dict[str, Any]:
        return {
            "detail": {
                "status": "internal_error" if status >= 500 else "error",
                "message": f"Injected failure {status}",
            }
        }

    def build_app(self) -> ASGIApp:
        base = "/v1/text-to-speech/{voice_id}"
        routes = [
            WebSocketRoute(base + "/multi-stream-input", self._multi_stream_input),
            Route(base, self._http_tts, methods=["POST"]),
            Route(base + "/stream", self._http_tts, methods=["POST"]),
            Route(base + "/with-timestamps", self._http_tts, methods=["POST"]),
            Route(base + "/stream/with-timestamps", self._http_tts, methods=["POST"]),
            Route("/v1/voices", self._list_voices, methods=["GET"]),
            Route("/v1/voices/{voice_id}", self._get_voice, methods=["GET"]),
            Route("/v1/user", self._user, methods=["GET"]),
        ]
        return Starlette(routes=routes, exception_handlers={ElevenLabsError: _error_response})

    def _check_key(self, key: str | None) -> None:
        if not key:
            raise ElevenLabsError(
                401,
                "needs_authorization",
                "Neither authorization header nor xi-api-key received, please provide one.",
            )
        if key != self.api_key:
            raise ElevenLabsError(401, "invalid_api_key", "Invalid API key")

    def _check_voice(self, voice_id: str) -> None:
        if not self.accept_any_voice and voice_id not in self.voices:
            raise ElevenLabsError(400, "voice_not_found", f"A voice with voice_id {voice_id} was not found.")

    def _check_format(self, output_format: str) -> None:
        if output_format in REAL_ONLY_FORMATS:
            raise ElevenLabsError(
                422, "unsupported_by_fake", f"FakeElevenLabs renders {OUTPUT_FORMATS}, not {output_format}"
            )
        if output_format not in OUTPUT_FORMATS:
            raise ElevenLabsError(422, "invalid_output_format", f"Invalid output format: {output_format}")

    # -- websocket --------------------------------------------------------------------------------
    async def _multi_stream_input(self, websocket: WebSocket) -> None:
        voice_id = websocket.path_params["voice_id"]
        query = dict(websocket.query_params)
        output_format = query.get("output_format", "mp3_44100_128")
        try:
            self._check_key(websocket.headers.get("xi-api-key") or query.get("authorization"))
            self._check_voice(voice_id)
            self._check_format(output_format)
        except ElevenLabsError as exc:
            await websocket.send_denial_response(JSONResponse(exc.body, status_code=exc.status))
            return
        self.connections.append({"voice_id": voice_id, "query": query, "headers": dict(websocket.headers)})
        await websocket.accept()
        session = MultiContextSession(
            self,
            websocket,
            output_format,
            auto_mode=query.get("auto_mode", "false") == "true",
            inactivity_timeout=float(query.get("inactivity_timeout", 20)),
            connection=len(self.connections) - 1,
        )
        await session.run()

    # -- HTTP -------------------------------------------------------------------------------------
    async def _http_tts(self, request: Request) -> Response:
        self._check_key(request.headers.get("xi-api-key"))
        voice_id = request.path_params["voice_id"]
        self._check_voice(voice_id)
        try:
            body = json.loads(await request.body())
        except ValueError as exc:
            raise ElevenLabsError(400, "invalid_json", "Request body is not valid JSON") from exc
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            return JSONResponse(
                {
                    "detail": [
                        {"type": "missing", "loc": ["body", "text"], "msg": "Field required", "input": body}
                    ]
                },
                status_code=422,
            )
        output_format = request.query_params.get("output_format", "mp3_44100_128")
        self._check_format(output_format)
        settings = body.get("voice_settings") or {}
        unknown = set(settings) - VOICE_SETTING_KEYS
        if unknown:
            raise ElevenLabsError(422, "invalid_voice_settings", f"Unknown voice settings: {sorted(unknown)}")
        self.http_requests.append(
            {
                "path": request.url.path,
                "voice_id": voice_id,
                "query": dict(request.query_params),
                "json": body,
            }
        )
        text = body["text"]
        path = request.url.path
        if path.endswith("/with-timestamps"):
            if "/stream/" in path:
                return StreamingResponse(
                    self._timestamp_lines(text, output_format), media_type="application/json"
                )
            await asyncio.sleep(self.first_audio_latency)
            return JSONResponse(_with_timestamps(text, output_format))
        media = "audio/basic" if output_format.startswith("ulaw") else "audio/pcm"
        if path.endswith("/stream"):
            return StreamingResponse(self._audio_chunks(text, output_format), media_type=media)
        await asyncio.sleep(self.first_audio_latency)
        return Response(encode_audio(text, output_format), media_type=media)

    async def _audio_chunks(self, text: str, output_format: str) -> AsyncIterator[bytes]:
        audio = encode_audio(text, output_format)
        step = bytes_per_char(output_format) * 4
        await asyncio.sleep(self.first_audio_latency)
        for start in range(0, len(audio), step):
            if start and self.realtime_factor:
                await asyncio.sleep(4 * MS_PER_CHAR / 1000 / self.realtime_factor)
            yield audio[start : start + step]

    async def _timestamp_lines(self, text: str, output_format: str) -> AsyncIterator[str]:
        await asyncio.sleep(self.first_audio_latency)
        for start in range(0, len(text), 20):
            if start and self.realtime_factor:
                await asyncio.sleep(20 * MS_PER_CHAR / 1000 / self.realtime_factor)
            yield json.dumps(_with_timestamps(text[start : start + 20], output_format)) + "\n"

    async def _list_voices(self, request: Request) -> Response:
        self._check_key(request.headers.get("xi-api-key"))
        return JSONResponse(
            {
                "voices": [_voice(v, n) for v, n in self.voices.items()],
                "has_more": False,
                "total_count": len(self.voices),
                "next_page_token": None,
            }
        )

    async def _get_voice(self, request: Request) -> Response:
        self._check_key(request.headers.get("xi-api-key"))
        voice_id = request.path_params["voice_id"]
        if voice_id not in self.voices:
            raise ElevenLabsError(404, "voice_not_found", f"A voice with voice_id {voice_id} was not found.")
        return JSONResponse(_voice(voice_id, self.voices[voice_id]))

    async def _user(self, request: Request) -> Response:
        self._check_key(request.headers.get("xi-api-key"))
        used = sum(len(c.text) for c in self.contexts.values())
        return JSONResponse(
            {
                "user_id": "fake-user",
                "first_name": "Fake",
                "is_new_user": False,
                "xi_api_key": None,
                "can_use_delayed_payment_methods": False,
                "subscription": {
                    "tier": "creator",
                    "character_count": used,
                    "character_limit": 100000,
                    "status": "active",
                    "currency": "usd",
                    "can_extend_character_limit": False,
                    "next_character_count_reset_unix": 1767225600,
                },
            }
        )


def _voice(voice_id: str, name: str) -> dict[str, Any]:
    return {
        "voice_id": voice_id,
        "name": name,
        "category": "premade",
        "labels": {"accent": "american"},
        "description": None,
        "preview_url": None,
        "settings": None,
    }


def _with_timestamps(text: str, output_format: str) -> dict[str, Any]:
    chars = list(text)
    starts = [i * MS_PER_CHAR / 1000 for i in range(len(chars))]
    alignment = {
        "characters": chars,
        "character_start_times_seconds": starts,
        "character_end_times_seconds": [s + MS_PER_CHAR / 1000 for s in starts],
    }
    return {
        "audio_base64": base64.b64encode(encode_audio(text, output_format)).decode(),
        "alignment": alignment,
        "normalized_alignment": alignment,
    }


async def _error_response(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ElevenLabsError)
    return JSONResponse(exc.body, status_code=exc.status)
