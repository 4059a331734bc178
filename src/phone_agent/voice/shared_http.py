"""One HTTP connection pool per process for every call's OpenAI-compatible clients.

Pipecat's OpenAI STT, LLM and TTS services each build their own ``httpx.AsyncClient``: ~25-45 ms
of CPU apiece (an SSL context is loaded every time), ~110 ms per call spent before the greeting,
blocking the event loop every other call's audio runs on, and a fresh TLS handshake to the
provider for each call's first request. Sharing one pool per event loop removes all three; the
pool is bound to the loop it was made on, so each loop (one per worker process) gets its own.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from openai import AsyncOpenAI, DefaultAsyncHttpxClient
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.utils.http import connection_limits

MAX_CONNECTIONS = 1000
MAX_KEEPALIVE = 100

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, DefaultAsyncHttpxClient] = (
    weakref.WeakKeyDictionary()
)


def shared_http_client() -> DefaultAsyncHttpxClient:
    """The running loop's pooled client (keep-alive connections never expire while in use)."""
    limits = connection_limits(
        max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_KEEPALIVE, keepalive_expiry=None
    )
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # built outside a loop (a script, a test): nothing to share with
        return DefaultAsyncHttpxClient(limits=limits)
    client = _clients.get(loop)
    if client is None or client.is_closed:
        client = _clients[loop] = DefaultAsyncHttpxClient(limits=limits)
    return client


class SharedPoolOpenAILLMService(OpenAILLMService):
    """`OpenAILLMService` whose client uses the process's shared connection pool."""

    def create_client(
        self,
        api_key: Any = None,
        base_url: Any = None,
        organization: Any = None,
        project: Any = None,
        default_headers: Any = None,
        **kwargs: Any,
    ) -> AsyncOpenAI:
        return AsyncOpenAI(
            api_key=api_key,
            base_url=base_url,
            organization=organization,
            project=project,
            http_client=shared_http_client(),
            default_headers=default_headers,
        )
