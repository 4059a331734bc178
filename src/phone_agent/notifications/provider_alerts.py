"""The owner hears once when a provider starts failing: the first failure in an hour, all workers.

Every provider failure is stored (``ops.provider_log``); the first one of a provider that a process
sees in ``ALERT_WINDOW`` comes here, and the first of those across every worker (a ``claim`` on
``provider_failure:<provider>`` in the database) becomes one ``provider_failure`` notification.
Twenty failing calls therefore send one SMS, not twenty; the admin page counts the rest.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from loguru import logger
from sqlalchemy.exc import SQLAlchemyError

from phone_agent.notifications.owner import NotifyResult, NotifyServices, OwnerEvent, notify_owner
from phone_agent.notifications.quota import claim

ALERT_WINDOW = timedelta(hours=1)
NAMES = {
    "openai": "OpenAI",
    "elevenlabs": "ElevenLabs",
    "deepgram": "Deepgram",
    "twilio": "Twilio",
    "llm": "the LLM",
    "llm_secondary": "the secondary LLM",
    "memory": "the memory service",
    "configuration": "the configuration",
}
KIND_WORDS = {
    "auth": "refused the key (wrong or revoked API key?)",
    "5xx": "answered with server errors",
    "timeout": "did not answer in time",
    "refused": "could not be reached",
    "dropped": "dropped the connection",
    "rate_limited": "is rate-limiting or out of quota",
}


def alert_event(business: str, *, provider: str, kind: str, detail: str, at: datetime) -> OwnerEvent:
    """The ``provider_failure`` notification: who failed, how, and what callers get meanwhile."""
    name = NAMES.get(provider, provider)
    if provider == "configuration":
        subject = f"{business}: calls cannot be answered as configured"
    else:
        subject = f"{business}: {name} {KIND_WORDS.get(kind, f'is failing ({kind})')}"
    text = (
        f"{name} failed at {at.astimezone(UTC):%H:%M} UTC: {detail}\n"
        "Callers are served by the next provider where one is set, otherwise by the fallback action "
        "(transfer or voicemail). Further failures in the next hour are counted on the admin page "
        "(System), not sent again."
    )
    return OwnerEvent(kind="provider_failure", subject=subject, text=text)


async def alert_provider_failure(
    services: NotifyServices, *, provider: str, kind: str, detail: str
) -> NotifyResult | None:
    """Notify the owner if this is the first failure of ``provider`` in the window on any worker.

    Returns the notification's result, or None when another failure already alerted this window.
    """
    if services.sessions is not None:
        try:
            key = f"provider_failure:{provider}"
            first = await claim(services.sessions, key, limit=1, window=ALERT_WINDOW)
        except SQLAlchemyError as exc:  # no shared record: this worker's own window decides
            logger.warning("provider alert dedupe unavailable ({})", type(exc).__name__)
            first = True
        if not first:
            return None
    event = alert_event(
        services.settings.business_name, provider=provider, kind=kind, detail=detail, at=datetime.now(UTC)
    )
    logger.warning("{} is failing ({}): alerting the owner", provider, kind)
    return await notify_owner(services, event)
