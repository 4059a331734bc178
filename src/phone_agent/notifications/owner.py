"""``notify_owner``: tell the business owner something happened, by SMS and/or e-mail.

Which events notify (``notify_events``), through which channels (``notify_channels``: SMS to
``owner_sms_number`` through Twilio, e-mail to ``owner_email`` over SMTP) and how often
(``notify_max_per_hour`` per event kind, shared by every worker through the database) are
settings. ``notify_owner`` never raises: the result says what was sent, what failed and what was
skipped and why, so the caller of it (a tool, a webhook, an alert) can store or show that.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Protocol

from loguru import logger
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from phone_agent.config import Settings, name_list, redact
from phone_agent.errors import PhoneAgentError
from phone_agent.notifications.email import email_configured, send_email
from phone_agent.notifications.quota import claim

SMS_MAX_CHARS = 320  # two GSM segments: the gist on the phone, the whole text by e-mail
ELLIPSIS = "…"


@dataclass(frozen=True)
class OwnerEvent:
    """Something the owner should hear about.

    ``kind`` is one of ``config.OWNER_EVENT_KINDS`` (``message``, ``voicemail``, ``booking``,
    ``transfer_failed``, ``provider_failure``, ``digest``); ``subject`` is one line; ``text`` the
    body (the SMS gets ``subject: text`` cut to ``SMS_MAX_CHARS``, the e-mail all of it).
    """

    kind: str
    subject: str
    text: str
    call_sid: str | None = None
    caller: str | None = None


@dataclass
class NotifyResult:
    """Per channel (``sms``, ``email``): sent, failed (why) or skipped (why)."""

    sent: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    sms_sid: str | None = None

    @property
    def delivered(self) -> bool:
        """At least one channel reached the owner."""
        return bool(self.sent)


class SmsSender(Protocol):
    """What sends an SMS (``telephony.control.CallControl``)."""

    async def send_sms(self, to: str, body: str) -> str: ...


class NotifyServices(Protocol):
    """What ``notify_owner`` needs: a ``Services``, or a tool's ``ToolContext``."""

    @property
    def settings(self) -> Settings: ...

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession] | None: ...

    @property
    def control(self) -> SmsSender | None: ...


def sms_body(event: OwnerEvent) -> str:
    """``subject: text`` on one line, cut to ``SMS_MAX_CHARS``."""
    text = " ".join(event.text.split())
    body = f"{event.subject}: {text}" if text else event.subject
    return body if len(body) <= SMS_MAX_CHARS else body[: SMS_MAX_CHARS - 1].rstrip() + ELLIPSIS


def email_text(event: OwnerEvent) -> str:
    """The e-mail body: the whole text, then the caller and the call it came from."""
    lines = [event.text.strip(), ""]
    if event.caller:
        lines.append(f"Caller: {event.caller}")
    if event.call_sid:
        lines.append(f"Call: {event.call_sid}")
    return "\n".join(lines).strip() + "\n"


async def notify_owner(services: NotifyServices, event: OwnerEvent) -> NotifyResult:
    """Send ``event`` to the owner on every configured channel; never raises.

    A channel is skipped when it is not in ``notify_channels`` or lacks its number/address; every
    channel is skipped when the kind is not in ``notify_events`` or ``notify_max_per_hour`` of this
    kind were already sent in the last hour.
    """
    settings = services.settings
    result = NotifyResult()
    channels = _ready_channels(services, result)
    if not channels:
        return result
    if event.kind not in name_list(settings.notify_events):
        result.skipped.update({name: f"{event.kind} events are not in notify_events" for name in channels})
        return result
    if not await _within_quota(services, event.kind):
        result.skipped.update({name: "rate limited (notify_max_per_hour)" for name in channels})
        logger.info("owner notification ({}) rate-limited", event.kind)
        return result
    sends = {"sms": lambda: _send_sms(services, event), "email": lambda: _send_email(settings, event)}
    outcomes = await asyncio.gather(*(sends[name]() for name in channels), return_exceptions=True)
    for name, outcome in zip(channels, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            if not isinstance(outcome, PhoneAgentError | OSError | TimeoutError):
                logger.opt(exception=outcome).error("owner {} notification broke", name)
            result.failed[name] = redact(str(outcome) or type(outcome).__name__, settings.secret_values())
            continue
        result.sent.append(name)
        if name == "sms":
            result.sms_sid = outcome
    _log(event, result)
    return result


def _ready_channels(services: NotifyServices, result: NotifyResult) -> list[str]:
    """The configured channels that have what they need; the others land in ``result.skipped``."""
    settings = services.settings
    ready = []
    for name in name_list(settings.notify_channels):
        if name == "sms":
            missing = None if settings.owner_sms_number else "owner_sms_number is not set"
            if missing is None and services.control is None:
                missing = "SMS is not available here"
        else:
            missing = email_configured(settings)
        if missing:
            result.skipped[name] = missing
        else:
            ready.append(name)
    return ready


async def _within_quota(services: NotifyServices, kind: str) -> bool:
    """Claim one of this hour's ``notify_max_per_hour`` places of ``kind`` (no database: no limit)."""
    if services.sessions is None:
        return True
    try:
        return await claim(services.sessions, kind, limit=services.settings.notify_max_per_hour)
    except SQLAlchemyError as exc:  # the owner still hears about it; the limit is best effort
        logger.warning("owner notification quota unavailable ({}): sending anyway", type(exc).__name__)
        return True


async def _send_sms(services: NotifyServices, event: OwnerEvent) -> str:
    control, to = services.control, services.settings.owner_sms_number
    assert control is not None and to is not None  # checked by _ready_channels
    return await control.send_sms(to, sms_body(event))


async def _send_email(settings: Settings, event: OwnerEvent) -> str:
    return await send_email(settings, subject=event.subject, text=email_text(event))


def _log(event: OwnerEvent, result: NotifyResult) -> None:
    """One line: the kind and each channel's outcome (no message text: it may be personal)."""
    failed = ", ".join(f"{name} failed: {why}" for name, why in result.failed.items())
    logger.info(
        "owner notified of {}: sent {}{}",
        event.kind,
        ",".join(result.sent) or "nothing",
        f"; {failed}" if failed else "",
    )
