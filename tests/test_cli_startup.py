"""The quick commands (--help, version, config show, doctor) never load the voice stack.

Each command runs in a fresh ``python -X importtime -m phone_agent`` process: the interpreter lists
every module it imported on stderr, so the test reads what was really loaded (and Pipecat's banner,
printed when ``pipecat`` is imported, must not appear).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_cli import run_cli

VOICE_STACK = ("pipecat", "phone_agent.voice", "onnxruntime")


def imported_modules(stderr: str) -> set[str]:
    """Module names from ``-X importtime`` lines (``import time: self | cumulative | name``)."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            names.add(line.rsplit("|", 1)[1].strip())
    return names


@pytest.mark.parametrize(
    ("args", "code"),
    [(["--help"], 0), (["version"], 0), (["config", "show"], 0), (["doctor", "--timeout", "2"], 1)],
    ids=["help", "version", "config-show", "doctor"],
)
def test_quick_commands_do_not_import_the_voice_stack(tmp_path: Path, args: list[str], code: int) -> None:
    result = run_cli(args, tmp_path, env={"COLUMNS": "200"}, python_args=("-X", "importtime"))
    assert result.returncode == code, result.stdout + result.stderr[-2000:]
    modules = imported_modules(result.stderr)
    assert "phone_agent.cli" in modules  # the listing is real: the CLI itself is in it
    loaded = sorted(name for name in modules if name.startswith(VOICE_STACK))
    assert loaded == [], f"{args} imported {loaded[:10]}"
    assert "Pipecat" not in result.stdout + result.stderr


def test_help_does_not_load_settings_or_the_database(tmp_path: Path) -> None:
    result = run_cli(["--help"], tmp_path, python_args=("-X", "importtime"))
    assert result.returncode == 0 and "serve" in result.stdout
    modules = imported_modules(result.stderr)
    assert not {"pydantic", "sqlalchemy", "fastapi", "openai"} & modules
