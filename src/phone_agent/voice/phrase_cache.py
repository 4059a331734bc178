"""Fixed phrases (the greeting) synthesised once per process and replayed from memory.

Every call opens with the same sentence in the same voice, yet a TTS round trip costs the caller
~150 ms of silence (plus the websocket context set-up) before the first word. ``CachedPhrase
ElevenLabsTTSService`` records the audio and word timestamps of every phrase spoken with a
``TTSSpeakFrame`` the first time it is synthesised, keyed by endpoint + voice + model + voice
settings + sample rate + text, and from then on replays it into the same audio context the
websocket would have filled: the rest of the pipeline (playout marks, what-was-heard, the
assistant context) sees exactly the frames it would have seen. LLM replies are never cached.

A ``PhraseStore`` (``<data_dir>/phrases``) keeps the phrases the settings fix for every caller (the
greeting for callers not known by name: never one holding a caller's name) across restarts, so
the first call of a fresh process (a deploy, a restart, another worker) is greeted from memory
too, not after a TTS round trip. ``serve`` records a greeting no process has stored yet while it
starts (``voice/greeting_recording.py``), so a new install's first caller does not wait either.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loguru import logger
from pipecat.frames.frames import Frame, TTSAudioRawFrame, TTSSpeakFrame, TTSStartedFrame, TTSStoppedFrame
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.elevenlabs.tts import ElevenLabsTTSService
from pipecat.utils.context.word_timestamp_tracker import WordTimestamp

MAX_PHRASES = 64
MAX_BYTES = 32 * 1024 * 1024
MAX_STORED = 16  # phrase files kept on disk (the oldest go first)
STORED_DAYS = 30  # a stored phrase is synthesised again after this (the provider's voice may change)


@dataclass
class Phrase:
    """One recorded phrase: its audio chunks and word timestamps (seconds from its start)."""

    chunks: list[bytes] = field(default_factory=list)
    words: list[tuple[str, float, bool]] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(len(c) for c in self.chunks)


class PhraseCache:
    """A small process-wide LRU of recorded phrases (thread-safe: workers may share it)."""

    def __init__(self, max_phrases: int = MAX_PHRASES, max_bytes: int = MAX_BYTES) -> None:
        self._items: OrderedDict[str, Phrase] = OrderedDict()
        self._lock = threading.Lock()
        self.max_phrases, self.max_bytes = max_phrases, max_bytes
        self.hits = self.misses = 0

    def get(self, key: str) -> Phrase | None:
        with self._lock:
            phrase = self._items.get(key)
            if phrase is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return phrase

    def put(self, key: str, phrase: Phrase) -> None:
        with self._lock:
            self._items[key] = phrase
            self._items.move_to_end(key)
            while len(self._items) > self.max_phrases or (
                len(self._items) > 1 and sum(p.size for p in self._items.values()) > self.max_bytes
            ):
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


PHRASES = PhraseCache()


class PhraseStore:
    """Recorded phrases on disk, one file per phrase: a JSON line (key, chunk sizes, words), then
    the audio. Files are replaced atomically, so processes sharing the directory may read and write."""

    def __init__(
        self, directory: Path, *, max_files: int = MAX_STORED, max_days: float = STORED_DAYS
    ) -> None:
        self.directory = directory
        self.max_files, self.max_age_secs = max_files, max_days * 86400

    def path_for(self, key: str) -> Path:
        return self.directory / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.phrase"

    def load(self, key: str) -> Phrase | None:
        """The phrase stored for ``key``; None when there is none, it is too old or unreadable."""
        path = self.path_for(key)
        try:
            if time.time() - path.stat().st_mtime > self.max_age_secs:
                return None
            header, _, audio = path.read_bytes().partition(b"\n")
            meta = json.loads(header)
            if meta["key"] != key or sum(meta["chunks"]) != len(audio):
                return None
            chunks, at = [], 0
            for size in meta["chunks"]:
                chunks.append(audio[at : at + size])
                at += size
            return Phrase(chunks=chunks, words=[(str(w), float(t), bool(s)) for w, t, s in meta["words"]])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:  # a damaged file: synthesise again
            logger.warning(
                "stored phrase {} unreadable ({}): synthesising it again", path.name, type(exc).__name__
            )
            return None

    def save(self, key: str, phrase: Phrase) -> None:
        """Store ``phrase`` for ``key`` (replacing it), keeping at most ``max_files`` files."""
        meta = {"key": key, "chunks": [len(c) for c in phrase.chunks], "words": phrase.words}
        path = self.path_for(key)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            partial.write_bytes(json.dumps(meta).encode() + b"\n" + b"".join(phrase.chunks))
            os.replace(partial, path)
            stored = sorted(self.directory.glob("*.phrase"), key=lambda p: p.stat().st_mtime)
            for old in stored[: max(0, len(stored) - self.max_files)]:
                old.unlink(missing_ok=True)
        except OSError as exc:  # a full or read-only disk: the phrase stays in memory only
            logger.warning("could not store the phrase in {}: {}", self.directory, type(exc).__name__)


class CachedPhraseElevenLabsTTSService(ElevenLabsTTSService):
    """`ElevenLabsTTSService` that speaks `TTSSpeakFrame` phrases from `PHRASES` once recorded."""

    def __init__(
        self,
        *,
        phrase_cache: PhraseCache | None = None,
        phrase_store: PhraseStore | None = None,
        lasting_phrases: Collection[str] = (),
        **kwargs: Any,
    ) -> None:
        """``phrase_store``: where ``lasting_phrases`` (texts the settings fix, never a caller's name)
        are kept across restarts."""
        super().__init__(**kwargs)
        self._phrases = phrase_cache or PHRASES
        self._store = phrase_store
        self._lasting = frozenset(" ".join(t.split()) for t in lasting_phrases)
        self._lasting_keys: set[str] = set()  # keys of the lasting phrases spoken by this service
        self._saving: set[asyncio.Task[None]] = set()
        self._speaking_phrase = False
        self._recording: dict[str, tuple[str, Phrase]] = {}  # context id -> (key, phrase so far)
        self._replayed: set[str] = set()  # context ids served from the cache (none on the server)

    def phrase_key(self, text: str, *, sample_rate: int | None = None) -> str:
        """Everything that changes the audio of `text` (at ``sample_rate``; default: the running one)."""
        settings: Any = self.settings
        rate = sample_rate or self.sample_rate
        return json.dumps(
            [self._url, settings.voice, settings.model, str(settings.language), rate,
             self._voice_settings, text],
            sort_keys=True, default=str,
        )  # fmt: skip

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if not isinstance(frame, TTSSpeakFrame):
            await super().process_frame(frame, direction)
            return
        self._speaking_phrase = True  # Pipecat synthesises the phrase before process_frame returns
        try:
            await super().process_frame(frame, direction)
        finally:
            self._speaking_phrase = False

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
        if not self._speaking_phrase:
            async for frame in super().run_tts(text, context_id):
                yield frame
            return
        key = self.phrase_key(text)
        phrase = self._phrases.get(key)
        store = self._store if " ".join(text.split()) in self._lasting else None
        if store is not None:
            self._lasting_keys.add(key)
            if phrase is None:
                phrase = await asyncio.to_thread(store.load, key)  # recorded by an earlier process
                if phrase is not None:
                    self._phrases.put(key, phrase)
        if phrase is None or self.audio_context_available(context_id):
            self._recording[context_id] = (key, Phrase())
            async for frame in super().run_tts(text, context_id):
                yield frame
            return
        await self.create_audio_context(context_id)
        yield TTSStartedFrame(context_id=context_id)
        self._reset_word_clock()
        self._replayed.add(context_id)
        for chunk in phrase.chunks:
            await self.append_to_audio_context(
                context_id, TTSAudioRawFrame(chunk, self.sample_rate, 1, context_id=context_id)
            )
        for word, at, spaced in phrase.words:
            await self.append_to_audio_context(context_id, WordTimestamp(word, at, context_id, spaced))
        await self.append_to_audio_context(context_id, TTSStoppedFrame(context_id=context_id))
        await self.remove_audio_context(context_id)
        yield None

    async def append_to_audio_context(self, context_id: str | None, frame: Any) -> None:
        recording = self._recording.get(context_id or "")
        if recording is not None:
            key, phrase = recording
            if isinstance(frame, TTSAudioRawFrame) and frame.audio:
                phrase.chunks.append(frame.audio)
            elif isinstance(frame, WordTimestamp):
                phrase.words.append((frame.word, frame.timestamp, frame.includes_inter_frame_spaces))
            elif isinstance(frame, TTSStoppedFrame):
                del self._recording[context_id or ""]
                if phrase.chunks:
                    self._phrases.put(key, phrase)
                    self._keep(key, phrase)
        await super().append_to_audio_context(context_id, frame)

    def _keep(self, key: str, phrase: Phrase) -> None:
        """Write a lasting phrase to the store, off the event loop (the call does not wait for it)."""
        if self._store is None or key not in self._lasting_keys:
            return
        task = asyncio.get_running_loop().create_task(asyncio.to_thread(self._store.save, key, phrase))
        self._saving.add(task)
        task.add_done_callback(self._saving.discard)

    async def settle_saves(self) -> None:
        """Wait until the lasting phrases recorded so far are written to the store."""
        await asyncio.gather(*self._saving, return_exceptions=True)

    async def on_audio_context_interrupted(self, context_id: str) -> None:
        self._recording.pop(context_id, None)  # a cut-off phrase is not worth keeping
        await super().on_audio_context_interrupted(context_id)

    async def _close_context(self, context_id: str) -> None:
        if context_id in self._replayed:  # ElevenLabs never saw this context
            return
        await super()._close_context(context_id)
