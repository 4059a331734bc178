"""The memory hooks of a call: fetch what we know at the start, learn from it at the end.

- ``fetch_caller_context(store, phone)``: profile + top memories, once, at stream start. Bounded
  by a timeout and never raises: a slow or broken store gives an empty context, not a silent call.
- ``extract_and_store_after_call(settings=..., sessions=..., store=..., call_sid=...)``: read the
  call's transcript (``call_turns``), ask the LLM for facts and the call's review (summary, intent,
  outcome: ``memory.summary``) in one request, store the review on the call and merge the facts
  into the caller's memory.
  The app runs it as an owned background task (``Services.learn_after_call``) so hanging up never
  waits for the LLM. When the memory service cannot be read (or the LLM fails) the whole job is
  queued in the HTTP store's outbox and run again when the service is back
  (``start_outbox_replay`` gives the store the function that runs it).
- ``delete_caller(store=..., local=..., phone=...)``: privacy delete everywhere (memory store + this
  database's calls and transcripts, which stay local when the memory service is remote).
"""

from __future__ import annotations

import asyncio

from loguru import logger
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from phone_agent.config import Settings
from phone_agent.errors import PhoneAgentError, ProviderError, StoreError
from phone_agent.http_pool import HttpPool
from phone_agent.memory.base import CallerContext, MemoryItem, MemoryStore
from phone_agent.memory.client import HTTPMemoryStore
from phone_agent.memory.extraction import ExtractedFacts, extract_facts, transcript_text
from phone_agent.memory.summary import CallEvidence, CallReview, review_by_rules, review_from_model
from phone_agent.storage.db import transaction
from phone_agent.storage.phones import normalise_phone
from phone_agent.storage.reviews import evidence_counts, store_review
from phone_agent.storage.tables import Call, Caller, CallTurn


async def fetch_caller_context(
    store: MemoryStore, phone: str, *, limit: int = 8, within: float = 1.0
) -> CallerContext:
    """What we know about ``phone``; an empty context when unknown, slow (> within s) or failing."""
    try:
        return await asyncio.wait_for(store.caller_context(phone, limit=limit), within)
    except (TimeoutError, PhoneAgentError, OSError) as exc:
        logger.warning(
            "memory: caller context unavailable ({}); greeting as a new caller", type(exc).__name__
        )
        return CallerContext(phone=normalise_phone(phone))


async def extract_and_store_after_call(
    *,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    store: MemoryStore,
    call_sid: str,
    queue_on_failure: bool = True,
    http: HttpPool | None = None,
) -> ExtractedFacts | None:
    """Review a finished call and learn from it; None when nothing was learned.

    Every call gets a review (summary, intent, outcome) on its row: from the LLM's structured
    output, or from the rules when the caller said nothing (no LLM request then) or the LLM failed.
    Facts are learned when the call has a caller number. With the memory service over HTTP, a failed
    read of the caller's context or a failed extraction queues the job in the outbox
    (``queue_on_failure``) instead of losing it; the outbox runs it again (with
    ``queue_on_failure=False``, so its errors make it wait) when the service is back.
    """
    async with transaction(sessions) as session:
        call = (await session.execute(select(Call).where(Call.call_sid == call_sid))).scalar()
        if call is None:
            logger.warning("memory: no call {} to learn from", call_sid)
            return None
        caller = await session.get(Caller, call.caller_id) if call.caller_id else None
        phone = (
            caller.phone if caller else (call.to_number if call.direction == "outbound" else call.from_number)
        )
        turns = (
            await session.execute(
                select(CallTurn.role, CallTurn.text).where(CallTurn.call_id == call.id).order_by(CallTurn.seq)
            )
        ).all()
        started_at = call.started_at
        evidence = CallEvidence(**await evidence_counts(session, call))
    first_words = next((text.strip() for role, text in turns if role == "caller" and text.strip()), "")
    if not first_words:  # a greeting alone (caller hung up, silent line) teaches nothing: no LLM call
        await _store_review(sessions, call_sid, review_by_rules(evidence, first_words))
        await _keep_caller(sessions, store, call_sid, phone, started_at, chat=evidence.chat)
        return None
    transcript = transcript_text([(role, text) for role, text in turns])
    try:
        known = await store.caller_context(phone, limit=50) if phone else CallerContext(phone="")
        facts = await extract_facts(transcript, known, settings, actions=evidence.described(), http=http)
    except (StoreError, ProviderError) as exc:
        await _store_review(sessions, call_sid, review_by_rules(evidence, first_words))
        if not (queue_on_failure and isinstance(store, HTTPMemoryStore) and phone):
            await _keep_caller(sessions, store, call_sid, phone, started_at, chat=evidence.chat)
            raise
        await store.queue_learning(call_sid, phone)
        logger.warning("memory: learning from call {} queued until it can run ({})", call_sid, exc)
        return None
    await _store_review(sessions, call_sid, review_from_model(facts.review, evidence, first_words))
    if not phone:
        return facts
    items = [MemoryItem(content=f.content, key=f.key, call_sid=call_sid) for f in facts.facts]
    await store.store_memories(phone, items, name=facts.name, profile=facts.profile)
    await _link_call(sessions, call_sid, normalise_phone(phone), started_at)
    logger.info("memory: learned {} facts from call {}", len(items), call_sid)
    return facts


