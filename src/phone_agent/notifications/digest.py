"""The owner's daily digest: the last day's calls and outcomes, the open inbox, tomorrow's bookings.

E-mailed to ``owner_email`` at ``digest_hour`` (business time zone) when ``digest`` is in
``notify_events``. ``run_daily_digest`` is the loop the ``Runtime`` owns (one task per process);
with several workers on one database, the day's digest is claimed once (``quota.claim``) so the
owner gets one e-mail.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from phone_agent.config import Settings, name_list
from phone_agent.notifications.email import email_configured, send_email
from phone_agent.notifications.quota import claim
from phone_agent.storage.analytics import call_stats
from phone_agent.storage.inbox import appointments_between, inbox_items
from phone_agent.storage.tables import utcnow

KINDS = {"message": "Message", "voicemail": "Voicemail", "booking": "Booking", "callback": "Callback request"}
OUTCOME_WORDS = {
    "answered": "answered",
    "appointment_booked": "appointment booked",
    "message_taken": "message taken",
    "transferred": "transferred",
    "voicemail": "voicemail",
    "abandoned": "abandoned",
    "spam": "spam",
}


def next_run(now: datetime, hour: int, timezone: str) -> datetime:
    """The next ``hour``:00 local time after ``now``."""
    tz = ZoneInfo(timezone)
    local = now.astimezone(tz)
    run = datetime.combine(local.date(), datetime.min.time(), tz).replace(hour=hour)
    return run if run > local else run + timedelta(days=1)


async def build_digest(
    session: AsyncSession, settings: Settings, *, now: datetime | None = None
) -> tuple[str, str]:
    """Subject and text of the digest of the 24 hours before ``now``."""
    tz = ZoneInfo(settings.timezone)
    now = (now or utcnow()).astimezone(tz)
    stats = await call_stats(session, days=2, timezone=settings.timezone, now=now)
    today_calls = stats.days[-1][1]
    open_items = await inbox_items(session, state="open", limit=50)
    tomorrow = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tz)
    upcoming = await appointments_between(session, now, tomorrow + timedelta(days=1))
    lines = [f"{settings.business_name}: {today_calls} call(s) today ({now:%A %d %B})."]
    outcomes = ", ".join(f"{n} {OUTCOME_WORDS.get(k, k)}" for k, n in stats.outcomes.items())
    if outcomes:
        lines.append(f"Outcomes over the last two days: {outcomes}.")
    if stats.transfers:
        lines.append(f"Transferred to a person: {stats.transfers}.")
    lines += ["", f"Open in the inbox: {len(open_items)}"]
    for item in open_items[:20]:
        who = item["name"] or item["phone"] or "unknown caller"
        text = " ".join(str(item["text"] or item["summary"] or "").split())[:160]
        lines.append(f"- {KINDS.get(item['kind'], item['kind'])} from {who}: {text}")
    lines += ["", f"Bookings until tomorrow night: {len(upcoming)}"]
    for booking in upcoming[:20]:
        who = booking["name"] or booking["phone"] or "unknown caller"
        lines.append(
            f"- {booking['starts_at'].astimezone(tz):%a %H:%M} {who}: {booking['text'] or ''}".rstrip(": ")
        )
    if settings.public_url:
        lines += ["", f"Inbox: {settings.public_url.rstrip('/')}/admin/inbox"]
    subject = f"{settings.business_name} daily digest: {today_calls} call(s), {len(open_items)} open"
    return subject, "\n".join(lines) + "\n"


async def send_digest(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], *, now: datetime | None = None
) -> bool:
    """E-mail today's digest once (across workers); False when off, not configured or sent already."""
    if "digest" not in name_list(settings.notify_events) or email_configured(settings):
        return False
    day = (now or utcnow()).astimezone(ZoneInfo(settings.timezone)).date()
    if not await claim(sessions, f"digest:{day.isoformat()}", limit=1, window=timedelta(days=1)):
        return False
    async with sessions() as session:
        subject, text = await build_digest(session, settings, now=now)
    await send_email(settings, subject=subject, text=text)
    logger.info("daily digest e-mailed for {}", day)
    return True


async def run_daily_digest(
    settings_now: Callable[[], Settings],
    sessions: async_sessionmaker[AsyncSession],
    *,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> None:
    """Forever: wait for ``digest_hour`` (of the settings in force then), send the digest."""
    while True:
        settings = settings_now()
        now = utcnow()
        await sleep(max(1.0, (next_run(now, settings.digest_hour, settings.timezone) - now).total_seconds()))
        try:
            await send_digest(settings_now(), sessions)  # an admin change meanwhile counts
        except Exception as exc:  # SMTP or database away: tomorrow's digest still comes
            logger.warning("daily digest failed: {}", type(exc).__name__)
