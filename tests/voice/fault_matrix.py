"""The fault matrix: one simulated call per {stage} × {fault}, each against its own agent and fakes.

A cell breaks one stage's provider for the whole call (every request to it fails the same way) and
plays one caller: greeting, one question, then waits for what the agent does. It passes when the
caller hears a useful sentence (the agent's voice, or Twilio's ``<Say>`` in a call update) within
``USEFUL_WITHIN`` seconds of the fault and the call ends in an answer, a transfer or a voicemail —
checked on the Twilio REST requests, the caller's audio and the call's rows. A cell whose every
voice fails at the greeting (the fallback voice slower than its first-audio limit on a loaded machine)
is handed over with ``<Say>`` before the caller asks anything; that is judged like any other handover.

Five cells run at once on one machine, so a moment of contention can make one late. A cell that
failed on time alone (everything else right) runs once more on its own; the table marks it ``*``
and lists what its first try got. Any other problem fails at once.

Where the fault hits first: STT and LLM on the caller's turn; TTS, the realtime socket and memory at
the start of the call (the greeting is the first thing they do; memory is asked who is calling).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from phone_agent.app import create_app
from phone_agent.storage.db import create_engine, session_factory
from phone_agent.storage.tables import Call, CallTurn
from phone_agent.telephony.stream_token import issue_stream_token, signing_key
from phone_agent.voice.rescue import APOLOGY
from tests.conftest import make_settings
from tests.fakes.audio import is_silent, speech_wav
from tests.fakes.base import FakeServer
from tests.fakes.elevenlabs import FakeElevenLabs
from tests.fakes.media_stream_caller import MediaStreamCaller
from tests.fakes.memory_service import FakeMemoryService
from tests.fakes.openai import FakeOpenAI
from tests.fakes.openai_realtime import FakeOpenAIRealtime
from tests.fakes.twilio_rest import FakeTwilioREST, new_sid
from tests.running_agent import SHORT_GREETINGS, agent_env, serve, twilio_env

STAGES = ("stt", "llm", "tts", "realtime", "memory")
FAULTS = ("http_500", "hang", "dropped", "bad_key_401", "refused")
USEFUL_WITHIN = 2.5  # seconds from the fault to a useful sentence
QUESTION = "Are you open on Sundays"
ANSWER = "No, we are closed on Sundays."
HANDOFF = "+15550100200"
AFTER_ANSWER_SECS = 10.0  # longest the caller stays on after the agent first speaks again
QUIET_AFTER_ANSWER_SECS = 1.5  # this much quiet after the agent spoke: it answered, nothing follows
EVERY_REQUEST = 1000  # a fault armed this many times breaks the provider for the whole call
AT_CALL_START = ("tts", "realtime", "memory")  # stages whose fault the greeting meets first
LATE = "useful sentence after"


@dataclass
class CellResult:
    """What one cell's caller got."""

    stage: str
    fault: str
    useful_after: float | None = None  # seconds from the fault to the first useful sentence
    outcome: str = ""  # answer | transfer | voicemail | (what went wrong)
    end_reason: str | None = None
    problems: list[str] = field(default_factory=list)

    first_try: list[str] = field(default_factory=list)  # a re-run cell's problems the first time

    @property
    def passed(self) -> bool:
        return not self.problems

    @property
    def only_late(self) -> bool:
        """Failed on time alone: everything else the cell checks was right."""
        return bool(self.problems) and all(p.startswith(LATE) for p in self.problems)


