"""One HTTP connection pool per process for every OpenAI-compatible client (STT, LLM, TTS, embeddings).

Pipecat's OpenAI services and the ``openai`` SDK each build their own ``httpx.AsyncClient`` by default:
~25-45 ms of CPU apiece (an SSL context is loaded every time), paid per call before the greeting on
the event loop every other call's audio runs on, and a fresh TLS handshake to the provider for each
call's first request. The ``Runtime`` makes one pool (``new_http_pool``) and every ``Services`` built
from it hands the same pool to its clients; closing a client built on it must not close the pool
(``openai_client`` returns clients whose ``close()`` leaves it open).
"""

from __future__ import annotations

from typing import Any

import httpx2
from openai import AsyncOpenAI, DefaultAsyncHttpxClient

MAX_CONNECTIONS = 1000
MAX_KEEPALIVE = 100

# The pool's type: the ``openai`` SDK (3.x) and Pipecat's OpenAI services take an httpx2 client.
HttpPool = DefaultAsyncHttpxClient


def new_http_pool() -> HttpPool:
    """A pooled client (keep-alive connections never expire while in use). Close it with ``aclose()``."""
    limits = httpx2.Limits(
        max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_KEEPALIVE, keepalive_expiry=None
    )
    return DefaultAsyncHttpxClient(limits=limits)


class PooledAsyncOpenAI(AsyncOpenAI):
    """``AsyncOpenAI`` on a shared pool: ``close()`` releases nothing (the pool's owner closes it)."""

    async def close(self) -> None:
        return None


def openai_client(*, api_key: str | None, base_url: str, http: HttpPool, **options: Any) -> AsyncOpenAI:
    """An OpenAI SDK client on the shared pool ``http`` (SDK retries off unless ``options`` say so)."""
    options.setdefault("max_retries", 0)
    return PooledAsyncOpenAI(api_key=api_key or "not-set", base_url=base_url, http_client=http, **options)
