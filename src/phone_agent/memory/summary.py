"""A finished call's review: a two-sentence summary, the caller's intent and the call's outcome.

The LLM writes it in the same request as the caller's facts (``memory.extraction``); this module
holds what is not the LLM's: the outcomes, a tolerant reading of what the model returned, what the
database already proves about the call (``CallEvidence``: a message taken, a booking, a transfer,
a voicemail) and a plain summary when the LLM cannot be asked (the caller said nothing, the
provider failed). The database wins over the model: a call is "appointment booked" because a
booking row exists, not because the model says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

OUTCOMES: dict[str, str] = {  # value stored in calls.outcome -> what the owner reads
    "answered": "Answered",
    "appointment_booked": "Appointment booked",
    "message_taken": "Message taken",
    "transferred": "Transferred",
    "voicemail": "Voicemail",
    "abandoned": "Abandoned",
    "spam": "Spam",
}
# what only the conversation can tell (the model decides among these); the others need a row
CONVERSATION_OUTCOMES = ("answered", "abandoned", "spam")
SYNONYMS = {
    "booked": "appointment_booked",
    "booking": "appointment_booked",
    "appointment": "appointment_booked",
    "callback_booked": "appointment_booked",
    "message": "message_taken",
    "took_message": "message_taken",
    "transfer": "transferred",
    "handed_off": "transferred",
    "voice_mail": "voicemail",
    "hung_up": "abandoned",
    "hangup": "abandoned",
    "missed": "abandoned",
    "no_answer": "abandoned",
    "robocall": "spam",
    "junk": "spam",
    "resolved": "answered",
    "information": "answered",
    "completed": "answered",
}
SUMMARY_MAX_CHARS = 600
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def outcome_label(outcome: str | None) -> str:
    """The owner's words for a stored outcome ("" when none yet)."""
    return OUTCOMES.get(outcome or "", (outcome or "").replace("_", " ").capitalize())


def normalise_outcome(value: Any) -> str | None:
    """One of ``OUTCOMES`` from what a model wrote ("Message taken", "BOOKED", "hung-up"), else None."""
    if not isinstance(value, str):
        return None
    key = re.sub(r"[^a-z]+", "_", value.strip().lower()).strip("_")
    if key in OUTCOMES:
        return key
    return SYNONYMS.get(key)


def two_sentences(value: Any) -> str | None:
    """At most two sentences of ``value`` (whitespace collapsed), None when empty or not text."""
    if not isinstance(value, str):
        return None
    text = " ".join(value.split())
    if not text or text.lower() in ("null", "none", "n/a"):
        return None
    sentences = SENTENCE_END.split(text)
    text = " ".join(sentences[:2])
    return text if len(text) <= SUMMARY_MAX_CHARS else text[: SUMMARY_MAX_CHARS - 1].rstrip() + "…"


@dataclass(frozen=True)
class CallEvidence:
    """What the database shows happened in a call."""

    messages: int = 0
    voicemails: int = 0
    bookings: int = 0
    transferred: bool = False
    chat: bool = False

    def outcome(self) -> str | None:
        """The outcome the rows prove, strongest first; None when they prove nothing."""
        if self.voicemails:
            return "voicemail"
        if self.transferred:
            return "transferred"
        if self.bookings:
            return "appointment_booked"
        if self.messages:
            return "message_taken"
        return None

    def described(self) -> str:
        """The actions, for the model's prompt ("nothing" when none)."""
        done = []
        if self.bookings:
            done.append(f"booked {self.bookings} appointment(s)")
        if self.messages:
            done.append(f"took {self.messages} message(s) for the owner")
        if self.transferred:
            done.append("transferred the caller to a person")
        if self.voicemails:
            done.append("recorded a voicemail")
        return ", ".join(done) or "nothing"


@dataclass(frozen=True)
class CallReview:
    """What is stored on the call after it ended."""

    summary: str
    intent: str | None
    outcome: str
    source: str  # llm | rules


def review_from_model(data: dict[str, Any], evidence: CallEvidence, first_words: str) -> CallReview:
    """The review from the model's JSON object; missing or odd fields are filled by the rules."""
    proven = evidence.outcome()
    said = normalise_outcome(data.get("outcome"))
    outcome = proven or (said if said in CONVERSATION_OUTCOMES else "answered")
    summary = two_sentences(data.get("summary"))
    intent = two_sentences(data.get("intent"))
    if summary is None:
        return CallReview(rules_summary(evidence, first_words), intent, outcome, "rules")
    return CallReview(summary, intent, outcome, "llm")


def review_by_rules(evidence: CallEvidence, first_words: str) -> CallReview:
    """The review without a model: from the rows and the caller's first words."""
    outcome = evidence.outcome() or ("answered" if first_words else "abandoned")
    return CallReview(rules_summary(evidence, first_words), None, outcome, "rules")


def rules_summary(evidence: CallEvidence, first_words: str) -> str:
    """Two plain sentences: what the caller said first, and what the agent did."""
    what = "conversation" if evidence.chat else "call"
    if not first_words:
        if evidence.voicemails:
            return "The caller left a voicemail."
        return f"The caller hung up before saying anything; the {what} lasted only the greeting."
    quoted = first_words if len(first_words) <= 140 else first_words[:139].rstrip() + "…"
    done = evidence.described()
    second = "The agent answered; no action was recorded." if done == "nothing" else f"The agent {done}."
    return f"The caller said: “{quoted}” {second}"
