"""Short-lived signed tokens that let one call's Media Stream into ``/media-stream``.

``/phone/incoming`` issues a token bound to the call SID and caller number; the websocket checks
it before building a pipeline, and then claims the call in the database (``storage.streams``), so
a token opens one stream, for a call that has not ended. The token is ``<payload>.<signature>``:
a base64url JSON payload and a base64url HMAC-SHA256 of it, keyed with ``session_secret``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from loguru import logger

from phone_agent.config import Settings

SECRET_FILE = "session_secret"


@dataclass(frozen=True)
class StreamGrant:
    """What a valid token allows: one stream for one call."""

    call_sid: str
    caller: str | None
    expires_at: float


class InvalidStreamToken(Exception):
    """The token is missing, forged, malformed or expired (the message says which)."""


def signing_key(settings: Settings) -> bytes:
    """``session_secret``, else one generated once and kept in ``data_dir`` (shared by all roles)."""
    configured = settings.secret("session_secret")
    if configured:
        return configured.encode()
    path = Path(settings.data_dir) / SECRET_FILE
    try:
        return path.read_text(encoding="utf-8").strip().encode()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    try:
        with path.open("x", encoding="utf-8") as handle:  # "x": another process may have won the race
            handle.write(value)
        path.chmod(0o600)
        logger.info("session_secret not set: generated one in {}", path)
    except FileExistsError:
        value = path.read_text(encoding="utf-8").strip()
    return value.encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(key: bytes, payload: str) -> str:
    return _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())


def issue_stream_token(
    key: bytes,
    *,
    call_sid: str,
    caller: str | None,
    ttl_seconds: int | None = None,
    now: float | None = None,
    expires_at: int | None = None,
) -> str:
    """A token for ``call_sid`` valid for ``ttl_seconds`` (or until ``expires_at``, epoch seconds).

    The token is a pure function of its fields and the key: minted again with the same expiry it
    is the same token (``/phone/incoming`` answers a retried webhook so).
    """
    if expires_at is None:
        if ttl_seconds is None:
            raise ValueError("issue_stream_token needs ttl_seconds or expires_at")
        expires_at = int((time.time() if now is None else now) + ttl_seconds)
    expires = expires_at
    payload = _b64(json.dumps({"c": call_sid, "f": caller, "e": expires}, separators=(",", ":")).encode())
    return f"{payload}.{_sign(key, payload)}"


def verify_stream_token(key: bytes, token: str | None, *, now: float | None = None) -> StreamGrant:
    """The grant in ``token``; raises InvalidStreamToken unless it is ours and unexpired."""
    if not token or token.count(".") != 1:
        raise InvalidStreamToken("missing or malformed stream token")
    payload, signature = token.split(".")
    if not hmac.compare_digest(_sign(key, payload), signature):
        raise InvalidStreamToken("stream token signature does not match")
    try:
        data = json.loads(_unb64(payload))
        grant = StreamGrant(call_sid=str(data["c"]), caller=data.get("f"), expires_at=float(data["e"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidStreamToken("stream token payload is malformed") from exc
    if grant.expires_at < (time.time() if now is None else now):
        raise InvalidStreamToken("stream token expired")
    return grant
