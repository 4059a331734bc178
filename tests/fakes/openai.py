"""`FakeOpenAI`: chat completions (JSON + SSE with tool-call deltas), transcriptions, speech,
embeddings and models, answering the official `openai` SDK and Pipecat's OpenAI services.

    with FakeOpenAI() as fake:
        fake.script(Reply(text="Sure."), Reply(tool_calls=[ToolCall("book", {"day": "Monday"})]))
        client = openai.OpenAI(api_key=fake.api_key, base_url=fake.url + "/v1")
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.base import ASGIApp, FakeServer
from tests.fakes.openai_audio import AudioEndpoints
from tests.fakes.openai_chat import (
    OpenAIError,
    Reply,
    ToolCall,
    chunk,
    completion_json,
    count_tokens,
    default_reply,
    stream_deltas,
    tokenize,
    usage,
    validate_chat_request,
)
from tests.fakes.openai_structured import structured_reply, validate_response_format, wants_schema

__all__ = ["FakeOpenAI", "Reply", "ToolCall", "OpenAIError"]

DEFAULT_MODELS = (
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-5",
    "gpt-5-mini",
    "gpt-5-nano",
    "whisper-1",
    "gpt-4o-transcribe",
    "gpt-4o-mini-transcribe",
    "gpt-transcribe",
    "tts-1",
    "tts-1-hd",
    "gpt-4o-mini-tts",
    "text-embedding-3-small",
    "text-embedding-3-large",
    "text-embedding-ada-002",
)

_INJECTED = {
    429: ("Rate limit reached for requests. Please try again in 1s.", "requests", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request. Sorry about that!", "server_error", None),
    502: ("Bad gateway.", "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
}


class FakeOpenAI(FakeServer):
    """Local OpenAI API. Knobs: `first_token_latency`, `tokens_per_second`, `stt_latency`,
    `tts_first_audio_latency`, `tts_realtime_factor`, `default_reply_text` (every unscripted chat
    answers with it instead of the echo), `reply_for` (a function of the request's messages that
    answers every unscripted chat; it wins over `default_reply_text`), `structured_for` (a function of
    the request body answering unscripted `json_schema` requests; by default they get an instance of
    the schema, as a compliant model gives); queues: `script(...)`, `transcripts`."""

    name = "openai"

    def __init__(
        self,
        *,
        api_key: str = "sk-fake-openai",
        first_token_latency: float = 0.0,
        tokens_per_second: float = 0.0,
        stt_latency: float = 0.0,
        tts_first_audio_latency: float = 0.0,
        tts_realtime_factor: float = 0.0,
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.first_token_latency = first_token_latency
        self.tokens_per_second = tokens_per_second  # 0 = as fast as possible
        self.stt_latency = stt_latency
        self.tts_first_audio_latency = tts_first_audio_latency
        self.tts_realtime_factor = tts_realtime_factor  # 0 = all at once
        self.models: set[str] = set(DEFAULT_MODELS)
        self.replies: deque[Reply] = deque()
        self.transcripts: deque[str] = deque()
        self.default_transcript = "Hello, I would like to book an appointment."
        self.default_reply_text: str | None = None  # None = echo the last user message
        self.reply_for: Callable[[list[dict[str, Any]]], Reply] | None = None
        # answers unscripted structured-output requests (``response_format`` json_schema) with an
        # object (None: the fake's own instance of the schema)
        self.structured_for: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None
        self.models_without_schemas: set[str] = set()  # refuse json_schema, as OpenAI does for older models
        self.chat_requests: list[dict[str, Any]] = []
        self.chat_streams_finished: list[int] = []  # indices in chat_requests streamed to [DONE]
        self.transcription_requests: list[dict[str, Any]] = []
        self.speech_requests: list[dict[str, Any]] = []
        self.embedding_requests: list[dict[str, Any]] = []
        self._audio = AudioEndpoints(self)

    def script(self, *replies: Reply | str) -> None:
        """Queue replies (consumed in order by chat completions; a str is `Reply(text=...)`)."""
        self.replies.extend(Reply(text=r) if isinstance(r, str) else r for r in replies)

    def reset_state(self) -> None:
        self.replies.clear()
        self.structured_for = None
        self.models_without_schemas.clear()
        self.transcripts.clear()
        for records in (
            self.chat_requests,
            self.chat_streams_finished,
            self.transcription_requests,
            self.speech_requests,
            self.embedding_requests,
        ):
            records.clear()

    def error_body(self, status: int) -> dict[str, Any]:
        message, type_, code = _INJECTED.get(
            status, (f"Request failed with status {status}.", "server_error", None)
        )
        return {"error": {"message": message, "type": type_, "param": None, "code": code}}

    def build_app(self) -> ASGIApp:
        routes = [
            Route("/v1/chat/completions", self._chat, methods=["POST"]),
            Route("/v1/models", self._list_models, methods=["GET"]),
            Route("/v1/models/{model:path}", self._get_model, methods=["GET"]),
            Route("/v1/audio/transcriptions", self._audio.transcriptions, methods=["POST"]),
            Route("/v1/audio/speech", self._audio.speech, methods=["POST"]),
            Route("/v1/embeddings", self._audio.embeddings, methods=["POST"]),
        ]
        return Starlette(routes=routes, exception_handlers={OpenAIError: _error_response, 404: _not_found})

    # -- helpers shared with the audio endpoints ------------------------------------------------
    def check_auth(self, request: Request) -> None:
        """Raise OpenAI's 401 unless the bearer key matches `api_key`."""
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer ") or not header[7:].strip():
            raise OpenAIError(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or "
                "as the password field (with blank username) if you're accessing the API from "
                "your browser and are prompted for a username and password. You can obtain an "
                "API key from https://platform.openai.com/account/api-keys.",
            )
        key = header[7:].strip()
        if key != self.api_key:
            masked = key[:3] + "*" * max(0, len(key) - 7) + key[-4:] if len(key) > 8 else "****"
            raise OpenAIError(
                401,
                f"Incorrect API key provided: {masked}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )

    def check_model(self, model: Any) -> str:
        """Raise OpenAI's 404 for a model the fake doesn't serve."""
        if model not in self.models:
            raise OpenAIError(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                code="model_not_found",
            )
        return str(model)

    async def json_body(self, request: Request) -> Any:
        try:
            return json.loads(await request.body())
        except ValueError as exc:
            raise OpenAIError(
                400,
                "We could not parse the JSON body of your request. (HINT: This likely means "
                "you aren't using your HTTP library correctly. The OpenAI API expects a JSON "
                "payload, but what was sent was not valid JSON.)",
            ) from exc

    # -- chat -------------------------------------------------------------------------------------
    async def _chat(self, request: Request) -> Response:
        self.check_auth(request)
        body = await self.json_body(request)
        if isinstance(body, dict):
            self.chat_requests.append(body)
        validate_chat_request(body)
        validate_response_format(body)
        self.check_model(body["model"])
        if wants_schema(body) is not None and body["model"] in self.models_without_schemas:
            raise OpenAIError(
                400,
                "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this "
                "model. Learn more about supported models at the Structured Outputs guide: "
                "https://platform.openai.com/docs/guides/structured-outputs",
                param="response_format",
            )
        if self.replies:
            reply = self.replies.popleft()
        elif wants_schema(body) is not None:  # structured output: what a compliant model returns
            made = self.structured_for(body) if self.structured_for is not None else None
            reply = Reply(text=json.dumps(made) if made is not None else structured_reply(body))
        elif self.reply_for is not None:
            reply = self.reply_for(body["messages"])
        elif self.default_reply_text is not None:
            reply = Reply(text=self.default_reply_text)
        else:
            reply = default_reply(body["messages"])
        if not body.get("stream"):
            await asyncio.sleep(self.first_token_latency + self._generation_time(reply))
            return JSONResponse(completion_json(body, reply))
        index = len(self.chat_requests) - 1
        return StreamingResponse(
            self._stream(body, reply, index),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache"},
        )

    def _generation_time(self, reply: Reply) -> float:
        if not self.tokens_per_second:
            return 0.0
        return len(tokenize(reply.text or "")) / self.tokens_per_second

    async def _stream(self, body: dict[str, Any], reply: Reply, index: int) -> AsyncIterator[str]:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        base = {
            "id": f"chatcmpl-{id(reply):x}",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": body["model"],
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
        }
        deltas = stream_deltas(reply)
        gap = 1.0 / self.tokens_per_second if self.tokens_per_second else 0.0
        await asyncio.sleep(self.first_token_latency)
        for i, delta in enumerate(deltas):
            if i > 1 and gap:
                await asyncio.sleep(gap)
            yield chunk(base, delta, include_usage=include_usage)
        finish = "tool_calls" if reply.tool_calls else "stop"
        yield chunk(base, {}, finish_reason=finish, include_usage=include_usage)
        if include_usage:
            completion_tokens = len(deltas) - 1
            yield chunk(
                base, None, include_usage=True, usage_obj=usage(count_tokens(body), completion_tokens)
            )
        yield "data: [DONE]\n\n"
        self.chat_streams_finished.append(index)  # (a client that hung up never gets here)

    # -- models -----------------------------------------------------------------------------------
    async def _list_models(self, request: Request) -> Response:
        self.check_auth(request)
        data = [_model_obj(m) for m in sorted(self.models)]
        return JSONResponse({"object": "list", "data": data})

    async def _get_model(self, request: Request) -> Response:
        self.check_auth(request)
        return JSONResponse(_model_obj(self.check_model(request.path_params["model"])))


def _model_obj(model: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": 1700000000, "owned_by": "system"}


async def _error_response(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OpenAIError)
    return JSONResponse(exc.body, status_code=exc.status)


async def _not_found(request: Request, exc: Exception) -> Response:
    return JSONResponse(
        {
            "error": {
                "message": f"Invalid URL ({request.method} {request.url.path})",
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
        },
        status_code=404,
    )
