"""Finding 9: a crash left a ghost call.

kill -9 in the middle of a call left it ``in-progress`` forever, listed as live after a restart,
and nothing was ever learned from it. Now each process records its instance and a heartbeat, a
call names the instance holding it, and a process that starts (or any survivor, every heartbeat)
closes the calls of instances that stopped beating as ``agent_crashed`` and learns from their
stored turns. Real processes, a real SIGKILL.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from phone_agent.storage.db import create_engine, session_factory
from phone_agent.storage.tables import Call, Caller, CallTurn, Memory
from phone_agent.telephony.stream_token import issue_stream_token
from tests.fakes.audio import speech_wav
from tests.fakes.elevenlabs import FakeElevenLabs
from tests.fakes.media_stream_caller import MediaStreamCaller
from tests.fakes.openai import FakeOpenAI
from tests.fakes.twilio_rest import new_sid
from tests.running_agent import SHORT_GREETINGS, agent_env
from tests.security.agent_process import agent_process

SECRET = "voice-tests-secret"  # agent_env's session secret
CALLER = "+15551230001"
FACTS = {"name": "Maria Lopez", "facts": [{"key": "party_size", "content": "Books tables for two."}]}


async def _rows(database: Path, statement: Any) -> list[Any]:
    engine = create_engine(f"sqlite+aiosqlite:///{database}")
    try:
        async with session_factory(engine)() as session:
            return list((await session.execute(statement)).scalars())
    finally:
        await engine.dispose()


async def _until(what: str, check: Any, timeout: float = 90.0) -> Any:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_killed_process_leaves_no_ghost_call(
    tmp_path: Path, fake_openai: FakeOpenAI, fake_elevenlabs: FakeElevenLabs
) -> None:
    database = tmp_path / "agent.db"
    env = {
        **agent_env(tmp_path, fake_openai, fake_elevenlabs, **SHORT_GREETINGS),
        "DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "PHONE_AGENT_DATA_DIR": str(tmp_path / "data"),
        "PHONE_AGENT_INSTANCE_HEARTBEAT_SECONDS": "0.5",
        "PHONE_AGENT_INSTANCE_DEAD_AFTER_SECONDS": "3",
    }
    fake_openai.transcripts.append("My name is Maria, a table for two tonight please.")
    fake_openai.default_transcript = ""
    fake_openai.script("Of course Maria, a table for two at eight.")
    call_sid = new_sid("CA")
    token = issue_stream_token(SECRET.encode(), call_sid=call_sid, caller=CALLER, ttl_seconds=120)

    with agent_process(tmp_path, env, name="first") as first:
        caller = MediaStreamCaller(
            first.ws_url + "/media-stream",
            custom_parameters={"caller": CALLER, "call_sid": call_sid, "token": token},
            call_sid=call_sid,
            from_number=CALLER,
        )
        async with caller:
            await caller.wait_for_agent_audio(timeout=60)
            await caller.wait_for_quiet(0.5, timeout=60)
            turn = await caller.say_wav(speech_wav("My name is Maria, a table for two tonight please"))
            await caller.wait_for_agent_audio(timeout=60, since=turn.speech_ended)

            async def caller_turn_stored() -> bool:
                turns = await _rows(database, select(CallTurn.role))
                return "caller" in turns

            await _until("the caller's turn to be stored", caller_turn_stored)
            [held] = await _rows(database, select(Call).where(Call.call_sid == call_sid))
            first.proc.kill()  # SIGKILL: no shutdown, no finally, no status callback
            first.proc.wait(timeout=30)
            await caller.wait_for_close(timeout=30)

    assert (held.status, held.ended_at) == ("in-progress", None)
    fake_openai.script(json.dumps(FACTS))  # what the extraction after the crash will read

    with agent_process(tmp_path, env, name="second") as second:

        async def closed() -> Call | None:
            [call] = await _rows(database, select(Call).where(Call.call_sid == call_sid))
            return call if call.ended_at is not None else None

        call = await _until("the ghost call to be closed", closed)

        async def learned() -> list[str]:
            return await _rows(database, select(Memory.content))

        memories = await _until("the crashed call to be learned from", learned)
        assert second.alive()

    assert (call.status, call.end_reason, call.instance_id) == ("completed", "agent_crashed", None)
    assert held.instance_id  # the first process held it
    assert memories == ["Books tables for two."]
    [maria] = await _rows(database, select(Caller).where(Caller.phone == CALLER))
    assert maria.name == "Maria Lopez"
    extraction = fake_openai.chat_requests[-1]["messages"]
    assert "table for two" in json.dumps(extraction)  # learned from the turns stored before the crash
