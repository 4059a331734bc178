"""The greeting recorded at start-up, so even a new install greets its first caller from memory.

A call opens with the greeting for callers not known by name, and ``voice/phrase_cache.py`` replays
it once it has been synthesised (kept in ``<data_dir>/phrases`` across restarts). Only the first
call ever, or the first after the greeting or the voice changed, waited for ElevenLabs (~190 ms of
silence before the first word). ``serve`` now records it while it starts: the same TTS service a
phone call builds (same websocket, same voice settings, 8 kHz) speaks the greeting in a pipeline of
its own, and the phrase cache records and stores it as it would in a call. That is the request the
first call would have made, made before a caller waits for it; a restart with the phrase stored
makes none and loads the phrase into memory. A greeting or voice changed on the admin page is
recorded the same way as soon as the change is saved, before the next caller hears it.

Nothing here can stop the process from starting: a missing or wrong key, ElevenLabs down or slow
(``RECORD_TIMEOUT_SECS``) leaves the greeting to the first call, as before, with a warning.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from loguru import logger
from pipecat.frames.frames import ErrorFrame, Frame, TTSSpeakFrame, TTSStoppedFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner

from phone_agent.brain.persona import greeting_for
from phone_agent.config import Settings
from phone_agent.voice import phrase_cache
from phone_agent.voice.phrase_cache import CachedPhraseElevenLabsTTSService, PhraseStore
from phone_agent.voice.pipeline import TWILIO_SAMPLE_RATE
from phone_agent.voice.services import PHRASES_DIR, build_primary_tts

RECORD_TIMEOUT_SECS = 5.0


class _UntilSpoken(FrameProcessor):
    """Sets ``done`` once the TTS service has finished the phrase."""

    def __init__(self, done: asyncio.Event) -> None:
        super().__init__()
        self._done = done

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TTSStoppedFrame):
            self._done.set()
        await self.push_frame(frame, direction)


async def record_greeting(settings: Settings, *, timeout_secs: float = RECORD_TIMEOUT_SECS) -> str:
    """Have the phone greeting for unknown callers in the phrase cache and store; says what it did:
    ``stored`` (an earlier process recorded it), ``recorded``, ``not needed`` or why it failed."""
    if settings.voice_mode == "realtime" or settings.voice_stack == "local":
        return "not needed"  # the greeting is spoken by the realtime model or the local voice
    if not settings.secret("elevenlabs_api_key"):
        return "not needed"  # calls speak with the fallback voice (readiness reports the key)
    tts = build_primary_tts(settings)
    if not isinstance(tts, CachedPhraseElevenLabsTTSService):
        return "not needed"
    text = greeting_for(settings)
    key = tts.phrase_key(text, sample_rate=TWILIO_SAMPLE_RATE)
    store = PhraseStore(Path(settings.data_dir) / PHRASES_DIR)
    phrase = await asyncio.to_thread(store.load, key)
    if phrase is not None:
        phrase_cache.PHRASES.put(key, phrase)  # the first call need not read it from disk
        return "stored"
    with _only_one_process(store.directory) as first:
        if not first:  # `serve --workers N`: the other workers read it from the store on a first call
            return "being recorded by another process"
        try:
            problem = await asyncio.wait_for(_speak(tts, text), timeout_secs)
        except TimeoutError:
            problem = f"ElevenLabs did not finish it within {timeout_secs:g} s"
        finally:
            await tts.settle_saves()
    if problem is None and await asyncio.to_thread(store.load, key) is not None:
        return "recorded"
    return f"not recorded: {problem or 'no audio came back'}"


@contextmanager
def _only_one_process(directory: Path) -> Iterator[bool]:
    """Whether this process holds the store's recording lock (released when the block ends)."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / ".recording.lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # closing the file releases the lock


async def _speak(tts: CachedPhraseElevenLabsTTSService, text: str) -> str | None:
    """Speak ``text`` through ``tts`` alone at the phone's rate; the error that stopped it, or None."""
    done = asyncio.Event()
    errors: list[str] = []
    rate = TWILIO_SAMPLE_RATE
    worker = PipelineWorker(
        Pipeline([tts, _UntilSpoken(done)]),
        params=PipelineParams(audio_in_sample_rate=rate, audio_out_sample_rate=rate),
        enable_rtvi=False,
        enable_turn_tracking=False,
        idle_timeout_secs=None,
    )

    @worker.event_handler("on_pipeline_error")
    async def _failed(_worker: Any, frame: ErrorFrame) -> None:
        errors.append(str(frame.error))
        done.set()

    runner = WorkerRunner(handle_sigint=False, handle_sigterm=False)
    await runner.add_workers(worker)
    running = asyncio.create_task(runner.run())
    try:
        await worker.queue_frames([TTSSpeakFrame(text)])
        await done.wait()
        await worker.stop_when_done()  # EndFrame: the websocket is closed as after a call
        await running
    finally:
        if not running.done():
            await worker.cancel(reason="greeting recording stopped")
            await asyncio.gather(running, return_exceptions=True)
    return errors[0] if errors else None


class GreetingRecorder:
    """One process's ``record_greeting`` at start-up and after admin changes, one at a time (changes
    saved in quick succession are recorded in turn); logs the outcome, never raises."""

    def __init__(self) -> None:
        self._one_at_a_time = asyncio.Lock()

    async def __call__(self, settings: Settings) -> None:
        async with self._one_at_a_time:
            await _record_and_log(settings)


async def _record_and_log(settings: Settings) -> None:
    try:
        outcome = await record_greeting(settings)
    except Exception as exc:  # a bug here must not keep the process from taking calls
        logger.warning("greeting not recorded: {}: {}", type(exc).__name__, exc)
        return
    if outcome.startswith("not recorded"):
        logger.warning("greeting {} (the first call will synthesise it)", outcome)
    else:
        logger.info("greeting {}", outcome)
