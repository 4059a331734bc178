"""Realtime mode (``voice_mode = "realtime"``): one OpenAI speech-to-speech model instead of STT→LLM→TTS.

    transport.input → user aggregator → RealtimeFailover → [apology TTS] → OpenAI Realtime
      → PlayoutTracker (marks) → transport.output → assistant aggregator

Pipecat's ``OpenAIRealtimeLLMService`` carries the protocol: caller audio (8 kHz mu-law from the
Twilio serializer, resampled by Pipecat to the service's 24 kHz PCM) is appended to the model's
input buffer; the model's server VAD decides turns, and ``input_audio_buffer.speech_started``
becomes an interruption, which the Twilio serializer turns into ``clear`` (barge-in). Its 24 kHz
audio is resampled back to 8 kHz mu-law by the output transport. The persona is the session's
instructions and the brain's tools its functions (Pipecat runs the function calls); the greeting
(``greeting_for``, by name for a returning caller) is asked for as the first response. Calls and
turns are recorded by the same ``CallRecorder`` as the pipeline mode.

If the realtime connection is refused, drops, or sends no audio within ``FIRST_AUDIO_SECS`` of the
greeting request, the caller is not left in silence: when pipeline mode's providers are configured
the call goes on in pipeline mode on the same stream (voice/handover.py), with what was said so far;
otherwise the fallback voice (OpenAI TTS) apologises and the call ends once the apology has played.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from fastapi import WebSocket
from loguru import logger
from pipecat.frames.frames import (
    EndFrame,
    ErrorFrame,
    Frame,
    InputAudioRawFrame,
    LLMContextFrame,
    LLMMessagesAppendFrame,
    LLMRunFrame,
    TTSSpeakFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext, LLMContextMessage
from pipecat.processors.aggregators.llm_response_universal import (
    AssistantTurnStoppedMessage,
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
    UserTurnMessageAddedMessage,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.openai.realtime import events
from pipecat.services.openai.realtime.llm import OpenAIRealtimeLLMService
from pipecat.turns.user_turn_strategies import ExternalUserTurnStrategies
from pydantic import BaseModel, Field

from phone_agent.brain.builtins import default_registry
from phone_agent.brain.persona import clock_line, greeting_for, persona_prompt
from phone_agent.brain.pipeline import register_tools
from phone_agent.brain.routing.incoming import call_routing, persona_of
from phone_agent.brain.routing.match import intents_of, listens_for_misunderstanding
from phone_agent.brain.routing.tool import route_call_tool
from phone_agent.brain.tools import Tool, ToolContext, read_memory
from phone_agent.config import Settings
from phone_agent.errors import ConfigError, ToolError
from phone_agent.memory.base import CallerContext
from phone_agent.ops import metrics
from phone_agent.ops.provider_health import report_provider_error
from phone_agent.runtime import Runtime
from phone_agent.services import Services
from phone_agent.voice.frame_tap import TappedPipelineWorker
from phone_agent.voice.handover import HandoverWebSocket, pipeline_configured
from phone_agent.voice.idle import IdleCaller
from phone_agent.voice.max_length import CallTimer
from phone_agent.voice.pipeline import (
    TWILIO_SAMPLE_RATE,
    Resume,
    build_serializer,
    drive_call,
    media_stream_transport,
    open_call_with_caller,
    run_call,
)
from phone_agent.voice.playout import PlayoutTracker, SpeechEndWatcher
from phone_agent.voice.recorder import CallRecorder
from phone_agent.voice.routing import DigitGate, call_router
from phone_agent.voice.services import build_fallback_tts
from phone_agent.voice.stream import StreamStart

GREETING_REQUEST = (
    'The phone call has just connected. Greet the caller with exactly these words: "{greeting}"'
)
SAY_REQUEST = 'The caller has been silent. Say exactly these words: "{text}"'
APOLOGY = (
    "I'm sorry, I'm having trouble on this line right now. Please call us back in a few minutes. Goodbye."
)
APOLOGY_PLAY_TIMEOUT_SECS = 20.0
FIRST_AUDIO_SECS = 1.3  # no greeting audio from the realtime model by then: it has failed
TRANSCRIPT_SETTLE_SECS = 0.2  # lets frames already on their way reach the user aggregator
SILENCE_DURATION_MS = 500  # server VAD: quiet that ends the caller's turn


class SearchKnowledgeArgs(BaseModel):
    """Arguments of search_knowledge."""

    query: str = Field(min_length=1, description="What the caller wants to know, in a few words.")


async def search_knowledge(ctx: ToolContext, args: SearchKnowledgeArgs) -> dict[str, object]:
    """The business's documents for the question (the pipeline packs them into every turn instead)."""
    if ctx.memory is None:
        raise ToolError("The documents cannot be searched right now; offer to take a message instead.")
    hits = await read_memory(ctx.memory.search_knowledge(args.query), what="The documents")
    return {"found": [{"title": hit.title, "text": hit.text} for hit in hits]}


