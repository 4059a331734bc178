"""What the LLM fake answers in a benchmark: replies of varied shape, chosen by the caller turn.

A real LLM's replies vary: some start with a short clause ("Sure, …"), some run a dozen words
before any punctuation, some are one word, some are several sentences. A pipeline that starts
speaking only at a comma, or only at a full sentence, is fast on some shapes and slow on others,
so the fake cycles through all of them. The shape of a reply is a function of one thing only: how
many caller turns the request's conversation holds (user messages after the agent's greeting),
so turn k of every call gets the same shape for every bot, and nothing in it depends on what a
bot's code looks for in the text. A request with no assistant message yet is a greeting request
(stock Pipecat asks its LLM for the greeting) and gets `GREETING`.

`ReplyShapes` is the fake's `reply_for`: it answers and records (time.monotonic(), turn, shape) of
every request, which the bench reads back to attribute a reply to a caller turn.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from tests.fakes.openai_chat import Reply

GREETING = "Hello, thanks for calling our office. This is Ava. How can I help you today?"
SHAPES: dict[str, str] = {
    # a comma clause first: what a first-clause cut speaks early
    "comma-clause": "Sure, I can help you with that. What day and time would suit you best?",
    # 21 words before the first punctuation mark: only a cut after a few words speaks early
    "no-punctuation": (
        "I can certainly help you book an appointment for next week and I will need a few details "
        "from you first. What name should I put it under?"
    ),
    "one-word": "Sure.",
    # several sentences: the first is nine words with no comma
    "long": (
        "We are open from nine to five on weekdays. On Saturdays we open at ten and close at two. "
        "We are closed on Sundays and public holidays. Is there anything else I can help you with?"
    ),
}
SHAPE_NAMES = tuple(SHAPES)


def caller_turns(messages: list[dict[str, Any]]) -> int:
    """User messages after the first assistant message (0 when there is none: a greeting request)."""
    roles = [m.get("role") for m in messages]
    if "assistant" not in roles:
        return 0
    return roles[roles.index("assistant") :].count("user")


def shape_of_turn(turn: int) -> str:
    """The shape of the reply to caller turn `turn` (1-based)."""
    return SHAPE_NAMES[(turn - 1) % len(SHAPE_NAMES)]


class ReplyShapes:
    """`FakeOpenAI.reply_for`: the reply for a request, recorded as (at, turn, shape)."""

    def __init__(self) -> None:
        self.records: list[tuple[float, int, str]] = []
        self._lock = threading.Lock()

    def __call__(self, messages: list[dict[str, Any]]) -> Reply:
        turn = caller_turns(messages)
        shape = shape_of_turn(turn) if turn else "greeting"
        with self._lock:
            self.records.append((time.monotonic(), turn, shape))
        return Reply(text=SHAPES[shape] if turn else GREETING)

    def snapshot(self) -> list[tuple[float, int, str]]:
        with self._lock:
            return list(self.records)
