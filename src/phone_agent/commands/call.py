"""``phone-agent call URL``: talk to a running agent without a phone and see where the time goes."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from phone_agent.errors import ConfigError, PhoneAgentError

if TYPE_CHECKING:  # the voice stack (Pipecat) loads when a call is placed, not at CLI start
    from phone_agent.voice.dial import CallReport, Utterance

console = Console(soft_wrap=True, highlight=False)

SCRIPT_HELP = "Text file: one caller line per line; 'wav: path.wav' plays a WAV; '#' starts a comment."


def _default_auth_token() -> str | None:
    from phone_agent.config import load_settings

    try:
        return load_settings(os.environ).secret("twilio_auth_token")
    except ConfigError:
        return None


def script_lines(say: list[str], script: Path | None, wavs: list[Path]) -> list[str]:
    """Caller lines from --say, the script file and --wav, in that order (WAV paths resolved)."""
    lines = list(say)
    if script is not None:
        try:
            text = script.read_text(encoding="utf-8")
        except OSError as exc:
            raise PhoneAgentError(f"{script}: cannot read the script ({exc.strerror}).") from exc
        for line in (raw.strip() for raw in text.splitlines()):
            if not line or line.startswith("#"):
                continue
            if line.lower().startswith("wav:"):
                path = Path(line[4:].strip())
                line = f"wav: {path if path.is_absolute() or path.exists() else script.parent / path}"
            lines.append(line)
    lines += [f"wav: {path}" for path in wavs]
    return lines


async def _utterances(lines: list[str]) -> list[Utterance]:
    from phone_agent.voice.dial import text_utterance, wav_utterance

    result = []
    for line in lines:
        if line.lower().startswith("wav:"):
            result.append(await wav_utterance(Path(line[4:].strip())))
        else:
            result.append(await text_utterance(line))
    return result


def _ms(marks: dict[str, Any], a: str, b: str) -> str:
    if a in marks and b in marks:
        return f"{marks[b] - marks[a]:.0f}"
    return "-"


async def _stored_turns(call_sid: str) -> list[Any]:
    """The call's turns from this machine's database, once the agent has closed the call."""
    from sqlalchemy import select

    from phone_agent.config import load_settings
    from phone_agent.storage.db import create_engine, session_factory
    from phone_agent.storage.tables import Call, CallTurn

    settings = load_settings(os.environ)
    engine = create_engine(settings.database_url)
    try:
        sessions = session_factory(engine)
        for _ in range(50):
            async with sessions() as session:
                call = (
                    await session.execute(select(Call).where(Call.call_sid == call_sid))
                ).scalar_one_or_none()
                if call is not None and call.ended_at is not None:
                    query = select(CallTurn).where(CallTurn.call_id == call.id).order_by(CallTurn.seq)
                    return list((await session.execute(query)).scalars())
            await asyncio.sleep(0.1)
        return []
    finally:
        await engine.dispose()


async def _local_problems() -> list[str]:
    """What stops a call with this machine's settings (the agent called is usually this one)."""
    from phone_agent.commands.common import settings_with_overrides
    from phone_agent.config import load_settings
    from phone_agent.voice.readiness import voice_path_problems

    try:
        settings = await settings_with_overrides(load_settings(os.environ))
    except ConfigError:
        return []
    return voice_path_problems(settings)


def _print_report(report: CallReport) -> None:
    if report.greeting_latency is None:
        console.print("agent   (no greeting heard)")
    else:
        console.print(
            f"agent   greeting: first audio {report.greeting_latency:.2f} s after the stream started, "
            f"{report.greeting_secs:.1f} s of speech",
            highlight=False,
        )
    for turn in report.turns:
        console.print(f"caller  {turn.said!r} ({turn.speech_secs:.1f} s)", highlight=False)
        if turn.voice_to_voice is None:
            console.print("agent   (no answer)")
        else:
            console.print(
                f"agent   answered {turn.voice_to_voice:.2f} s after the caller stopped (voice-to-voice), "
                f"{turn.agent_speech_secs:.1f} s of speech",
                highlight=False,
            )
    ending = "the agent hung up" if report.closed_by_agent else "we hung up"
    console.print(
        f"call ended ({ending}); {report.marks_echoed} marks played, {report.clears} clears", highlight=False
    )


def _print_transcript(turns: list[Any]) -> None:
    console.print("\ntranscript (agent's database; timings in ms):")
    for turn in turns:
        marks = turn.marks or {}
        line = f"  {turn.role:6}  {turn.text}"
        if turn.interrupted:
            line += "  [interrupted]"
        console.print(line, highlight=False, soft_wrap=True)
        if turn.role == "agent" and "caller_stopped" in marks:
            console.print(
                f"          stt {_ms(marks, 'caller_stopped', 'stt_final')} · "
                f"llm first token {_ms(marks, 'stt_final', 'llm_first_token')} · "
                f"tts first audio {_ms(marks, 'llm_first_token', 'tts_first_audio')} · "
                f"sent {_ms(marks, 'tts_first_audio', 'first_audio_sent')} · "
                f"caller stopped → audio sent {_ms(marks, 'caller_stopped', 'first_audio_sent')}",
                highlight=False,
            )


def call(
    url: Annotated[str, typer.Argument(help="Base URL of the running agent, e.g. http://localhost:5000.")],
    say: Annotated[list[str] | None, typer.Option("--say", help="A caller line (repeatable).")] = None,
    script: Annotated[Path | None, typer.Option(help=SCRIPT_HELP)] = None,
    wav: Annotated[list[Path] | None, typer.Option(help="A WAV file of caller speech (repeatable).")] = None,
    auth_token: Annotated[
        str | None, typer.Option(help="Twilio auth token the agent checks (default: TWILIO_AUTH_TOKEN).")
    ] = None,
    caller: Annotated[str, typer.Option("--from", help="Caller number to present.")] = "+15005550006",
    transcript: Annotated[
        bool, typer.Option(help="Print the stored transcript when the agent's database is reachable.")
    ] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each answer.")] = 30.0,
) -> None:
    """Call a running agent through the Twilio Media Stream protocol and print each turn's timings."""
    token = auth_token or _default_auth_token()
    if not token:
        console.print(
            "[bold red]error:[/] the agent checks Twilio signatures: "
            "pass --auth-token or set TWILIO_AUTH_TOKEN."
        )
        raise typer.Exit(2)
    try:
        lines = script_lines(say or [], script, wav or [])
    except PhoneAgentError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None

    from phone_agent.voice.dial import NotAnswered, dial

    async def run() -> tuple[CallReport, list[Any]]:
        utterances = await _utterances(lines)
        report = await dial(url, utterances, auth_token=token, caller=caller, reply_timeout=timeout)
        stored: list[Any] = []
        if transcript:
            try:
                stored = await _stored_turns(report.call_sid)
            except Exception:  # a remote agent's database is not ours to read
                stored = []
        return report, stored

    try:
        report, stored = asyncio.run(run())
    except NotAnswered as exc:
        problems = asyncio.run(_local_problems())
        if not problems:
            console.print(f"[bold red]error:[/] {exc}", highlight=False)
            raise typer.Exit(1) from None
        console.print(
            f"[bold red]error:[/] {exc} With this machine's settings the agent cannot take a call: "
            f"{'; '.join(problems)}. Set what is missing where the agent runs (its environment, "
            "config.json or the admin page) and restart it.",
            highlight=False,
        )
        raise typer.Exit(2) from None
    except PhoneAgentError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    console.print(f"called {url} → {report.stream_url} (call {report.call_sid})", highlight=False)
    _print_report(report)
    if stored:
        _print_transcript(stored)