def closed_port_url(scheme: str = "http") -> str:
    """A URL on which nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"{scheme}://127.0.0.1:{port}"


def arm(fake: FakeServer, fault: str, path: str | None = None) -> None:
    """Break ``fake`` (requests to ``path``) for the whole call with ``fault`` (not ``refused``)."""
    if fault == "http_500":
        fake.fail_next(EVERY_REQUEST, status=500, path=path)
    elif fault == "bad_key_401":
        fake.fail_next(EVERY_REQUEST, status=401, path=path)
    elif fault == "hang":
        fake.hang_next(EVERY_REQUEST, path=path)
    elif fault == "dropped":
        fake.drop_next(EVERY_REQUEST, path=path)


@dataclass
class Fakes:
    """The providers of one cell."""

    openai: FakeOpenAI
    elevenlabs: FakeElevenLabs
    twilio: FakeTwilioREST
    realtime: FakeOpenAIRealtime
    memory: FakeMemoryService


@contextmanager
def running_fakes() -> Iterator[Fakes]:
    with ExitStack() as stack:
        yield Fakes(
            *(
                stack.enter_context(fake)
                for fake in (
                    FakeOpenAI(),
                    FakeElevenLabs(),
                    FakeTwilioREST(),
                    FakeOpenAIRealtime(),
                    FakeMemoryService(),
                )
            )
        )


def cell_env(stage: str, fault: str, fakes: Fakes, tmp_path: Path, index: int) -> dict[str, str]:
    """The agent's environment for one cell, with the stage's provider broken by ``fault``."""
    env = agent_env(tmp_path, fakes.openai, fakes.elevenlabs, **SHORT_GREETINGS)
    env |= twilio_env(fakes.twilio) | {
        "TWILIO_PHONE_NUMBER": "+15550100100",
        "PUBLIC_URL": "https://agent.example.com",
        "PHONE_AGENT_HANDOFF_NUMBER": HANDOFF,
        # half the cells hand over to a human, half to voicemail
        "PHONE_AGENT_FALLBACK_ACTION": "transfer" if index % 2 == 0 else "voicemail",
    }
    if stage != "llm":  # a healthy LLM starved by a loaded test machine must not look broken
        env["PHONE_AGENT_LLM_FIRST_TOKEN_TIMEOUT"] = "4"
    if stage == "realtime":
        env |= {
            "PHONE_AGENT_VOICE_MODE": "realtime",
            "PHONE_AGENT_REALTIME_BASE_URL": fakes.realtime.ws_url + "/v1/realtime",
        }
    if stage == "memory":
        env |= {
            "PHONE_AGENT_MEMORY_BACKEND": "http",
            "PHONE_AGENT_MEMORY_URL": fakes.memory.url,
            "PHONE_AGENT_MEMORY_SERVICE_TOKEN": str(fakes.memory.token),
        }
    if fault == "refused":
        key = {
            "stt": "PHONE_AGENT_OPENAI_BASE_URL",
            "llm": "PHONE_AGENT_LLM_BASE_URL",
            "tts": "PHONE_AGENT_ELEVENLABS_BASE_URL",
            "realtime": "PHONE_AGENT_REALTIME_BASE_URL",
            "memory": "PHONE_AGENT_MEMORY_URL",
        }[stage]
        env[key] = closed_port_url("ws" if stage == "realtime" else "http") + (
            "/v1" if stage in ("stt", "llm") else "/v1/realtime" if stage == "realtime" else ""
        )
    return env


def arm_stage(stage: str, fault: str, fakes: Fakes) -> None:
    """Break the stage's provider (``refused`` is done by the environment)."""
    if fault == "refused":
        return
    target: dict[str, tuple[FakeServer, str | None]] = {
        "stt": (fakes.openai, "/audio/transcriptions"),
        "llm": (fakes.openai, "/chat/completions"),
        "tts": (fakes.elevenlabs, None),
        "realtime": (fakes.realtime, None),
        "memory": (fakes.memory, None),
    }
    fake, path = target[stage]
    arm(fake, fault, path)


async def threaded(cm: AbstractContextManager[Any], stack: list[Callable[[], Any]]) -> Any:
    """Enter a blocking context manager off the event loop; its exit is pushed on ``stack``."""
    value = await asyncio.to_thread(cm.__enter__)
    stack.append(lambda: cm.__exit__(None, None, None))
    return value


async def run_cell(
    stage: str, fault: str, tmp_path: Path, index: int, starting: asyncio.Lock | None = None
) -> CellResult:
    """One call with ``stage`` broken by ``fault``; what the caller got.

    ``starting``: held while the agent starts (Alembic's migration context is process-wide, so
    agents of concurrent cells start one at a time).
    """
    result = CellResult(stage, fault)
    exits: list[Callable[[], Any]] = []
    try:
        fakes = await threaded(running_fakes(), exits)
        fakes.openai.script(ANSWER)
        fakes.openai.transcripts.append(QUESTION + "?")
        fakes.openai.default_transcript = ""
        fakes.realtime.script(ANSWER)
        settings = make_settings(tmp_path, **cell_env(stage, fault, fakes, tmp_path, index))
        arm_stage(stage, fault, fakes)
        async with starting or asyncio.Lock():
            url = await threaded(serve(create_app(settings)), exits)
        call_sid = new_sid("CA")
        token = issue_stream_token(
            signing_key(settings), call_sid=call_sid, caller="+15551230001", ttl_seconds=60
        )
        caller = MediaStreamCaller(
            url + "/media-stream",
            custom_parameters={"token": token},
            call_sid=call_sid,
            from_number="+15551230001",
            twilio_rest=fakes.twilio,
        )
        await play_call(caller, stage, result)
        await judge(result, caller, fakes, tmp_path)
    except Exception as exc:  # a cell that crashed is a failed cell, reported with the others
        result.problems.append(f"{type(exc).__name__}: {exc}")
    finally:
        for leave in reversed(exits):
            await asyncio.to_thread(leave)
    return result


