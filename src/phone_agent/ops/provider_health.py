"""What each external provider last did in this process: when it last answered and last failed.

Providers are not probed for the admin page (that would spend the owner's quota on every page
view); code that talks to one calls ``ProviderHealth.record`` and the page shows when each was last
seen OK or failing. One ``ProviderHealth`` per process, held by the ``Runtime``, which
attaches a ``ProviderLog``: outcomes are then stored in the database too, so the admin page of
any worker shows every worker's failures (``report_shared``) and the owner is alerted once.

Every provider failure on the call path goes through ``report_provider_error`` (the health record
and the Prometheus counter in one place, so alerting can hook in there).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from loguru import logger
from sqlalchemy.exc import SQLAlchemyError

from phone_agent.ops import metrics
from phone_agent.ops.logging import current_call_sid
from phone_agent.ops.provider_log import ProviderLog, shared_report


@dataclass
class ProviderSeen:
    """The latest outcomes of one provider (unix times; ``last_error`` holds no secret)."""

    last_ok_at: float | None = None
    last_error_at: float | None = None
    last_error: str | None = None
    last_kind: str | None = None

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
        self._log: ProviderLog | None = None

    def attach(self, log: ProviderLog) -> None:
        """Store outcomes in the database from now on (and alert through the log's ``on_failure``)."""
        self._log = log

    @property
    def log(self) -> ProviderLog | None:
        """The attached database log, if any."""
        return self._log

    def record(self, provider: str, *, ok: bool, detail: str | None = None, kind: str | None = None) -> None:
        """Remember the outcome of the latest request to ``provider`` (no secret in ``detail``).

        ``kind`` (a failure's) is summarised for the owner by ``owner_kind`` (auth, 5xx, timeout, ...).
        """
        entry = self._seen.setdefault(provider, ProviderSeen())
        if ok:
            entry.last_ok_at = time.time()
            if self._log is not None:
                self._log.succeeded(provider)
            return
        summary = owner_kind(kind or "error", detail)
        entry.last_error_at, entry.last_error, entry.last_kind = time.time(), detail, summary
        if self._log is not None:
            self._log.failed(provider, summary, detail, current_call_sid())

    def report(self, configured: dict[str, bool]) -> dict[str, dict[str, Any]]:
        """Per provider (configured ones and any seen): configured, last OK/error, latest OK or not."""
        out: dict[str, dict[str, Any]] = {}
        for name in sorted(set(configured) | set(self._seen)):
            seen = self._seen.get(name, ProviderSeen())
            out[name] = {
                "last_ok_at": seen.last_ok_at,
                "last_error_at": seen.last_error_at,
                "last_error": seen.last_error,
                "last_kind": seen.last_kind,
                "ok": seen.ok,
                "configured": configured.get(name, True),
                "errors_last_hour": None,  # known from the database only (``report_shared``)
                "kinds_last_hour": {},
            }
        return out

    async def report_shared(self, configured: dict[str, bool]) -> dict[str, dict[str, Any]]:
        """``report`` merged with what every worker stored: the newest outcome wins, and the
        failures of the last hour are counted. Without a log (or a database) it is ``report``."""
        out = self.report(configured)
        if self._log is None:
            return out
        try:
            stored = await shared_report(self._log.sessions)
        except SQLAlchemyError as exc:
            logger.warning("provider outcomes unavailable ({}): this worker's only", type(exc).__name__)
            return out
        for name, row in stored.items():
            entry = out.setdefault(name, self.report({name: configured.get(name, True)})[name])
            if (row["last_ok_at"] or 0) > (entry["last_ok_at"] or 0):
                entry["last_ok_at"] = row["last_ok_at"]
            if (row["last_error_at"] or 0) > (entry["last_error_at"] or 0):
                entry["last_error_at"], entry["last_error"] = row["last_error_at"], row["last_error"]
                entry["last_kind"] = row.get("last_kind")
            entry["errors_last_hour"] = row["errors_last_hour"]
            entry["kinds_last_hour"] = row["kinds_last_hour"]
        for entry in out.values():
            seen = ProviderSeen(entry["last_ok_at"], entry["last_error_at"], entry["last_error"])
            entry["ok"] = seen.ok
            if entry["errors_last_hour"] is None:
                entry["errors_last_hour"] = 0
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
        health.record(provider, ok=False, detail=detail, kind=kind)


OWNER_KINDS = ("auth", "5xx", "timeout", "refused", "dropped", "rate_limited")
_TEXT_KINDS = (
    ("auth", re.compile(r"\b(401|403)\b|unauthori[sz]ed|forbidden|(invalid|incorrect) (api )?key|authentic")),
    ("rate_limited", re.compile(r"\b429\b|rate.?limit|quota")),
    ("5xx", re.compile(r"\b5\d\d\b|server error|service unavailable|bad gateway")),
    ("timeout", re.compile(r"time.?out|timed out|no first token|no audio within")),
    ("refused", re.compile(r"refused|cannot connect|connecterror|unreachable|name or service not known")),
    ("dropped", re.compile(r"closed|disconnect|dropped|protocol|incomplete|reset by peer")),
)


def owner_kind(kind: str, detail: str | None = None) -> str:
    """What went wrong, in the owner's words: ``auth``, ``5xx``, ``timeout``, ``refused``,
    ``dropped``, ``rate_limited``; other kinds as given. ``http_401`` → auth, ``http_503`` → 5xx; a
    stage label (``stt``, ``tts``, ``realtime``) is read from the detail."""
    if kind in OWNER_KINDS:
        return kind
    status = re.fullmatch(r"http_(\d{3})", kind)
    text = (status.group(1) if status else f"{kind} {detail or ''}").lower()
    for name, pattern in _TEXT_KINDS:
        if pattern.search(text):
            return name
    return kind


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