SEARCH_KNOWLEDGE = Tool(
    "search_knowledge",
    "Search the business's own documents (prices, menus, policies, directions...). Use it before "
    "answering any question about the business that the instructions do not answer.",
    SearchKnowledgeArgs,
    search_knowledge,
)


class RealtimeCallService(OpenAIRealtimeLLMService):
    """OpenAI Realtime that reports a refused, dropped or closed connection as an error.

    Pipecat logs a failed connect and lets a dropped socket end its receive loop quietly; in a
    phone call either means dead air, so both become an ``ErrorFrame`` (and ``failed``).
    """

    failed: str | None = None
    connected = False  # the socket was ever open (a refused connect has had nothing from the caller)

    async def _connect(self) -> None:
        await super()._connect()
        if self._websocket is None and not self.failed:
            self.failed = "could not connect to the realtime API"
        elif self._websocket is not None:
            self.connected = True

    async def _receive_task_handler(self) -> None:
        reason = "the realtime API closed the connection"
        try:
            await super()._receive_task_handler()
        except Exception as exc:  # a dropped socket, or an event the service could not read
            reason = f"the realtime connection failed: {exc}"
        if not self._disconnecting and not self.failed:
            self.failed = reason
            await self.push_error(error_msg=reason)

    async def _handle_evt_error(self, evt: events.ErrorEvent) -> None:
        self.failed = f"the realtime API sent an error: {evt.error.message}"
        await super()._handle_evt_error(evt)


class RealtimeFailover(FrameProcessor):
    """Sits before the realtime service: on its first error, stops feeding it and runs ``on_failure``."""

    def __init__(
        self,
        *,
        service: RealtimeCallService,
        on_failure: Callable[[str], Coroutine[Any, Any, None]],
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._service, self._on_failure = service, on_failure
        self._failure: asyncio.Task[None] | None = None

    async def ask_to_say(self, text: str) -> None:
        """Have the model say ``text`` (e.g. the idle check-in) as its next response."""
        if self.failed:
            return
        request: LLMContextMessage = {"role": "user", "content": SAY_REQUEST.format(text=text)}
        # downstream of the user aggregator: the service sends the item, the assistant aggregator
        # then asks it for a response (Pipecat's realtime flow for appended messages)
        await self.push_frame(LLMMessagesAppendFrame(messages=[request], run_llm=True))

    @property
    def failed(self) -> bool:
        return self._failure is not None

    def fail(self, reason: str) -> None:
        """Give up on the realtime model for the rest of the call (once)."""
        if self._failure is not None:
            return
        logger.error("realtime mode failed: {}", reason)
        self._service.set_audio_input_paused(True)
        self._failure = self.create_task(self._on_failure(reason), name="realtime-failover")

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, ErrorFrame) and frame.processor is self._service:
            self.fail(self._service.failed or frame.error)
        if self.failed and isinstance(frame, (InputAudioRawFrame, LLMContextFrame)):
            return  # the model is gone: sending it more would only fail again (audio: 50 times a second)
        await self.push_frame(frame, direction)