async def _keep_caller(
    sessions: async_sessionmaker[AsyncSession],
    store: MemoryStore,
    call_sid: str,
    phone: str | None,
    started_at: object,
    *,
    chat: bool,
) -> None:
    """A phone caller is listed in Callers after the first call, even when nothing was learned."""
    if not phone or chat:
        return
    try:
        await store.store_memories(phone, [])
    except (StoreError, OSError) as exc:
        logger.warning("memory: caller of call {} not kept ({})", call_sid, type(exc).__name__)
        return
    await _link_call(sessions, call_sid, normalise_phone(phone), started_at)


async def _store_review(
    sessions: async_sessionmaker[AsyncSession], call_sid: str, review: CallReview
) -> None:
    await store_review(
        sessions,
        call_sid=call_sid,
        summary=review.summary,
        intent=review.intent,
        outcome=review.outcome,
        source=review.source,
    )
    logger.info("call {} reviewed ({}, by {})", call_sid, review.outcome, review.source)


async def _link_call(
    sessions: async_sessionmaker[AsyncSession], call_sid: str, phone: str, started_at: object
) -> None:
    """Point the call at its caller and date the caller's last call (when the caller is local)."""
    async with transaction(sessions) as session:
        caller = (await session.execute(select(Caller).where(Caller.phone == phone))).scalar()
        if caller is None:
            return
        await session.execute(
            update(Call)
            .where(Call.call_sid == call_sid, Call.caller_id.is_(None))
            .values(caller_id=caller.id)
        )
        caller.last_call_at = started_at  # type: ignore[assignment]


def start_outbox_replay(
    *, settings: Settings, sessions: async_sessionmaker[AsyncSession], store: MemoryStore
) -> None:
    """With ``memory_backend=http``: replay the outbox now and while it is not empty, learning too."""
    if isinstance(store, HTTPMemoryStore):

        async def learn(call_sid: str) -> object:
            return await extract_and_store_after_call(
                settings=settings, sessions=sessions, store=store, call_sid=call_sid, queue_on_failure=False
            )

        store.start(learner=learn)


async def learn_quietly(
    *,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    store: MemoryStore,
    call_sid: str,
    http: HttpPool | None = None,
) -> ExtractedFacts | None:
    """``extract_and_store_after_call`` for a background task: errors are logged, never raised."""
    try:
        return await extract_and_store_after_call(
            settings=settings, sessions=sessions, store=store, call_sid=call_sid, http=http
        )
    except Exception as exc:  # a failed extraction must not disturb the next call
        logger.warning("memory: learning from call {} failed: {}", call_sid, exc)
        return None


async def delete_caller(*, store: MemoryStore, local: MemoryStore | None, phone: str) -> bool:
    """Delete everything about a caller: profile, memories, calls and transcripts.

    ``local`` is the store on this process's own database when ``store`` is the remote memory
    service (calls and transcripts live here, not there); None when they are the same store.
    """
    deleted = await store.delete_caller(phone)
    if local is not None and local is not store:
        deleted = await local.delete_caller(phone) or deleted
    return deleted
