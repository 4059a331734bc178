"""Database tables (SQLAlchemy 2 ORM). Every schema change is an Alembic migration beside this file."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always read back timezone-aware (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of all tables."""

    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Caller(Base):
    """A person who called, known by phone number (personal data: deletable per caller)."""

    __tablename__ = "callers"
    id: Mapped[int] = mapped_column(primary_key=True)
    phone: Mapped[str] = mapped_column(String(32), unique=True, index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    profile: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    last_call_at: Mapped[datetime | None]

    calls: Mapped[list[Call]] = relationship(back_populates="caller", cascade="all, delete-orphan")


class Call(Base):
    """One phone call (inbound or outbound)."""

    __tablename__ = "calls"
    id: Mapped[int] = mapped_column(primary_key=True)
    call_sid: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    stream_sid: Mapped[str | None] = mapped_column(String(64))
    caller_id: Mapped[int | None] = mapped_column(ForeignKey("callers.id", ondelete="CASCADE"), index=True)
    from_number: Mapped[str | None] = mapped_column(String(32))
    to_number: Mapped[str | None] = mapped_column(String(32))
    direction: Mapped[str] = mapped_column(String(16), default="inbound")
    # how the caller reached the agent: phone (Twilio), chat (/v1/chat), web (the admin softphone)
    channel: Mapped[str] = mapped_column(String(16), default="phone", server_default="phone")
    status: Mapped[str] = mapped_column(String(32), default="ringing")
    started_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[str | None] = mapped_column(String(64))
    summary: Mapped[str | None] = mapped_column(Text)
    # after the call (``memory.summary``): what the caller wanted and how the call ended
    intent: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str | None] = mapped_column(String(32), index=True)
    summary_source: Mapped[str | None] = mapped_column(String(16))  # llm | rules
    # the media stream: the expiry of the one token /phone/incoming minted (epoch seconds; the same
    # token is re-minted from it for a retried webhook), when a stream claimed the call (a second
    # stream or a replay is refused), and the process (``instances.id``) holding the live call
    stream_token_expires: Mapped[int | None] = mapped_column(Integer)
    stream_started_at: Mapped[datetime | None]
    instance_id: Mapped[str | None] = mapped_column(String(64), index=True)
    # call routing (``brain/routing``): the name of the last rule that fired (None: none did), every
    # rule that fired as {rule_id, name, action, stage, detail}, and the tags rules gave the call
    routing_rule: Mapped[str | None] = mapped_column(String(200))
    routing_events: Mapped[list[Any] | None] = mapped_column(JSON)
    tags: Mapped[list[Any] | None] = mapped_column(JSON)

    caller: Mapped[Caller | None] = relationship(back_populates="calls")
    turns: Mapped[list[CallTurn]] = relationship(
        back_populates="call", cascade="all, delete-orphan", order_by="CallTurn.seq"
    )


class CallTurn(Base):
    """One turn of a call: what was said, by whom, and when each stage happened.

    ``marks`` holds timing marks in ms since the call started: caller_stopped, stt_final,
    llm_first_token, tts_first_audio, first_audio_sent. ``text`` for an agent turn is what the
    caller actually heard (cut at barge-in); ``planned_text`` what the LLM produced.
    """

    __tablename__ = "call_turns"
    __table_args__ = (Index("uq_call_turns_call_id_seq", "call_id", "seq", unique=True),)
    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))  # caller | agent | tool
    text: Mapped[str] = mapped_column(Text, default="")
    planned_text: Mapped[str | None] = mapped_column(Text)
    interrupted: Mapped[bool] = mapped_column(Boolean, default=False)
    tool_calls: Mapped[list[Any] | None] = mapped_column(JSON)
    marks: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    call: Mapped[Call] = relationship(back_populates="turns")


class Memory(Base):
    """A dated fact about a caller, from the call it came from."""

    __tablename__ = "memories"
    id: Mapped[int] = mapped_column(primary_key=True)
    caller_id: Mapped[int] = mapped_column(ForeignKey("callers.id", ondelete="CASCADE"), index=True)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(32), default="fact")
    key: Mapped[str | None] = mapped_column(String(100))  # facts with a key merge: newer wins
    content: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class KnowledgeDocument(Base):
    """A document of the business's knowledge base."""

    __tablename__ = "knowledge_documents"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    source_name: Mapped[str | None] = mapped_column(String(500))
    content_type: Mapped[str] = mapped_column(String(100), default="text/plain")
    content: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    chunks: Mapped[list[KnowledgeChunk]] = relationship(
        back_populates="document", cascade="all, delete-orphan", order_by="KnowledgeChunk.seq"
    )


