"""One media stream per call, claimed in the database every process shares.

``/phone/incoming`` registers the call and the expiry of the one stream token minted for it
(``register_incoming``): a retried webhook for the same CallSid gets the same expiry back, so the
same token; a webhook for a call that already streams or has ended gets nothing. The media stream
claims the call (``claim_stream``) before building a pipeline: the first stream wins, a second
concurrent stream or a replay after the call ended is refused. Every write is one conditional
statement (compare-and-set), so the rule holds across processes and on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from phone_agent.storage.callers import caller_id
from phone_agent.storage.calls import FINAL_STATUSES
from phone_agent.storage.db import transaction
from phone_agent.storage.phones import normalise_optional
from phone_agent.storage.tables import Call, utcnow

ATTEMPTS = 4  # compare-and-set rounds before giving up (each lost round means another writer won)


@dataclass(frozen=True)
class IncomingCall:
    """What ``/phone/incoming`` may answer for a CallSid."""

    token_expires: int | None  # None: the call streams already or has ended (no token)
    caller: str | None  # the normalised caller number the token carries
    repeated: bool = False  # the same CallSid was registered before (a retried webhook)


def _open(call: Call) -> bool:
    """Still waiting for its stream (not streaming, not ended)."""
    streaming = call.stream_started_at is not None or call.status == "in-progress"
    return not streaming and call.ended_at is None and call.status not in FINAL_STATUSES


async def register_incoming(
    sessions: async_sessionmaker[AsyncSession],
    *,
    call_sid: str,
    from_number: str | None,
    to_number: str | None,
    direction: str,
    now: int,
    ttl_seconds: int,
) -> IncomingCall:
    """Register a ringing call and the expiry of its one stream token (see the module docstring)."""
    from_number, to_number = normalise_optional(from_number), normalise_optional(to_number)
    for _ in range(ATTEMPTS):
        async with sessions() as session:
            call = await session.scalar(select(Call).where(Call.call_sid == call_sid))
            known_caller = await caller_id(session, from_number) if call is None else None
        if call is None:
            try:
                async with transaction(sessions) as session:
                    session.add(
                        Call(
                            call_sid=call_sid,
                            from_number=from_number,
                            to_number=to_number,
                            direction=direction,
                            status="ringing",
                            started_at=utcnow(),
                            caller_id=known_caller,
                            stream_token_expires=now + ttl_seconds,
                        )
                    )
                return IncomingCall(now + ttl_seconds, from_number)
            except IntegrityError:
                continue  # the same webhook, twice at once: the other one registered it
        if not _open(call):
            return IncomingCall(None, call.from_number, repeated=True)
        old = call.stream_token_expires
        if old is not None and old > now:
            return IncomingCall(old, call.from_number or from_number, repeated=True)
        # no token yet (a row made by someone else, e.g. a dial-out) or the last one expired unused
        unchanged = Call.stream_token_expires.is_(None) if old is None else Call.stream_token_expires == old
        async with transaction(sessions) as session:
            result = await session.execute(
                update(Call)
                .where(Call.call_sid == call_sid, Call.stream_started_at.is_(None), unchanged)
                .values(
                    stream_token_expires=now + ttl_seconds,
                    from_number=call.from_number or from_number,
                    to_number=call.to_number or to_number,
                )
            )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            return IncomingCall(now + ttl_seconds, call.from_number or from_number, repeated=old is not None)
    raise RuntimeError(f"call {call_sid}: too many concurrent webhooks")


async def claim_stream(
    sessions: async_sessionmaker[AsyncSession], *, call_sid: str, instance_id: str
) -> str | None:
    """Claim the call for this stream and this process; None on success, else why it is refused."""
    now = utcnow()
    for _ in range(ATTEMPTS):
        async with transaction(sessions) as session:
            result = await session.execute(
                update(Call)
                .where(
                    Call.call_sid == call_sid,
                    Call.stream_started_at.is_(None),
                    Call.ended_at.is_(None),
                    Call.status.not_in(FINAL_STATUSES),
                )
                .values(stream_started_at=now, instance_id=instance_id, status="in-progress")
            )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            return None
        async with sessions() as session:
            call = await session.scalar(select(Call).where(Call.call_sid == call_sid))
        if call is not None:
            return (
                "the call has ended"
                if call.ended_at or call.status in FINAL_STATUSES
                else ("the call already has a media stream")
            )
        try:  # no webhook registered it (e.g. a test dialling the stream directly): claim a new row
            async with transaction(sessions) as session:
                session.add(
                    Call(
                        call_sid=call_sid,
                        status="in-progress",
                        started_at=now,
                        stream_started_at=now,
                        instance_id=instance_id,
                    )
                )
            return None
        except IntegrityError:
            continue  # a webhook or another stream created it meanwhile: try the claim again
    return "the call already has a media stream"
