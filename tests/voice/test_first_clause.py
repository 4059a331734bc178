"""A reply's first clause goes to the TTS as soon as it is complete; the rest goes by sentence."""

from __future__ import annotations

from pipecat.services.elevenlabs.tts import ElevenLabsTTSService

from phone_agent.voice.first_clause import FirstClauseAggregator, speak_from_first_clause
from tests.fakes.openai_chat import tokenize


async def _feed(aggregator: FirstClauseAggregator, text: str) -> list[tuple[int, str]]:
    """(index of the token that released it, text) for each aggregation, then the flush."""
    released = []
    for index, token in enumerate(tokenize(text)):
        async for aggregation in aggregator.aggregate(token):
            released.append((index, aggregation.text.strip()))
    rest = await aggregator.flush()
    if rest is not None and rest.text:
        released.append((-1, rest.text))
    return released


async def test_first_clause_is_released_at_its_comma_then_sentences() -> None:
    aggregator = FirstClauseAggregator()
    released = await _feed(aggregator, "Sure, I can help you with that. What day would suit you best?")
    assert released[0] == (1, "Sure,")  # token 1 is the comma: no wait for the sentence
    rest = [text for _, text in released[1:]]
    assert rest == ["I can help you with that.", "What day would suit you best?"]


async def test_every_reply_starts_with_a_first_clause_again() -> None:
    aggregator = FirstClauseAggregator()
    await _feed(aggregator, "Yes, of course. Anything else?")
    released = await _feed(aggregator, "Great, see you then.")
    assert released[0] == (1, "Great,")


async def test_numbers_and_questions() -> None:
    aggregator = FirstClauseAggregator()
    released = await _feed(aggregator, "It costs 1,000 dollars. Is that fine?")
    assert released[0][1] == "It costs 1,000 dollars."  # a thousands separator is no clause
    released = await _feed(FirstClauseAggregator(), "Really? Tell me more.")
    assert released[0] == (1, "Really?")  # an unambiguous end needs no look-ahead token


async def test_an_interruption_resets_to_first_clause() -> None:
    aggregator = FirstClauseAggregator()
    async for _ in aggregator.aggregate("Okay, so"):
        pass
    await aggregator.handle_interruption()
    released = await _feed(aggregator, "Right, go on.")
    assert released[0] == (1, "Right,")


def test_installed_on_pipecats_elevenlabs_service() -> None:
    tts = ElevenLabsTTSService(api_key="k", settings=ElevenLabsTTSService.Settings(voice="v"))
    speak_from_first_clause(tts)
    assert isinstance(tts._text_aggregator, FirstClauseAggregator)


async def test_a_reply_without_punctuation_starts_after_a_few_words() -> None:
    text = "I can certainly help you book an appointment for next week and I will need a few details"
    released = await _feed(FirstClauseAggregator(), text)
    assert released[0] == (4, "I can certainly help")  # token 4 (" you") ends the fourth word
    assert " ".join(t for _, t in released) == text  # nothing lost, nothing doubled


async def test_a_one_word_sentence_goes_at_its_period() -> None:
    released = await _feed(FirstClauseAggregator(), "Sure. What time?")
    assert released[0] == (1, "Sure.")
    released = await _feed(FirstClauseAggregator(), "Dr. Smith will call you back.")
    assert released[0][1] != "Dr."  # an abbreviation is not a sentence


async def test_a_slow_stream_goes_after_150_ms_of_tokens(monkeypatch: object) -> None:
    from phone_agent.voice import first_clause

    now = [100.0]
    monkeypatch.setattr(first_clause.time, "monotonic", lambda: now[0])  # type: ignore[attr-defined]
    aggregator = FirstClauseAggregator()
    released = []
    for token in ("Let", " me", " check", " that"):
        async for aggregation in aggregator.aggregate(token):
            released.append(aggregation.text.strip())
        now[0] += 0.1  # 100 ms a token: a slow model
    assert released == ["Let me"]  # two words and 200 ms: the TTS starts (a third word would wait)


async def test_pieces_end_with_a_space_so_the_tts_never_joins_two_words() -> None:
    aggregator = FirstClauseAggregator()
    pieces = []
    for token in tokenize("I can certainly help you with that booking today"):
        async for aggregation in aggregator.aggregate(token):
            pieces.append(aggregation.text)
    rest = await aggregator.flush()
    joined = "".join(pieces) + (rest.text if rest else "")
    assert pieces and all(p.endswith(" ") for p in pieces)
    assert joined.split() == "I can certainly help you with that booking today".split()
