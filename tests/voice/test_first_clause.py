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
            released.append((index, aggregation.text))
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
