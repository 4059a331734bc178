""" "Try it": the owner chats with the brain as a test caller, with the settings saved right now.

The conversation lives in the browser and is sent whole with every message, so test chats are not
stored as calls and the agent learns nothing about callers from them. The agent is the one phone
calls and ``/v1/chat`` use (``Services.agent``), tools included: what it would do is
shown next to its answer.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from phone_agent.admin import auth
from phone_agent.api.deps import RuntimeDep, ServicesDep

router = APIRouter(tags=["admin"], dependencies=[Depends(auth.require_admin)])


class TryMessage(BaseModel):
    """One line of the test conversation."""

    role: Literal["user", "assistant"]
    content: str = Field(min_length=1, max_length=2000)


class TryRequest(BaseModel):
    """The test conversation so far; the last message is the test caller's."""

    messages: list[TryMessage] = Field(min_length=1, max_length=40)


@router.post("/admin/api/try-it")
async def try_it(body: TryRequest, runtime: RuntimeDep, services: ServicesDep) -> dict[str, Any]:
    """The agent's answer to the last message, and the tools it used."""
    if body.messages[-1].role != "user":
        return {"reply": "", "tool_calls": [], "provider": None, "ended": False}
    history = [m.model_dump() for m in body.messages]
    ctx = services.tool_context(caller_phone=None, channel="chat", tasks=runtime.tasks)
    result = await services.agent().run_turn(history, ctx)
    answered = result.provider != "canned"
    runtime.providers.record("llm", ok=answered, detail=None if answered else "no LLM endpoint answered")
    return {
        "reply": result.text,
        "tool_calls": result.tool_records,
        "provider": result.provider,
        "ended": result.ended,
    }
