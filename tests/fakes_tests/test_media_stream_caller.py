"""MediaStreamCaller against a small scripted agent app: messages on the wire, playout, marks, clear."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from tests.fakes.audio import FRAME_BYTES, is_silent, pcm16_to_ulaw, speech_wav, tone_pcm16
from tests.fakes.base import ASGIApp, FakeServer
from tests.fakes.media_stream_caller import MediaStreamCaller
from tests.fakes.twilio_rest import FakeTwilioREST


class ScriptedAgent(FakeServer):
    """Greets with a tone + mark; answers each caller utterance after 0.5 s of silence; may clear."""

    name = "agent"

    def __init__(
        self,
        *,
        clear_after_answer: bool = False,
        close_after_greeting: bool = False,
        close_after_mark: bool = False,
    ) -> None:
        super().__init__()
        self.clear_after_answer = clear_after_answer
        self.close_after_greeting = close_after_greeting
        self.close_after_mark = close_after_mark
        self.inbound: list[dict[str, Any]] = []
        self.handshake_headers: dict[str, str] = {}

    def build_app(self) -> ASGIApp:
        return Starlette(routes=[WebSocketRoute("/ws", self._stream)])

    async def _stream(self, websocket: WebSocket) -> None:
        await websocket.accept()
        self.handshake_headers = dict(websocket.headers)
        stream_sid, speech_frames, quiet_frames = "", 0, 0
        try:
            async for text in websocket.iter_text():
                message = json.loads(text)
                self.inbound.append(message)
                if message["event"] == "start":
                    stream_sid = message["start"]["streamSid"]
                    if self.close_after_mark:  # a mark with nothing to play, then the agent hangs up
                        mark = {"event": "mark", "streamSid": stream_sid, "mark": {"name": "bye"}}
                        await websocket.send_text(json.dumps(mark))
                        await websocket.close()
                        return
                    await self._say(websocket, stream_sid, "hello caller", "greeting")
                    if self.close_after_greeting:  # as a redirect ends the stream mid-greeting
                        await websocket.close()
                        return
                elif message["event"] == "media":
                    if not is_silent(base64.b64decode(message["media"]["payload"])):
                        speech_frames, quiet_frames = speech_frames + 1, 0
                        continue
                    quiet_frames += 1
                    if speech_frames > 20 and quiet_frames == 25:  # crude end of turn: 0.5 s of silence
                        speech_frames = 0
                        await self._say(websocket, stream_sid, "an answer", "answer")
                        if self.clear_after_answer:
                            await websocket.send_text(json.dumps({"event": "clear", "streamSid": stream_sid}))
                elif message["event"] == "stop":
                    return
        except WebSocketDisconnect:
            return

    async def _say(self, websocket: WebSocket, stream_sid: str, text: str, mark: str) -> None:
        audio = pcm16_to_ulaw(tone_pcm16(text, 8000))
        for start in range(0, len(audio), 320):
            payload = base64.b64encode(audio[start : start + 320]).decode()
            await websocket.send_text(
                json.dumps({"event": "media", "streamSid": stream_sid, "media": {"payload": payload}})
            )
        await websocket.send_text(
            json.dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": mark}})
        )


async def test_start_message_and_continuous_media_match_twilio() -> None:
    async with ScriptedAgent() as agent:
        caller = MediaStreamCaller(agent.ws_url + "/ws", custom_parameters={"caller": "+15551234567"})
        async with caller:
            await caller.send_silence(0.2)
            await caller.send_dtmf("5")
        await asyncio.sleep(0.1)
    events = [m["event"] for m in agent.inbound]
    assert events[:2] == ["connected", "start"] and events[-1] == "stop"
    assert agent.inbound[0] == {"event": "connected", "protocol": "Call", "version": "1.0.0"}
    start = agent.inbound[1]
    assert start["sequenceNumber"] == "1" and start["streamSid"] == caller.stream_sid
    assert start["start"] == {
        "streamSid": caller.stream_sid,
        "accountSid": caller.account_sid,
        "callSid": caller.call_sid,
        "tracks": ["inbound"],
        "customParameters": {"caller": "+15551234567"},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    }
    media = [m for m in agent.inbound if m["event"] == "media"]
    assert len(media) >= 10
    assert [m["media"]["chunk"] for m in media[:3]] == ["1", "2", "3"]
    assert [m["media"]["timestamp"] for m in media[:3]] == ["0", "20", "40"]
    assert all(len(base64.b64decode(m["media"]["payload"])) == FRAME_BYTES for m in media)
    assert all(m["media"]["track"] == "inbound" for m in media)
    numbers = [int(m["sequenceNumber"]) for m in agent.inbound[1:]]
    assert numbers == list(range(1, len(numbers) + 1))
    dtmf = next(m for m in agent.inbound if m["event"] == "dtmf")
    assert dtmf["dtmf"] == {"track": "inbound_track", "digit": "5"}


async def test_greeting_playout_marks_and_voice_to_voice() -> None:
    async with ScriptedAgent() as agent:
        async with MediaStreamCaller(agent.ws_url + "/ws") as caller:
            await caller.wait_for_agent_audio(timeout=5)
            assert caller.marks_sent_back == []  # the greeting is still playing
            await caller.wait_for_quiet(0.2, timeout=5)
            assert [name for _, name in caller.marks_sent_back] == ["greeting"]
            # the mark came back only after the 840 ms of greeting had played
            assert caller.marks_sent_back[0][0] - caller.marks_received[0][0] >= 0.8
            assert len(caller.played_audio) == len(pcm16_to_ulaw(tone_pcm16("hello caller", 8000)))
            turn = await caller.say_wav(speech_wav("I would like to book a table for two please"))
            await caller.wait_for_agent_audio(timeout=5, since=turn.speech_ended)
            await caller.wait_for_quiet(0.2, timeout=5)
    assert caller.greeting_latency is not None and caller.greeting_latency >= 0
    assert turn.voice_to_voice is not None and turn.voice_to_voice > 0
    assert [name for _, name in caller.marks_sent_back] == ["greeting", "answer"]
    echoed = [m for t, m in caller.received if isinstance(m, dict) and m.get("event") == "mark"]
    assert len(echoed) == 2
    sent_back = [m for m in agent.inbound if m["event"] == "mark"]
    assert [m["mark"]["name"] for m in sent_back] == ["greeting", "answer"]
    assert caller.protocol_errors == []


async def test_clear_drops_queued_audio_and_echoes_pending_marks_at_once() -> None:
    async with ScriptedAgent(clear_after_answer=True) as agent:
        async with MediaStreamCaller(agent.ws_url + "/ws") as caller:
            await caller.wait_for_quiet(0.2, timeout=5)
            played_before = len(caller.played_audio)
            turn = await caller.say_wav(speech_wav("I would like to book a table for two please"))
            await caller.wait_for_agent_audio(timeout=5, since=turn.speech_ended)
            await caller.wait_for_quiet(0.2, timeout=5)
    assert len(caller.clears) == 1
    answer_mark = next(t for t, name in caller.marks_sent_back if name == "answer")
    assert answer_mark - caller.clears[0] < 0.1  # echoed on clear, not after the audio
    assert len(caller.played_audio) - played_before < len(pcm16_to_ulaw(tone_pcm16("an answer", 8000)))


async def test_agent_hangup_via_rest_ends_the_stream() -> None:
    async with ScriptedAgent() as agent, FakeTwilioREST() as twilio:
        caller = MediaStreamCaller(agent.ws_url + "/ws", twilio_rest=twilio, auth_token=twilio.auth_token)
        async with caller:
            await caller.wait_for_agent_audio(timeout=5)
            await asyncio.to_thread(twilio.client().calls(caller.call_sid).update, status="completed")
            await caller.wait_for_close(timeout=5)
    assert caller.ended_by == "agent_hangup"
    assert agent.inbound[-1]["event"] == "stop"
    assert agent.handshake_headers["x-twilio-signature"]


async def test_a_stream_that_ends_drops_the_audio_still_queued() -> None:
    async with ScriptedAgent(close_after_greeting=True) as agent:
        async with MediaStreamCaller(agent.ws_url + "/ws") as caller:
            await caller.wait_for_close(timeout=5)
            closed_at = caller.closed_at
            await caller.wait_for_quiet(0.2, timeout=1)  # nothing more will play: quiet at once
    assert closed_at is not None and caller.ended_by == "server_closed"
    assert len(caller.played_audio) < len(pcm16_to_ulaw(tone_pcm16("hello caller", 8000)))


async def test_a_mark_echo_the_agent_closed_the_stream_before_is_lost_quietly() -> None:
    for _ in range(5):  # the close reaches the socket before the echo's task runs, or just after
        async with ScriptedAgent(close_after_mark=True) as agent:
            async with MediaStreamCaller(agent.ws_url + "/ws") as caller:
                await caller.wait_for_close(timeout=5)
                await asyncio.sleep(0.05)  # the echo's task has run
        assert [name for _, name in caller.marks_received] == ["bye"]
        assert [name for _, name in caller.marks_sent_back] == ["bye"]
        assert caller.echoes_lost <= 1 and not caller.protocol_errors
