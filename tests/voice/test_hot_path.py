"""Frames stop after the last processor that reads them: 3 hops per frame of caller audio, and the
output transport's "agent still speaking" one hop each way; Twilio's mark echoes make none."""

from __future__ import annotations

import collections
from typing import Any

from pipecat.frames.frames import (
    BotSpeakingFrame,
    InputAudioRawFrame,
    OutputAudioRawFrame,
    TextFrame,
    TTSAudioRawFrame,
    UserSpeakingFrame,
    UserStartedSpeakingFrame,
)
from pipecat.observers.base_observer import FramePushed
from pipecat.processors.frame_processor import FrameDirection
from pipecat.tests.utils import run_test

from phone_agent.voice.frame_tap import FrameTap
from phone_agent.voice.hot_path import DropFrames
from tests.fakes.audio import speech_wav
from tests.running_agent import SHORT_GREETINGS


async def test_drop_frames_consumes_only_downstream_frames_of_its_types() -> None:
    audio = InputAudioRawFrame(b"\x00" * 320, 8000, 1)
    await run_test(
        DropFrames(InputAudioRawFrame),
        frames_to_send=[audio, TextFrame("hello"), OutputAudioRawFrame(b"\x00" * 320, 8000, 1)],
        expected_down_frames=[TextFrame, OutputAudioRawFrame],
    )
    await run_test(
        DropFrames(OutputAudioRawFrame),  # a TTS chunk is output audio too
        frames_to_send=[TTSAudioRawFrame(b"\x00" * 320, 8000, 1), UserStartedSpeakingFrame()],
        expected_down_frames=[UserStartedSpeakingFrame],
    )
    await run_test(
        DropFrames(InputAudioRawFrame),
        frames_to_send=[InputAudioRawFrame(b"\x00" * 320, 8000, 1)],
        frames_to_send_direction=FrameDirection.UPSTREAM,
        expected_up_frames=[InputAudioRawFrame],  # only what flows down is ended
    )


async def test_in_a_call_caller_audio_makes_three_hops_and_agent_audio_stops_after_the_output(
    agent_factory: Any, monkeypatch: Any
) -> None:
    hops: collections.Counter[tuple[str, str]] = collections.Counter()
    frames: collections.Counter[str] = collections.Counter()
    seen: set[int] = set()
    speaking: collections.Counter[tuple[str, str, str]] = collections.Counter()
    pushed_types: set[str] = set()
    observe = FrameTap.on_push_frame  # every push of every processor reaches the call's tap

    async def counting(self: FrameTap, data: FramePushed) -> None:
        await observe(self, data)
        pushed_types.add(type(data.frame).__name__)
        if isinstance(data.frame, BotSpeakingFrame | UserSpeakingFrame):
            where = (type(data.frame).__name__, data.direction.name, type(data.destination).__name__)
            speaking[where] += 1
        kind = "caller" if isinstance(data.frame, InputAudioRawFrame) else "agent"
        if isinstance(data.frame, (InputAudioRawFrame, OutputAudioRawFrame)):
            hops[(kind, type(data.destination).__name__)] += 1
            frames[kind] += data.frame.id not in seen
            seen.add(data.frame.id)

    monkeypatch.setattr(FrameTap, "on_push_frame", counting)
    with agent_factory(**SHORT_GREETINGS) as agent:
        agent.script_speech(["I would like to book a table."], ["Of course. For what day and time?"])
        async with agent.caller() as caller:
            await caller.wait_for_agent_audio(timeout=20)
            await caller.wait_for_quiet(0.6, timeout=30)
            turn = await caller.say_wav(speech_wav("I would like to book a table"))
            await caller.wait_for_agent_audio(timeout=20, since=turn.speech_ended)
            await caller.wait_for_quiet(0.6, timeout=30)

    caller_hops = {dest: n for (kind, dest), n in hops.items() if kind == "caller"}
    # the STT (streaming, its ladder behind it), the user aggregator (VAD, smart-turn), the drop
    assert set(caller_hops) == {"StreamingSTTService", "LLMUserAggregator", "DropFrames"}
    assert sum(caller_hops.values()) == 3 * frames["caller"] and frames["caller"] > 100
    agent_ends = {dest for (kind, dest), _ in hops.items() if kind == "agent"}
    assert "DropFrames" in agent_ends and "InterruptedContextFilter" not in agent_ends
    assert agent.openai.chat_requests  # the call still worked: the caller was heard and answered
    # "agent still speaking" (5 a second while it talks) stops at once both ways: nothing reads it
    bot_speaking = {(d, dest) for (kind, d, dest) in speaking if kind == "BotSpeakingFrame"}
    assert bot_speaking == {("UPSTREAM", "PlayoutTracker"), ("DOWNSTREAM", "DropFrames")}, speaking
    caller_down = {dest for (kind, d, dest) in speaking if kind == "UserSpeakingFrame" and d == "DOWNSTREAM"}
    assert caller_down == {"DropFrames"}, speaking
    # the phone echoed the agent's marks (the heard-tracking: tests/voice/test_barge_in.py) and no
    # frame carried them down the pipeline
    assert len(caller.marks_sent_back) > 5 and "PlayedMarkFrame" not in pushed_types
