"""OpenAI-compatible chat API: ``POST /v1/chat/completions``, ``GET /v1/models``, and ``POST /v1/chat``.

Every route needs ``Authorization: Bearer <api_key>``. Errors use OpenAI's body shape
(``{"error": {"message", "type", "param", "code"}}``) so OpenAI clients show them properly.

``/v1/chat/completions`` is stateless like OpenAI's: the client sends the whole conversation. Its
system messages are added to the agent's persona; the caller (for memory and tools) is the
``X-Caller`` header or the ``user`` field. The agent's own tools run server-side (their calls are
listed under ``phone_agent.tool_calls`` in the response); tools the client declares are handed back
as ``tool_calls`` with ``finish_reason: "tool_calls"``, as OpenAI does.

``/v1/chat`` keeps the conversation on the server: ``{caller, message, conversation_id?}`` →
``{reply, conversation_id, ...}``; turns and tool calls are stored like a phone call's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from phone_agent.api.deps import RuntimeDep, ServicesDep
from phone_agent.brain.agent import TurnResult
from phone_agent.brain.conversations import ConversationEnded, open_conversation, store_exchange
from phone_agent.config import mask_secret
from phone_agent.errors import NotFoundError
from phone_agent.storage.phones import normalise_optional

AGENT_MODEL = "phone-agent"
# Client options handed to the LLM as they are; anything else OpenAI knows is accepted and ignored.
SAMPLING_OPTIONS = (
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "seed",
)


class APIProblem(Exception):
    """An error answered in OpenAI's error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": type_, "param": param, "code": code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body, status_code=self.status)


class OpenAIErrorRoute(APIRoute):
    """Routes whose APIProblem errors (from the handler or its dependencies) answer in OpenAI's shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except APIProblem as exc:
                return exc.response()

        return answer


router = APIRouter(prefix="/v1", tags=["chat"], route_class=OpenAIErrorRoute)


# -- request models ---------------------------------------------------------------------------------
class ChatMessage(BaseModel):
    """One message of a chat-completions request."""

    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class FunctionSpec(BaseModel):
    """A client-declared function."""

    model_config = ConfigDict(extra="allow")
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None


class ToolSpec(BaseModel):
    """A client-declared tool."""

    type: Literal["function"]
    function: FunctionSpec


class StreamOptions(BaseModel):
    """``stream_options``."""

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """The body of ``POST /v1/chat/completions`` (unknown OpenAI parameters are accepted and ignored)."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    tools: list[ToolSpec] | None = None
    user: str | None = None


class ChatRequest(BaseModel):
    """The body of ``POST /v1/chat``."""

    caller: str = Field(min_length=1, description="The caller's phone number (E.164) or another stable id.")
    message: str = Field(min_length=1)
    conversation_id: str | None = None


# -- auth and parsing ---------------------------------------------------------------------------------
def require_api_key(services: ServicesDep, authorization: Annotated[str | None, Header()] = None) -> None:
    """401 in OpenAI's shape unless the bearer key is ``api_key``."""
    expected = services.settings.secret("api_key")
    if not expected:
        raise APIProblem(
            401,
            "The chat API is disabled: set PHONE_AGENT_API_KEY and send it as a Bearer token.",
            code="api_key_not_configured",
        )
    given = (authorization or "")[7:].strip() if (authorization or "").startswith("Bearer ") else ""
    if not given:
        raise APIProblem(
            401,
            "You didn't provide an API key. Send it in an Authorization header: Bearer YOUR_KEY.",
        )
    if not secrets.compare_digest(given.encode(), expected.encode()):
        raise APIProblem(
            401,
            f"Incorrect API key provided: {mask_secret(given)}. The key is PHONE_AGENT_API_KEY.",
            code="invalid_api_key",
        )


Authorized = Depends(require_api_key)


async def _parse(request: Request, model: type[BaseModel]) -> Any:
    try:
        raw = await request.json()
    except ValueError as exc:
        raise APIProblem(422, f"The body is not valid JSON: {exc}.") from exc
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        details = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise APIProblem(422, f"Invalid request: {details}.", param=param, code="invalid_value") from exc


# -- routes ---------------------------------------------------------------------------------------------
@router.get("/models", dependencies=[Authorized])
async def list_models() -> dict[str, Any]:
    """The agent, as the one model this API serves."""
    return {
        "object": "list",
        "data": [{"id": AGENT_MODEL, "object": "model", "created": 1735689600, "owned_by": "phone-agent"}],
    }


