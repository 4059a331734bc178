"""What the owner reads instead of what the code stores: times in the business's time zone, tool calls
as sentences ("Booked Tue 10:00 for Maria Lopez"), why a call ended in words.

Pure functions (no I/O); the admin templates use them as Jinja filters (``templating.py``) with the
time zone each page passes as ``tz`` (the ``timezone`` setting of the request's Services).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

STAGES = {
    "stt": "Speech recognition",
    "llm": "The language model",
    "tts": "The voice",
    "realtime": "The voice",
}
ACTIONS = {
    "voicemail": "the caller could leave a voicemail",
    "transfer": "the caller was put through to a person",
    "hang_up": "the caller heard an apology",
}
END_REASONS = {
    "hangup": "Call ended",
    "completed": "Call ended",
    "caller-hangup": "Caller hung up",
    "agent_hangup": "Agent said goodbye and hung up",
    "idle": "Caller went silent",
    "transferred": "Put through to a person",
    "admin": "Hung up from this page",
    "agent_error": "Cut short by an error in the agent",
    "agent_crashed": "Cut short: the agent stopped",
    "realtime_error": "Cut short: the voice model failed",
    "busy": "Line busy",
    "no-answer": "No answer",
    "failed": "Call could not be connected",
    "canceled": "Canceled before it was answered",
    "voicemail_left": "An answering machine took it: the agent left the voicemail message",
    "fax": "A fax machine answered: hung up",
}


def as_datetime(value: datetime | str | None) -> datetime | None:
    """A stored time (datetime or ISO text; UTC when it has no zone) as an aware datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def local_time(value: datetime | str | None, tz: str, fmt: str = "%a %-d %b %Y, %H:%M") -> str:
    """A stored time in the business's time zone ('' when there is none)."""
    when = as_datetime(value)
    return when.astimezone(ZoneInfo(tz)).strftime(fmt) if when else ""


def zone_label(tz: str, now: datetime | None = None) -> str:
    """How the page names the business's time zone, e.g. 'New York time (EST)'."""
    city = tz.rsplit("/", 1)[-1].replace("_", " ")
    abbreviation = (now or datetime.now(UTC)).astimezone(ZoneInfo(tz)).strftime("%Z")
    return (
        f"{city} time ({abbreviation})"
        if abbreviation and not abbreviation.startswith(("+", "-"))
        else f"{city} time"
    )


def end_reason_words(reason: str | None) -> str:
    """Why a call ended, said plainly."""
    if not reason:
        return ""
    if reason in END_REASONS:
        return END_REASONS[reason]
    cause, _, action = (part.strip() for part in reason.partition("→"))
    outcome = ACTIONS.get(action, action.replace("_", " "))
    if cause.endswith("_failed"):
        stage = STAGES.get(cause.removesuffix("_failed"), cause.removesuffix("_failed"))
        return f"{stage} stopped working; {outcome}" if action else f"{stage} stopped working"
    if cause == "overflow":
        return f"All lines were busy; {outcome}"
    if cause == "not_configured":
        return f"The agent is not set up yet; {outcome}"
    return reason.replace("_", " ").replace("-", " ").capitalize()


def _spoken_slot(value: Any, tz: str) -> tuple[str, str]:
    """('Tue 10:00', 'Tuesday 8 December 2026') for a booking's ISO start; the raw text otherwise."""
    try:
        start = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value), ""
    zone = ZoneInfo(tz)
    start = start.replace(tzinfo=zone) if start.tzinfo is None else start.astimezone(zone)
    return start.strftime("%a %H:%M"), start.strftime("%A %-d %B %Y")


def _quoted(text: Any, limit: int = 140) -> str:
    text = " ".join(str(text or "").split())
    return f"“{text[: limit - 1]}…”" if len(text) > limit else f"“{text}”"


def tool_sentence(record: dict[str, Any], tz: str, caller_name: str | None = None) -> dict[str, str]:
    """A tool call as the owner reads it: ``{"text": sentence, "detail": more, "ok": "yes"|"no"}``."""
    name = str(record.get("name") or "a tool")
    given_args, given_result = record.get("arguments"), record.get("result")
    args: dict[str, Any] = given_args if isinstance(given_args, dict) else {}
    result: dict[str, Any] = given_result if isinstance(given_result, dict) else {}
    ok = record.get("ok") is not False
    error = str(record.get("error") or "").strip()
    who = args.get("name") or caller_name or "the caller"
    detail = ""
    if name == "book_appointment":
        slot, day = _spoken_slot(args.get("start"), tz)
        text = f"Booked {slot} for {who}" if ok else f"Could not book {slot} for {who}"
        extras = [day, f"{args.get('duration_minutes', 30)} min", str(args.get("reason") or "")]
        offered = result.get("alternatives")
        if not ok and isinstance(offered, list) and offered:
            extras.append("offered " + ", ".join(str(o) for o in offered))
        detail = " · ".join(e for e in extras if e)
    elif name == "take_message":
        sender = args.get("name") or caller_name or "the caller"
        verb = "Took a message" if ok else "Could not take a message"
        text = f"{verb} from {sender}: {_quoted(args.get('message'))}"
        if args.get("callback_number"):
            detail = f"call back on {args['callback_number']}"
    elif name == "send_sms":
        to = args.get("to") or result.get("sent_to") or "the caller"
        text = f"{'Texted' if ok else 'Could not text'} {to}: {_quoted(args.get('body'))}"
    elif name == "transfer_call":
        target = f"the {args['destination']} line" if args.get("destination") else "a person"
        text = (
            f"Put the caller through to {target}" if ok else f"Could not put the caller through to {target}"
        )
        detail = f"reason: {args.get('reason')}" if args.get("reason") else ""
    elif name == "end_call":
        text = "Said goodbye and ended the call"
        detail = str(args.get("reason") or "")
    elif name == "lookup_caller":
        text = f"Looked up what is known about {who}"
    elif name == "search_knowledge":
        text = f"Searched the documents for {_quoted(args.get('query'))}"
    else:
        shown = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in args.items())
        text = f"Used {name.replace('_', ' ')}" + (f" ({shown})" if shown else "")
    if not ok and error:
        detail = f"{detail} · {error}" if detail else error
    return {"text": text, "detail": detail, "ok": "yes" if ok else "no"}
