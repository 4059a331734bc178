"""The import graph follows the layers in docs/architecture.md: a new upward import or cycle fails CI."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "phone_agent"
DOC = ROOT / "docs" / "architecture.md"


def layer_ranks() -> dict[str, int]:
    """``{module or package name: rank}`` from the layer table of docs/architecture.md."""
    ranks: dict[str, int] = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        row = re.match(r"^\|\s*(\d+)\s*\|(.*?)\|", line)
        if row:
            for name in re.findall(r"`([A-Za-z_]+)`", row.group(2)):
                ranks[name] = int(row.group(1))
    return ranks


def node_of(module: str) -> str | None:
    """The layer node of ``phone_agent.x.y`` (``x``), or None for the package itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def imports_of(path: Path) -> list[tuple[int, str]]:
    """Every ``phone_agent`` module imported by a file (inside functions and TYPE_CHECKING too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "phone_agent":
                found += [(node.lineno, f"phone_agent.{alias.name}") for alias in node.names]
            elif node.module.startswith("phone_agent."):
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("phone_agent.")]
    return found


def violations(package: Path = PACKAGE) -> list[str]:
    """Each import in ``package`` that goes up (or sideways) in the layer table."""
    ranks = layer_ranks()
    problems = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package.parent).with_suffix("")
        source = node_of(".".join(relative.parts))
        if source is None or source == "__init__":
            continue
        if source not in ranks:
            problems.append(f"{relative}: {source!r} has no row in docs/architecture.md")
            continue
        for line, module in imports_of(path):
            target = node_of(module)
            if target is None or target == source or target == "__version__":
                continue
            if target not in ranks:
                problems.append(f"{relative}:{line}: imports {module}, which has no row in the layer table")
            elif ranks[target] >= ranks[source]:
                problems.append(
                    f"{relative}:{line}: {source} (rank {ranks[source]}) imports {module} "
                    f"(rank {ranks[target]}): only lower ranks may be imported"
                )
    return problems


def test_the_layer_table_names_every_package_and_root_module() -> None:
    ranks = layer_ranks()
    names = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    names |= {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert names - set(ranks) == set()
    assert set(ranks) - names == set()  # no stale rows


def test_imports_only_go_down_the_layers() -> None:
    assert violations() == []


def test_the_check_catches_upward_and_sideways_imports(tmp_path: Path) -> None:
    """The check itself can fail: storage importing the runtime, memory importing telephony."""
    package = tmp_path / "phone_agent"
    for name, text in {
        "storage/calls.py": "def f():\n    from phone_agent.runtime import Runtime\n",
        "memory/calls.py": "from phone_agent.telephony.control import CallControl\n",
        "voice/ok.py": "from phone_agent.brain import pipeline\nfrom phone_agent import __version__\n",
    }.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text, encoding="utf-8")
    found = violations(package)
    assert len(found) == 2
    assert "storage (rank 4) imports phone_agent.runtime (rank 9)" in found[1]
    assert "memory (rank 6) imports phone_agent.telephony.control (rank 6)" in found[0]
