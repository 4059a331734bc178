"""One call's Pipecat pipeline: Twilio websocket in → VAD/smart-turn → STT → LLM → TTS → websocket out.

    transport.input → STT → user aggregator (Silero VAD + smart-turn) → LLM → TTS (+ fallback)
      → PlayoutTracker (marks) → transport.output → InterruptedContextFilter → assistant aggregator

Streaming end to end: the STT streams the caller's audio while they speak and commits at their
pause (voice/streaming_stt.py); the LLM request starts once the transcript is in, while smart-turn
decides and the turn is confirmed (voice/turn_end.py); the TTS starts on the reply's first clause or
first few words (voice/first_clause.py).

The greeting is spoken first (by name for a caller memory knows); the LLM is the brain's
(``build_call_brain``: packed persona + caller memory + knowledge per turn, LLM chain with fallback,
tools through Pipecat function calling); each turn is stored by ``CallRecorder``; at a barge-in
the conversation keeps only what the caller heard (``PlayoutTracker``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import WebSocket
from loguru import logger
from pipecat.audio.turn.smart_turn.base_smart_turn import SmartTurnParams
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.frames.frames import (
    BotSpeakingFrame,
    EndFrame,
    InputAudioRawFrame,
    OutputAudioRawFrame,
    OutputTransportMessageFrame,
    TTSSpeakFrame,
    UserSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.service_switcher import ServiceSwitcher
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext, LLMContextMessage
from pipecat.processors.aggregators.llm_response_universal import (
    AssistantTurnStoppedMessage,
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
    UserTurnStoppedMessage,
)
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.serializers.base_serializer import FrameSerializer
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport
from pipecat.turns.user_turn_strategies import UserTurnStrategies
from pipecat.workers.runner import WorkerRunner

from phone_agent.brain.persona import greeting_for
from phone_agent.brain.pipeline import ChainedLLMService, build_call_brain
from phone_agent.brain.routing.incoming import call_routing, persona_of
from phone_agent.brain.routing.match import intents_of, listens_for_misunderstanding
from phone_agent.brain.routing.tool import with_route_call
from phone_agent.brain.tools import Channel, ToolContext
from phone_agent.config import Settings
from phone_agent.memory.base import CallerContext
from phone_agent.ops import metrics
from phone_agent.runtime import Runtime
from phone_agent.services import Services
from phone_agent.storage.calls import finish_call, open_call
from phone_agent.voice.frame_tap import TappedPipelineWorker
from phone_agent.voice.hot_path import DropFrames
from phone_agent.voice.idle import IdleCaller
from phone_agent.voice.max_length import CallTimer
from phone_agent.voice.outbound import AnswerGate, OutboundAnswer, outbound_plan
from phone_agent.voice.playout import InterruptedContextFilter, PlayoutTracker, SpeechEndWatcher
from phone_agent.voice.recorder import CallRecorder
from phone_agent.voice.rescue import APOLOGY, CallRescue
from phone_agent.voice.routing import CallRouter, DigitGate, SentenceGate, call_router
from phone_agent.voice.serializer import TwilioMediaSerializer
from phone_agent.voice.services import build_fallback_tts, build_primary_tts, build_stt
from phone_agent.voice.shared_models import SharedSileroVADAnalyzer, SharedSmartTurnAnalyzer
from phone_agent.voice.stream import StreamStart
from phone_agent.voice.streaming_stt import SegmentSettledFrame, StreamingSTTService
from phone_agent.voice.stt_ladder import LadderSTTService
from phone_agent.voice.stt_watch import STTFailureWatch
from phone_agent.voice.tts_fallback import FIRST_AUDIO_SECS, LOCAL_FIRST_AUDIO_SECS, TTSFailover
from phone_agent.voice.turn_end import WALL_STOP_TIMEOUT_SECS, CallTurnStopStrategy
from phone_agent.voice.web_leg import WEB_SAMPLE_RATE, BrowserAudioSerializer

TWILIO_SAMPLE_RATE = 8000
VAD_STOP_SECS = 0.2
# Silence that ends a turn smart-turn judged incomplete (Pipecat: 3 s): short answers like
# "Tomorrow at ten please." are misjudged often enough that 3 s of dead air hurts more than it saves.
TURN_FALLBACK_SECS = 1.0
RESUME_LINE = "Sorry, the line dropped for a moment. Could you say that again?"


@dataclass
class CallSession:
    """The running parts of one call (kept for tests and the end-of-call bookkeeping)."""

    start: StreamStart
    call_id: int
    task: PipelineWorker
    context: LLMContext
    tracker: PlayoutTracker
    recorder: CallRecorder
    tools: ToolContext
    llm: ChainedLLMService
    rescue: CallRescue
    greeting: str = ""
    end_reason: str = "hangup"
    handed_over: bool = False
    outbound: OutboundAnswer | None = None  # a call the agent placed: greets once a person answered
    router: CallRouter | None = None
    timer: CallTimer | None = None


@dataclass
class Resume:
    """A call another pipeline began on this stream (realtime mode that failed): what was said."""

    history: list[LLMContextMessage]


def build_serializer(settings: Settings, start: StreamStart) -> TwilioMediaSerializer:
    """Twilio serializer; hangs up through the REST API when Twilio credentials are configured."""
    auth_token = settings.secret("twilio_auth_token")
    account_sid = settings.twilio_account_sid  # ours, never the one the websocket's start message claims
    can_hang_up = bool(auth_token and account_sid and start.call_sid)
    return TwilioMediaSerializer(
        stream_sid=start.stream_sid,
        call_sid=start.call_sid,
        account_sid=account_sid,
        auth_token=auth_token if can_hang_up else None,
        base_url=settings.twilio_api_base_url,
        params=TwilioMediaSerializer.InputParams(auto_hang_up=can_hang_up),
    )


async def open_call_with_caller(
    runtime: Runtime, services: Services, start: StreamStart
) -> tuple[int, CallerContext | None]:
    """Open the call's row and take the caller's memory (prefetched at /phone/incoming), concurrently."""
    outbound = start.direction == "outbound"  # then start.caller is the callee (the row has both numbers)
    return await asyncio.gather(
        open_call(
            services.sessions,
            call_sid=start.call_sid,
            from_number=None if outbound else start.caller,
            stream_sid=start.stream_sid,
            direction=start.direction,
        ),
        runtime.prefetch.take(services.memory, call_sid=start.call_sid, caller=start.caller),
    )


def media_stream_transport(websocket: WebSocket, serializer: FrameSerializer) -> FastAPIWebsocketTransport:
    """Pipecat's websocket transport for a Twilio Media Stream or the softphone (audio both ways)."""
    return FastAPIWebsocketTransport(
        websocket,
        FastAPIWebsocketParams(
            audio_in_enabled=True,
            audio_out_enabled=True,
            add_wav_header=False,
            serializer=serializer,
            allowed_origins=[],
        ),
    )


