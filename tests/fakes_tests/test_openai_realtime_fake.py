"""The OpenAI Realtime fake speaks the GA wire protocol: auth, session, server VAD, responses, faults."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest
from pipecat.services.openai.realtime import events
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from tests.fakes.audio import pcm16_rms, tone_pcm16
from tests.fakes.openai_realtime import SAMPLE_RATE, FakeOpenAIRealtime, RealtimeToolCall

SILENCE_20MS = b"\x00\x00" * (SAMPLE_RATE // 50)


async def open_session(fake: FakeOpenAIRealtime, key: str | None = None) -> ClientConnection:
    return await connect(
        f"{fake.ws_url}/v1/realtime?model=gpt-realtime",
        additional_headers={"Authorization": f"Bearer {key or fake.api_key}"},
    )


async def next_event(ws: ClientConnection, wanted: str, timeout: float = 10.0) -> dict[str, Any]:  # noqa: ASYNC109
    """Read events until one of type ``wanted``; every event must parse with Pipecat's models."""
    async with asyncio.timeout(timeout):
        while True:
            raw = await ws.recv()
            events.parse_server_event(raw)  # raises on a field Pipecat's service could not read
            event = json.loads(raw)
            if event["type"] == wanted:
                return event


async def send(ws: ClientConnection, event: dict[str, Any]) -> None:
    await ws.send(json.dumps(event))


async def append(ws: ClientConnection, pcm: bytes) -> None:
    for i in range(0, len(pcm), len(SILENCE_20MS)):
        await send(
            ws, {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm[i : i + 960]).decode()}
        )


async def test_wrong_key_is_refused(fake_openai_realtime: FakeOpenAIRealtime) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await open_session(fake_openai_realtime, key="sk-wrong")
    assert refused.value.response.status_code == 401


async def test_session_update_then_speech_gets_transcript_and_spoken_reply(
    fake_openai_realtime: FakeOpenAIRealtime,
) -> None:
    fake = fake_openai_realtime
    fake.transcripts.append("Do you have a table tonight?")
    fake.script("Yes, we do.")
    async with await open_session(fake) as ws:
        created = await next_event(ws, "session.created")
        assert created["session"]["model"] == "gpt-realtime"
        await send(ws, {"type": "session.update", "session": {"instructions": "x"}})
        error = await next_event(ws, "error")
        assert error["error"]["param"] == "session.type"
        update = {
            "type": "realtime",
            "instructions": "You are Ava.",
            "audio": {
                "input": {"transcription": {"model": "gpt-4o-transcribe"}},
                "output": {"voice": "marin"},
            },
        }
        await send(ws, {"type": "session.update", "session": update})
        updated = await next_event(ws, "session.updated")
        assert updated["session"]["instructions"] == "You are Ava."
        assert updated["session"]["audio"]["input"]["turn_detection"]["type"] == "server_vad"
        await append(ws, SILENCE_20MS * 10 + tone_pcm16("hello there", SAMPLE_RATE) + SILENCE_20MS * 30)
        started = await next_event(ws, "input_audio_buffer.speech_started")
        stopped = await next_event(ws, "input_audio_buffer.speech_stopped")
        assert (
            started["item_id"] == stopped["item_id"] and stopped["audio_end_ms"] > started["audio_start_ms"]
        )
        transcript = await next_event(ws, "conversation.item.input_audio_transcription.completed")
        assert transcript["transcript"] == "Do you have a table tonight?"
        await next_event(ws, "response.created")
        audio, text = b"", ""
        while True:
            event = json.loads(await ws.recv())
            if event["type"] == "response.output_audio.delta":
                audio += base64.b64decode(event["delta"])
            elif event["type"] == "response.output_audio_transcript.delta":
                text += event["delta"]
            elif event["type"] == "response.done":
                break
        assert text == "Yes, we do." and event["response"]["status"] == "completed"
        assert len(audio) == len(tone_pcm16("Yes, we do.", SAMPLE_RATE)) and pcm16_rms(audio) > 1000
    [session] = fake.sessions
    assert session["session"]["audio"]["output"]["voice"] == "marin"


async def test_speech_during_a_response_cancels_it_and_a_second_create_is_refused(
    fake_openai_realtime: FakeOpenAIRealtime,
) -> None:
    fake = fake_openai_realtime
    fake.audio_realtime_factor = 1.0  # the reply takes seconds to send
    fake.script("A long answer that keeps going for quite a while.")
    async with await open_session(fake) as ws:
        await next_event(ws, "session.created")
        await send(ws, {"type": "response.create"})
        await next_event(ws, "response.output_audio.delta")
        await send(ws, {"type": "response.create", "event_id": "second"})
        refused = await next_event(ws, "error")
        assert refused["error"]["code"] == "conversation_already_has_active_response"
        await append(ws, tone_pcm16("stop", SAMPLE_RATE))
        await next_event(ws, "input_audio_buffer.speech_started")
        done = await next_event(ws, "response.done")
        assert done["response"]["status"] == "cancelled"
    assert [r["status"] for r in fake.sessions[0]["responses"]] == ["cancelled"]


async def test_item_create_echoes_the_client_item_id(fake_openai_realtime: FakeOpenAIRealtime) -> None:
    item = events.ConversationItem(
        role="user", type="message", content=[events.ItemContent(type="input_text", text="Greet the caller.")]
    )
    async with await open_session(fake_openai_realtime) as ws:
        await next_event(ws, "session.created")
        await send(ws, events.ConversationItemCreateEvent(item=item).model_dump(exclude_none=True))
        added = await next_event(ws, "conversation.item.added")
        assert added["item"]["id"] == item.id
        await send(ws, {"type": "response.cancel"})
        assert (await next_event(ws, "error"))["error"]["code"] == "response_cancel_not_active"
        await send(ws, {"type": "no.such.event"})
        assert (await next_event(ws, "error"))["error"]["param"] == "type"


async def test_drop_and_error_at_a_response(fake_openai_realtime: FakeOpenAIRealtime) -> None:
    fake = fake_openai_realtime
    fake.error_at_response(1)
    fake.drop_at_response(2)
    async with await open_session(fake) as ws:
        await next_event(ws, "session.created")
        await send(ws, {"type": "response.create"})
        assert (await next_event(ws, "error"))["error"]["type"] == "server_error"
        await send(ws, {"type": "response.create"})
        with pytest.raises(ConnectionClosedError) as closed:
            await next_event(ws, "response.created")
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011


async def test_a_scripted_function_call_waits_for_its_output(
    fake_openai_realtime: FakeOpenAIRealtime,
) -> None:
    fake = fake_openai_realtime
    fake.script(RealtimeToolCall("take_message", {"message": "Call me"}), "Done.")
    async with await open_session(fake) as ws:
        await next_event(ws, "session.created")
        await send(ws, {"type": "response.create"})
        call = await next_event(ws, "response.function_call_arguments.done")
        assert call["name"] == "take_message" and json.loads(call["arguments"]) == {"message": "Call me"}
        done = await next_event(ws, "response.done")
        assert done["response"]["output"][0]["call_id"] == call["call_id"]
        output = {"type": "function_call_output", "call_id": call["call_id"], "output": '{"ok": true}'}
        await send(ws, {"type": "conversation.item.create", "item": output})
        await next_event(ws, "conversation.item.added")
        await send(ws, {"type": "response.create"})
        transcript = await next_event(ws, "response.output_audio_transcript.done")
        assert transcript["transcript"] == "Done."
    assert [i["type"] for i in fake.sessions[0]["items"]] == ["function_call_output"]
