"""The baseline: a stock Pipecat Twilio bot, built the way Pipecat's own `twilio-chatbot/inbound`
example builds it (FastAPI websocket, `parse_telephony_websocket`, `TwilioFrameSerializer`,
`FastAPIWebsocketTransport`, Silero VAD in the user aggregator with Pipecat's default smart-turn
stop strategy, STT → user aggregator → LLM → TTS → output), with the example's services swapped for
the ones phone-agent uses: OpenAI STT (segmented), OpenAI LLM, ElevenLabs websocket TTS — every
one pointed at the provider fakes by the URLs on the command line.

    python -m bench.stock_bot --openai-url http://127.0.0.1:P/v1 --elevenlabs-url ws://127.0.0.1:Q \
        --twilio-url http://127.0.0.1:R --twilio-account-sid AC... --port 0

It binds an ephemeral port when `--port 0` and prints `LISTENING <port>` once it accepts calls.
Nothing here is tuned: that is the point of a baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys

import uvicorn
from fastapi import FastAPI, WebSocket
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.frames.frames import LLMRunFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.runner import PipelineRunner
from pipecat.pipeline.task import PipelineParams, PipelineTask
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.runner.utils import parse_telephony_websocket
from pipecat.serializers.twilio import TwilioFrameSerializer
from pipecat.services.elevenlabs.tts import ElevenLabsTTSService
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.services.openai.stt import OpenAISTTService
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport

SYSTEM_PROMPT = (
    "You are a friendly receptionist in a phone call. Your output will be converted to audio so "
    "don't include special characters in your answers. Answer in one or two short sentences."
)


def build_app(args: argparse.Namespace) -> FastAPI:
    """The example's server: one websocket route running one pipeline per call."""
    app = FastAPI()

    @app.websocket("/ws")
    async def websocket_endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        _, call_data = await parse_telephony_websocket(websocket)
        serializer = TwilioFrameSerializer(
            stream_sid=call_data["stream_id"],
            call_sid=call_data["call_id"],
            account_sid=args.twilio_account_sid,
            auth_token=args.twilio_auth_token,
            base_url=args.twilio_url,
        )
        transport = FastAPIWebsocketTransport(
            websocket=websocket,
            params=FastAPIWebsocketParams(
                audio_in_enabled=True,
                audio_out_enabled=True,
                add_wav_header=False,
                serializer=serializer,
            ),
        )
        await run_bot(transport, args)

    return app


async def run_bot(transport: FastAPIWebsocketTransport, args: argparse.Namespace) -> None:
    """The example's `run_bot`, with OpenAI STT/LLM and ElevenLabs TTS."""
    stt = OpenAISTTService(api_key=args.openai_api_key, base_url=args.openai_url)
    llm = OpenAILLMService(
        api_key=args.openai_api_key,
        base_url=args.openai_url,
        settings=OpenAILLMService.Settings(system_instruction=SYSTEM_PROMPT),
    )
    tts = ElevenLabsTTSService(
        api_key=args.elevenlabs_api_key,
        url=args.elevenlabs_url,
        settings=ElevenLabsTTSService.Settings(voice=args.voice_id),
    )
    context = LLMContext()
    user_aggregator, assistant_aggregator = LLMContextAggregatorPair(
        context, user_params=LLMUserAggregatorParams(vad_analyzer=SileroVADAnalyzer())
    )
    pipeline = Pipeline(
        [
            transport.input(),
            stt,
            user_aggregator,
            llm,
            tts,
            transport.output(),
            assistant_aggregator,
        ]
    )
    task = PipelineTask(
        pipeline,
        params=PipelineParams(
            audio_in_sample_rate=8000,
            audio_out_sample_rate=8000,
            enable_metrics=True,
            enable_usage_metrics=True,
        ),
    )

    @transport.event_handler("on_client_connected")
    async def on_client_connected(_transport: object, _client: object) -> None:
        context.add_message({"role": "user", "content": "Please introduce yourself to the user."})
        await task.queue_frames([LLMRunFrame()])

    @transport.event_handler("on_client_disconnected")
    async def on_client_disconnected(_transport: object, _client: object) -> None:
        await task.cancel()

    runner = PipelineRunner(handle_sigint=False, force_gc=True)
    await runner.run(task)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--openai-url", required=True, help="OpenAI base URL (…/v1)")
    parser.add_argument("--openai-api-key", default="sk-fake-openai")
    parser.add_argument("--elevenlabs-url", required=True, help="ElevenLabs websocket base (ws://…)")
    parser.add_argument("--elevenlabs-api-key", default="fake-xi-key")
    parser.add_argument("--voice-id", default="21m00Tcm4TlvDq8ikWAM")
    parser.add_argument("--twilio-url", required=True, help="Twilio REST base URL (for hang-up)")
    parser.add_argument("--twilio-account-sid", required=True)
    parser.add_argument("--twilio-auth-token", default="fake-auth-token")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = an ephemeral port")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    config = uvicorn.Config(build_app(args), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)

    async def serve() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():  # noqa: ASYNC110 - uvicorn has no started event
            await asyncio.sleep(0.01)
        print(f"LISTENING {sock.getsockname()[1]}", flush=True)
        await task

    asyncio.run(serve())
    sys.exit(0)


if __name__ == "__main__":
    main()
