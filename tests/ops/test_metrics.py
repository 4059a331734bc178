"""Prometheus /metrics: the functions the call path calls show up in the exposition text."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from phone_agent.app import create_app
from phone_agent.ops import metrics
from tests.conftest import make_settings
from tests.fakes.openai import FakeOpenAI


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_exposition_after_a_call(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path), "voice-bridge")
    with TestClient(app, client=("127.0.0.1", 5555)) as client:
        before = client.get("/metrics").text
        metrics.call_started("inbound")
        observed = metrics.observe_turn(
            {
                "caller_stopped": 1000,
                "stt_final": 1180,
                "llm_first_token": 1530,
                "tts_first_audio": 1690,
                "first_audio_sent": 1702,
            }
        )
        metrics.observe_turn({"caller_stopped": 5000, "first_audio_sent": 5400})  # realtime: no stages
        metrics.provider_error("elevenlabs", "timeout")
        metrics.fallback_used("tts", "openai")
        during = client.get("/metrics")
        metrics.call_ended("completed")
        after = client.get("/metrics").text
    assert during.status_code == 200 and during.headers["content-type"].startswith("text/plain")
    text = during.text
    assert observed == {"stt": 0.18, "llm": 0.35, "tts": 0.16, "send": 0.012, "voice_to_voice": 0.702}
    assert value(text, "phone_agent_calls_active") == value(before, "phone_agent_calls_active") + 1
    assert value(after, "phone_agent_calls_active") == value(before, "phone_agent_calls_active")
    assert (
        value(text, "phone_agent_calls_total", direction="inbound")
        == value(before, "phone_agent_calls_total", direction="inbound") + 1
    )
    assert value(after, "phone_agent_calls_ended_total", reason="completed") >= 1
    for stage in ("stt", "llm", "tts", "send"):
        assert (
            value(text, "phone_agent_turn_stage_seconds_count", stage=stage)
            == value(before, "phone_agent_turn_stage_seconds_count", stage=stage) + 1
        )
    assert (
        value(text, "phone_agent_turn_stage_seconds_count", stage="voice_to_voice")
        == value(before, "phone_agent_turn_stage_seconds_count", stage="voice_to_voice") + 2
    )
    # 0.702 s lands in the 0.8 s bucket, not the 0.6 s one
    v2v_08 = value(text, "phone_agent_turn_stage_seconds_bucket", stage="voice_to_voice", le="0.8")
    v2v_06 = value(text, "phone_agent_turn_stage_seconds_bucket", stage="voice_to_voice", le="0.6")
    assert v2v_08 - v2v_06 >= 1
    assert value(text, "phone_agent_provider_errors_total", provider="elevenlabs", kind="timeout") >= 1
    assert value(text, "phone_agent_fallbacks_total", component="tts", to="openai") >= 1


def test_metrics_needs_loopback_or_token(tmp_path: Path) -> None:
    app = create_app(
        make_settings(tmp_path, PHONE_AGENT_ADMIN_STATUS_TOKEN="scrape-token-123"), "orchestrator"
    )
    with TestClient(app, client=("203.0.113.9", 5555)) as client:
        assert client.get("/metrics").status_code == 401
        ok = client.get("/metrics", headers={"Authorization": "Bearer scrape-token-123"})
    assert ok.status_code == 200 and "phone_agent_calls_active" in ok.text


async def test_llm_chain_counts_provider_errors_and_fallbacks(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    from phone_agent.brain.llm import LLMChain

    with FakeOpenAI(api_key="sk-secondary") as secondary:
        secondary.models.add("llama-3.1-8b")
        secondary.script("Saturdays we open at ten.")
        fake_openai.fail_next(1, status=500)
        settings = make_settings(
            tmp_path,
            OPENAI_API_KEY=fake_openai.api_key,
            PHONE_AGENT_LLM_BASE_URL=fake_openai.url + "/v1",
            PHONE_AGENT_LLM_SECONDARY_BASE_URL=secondary.url + "/v1",
            PHONE_AGENT_LLM_SECONDARY_MODEL="llama-3.1-8b",
            PHONE_AGENT_LLM_SECONDARY_API_KEY="sk-secondary",
        )
        before = metrics.exposition().decode()
        chain = LLMChain.from_settings(settings)
        try:
            stream = await chain.stream(messages=[{"role": "user", "content": "Open Saturday?"}])
            await stream.close()
        finally:
            await chain.aclose()
    after = metrics.exposition().decode()
    assert stream.provider == "secondary"
    errors = ("phone_agent_provider_errors_total", {"provider": "llm", "kind": "http_500"})
    used = ("phone_agent_fallbacks_total", {"component": "llm", "to": "secondary"})
    for name, labels in (errors, used):
        assert value(after, name, **labels) == value(before, name, **labels) + 1
