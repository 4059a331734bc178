"""FakeOpenAI driven by the official `openai` SDK: chat (JSON, SSE, tools), audio, embeddings, faults."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest

from tests.fakes.audio import speech_wav, write_pcm16_wav
from tests.fakes.openai import FakeOpenAI, Reply, ToolCall

BOOK_TOOL = {
    "type": "function",
    "function": {
        "name": "book_appointment",
        "description": "Book a slot",
        "parameters": {"type": "object", "properties": {"day": {"type": "string"}}, "required": ["day"]},
    },
}


Sdk = Callable[..., openai.AsyncOpenAI]


@pytest.fixture
async def sdk() -> AsyncIterator[Sdk]:
    """Makes official SDK clients pointed at a fake; each one is closed when the test ends."""
    clients: list[openai.AsyncOpenAI] = []

    def make(fake: FakeOpenAI, **kwargs: object) -> openai.AsyncOpenAI:
        client = openai.AsyncOpenAI(api_key=fake.api_key, base_url=fake.url + "/v1", max_retries=0, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


async def test_non_stream_default_reply_echoes_last_user_message(fake_openai: FakeOpenAI, sdk: Sdk) -> None:
    client = sdk(fake_openai)
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Are you open today?"},
    ]
    result = await client.chat.completions.create(model="gpt-4.1", messages=messages)
    assert result.choices[0].message.content == "I heard you say: Are you open today?"
    assert result.choices[0].finish_reason == "stop"
    assert result.usage is not None and result.usage.total_tokens > 0
    assert fake_openai.chat_requests[-1]["messages"] == messages


async def test_default_reply_text_answers_every_unscripted_chat(fake_openai: FakeOpenAI, sdk: Sdk) -> None:
    client = sdk(fake_openai)
    fake_openai.default_reply_text = "Sure, I can help with that."
    fake_openai.script("Scripted first.")
    messages = [{"role": "user", "content": "Hi"}]
    first = await client.chat.completions.create(model="gpt-4.1", messages=messages)
    second = await client.chat.completions.create(model="gpt-4.1", messages=messages)
    assert first.choices[0].message.content == "Scripted first."
    assert second.choices[0].message.content == "Sure, I can help with that."


async def test_reply_for_answers_from_the_request_messages(fake_openai: FakeOpenAI, sdk: Sdk) -> None:
    client = sdk(fake_openai)
    fake_openai.default_reply_text = "Never used."
    fake_openai.reply_for = lambda messages: Reply(text=f"{len(messages)} messages.")
    one = await client.chat.completions.create(model="gpt-4.1", messages=[{"role": "user", "content": "Hi"}])
    stream = await client.chat.completions.create(
        model="gpt-4.1",
        messages=[
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "Bye"},
        ],
        stream=True,
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert one.choices[0].message.content == "1 messages." and text == "3 messages."


async def test_stream_text_then_tool_call_with_usage(fake_openai: FakeOpenAI, sdk: Sdk) -> None:
    fake_openai.script(
        Reply(text="Let me book that.", tool_calls=[ToolCall("book_appointment", {"day": "Mon"})])
    )
    stream = await sdk(fake_openai).chat.completions.create(
        model="gpt-4.1",
        messages=[{"role": "user", "content": "Book Monday"}],
        tools=[BOOK_TOOL],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, names, ids, arguments, finish, usage, content_chunks = "", [], [], "", None, None, 0
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                text += choice.delta.content
                content_chunks += 1
            for call in choice.delta.tool_calls or []:
                if call.id:
                    ids.append(call.id)
                if call.function and call.function.name:
                    names.append(call.function.name)
                if call.function and call.function.arguments:
                    arguments += call.function.arguments
            finish = choice.finish_reason or finish
    assert text == "Let me book that."
    assert content_chunks > 1  # streamed token by token
    assert names == ["book_appointment"] and len(ids) == 1 and ids[0].startswith("call_")
    assert json.loads(arguments) == {"day": "Mon"}
    assert finish == "tool_calls"
    assert usage is not None and usage.completion_tokens > 0
    assert fake_openai.chat_requests[-1]["tools"] == [BOOK_TOOL]


async def test_sse_wire_format_ends_with_done(fake_openai: FakeOpenAI) -> None:
    body = {"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    async with httpx.AsyncClient() as http:
        response = await http.post(
            fake_openai.url + "/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {fake_openai.api_key}"},
        )
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [line for line in response.text.split("\n\n") if line]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    first = json.loads(events[0][6:])
    assert first["object"] == "chat.completion.chunk"
    assert first["choices"][0]["delta"]["role"] == "assistant"


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        ([{"role": "tool", "content": "x", "tool_call_id": "call_1"}], "messages.[0].role"),
        (
            [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                    ],
                },
                {"role": "user", "content": "hello?"},
            ],
            "messages.[1].role",
        ),
        ([{"role": "robot", "content": "hi"}], "messages[0].role"),
        ([], "messages"),
    ],
)
async def test_malformed_conversations_are_rejected_like_openai(
    fake_openai: FakeOpenAI, messages: list[dict[str, object]], param: str, sdk: Sdk
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await sdk(fake_openai).chat.completions.create(model="gpt-4.1", messages=messages)  # type: ignore[arg-type]
    assert info.value.status_code == 400
    assert isinstance(info.value.body, dict) and info.value.body["param"] == param


async def test_bad_tool_name_and_unknown_model(fake_openai: FakeOpenAI, sdk: Sdk) -> None:
    bad_tool = {
        "type": "function",
        "function": {"name": "book appointment", "parameters": {"type": "object"}},
    }
    with pytest.raises(openai.BadRequestError):
        await sdk(fake_openai).chat.completions.create(
            model="gpt-4.1", messages=[{"role": "user", "content": "x"}], tools=[bad_tool]
        )
    with pytest.raises(openai.NotFoundError) as info:
        await sdk(fake_openai).chat.completions.create(
            model="gpt-9", messages=[{"role": "user", "content": "x"}]
        )
    assert isinstance(info.value.body, dict) and info.value.body["code"] == "model_not_found"


async def test_wrong_key_gets_401_with_openai_error_body(fake_openai: FakeOpenAI) -> None:
    async with openai.AsyncOpenAI(
        api_key="sk-wrong-0000000000", base_url=fake_openai.url + "/v1", max_retries=0
    ) as client:
        with pytest.raises(openai.AuthenticationError) as info:
            await client.models.list()
    assert isinstance(info.value.body, dict)
    assert info.value.body["code"] == "invalid_api_key" and info.value.body["type"] == "invalid_request_error"
    assert "sk-wrong-0000000000" not in info.value.body["message"]  # the key is masked


async def test_transcription_returns_scripted_then_default_and_text_format(
    fake_openai: FakeOpenAI, sdk: Sdk
) -> None:
    wav = speech_wav("I would like to book a table")
    fake_openai.transcripts.append("Book a table for two.")
    client = sdk(fake_openai)
    first = await client.audio.transcriptions.create(
        model="gpt-4o-transcribe", file=("a.wav", wav.read_bytes())
    )
    second = await client.audio.transcriptions.create(
        model="whisper-1", file=("a.wav", wav.read_bytes()), response_format="text"
    )
    assert first.text == "Book a table for two."
    assert second == fake_openai.default_transcript + "\n"
    sent = fake_openai.transcription_requests[0]
    assert sent["model"] == "gpt-4o-transcribe" and sent["file"]["size"] == len(wav.read_bytes())


async def test_transcription_of_silence_is_empty_and_too_short_is_rejected(
    fake_openai: FakeOpenAI, tmp_path, sdk: Sdk
) -> None:
    silent = write_pcm16_wav(tmp_path / "silence.wav", b"\x00\x00" * 16000, 16000)
    with silent.open("rb") as file:
        result = await sdk(fake_openai).audio.transcriptions.create(model="gpt-4o-transcribe", file=file)
    assert result.text == ""
    short = write_pcm16_wav(tmp_path / "short.wav", b"\x10\x10" * 800, 16000)
    with pytest.raises(openai.BadRequestError) as info, short.open("rb") as file:
        await sdk(fake_openai).audio.transcriptions.create(model="gpt-4o-transcribe", file=file)
    assert isinstance(info.value.body, dict) and info.value.body["code"] == "audio_too_short"


async def test_embeddings_are_deterministic_and_similar_texts_are_close(
    fake_openai: FakeOpenAI, sdk: Sdk
) -> None:
    client = sdk(fake_openai)
    texts = [
        "book a table for dinner",
        "book a table for dinner tonight",
        "the parking garage closes at nine",
    ]
    result = await client.embeddings.create(model="text-embedding-3-small", input=texts, dimensions=256)
    vectors = [np.array(d.embedding) for d in result.data]
    assert [len(v) for v in vectors] == [256, 256, 256]
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3
    again = await client.embeddings.create(model="text-embedding-3-small", input=texts[0], dimensions=256)
    assert np.allclose(again.data[0].embedding, vectors[0])
    default = await client.embeddings.create(model="text-embedding-3-small", input="x")
    assert len(default.data[0].embedding) == 1536


async def test_speech_pcm_is_24khz_16bit_and_non_silent(fake_openai: FakeOpenAI, sdk: Sdk) -> None:
    client = sdk(fake_openai)
    async with client.audio.speech.with_streaming_response.create(
        model="gpt-4o-mini-tts", voice="alloy", input="Hello there", response_format="pcm"
    ) as response:
        audio = await response.read()
    assert len(audio) == 24000 * 2 * 70 * len("Hello there") // 1000
    samples = np.frombuffer(audio, dtype="<i2")
    assert np.abs(samples).max() > 1000
    with pytest.raises(openai.BadRequestError):
        await client.audio.speech.create(
            model="gpt-4o-mini-tts", voice="nobody", input="hi", response_format="pcm"
        )


async def test_models_list_and_retrieve(fake_openai: FakeOpenAI, sdk: Sdk) -> None:
    client = sdk(fake_openai)
    ids = [m.id async for m in client.models.list()]
    assert "gpt-4.1" in ids
    assert (await client.models.retrieve("whisper-1")).id == "whisper-1"


async def test_injected_500_is_openai_server_error(fake_openai: FakeOpenAI, sdk: Sdk) -> None:
    fake_openai.fail_next(1, status=500)
    with pytest.raises(openai.InternalServerError) as info:
        await sdk(fake_openai).chat.completions.create(
            model="gpt-4.1", messages=[{"role": "user", "content": "x"}]
        )
    assert isinstance(info.value.body, dict) and info.value.body["type"] == "server_error"
    ok = await sdk(fake_openai).chat.completions.create(
        model="gpt-4.1", messages=[{"role": "user", "content": "x"}]
    )
    assert ok.choices[0].message.content == "I heard you say: x"


async def test_hang_makes_the_client_time_out(fake_openai: FakeOpenAI, sdk: Sdk) -> None:
    fake_openai.hang_next()
    with pytest.raises(openai.APITimeoutError):
        await sdk(fake_openai, timeout=0.3).chat.completions.create(
            model="gpt-4.1", messages=[{"role": "user", "content": "x"}]
        )
    assert len(fake_openai.requests_to("/chat/completions")) == 1


async def test_drop_cuts_a_stream_mid_way(fake_openai: FakeOpenAI, sdk: Sdk) -> None:
    fake_openai.drop_next()
    stream = await sdk(fake_openai).chat.completions.create(
        model="gpt-4.1", messages=[{"role": "user", "content": "tell me a long story"}], stream=True
    )
    received = []
    with pytest.raises(openai.APIError):
        async for chunk in stream:
            received.append(chunk)
    assert len(received) <= 1  # at most the first chunk arrived before the cut


async def test_a_fault_for_one_path_leaves_the_others_alone(
    fake_openai: FakeOpenAI, tmp_path: Path, sdk: Sdk
) -> None:
    fake_openai.fail_next(2, status=401, path="/audio/transcriptions")
    client = sdk(fake_openai)
    ok = await client.chat.completions.create(model="gpt-4.1", messages=[{"role": "user", "content": "x"}])
    assert ok.choices[0].message.content == "I heard you say: x"  # chat passes untouched
    wav = write_pcm16_wav(tmp_path / "quiet.wav", bytes(16000), 8000)
    for _ in range(2):
        with pytest.raises(openai.AuthenticationError):
            await client.audio.transcriptions.create(model="whisper-1", file=("a.wav", wav.read_bytes()))
    transcript = await client.audio.transcriptions.create(model="whisper-1", file=("a.wav", wav.read_bytes()))
    assert transcript.text == ""  # the two armed faults are used up: silence transcribes as nothing
