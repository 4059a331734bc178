"""The ``phone-agent`` command line: serve, config, db here; the other groups live in ``commands/``.

Only typer and rich load at start: settings (pydantic), the database, the app and the voice stack
(Pipecat) load inside the command that needs them, so ``--help``, ``version`` and ``config show`` stay
quick and only ``serve``/``call`` print Pipecat's banner (``tests/test_cli_startup.py``).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from phone_agent import __version__
from phone_agent.commands import admin as admin_commands
from phone_agent.commands import call as call_commands
from phone_agent.commands import chat as chat_commands
from phone_agent.commands import dial as dial_commands
from phone_agent.commands import ops as ops_commands
from phone_agent.commands.common import console, err_console, fail, settings_or_exit, settings_with_overrides
from phone_agent.commands.memory import register as register_memory_commands
from phone_agent.errors import ConfigError, PhoneAgentError

if TYPE_CHECKING:
    from phone_agent.config import Role

app = typer.Typer(
    help="phone-agent: an AI phone receptionist.", no_args_is_help=True, pretty_exceptions_enable=False
)
config_app = typer.Typer(help="Show the configuration and where each value comes from.")
db_app = typer.Typer(help="Database migrations.")
app.add_typer(config_app, name="config")
app.add_typer(db_app, name="db")
register_memory_commands(app)  # knowledge add/list/delete/reindex, memory show/forget/purge
app.command("doctor")(ops_commands.doctor)
app.command("logs")(ops_commands.logs)
app.command("call")(call_commands.call)
app.command("chat")(chat_commands.chat)
app.command("dial")(dial_commands.dial)
app.add_typer(admin_commands.admin_app, name="admin")


@app.command()
def version() -> None:
    """Print the version."""
    console.print(f"phone-agent {__version__}")


@app.command()
def serve(
    role: Annotated[str, typer.Option(help="all | orchestrator | voice-bridge | memory")] = "all",
    host: Annotated[str | None, typer.Option(help="Interface to bind (default from settings).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: the role's port).")] = None,
    migrate: Annotated[bool | None, typer.Option(help="Apply migrations on start.")] = None,
    workers: Annotated[int, typer.Option(help="Worker processes (uvicorn).")] = 1,
) -> None:
    """Run the agent. With no configuration: everything in one process on the embedded database."""
    import uvicorn

    from phone_agent.app import create_app
    from phone_agent.config import ROLES
    from phone_agent.ops.logging import setup_logging
    from phone_agent.voice.stream_limits import MAX_MESSAGE_BYTES

    if role not in ROLES:
        raise fail(f"--role must be one of {', '.join(ROLES)}, not {role!r}.")
    settings = settings_or_exit()
    setup_logging(settings)
    chosen: Role = role  # type: ignore[assignment]
    bind_port = port or settings.port_for(chosen)
    started = time.perf_counter()
    try:
        application = create_app(
            settings, chosen, migrate=migrate, env=os.environ, freeze_heap=True, record_greeting=True
        )
    except PhoneAgentError as exc:
        raise fail(str(exc)) from None
    console.print(
        f"phone-agent {__version__}: role={role} on http://{host or settings.host}:{bind_port} "
        f"(app built in {1000 * (time.perf_counter() - started):.0f} ms)",
        highlight=False,
    )
    if chosen in ("all", "orchestrator"):
        console.print(f"admin page: {admin_url(host or settings.host, bind_port)}", highlight=False)
    options: dict[str, Any] = {
        "host": host or settings.host,
        "port": bind_port,
        "log_config": None,
        "ws_per_message_deflate": False,  # a media stream's audio does not compress; don't pay for it
        "proxy_headers": False,  # forwarded headers: our middleware, from trusted_proxies only
        "ws_max_size": MAX_MESSAGE_BYTES,  # Twilio sends ~300 bytes; a bigger frame closes the socket
    }
    if workers <= 1:
        uvicorn.run(application, **options)
        return
    # Several processes share the port, each with its own app; migrations run here, once.
    from phone_agent.storage.db import is_sqlite

    if is_sqlite(settings.database_url) if migrate is None else migrate:
        asyncio.run(_upgrade_database(settings.database_url))
    os.environ[WORKER_ROLE_ENV] = chosen
    uvicorn.run("phone_agent.cli:worker_app", factory=True, workers=workers, **options)


WORKER_ROLE_ENV = "_PHONE_AGENT_SERVE_ROLE"


def admin_url(host: str, port: int) -> str:
    """The admin page's URL on this machine (a wildcard bind address is reached as localhost)."""
    if host in ("0.0.0.0", "::", ""):
        host = "localhost"
    elif ":" in host:
        host = f"[{host}]"  # an IPv6 address
    return f"http://{host}:{port}/admin"


def worker_app() -> Any:
    """The app of one ``serve --workers N`` process (uvicorn calls this in each worker)."""
    from phone_agent.app import create_app
    from phone_agent.ops.logging import setup_logging

    settings = settings_or_exit()
    setup_logging(settings)
    role: Role = os.environ.get(WORKER_ROLE_ENV, "all")  # type: ignore[assignment]
    return create_app(settings, role, migrate=False, env=os.environ, freeze_heap=True, record_greeting=True)


@config_app.command("show")
def config_show(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Print every setting with its value and source (secrets masked)."""
    import json

    from rich.table import Table

    settings = asyncio.run(settings_with_overrides(settings_or_exit()))
    rows = settings.public_view()
    if as_json:
        console.print_json(json.dumps({"config_file": settings.config_file, "settings": rows}))
        return
    table = Table(title=f"phone-agent settings (config file: {settings.config_file or 'none'})")
    for column in ("setting", "value", "source", "env"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["name"], _shown(row["value"]), row["source"], row["env"])
    console.print(table)


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply database migrations (SQLite or PostgreSQL from DATABASE_URL)."""

    settings = settings_or_exit()
    try:
        now = asyncio.run(_upgrade_database(settings.database_url, revision))
    except PhoneAgentError as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(f"database_url: cannot reach the database ({exc}).", 1) from None
    console.print(f"database at revision {now}")


async def _upgrade_database(database_url: str, revision: str = "head") -> str | None:
    """Apply migrations up to ``revision``; returns the revision the database is at."""
    from phone_agent.storage.db import create_engine
    from phone_agent.storage.migrate import current_revision, upgrade

    engine = create_engine(database_url)
    try:
        await upgrade(engine, revision)
        return await current_revision(engine)
    finally:
        await engine.dispose()


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except ConfigError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