class KnowledgeChunk(Base):
    """A retrievable piece of a knowledge document."""

    __tablename__ = "knowledge_chunks"
    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(
        ForeignKey("knowledge_documents.id", ondelete="CASCADE"), index=True
    )
    seq: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)

    document: Mapped[KnowledgeDocument] = relationship(back_populates="chunks")


class Appointment(Base):
    """A booked call-back or appointment."""

    __tablename__ = "appointments"
    __table_args__ = (Index("ix_appointments_starts_status", "starts_at", "status"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    caller_id: Mapped[int | None] = mapped_column(ForeignKey("callers.id", ondelete="CASCADE"), index=True)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"))
    phone: Mapped[str | None] = mapped_column(String(32))
    name: Mapped[str | None] = mapped_column(String(200))
    starts_at: Mapped[datetime]
    duration_minutes: Mapped[int] = mapped_column(Integer, default=30)
    reason: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="booked")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # the owner's inbox (``storage.inbox``): seen, handled, the owner's note, the owner told
    seen_at: Mapped[datetime | None]
    done_at: Mapped[datetime | None]
    owner_note: Mapped[str | None] = mapped_column(Text)
    notified_at: Mapped[datetime | None]


class Message(Base):
    """A message taken for the business, or an SMS sent."""

    __tablename__ = "messages"
    id: Mapped[int] = mapped_column(primary_key=True)
    caller_id: Mapped[int | None] = mapped_column(ForeignKey("callers.id", ondelete="CASCADE"), index=True)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(16), default="message")  # message | sms
    phone: Mapped[str | None] = mapped_column(String(32))
    name: Mapped[str | None] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    sms_sid: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="new")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # the owner's inbox (``storage.inbox``): seen, handled, the owner's note, the owner told
    seen_at: Mapped[datetime | None]
    done_at: Mapped[datetime | None]
    owner_note: Mapped[str | None] = mapped_column(Text)
    notified_at: Mapped[datetime | None]


class ConfigOverride(Base):
    """A setting changed on the admin page; strongest layer of the config."""

    __tablename__ = "config_overrides"
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    updated_by: Mapped[str] = mapped_column(String(100), default="admin")


class AuditEntry(Base):
    """Who changed what, when (secrets masked)."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(100))
    target: Mapped[str | None] = mapped_column(String(200))
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)


class AdminAccount(Base):
    """The one admin account of the admin page (argon2 hash; the row with id 1)."""

    __tablename__ = "admin_account"
    id: Mapped[int] = mapped_column(primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    password_from: Mapped[str] = mapped_column(String(16), default="setup")  # env | setup
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AdminSession(Base):
    """A logged-in admin browser: the cookie token's SHA-256, its CSRF token and expiry."""

    __tablename__ = "admin_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    client: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class MemoryRequest(Base):
    """A write the memory service applied, by the client's ``Idempotency-Key`` (a replay is answered
    from here instead of being applied again). ``response`` is None while the write is running."""

    __tablename__ = "memory_requests"
    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    response: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Instance(Base):
    """One running process of the agent: who it is and when it last said it was alive.

    A live call names the instance holding it (``calls.instance_id``); calls held by an instance
    whose heartbeat stopped are closed as ``agent_crashed`` by the survivors or the next start.
    """

    __tablename__ = "instances"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(32))
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    stopped_at: Mapped[datetime | None]


class LoginThrottle(Base):
    """Admin login attempts of one key (``client:<address>`` or ``account``), updated by compare-and-set.

    ``attempts`` counts attempts in the window, the one being checked included, so concurrent
    requests cannot all pass the limit; ``next_allowed_at`` is the account's backoff.
    """

    __tablename__ = "login_throttle"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[datetime] = mapped_column(default=utcnow)
    next_allowed_at: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(Integer, default=0)


# -- owner notifications and provider errors (issue 12) --------------------------------------------
class NotifyQuota(Base):
    """How many owner notifications of one key (an event kind, or ``provider_failure:<provider>``)
    were sent in the current window; claimed by compare-and-set so every worker shares the limit."""

    __tablename__ = "notify_quota"
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    window_started_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent: Mapped[int] = mapped_column(Integer, default=0)


