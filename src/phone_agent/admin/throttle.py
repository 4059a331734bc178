"""Admin login throttling: per client address and for the account, counted atomically.

Every login (or setup-code) attempt first *reserves* its place, before the password is checked:

- ``client:<address>``: at most ``MAX_FAILURES`` attempts per ``FAILURE_WINDOW``; then 429 until
  the window ends (a success resets it). The address is the real peer (``api.proxy``).
- ``account``: the first ``ACCOUNT_FREE_ATTEMPTS`` attempts in the window are free; after that
  each must wait twice as long as the one before (1 s, 2 s, 4 s ... up to ``ACCOUNT_MAX_DELAY``),
  whatever address it comes from. A success resets it.

Reserving before checking is what makes the count hold under concurrency: 100 simultaneous wrong
passwords reserve one by one (compare-and-set on ``login_throttle.version``), so at most
``MAX_FAILURES`` are ever checked and the rest get 429. The rows live in the shared database, so
the limits hold across processes and restarts.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from phone_agent.storage.db import transaction
from phone_agent.storage.tables import LoginThrottle, utcnow

MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(minutes=15)
ACCOUNT_KEY = "account"
ACCOUNT_FREE_ATTEMPTS = 10
ACCOUNT_MAX_DELAY = timedelta(minutes=15)
CAS_ROUNDS = 200  # each lost round means another attempt was counted first


@dataclass(frozen=True)
class Refused:
    """An attempt that may not be checked now, and when the next one may be."""

    retry_after: float  # seconds
    reason: str


def client_key(client: str) -> str:
    """The throttle row of one client address."""
    return f"client:{client}"[:200]


def _account_delay(attempts: int) -> timedelta:
    """How long after the ``attempts``-th attempt in the window the next one must wait."""
    over = attempts - ACCOUNT_FREE_ATTEMPTS
    if over < 0:
        return timedelta(0)
    return min(ACCOUNT_MAX_DELAY, timedelta(seconds=2 ** min(over, 20)))


Counted = tuple[int, datetime, datetime | None]  # attempts, window start, next allowed


def _decide(key: str, row: LoginThrottle | None, now: datetime) -> Counted | Refused:
    """The row's next values if this attempt may go ahead, else why not."""
    fresh = row is None or row.window_started_at <= now - FAILURE_WINDOW
    attempts, window = (0, now) if fresh or row is None else (row.attempts, row.window_started_at)
    if key == ACCOUNT_KEY:
        if row is not None and attempts and row.next_allowed_at is not None and row.next_allowed_at > now:
            wait = (row.next_allowed_at - now).total_seconds()
            return Refused(wait, "too many wrong passwords for the account")
        attempts += 1
        return attempts, window, now + _account_delay(attempts)
    if attempts >= MAX_FAILURES:
        return Refused((window + FAILURE_WINDOW - now).total_seconds(), "too many wrong passwords")
    return attempts + 1, window, None


async def _reserve(sessions: async_sessionmaker[AsyncSession], key: str) -> Refused | None:
    for _ in range(CAS_ROUNDS):
        now = utcnow()
        async with sessions() as session:
            row = await session.get(LoginThrottle, key)
        decision = _decide(key, row, now)
        if isinstance(decision, Refused):
            return decision
        attempts, window, next_allowed = decision
        try:
            async with transaction(sessions) as session:
                if row is None:
                    session.add(
                        LoginThrottle(
                            key=key,
                            attempts=attempts,
                            window_started_at=window,
                            next_allowed_at=next_allowed,
                            version=1,
                        )
                    )
                    return None
                result = await session.execute(
                    update(LoginThrottle)
                    .where(LoginThrottle.key == key, LoginThrottle.version == row.version)
                    .values(
                        attempts=attempts,
                        window_started_at=window,
                        next_allowed_at=next_allowed,
                        version=row.version + 1,
                    )
                )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                return None
        except IntegrityError:
            pass  # another attempt created the row first
        await asyncio.sleep(random.uniform(0, 0.005))  # let the winner's neighbours spread out
    return Refused(1.0, "too many concurrent login attempts")


async def reserve_attempt(sessions: async_sessionmaker[AsyncSession], client: str) -> Refused | None:
    """Count one login attempt from ``client``; a ``Refused`` when it may not be checked now."""
    refused = await _reserve(sessions, client_key(client))
    if refused is None:
        refused = await _reserve(sessions, ACCOUNT_KEY)
    return refused


async def attempt_succeeded(sessions: async_sessionmaker[AsyncSession], client: str) -> None:
    """The right password: the client's and the account's counts start again."""
    async with transaction(sessions) as session:
        await session.execute(
            delete(LoginThrottle).where(LoginThrottle.key.in_([client_key(client), ACCOUNT_KEY]))
        )
