"""The admin softphone against a phone call, on the same agent and the same provider fakes.

    .venv/bin/python -m bench.softphone [--turns 6]

One agent (``create_app`` served by uvicorn in this process, embedded SQLite in a temporary
directory) on the provider fakes with the bench's fixed latencies (STT 200 ms, LLM first token 350 ms
then 40 tokens/s, TTS first audio 150 ms then 5x real time). The same espeak-ng utterances are
spoken by a logged-in owner over ``/admin/web-call`` (16 kHz PCM, ``tests/admin/web_caller.py``)
and by a simulated Twilio caller over ``/media-stream`` (8 kHz mu-law, ``MediaStreamCaller``).
Prints, per leg, voice-to-voice p50/p95 measured at the client (last speech frame sent → first
audible agent audio received) and from the stored marks (``caller_stopped`` → ``first_audio_sent``),
with the load average. Figures only: nothing passes or fails on time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import select
from tests.admin.conftest import PASSWORD
from tests.admin.web_caller import WebCaller, admin_session
from tests.conftest import make_settings
from tests.fakes.audio import speech_pcm16, speech_wav
from tests.fakes.elevenlabs import FakeElevenLabs
from tests.fakes.media_stream_caller import MediaStreamCaller
from tests.fakes.openai import FakeOpenAI
from tests.fakes.twilio_rest import new_sid
from tests.running_agent import SHORT_GREETINGS, agent_env, serve

from phone_agent.app import create_app
from phone_agent.storage.db import create_engine, session_factory
from phone_agent.storage.tables import Call, CallTurn
from phone_agent.telephony.stream_token import issue_stream_token, signing_key

UTTERANCES = ("I would like to book a table", "How much does it cost", "Do you have parking")
REPLY = "Of course. I can help with that."


async def _web_call(base: str, turns: int) -> list[float]:
    session = admin_session(base)
    measured = []
    async with WebCaller(base, session) as call:
        await call.wait_for_agent_audio(timeout=30)
        await call.wait_for_quiet(0.6)
        for index in range(turns):
            turn = await call.say(speech_pcm16(UTTERANCES[index % len(UTTERANCES)], 16000))
            await call.wait_for_agent_audio(timeout=30, since=turn.speech_ended)
            await call.wait_for_quiet(0.6)
            if turn.voice_to_voice is not None:
                measured.append(turn.voice_to_voice)
    return measured


async def _phone_call(ws_url: str, settings: Any, turns: int) -> list[float]:
    call_sid = new_sid("CA")
    caller = "+15551230001"
    token = issue_stream_token(signing_key(settings), call_sid=call_sid, caller=caller, ttl_seconds=60)
    measured = []
    async with MediaStreamCaller(
        ws_url + "/media-stream",
        custom_parameters={"caller": caller, "call_sid": call_sid, "token": token},
        call_sid=call_sid,
        from_number=caller,
    ) as call:
        await call.wait_for_agent_audio(timeout=30)
        await call.wait_for_quiet(0.6, timeout=30)
        for index in range(turns):
            turn = await call.say_wav(speech_wav(UTTERANCES[index % len(UTTERANCES)]))
            await call.wait_for_agent_audio(timeout=30, since=turn.speech_ended)
            await call.wait_for_quiet(0.6, timeout=30)
            if turn.voice_to_voice is not None:
                measured.append(turn.voice_to_voice)
    return measured


async def _server_marks(database: Path, channel: str) -> list[dict[str, float]]:
    """The agent turns' timing marks of the calls on ``channel`` (replies to a caller turn only)."""
    engine = create_engine(f"sqlite+aiosqlite:///{database}")
    try:
        async with session_factory(engine)() as session:
            rows = await session.execute(
                select(CallTurn.marks).join(Call).where(Call.channel == channel, CallTurn.role == "agent")
            )
            return [m for (m,) in rows if m and set(STAGES) <= set(m)]
    finally:
        await engine.dispose()


STAGES = (
    "caller_stopped",
    "turn_detected",
    "stt_final",
    "llm_first_token",
    "tts_first_audio",
    "first_audio_sent",
)


def _total(marks: list[dict[str, float]]) -> list[float]:
    return [(m["first_audio_sent"] - m["caller_stopped"]) / 1000 for m in marks]


def _stages(marks: list[dict[str, float]]) -> str:
    """Median ms of each stage: STT final and end of turn after the caller stopped, then the LLM after
    both, TTS after the LLM, sending after TTS."""

    def median(key: Any) -> float:
        return statistics.median([key(m) for m in marks]) if marks else float("nan")

    return (
        f"STT +{median(lambda m: m['stt_final'] - m['caller_stopped']):.0f}, "
        f"end of turn +{median(lambda m: m['turn_detected'] - m['caller_stopped']):.0f}, "
        f"LLM +{median(lambda m: m['llm_first_token'] - max(m['stt_final'], m['turn_detected'])):.0f}, "
        f"TTS +{median(lambda m: m['tts_first_audio'] - m['llm_first_token']):.0f}, "
        f"sent +{median(lambda m: m['first_audio_sent'] - m['tts_first_audio']):.0f} ms"
    )


def _line(label: str, values: list[float]) -> str:
    if not values:
        return f"  {label:34} no measurement"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"  {label:34} p50 {statistics.median(ordered):.3f} s  p95 {p95:.3f} s  (n={len(ordered)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=6, help="caller turns per call (each leg)")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        FakeOpenAI(first_token_latency=0.35, tokens_per_second=40, stt_latency=0.2) as openai,
        FakeElevenLabs(first_audio_latency=0.15, realtime_factor=5.0) as eleven,
    ):
        directory = Path(tmp)
        openai.default_transcript = "I would like to book a table."
        openai.default_reply_text = REPLY
        env = agent_env(directory, openai, eleven, ADMIN_PASSWORD=PASSWORD, **SHORT_GREETINGS)
        settings = make_settings(directory, **env)
        with serve(create_app(settings)) as ws_url:
            base = ws_url.replace("ws://", "http://")
            asyncio.run(_phone_call(ws_url, settings, 1))  # warm-up: the first call of a process is slower
            web = asyncio.run(_web_call(base, args.turns))
            phone = asyncio.run(_phone_call(ws_url, settings, args.turns))
        web_marks = asyncio.run(_server_marks(directory / "test.db", "web"))
        phone_marks = asyncio.run(_server_marks(directory / "test.db", "phone"))
    load = os.getloadavg()
    print("voice-to-voice on the fakes (STT 200 ms, LLM first token 350 ms, TTS first audio 150 ms)")
    print(_line("softphone, at the page", web))
    print(_line("softphone, stored marks", _total(web_marks)), "\n   ", _stages(web_marks))
    print(_line("phone (Media Stream), at the caller", phone))
    print(_line("phone (Media Stream), stored marks", _total(phone_marks)), "\n   ", _stages(phone_marks))
    print(f"  load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
