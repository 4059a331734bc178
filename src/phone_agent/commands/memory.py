"""``phone-agent knowledge ...`` and ``phone-agent memory ...`` commands.

knowledge add FILES…   read text/Markdown/HTML/PDF, chunk, embed and index them (progress bar)
knowledge list         documents with their chunk counts
knowledge delete ID    remove a document
knowledge reindex      re-chunk and re-embed (one document with --id)
memory show PHONE      what the agent knows about a caller
memory forget PHONE    delete everything about a caller (profile, memories, calls, transcripts)
memory purge           apply memory_retention_days now

They use the store the settings pick (local database, or the memory service when
``memory_backend=http``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:  # the store and database modules load when a command runs, not at CLI start
    from phone_agent.memory.base import MemoryStore
    from phone_agent.services import Services

knowledge_app = typer.Typer(help="The business's knowledge base: add, list, delete, re-index documents.")
memory_app = typer.Typer(help="Caller memory: show what is known, forget a caller, apply retention.")
console = Console()
err_console = Console(stderr=True)
T = TypeVar("T")


def register(app: typer.Typer) -> None:
    """Add the ``knowledge`` and ``memory`` command groups to the main CLI."""
    app.add_typer(knowledge_app, name="knowledge")
    app.add_typer(memory_app, name="memory")


def _run(job: Callable[[Services, MemoryStore], Awaitable[T]]) -> T:
    """Run ``job`` with the command's Services and its memory store; errors print one line, exit 1."""
    from phone_agent.commands.common import command_services, settings_or_exit
    from phone_agent.errors import PhoneAgentError

    settings = settings_or_exit()

    async def main() -> T:
        async with command_services(settings) as services:
            return await job(services, services.memory)

    try:
        return asyncio.run(main())
    except (PhoneAgentError, OSError) as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


@knowledge_app.command("add")
def knowledge_add(
    files: Annotated[list[Path], typer.Argument(help="Text, Markdown, HTML or PDF files.", exists=True)],
) -> None:
    """Add documents to the knowledge base."""

    from phone_agent.memory.documents import DocumentError, read_document

    async def job(_services: Services, store: MemoryStore) -> list[tuple[str, str]]:
        failures: list[tuple[str, str]] = []
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task("indexing", total=len(files))
            for path in files:
                progress.update(task, description=f"indexing {path.name}")
                try:
                    title, text, kind = await asyncio.to_thread(read_document, path)
                    info = await store.add_document(
                        title=title, text=text, content_type=kind, source_name=path.name
                    )
                    progress.console.print(
                        f"added #{info.id} {info.title!r}: {info.chunks} chunks", highlight=False
                    )
                except DocumentError as exc:
                    failures.append((path.name, str(exc)))
                progress.advance(task)
        return failures

    failures = _run(job)
    for name, message in failures:
        err_console.print(f"[bold red]skipped[/] {name}: {message}", highlight=False)
    if failures:
        raise typer.Exit(1)


@knowledge_app.command("list")
def knowledge_list(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List knowledge documents."""

    async def job(_services: Services, store: MemoryStore) -> list[Any]:
        return await store.list_documents()

    documents = _run(job)
    if as_json:
        console.print_json(json.dumps([d.model_dump(mode="json") for d in documents]))
        return
    table = Table(title=f"{len(documents)} knowledge documents")
    for column in ("id", "title", "source", "type", "chunks", "added"):
        table.add_column(column)
    for d in documents:
        added = d.created_at.strftime("%Y-%m-%d %H:%M") if d.created_at else "-"
        table.add_row(str(d.id), d.title, d.source_name or "-", d.content_type, str(d.chunks), added)
    console.print(table)


@knowledge_app.command("delete")
def knowledge_delete(
    document_id: Annotated[int, typer.Argument(help="Document id (see `knowledge list`).")],
) -> None:
    """Delete a document and its chunks."""

    async def job(_services: Services, store: MemoryStore) -> bool:
        return await store.delete_document(document_id)

    if not _run(job):
        err_console.print(f"[bold red]error:[/] no document #{document_id}", highlight=False)
        raise typer.Exit(1)
    console.print(f"deleted document #{document_id}")


@knowledge_app.command("reindex")
def knowledge_reindex(
    document_id: Annotated[int | None, typer.Option("--id", help="Only this document.")] = None,
) -> None:
    """Re-chunk and re-embed documents (after changing the embeddings model, say)."""

    async def job(_services: Services, store: MemoryStore) -> int:
        return await store.reindex_documents(document_id)

    console.print(f"re-indexed: {_run(job)} chunks written")


@memory_app.command("show")
def memory_show(
    phone: Annotated[str, typer.Argument(help="The caller's phone number (E.164).")],
    limit: Annotated[int, typer.Option(help="How many memories to show.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show a caller's profile and memories."""

    async def job(_services: Services, store: MemoryStore) -> Any:
        return await store.caller_context(phone, limit=limit)

    context = _run(job)
    if as_json:
        console.print_json(context.model_dump_json())
        return
    if not context.known:
        console.print(f"{context.phone}: unknown caller")
        return
    console.print(f"[bold]{context.name or 'name unknown'}[/] {context.phone}")
    for key, value in context.profile.items():
        console.print(f"  {key.replace('_', ' ')}: {value}", highlight=False)
    table = Table(title=f"{len(context.memories)} memories")
    for column in ("date", "key", "memory", "call"):
        table.add_column(column)
    for m in context.memories:
        date = m.created_at.strftime("%Y-%m-%d") if m.created_at else "-"
        table.add_row(date, m.key or "-", m.content, m.call_sid or "-")
    console.print(table)


@memory_app.command("forget")
def memory_forget(
    phone: Annotated[str, typer.Argument(help="The caller's phone number (E.164).")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete everything about a caller: profile, memories, calls and transcripts."""
    if not yes:
        typer.confirm(f"Delete everything about {phone}?", abort=True)

    async def job(services: Services, _store: MemoryStore) -> bool:
        return await services.forget_caller(phone)

    console.print(f"{phone}: deleted" if _run(job) else f"{phone}: nothing stored")


@memory_app.command("purge")
def memory_purge(
    days: Annotated[
        int | None, typer.Option(help="Age limit in days (default: memory_retention_days).")
    ] = None,
) -> None:
    """Delete caller data older than the retention period."""

    async def job(services: Services, store: MemoryStore) -> int:
        return await store.purge_expired(services.settings.memory_retention_days if days is None else days)

    console.print(f"retention: {_run(job)} rows deleted")
