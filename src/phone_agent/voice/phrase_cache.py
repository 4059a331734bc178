"""Fixed phrases (the greeting) synthesised once per process and replayed from memory.

Every call opens with the same sentence in the same voice, yet a TTS round trip costs the caller
~150 ms of silence (plus the websocket context set-up) before the first word. ``CachedPhrase
ElevenLabsTTSService`` records the audio and word timestamps of every phrase spoken with a
``TTSSpeakFrame`` the first time it is synthesised, keyed by endpoint + voice + model + voice
settings + sample rate + text, and from then on replays it into the same audio context the
websocket would have filled: the rest of the pipeline (playout marks, what-was-heard, the
assistant context) sees exactly the frames it would have seen. LLM replies are never cached.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

from pipecat.frames.frames import Frame, TTSAudioRawFrame, TTSSpeakFrame, TTSStartedFrame, TTSStoppedFrame
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.elevenlabs.tts import ElevenLabsTTSService
from pipecat.utils.context.word_timestamp_tracker import WordTimestamp

MAX_PHRASES = 64
MAX_BYTES = 32 * 1024 * 1024


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


class CachedPhraseElevenLabsTTSService(ElevenLabsTTSService):
    """`ElevenLabsTTSService` that speaks `TTSSpeakFrame` phrases from `PHRASES` once recorded."""

    def __init__(self, *, phrase_cache: PhraseCache | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._phrases = phrase_cache or PHRASES
        self._speaking_phrase = False
        self._recording: dict[str, tuple[str, Phrase]] = {}  # context id -> (key, phrase so far)
        self._replayed: set[str] = set()  # context ids served from the cache (none on the server)

    def phrase_key(self, text: str) -> str:
        """Everything that changes the audio of `text`."""
        settings: Any = self.settings
        return json.dumps(
            [self._url, settings.voice, settings.model, str(settings.language), self.sample_rate,
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
        await super().append_to_audio_context(context_id, frame)

    async def on_audio_context_interrupted(self, context_id: str) -> None:
        self._recording.pop(context_id, None)  # a cut-off phrase is not worth keeping
        await super().on_audio_context_interrupted(context_id)

    async def _close_context(self, context_id: str) -> None:
        if context_id in self._replayed:  # ElevenLabs never saw this context
            return
        await super()._close_context(context_id)