async def build_call(
    websocket: WebSocket,
    runtime: Runtime,
    services: Services,
    start: StreamStart,
    *,
    resume: Resume | None = None,
    channel: Channel = "phone",
) -> CallSession:
    """Build the pipeline of one call (nothing runs until ``run_call``).

    ``services`` are the call's for its whole life: every part below is built from them, never
    from ``runtime.current`` again (an admin save during the call applies to the next one).
    ``resume``: the call was begun by realtime mode; go on from what it said and heard.
    ``channel``: ``phone`` (a Twilio Media Stream, 8 kHz) or ``web`` (the admin page's softphone:
    16 kHz PCM, voice/web_leg.py; no telephone leg to redirect, so no transfer and no fallback
    action beyond the apology and a hang-up).
    """
    settings = services.settings
    (call_id, caller_context), routing = await asyncio.gather(
        open_call_with_caller(runtime, services, start),
        call_routing(services.sessions, call_sid=start.call_sid, caller=start.caller),
    )
    greeting = greeting_for(settings, caller_context.name if caller_context else None)
    plan = None
    if start.direction == "outbound":
        name = caller_context.name if caller_context else None
        plan = await outbound_plan(settings, services.sessions, start.call_sid, name)
        greeting = plan.greeting
    if resume is not None and resume.history:
        greeting = RESUME_LINE  # the caller heard the greeting already
    phone = channel == "phone"
    serializer = build_serializer(settings, start) if phone else BrowserAudioSerializer()
    sample_rate = TWILIO_SAMPLE_RATE if phone else WEB_SAMPLE_RATE
    session: CallSession | None = None

    async def end_call() -> None:  # the end_call tool: the goodbye has already played
        if session is not None:
            await hang_up(session, "agent_hangup")

    async def before_transfer() -> None:  # Twilio takes the call elsewhere: end without hanging up
        serializer.keep_call_up()
        if session is not None:
            session.end_reason = "transferred"

    rescue: CallRescue | None = None  # built with the pipeline below

    async def llm_exhausted(detail: str) -> None:  # the apology is this turn's reply: then the action
        if rescue is not None and not rescue.started:
            since = tracker.sent_ms
            runtime.tasks.spawn(
                rescue.give_up("llm", detail, apology_since_ms=since), name=f"rescue-{start.call_sid}"
            )

    tool_ctx = services.tool_context(
        caller_phone=start.caller,
        caller_name=caller_context.name if caller_context else None,
        call_sid=start.call_sid,
        call_id=call_id,
        channel=channel,
        on_hang_up=end_call,
        before_transfer=before_transfer,
        tasks=runtime.tasks,
    )
    tracker = PlayoutTracker(stream_sid=start.stream_sid)
    serializer.on_played_mark = tracker.on_mark  # Twilio's mark echoes: straight to the tracker
    brain = build_call_brain(
        tool_ctx,
        chain=services.llm,
        caller=caller_context,
        registry=with_route_call(
            services.tools, intents_of(routing.rules), unclear=listens_for_misunderstanding(routing.rules)
        ),
        on_exhausted=llm_exhausted,
        exhausted_reply=APOLOGY,
    )

    def set_instructions(text: str) -> None:  # a persona rule fired: these instructions from now on
        brain.llm.app_settings = brain.llm.app_settings.model_copy(update={"instructions": text})

    if persona := persona_of(routing.events, routing.rules):  # fired at /phone/incoming
        set_instructions(persona)

    async def say(text: str) -> None:  # (``task`` is built below; rules and the timer act once it runs)
        await task.queue_frames([TTSSpeakFrame(text)])

    async def redirect(reason: str) -> None:  # Twilio takes the call on: end without hanging up
        serializer.keep_call_up()
        if session is not None:
            session.end_reason = reason

    async def end_here(reason: str) -> None:
        if session is not None:
            await hang_up(session, reason)

    router = call_router(
        settings,
        services,
        start,
        routing,
        tool_ctx,
        speak=say,
        before_redirect=redirect,
        hang_up=end_here,
        set_instructions=set_instructions,
    )
    timer = CallTimer(
        settings=settings,
        control=services.control,
        call_sid=start.call_sid,
        tools=tool_ctx,
        speak=say,
        before_redirect=redirect,
        hang_up=end_here,
    )

    transport = media_stream_transport(websocket, serializer)

    async def stt_exhausted(detail: str) -> None:  # a caller spoke and no STT could transcribe it
        if rescue is not None and not rescue.started:
            runtime.tasks.spawn(rescue.give_up("stt", detail), name=f"rescue-{start.call_sid}")

    stt = build_stt(settings, http=services.http, on_exhausted=stt_exhausted, health=runtime.providers)
    stt_stage: list[FrameProcessor] = [stt]
    if not isinstance(stt, (LadderSTTService, StreamingSTTService)):  # Deepgram: failure → the rescue
        watch = STTFailureWatch(
            stt=stt, provider=settings.stt_provider, on_failed=stt_exhausted, health=runtime.providers
        )
        stt_stage = [watch, stt]
    llm = brain.llm  # persona, caller memory and knowledge are packed into every request
    primary_tts = build_primary_tts(settings)

    async def voice_exhausted(detail: str) -> None:  # no voice of ours works: Twilio's says it
        if rescue is not None and not rescue.started:
            runtime.tasks.spawn(
                rescue.give_up("tts", detail, voice_works=False), name=f"rescue-{start.call_sid}"
            )

    fallback = build_fallback_tts(settings, http=services.http)
    tts_services: list[FrameProcessor] = [primary_tts, *([fallback] if fallback is not None else [])]
    failover = TTSFailover(
        primary=primary_tts,
        fallback=fallback,
        tracker=tracker,
        on_exhausted=voice_exhausted,
        health=runtime.providers,
        first_audio_secs=LOCAL_FIRST_AUDIO_SECS if settings.voice_stack == "local" else FIRST_AUDIO_SECS,
    )
    tts_stage = [failover, ServiceSwitcher(services=tts_services) if fallback is not None else primary_tts]

    if plan is not None:
        brain.llm.call_instructions = plan.brief  # packed with the persona into every request
    context = LLMContext(messages=list(resume.history) if resume else [], tools=brain.tools)
    vad = SharedSileroVADAnalyzer(params=VADParams(stop_secs=VAD_STOP_SECS))
    if isinstance(stt, StreamingSTTService):
        vad.listeners.append(stt.on_vad_state)  # speech starts streaming, a pause commits
    end_of_turn = CallTurnStopStrategy(  # smart-turn, with the reply prepared while it is confirmed
        vad=vad,
        segments=stt.segments if isinstance(stt, StreamingSTTService) else None,
        # routing rules act on the caller's sentences (SentenceGate): never on one not confirmed
        speculate_after_secs=float("inf") if router.rules else None,
        turn_analyzer=SharedSmartTurnAnalyzer(params=SmartTurnParams(stop_secs=TURN_FALLBACK_SECS)),
    )
    aggregators = LLMContextAggregatorPair(
        context,
        user_params=LLMUserAggregatorParams(
            vad_analyzer=vad,
            user_turn_strategies=UserTurnStrategies(stop=[end_of_turn]),
            user_turn_stop_timeout=WALL_STOP_TIMEOUT_SECS,  # the end of turn counts it in caller audio
            user_idle_timeout=settings.idle_timeout_seconds,
        ),
    )
    end_of_turn.turn_text = aggregators.user().aggregation_string
    gate = AnswerGate()  # (outbound calls only: the callee is not heard before the machine verdict)
    pipeline = Pipeline(
        [
            transport.input(),
            *([gate] if plan is not None and resume is None else []),
            *([DigitGate(router)] if router.rules else []),  # key presses for the routing rules
            *stt_stage,
            aggregators.user(),
            # caller audio: only STT, VAD and smart-turn read it; STT segments: only the turn end;
            # the aggregator's "caller still speaking" (5 a second): nothing after it reads it
            DropFrames(InputAudioRawFrame, SegmentSettledFrame, UserSpeakingFrame),
            *([SentenceGate(router)] if router.rules else []),  # a sentence a rule acts on
            llm,
            *tts_stage,
            tracker,
            transport.output(),
            # agent audio, the marks sent with it, "agent still speaking": nothing reads them once sent
            DropFrames(OutputAudioRawFrame, OutputTransportMessageFrame, BotSpeakingFrame),
            InterruptedContextFilter(tracker=tracker),  # words of a cut-off reply released late
            aggregators.assistant(),
        ]
    )
    recorder = CallRecorder(
        sessions=services.sessions,
        call_id=call_id,
        started_at=start.started_at,
        vad_stop_secs=VAD_STOP_SECS,
        pause_lead=lambda: vad.pause_lead_secs,
        llm=llm,
        tts=tts_services,
        output=transport.output(),
        tasks=runtime.tasks,
    )
    task = TappedPipelineWorker(
        pipeline,
        params=PipelineParams(audio_in_sample_rate=sample_rate, audio_out_sample_rate=sample_rate),
        taps=[recorder, SpeechEndWatcher(tracker, brain.ctx.speech_finished)],
        enable_rtvi=False,
        enable_turn_tracking=False,  # an observer of every frame that nothing here reads
        idle_timeout_secs=None,
    )

    async def speak(text: str) -> None:
        await task.queue_frames([TTSSpeakFrame(text)])

    async def end_pipeline(reason: str) -> None:  # the call is Twilio's now: end without hanging up
        if session is not None:
            session.end_reason = reason
        await task.queue_frame(EndFrame())

    def hand_to_fallback() -> None:  # the fallback's TwiML is about to take the call
        serializer.keep_call_up()
        # its reason now: Twilio may close the stream (and the call be closed) before give_up returns
        if session is not None and rescue is not None and rescue.end_reason:
            session.end_reason = rescue.end_reason

    rescue = CallRescue(
        settings=settings,
        control=services.control if phone else None,  # a web call has no Twilio leg to redirect
        call_sid=start.call_sid,
        tracker=tracker,
        speak=speak,
        end_pipeline=end_pipeline,
        keep_call_up=hand_to_fallback,
        health=runtime.providers,
    )
    session = CallSession(
        start=start,
        call_id=call_id,
        task=task,
        context=context,
        tracker=tracker,
        recorder=recorder,
        tools=brain.ctx,
        llm=brain.llm,
        rescue=rescue,
        greeting=greeting,
        router=router,
        timer=timer,
    )

    if plan is not None and resume is None:
        session.outbound = OutboundAnswer(
            plan=plan,
            sessions=services.sessions,
            call_sid=start.call_sid,
            gate=gate,
            tracker=tracker,
            speak=speak,
            hang_up=lambda reason: hang_up(session, reason),
        )

    @transport.event_handler("on_client_connected")
    async def on_connected(_transport: object, _ws: object) -> None:
        timer.start(runtime.tasks)
        if session.outbound is not None:  # greet once a person answered (or leave a voicemail)
            runtime.tasks.spawn(session.outbound.run(), name=f"outbound-{start.call_sid}")
            return
        await task.queue_frames([TTSSpeakFrame(greeting)])

    @transport.event_handler("on_client_disconnected")
    async def on_disconnected(_transport: object, _ws: object) -> None:
        logger.info("media stream closed by the caller")
        await task.cancel()

    idle = IdleCaller(
        prompt=settings.idle_prompt,
        goodbye=settings.idle_goodbye,
        tracker=tracker,
        speak=speak,
        hang_up=lambda reason: hang_up(session, reason),
        on_unheard=router.on_misunderstood if router.rules else None,
    )

    @aggregators.user().event_handler("on_user_turn_started")
    async def on_caller_speaking(_aggregator: object, _strategy: object) -> None:
        idle.caller_spoke()

    @aggregators.user().event_handler("on_user_turn_idle")
    async def on_caller_silent(_aggregator: object) -> None:
        if not rescue.started and not tool_ctx.pending_action():  # (a transfer or goodbye is on its way)
            await idle.caller_silent()

    @aggregators.user().event_handler("on_user_turn_stopped")
    async def on_user_turn(_aggregator: object, _strategy: object, message: UserTurnStoppedMessage) -> None:
        if message.content:
            idle.caller_transcribed()
            recorder.caller_turn(message.content)

    @aggregators.assistant().event_handler("on_assistant_turn_stopped")
    async def on_agent_turn(_aggregator: object, message: AssistantTurnStoppedMessage) -> None:
        if message.interrupted:
            heard = tracker.reply_text(heard_only=True)
            planned = message.content or tracker.reply_text(heard_only=False)
            keep_only_heard(context, message.content, heard)
            recorder.agent_turn(heard, planned=planned, interrupted=True, tool_calls=brain.ctx.take_records())
        elif message.content:
            recorder.agent_turn(message.content, tool_calls=brain.ctx.take_records())

    return session


