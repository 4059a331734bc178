"""What the caller heard: ``PlayoutTracker`` keeps a word as heard only once the marks Twilio echoed
cover the start of its audio, whatever times the TTS gave the word.

The frames are the ones Pipecat 1.14's ElevenLabs service pushes for the fake's speech (70 ms per
character, audio messages of at most 24 characters, alignment restarting at 0 in every message):
word times come from Pipecat's own ``calculate_word_times``, so a word that starts a new text
message without a space before it carries the previous word's time (its merged token), the last
word of a context is force-completed with the previous word's time, and every context's times start
from a clock reading (``max(last word's pts, now)``), not from its audio.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from pipecat.frames.frames import (
    Frame,
    OutputTransportMessageFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSTextFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.elevenlabs.tts_base import calculate_word_times
from pipecat.utils.text.base_text_aggregator import TextType

from phone_agent.voice.playout import PlayoutTracker
from tests.fakes.audio import MS_PER_CHAR, tone_pcm16
from tests.fakes.elevenlabs_ws import chunk_text

SAMPLE_RATE = 8000
NS_PER_MS = 1_000_000
FIRST_CLAUSE = "Our tasting menu has seven courses,"  # first_clause.py sends it on its own, unspaced
SENTENCE = "starting with a chilled tomato soup, then fresh pasta."


@dataclass
class SpokenContext:
    """One TTS context as the tracker receives it, and where each word really starts."""

    frames: list[Frame] = field(default_factory=list)
    words: list[tuple[str, float]] = field(default_factory=list)  # (word, ms from the context's audio)
    audio_ms: float = 0.0
    last_pts: int = 0


def elevenlabs_context(
    context_id: str, messages: list[str], baseline_ns: int, ms_per_char: int = MS_PER_CHAR
) -> SpokenContext:
    """The frames of one context whose text went to ElevenLabs as ``messages`` (Pipecat sends them
    without a space in between), timed from ``baseline_ns`` the way Pipecat 1.14 times them."""
    spoken = SpokenContext(frames=[TTSStartedFrame(context_id=context_id)])
    expected: list[str] = []  # words whose frame Pipecat has not pushed yet
    cumulative_s, partial, partial_start = 0.0, "", 0.0
    for message in messages:
        base = spoken.audio_ms
        for match in re.finditer(r"\S+", message):
            spoken.words.append((match.group(), base + match.start() * ms_per_char))
            expected.append(match.group())
        for piece in chunk_text(message):
            audio = tone_pcm16(piece, SAMPLE_RATE, ms_per_char)
            spoken.frames.append(TTSAudioRawFrame(audio, SAMPLE_RATE, 1, context_id))
            spoken.audio_ms += len(piece) * ms_per_char
            alignment = {
                "chars": list(piece),
                "charStartTimesMs": [i * ms_per_char for i in range(len(piece))],
            }
            tokens, partial, partial_start = calculate_word_times(
                alignment, cumulative_s, partial, partial_start
            )
            cumulative_s += len(piece) * ms_per_char / 1000
            for token, start_s in tokens:
                spoken.last_pts = baseline_ns + round(start_s * 1e9)
                spoken.frames += _word_frames(token, expected, spoken.last_pts, context_id)
    # the last word never saw a space: Pipecat force-completes it with the last word's pts
    spoken.frames += _word_frames(partial, expected, spoken.last_pts, context_id)
    assert not expected
    return spoken


def _word_frames(token: str, expected: list[str], pts: int, context_id: str) -> list[Frame]:
    """Pipecat's sequencer splits a merged token ("courses,starting") back into the words sent."""
    frames: list[Frame] = []
    while token:
        word = expected.pop(0)
        assert token.startswith(word), (token, word)
        token = token[len(word) :]
        frame = TTSTextFrame(word, text_type=TextType.WORD, context_id=context_id)
        frame.pts = pts
        frames.append(frame)
    return frames


class MarkSink(FrameProcessor):
    """The output transport's place: collects the marks the tracker sends to Twilio."""

    def __init__(self) -> None:
        super().__init__()
        self.marks: list[str] = []

    async def queue_frame(
        self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM, callback: Any = None
    ) -> None:
        if isinstance(frame, OutputTransportMessageFrame) and frame.message.get("event") == "mark":
            self.marks.append(frame.message["mark"]["name"])


