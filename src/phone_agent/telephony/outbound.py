"""Placing an outbound call: the checks that may refuse it, and the Twilio request.

``place_outbound_call`` checks the number (E.164, not on the do-not-call list), the business's
calling hours and the configuration, records the call, then asks Twilio to dial with
answering-machine detection running in the background (``MachineDetection=DetectMessageEnd``,
``AsyncAmd``): when the callee answers, Twilio fetches ``ANSWER_PATH`` (a Media Stream, like an
inbound call), posts every status change to ``STATUS_PATH`` and the verdict (``AnsweredBy``) to
``AMD_PATH`` — for a machine only once its greeting has ended (the beep). Each URL names the call by
``ref``, so a callback that outruns the create request's answer still finds its row.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from phone_agent.config import Settings, e164
from phone_agent.errors import PhoneAgentError, ProviderError
from phone_agent.opening_hours import parse_closed_days, parse_hours
from phone_agent.storage.outbound import (
    OutboundView,
    attach_call,
    create_outbound,
    on_do_not_call,
    outbound_failed,
)
from phone_agent.storage.tables import utcnow
from phone_agent.telephony.control import CallControl, public_url_for

ANSWER_PATH = "/phone/outbound/answer"
STATUS_PATH = "/phone/outbound/status"
AMD_PATH = "/phone/outbound/amd"
STATUS_EVENTS = ["initiated", "ringing", "answered", "completed"]
AMD_TIMEOUT_SECONDS = 30  # Twilio's MachineDetectionTimeout: the verdict comes by then (else unknown)
RING_SECONDS = 30
MAX_PURPOSE_CHARS = 500
MACHINE_VERDICTS = ("machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other")


class DialRefused(PhoneAgentError):
    """The call is not placed; ``code`` says why (do_not_call, outside_calling_hours, ...)."""

    def __init__(self, code: str, message: str, *, status_code: int = 403, param: str | None = None) -> None:
        super().__init__(message)
        self.code, self.status_code, self.param = code, status_code, param


def calling_hours_text(settings: Settings) -> str:
    """The hours outbound calls may be placed in, as configured."""
    return settings.calling_hours.strip() or settings.business_hours


def calling_hours_problem(settings: Settings, now: datetime) -> str | None:
    """None inside the calling hours (never on ``closed_days``); else a sentence saying when calling
    opens next."""
    tz = ZoneInfo(settings.timezone)
    hours = parse_hours(calling_hours_text(settings))
    closed = parse_closed_days(settings.closed_days)
    local = now.astimezone(tz)
    if hours.is_open(now, 0, tz) and local.date() not in closed:
        return None
    upcoming = [
        start
        for offset in range(15)
        if local.date() + timedelta(days=offset) not in closed
        for start, _end in hours.open_ranges(local.date() + timedelta(days=offset), tz)
        if start > local
    ]
    next_text = f" Calling opens next on {min(upcoming):%A %d %B at %H:%M}." if upcoming else ""
    why = "a closed day" if local.date() in closed else f"it is {local:%A %H:%M} there"
    return f"Outside calling hours ({calling_hours_text(settings)}, {settings.timezone}): {why}.{next_text}"


def configuration_problem(settings: Settings) -> str | None:
    """What is missing for Twilio to place the call and reach us back, if anything."""
    missing = [
        env
        for name, env in (
            ("twilio_account_sid", "TWILIO_ACCOUNT_SID"),
            ("twilio_auth_token", "TWILIO_AUTH_TOKEN"),
            ("twilio_phone_number", "TWILIO_PHONE_NUMBER"),
            ("public_url", "PUBLIC_URL"),
        )
        if not (settings.secret(name) if name == "twilio_auth_token" else getattr(settings, name))
    ]
    if not missing:
        return None
    return (
        f"Outbound calls need {', '.join(missing)} "
        "(Twilio dials from the agent's number and calls PUBLIC_URL back)."
    )


async def check_dial(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], *, to: str, purpose: str, now: datetime
) -> str:
    """The number to dial in E.164; DialRefused when the call must not (or cannot) be placed."""
    try:
        number = e164(to, settings.default_country)
    except ValueError as exc:
        raise DialRefused("invalid_number", f"to: {exc}.", status_code=422, param="to") from None
    if not purpose.strip():
        raise DialRefused(
            "purpose_required", "purpose: say why the agent calls.", status_code=422, param="purpose"
        )
    if len(purpose) > MAX_PURPOSE_CHARS:
        raise DialRefused(
            "purpose_too_long",
            f"purpose: at most {MAX_PURPOSE_CHARS} characters.",
            status_code=422,
            param="purpose",
        )
    if await on_do_not_call(sessions, number):
        raise DialRefused("do_not_call", f"{number} is on the do-not-call list: the agent will not call it.")
    hours = calling_hours_problem(settings, now)
    if hours:
        raise DialRefused("outside_calling_hours", hours, status_code=409)
    problem = configuration_problem(settings)
    if problem:
        raise DialRefused("not_configured", problem, status_code=422)
    if settings.twilio_phone_number and number == settings.twilio_phone_number:
        raise DialRefused(
            "invalid_number", "to: the agent cannot call its own number.", status_code=422, param="to"
        )
    return number


async def place_outbound_call(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    control: CallControl,
    *,
    to: str,
    purpose: str,
    requested_by: str,
    now: datetime | None = None,
) -> OutboundView:
    """Check, record and place the call; returns it (queued, with its CallSid).

    Raises:
        DialRefused: the checks refused it (nothing was dialled).
        ProviderError: Twilio refused or could not be reached (kept on the record as ``failed``).
    """
    number = await check_dial(settings, sessions, to=to, purpose=purpose, now=now or utcnow())
    purpose = " ".join(purpose.split())
    ref = secrets.token_urlsafe(18)
    await create_outbound(sessions, ref=ref, to=number, purpose=purpose, requested_by=requested_by)
    try:
        call_sid = await control.dial_out(
            number,
            url=public_url_for(settings, ANSWER_PATH, ref=ref),
            method="POST",
            status_callback=public_url_for(settings, STATUS_PATH, ref=ref),
            status_callback_event=STATUS_EVENTS,
            status_callback_method="POST",
            timeout=RING_SECONDS,
            machine_detection="DetectMessageEnd",
            machine_detection_timeout=AMD_TIMEOUT_SECONDS,
            async_amd="true",
            async_amd_status_callback=public_url_for(settings, AMD_PATH, ref=ref),
            async_amd_status_callback_method="POST",
        )
    except ProviderError as exc:
        await outbound_failed(sessions, ref=ref, error=str(exc))
        raise
    view = await attach_call(sessions, ref=ref, call_sid=call_sid, from_number=settings.twilio_phone_number)
    assert view is not None  # the row was created above
    logger.info("outbound call {} placed ({})", call_sid, requested_by)
    return view


def is_machine(answered_by: str | None) -> bool:
    """An answering machine's verdict (a voicemail is left)."""
    return answered_by in MACHINE_VERDICTS