def keep_only_heard(context: LLMContext, said: str, heard: str) -> None:
    """Replace the interrupted assistant message ``said`` with what the caller heard (or drop it)."""
    messages = context.get_messages()
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if isinstance(message, dict) and message.get("role") == "assistant":
            if said and message.get("content") != said:
                return  # not the message of this turn
            updated: list[Any] = list(messages)
            if heard:
                replaced = message.copy()
                replaced["content"] = heard
                updated[index] = replaced
            else:
                del updated[index]
            context.set_messages(updated)
            return


class LiveCall(Protocol):
    """What ``drive_call`` needs of a built call (pipeline mode's CallSession, realtime's RealtimeCall)."""

    task: PipelineWorker
    tracker: PlayoutTracker
    recorder: CallRecorder
    tools: ToolContext
    end_reason: str
    handed_over: bool  # the call goes on in another pipeline on the same stream (realtime → pipeline)


CommandHandler = Callable[[str, dict[str, Any]], Awaitable[None]]


async def drive_call(
    runtime: Runtime,
    services: Services,
    start: StreamStart,
    call: LiveCall,
    on_command: CommandHandler,
    *,
    resumed: bool = False,
) -> None:
    """Run a built call to its end: metrics, live-call commands from any role, records closed, learning.

    ``resumed``: the call was started by another pipeline that handed it over (not counted again);
    a call that is ``handed_over`` at its end is closed by the pipeline that takes it on.
    """
    runner = WorkerRunner(handle_sigint=False, handle_sigterm=False)
    if not resumed:
        metrics.call_started(start.direction)
    try:
        with runtime.bus.hold_call(start.call_sid, on_command):  # live-call commands from any role
            await runner.add_workers(call.task)
            await runner.run()
    finally:
        call.tools.close()
        await call.tools.settle()  # a tool cut off by the hang-up still writes its row: reviewed below
        await call.recorder.flush()
        if call.handed_over:
            logger.info("call handed over to pipeline mode after {} turns", len(call.recorder.turns))
        else:  # (a call handed over is closed by the pipeline that takes it on)
            await close_call(runtime, services, start, call)


