"""FastAPI dependencies shared by the routers (Annotated aliases, FastAPI-template style)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from phone_agent.config import Settings
from phone_agent.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    """The process runtime created by create_app."""
    return request.app.state.runtime


def get_settings(runtime: Annotated[Runtime, Depends(get_runtime)]) -> Settings:
    """Settings current at the start of this request (admin changes apply to the next one)."""
    return runtime.settings


async def get_session(runtime: Annotated[Runtime, Depends(get_runtime)]) -> AsyncIterator[AsyncSession]:
    """A database session committed when the request succeeds."""
    async with runtime.sessions() as session, session.begin():
        yield session


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
