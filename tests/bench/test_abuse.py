"""`python -m bench.abuse --quick` end to end: a real agent process, a live call and a few hundred
abusive Media Stream messages beside it. The agent must survive, the live call must be answered
while the junk is refused or ignored, and the report must say so — never judged on speed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_abuse_run_keeps_the_agent_up_and_the_live_call_answered(tmp_path: Path) -> None:
    out = tmp_path / "abuse.md"
    done = subprocess.run(
        [sys.executable, "-m", "bench.abuse", "--quick", "--no-pin", "--min-messages", "300",
         "--flood", "200", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = out.read_text()
    assert "agent alive after  yes, /health after: 200" in report
    during = re.search(r"during the fuzz +v2v p50 \d+ ms p95 \d+ ms \((\d+) turns; 0 missed", report)
    assert during and int(during.group(1)) >= 1, report  # the live call's turn was answered
    sent = re.search(r"messages sent +(\d+)", report)
    assert sent and int(sent.group(1)) >= 300, report
    rows = {
        cells[0]: cells[2]
        for line in report.splitlines()
        if line.startswith("| ") and not line.startswith("| category")
        for cells in [[c.strip() for c in line.strip("|").split("|")]]
    }
    assert rows["bad token"].startswith("closed 1008")  # refused before any pipeline
    assert rows["replayed token (call ended)"].startswith("closed 1008")
    assert rows["event is an object"].startswith("open (we hung up)")  # ignored: the call stayed up
    assert "tracebacks" not in report
