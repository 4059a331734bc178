"""Provider outcomes in the database, so every worker's admin page shows every worker's failures.

``ProviderHealth`` (one per process) hands each failure and, at most every ``OK_WRITE_SECONDS``
per provider, a success to a ``ProviderLog``. The log writes them in the background (one writer
task at a time, batched, never on the call's path): a ``provider_errors`` row per failure and the
provider's latest outcome in ``provider_status``. ``shared_report`` reads them back with the count
of failures in the last hour by kind. The first failure of a provider in ``ALERT_WINDOW`` seen by
this process calls ``on_failure`` (the runtime alerts the owner; it also dedupes across workers).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from loguru import logger
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from phone_agent.storage.db import transaction
from phone_agent.storage.tables import ProviderErrorRow, ProviderStatus, utcnow

OK_WRITE_SECONDS = 30.0  # a success is written at most this often per provider (and after a failure)
ALERT_WINDOW = timedelta(hours=1)
ERROR_RETENTION = timedelta(days=7)
PURGE_EVERY_SECONDS = 3600.0
DETAIL_CHARS = 500

Spawn = Callable[[Coroutine[Any, Any, Any], str], object]
OnFailure = Callable[[str, str, str], None]


@dataclass(frozen=True)
class Outcome:
    """One provider outcome waiting to be written."""

    provider: str
    ok: bool
    at: datetime
    kind: str | None = None
    detail: str | None = None
    call_sid: str | None = None


class ProviderLog:
    """Writes provider outcomes to the database in the background; reads them back for the owner."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        spawn: Spawn,
        on_failure: OnFailure | None = None,
        scrub: Callable[[str], str] = lambda text: text,
    ) -> None:
        self._sessions, self._spawn, self._on_failure, self._scrub = sessions, spawn, on_failure, scrub
        self._pending: list[Outcome] = []
        self._writing = False
        self._ok_written: dict[str, float] = {}  # provider → monotonic time its success was queued
        self._alerted: dict[str, float] = {}  # provider → monotonic time this process alerted
        self._purged_at = 0.0

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        """The database the outcomes go to."""
        return self._sessions

    # -- recording (sync: called from the call path) ------------------------------------------------
    def failed(self, provider: str, kind: str, detail: str | None, call_sid: str | None) -> None:
        """Queue a failure; the first one of ``provider`` in ``ALERT_WINDOW`` calls ``on_failure``."""
        text = self._scrub(detail or "")[:DETAIL_CHARS] or None
        self._queue(Outcome(provider, False, utcnow(), kind=kind, detail=text, call_sid=call_sid))
        self._ok_written.pop(provider, None)  # the next success is written at once: it ends the outage
        now = time.monotonic()
        quiet = now - self._alerted.get(provider, -1e12) > ALERT_WINDOW.total_seconds()
        if self._on_failure is not None and quiet:
            self._alerted[provider] = now
            self._on_failure(provider, kind, text or kind)

    def succeeded(self, provider: str) -> None:
        """Queue a success, unless one was queued in the last ``OK_WRITE_SECONDS``."""
        now = time.monotonic()
        if now - self._ok_written.get(provider, -1e12) < OK_WRITE_SECONDS:
            return
        self._ok_written[provider] = now
        self._queue(Outcome(provider, True, utcnow()))

    def _queue(self, outcome: Outcome) -> None:
        self._pending.append(outcome)
        if not self._writing:
            self._writing = True
            if self._spawn(self._write_all(), "provider-log") is None:
                self._writing = False  # shutting down: the outcomes stay in memory only

    # -- writing ------------------------------------------------------------------------------------
    async def _write_all(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    await self._write(batch)
                except SQLAlchemyError as exc:  # the database is away: the admin page still has memory
                    logger.warning("{} provider outcomes not stored: {}", len(batch), type(exc).__name__)
        finally:
            self._writing = False

    async def _write(self, batch: list[Outcome]) -> None:
        for _ in range(2):  # a status row inserted by another worker meanwhile: the retry updates it
            try:
                async with transaction(self._sessions) as session:
                    await _store(session, batch)
                    await self._purge(session)
                return
            except IntegrityError:
                continue

    async def _purge(self, session: AsyncSession) -> None:
        if time.monotonic() - self._purged_at < PURGE_EVERY_SECONDS:
            return
        self._purged_at = time.monotonic()
        old = ProviderErrorRow.at < utcnow() - ERROR_RETENTION
        await session.execute(delete(ProviderErrorRow).where(old))

    async def flush(self) -> None:
        """Return once everything queued so far is written (tests, shutdown)."""
        while self._pending or self._writing:
            if self._writing:  # the background writer has it
                await asyncio.sleep(0.01)
                continue
            self._writing = True
            await self._write_all()


async def _store(session: AsyncSession, batch: list[Outcome]) -> None:
    for o in batch:
        if not o.ok:
            session.add(
                ProviderErrorRow(
                    provider=o.provider, kind=o.kind or "error", detail=o.detail, call_sid=o.call_sid, at=o.at
                )
            )
    for provider in dict.fromkeys(o.provider for o in batch):
        status = await session.get(ProviderStatus, provider) or ProviderStatus(provider=provider)
        for o in (o for o in batch if o.provider == provider):
            if o.ok and (status.last_ok_at is None or o.at > status.last_ok_at):
                status.last_ok_at = o.at
            elif not o.ok and (status.last_error_at is None or o.at >= status.last_error_at):
                status.last_error_at, status.last_error, status.last_kind = o.at, o.detail, o.kind
        session.add(status)


async def shared_report(sessions: async_sessionmaker[AsyncSession]) -> dict[str, dict[str, Any]]:
    """Per provider, as every worker stored it: last OK / error (unix times), the last error and its
    kind, and the failures of the last hour (``errors_last_hour``, ``kinds_last_hour``)."""
    since = utcnow() - timedelta(hours=1)
    async with sessions() as session:
        statuses = (await session.scalars(select(ProviderStatus))).all()
        counted = await session.execute(
            select(ProviderErrorRow.provider, ProviderErrorRow.kind, func.count())
            .where(ProviderErrorRow.at >= since)
            .group_by(ProviderErrorRow.provider, ProviderErrorRow.kind)
        )
        kinds: dict[str, dict[str, int]] = {}
        for provider, kind, count in counted:
            kinds.setdefault(provider, {})[kind] = int(count)
    out: dict[str, dict[str, Any]] = {}
    for s in statuses:
        out[s.provider] = {
            "last_ok_at": s.last_ok_at.timestamp() if s.last_ok_at else None,
            "last_error_at": s.last_error_at.timestamp() if s.last_error_at else None,
            "last_error": s.last_error,
            "last_kind": s.last_kind,
        }
    for provider, by_kind in kinds.items():
        entry = out.setdefault(provider, {"last_ok_at": None, "last_error_at": None, "last_error": None})
        entry["kinds_last_hour"] = dict(sorted(by_kind.items(), key=lambda kv: -kv[1]))
    for entry in out.values():
        entry.setdefault("kinds_last_hour", {})
        entry["errors_last_hour"] = sum(entry["kinds_last_hour"].values())
    return out
