"""Call recordings in the database: the row made when Twilio starts one, what its status callback
says, the recording a call page plays, and the rows whose call is gone (their media must be deleted
at Twilio: ``telephony.recordings.delete_orphaned_recordings``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from phone_agent.storage.db import transaction
from phone_agent.storage.tables import Call, CallRecording

FINAL_RECORDING_STATUSES = ("completed", "absent", "failed", "deleted")


@dataclass(frozen=True)
class RecordingUpdate:
    """What one recording status callback said (Twilio's ``Recording*`` parameters)."""

    recording_sid: str
    call_sid: str
    status: str
    media_url: str | None = None
    duration_seconds: int | None = None
    channels: int | None = None
    source: str | None = None
    error_code: str | None = None
    started_at: datetime | None = None


async def add_recording(
    sessions: async_sessionmaker[AsyncSession],
    *,
    recording_sid: str,
    call_sid: str,
    status: str,
    started_at: datetime | None = None,
) -> None:
    """Note a recording Twilio just started (a callback that came first already made the row)."""
    async with transaction(sessions) as session:
        found = await _by_sid(session, recording_sid)
        if found is None:
            session.add(
                CallRecording(
                    recording_sid=recording_sid,
                    call_sid=call_sid,
                    status=status,
                    started_at=started_at,
                    source="StartCallRecordingAPI",
                )
            )


VOICEMAIL_SOURCE = "voicemail"  # ``source`` of a voicemail's recording (the <Record> verb's)


async def apply_status(sessions: async_sessionmaker[AsyncSession], update: RecordingUpdate) -> bool:
    """Store a status callback; False when the call is not in the database (deleted with its
    caller's data): the row is then an orphan whose media must be deleted at Twilio too."""
    async with transaction(sessions) as session:
        call = await session.scalar(select(Call.id).where(Call.call_sid == update.call_sid))
        row = await _by_sid(session, update.recording_sid)
        if row is None:
            row = CallRecording(recording_sid=update.recording_sid, call_sid=update.call_sid)
            session.add(row)
        if row.status in FINAL_RECORDING_STATUSES and update.status == "in-progress":
            return call is not None  # a late in-progress callback does not undo a final one
        row.status = update.status
        for name in ("media_url", "duration_seconds", "channels", "source", "error_code", "started_at"):
            value = getattr(update, name)
            if value is not None:
                setattr(row, name, value)
    return call is not None


async def recordings_of_call(session: AsyncSession, call_sid: str) -> list[CallRecording]:
    """A call's recordings, oldest first."""
    rows = await session.execute(
        select(CallRecording).where(CallRecording.call_sid == call_sid).order_by(CallRecording.id)
    )
    return list(rows.scalars())


async def recording_by_sid(session: AsyncSession, recording_sid: str) -> CallRecording | None:
    """One recording row, or None."""
    return await _by_sid(session, recording_sid)


async def orphaned_recordings(sessions: async_sessionmaker[AsyncSession]) -> list[str]:
    """SIDs of recordings whose call is no longer in the database (forgotten or past retention)."""
    async with sessions() as session:
        rows = await session.execute(
            select(CallRecording.recording_sid).where(CallRecording.call_sid.not_in(select(Call.call_sid)))
        )
        return list(rows.scalars())


async def drop_recording(sessions: async_sessionmaker[AsyncSession], recording_sid: str) -> None:
    """Forget a recording row (after Twilio deleted its media)."""
    async with transaction(sessions) as session:
        await session.execute(delete(CallRecording).where(CallRecording.recording_sid == recording_sid))


async def _by_sid(session: AsyncSession, recording_sid: str) -> CallRecording | None:
    return await session.scalar(select(CallRecording).where(CallRecording.recording_sid == recording_sid))
