"""Stream tokens: bound to a call, signed, short-lived."""

from __future__ import annotations

from pathlib import Path

import pytest

from phone_agent.telephony.stream_token import (
    InvalidStreamToken,
    issue_stream_token,
    signing_key,
    verify_stream_token,
)
from tests.conftest import make_settings

KEY = b"k" * 32


def test_round_trip() -> None:
    token = issue_stream_token(KEY, call_sid="CA1", caller="+1555", ttl_seconds=60, now=1000)
    grant = verify_stream_token(KEY, token, now=1059)
    assert (grant.call_sid, grant.caller, grant.expires_at) == ("CA1", "+1555", 1060)


@pytest.mark.parametrize("token", [None, "", "abc", "a.b.c", "e30.AAAA"])
def test_malformed_tokens_are_refused(token: str | None) -> None:
    with pytest.raises(InvalidStreamToken):
        verify_stream_token(KEY, token)


def test_expired_wrong_key_and_tampered_are_refused() -> None:
    token = issue_stream_token(KEY, call_sid="CA1", caller=None, ttl_seconds=60, now=1000)
    with pytest.raises(InvalidStreamToken, match="expired"):
        verify_stream_token(KEY, token, now=1061)
    with pytest.raises(InvalidStreamToken, match="signature"):
        verify_stream_token(b"other", token, now=1000)
    payload, signature = token.split(".")
    other = issue_stream_token(KEY, call_sid="CA2", caller=None, ttl_seconds=60, now=1000).split(".")[0]
    with pytest.raises(InvalidStreamToken):
        verify_stream_token(KEY, f"{other}.{signature}", now=1000)


def test_generated_key_is_kept_in_data_dir(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    key = signing_key(settings)
    assert len(key) >= 32 and signing_key(settings) == key
    assert (tmp_path / "session_secret").stat().st_mode & 0o077 == 0
    configured = make_settings(tmp_path, PHONE_AGENT_SESSION_SECRET="configured-secret")
    assert signing_key(configured) == b"configured-secret"
