"""`python -m bench --quick` end to end: the fakes, a real bot subprocess, a real caller; it must
produce figures (Markdown rows with numbers, JSON summaries, a PNG) — never judged on speed: the
latency table, v2v per reply shape and the cold first call, for stock and ours."""

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
    assert "## Voice-to-voice by reply shape" in report and "## First call of a fresh process" in report
    data = json.loads((tmp_path / "quick.json").read_text())
    runs = data["runs"]
    assert [(r["target"], r["phase"]) for r in runs] == [
        ("stock", "cold"),
        ("stock", "latency"),
        ("ours", "cold"),
        ("ours", "latency"),
    ]
    assert all(r["summary"]["v2v_p50"] > 0 and r["summary"]["greeting_p50"] > 0 for r in runs)
    lag = {(r["target"], r["phase"]): r["loop_lag"] for r in runs}
    assert lag[("ours", "latency")]["samples"] > 0  # read from the agent's own /metrics
    assert 0 <= lag[("ours", "latency")]["over_20ms"] <= 100
    assert lag[("stock", "latency")] == {}  # stock Pipecat has no such histogram
    shapes = {s["target"]: s["shapes"] for s in data["reply_shapes"]}
    for target in ("stock", "ours"):
        assert shapes[target]["overall"]["v2v_p50"] > 0
        assert shapes[target]["comma-clause"]["turns"] == 1  # caller turn 1 gets the first shape
    for cold in data["cold"]:
        assert cold["greeting_cold"] > 0 and cold["greeting_warm_p50"] > 0
        assert cold["turns"][0]["cold"] > 0 and cold["turns"][0]["warm_p50"] > 0
    assert (tmp_path / "quick.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
