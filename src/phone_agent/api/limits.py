"""Limits on request bodies that the parsers themselves do not enforce.

A JSON document nested a few hundred thousand levels deep makes ``json.loads`` (and anything that
walks the result) raise ``RecursionError`` — a 500 and a long traceback per request. Routes built
with ``JSONLimitedRoute`` measure the nesting of a JSON body before anything parses it and refuse
more than ``MAX_JSON_DEPTH`` levels with 400. The scan skips string contents and stops at the first
level too deep, so a hostile body costs one pass over its bytes at most.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from phone_agent.errors import PhoneAgentError

MAX_JSON_DEPTH = 64  # OpenAI tool schemas nest ~10 levels; nothing legitimate comes near this
MAX_DB_INT = 2**63 - 1  # the largest id a database integer column holds (path and query ids)
BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")


class JSONTooDeep(PhoneAgentError):
    """A JSON request body nested deeper than the limit."""

    status_code = 400


def json_depth(body: bytes, limit: int = MAX_JSON_DEPTH) -> int:
    """Nesting depth of a JSON document (strings ignored); stops counting just above ``limit``."""
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    depth = deepest = 0
    for byte in brackets:
        if byte in b"[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        else:
            depth -= 1
    return deepest


def check_json_depth(body: bytes, limit: int = MAX_JSON_DEPTH) -> None:
    """Raise ``JSONTooDeep`` when ``body`` nests deeper than ``limit``."""
    if json_depth(body, limit) > limit:
        raise JSONTooDeep(f"The JSON body is nested more than {limit} levels deep; send a flatter document.")


class JSONLimitedRoute(APIRoute):
    """A route whose JSON request body is depth-checked before FastAPI (or the handler) parses it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def limited(request: Request) -> Response:
            content_type = request.headers.get("content-type", "")
            if request.method in BODY_METHODS and ("json" in content_type or not content_type):
                check_json_depth(await request.body())  # cached: the handler reads the same bytes
            return await handler(request)

        return limited
