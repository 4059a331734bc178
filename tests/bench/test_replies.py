"""The LLM fake's reply shapes: chosen by the number of caller turns in the conversation only."""

from __future__ import annotations

import re

from bench.replies import GREETING, SHAPES, ReplyShapes, caller_turns, shape_of_turn


def conversation(turns: int, *, stock_greeting: bool) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": "You are a receptionist."}]
    if stock_greeting:  # stock Pipecat asks its LLM for the greeting with a user message
        messages.append({"role": "user", "content": "Please introduce yourself to the user."})
    messages.append({"role": "assistant", "content": GREETING})
    for _ in range(turns):
        messages += [{"role": "user", "content": "Hello."}, {"role": "assistant", "content": "Sure."}]
    return messages[:-1] if turns else messages


def test_caller_turns_count_user_messages_after_the_greeting_for_both_bots() -> None:
    for stock in (True, False):
        assert [caller_turns(conversation(k, stock_greeting=stock)) for k in (1, 2, 5)] == [1, 2, 5]
    assert caller_turns([{"role": "system", "content": "x"}, {"role": "user", "content": "Hi"}]) == 0


def test_shapes_cycle_by_turn_and_have_the_shapes_they_claim() -> None:
    assert [shape_of_turn(k) for k in range(1, 6)] == [
        "comma-clause", "no-punctuation", "one-word", "long", "comma-clause"
    ]  # fmt: skip
    words = SHAPES["no-punctuation"].split()
    assert len(words) >= 12 and not any(re.search(r"[^\w\s']", w) for w in words[:12])
    assert SHAPES["one-word"] == "Sure."
    assert len(re.findall(r"[.?!]", SHAPES["long"])) >= 3
    assert re.match(r"^\w+,", SHAPES["comma-clause"])


def test_reply_shapes_answers_and_records_each_request() -> None:
    shapes = ReplyShapes()
    greeting = shapes(
        [{"role": "system", "content": "x"}, {"role": "user", "content": "Introduce yourself."}]
    )
    second = shapes(conversation(2, stock_greeting=False))
    assert greeting.text == GREETING and second.text == SHAPES["no-punctuation"]
    assert [(turn, shape) for _, turn, shape in shapes.snapshot()] == [(0, "greeting"), (2, "no-punctuation")]
