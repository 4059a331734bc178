"""ElevenLabs for the admin page: the account's voices, and a short sample to play in the browser.

The sample is requested as 16 kHz PCM over the HTTP text-to-speech endpoint and wrapped in a WAV
header here, so every browser plays it without a decoder and every ElevenLabs plan allows it.
"""

from __future__ import annotations

import io
import wave
from typing import Any

import httpx

from phone_agent.config import Settings
from phone_agent.errors import ProviderError
from phone_agent.ops.provider_health import ProviderHealth

SAMPLE_RATE = 16000
TIMEOUT = httpx.Timeout(10.0, connect=3.0)


def _key(settings: Settings) -> str:
    key = settings.secret("elevenlabs_api_key")
    if not key:
        raise ProviderError("elevenlabs", "no API key set (ELEVENLABS_API_KEY).")
    return key


def _describe(exc: Exception | httpx.Response) -> str:
    if isinstance(exc, httpx.Response):
        try:
            detail = exc.json().get("detail")
            message = detail.get("message") if isinstance(detail, dict) else None
        except (ValueError, AttributeError):
            message = None
        return f"HTTP {exc.status_code}" + (f": {message}" if message else "")
    return f"unreachable ({type(exc).__name__})"


def _unavailable(detail: str) -> str:
    return f"not available right now ({detail}). Calls use the fallback voice until it is back."


async def _request(
    providers: ProviderHealth, settings: Settings, method: str, path: str, **kwargs: Any
) -> httpx.Response:
    url = settings.elevenlabs_base_url.rstrip("/") + path
    headers = {"xi-api-key": _key(settings)}
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            response = await client.request(method, url, headers=headers, **kwargs)
    except httpx.HTTPError as exc:
        providers.record("elevenlabs", ok=False, detail=_describe(exc))
        raise ProviderError("elevenlabs", _unavailable(_describe(exc))) from exc
    if response.status_code >= 400:
        providers.record("elevenlabs", ok=False, detail=_describe(response))
        if response.status_code == 401:
            raise ProviderError("elevenlabs", "the API key was refused (HTTP 401); check ELEVENLABS_API_KEY.")
        raise ProviderError("elevenlabs", _unavailable(_describe(response)))
    providers.record("elevenlabs", ok=True)
    return response


async def list_voices(providers: ProviderHealth, settings: Settings) -> list[dict[str, str]]:
    """The voices of the ElevenLabs account: [{voice_id, name, category}]."""
    body = (await _request(providers, settings, "GET", "/v1/voices")).json()
    return [
        {
            "voice_id": v["voice_id"],
            "name": v.get("name") or v["voice_id"],
            "category": v.get("category") or "",
        }
        for v in body.get("voices", [])
    ]


async def synthesize_sample(
    providers: ProviderHealth, settings: Settings, text: str, voice: dict[str, Any]
) -> bytes:
    """A WAV of ``text`` spoken with the given (possibly unsaved) voice settings."""
    payload = {
        "text": text,
        "model_id": voice["tts_model"],
        "voice_settings": {
            "stability": voice["tts_stability"],
            "similarity_boost": voice["tts_similarity"],
            "style": voice["tts_style"],
            "speed": voice["tts_speed"],
        },
    }
    response = await _request(
        providers,
        settings,
        "POST",
        f"/v1/text-to-speech/{voice['elevenlabs_voice_id']}",
        params={"output_format": f"pcm_{SAMPLE_RATE}"},
        json=payload,
    )
    return pcm_to_wav(response.content, SAMPLE_RATE)


def pcm_to_wav(pcm: bytes, rate: int) -> bytes:
    """16-bit mono little-endian PCM → a WAV file."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm[: len(pcm) - len(pcm) % 2])
    return buffer.getvalue()
