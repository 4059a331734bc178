"""OpenAI chat-completions wire format: request validation, scripted replies, JSON and SSE bodies.

Translation only (no I/O): `FakeOpenAI` calls these from its handlers. Validation mirrors the
real API's 400s for the mistakes product code can make (missing model/messages, bad roles, tool
messages without a preceding `tool_calls`, unanswered tool calls, bad tool names,
`stream_options` without `stream`), using OpenAI's error body shape.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

ROLES = ("system", "assistant", "user", "function", "tool", "developer")
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


@dataclass
class ToolCall:
    """A tool call the fake model makes: name and arguments (a dict, sent as a JSON string)."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    id: str | None = None


@dataclass
class Reply:
    """One scripted assistant reply: text, tool calls, or both (text first)."""

    text: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)


class OpenAIError(Exception):
    """A request the real API would refuse; carries the status and OpenAI's error body."""

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


def missing(param: str) -> OpenAIError:
    """OpenAI's error for a missing required parameter."""
    return OpenAIError(
        400, f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
    )


def validate_chat_request(body: Any) -> None:
    """Raise `OpenAIError` for a body the real chat-completions endpoint rejects."""
    if not isinstance(body, dict):
        raise OpenAIError(
            400,
            "We could not parse the JSON body of your request. (HINT: This likely means "
            "you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
            "but what was sent was not valid JSON.)",
        )
    if not body.get("model"):
        raise OpenAIError(400, "you must provide a model parameter")
    if "messages" not in body:
        raise missing("messages")
    messages = body["messages"]
    if not isinstance(messages, list):
        raise OpenAIError(
            400,
            f"Invalid type for 'messages': expected an array, but got {type(messages).__name__} instead.",
            param="messages",
            code="invalid_type",
        )
    if not messages:
        raise OpenAIError(
            400,
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got "
            "an empty array instead.",
            param="messages",
            code="empty_array",
        )
    _validate_messages(messages)
    _validate_tools(body.get("tools"))
    if body.get("stream_options") is not None and not body.get("stream"):
        raise OpenAIError(
            400,
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
            code=None,
        )


def _validate_messages(messages: list[Any]) -> None:
    pending: dict[str, int] = {}  # tool_call_id -> index of the assistant message awaiting an answer
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise OpenAIError(
                400,
                f"Invalid type for 'messages[{i}]': expected an object, but got "
                f"{type(message).__name__} instead.",
                param=f"messages[{i}]",
                code="invalid_type",
            )
        role = message.get("role")
        if role is None:
            raise missing(f"messages[{i}].role")
        if role not in ROLES:
            raise OpenAIError(
                400,
                f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', "
                "'user', 'function', 'tool', and 'developer'.",
                param=f"messages[{i}].role",
                code="invalid_value",
            )
        if role != "tool" and pending:
            first = min(pending.values())
            raise OpenAIError(
                400,
                "An assistant message with 'tool_calls' must be followed by tool messages "
                "responding to each 'tool_call_id'. The following tool_call_ids did not have "
                f"response messages: {', '.join(pending)}",
                param=f"messages.[{first}].role",
            )
        content = message.get("content")
        if role in ("system", "user", "developer") and content is None:
            raise missing(f"messages[{i}].content")
        if content is not None and not isinstance(content, (str, list)):
            raise OpenAIError(
                400,
                f"Invalid type for 'messages[{i}].content': expected one of a string or array "
                f"of objects, but got {type(content).__name__} instead.",
                param=f"messages[{i}].content",
                code="invalid_type",
            )
        if role == "assistant":
            calls = message.get("tool_calls") or []
            if content is None and not calls:
                raise missing(f"messages[{i}].content")
            for j, call in enumerate(calls):
                fn = call.get("function") or {}
                if not call.get("id"):
                    raise missing(f"messages[{i}].tool_calls[{j}].id")
                if not isinstance(fn.get("arguments"), str):
                    raise missing(f"messages[{i}].tool_calls[{j}].function.arguments")
                pending[call["id"]] = i
        if role == "tool":
            call_id = message.get("tool_call_id")
            if not call_id:
                raise missing(f"messages[{i}].tool_call_id")
            if call_id not in pending:
                raise OpenAIError(
                    400,
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.",
                    param=f"messages.[{i}].role",
                )
            del pending[call_id]
    if pending:
        raise OpenAIError(
            400,
            "An assistant message with 'tool_calls' must be followed by tool messages "
            "responding to each 'tool_call_id'. The following tool_call_ids did not have response "
            f"messages: {', '.join(pending)}",
            param=f"messages.[{min(pending.values())}].role",
        )


