"""Every call's OpenAI-compatible clients share the process's one connection pool, and closing a
client (or a replaced Services) leaves the pool open for the others."""

from __future__ import annotations

from pathlib import Path

from phone_agent.brain.pipeline import build_pipeline_llm
from phone_agent.http_pool import new_http_pool, openai_client
from phone_agent.runtime import Runtime
from phone_agent.voice.services import build_fallback_tts, build_stt
from phone_agent.voice.streaming_stt import StreamingSTTService
from phone_agent.voice.stt_ladder import LadderSTTService
from tests.conftest import make_settings


async def test_calls_share_the_runtimes_pool(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, OPENAI_API_KEY="sk-test", ELEVENLABS_API_KEY="xi-test")
    runtime = Runtime.create(settings, "all")
    try:
        services = runtime.current
        pools = set()
        for _ in range(2):  # two calls
            streaming = build_stt(settings, http=services.http)  # stt_mode=streaming by default
            assert isinstance(streaming, StreamingSTTService)
            stt = streaming.fallback  # its segmented ladder: every rung on the pool too
            assert isinstance(stt, LadderSTTService) and len(stt.rungs) == 2
            llm = build_pipeline_llm(settings, chain=services.llm)
            fallback = build_fallback_tts(settings, http=services.http)
            assert fallback is not None
            chain_clients = [endpoint.client for endpoint in llm.chain.endpoints]
            pools |= {id(stt._client._client), id(llm._client._client), id(fallback._client._client)}
            pools |= {id(rung.client._client) for rung in stt.rungs}
            pools |= {id(client._client) for client in chain_clients}
        embedder = services.local_memory.embedder
        assert embedder is not None
        pools.add(id(embedder._client._client))
        assert pools == {id(runtime.http)}
    finally:
        await runtime.close()
    assert runtime.http.is_closed  # the runtime owns the pool and closes it last


async def test_closing_a_client_on_the_pool_leaves_the_pool_open() -> None:
    pool = new_http_pool()
    client = openai_client(api_key="sk-test", base_url="http://127.0.0.1:9/v1", http=pool)
    await client.close()
    assert not pool.is_closed
    await pool.aclose()
