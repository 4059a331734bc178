"""Bring README's settings table in line with Settings: new settings get a row (after the setting
declared before them), existing rows get the current description. Run: .venv/bin/python scripts/readme_settings.py"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import SecretStr

from phone_agent.config import Settings, env_names, is_secret, setting_names

README = Path(__file__).resolve().parents[1] / "README.md"


def row(name: str) -> str:
    field = Settings.model_fields[name]
    env = " / ".join(f"`{v}`" for v in reversed(env_names(name))) if len(env_names(name)) > 1 else f"`{env_names(name)[0]}`"
    default = field.default
    if default is None or isinstance(default, SecretStr):
        shown = "— (secret)" if is_secret(name) else "—"
    else:
        shown = f"`{default}`"
    return f"| `{name}` | {env} | {shown} | {field.description} |"


def main() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    index = {m.group(1): i for i, line in enumerate(lines) if (m := re.match(r"^\| `([a-z0-9_]+)` \|", line))}
    previous = None
    for name in setting_names():
        if name in index:
            cells = lines[index[name]].split(" | ")
            cells[-1] = f"{Settings.model_fields[name].description} |"
            lines[index[name]] = " | ".join(cells)
        else:
            at = index[previous] + 1 if previous in index else max(index.values()) + 1
            lines.insert(at, row(name))
            index = {k: (v + 1 if v >= at else v) for k, v in index.items()} | {name: at}
        previous = name
    README.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
