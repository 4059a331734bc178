"""The LLM provider chain: primary OpenAI, a secondary OpenAI-compatible endpoint, then a canned reply.

``LLMChain.stream(**params)`` opens a streamed chat completion and returns once the first token
has arrived (or the canned reply has been chosen), so the caller of the chain never sees a
provider fault:

- The primary (``llm_base_url``, ``llm_model``, ``openai_api_key``) starts at once.
- The secondary (``llm_secondary_base_url``/``_model``/``_api_key``) starts as soon as the primary
  fails (HTTP 5xx or any other API error, connection error) or has sent no token within
  ``llm_first_token_timeout``. A slow primary keeps running: whichever answers first wins and
  the other request is cancelled.
- When every endpoint has failed, or none has produced a token by the timeout (``CANNED_GRACE``
  later when a secondary was started), the chain streams a canned spoken reply (so with the
  default 1.5 s the canned reply starts by 1.9 s, never dead air; the phone speaks an apology and
  hands the call to the fallback action). A primary that hangs leaves the secondary
  ``CANNED_GRACE`` to answer: lower ``llm_first_token_timeout`` to give it more room.

A failure after the first token cannot be retried without repeating words, so the stream just
ends there (logged). The SDK's own retries are off: the chain's failover is faster than backoff.

The same chain serves ``/v1/chat/completions`` and, through ``pipeline.ChainedLLMService``,
the phone pipeline.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from loguru import logger
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionChunk

from phone_agent.config import Settings
from phone_agent.hedging import first_to_succeed
from phone_agent.http_pool import HttpPool, openai_client
from phone_agent.ops import metrics
from phone_agent.ops.provider_health import ProviderHealth, error_kind, report_provider_error

CANNED_GRACE = 0.4  # seconds the secondary gets after a silent primary before the canned reply
REQUEST_TIMEOUT = 60.0  # seconds for a whole completion; the first token is bounded separately


def canned_reply(settings: Settings) -> str:
    """What the agent says when no LLM answers: an apology and an offer to take a message."""
    return (
        f"I'm sorry, I'm having trouble answering right now. Can I take a message so someone from "
        f"{settings.business_name} can call you back?"
    )


@dataclass
class LLMEndpoint:
    """One OpenAI-compatible chat-completions endpoint."""

    name: str
    client: AsyncOpenAI
    model: str


@dataclass
class ChainStream:
    """A chat-completion stream from whichever endpoint answered first (or the canned reply).

    Iterate it for ``ChatCompletionChunk`` objects; ``close()`` releases the HTTP response.
    Behaves like the SDK's ``AsyncStream`` where Pipecat uses it.
    """

    provider: str
    model: str
    first_token_s: float
    canned: bool = False
    failures: list[str] = field(default_factory=list)
    _buffered: list[ChatCompletionChunk] = field(default_factory=list)
    _rest: AsyncIterator[ChatCompletionChunk] | None = None
    _sdk_stream: Any = None

    def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[ChatCompletionChunk]:
        while self._buffered:
            yield self._buffered.pop(0)
        if self._rest is None:
            return
        try:
            async for chunk in self._rest:
                yield chunk
        except Exception as exc:  # after the first token nothing can be retried: end the reply here
            logger.warning("llm {} failed mid-stream: {}", self.provider, type(exc).__name__)
            self.failures.append(f"{self.provider}: mid-stream {type(exc).__name__}")

    async def close(self) -> None:
        """Close the underlying HTTP response."""
        if self._sdk_stream is not None:
            await self._sdk_stream.close()


class LLMChain:
    """Ordered endpoints with first-token failover and a canned last resort."""

    def __init__(
        self,
        endpoints: Sequence[LLMEndpoint],
        *,
        first_token_timeout: float,
        canned_text: str,
        temperature: float | None = None,
    ) -> None:
        if not endpoints:
            raise ValueError("LLMChain needs at least one endpoint")
        self.endpoints = list(endpoints)
        self.first_token_timeout = first_token_timeout
        self.canned_text = canned_text
        self.temperature = temperature
        self.health: ProviderHealth | None = None  # where failures are reported (the process's, if set)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, http: HttpPool | None = None, health: ProviderHealth | None = None
    ) -> LLMChain:
        """Primary from ``llm_*``/``openai_api_key``; secondary when ``llm_secondary_base_url`` is set.

        ``http`` is the process's connection pool (``http_pool``), which the chain never closes;
        without one each endpoint has its own client, closed by ``aclose()``. ``health``: where
        endpoint failures are reported (``report_provider_error``), the process's if given.
        """
        endpoints = [
            LLMEndpoint(
                "primary",
                _client(settings.llm_base_url, settings.secret("openai_api_key"), http),
                settings.llm_model,
            )
        ]
        if settings.llm_secondary_base_url:
            endpoints.append(
                LLMEndpoint(
                    "secondary",
                    _client(settings.llm_secondary_base_url, settings.secret("llm_secondary_api_key"), http),
                    settings.llm_secondary_model or settings.llm_model,
                )
            )
        chain = cls(
            endpoints,
            first_token_timeout=settings.llm_first_token_timeout,
            canned_text=canned_reply(settings),
            temperature=settings.llm_temperature,
        )
        chain.health = health
        return chain

    @property
    def model(self) -> str:
        """The primary model name."""
        return self.endpoints[0].model

    async def aclose(self) -> None:
        """Close the endpoints' clients (clients on the shared pool leave the pool open)."""
        for endpoint in self.endpoints:
            await endpoint.client.close()

    async def stream(self, *, canned_text: str | None = None, **params: Any) -> ChainStream:
        """Open a streamed completion (chat-completions params; ``model`` is set per endpoint).

        ``canned_text``: what the last-resort reply says (default: the chain's ``canned_text``).
        """
        params = {k: v for k, v in params.items() if k != "model"}
        params["stream"] = True
        params.setdefault("stream_options", {"include_usage": True})
        if self.temperature is not None:
            params.setdefault("temperature", self.temperature)
        start = time.monotonic()
        failures: list[str] = []

        def failed(index: int, exc: BaseException) -> None:
            endpoint = self.endpoints[index]
            timed_out = isinstance(exc, TimeoutError)
            what = "no first token in time" if timed_out else _describe(exc)
            report_provider_error(
                self.health,
                _provider_name(endpoint),
                "timeout" if timed_out else error_kind(exc),
                f"chat completion failed: {what}",
            )
            failures.append(f"{endpoint.name}: {what}")
            logger.warning("llm {} failed: {}", endpoint.name, what)

        async def close(stream: ChainStream) -> None:
            await stream.close()

        won = await first_to_succeed(
            [partial(self._open, endpoint, params, start) for endpoint in self.endpoints],
            hedge_secs=self.first_token_timeout,
            # the grace is for a later endpoint started after a silent one; alone, waiting is dead air
            deadline_secs=self.first_token_timeout + (CANNED_GRACE if len(self.endpoints) > 1 else 0.0),
            on_failure=failed,
            release=close,
        )
        if won is not None:
            index, winner = won
            winner.failures = failures
            if self.health is not None:
                self.health.record(_provider_name(self.endpoints[index]), ok=True)
            if index:
                metrics.fallback_used("llm", self.endpoints[index].name)
            return winner
        logger.error("every LLM endpoint failed ({}); speaking the canned reply", "; ".join(failures))
        metrics.fallback_used("llm", "canned")
        return self._canned(start, failures, canned_text or self.canned_text)

    async def _open(self, endpoint: LLMEndpoint, params: dict[str, Any], start: float) -> ChainStream:
        """Request a stream and read until the first token (text, tool call or finish)."""
        sdk_stream = await endpoint.client.chat.completions.create(model=endpoint.model, **params)
        iterator = sdk_stream.__aiter__()
        buffered: list[ChatCompletionChunk] = []
        try:
            async for chunk in iterator:
                buffered.append(chunk)
                if _has_token(chunk):
                    break
        except BaseException:
            await sdk_stream.close()
            raise
        return ChainStream(
            provider=endpoint.name,
            model=endpoint.model,
            first_token_s=time.monotonic() - start,
            _buffered=buffered,
            _rest=iterator,
            _sdk_stream=sdk_stream,
        )

    def _canned(self, start: float, failures: list[str], text: str) -> ChainStream:
        base = {
            "id": f"chatcmpl-canned-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": "canned",
        }
        chunks = [
            ChatCompletionChunk.model_validate(
                {
                    **base,
                    "choices": [{"index": 0, "delta": {"role": "assistant", "content": text}}],
                }
            ),
            ChatCompletionChunk.model_validate(
                {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            ),
        ]
        return ChainStream(
            provider="canned",
            model="canned",
            first_token_s=time.monotonic() - start,
            canned=True,
            failures=failures,
            _buffered=chunks,
        )


def _client(base_url: str, api_key: str | None, http: HttpPool | None) -> AsyncOpenAI:
    if http is None:  # "not-set": never fall back to OPENAI_API_KEY from the process env
        return AsyncOpenAI(
            base_url=base_url, api_key=api_key or "not-set", max_retries=0, timeout=REQUEST_TIMEOUT
        )
    return openai_client(api_key=api_key, base_url=base_url, http=http, timeout=REQUEST_TIMEOUT)


def _provider_name(endpoint: LLMEndpoint) -> str:
    return "llm" if endpoint.name == "primary" else f"llm_{endpoint.name}"


def _has_token(chunk: ChatCompletionChunk) -> bool:
    for choice in chunk.choices or ():
        delta = choice.delta
        if choice.finish_reason or (delta and (delta.content or delta.tool_calls)):
            return True
    return False


def _describe(exc: BaseException | None) -> str:
    status = getattr(exc, "status_code", None)
    return f"HTTP {status}" if status else type(exc).__name__


OPENAI_HOST = "api.openai.com"


def missing_llm_key(settings: Settings) -> str | None:
    """Why no reply can come before any request is made (OpenAI's API as the only endpoint and no
    key), with how to fix it; None when the chain can try."""
    primary_needs_key = OPENAI_HOST in settings.llm_base_url and settings.llm_provider == "openai"
    if not primary_needs_key or settings.secret("openai_api_key") or settings.llm_secondary_base_url:
        return None
    return (
        "the LLM needs OPENAI_API_KEY (or an llm_secondary_base_url): set it in the environment "
        '(export OPENAI_API_KEY=sk-...), as "openai_api_key" in config.json or on the admin page; '
        "for a local OpenAI-compatible server (Ollama, llama.cpp) set llm_base_url and "
        "llm_provider=openai-compatible instead"
    )
