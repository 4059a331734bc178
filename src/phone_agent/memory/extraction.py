"""After a call: ask the LLM for the facts in the transcript and the call's review, in one request.

``extract_facts(transcript, known, settings)`` is the LLM step (chat completions with structured
output: ``response_format`` of type ``json_schema``, strict, through the ``openai`` SDK at
``llm_base_url``; an endpoint that refuses JSON schemas is asked again for a plain JSON object);
``memory.calls.extract_and_store_after_call`` reads the transcript from ``call_turns`` and stores
the result: facts in the caller's memory, the summary, intent and outcome on the call
(``memory.summary``). Facts carry a short ``key`` so a later call replaces an outdated fact
(``store_memories``: same key → newer wins) instead of adding a second one.
"""

from __future__ import annotations

import json
import re
from typing import Any

from openai import AsyncOpenAI, BadRequestError, OpenAIError
from pydantic import BaseModel, Field, ValidationError

from phone_agent.config import Settings
from phone_agent.errors import ProviderError
from phone_agent.http_pool import HttpPool, openai_client
from phone_agent.memory.base import CallerContext
from phone_agent.memory.summary import OUTCOMES

PROFILE_FIELDS = ("topic", "product_interest", "preferences", "open_requests")

EXTRACTION_PROMPT = (
    """You update the memory of a phone receptionist about one caller.
Read the call transcript and reply with one JSON object, nothing else:
{"name": "the caller's full name or null",
 "profile": {"topic": "what they called about", "product_interest": "policy/product they asked about",
             "preferences": "how they like to be contacted, times, language", "open_requests": "what is
             still to be done for them"},
 "facts": [{"key": "short_snake_case_topic", "content": "one short sentence about the caller"}],
 "summary": "two sentences for the business owner: who called, what they wanted, what was done",
 "intent": "the caller's reason for calling, in a few words",
 "outcome": "one of: """
    + ", ".join(OUTCOMES)
    + """"}
Only state what the caller said or what was agreed; use null or leave a field out when unknown.
Outcome: spam for sales robots and unwanted solicitation, abandoned when the caller left before saying
what they wanted, answered when their question was handled; the others only when the agent did it.
Reuse a key from the known facts when a fact updates it. Known about this caller:
"""
)
NULLABLE_TEXT: dict[str, Any] = {"type": ["string", "null"]}
# the same shape as a strict JSON schema (every property required, no others): structured output
REVIEW_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": NULLABLE_TEXT,
        "profile": {
            "type": "object",
            "properties": {name: NULLABLE_TEXT for name in PROFILE_FIELDS},
            "required": list(PROFILE_FIELDS),
            "additionalProperties": False,
        },
        "facts": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"key": NULLABLE_TEXT, "content": {"type": "string"}},
                "required": ["key", "content"],
                "additionalProperties": False,
            },
        },
        "summary": {"type": "string"},
        "intent": {"type": "string"},
        "outcome": {"type": "string", "enum": list(OUTCOMES)},
    },
    "required": ["name", "profile", "facts", "summary", "intent", "outcome"],
    "additionalProperties": False,
}
STRUCTURED_OUTPUT: Any = {
    "type": "json_schema",
    "json_schema": {"name": "call_review", "strict": True, "schema": REVIEW_SCHEMA},
}


class ExtractedFact(BaseModel):
    """One fact from a call."""

    key: str | None = None
    content: str


class ExtractedFacts(BaseModel):
    """What the LLM found in a call."""

    name: str | None = None
    profile: dict[str, Any] = Field(default_factory=dict)
    facts: list[ExtractedFact] = Field(default_factory=list)
    review: dict[str, Any] = Field(default_factory=dict)  # summary, intent, outcome as the model wrote them


def transcript_text(turns: list[tuple[str, str]]) -> str:
    """``Caller: ... / Agent: ...`` lines from ``(role, text)`` pairs."""
    labels = {"caller": "Caller", "agent": "Agent", "user": "Caller", "assistant": "Agent"}
    return "\n".join(f"{labels.get(role, role.title())}: {text}" for role, text in turns if text.strip())


def parse_facts(reply: str) -> ExtractedFacts:
    """The JSON object in an LLM reply (code fences and surrounding prose tolerated)."""
    match = re.search(r"\{.*\}", reply, re.DOTALL)
    if not match:
        raise ProviderError("llm", "fact extraction reply held no JSON object")
    try:
        data = json.loads(match.group(0))
        if not isinstance(data, dict):
            raise ValueError("not an object")
        review = {key: data.pop(key, None) for key in ("summary", "intent", "outcome")}
        data["profile"] = data.get("profile") if isinstance(data.get("profile"), dict) else {}
        facts = ExtractedFacts.model_validate(data)
        facts.review = review
    except (ValueError, ValidationError) as exc:
        raise ProviderError("llm", f"fact extraction reply was not the expected JSON ({exc})") from exc
    facts.profile = {
        k: v for k, v in facts.profile.items() if k in PROFILE_FIELDS and v not in (None, "", [], {})
    }
    facts.facts = [f for f in facts.facts if f.content.strip()]
    if facts.name is not None and (not facts.name.strip() or facts.name.strip().lower() == "null"):
        facts.name = None
    return facts


async def extract_facts(
    transcript: str,
    known: CallerContext,
    settings: Settings,
    *,
    actions: str = "nothing",
    request_timeout: float = 30.0,
    http: HttpPool | None = None,
) -> ExtractedFacts:
    """Ask the configured LLM for the caller's facts in ``transcript`` and the call's review.

    ``actions``: what the agent's tools did in the call (``CallEvidence.described``).
    ``http``: the process's connection pool (a client of its own costs an SSL context: ~25-45 ms of
    CPU on the event loop the other calls' audio runs on, at the end of every call).
    """
    key = settings.secret("openai_api_key") or "unset"
    options: dict[str, Any] = {"timeout": request_timeout, "max_retries": 2}
    client = (
        openai_client(api_key=key, base_url=settings.llm_base_url, http=http, **options)
        if http is not None
        else AsyncOpenAI(api_key=key, base_url=settings.llm_base_url, **options)
    )
    known_text = known.summary() or "nothing yet"
    keyed = [f"{m.key}: {m.content}" for m in known.memories if m.key]
    if keyed:
        known_text += "\nKnown fact keys:\n" + "\n".join(keyed)
    messages: Any = [
        {"role": "system", "content": EXTRACTION_PROMPT + known_text},
        {"role": "user", "content": f"What the agent's tools did: {actions}.\nTranscript:\n{transcript}"},
    ]
    try:
        try:
            response = await client.chat.completions.create(
                model=settings.llm_model, temperature=0, response_format=STRUCTURED_OUTPUT, messages=messages
            )
        except BadRequestError as exc:
            if "response_format" not in str(exc) and "json_schema" not in str(exc):
                raise
            # an OpenAI-compatible server without JSON schemas: a JSON object, read tolerantly
            response = await client.chat.completions.create(
                model=settings.llm_model,
                temperature=0,
                response_format={"type": "json_object"},
                messages=messages,
            )
    except OpenAIError as exc:
        raise ProviderError("llm", f"fact extraction failed ({type(exc).__name__})") from exc
    finally:
        await client.close()
    message = response.choices[0].message
    if getattr(message, "refusal", None):
        raise ProviderError("llm", "the model refused to review the call")
    return parse_facts(message.content or "")