@dataclass
class RealtimeCall:
    """The running parts of one realtime call."""

    start: StreamStart
    call_id: int
    task: PipelineWorker
    llm: RealtimeCallService
    tracker: PlayoutTracker
    recorder: CallRecorder
    tools: ToolContext
    end_reason: str = "hangup"
    handed_over: bool = False
    timer: CallTimer | None = None


def session_instructions(settings: Settings, caller: CallerContext | None) -> str:
    """The persona prompt, the local time and what we know of the caller: the session's instructions."""
    lines = [persona_prompt(settings), clock_line(settings, datetime.now(UTC))]
    known = caller.summary() if caller is not None else ""
    if known:
        lines.append("What you know about this caller from earlier calls:\n" + known)
    lines.append("You are on a phone call: answer in one or two short spoken sentences.")
    return "\n".join(lines)


def build_realtime_llm(settings: Settings, *, instructions: str) -> RealtimeCallService:
    """Pipecat's OpenAI Realtime service with server VAD, input transcription and our voice."""
    api_key = settings.secret("openai_api_key")
    if not api_key:
        raise ConfigError("openai_api_key is not set: realtime mode needs it (set OPENAI_API_KEY).")
    transcription = (
        events.InputAudioTranscription(model=settings.stt_model)
        if settings.stt_provider == "openai"
        else events.InputAudioTranscription()
    )
    session = events.SessionProperties(
        output_modalities=["audio"],
        audio=events.AudioConfiguration(
            input=events.AudioInput(
                format=events.PCMAudioFormat(),
                transcription=transcription,
                turn_detection=events.TurnDetection(silence_duration_ms=SILENCE_DURATION_MS),
            ),
            output=events.AudioOutput(format=events.PCMAudioFormat(), voice=settings.realtime_voice),
        ),
    )
    return RealtimeCallService(
        api_key=api_key,
        base_url=settings.realtime_base_url,
        settings=RealtimeCallService.Settings(
            model=settings.realtime_model, system_instruction=instructions, session_properties=session
        ),
    )