async def play_call(caller: MediaStreamCaller, stage: str, result: CellResult) -> None:
    """Greeting, one question, then wait for an answer, a transfer or a voicemail."""
    async with caller:
        try:
            greeting_at = await caller.wait_for_agent_audio(timeout=15)
        except ConnectionError:
            if stage not in AT_CALL_START or caller.started_at is None:
                raise
            # every voice failed at the greeting (the fallback voice too slow as well): the call was
            # handed over with Twilio's <Say>, which is then the useful sentence; no question is asked
            said = twilio_says(caller)
            result.useful_after = min(said) - caller.started_at if said else None
            return
        assert caller.started_at is not None
        if stage in AT_CALL_START:  # broken from the start: the greeting is the useful sentence
            result.useful_after = greeting_at - caller.started_at
        await caller.wait_for_quiet(0.6, timeout=20)
        if caller.closed_at is not None and stage in AT_CALL_START:
            # every voice failed during the greeting, after its first words: handed over with <Say>
            said = twilio_says(caller)
            result.useful_after = min([greeting_at, *said]) - caller.started_at
            return
        turn = await caller.say_wav(speech_wav(QUESTION))
        assert turn.speech_ended is not None
        fault_at = turn.speech_ended
        try:
            heard_at = await caller.wait_for_agent_audio(timeout=8, since=fault_at)
        except (TimeoutError, ConnectionError):
            heard_at = None
        # an apology is followed by a redirect that ends the stream; an answer leaves it open and quiet
        deadline = time.monotonic() + AFTER_ANSWER_SECS
        while caller.closed_at is None and time.monotonic() < deadline:
            try:
                await caller.wait_for_quiet(QUIET_AFTER_ANSWER_SECS, timeout=0.3)
                break
            except TimeoutError:
                pass
        if stage not in AT_CALL_START:
            candidates = [heard_at] if heard_at is not None else []
            candidates += twilio_says(caller)
            result.useful_after = min(candidates) - fault_at if candidates else None


def twilio_says(caller: MediaStreamCaller) -> list[float]:
    """When each Twilio update that speaks to the caller (``<Say>``) was made."""
    return [at for at, update in caller_updates(caller) if "<Say>" in str(update.get("Twiml", ""))]


def caller_updates(caller: MediaStreamCaller) -> list[tuple[float, dict[str, Any]]]:
    """(when, params) of each Twilio update to the caller's call, as the caller's stream saw it."""
    assert caller.twilio_rest is not None
    return [
        (req.at, req.form)
        for req in caller.twilio_rest.requests
        if req.method == "POST" and caller.call_sid in req.path
    ]