async def play_and_listen(reply: list[SpokenContext]) -> list[tuple[float, list[str], list[str]]]:
    """Send a greeting then ``reply`` through a tracker; echo its marks one by one as a phone would.

    Returns, per echoed mark of the reply: ms of the reply played, the words kept as heard, and
    the words played in full by then (the next word's audio had started; the last word: all of it).
    """
    tracker, sink = PlayoutTracker(stream_sid="MZ1"), MarkSink()
    tracker.link(sink)
    greeting = elevenlabs_context("greeting", ["Hello, thanks for calling."], baseline_ns=10**9)
    for frame in [*greeting.frames, UserStoppedSpeakingFrame()]:
        await tracker.process_frame(frame, FrameDirection.DOWNSTREAM)
    reply_start, marks_before = tracker.sent_ms, len(sink.marks)
    starts: list[tuple[str, float]] = []
    context_start = reply_start
    for context in reply:
        for frame in context.frames:
            await tracker.process_frame(frame, FrameDirection.DOWNSTREAM)
        starts += [(word, context_start + at) for word, at in context.words]
        context_start += context.audio_ms
    assert tracker.sent_ms == context_start  # every byte of the reply went out, marked
    ends = [start for _, start in starts[1:]] + [context_start]
    heard_at = []
    for name in sink.marks[marks_before:]:
        tracker.on_mark(name)
        played = tracker.played_ms
        heard = tracker.reply_text(heard_only=True).split()
        played_in_full = [word for (word, _), end in zip(starts, ends, strict=True) if end <= played]
        heard_at.append((played - reply_start, heard, played_in_full))
    return heard_at


def assert_heard_is_what_played(heard_at: list[tuple[float, list[str], list[str]]], words: list[str]) -> None:
    """Never a word not played in full; at most one played word missing (the one before a context's
    last word, which Pipecat does not time)."""
    for played_ms, heard, played in heard_at:
        assert heard == played[: len(heard)], f"{played_ms:.0f} ms played: kept {heard}, played {played}"
        assert len(played) - len(heard) <= 1, f"{played_ms:.0f} ms played: kept {heard}, played {played}"
    assert heard_at[-1][1] == words  # once everything played, all of it was heard


@pytest.mark.parametrize("ms_per_char", [MS_PER_CHAR, 90])  # the fake's voice, a slower one
async def test_a_word_opening_a_new_text_message_is_placed_at_its_audio(ms_per_char: int) -> None:
    # ElevenLabs gets the first clause, then the sentence, with no space between them: Pipecat merges
    # "courses," and "starting" into one token and gives "starting" the time of "courses,".
    reply = elevenlabs_context("reply", [FIRST_CLAUSE, SENTENCE], 123_456_789_000, ms_per_char)
    heard_at = await play_and_listen([reply])
    assert_heard_is_what_played(heard_at, [w for w, _ in reply.words])
    starting = dict(reply.words)["starting"]
    # the load failure: 2120 of 2450 ms of the first clause played, "…courses, starting" kept
    cut_in_courses = [heard for played, heard, _ in heard_at if starting - 400 < played < starting]
    assert cut_in_courses and all(heard == FIRST_CLAUSE.split()[:-1] for heard in cut_in_courses)
    after_courses = [heard for played, heard, _ in heard_at if starting <= played < dict(reply.words)["with"]]
    assert after_courses and all(heard == FIRST_CLAUSE.split() for heard in after_courses)


@pytest.mark.parametrize("clock", ["behind", "ahead"])
async def test_words_of_each_context_are_placed_by_that_contexts_audio(clock: str) -> None:
    # A reply spoken in two contexts (the rest re-spoken after a failover, or a context Pipecat
    # recreated after its stop timeout): the second context's word clock starts at the first's last
    # word (audio delivered faster than real time) or at a later clock reading (a loaded machine).
    first = elevenlabs_context("reply-1", [FIRST_CLAUSE], baseline_ns=50 * 10**9)
    baseline = first.last_pts if clock == "behind" else first.last_pts + 4_000 * NS_PER_MS
    second = elevenlabs_context("reply-2", [SENTENCE], baseline_ns=baseline)
    heard_at = await play_and_listen([first, second])
    assert_heard_is_what_played(heard_at, [w for w, _ in first.words + second.words])
