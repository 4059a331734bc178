"""The caller driver: N simulated callers on the real Media Stream protocol (`MediaStreamCaller`),
each hearing the greeting, then speaking espeak-ng utterances paced in real time and waiting for
the agent's whole answer before the next one. Records what a caller can observe: when its speech
ended, when agent audio arrived, every outbound frame's arrival time and size.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from tests.fakes.audio import is_silent, read_ulaw_frames, speech_wav
from tests.fakes.media_stream_caller import MediaStreamCaller

UTTERANCES = (
    "Hi there, I would like to book an appointment for next Tuesday.",
    "Tomorrow at ten please.",
    "Can you tell me your opening hours on Saturday?",
    "Thanks, that is all.",
)
ANSWER_TIMEOUT = 12.0  # smart-turn may wait for more speech before it answers; count it, don't hang
BURST_GAP = 0.3  # seconds without agent audio that separate two utterances of the agent


@dataclass
class CallPlan:
    """Where one call connects: the websocket URL and Twilio's `customParameters`."""

    ws_url: str
    custom_parameters: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    call_sid: str | None = None
    from_number: str = "+15005550006"


@dataclass
class TurnResult:
    label: str
    speech_ended: float | None
    first_agent_audio: float | None
    talked_over: bool

    @property
    def voice_to_voice(self) -> float | None:
        if self.speech_ended is None or self.first_agent_audio is None:
            return None
        return self.first_agent_audio - self.speech_ended


@dataclass
class CallResult:
    """Everything one simulated call observed (times are time.monotonic())."""

    index: int
    started_at: float | None = None
    greeting_latency: float | None = None
    turns: list[TurnResult] = field(default_factory=list)
    frames: list[tuple[float, int]] = field(default_factory=list)  # (arrival, bytes) of agent media
    ended_at: float | None = None
    error: str | None = None


# A function returning where call number `index` connects (e.g. after POST /phone/incoming).
PlanCall = Callable[[int], Awaitable[CallPlan]]
Utterance = tuple[str, list[bytes]]  # the text and its 20 ms mu-law frames


def utterance_frames(texts: tuple[str, ...] = UTTERANCES) -> list[Utterance]:
    """Each utterance rendered once by espeak-ng (cached on disk) as 20 ms mu-law frames."""
    return [(text, read_ulaw_frames(speech_wav(text))) for text in texts]


def rotated(utterances: list[Utterance], index: int) -> list[Utterance]:
    """Call number `index` speaks the utterances starting from a different one, so that over
    consecutive calls every utterance meets every caller-turn position (and reply shape)."""
    if not utterances:
        return utterances
    start = index % len(utterances)
    return utterances[start:] + utterances[:start]


async def run_call(
    index: int,
    plan: CallPlan,
    utterances: list[Utterance],
    *,
    pause: float = 0.6,
    linger: bool = True,
) -> CallResult:
    """One call: greeting, then each utterance after the previous answer has finished playing.
    Without `linger` the caller hangs up as soon as the last answer starts (quick runs)."""
    result = CallResult(index)
    caller = MediaStreamCaller(
        plan.ws_url,
        custom_parameters=plan.custom_parameters,
        extra_headers=plan.headers,
        call_sid=plan.call_sid,
        from_number=plan.from_number,
        open_timeout=30,
    )
    try:
        async with caller:
            result.started_at = caller.started_at
            await _until(lambda: caller.first_agent_audio_at is not None or caller.closed_at is not None, 20)
            result.greeting_latency = caller.greeting_latency
            if utterances or linger:  # a warm-up call hears the whole greeting (it fills caches)
                await caller.wait_for_quiet(pause, timeout=60)
            for i, (text, frames) in enumerate(utterances):
                turn = await caller.say_frames(frames, text)
                await _until(
                    lambda t=turn: t.first_agent_audio is not None or caller.closed_at is not None,  # type: ignore[misc]
                    ANSWER_TIMEOUT,
                )
                if linger or i < len(utterances) - 1:
                    await caller.wait_for_quiet(pause, timeout=60)
    except (TimeoutError, ConnectionError, OSError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        result.ended_at = time.monotonic()
        audible = [a.at for a in caller.agent_audio if not is_silent(a.audio)]
        starts = [t.speech_started for t in caller.turns[1:]] + ([None] if caller.turns else [])
        result.turns = [
            TurnResult(
                t.label, t.speech_ended, reply_onset(audible, t.speech_ended, until), t.agent_talked_over
            )
            for t, until in zip(caller.turns, starts, strict=True)
        ]
        result.frames = [(a.at, len(a.audio)) for a in caller.agent_audio]
    return result


def reply_onset(audible: list[float], t0: float | None, until: float | None) -> float | None:
    """When the agent started answering speech that ended at `t0`: the first audible agent frame
    after `t0` that begins an utterance (no agent audio in the `BURST_GAP` before it) — not the
    tail of an earlier answer still arriving (an agent that fell behind real time) — and before
    the caller spoke again (`until`)."""
    if t0 is None:
        return None
    index = bisect.bisect_right(audible, t0)
    for i in range(index, len(audible)):
        if until is not None and audible[i] >= until:
            return None
        if i == 0 or audible[i] - audible[i - 1] >= BURST_GAP:
            return audible[i]
    return None


async def _until(predicate: Callable[[], bool], timeout: float) -> bool:  # noqa: ASYNC109
    """Poll `predicate` every 10 ms (cheap: no per-frame work) until true or `timeout`."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def run_calls(
    n: int,
    plan_call: PlanCall,
    utterances: list[Utterance],
    *,
    stagger: float,
    rounds: int = 1,
    until: float | None = None,
    linger: bool = True,
) -> list[CallResult]:
    """`n` concurrent callers, started `stagger` seconds apart, each placing `rounds` calls back to
    back; with `until` (a monotonic deadline) they keep calling until then (a soak). Call number
    `index` speaks the utterances `rotated` by `index`."""

    async def slot(i: int) -> list[CallResult]:
        await asyncio.sleep(i * stagger)
        results, k = [], 0
        while True:
            index = i + k * n
            try:
                plan = await plan_call(index)
            except Exception as exc:  # noqa: BLE001 - any webhook failure is a failed call in the report
                results.append(CallResult(index, error=f"webhook: {type(exc).__name__}: {exc}"))
            else:
                pause = 0.5 + 0.1 * (i % 5)
                said = rotated(utterances, index)
                results.append(await run_call(index, plan, said, pause=pause, linger=linger))
            k += 1
            if (until is None and k >= rounds) or (until is not None and time.monotonic() >= until):
                return results

    per_slot = await asyncio.gather(*(slot(i) for i in range(n)))
    return [r for results in per_slot for r in results]
