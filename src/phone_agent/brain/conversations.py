"""Server-side chat conversations (``/v1/chat``), stored like phone calls.

A conversation is a ``calls`` row with ``direction="chat"`` and ``call_sid="chat-<hex>"``; each
exchange adds a caller turn and an agent turn (with its tool calls) to ``call_turns``. Loading a
conversation replays the stored tool calls and results, so the model remembers what it did.

One turn at a time per conversation: ``brain.turn_locks.ConversationLocks`` queues the messages of
one conversation in this process, so each turn sees the one before it; across processes the unique
``(call_id, seq)`` index and ``append_turns`` keep the numbering whole.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from phone_agent.brain.agent import TurnResult
from phone_agent.errors import NotFoundError, PhoneAgentError
from phone_agent.storage.callers import caller_id
from phone_agent.storage.db import transaction
from phone_agent.storage.tables import Call, CallTurn, utcnow
from phone_agent.storage.turns import append_turns


class ConversationEnded(PhoneAgentError):
    """The conversation was ended by the agent; a new one must be started."""

    status_code = 409


async def open_conversation(
    sessions: async_sessionmaker[AsyncSession], *, caller: str, conversation_id: str | None
) -> tuple[Call, list[dict[str, Any]]]:
    """The conversation's call row and its history as messages.

    A new conversation when ``conversation_id`` is None; NotFoundError when it is unknown or
    belongs to another caller; ConversationEnded when it has ended.
    """
    async with transaction(sessions) as session:
        if conversation_id:
            call = await session.scalar(
                select(Call).where(Call.call_sid == conversation_id, Call.direction == "chat")
            )
            if call is None or call.from_number != caller:
                raise NotFoundError(f"No conversation {conversation_id!r} for this caller.")
            if call.status == "completed":
                raise ConversationEnded(
                    "This conversation has ended; send no conversation_id to start a new one."
                )
            turns = (
                await session.scalars(
                    select(CallTurn).where(CallTurn.call_id == call.id).order_by(CallTurn.seq)
                )
            ).all()
            return call, history_from_turns(turns)
        call = Call(
            call_sid=f"chat-{uuid.uuid4().hex}",
            caller_id=await caller_id(session, caller),
            from_number=caller,
            direction="chat",
            channel="chat",
            status="in-progress",
        )
        session.add(call)
        await session.flush()
        return call, []


def history_from_turns(turns: Sequence[CallTurn]) -> list[dict[str, Any]]:
    """Stored turns back to messages: tool calls are replayed so the model remembers their results."""
    history: list[dict[str, Any]] = []
    for turn in turns:
        if turn.role == "caller":
            history.append({"role": "user", "content": turn.text})
            continue
        records = [r for r in turn.tool_calls or [] if r.get("id")]
        if records:
            history.append(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": r["id"],
                            "type": "function",
                            "function": {"name": r["name"], "arguments": json.dumps(r["arguments"])},
                        }
                        for r in records
                    ],
                }
            )
            history.extend(
                {
                    "role": "tool",
                    "tool_call_id": r["id"],
                    "content": json.dumps(
                        {"ok": r["ok"], **r["result"]} if r["ok"] else {"ok": False, "error": r["error"]}
                    ),
                }
                for r in records
            )
        if turn.text:
            history.append({"role": "assistant", "content": turn.text})
    return history


async def store_exchange(
    sessions: async_sessionmaker[AsyncSession], *, call_id: int, message: str, result: TurnResult
) -> None:
    """Store the caller's message and the agent's reply (with tool calls); close an ended conversation."""

    async def close_if_ended(session: AsyncSession) -> None:
        if result.ended:
            call = await session.get(Call, call_id)
            if call is not None:
                call.status, call.ended_at, call.end_reason = "completed", utcnow(), result.end_reason

    turns: list[dict[str, Any]] = [
        {"role": "caller", "text": message},
        {
            "role": "agent",
            "text": result.text,
            "planned_text": result.text,
            "tool_calls": result.tool_records or None,
        },
    ]
    await append_turns(sessions, call_id, turns, also=close_if_ended)