@router.post("/chat/completions", dependencies=[Authorized], response_model=None)
async def chat_completions(
    request: Request,
    runtime: RuntimeDep,
    services: ServicesDep,
    x_caller: Annotated[str | None, Header()] = None,
) -> JSONResponse | StreamingResponse:
    """OpenAI chat completions, answered by the agent (persona, memory, tools, LLM chain)."""
    body: ChatCompletionRequest = await _parse(request, ChatCompletionRequest)
    agent = services.agent()
    builtin = set(agent.registry.names)
    external = [tool.model_dump(exclude_none=True) for tool in body.tools or []]
    clash = [t["function"]["name"] for t in external if t["function"]["name"] in builtin]
    if clash:
        raise APIProblem(
            422, f"Tool name {clash[0]!r} is taken by the agent's built-in tools; rename it.", param="tools"
        )
    instructions = "\n".join(
        _text(m.content) for m in body.messages if m.role in ("system", "developer") and m.content
    )
    history = [
        m.model_dump(exclude_none=True) for m in body.messages if m.role not in ("system", "developer")
    ]
    if not history:
        raise APIProblem(422, "Invalid request: messages needs at least one user message.", param="messages")
    caller = normalise_optional(x_caller or body.user)
    extra = body.model_extra or {}
    sampling = {name: extra[name] for name in SAMPLING_OPTIONS if extra.get(name) is not None}
    ctx = services.tool_context(caller_phone=caller, channel="chat", tasks=runtime.tasks)
    completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    created = int(time.time())

    if not body.stream:
        result = await agent.run_turn(
            history, ctx, extra_instructions=instructions, external_tools=external, sampling=sampling
        )
        message: dict[str, Any] = {"role": "assistant", "content": result.text or None}
        if result.external_tool_calls:
            message["tool_calls"] = result.external_tool_calls
        return JSONResponse(
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": created,
                "model": body.model,
                "choices": [{"index": 0, "message": message, "finish_reason": result.finish_reason}],
                "usage": _usage(result),
                "phone_agent": _extension(result),
            }
        )

    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    base = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": body.model}
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    async def on_text(piece: str) -> None:
        await queue.put(_sse({**base, "choices": [{"index": 0, "delta": {"content": piece}}]}))

    async def produce() -> None:
        try:
            result = await agent.run_turn(
                history,
                ctx,
                extra_instructions=instructions,
                external_tools=external,
                on_text=on_text,
                sampling=sampling,
            )
            for index, call in enumerate(result.external_tool_calls):
                delta = {"tool_calls": [{"index": index, **call}]}
                await queue.put(_sse({**base, "choices": [{"index": 0, "delta": delta}]}))
            final = {"index": 0, "delta": {}, "finish_reason": result.finish_reason}
            await queue.put(_sse({**base, "choices": [final], "phone_agent": _extension(result)}))
            if include_usage:
                await queue.put(_sse({**base, "choices": [], "usage": _usage(result)}))
        except Exception as exc:  # the stream has started: report in-band, as OpenAI does
            await queue.put(_sse({"error": {"message": f"The agent failed: {exc}", "type": "server_error"}}))
        finally:
            await queue.put(None)

    async def events() -> AsyncIterator[str]:
        # The response outlives the request's dependencies: hold its Services until the stream ends.
        async with runtime.use(services):
            task = asyncio.create_task(produce(), name="chat-completion-stream")
            try:
                yield _sse({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
                while (item := await queue.get()) is not None:
                    yield item
                yield "data: [DONE]\n\n"
            finally:
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    return StreamingResponse(events(), media_type="text/event-stream", headers={"cache-control": "no-cache"})


@router.post("/chat", dependencies=[Authorized])
async def chat(request: Request, runtime: RuntimeDep, services: ServicesDep) -> dict[str, Any]:
    """One message of a server-side conversation; the reply and what the agent did."""
    body: ChatRequest = await _parse(request, ChatRequest)
    caller = normalise_optional(body.caller) or body.caller
    try:
        call, history, seq = await open_conversation(
            services.sessions, caller=caller, conversation_id=body.conversation_id
        )
    except NotFoundError as exc:
        raise APIProblem(404, str(exc), param="conversation_id", code="conversation_not_found") from exc
    except ConversationEnded as exc:
        raise APIProblem(409, str(exc), param="conversation_id", code="conversation_ended") from exc
    ctx = services.tool_context(caller_phone=caller, channel="chat", call_id=call.id, tasks=runtime.tasks)
    result = await services.agent().run_turn([*history, {"role": "user", "content": body.message}], ctx)
    await store_exchange(services.sessions, call_id=call.id, seq=seq, message=body.message, result=result)
    if result.ended:  # learn from the conversation, as after a phone call (owned background task)
        runtime.spawn_with(services, services.learn_after_call(call.call_sid), name=f"learn-{call.call_sid}")
    return {
        "conversation_id": call.call_sid,
        "reply": result.text,
        "ended": result.ended,
        "tool_calls": result.tool_records,
        "provider": result.provider,
    }


# -- helpers ----------------------------------------------------------------------------------------------
def _usage(result: TurnResult) -> dict[str, int]:
    return {
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "total_tokens": result.prompt_tokens + result.completion_tokens,
    }


def _extension(result: TurnResult) -> dict[str, Any]:
    return {"tool_calls": result.tool_records, "provider": result.provider, "ended": result.ended}


def _sse(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, default=str)}\n\n"


def _text(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content or "")
