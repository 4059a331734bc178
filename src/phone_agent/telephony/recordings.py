"""Call recordings through Twilio: started when a call's media stream starts (``recording_enabled``),
their status callback read, their media's URL, and their deletion with the caller's data.

Twilio keeps the media; the database keeps the SID and what the status callback said
(``storage.recordings``). A recording whose call was deleted (``memory forget``, the admin's caller
delete, retention) is deleted at Twilio, then its row; a row whose deletion failed stays and is
tried again by the next sweep, so no recording outlives its call unnoticed.
"""

from __future__ import annotations

from datetime import datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from phone_agent.config import Settings
from phone_agent.errors import ConfigError, PhoneAgentError
from phone_agent.storage.recordings import (
    RecordingUpdate,
    add_recording,
    drop_recording,
    orphaned_recordings,
)
from phone_agent.storage.tables import CallRecording
from phone_agent.telephony.control import CallControl, public_url_for

RECORDING_STATUS_PATH = "/phone/recording-status"
MEDIA_TYPES = {"wav": "audio/x-wav", "mp3": "audio/mpeg"}


async def start_call_recording(
    control: CallControl, sessions: async_sessionmaker[AsyncSession], settings: Settings, call_sid: str
) -> str | None:
    """Ask Twilio to record a live call; returns the recording SID (None when it could not start:
    logged, the call goes on unrecorded)."""
    if not settings.public_url:
        logger.error("recording_enabled needs PUBLIC_URL (Twilio reports the recording there): not recording")
        return None
    try:
        started = await control.start_recording(
            call_sid, status_callback=public_url_for(settings, RECORDING_STATUS_PATH)
        )
    except PhoneAgentError as exc:
        logger.error("the call could not be recorded: {}", exc)
        return None
    start_time = started.get("start_time")
    await add_recording(
        sessions,
        recording_sid=started["sid"],
        call_sid=call_sid,
        status=str(started.get("status") or "in-progress"),
        started_at=start_time if isinstance(start_time, datetime) else None,
    )
    return str(started["sid"])


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def _when(value: str | None) -> datetime | None:
    try:
        return parsedate_to_datetime(value) if value else None
    except (TypeError, ValueError):
        return None


def recording_update(form: dict[str, str]) -> RecordingUpdate | None:
    """A recording status callback's parameters; None when it names no recording or call."""
    sid, call_sid = form.get("RecordingSid", ""), form.get("CallSid", "")
    if not sid or not call_sid:
        return None
    return RecordingUpdate(
        recording_sid=sid[:64],
        call_sid=call_sid[:64],
        status=(form.get("RecordingStatus") or "completed")[:32],
        media_url=(form.get("RecordingUrl") or None),
        duration_seconds=_int(form.get("RecordingDuration")),
        channels=_int(form.get("RecordingChannels")),
        source=(form.get("RecordingSource") or None),
        error_code=(form.get("ErrorCode") or None),
        started_at=_when(form.get("RecordingStartTime")),
    )


def media_url(settings: Settings, recording: CallRecording, fmt: str = "wav") -> str:
    """Where the recording's audio is fetched (with the account's credentials).

    Twilio's ``RecordingUrl`` when it is on ``twilio_api_base_url``'s origin; otherwise (or when no
    callback came) the recording's URI built from its SID: credentials never go to another host.
    """
    if fmt not in MEDIA_TYPES:
        raise ConfigError(f"recordings are served as {' or '.join(MEDIA_TYPES)}, not {fmt!r}")
    base = settings.twilio_api_base_url.rstrip("/")
    given = recording.media_url or ""
    origin = urlsplit(base)
    candidate = urlsplit(given)
    if given and (candidate.scheme, candidate.netloc) == (origin.scheme, origin.netloc):
        url = given.removesuffix(".json").removesuffix(".mp3").removesuffix(".wav")
    else:
        account = settings.twilio_account_sid or ""
        url = f"{base}/2010-04-01/Accounts/{account}/Recordings/{recording.recording_sid}"
    return f"{url}.{fmt}"


async def delete_orphaned_recordings(control: CallControl, sessions: async_sessionmaker[AsyncSession]) -> int:
    """Delete at Twilio (then here) every recording whose call is gone; returns how many went.

    A recording Twilio cannot delete now stays in the table and is tried again next time.
    """
    gone = 0
    for sid in await orphaned_recordings(sessions):
        try:
            await control.delete_recording(sid)
        except PhoneAgentError as exc:
            logger.error("recording {} could not be deleted at Twilio yet ({}): will retry", sid, exc)
            continue
        await drop_recording(sessions, sid)
        gone += 1
    if gone:
        logger.info("recordings: {} deleted with their calls", gone)
    return gone