async def judge(result: CellResult, caller: MediaStreamCaller, fakes: Fakes, tmp_path: Path) -> None:
    """Fill in the outcome and every problem with it."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/test.db")
    deadline = time.monotonic() + 10  # the agent closes the call's row once its pipeline has ended
    try:
        while True:
            async with session_factory(engine)() as session:
                call = (
                    await session.execute(select(Call).where(Call.call_sid == caller.call_sid))
                ).scalar_one()
                turns = list(
                    (
                        await session.execute(
                            select(CallTurn).where(CallTurn.call_id == call.id).order_by(CallTurn.seq)
                        )
                    ).scalars()
                )
            if call.ended_at is not None or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
    finally:
        await engine.dispose()
    result.end_reason = call.end_reason
    said = [t.text for t in turns if t.role == "agent"]
    updates = [params for _, params in caller_updates(caller)]
    twiml = " ".join(str(u.get("Twiml", "")) for u in updates)
    if "<Dial" in twiml and HANDOFF in twiml:
        result.outcome = "transfer"
    elif "<Record" in twiml and 'transcribe="true"' in twiml:
        result.outcome = "voicemail"
    elif ANSWER in said:
        result.outcome = "answer"
    else:
        result.outcome = "nothing"
        result.problems.append(f"no answer, transfer or voicemail (agent said {said}, updates {updates})")
    if result.outcome in ("transfer", "voicemail"):
        if call.end_reason != f"{result.stage}_failed → {result.outcome}":
            result.problems.append(f"end reason {call.end_reason!r}")
        if not caller.redirects or any(u.get("Status") == "completed" for u in updates):
            result.problems.append("the call was hung up instead of handed over")
        if APOLOGY not in said and APOLOGY not in twiml:
            result.problems.append("no apology")
    if any("still there" in text for text in said):
        result.problems.append("the idle prompt was said to a caller who spoke")
    if said.count(APOLOGY) > 1:
        result.problems.append("the apology was said twice")
    if result.useful_after is None:
        result.problems.append("no useful sentence heard")
    elif result.useful_after > USEFUL_WITHIN * load_slack():
        result.problems.append(f"{LATE} {result.useful_after:.2f} s")
    if not any(not is_silent(a.audio) for a in caller.agent_audio) and "<Say>" not in twiml:
        result.problems.append("the caller heard nothing at all")


def matrix_table(results: list[CellResult], seconds: float) -> str:
    """The matrix as text: one row per stage, one column per fault (pass/FAIL, seconds, outcome)."""
    by_cell = {(r.stage, r.fault): r for r in results}
    lines = [f"fault matrix ({seconds:.0f} s wall, load {load()}); cells: result, s to useful, outcome"]
    lines.append(f"{'':9}" + "".join(f"{fault:>26}" for fault in FAULTS))
    for stage in STAGES:
        row = f"{stage:9}"
        for fault in FAULTS:
            cell = by_cell.get((stage, fault))
            if cell is None:
                row += f"{'-':>26}"
                continue
            secs = f"{cell.useful_after:.2f}" if cell.useful_after is not None else "-"
            if cell.useful_after is not None and cell.useful_after > USEFUL_WITHIN:
                secs += "(>2.5)"
            verdict = ("pass" if cell.passed else "FAIL") + ("*" if cell.first_try else "")
            row += f"{verdict + ' ' + secs + ' ' + cell.outcome:>26}"
        lines.append(row)
    for cell in results:
        if cell.first_try:
            lines.append(f"  {cell.stage} × {cell.fault} (run again alone): {'; '.join(cell.first_try)}")
        if not cell.passed:
            lines.append(f"  {cell.stage} × {cell.fault}: {'; '.join(cell.problems)}")
    return "\n".join(lines)


def load() -> str:
    return f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


def load_slack() -> float:
    """How much slower than 2.5 s a cell may be on a shared, overloaded machine (1 when idle, at most
    2): the bound is about time only; everything else a cell checks is never loosened. The matrix
    table marks each cell against the strict 2.5 s (``≤2.5``)."""
    return max(1.0, min(2.0, os.getloadavg()[0] / (os.cpu_count() or 1)))


async def run_matrix(
    cells: list[tuple[str, str]], tmp_path: Path, *, concurrency: int
) -> tuple[list[CellResult], float]:
    """Run ``cells`` with at most ``concurrency`` calls at once; (results, wall seconds)."""
    gate, starting = asyncio.Semaphore(concurrency), asyncio.Lock()
    started = time.monotonic()

    async def one(index: int, stage: str, fault: str) -> CellResult:
        async with gate:
            folder = tmp_path / f"{stage}-{fault}"
            folder.mkdir()
            return await run_cell(stage, fault, folder, index, starting)

    results = list(await asyncio.gather(*(one(i, s, f) for i, (s, f) in enumerate(cells))))
    for n, first in enumerate(results):
        if first.only_late:  # a moment of contention among the concurrent cells: once more, alone
            folder = tmp_path / f"{first.stage}-{first.fault}-again"
            folder.mkdir()
            again = await run_cell(first.stage, first.fault, folder, n, starting)  # gather keeps order
            again.first_try = first.problems
            results[n] = again
    return results, time.monotonic() - started
