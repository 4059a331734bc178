"""The provider fakes with fixed latencies, in a process of their own (so the callers' and the bot's
CPU use does not delay them): `FakeOpenAI` (segmented STT + LLM, replying with the shapes of
`bench/replies.py`), `FakeOpenAIRealtimeSTT` (streaming STT: the transcript `--stt` after the
commit), `FakeElevenLabs` (websocket TTS), `FakeDeepgram` and `FakeTwilioREST`, from `tests/fakes/`.

    python -m bench.providers --stt 0.2 --llm-first-token 0.35 --tokens-per-second 40 \
        --tts-first-audio 0.15 --tts-realtime-factor 5

prints one JSON line with every base URL, then answers `dump` on stdin with one JSON line of the
moments (time.monotonic(), comparable across processes on Linux) each fake received a request:
transcriptions and streaming-STT commits, chat completions (with the caller turn and reply shape
of each), TTS contexts opened. `quit` (or EOF) stops it.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, fields
from typing import Any

from tests.fakes.deepgram import FakeDeepgram
from tests.fakes.elevenlabs import FakeElevenLabs
from tests.fakes.openai import FakeOpenAI
from tests.fakes.openai_realtime_stt import FakeOpenAIRealtimeSTT
from tests.fakes.twilio_rest import FakeTwilioREST

from bench.replies import ReplyShapes

DEFAULT_TRANSCRIPT = "Hello, I would like to book an appointment."


@dataclass(frozen=True)
class Latencies:
    """The fakes' configured latencies (seconds; their sum is what no pipeline can beat) and what the
    STT fakes hear every caller say (the agent runs smart-turn only on a pause whose transcript does
    not end a sentence: an unpunctuated transcript measures that)."""

    stt: float = 0.2  # transcript this long after the audio ends
    llm_first_token: float = 0.35
    tokens_per_second: float = 40.0
    tts_first_audio: float = 0.15
    tts_realtime_factor: float = 5.0
    transcript: str = DEFAULT_TRANSCRIPT

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        """The options that set each field (``from_arguments`` reads them back)."""
        defaults = Latencies()
        parser.add_argument("--stt", type=float, default=defaults.stt, help="fake STT latency (s)")
        parser.add_argument("--llm-first-token", type=float, default=defaults.llm_first_token)
        parser.add_argument("--tokens-per-second", type=float, default=defaults.tokens_per_second)
        parser.add_argument("--tts-first-audio", type=float, default=defaults.tts_first_audio)
        parser.add_argument("--tts-realtime-factor", type=float, default=defaults.tts_realtime_factor)
        parser.add_argument(
            "--transcript",
            default=defaults.transcript,
            help="what the STT fakes hear every caller say (no sentence mark: smart-turn runs on every turn)",
        )

    @classmethod
    def from_arguments(cls, args: argparse.Namespace) -> Latencies:
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})

    @property
    def providers_total(self) -> float:
        """STT + LLM first token + TTS first audio."""
        return self.stt + self.llm_first_token + self.tts_first_audio

    def as_args(self) -> list[str]:
        return [
            "--stt", str(self.stt),
            "--llm-first-token", str(self.llm_first_token),
            "--tokens-per-second", str(self.tokens_per_second),
            "--tts-first-audio", str(self.tts_first_audio),
            "--tts-realtime-factor", str(self.tts_realtime_factor),
            "--transcript", self.transcript,
        ]  # fmt: skip


class Providers:
    """The running fakes (in this process)."""

    def __init__(self, latencies: Latencies) -> None:
        self.openai = FakeOpenAI(
            first_token_latency=latencies.llm_first_token,
            tokens_per_second=latencies.tokens_per_second,
            stt_latency=latencies.stt,
        )
        self.replies = ReplyShapes()
        self.openai.reply_for = self.replies
        self.openai.default_transcript = latencies.transcript
        self.openai_stt = FakeOpenAIRealtimeSTT(api_key=self.openai.api_key, stt_latency=latencies.stt)
        self.openai_stt.default_transcript = latencies.transcript
        self.elevenlabs = FakeElevenLabs(
            first_audio_latency=latencies.tts_first_audio, realtime_factor=latencies.tts_realtime_factor
        )
        self.elevenlabs.max_contexts = 1000  # one connection per call; never the bottleneck
        self.deepgram = FakeDeepgram(stt_latency=latencies.stt)
        self.deepgram.default_transcript = latencies.transcript
        self.twilio = FakeTwilioREST()
        self.all = (self.openai, self.openai_stt, self.elevenlabs, self.deepgram, self.twilio)

    def start(self) -> Providers:
        for fake in self.all:
            fake.start()
        return self

    def stop(self) -> None:
        for fake in self.all:
            fake.stop()

    def urls(self) -> dict[str, str]:
        return {
            "openai": self.openai.url + "/v1",
            "openai_api_key": self.openai.api_key,
            "openai_realtime_stt": self.openai_stt.ws_url + "/v1/realtime",
            "elevenlabs_ws": self.elevenlabs.ws_url,
            "elevenlabs_http": self.elevenlabs.url,
            "elevenlabs_api_key": self.elevenlabs.api_key,
            "deepgram": self.deepgram.ws_url,
            "deepgram_api_key": self.deepgram.api_key,
            "twilio": self.twilio.url,
            "twilio_account_sid": self.twilio.account_sid,
            "twilio_auth_token": self.twilio.auth_token,
        }

    def moments(self) -> dict[str, list[Any]]:
        """When each fake received the requests that matter for latency accounting."""
        requests = list(self.openai.requests)
        segmented = [r.at for r in requests if r.path.endswith("/audio/transcriptions")]
        return {
            "stt": sorted(segmented + [c.at for c in list(self.openai_stt.commits)]),
            "llm": sorted(r.at for r in requests if r.path.endswith("/chat/completions")),
            "tts": sorted(c.opened_at for c in list(self.elevenlabs.contexts.values())),
            "replies": self.replies.snapshot(),  # (at, caller turn, shape) per chat completion
        }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Provider fakes with fixed latencies.")
    Latencies.add_arguments(parser)
    latencies = Latencies.from_arguments(parser.parse_args(argv))
    providers = Providers(latencies).start()
    _emit({"urls": providers.urls(), "latencies": asdict(latencies)})
    try:
        for line in sys.stdin:
            command = line.strip()
            if command == "dump":
                _emit(providers.moments())
            elif command == "quit":
                break
    finally:
        providers.stop()


def _emit(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
