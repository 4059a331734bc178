"""FastAPI dependencies shared by the routers (Annotated aliases, FastAPI-template style).

``ServicesDep`` is how a request reads the process's current ``Services``: once, at its start, held
open until it ends, so an admin change in the middle of a request cannot give it two Settings.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from phone_agent.config import Settings
from phone_agent.runtime import Runtime
from phone_agent.services import Services

LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def get_runtime(request: Request) -> Runtime:
    """The process runtime created by create_app."""
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_services(runtime: Annotated[Runtime, Depends(get_runtime)]) -> AsyncIterator[Services]:
    """The Services current at the start of this request, kept open until it ends."""
    async with runtime.use() as services:
        yield services


def get_settings(services: Annotated[Services, Depends(get_services)]) -> Settings:
    """Settings of this request's Services (admin changes apply to the next request)."""
    return services.settings


async def get_session(services: Annotated[Services, Depends(get_services)]) -> AsyncIterator[AsyncSession]:
    """A database session committed when the request succeeds."""
    async with services.sessions() as session, session.begin():
        yield session


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
ServicesDep = Annotated[Services, Depends(get_services)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]


def token_matches(request: Request, token: str | None) -> bool:
    """A configured token sent as ``Authorization: Bearer`` or ``?token=``."""
    if not token:
        return False
    given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    given = given or request.query_params.get("token", "")
    return hmac.compare_digest(given.encode(), token.encode())


def is_loopback(request: Request) -> bool:
    """True when the client connected from this machine."""
    return request.client is not None and request.client.host in LOOPBACK


def status_allowed(request: Request, token: str | None) -> bool:
    """For machine endpoints (``/metrics``): the status token when one is set, else loopback clients."""
    if token:
        return token_matches(request, token)
    return is_loopback(request)
