"""Embeddings through the official ``openai`` SDK (``text-embedding-3-small``), batched.

``embedder_for(settings)`` returns None when embeddings are off or no OpenAI key is set; the stores
then search lexical-only. Vectors are unit-length float32 of ``EMBEDDING_DIMENSIONS`` (the size of
the pgvector column made by migration 0002).
"""

from __future__ import annotations

import asyncio

import numpy as np
from openai import AsyncOpenAI, OpenAIError, omit

from phone_agent.config import Settings
from phone_agent.errors import ProviderError
from phone_agent.http_pool import HttpPool, openai_client

EMBEDDING_DIMENSIONS = 1536
BATCH_SIZE = 256  # inputs per request (the API accepts 2048; smaller batches retry cheaper)


class OpenAIEmbedder:
    """Turns texts into unit vectors with the OpenAI embeddings endpoint."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        model: str = "text-embedding-3-small",
        timeout: float = 10.0,
        batch_size: int = BATCH_SIZE,
        http: HttpPool | None = None,
    ) -> None:
        self.model = model
        self.batch_size = batch_size
        self.timeout = timeout
        self._http = http
        self._client = self.create_client(api_key=api_key, base_url=base_url)

    def create_client(self, *, api_key: str, base_url: str) -> AsyncOpenAI:
        """The SDK client (overridable); on the process's shared pool when one was given."""
        if self._http is not None:
            return openai_client(
                api_key=api_key, base_url=base_url, http=self._http, timeout=self.timeout, max_retries=2
            )
        return AsyncOpenAI(api_key=api_key, base_url=base_url, timeout=self.timeout, max_retries=2)

    async def embed(self, texts: list[str]) -> list[np.ndarray]:
        """One unit vector per text, in order (empty texts embed as a single space)."""
        vectors: list[np.ndarray] = []
        for start in range(0, len(texts), self.batch_size):
            batch = [t.strip() or " " for t in texts[start : start + self.batch_size]]
            vectors.extend(await self._embed_batch(batch))
        return vectors

    async def embed_one(self, text: str) -> np.ndarray:
        """The vector of one text."""
        return (await self.embed([text]))[0]

    async def _embed_batch(self, batch: list[str]) -> list[np.ndarray]:
        # text-embedding-3 models shorten to the pgvector column's size; ada-002 is 1536 already
        dimensions = EMBEDDING_DIMENSIONS if self.model.startswith("text-embedding-3") else omit
        try:
            response = await self._client.embeddings.create(
                model=self.model, input=batch, encoding_format="float", dimensions=dimensions
            )
        except OpenAIError as exc:
            raise ProviderError("openai", f"embeddings failed ({type(exc).__name__}: {exc})") from exc
        ordered = sorted(response.data, key=lambda item: item.index)
        return [unit(np.asarray(item.embedding, dtype=np.float32)) for item in ordered]

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.close()


def unit(vector: np.ndarray) -> np.ndarray:
    """The vector scaled to length 1 (zero stays zero)."""
    norm = float(np.linalg.norm(vector))
    return (vector / norm).astype(np.float32) if norm else vector.astype(np.float32)


def to_blob(vector: np.ndarray) -> bytes:
    """Little-endian float32 bytes (sqlite-vec's vector format)."""
    return np.asarray(vector, dtype="<f4").tobytes()


def from_blob(blob: bytes) -> np.ndarray:
    """The vector stored by ``to_blob``."""
    return np.frombuffer(blob, dtype="<f4")


def embedder_for(settings: Settings, *, http: HttpPool | None = None) -> OpenAIEmbedder | None:
    """The embedder the settings ask for, or None (lexical-only search); ``http``: a shared pool."""
    key = settings.secret("openai_api_key")
    if not settings.embeddings_enabled or not key:
        return None
    return OpenAIEmbedder(
        api_key=key, base_url=settings.openai_base_url, model=settings.embeddings_model, http=http
    )


async def embed_or_none(embedder: OpenAIEmbedder | None, text: str, within: float) -> np.ndarray | None:
    """The query vector, or None when there is no embedder or it fails/is slow (search goes lexical)."""
    if embedder is None or not text.strip():
        return None
    try:
        return await asyncio.wait_for(embedder.embed_one(text), within)
    except (ProviderError, TimeoutError):
        return None
