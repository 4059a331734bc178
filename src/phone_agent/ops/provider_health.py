"""What each external provider last did in this process: when it last answered and last failed.

Providers are not probed for the admin page (that would spend the owner's quota on every page
view); code that talks to one calls ``ProviderHealth.record`` and the page shows when each was last
seen OK or failing. One ``ProviderHealth`` per process, held by the ``Runtime``.

Every provider failure on the call path goes through ``report_provider_error`` (the health record
and the Prometheus counter in one place, so alerting can hook in there).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from phone_agent.ops import metrics


@dataclass
class ProviderSeen:
    """The latest outcomes of one provider (unix times; ``last_error`` holds no secret)."""

    last_ok_at: float | None = None
    last_error_at: float | None = None
    last_error: str | None = None

    @property
    def ok(self) -> bool | None:
        """None when never used; else whether the latest outcome was a success."""
        if self.last_ok_at is None and self.last_error_at is None:
            return None
        return (self.last_ok_at or 0) >= (self.last_error_at or 0)


class ProviderHealth:
    """Latest outcome per provider name (``openai``, ``elevenlabs``, ``llm``, ...)."""

    def __init__(self) -> None:
        self._seen: dict[str, ProviderSeen] = {}

    def record(self, provider: str, *, ok: bool, detail: str | None = None) -> None:
        """Remember the outcome of the latest request to ``provider`` (no secret in ``detail``)."""
        entry = self._seen.setdefault(provider, ProviderSeen())
        if ok:
            entry.last_ok_at = time.time()
        else:
            entry.last_error_at, entry.last_error = time.time(), detail

    def report(self, configured: dict[str, bool]) -> dict[str, dict[str, Any]]:
        """Per provider (configured ones and any seen): configured, last OK/error, latest OK or not."""
        out: dict[str, dict[str, Any]] = {}
        for name in sorted(set(configured) | set(self._seen)):
            seen = self._seen.get(name, ProviderSeen())
            out[name] = {
                "last_ok_at": seen.last_ok_at,
                "last_error_at": seen.last_error_at,
                "last_error": seen.last_error,
                "ok": seen.ok,
                "configured": configured.get(name, True),
            }
        return out


def report_provider_error(health: ProviderHealth | None, provider: str, kind: str, detail: str) -> None:
    """A provider failed: count it (``metrics.provider_error``) and remember it for the admin page.

    Args:
        health: the process's ``ProviderHealth`` (``runtime.providers``), if the caller has one.
        provider: ``openai``, ``elevenlabs``, ``deepgram``, ``llm``, ``llm_secondary``, ``memory``, ...
        kind: what went wrong, short (``http_500``, ``auth``, ``timeout``, ``dropped``, ``refused``).
        detail: one line for the owner, never a secret.
    """
    metrics.provider_error(provider, kind)
    if health is not None:
        health.record(provider, ok=False, detail=detail)


def error_kind(exc: BaseException | None) -> str:
    """A short kind for a provider exception: ``http_401``, ``timeout``, ``refused``, ``dropped``, ..."""
    if exc is None:
        return "error"
    status = getattr(exc, "status_code", None) or getattr(exc, "status", None)
    if isinstance(status, int):
        return f"http_{status}"
    if isinstance(exc, TimeoutError) or "Timeout" in type(exc).__name__:
        return "timeout"
    text = f"{type(exc).__name__} {exc}".lower()
    if "refused" in text or "connecterror" in text or "cannot connect" in text:
        return "refused"
    if "closed" in text or "disconnect" in text or "protocol" in text or "incomplete" in text:
        return "dropped"
    return type(exc).__name__