class ProviderErrorRow(Base):
    """One provider failure (no secret, no caller data in ``detail``); counted per hour for the owner."""

    __tablename__ = "provider_errors"
    __table_args__ = (Index("ix_provider_errors_provider_at", "provider", "at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(Text)
    call_sid: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class ProviderStatus(Base):
    """The latest outcome of one provider as every worker last saw it (the admin page's health row)."""

    __tablename__ = "provider_status"
    provider: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_ok_at: Mapped[datetime | None]
    last_error_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_kind: Mapped[str | None] = mapped_column(String(64))


# --- call recordings (issue 15) ------------------------------------------------------------------
class CallRecording(Base):
    """A Twilio recording of a call: its SID, where Twilio keeps the media and what its status
    callback said. Personal data: deleted (here and at Twilio) with the caller's calls."""

    __tablename__ = "call_recordings"
    id: Mapped[int] = mapped_column(primary_key=True)
    recording_sid: Mapped[str] = mapped_column(String(64), unique=True)
    call_sid: Mapped[str] = mapped_column(String(64), index=True)  # no FK: the row outlives a deleted
    # call until Twilio confirmed the deletion of the media (``storage.recordings``)
    status: Mapped[str] = mapped_column(String(32), default="in-progress")
    media_url: Mapped[str | None] = mapped_column(String(500))
    duration_seconds: Mapped[int | None] = mapped_column(Integer)
    channels: Mapped[int | None] = mapped_column(Integer)
    source: Mapped[str | None] = mapped_column(String(64))
    error_code: Mapped[str | None] = mapped_column(String(16))
    started_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# --- call routing (issue 16) ----------------------------------------------------------------------
class RoutingRule(Base):
    """A call routing rule: when its ``conditions`` hold, ``action`` runs (``brain/routing``).

    Rules are tried in ``position`` order; the shapes of ``conditions`` and ``action`` are checked by
    ``brain.routing.rules`` before they are stored.
    """

    __tablename__ = "routing_rules"
    id: Mapped[int] = mapped_column(primary_key=True)
    position: Mapped[int] = mapped_column(Integer, index=True)
    name: Mapped[str] = mapped_column(String(200))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    conditions: Mapped[dict[str, Any]] = mapped_column(default=dict)
    action: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# -- outbound calls (issue 16) ----------------------------------------------------------------------
class OutboundCall(Base):
    """A call the agent placed (``POST /v1/calls``, ``phone-agent dial``, admin "Call back").

    ``ref`` names it in the Twilio callbacks' URLs (callbacks may arrive before the create request
    returned its CallSid). ``events`` lists every status callback ``{status, at, sequence}``;
    ``answered_by`` is the answering-machine verdict. Personal data: deleted with the callee.
    """

    __tablename__ = "outbound_calls"
    id: Mapped[int] = mapped_column(primary_key=True)
    ref: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    call_sid: Mapped[str | None] = mapped_column(String(64), unique=True, index=True)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    to_number: Mapped[str] = mapped_column(String(32), index=True)
    purpose: Mapped[str] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(String(32), default="api")  # api | admin
    status: Mapped[str] = mapped_column(String(32), default="queued")
    answered_by: Mapped[str | None] = mapped_column(String(32))
    events: Mapped[list[Any]] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class DoNotCall(Base):
    """A number the agent must never dial (personal data: deletable in admin and with the caller)."""

    __tablename__ = "do_not_call"
    phone: Mapped[str] = mapped_column(String(32), primary_key=True)
    note: Mapped[str | None] = mapped_column(String(300))
    added_by: Mapped[str] = mapped_column(String(100), default="admin")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


__all__ = [
    "AdminAccount",
    "AdminSession",
    "Appointment",
    "AuditEntry",
    "Base",
    "Call",
    "CallRecording",
    "CallTurn",
    "Caller",
    "ConfigOverride",
    "DoNotCall",
    "Instance",
    "KnowledgeChunk",
    "KnowledgeDocument",
    "LoginThrottle",
    "Memory",
    "MemoryRequest",
    "Message",
    "NotifyQuota",
    "OutboundCall",
    "ProviderErrorRow",
    "ProviderStatus",
    "RoutingRule",
    "utcnow",
]
