"""Every call's OpenAI-compatible clients share one connection pool per event loop."""

from __future__ import annotations

import asyncio
from pathlib import Path

from phone_agent.brain.pipeline import build_pipeline_llm
from phone_agent.voice.services import build_fallback_tts, build_stt
from phone_agent.voice.shared_http import shared_http_client
from tests.conftest import make_settings


async def test_calls_share_one_pool(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, OPENAI_API_KEY="sk-test", ELEVENLABS_API_KEY="xi-test")
    pools = set()
    for _ in range(2):  # two calls
        stt, llm = build_stt(settings), build_pipeline_llm(settings)
        fallback = build_fallback_tts(settings)
        assert fallback is not None
        chain_clients = [endpoint.client for endpoint in llm.chain.endpoints]
        pools |= {id(stt._client._client), id(llm._client._client), id(fallback._client._client)}
        pools |= {id(client._client) for client in chain_clients}
    assert pools == {id(shared_http_client())}


def test_each_event_loop_has_its_own_pool() -> None:
    async def pool() -> object:
        return shared_http_client()

    first, second = asyncio.run(pool()), asyncio.run(pool())
    assert first is not second  # a pool's connections belong to the loop that opened them
