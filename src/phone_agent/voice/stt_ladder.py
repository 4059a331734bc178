"""The STT ladder: each caller utterance is transcribed by the first rung that answers in time.

The primary rung is OpenAI's transcription (``stt_model`` at ``openai_base_url``); the secondary is
``stt_fallback_provider``: ``openai`` (``stt_fallback_model`` at ``stt_fallback_base_url`` with
``stt_fallback_api_key``, each defaulting to the primary's: another model of the same provider, or
any OpenAI-compatible one) or ``deepgram`` (its pre-recorded API with ``deepgram_api_key``, model
``stt_fallback_model`` when it names a Deepgram model, else ``nova-3``). For one segment (the audio
VAD cut out of the caller's turn):

- the primary starts at once; a rung that fails (401/403, 5xx, dropped connection, refused) starts
  the next one at once, and a rung silent for ``hedge_secs`` starts the next one beside it (the
  first answer wins, the other is cancelled);
- a rung that failed is not asked again in this call (a bad key stays bad);
- when no rung has answered by ``deadline_secs`` (or every rung failed), ``on_exhausted`` is called:
  the call apologises and hands over (``voice/rescue.py``) rather than leave a caller who spoke with
  silence and then "Are you still there?".

Both bounds grow with the segment's length (a long utterance takes longer to transcribe). The SDK's
own retries are off: the ladder is faster than backoff. Every failure is reported with
``report_provider_error``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from loguru import logger
from openai import AsyncOpenAI
from openai.types.audio import Transcription
from pipecat.services.openai.stt import OpenAISTTService

from phone_agent.hedging import first_to_succeed
from phone_agent.http_pool import HttpPool, new_http_pool
from phone_agent.ops import metrics
from phone_agent.ops.provider_health import ProviderHealth, error_kind, report_provider_error

HEDGE_SECS = 0.8  # a rung silent this long gets the next one started beside it
DEADLINE_SECS = 1.4  # no transcript by then: the ladder has run out for this utterance
PER_AUDIO_SECOND = 0.05  # both bounds grow by this much per second of caller audio


@dataclass
class STTRung:
    """One transcription endpoint: an OpenAI-compatible one (``client``), or Deepgram's REST API."""

    name: str  # "primary" | "secondary"
    provider: str  # for the health record: "openai", "deepgram", "stt_secondary"
    model: str
    client: AsyncOpenAI | None = None
    deepgram: DeepgramTranscriber | None = None


@dataclass
class DeepgramTranscriber:
    """Deepgram's pre-recorded API (``POST /v1/listen``, the WAV as the body, ``Token`` auth)."""

    api_key: str
    base_url: str  # https://api.deepgram.com (a wss:// streaming base is turned into https://)
    http: HttpPool | None = None  # the process's pool; a client per request without it

    async def transcribe(self, audio: bytes, *, model: str, language: str | None) -> str:
        """The transcript of one WAV segment (raises on HTTP errors and dropped connections)."""
        base = self.base_url.replace("wss://", "https://", 1).replace("ws://", "http://", 1).rstrip("/")
        params = {"model": model, "smart_format": "true", **({"language": language} if language else {})}
        headers = {"authorization": f"Token {self.api_key}", "content-type": "audio/wav"}
        if self.http is not None:
            response = await self.http.post(
                f"{base}/v1/listen", params=params, headers=headers, content=audio
            )
        else:
            async with new_http_pool() as client:
                response = await client.post(
                    f"{base}/v1/listen", params=params, headers=headers, content=audio
                )
        response.raise_for_status()
        alternatives = response.json()["results"]["channels"][0]["alternatives"]
        return str(alternatives[0]["transcript"]) if alternatives else ""


class STTExhausted(Exception):
    """No rung transcribed the segment."""


class LadderSTTService(OpenAISTTService):
    """Pipecat's segmented OpenAI STT with a ladder of endpoints in place of one client."""

    def __init__(
        self,
        *,
        rungs: list[STTRung],
        on_exhausted: Callable[[str], Awaitable[None]] | None = None,
        health: ProviderHealth | None = None,
        hedge_secs: float = HEDGE_SECS,
        deadline_secs: float = DEADLINE_SECS,
        **kwargs: Any,
    ) -> None:
        if not rungs:
            raise ValueError("LadderSTTService needs at least one rung")
        super().__init__(api_key=kwargs.pop("api_key", None) or "not-used", **kwargs)
        self.rungs, self.on_exhausted, self.health = rungs, on_exhausted, health
        self.hedge_secs, self.deadline_secs = hedge_secs, deadline_secs
        self._first = 0  # rungs before this one failed earlier in the call
        self.exhausted = False

    async def transcribe_segment(self, wav: bytes) -> Any:
        """One WAV segment up the ladder (a streaming STT's fallback); raises ``STTExhausted``."""
        return await self._transcribe(wav)

    async def _transcribe(self, audio: bytes) -> Any:
        try:
            return await self._climb(audio)
        except STTExhausted as exc:
            self.exhausted = True
            metrics.fallback_used("stt", "rescue")
            if self.on_exhausted is not None:
                await self.on_exhausted(str(exc))
            raise

    async def _climb(self, audio: bytes) -> Any:
        extra = PER_AUDIO_SECOND * len(audio) / (2 * (self.sample_rate or 8000))  # 16-bit mono
        first = self._first
        failures: list[str] = []
        won = await first_to_succeed(
            [partial(self._ask, rung, audio) for rung in self.rungs[first:]],
            hedge_secs=self.hedge_secs + extra,
            deadline_secs=self.deadline_secs + extra,
            on_failure=lambda index, exc: self._failed(first + index, exc, failures),
        )
        if won is None:
            raise STTExhausted("; ".join(failures) or "no transcription endpoint")
        index, transcript = won
        if self.health is not None:
            self.health.record(self.rungs[first + index].provider, ok=True)
        if first + index > 0:
            metrics.fallback_used("stt", self.rungs[first + index].name)
        return transcript

    async def _ask(self, rung: STTRung, audio: bytes) -> Transcription:
        language = getattr(self.settings, "language", None)
        if rung.deepgram is not None:
            text = await rung.deepgram.transcribe(
                audio, model=rung.model, language=language and str(language)
            )
            return Transcription(text=text)
        assert rung.client is not None
        extra: dict[str, Any] = {"language": str(language)} if language else {}
        return await rung.client.audio.transcriptions.create(
            file=("audio.wav", audio, "audio/wav"), model=rung.model, **extra
        )

    def _failed(self, index: int, exc: BaseException | None, failures: list[str]) -> None:
        rung = self.rungs[index]
        kind = error_kind(exc)
        failures.append(f"{rung.name} STT: {kind}")
        logger.warning("{} STT ({}) failed: {}", rung.name, rung.model, kind)
        report_provider_error(
            self.health, rung.provider, kind, f"transcription ({rung.model}) failed: {kind}"
        )
        if index + 1 < len(self.rungs):  # a failed rung is not asked again in this call
            self._first = max(self._first, index + 1)
