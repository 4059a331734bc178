"""`python -m bench --quick` end to end: the fakes, a real bot subprocess, a real caller; it must
produce figures (a Markdown row with numbers, JSON summaries, a PNG) — never judged on speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_writes_markdown_json_and_png(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path), "--label", "quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = (tmp_path / "quick.md").read_text()
    for target in ("stock", "ours"):  # the baseline and ours, same fakes, same caller
        rows = [line for line in report.splitlines() if line.startswith(f"| {target} | 1 |")]
        assert rows, report
        cells = [c.strip() for c in rows[0].strip("|").split("|")]
        assert cells[3].startswith("1/1 (")  # the caller's one utterance was answered
        assert all(c.isdigit() for c in cells[4:7])  # v2v p50/p95/p99 in ms
    assert "ours / stock" in report
    runs = json.loads((tmp_path / "quick.json").read_text())["runs"]
    assert [r["target"] for r in runs] == ["stock", "ours"]
    assert all(r["summary"]["v2v_p50"] > 0 and r["summary"]["greeting_p50"] > 0 for r in runs)
    assert (tmp_path / "quick.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