async def close_call(runtime: Runtime, services: Services, start: StreamStart, call: LiveCall) -> None:
    """The end of a call: metrics, its row closed with the end reason, learning from its transcript."""
    metrics.call_ended(call.end_reason)
    await finish_call(
        services.sessions,
        call_sid=start.call_sid,
        status="completed",
        end_reason=call.end_reason,
        release=True,  # ended by its holder: learned below, never a crash ghost
    )
    # memory learns from the transcript off the call path, on the call's own services
    runtime.spawn_with(services, services.learn_after_call(start.call_sid), name=f"learn-{start.call_sid}")
    logger.info(
        "call ended ({}): {} turns, {} of {} marks played",
        call.end_reason,
        len(call.recorder.turns),
        call.tracker.marks_played,
        call.tracker.marks_sent,
    )


async def run_call(
    websocket: WebSocket,
    runtime: Runtime,
    services: Services,
    start: StreamStart,
    *,
    resume: Resume | None = None,
    channel: Channel = "phone",
) -> CallSession:
    """Run one call to its end and close its records (``resume``: taking over a started call;
    ``channel``: phone or web, see ``build_call``)."""
    session = await build_call(websocket, runtime, services, start, resume=resume, channel=channel)

    async def on_command(action: str, params: dict[str, Any]) -> None:
        await live_call_command(session, action, params)

    try:
        await drive_call(runtime, services, start, session, on_command, resumed=resume is not None)
    finally:
        if session.timer is not None:
            session.timer.cancel()
        if session.outbound is not None:  # still waiting for the verdict when the callee hung up
            session.outbound.close()
    return session


async def live_call_command(session: CallSession, action: str, params: dict[str, Any]) -> None:
    """A command for this live call sent from any process (e.g. the admin's "hang up")."""
    if action == "hangup":
        logger.info("hanging up on request ({})", params.get("reason") or "admin")
        await hang_up(session, str(params.get("reason") or "admin"))
    elif action == "answered_by" and session.outbound is not None:
        session.outbound.verdict_received(str(params.get("answered_by") or "unknown"))
    else:
        logger.warning("ignoring unknown live-call command {!r}", action)


async def hang_up(session: CallSession, reason: str) -> None:
    """End the call from our side (speaks nothing more; the serializer hangs up via Twilio REST)."""
    session.end_reason = reason
    await session.task.queue_frame(EndFrame())
