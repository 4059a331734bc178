"""``phone-agent admin set-password``: set the admin page's password from the machine itself
(first run without a browser, or a forgotten password). Every open admin session ends."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from phone_agent.errors import ConfigError

if TYPE_CHECKING:
    from phone_agent.config import Settings

admin_app = typer.Typer(help="The admin page's account.")


async def _set_password(settings: Settings, password: str) -> None:
    from sqlalchemy import delete

    from phone_agent.admin import auth
    from phone_agent.commands.common import command_services
    from phone_agent.storage.db import transaction
    from phone_agent.storage.tables import AdminSession

    async with command_services(settings, migrate=True) as services:
        await auth.set_password(services, password, actor="cli")
        async with transaction(services.sessions) as session:
            await session.execute(delete(AdminSession))


@admin_app.command("set-password")
def set_password(
    stdin: Annotated[bool, typer.Option("--stdin", help="Read the password from standard input.")] = False,
) -> None:
    """Set the admin password (argon2 hash in the database) and log every browser out."""
    from phone_agent.admin import auth
    from phone_agent.config import load_settings

    if stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("New admin password", hide_input=True, confirmation_prompt=True)
    if len(password) < auth.MIN_PASSWORD_LENGTH:
        typer.echo(f"error: use at least {auth.MIN_PASSWORD_LENGTH} characters.", err=True)
        raise typer.Exit(2)
    try:
        settings = load_settings(os.environ)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    asyncio.run(_set_password(settings, password))
    typer.echo("Admin password set; every admin session was ended.")
    if settings.admin_password is not None:
        typer.echo("Note: ADMIN_PASSWORD is set and replaces this password at the next login.", err=True)
