"""Every place our code touches a Pipecat private name is listed in docs/architecture.md.

A private name is one Pipecat itself defines with a leading underscore: a method we override or
call (``def _connect`` / ``super()._connect()``), an attribute of a Pipecat base class we read or
set (``self._websocket``), a private attribute of a Pipecat object we hold (``tts._text_aggregator``)
or a private module we import (``smart_turn._whisper_features``). Each must appear, under its
module, in the table "Pipecat internals we depend on" with the reason it stays, so a Pipecat
upgrade knows what to re-check and a new private access is a decision, not an accident.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import re
import textwrap
from pathlib import Path

import pipecat

import phone_agent

SRC = Path(phone_agent.__file__).parent
ARCHITECTURE = Path(__file__).parent.parent / "docs" / "architecture.md"
PRIVATE = re.compile(r"^_[a-z0-9][a-z0-9_]*$")
TABLE_TITLE = "## Pipecat internals we depend on"


def _private_names(tree: ast.AST) -> set[str]:
    """Private methods defined and private ``self.`` attributes used in ``tree``."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and PRIVATE.match(node.name):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and _is_self(node.value) and PRIVATE.match(node.attr):
            names.add(node.attr)
    return names


def _is_self(node: ast.AST) -> bool:
    return isinstance(node, ast.Name) and node.id in ("self", "cls")


@functools.cache
def pipecat_names() -> frozenset[str]:
    """Every private name Pipecat's own source defines."""
    names: set[str] = set()
    for path in Path(pipecat.__file__).parent.rglob("*.py"):
        names |= _private_names(ast.parse(path.read_text(encoding="utf-8")))
    return frozenset(names)


@functools.cache
def inherited_names(cls: type) -> frozenset[str]:
    """Private names of the Pipecat classes ``cls`` derives from."""
    names: set[str] = set()
    for base in cls.__mro__:
        if base.__module__.startswith("pipecat."):
            try:
                names |= _private_names(ast.parse(textwrap.dedent(inspect.getsource(base))))
            except (OSError, TypeError):  # a class without source (compiled)
                continue
    return frozenset(names)


def pipecat_private_uses() -> dict[str, set[str]]:
    """``{"voice/x.py": {"_name", ...}}`` for every module of ours that touches Pipecat privates."""
    found: dict[str, set[str]] = {}
    for path in _our_modules():
        text = path.read_text(encoding="utf-8")
        if "pipecat" not in text:
            continue
        where = path.relative_to(SRC).as_posix()
        tree = ast.parse(text)
        uses = found.setdefault(where, set())
        module = _module(path)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pipecat"):
                parts = (node.module or "").split(".") + [alias.name for alias in node.names]
                uses |= {part for part in parts if PRIVATE.match(part)}
            elif isinstance(node, ast.ClassDef) and isinstance(getattr(module, node.name, None), type):
                uses |= _private_names(node) & inherited_names(getattr(module, node.name))
            elif (
                isinstance(node, ast.Attribute)
                and not _is_self(node.value)
                and PRIVATE.match(node.attr)
                and node.attr in pipecat_names()
                and node.attr not in _own_names()
            ):
                uses.add(node.attr)
        if not uses:
            del found[where]
    return found


@functools.cache
def _own_names() -> frozenset[str]:
    """Private names of our classes that owe nothing to Pipecat: ``x._lock`` of those is ours."""
    names: set[str] = set()
    for path in _our_modules():
        module = _module(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            cls = getattr(module, node.name, None) if isinstance(node, ast.ClassDef) else None
            if isinstance(cls, type) and not inherited_names(cls):
                names |= _private_names(node)
    return frozenset(names)


def _our_modules() -> list[Path]:
    """Our source files, except ``__main__`` (it runs the CLI) and the migration scripts."""
    return [
        path
        for path in sorted(SRC.rglob("*.py"))
        if path.name != "__main__.py" and "migrations" not in path.relative_to(SRC).parts
    ]


def _module(path: Path) -> object:
    return importlib.import_module("phone_agent." + ".".join(path.relative_to(SRC).with_suffix("").parts))


def documented_uses() -> dict[str, set[str]]:
    """The private names each row of the architecture table mentions, by module."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    table = text.split(TABLE_TITLE, 1)[1].split("\n## ", 1)[0]
    documented: dict[str, set[str]] = {}
    for row in table.splitlines():
        cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
        where = re.fullmatch(r"`([\w/]+\.py)`", cells[0]) if cells else None
        if where:
            names = set(re.findall(r"(?<!\w)(_[a-z0-9][a-z0-9_]*)", row))
            documented.setdefault(where.group(1), set()).update(names)
    return documented


def test_every_private_pipecat_name_we_touch_is_in_the_architecture_table() -> None:
    documented = documented_uses()
    missing = {
        where: sorted(names - documented.get(where, set()))
        for where, names in pipecat_private_uses().items()
        if names - documented.get(where, set())
    }
    assert not missing, (
        f"Pipecat private names used but not listed in docs/architecture.md ({TABLE_TITLE[3:]}): "
        f"{missing}. Use a public hook if Pipecat has one; otherwise add a row with the reason and "
        "the test that covers it."
    )


def test_the_table_lists_only_modules_that_exist() -> None:
    assert documented_uses(), "the table was not found"
    assert [where for where in documented_uses() if not (SRC / where).exists()] == []


def test_the_finder_sees_overrides_attributes_and_private_modules() -> None:
    uses = pipecat_private_uses()
    assert "_connect" in uses["voice/realtime.py"]  # an override of a private method
    assert "_text_aggregator" in uses["voice/first_clause.py"]  # a private attribute of a held object
    assert "_whisper_features" in uses["voice/turn_pool.py"]  # a private module
    assert "_lock" not in uses.get("voice/phrase_cache.py", set())  # our own private names are ours
