"""Provider outcomes shared through the database: a failure seen by one worker is on every worker's
report (kind, count in the last hour, the call), a later success clears it, and no secret is stored."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from phone_agent.ops.logging import bind_call
from phone_agent.ops.provider_health import owner_kind, report_provider_error
from phone_agent.runtime import Runtime
from phone_agent.storage.migrate import upgrade
from phone_agent.storage.tables import ProviderErrorRow
from tests.conftest import make_settings

KEY = "sk-proj-leakme0123456789"


@pytest.mark.parametrize(
    ("kind", "detail", "expected"),
    [
        ("http_401", None, "auth"),
        ("http_403", None, "auth"),
        ("http_503", None, "5xx"),
        ("http_429", None, "rate_limited"),
        ("timeout", None, "timeout"),
        ("stt", "speech-to-text failed: Incorrect API key provided", "auth"),
        ("tts", "text-to-speech failed: no audio within 1.0 s", "timeout"),
        ("tts", "text-to-speech failed: server rejected WebSocket connection: HTTP 500", "5xx"),
        ("realtime", "connection closed unexpectedly", "dropped"),
        ("refused", None, "refused"),
        ("update_failed", "something odd", "update_failed"),
    ],
)
def test_owner_kinds(kind: str, detail: str | None, expected: str) -> None:
    assert owner_kind(kind, detail) == expected


async def test_one_workers_failure_is_on_every_workers_report(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, DATABASE_URL=database_url, OPENAI_API_KEY=KEY)
    a, b = Runtime.create(settings, "all"), Runtime.create(settings, "all")
    await upgrade(a.engine)
    try:
        with bind_call("CA-one"):
            report_provider_error(a.providers, "openai", "http_401", f"transcription failed: bad key {KEY}")
            report_provider_error(a.providers, "openai", "timeout", "transcription failed: timeout")
        assert a.providers.log is not None
        await a.providers.log.flush()
        seen_by_b = (await b.providers.report_shared({"openai": True}))["openai"]
        assert seen_by_b["ok"] is False and seen_by_b["last_kind"] == "timeout"
        assert seen_by_b["errors_last_hour"] == 2
        assert seen_by_b["kinds_last_hour"] == {"auth": 1, "timeout": 1}
        async with a.sessions() as session:
            rows = (await session.scalars(select(ProviderErrorRow).order_by(ProviderErrorRow.id))).all()
        assert [(r.provider, r.kind, r.call_sid) for r in rows] == [
            ("openai", "auth", "CA-one"),
            ("openai", "timeout", "CA-one"),
        ]
        assert KEY not in (rows[0].detail or "") and "[redacted]" in (rows[0].detail or "")

        a.providers.record("openai", ok=True)  # the first success after a failure is written at once
        await a.providers.log.flush()
        recovered = (await b.providers.report_shared({"openai": True}))["openai"]
        assert recovered["ok"] is True and recovered["errors_last_hour"] == 2
    finally:
        await a.close()
        await b.close()
