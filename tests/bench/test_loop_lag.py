"""bench/loop_lag.py: a level's event-loop lag from two readings of the agent's histogram."""

from __future__ import annotations

import bench.loop_lag as loop_lag
import pytest
from bench.loop_lag import late_shares, read_histogram

from phone_agent.ops import metrics

INF = float("inf")


def test_shares_are_of_the_samples_between_the_two_readings() -> None:
    before = {0.01: 90.0, 0.02: 95.0, 0.05: 98.0, 0.1: 99.0, INF: 100.0}
    after = {0.01: 170.0, 0.02: 180.0, 0.05: 190.0, 0.1: 195.0, INF: 200.0}
    shares = late_shares(before, after)
    assert shares["samples"] == 100
    assert shares["over_20ms"] == 15.0 and shares["over_50ms"] == 8.0 and shares["over_100ms"] == 4.0


def test_no_reading_or_no_new_sample_gives_no_figure() -> None:
    reading = {0.02: 5.0, 0.05: 5.0, 0.1: 5.0, INF: 5.0}
    assert late_shares(None, reading) == {} and late_shares(reading, None) == {}
    assert late_shares(reading, dict(reading)) == {}


def test_reads_the_histogram_the_agent_exposes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The exposition's text as the agent's /metrics answers it (the quick bench reads a real one)."""
    metrics.event_loop_lag(0.3, 0.1)  # one sample later than every threshold
    exposed = metrics.exposition().decode()

    class Answer:
        status_code, text = 200, exposed

    monkeypatch.setattr(loop_lag.httpx, "get", lambda url, timeout: Answer())
    counts = read_histogram(1)
    assert counts is not None and counts[INF] >= 1 and counts[INF] - counts[0.1] >= 1
    assert set(counts) >= {0.02, 0.05, 0.1, INF}