def _validate_tools(tools: Any) -> None:
    if tools is None:
        return
    if not isinstance(tools, list):
        raise OpenAIError(
            400, "Invalid type for 'tools': expected an array.", param="tools", code="invalid_type"
        )
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise OpenAIError(
                400,
                f"Invalid value for 'tools[{i}].type': expected 'function'.",
                param=f"tools[{i}].type",
                code="invalid_value",
            )
        fn = tool.get("function")
        if not isinstance(fn, dict) or "name" not in fn:
            raise missing(f"tools[{i}].function.name")
        if not TOOL_NAME.match(str(fn["name"])):
            raise OpenAIError(
                400,
                f"Invalid 'tools[{i}].function.name': string does not match pattern. Expected "
                "a string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
                param=f"tools[{i}].function.name",
                code="invalid_value",
            )
        params = fn.get("parameters")
        if params is not None and (not isinstance(params, dict) or params.get("type", "object") != "object"):
            raise OpenAIError(
                400,
                f"Invalid schema for function '{fn['name']}': schema must be a JSON Schema of "
                "'type: \"object\"'.",
                param=f"tools[{i}].function.parameters",
                code="invalid_function_parameters",
            )


def text_of(content: Any) -> str:
    """The text of a message content (string or list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def default_reply(messages: list[dict[str, Any]]) -> Reply:
    """The reply when nothing is scripted: echo the last user (or tool) message."""
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        return Reply(text=f"The tool said: {text_of(last.get('content'))}")
    for message in reversed(messages):
        if message.get("role") == "user":
            return Reply(text=f"I heard you say: {text_of(message.get('content'))}")
    return Reply(text="Hello! How can I help you today?")


def tokenize(text: str) -> list[str]:
    """Split text into token-like pieces (words with their leading space, punctuation alone)."""
    return re.findall(r"\s*[\w']+|\s*[^\w\s]", text) or ([text] if text else [])


def count_tokens(body: dict[str, Any]) -> int:
    """A rough prompt token count: words in all messages and tool schemas."""
    words = sum(len(text_of(m.get("content")).split()) + 4 for m in body.get("messages", []))
    return words + len(json.dumps(body.get("tools", []))) // 4


def tool_call_ids(reply: Reply) -> list[str]:
    """Fill in ids for the reply's tool calls (stable for one reply)."""
    for call in reply.tool_calls:
        if call.id is None:
            call.id = f"call_{uuid.uuid4().hex[:24]}"
    return [c.id or "" for c in reply.tool_calls]


def completion_json(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    """A non-streamed chat.completion object for `reply`."""
    tool_call_ids(reply)
    message: dict[str, Any] = {"role": "assistant", "content": reply.text, "refusal": None, "annotations": []}
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
            }
            for c in reply.tool_calls
        ]
    completion_tokens = len(tokenize(reply.text or "")) + sum(
        len(json.dumps(c.arguments)) // 4 + 1 for c in reply.tool_calls
    )
    prompt_tokens = count_tokens(body)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body["model"],
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "tool_calls" if reply.tool_calls else "stop",
            }
        ],
        "usage": usage(prompt_tokens, completion_tokens),
        "service_tier": "default",
        "system_fingerprint": "fp_fake",
    }


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    """OpenAI's usage object."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def stream_deltas(reply: Reply) -> list[dict[str, Any]]:
    """The `delta` objects of a streamed reply, in order (tool arguments arrive in pieces)."""
    tool_call_ids(reply)
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": "", "refusal": None}]
    deltas += [{"content": token} for token in tokenize(reply.text or "")]
    for index, call in enumerate(reply.tool_calls):
        deltas.append(
            {
                "tool_calls": [
                    {
                        "index": index,
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": ""},
                    }
                ]
            }
        )
        arguments = json.dumps(call.arguments)
        for start in range(0, len(arguments), 8):
            deltas.append(
                {"tool_calls": [{"index": index, "function": {"arguments": arguments[start : start + 8]}}]}
            )
    return deltas


def chunk(
    base: dict[str, Any],
    delta: dict[str, Any] | None,
    finish_reason: str | None = None,
    include_usage: bool = False,
    usage_obj: dict[str, Any] | None = None,
) -> str:
    """One SSE `data:` line for a chat.completion.chunk."""
    payload = dict(base)
    payload["choices"] = (
        []
        if delta is None
        else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
    )
    if include_usage:
        payload["usage"] = usage_obj
    return f"data: {json.dumps(payload)}\n\n"