async def build_realtime_call(
    websocket: HandoverWebSocket, runtime: Runtime, services: Services, start: StreamStart
) -> RealtimeCall:
    """Build the realtime pipeline of one call (nothing runs until ``run_realtime_call``)."""
    (call_id, caller_context), routing = await asyncio.gather(
        open_call_with_caller(runtime, services, start),
        call_routing(services.sessions, call_sid=start.call_sid, caller=start.caller),
    )
    settings = services.settings
    if persona := persona_of(routing.events, routing.rules):  # a persona rule fired at /phone/incoming
        settings = settings.model_copy(update={"instructions": persona})
    greeting = greeting_for(settings, caller_context.name if caller_context else None)

    serializer = build_serializer(settings, start)
    transport = media_stream_transport(cast(WebSocket, websocket), serializer)
    llm = build_realtime_llm(settings, instructions=session_instructions(settings, caller_context))

    async def end_call() -> None:  # the end_call tool: the goodbye has already played
        await hang_up("agent_hangup")

    async def before_transfer() -> None:  # Twilio takes the call elsewhere: end without hanging up
        serializer.keep_call_up()
        call.end_reason = "transferred"

    # the brain's tools, answered by the realtime model through Pipecat's function calling
    tool_ctx = services.tool_context(
        caller_phone=start.caller,
        tasks=runtime.tasks,
        caller_name=caller_context.name if caller_context else None,
        call_sid=start.call_sid,
        call_id=call_id,
        channel="phone",
        on_hang_up=end_call,
        before_transfer=before_transfer,
    )
    registry = default_registry()
    registry.add(SEARCH_KNOWLEDGE)  # one model answers at once: it looks knowledge up when it needs it
    intents, unclear = intents_of(routing.rules), listens_for_misunderstanding(routing.rules)
    if intents or unclear:
        registry.add(route_call_tool(intents, unclear=unclear))
    tools = register_tools(llm, registry, tool_ctx)
    apology_voice = build_fallback_tts(settings, http=services.http)  # HTTP per utterance: free until used
    tracker = PlayoutTracker(stream_sid=start.stream_sid)
    serializer.on_played_mark = tracker.on_mark
    context = LLMContext(
        messages=[{"role": "user", "content": GREETING_REQUEST.format(greeting=greeting)}], tools=tools
    )
    aggregators = LLMContextAggregatorPair(
        context,
        user_params=LLMUserAggregatorParams(
            user_idle_timeout=settings.idle_timeout_seconds,
            # the model's server VAD drives turns (what the service recommends anyway); without this
            # the aggregator builds Pipecat's default Smart Turn analyzer (an ONNX model load on
            # every call start, before the realtime connect) only to replace it
            user_turn_strategies=ExternalUserTurnStrategies(),
        ),
    )

    async def apologise_and_hang_up(reason: str) -> None:
        call.end_reason = "realtime_error"
        report_provider_error(runtime.providers, "openai", "realtime", reason)
        # The caller's last words (a transcript that reached the user aggregator just before the
        # error) are stored before the apology, so the call's record stays in order. A socket that
        # was never open (refused, 401) sent no transcript: no wait before the handover then.
        if llm.connected:
            await asyncio.sleep(TRANSCRIPT_SETTLE_SECS)
        await aggregators.user().push_aggregation()
        if pipeline_configured(settings):  # go on in pipeline mode on the same stream
            metrics.fallback_used("realtime", "pipeline")
            call.handed_over = websocket.keep_open = True
            serializer.keep_call_up()
            await task.queue_frame(EndFrame())
            return
        if apology_voice is not None:
            before = tracker.sent_ms
            await task.queue_frames([TTSSpeakFrame(APOLOGY)])
            await tracker.wait_until_played(since_ms=before, timeout=APOLOGY_PLAY_TIMEOUT_SECS)
        await task.queue_frame(EndFrame())

    failover = RealtimeFailover(service=llm, on_failure=apologise_and_hang_up)

    async def redirect(reason: str) -> None:  # a rule or the time limit hands the call to Twilio
        serializer.keep_call_up()
        call.end_reason = reason

    def keep_instructions(_text: str) -> None:  # the session's instructions are set at its start
        logger.warning("a persona rule fired mid-call: realtime mode keeps the session's instructions")

    router = call_router(
        settings,
        services,
        start,
        routing,
        tool_ctx,
        speak=failover.ask_to_say,
        before_redirect=redirect,
        hang_up=lambda reason: hang_up(reason),
        set_instructions=keep_instructions,
    )
    timer = CallTimer(
        settings=settings,
        control=services.control,
        call_sid=start.call_sid,
        tools=tool_ctx,
        speak=failover.ask_to_say,
        before_redirect=redirect,
        hang_up=lambda reason: hang_up(reason),
    )
    pipeline = Pipeline(
        [
            transport.input(),
            *([DigitGate(router)] if router.rules else []),  # key presses for the routing rules
            aggregators.user(),
            failover,
            *([apology_voice] if apology_voice is not None else []),
            llm,
            tracker,
            transport.output(),
            aggregators.assistant(),
        ]
    )
    recorder = CallRecorder(
        sessions=services.sessions,
        call_id=call_id,
        started_at=start.started_at,
        vad_stop_secs=0.0,
        llm=llm,
        tts=[llm, *([apology_voice] if apology_voice is not None else [])],
        output=transport.output(),
        tasks=runtime.tasks,
    )
    task = TappedPipelineWorker(
        pipeline,
        params=PipelineParams(
            audio_in_sample_rate=TWILIO_SAMPLE_RATE, audio_out_sample_rate=TWILIO_SAMPLE_RATE
        ),
        taps=[recorder, SpeechEndWatcher(tracker, tool_ctx.speech_finished)],
        enable_rtvi=False,
        enable_turn_tracking=False,  # an observer of every push that nothing here reads
        idle_timeout_secs=None,
    )
    call = RealtimeCall(start, call_id, task, llm, tracker, recorder, tool_ctx, timer=timer)

    async def expect_greeting() -> None:  # a socket that accepted and says nothing has failed too
        await asyncio.sleep(FIRST_AUDIO_SECS)
        if tracker.sent_ms == 0 and not failover.failed:
            failover.fail(f"no audio from the realtime API within {FIRST_AUDIO_SECS} s")

    @transport.event_handler("on_client_connected")
    async def on_connected(_transport: object, _ws: object) -> None:
        if llm.failed:  # the connection was refused while the pipeline started
            failover.fail(llm.failed)
            return
        timer.start(runtime.tasks)
        await task.queue_frames([LLMRunFrame()])  # the greeting
        runtime.tasks.spawn(expect_greeting(), name=f"realtime-greeting-{start.call_sid}")

    @transport.event_handler("on_client_disconnected")
    async def on_disconnected(_transport: object, _ws: object) -> None:
        logger.info("media stream closed by the caller")
        await task.cancel()

    async def hang_up(reason: str) -> None:
        call.end_reason = reason
        await task.queue_frame(EndFrame())

    idle = IdleCaller(
        prompt=settings.idle_prompt,
        goodbye=settings.idle_goodbye,
        tracker=tracker,
        speak=failover.ask_to_say,
        hang_up=hang_up,
    )

    @aggregators.user().event_handler("on_user_turn_started")
    async def on_caller_speaking(_aggregator: object, _strategy: object) -> None:
        idle.caller_spoke()

    @aggregators.user().event_handler("on_user_turn_idle")
    async def on_caller_silent(_aggregator: object) -> None:
        if not failover.failed and not tool_ctx.pending_action():  # (a transfer or goodbye is on its way)
            await idle.caller_silent()

    @aggregators.user().event_handler("on_user_turn_message_added")
    async def on_caller_turn(_aggregator: object, message: UserTurnMessageAddedMessage) -> None:
        if message.content:
            idle.caller_transcribed()
            recorder.caller_turn(message.content)
            if router.rules:  # (the model answers too: a rule that takes the call speaks after it)
                await router.on_sentence(message.content)

    @aggregators.assistant().event_handler("on_assistant_turn_stopped")
    async def on_agent_turn(_aggregator: object, message: AssistantTurnStoppedMessage) -> None:
        if message.interrupted:
            heard = tracker.reply_text(heard_only=True)
            planned = message.content or tracker.reply_text(heard_only=False)
            recorder.agent_turn(heard, planned=planned, interrupted=True, tool_calls=tool_ctx.take_records())
        elif message.content:
            recorder.agent_turn(message.content, tool_calls=tool_ctx.take_records())

    return call


async def run_realtime_call(
    websocket: WebSocket, runtime: Runtime, services: Services, start: StreamStart
) -> RealtimeCall:
    """Run one realtime call to its end and close its records (in pipeline mode if realtime fails)."""
    stream = HandoverWebSocket(websocket)
    call = await build_realtime_call(stream, runtime, services, start)

    async def on_command(action: str, params: dict[str, Any]) -> None:
        if action != "hangup":
            logger.warning("ignoring unknown live-call command {!r}", action)
            return
        logger.info("hanging up on request ({})", params.get("reason") or "admin")
        call.end_reason = str(params.get("reason") or "admin")
        await call.task.queue_frame(EndFrame())

    try:
        await drive_call(runtime, services, start, call, on_command)
    finally:
        if call.timer is not None:
            call.timer.cancel()
    if call.handed_over:
        stream.keep_open = False
        history: list[LLMContextMessage] = []
        for turn in call.recorder.turns:
            if turn.text and turn.role == "caller":
                history.append({"role": "user", "content": turn.text})
            elif turn.text:
                history.append({"role": "assistant", "content": turn.text})
        logger.warning("realtime mode failed: the call goes on in pipeline mode")
        await run_call(websocket, runtime, services, start, resume=Resume(history=history))
    return call
