"""Capacity verdicts and soak figures on hand-made runs."""

from __future__ import annotations

import httpx
import pytest
from bench.callers import CallPlan, run_calls
from bench.capacity import largest_holding, shortfalls, soak_drift, soak_rss_per_call
from bench.metrics import RunFigures, figures
from bench.providers import Latencies

MB = 1 << 20


def run_at(n: int, p95: float, **counts: int) -> RunFigures:
    run = RunFigures("ours", n, phase="capacity", turns=10, calls=n, **counts)
    run.v2v = [p95] * 10
    return run


def test_largest_n_within_factor_of_single_call() -> None:
    runs = [run_at(n, p95) for n, p95 in ((1, 1.0), (5, 1.1), (10, 1.19), (20, 1.5))]
    assert largest_holding(runs) == 10
    assert shortfalls(runs[-1], 1.0) == ["v2v p95 1500 ms > 1.2x N=1 (1000 ms)"]


def test_a_missed_late_or_failed_turn_breaks_capacity_even_within_the_p95() -> None:
    for counts in ({"unanswered": 1}, {"late": 1}, {"failed_calls": 1}):
        runs = [run_at(1, 1.0), run_at(5, 1.0), run_at(10, 1.0, **counts), run_at(20, 1.0)]
        assert largest_holding(runs) == 5, counts
    assert largest_holding([run_at(1, 1.0, late=1), run_at(5, 1.0)]) is None
    assert largest_holding([run_at(5, 1.0)]) is None  # no N=1 to compare with


def test_soak_drift_compares_minute_two_with_the_last_full_minute() -> None:
    run = RunFigures("ours", 10, phase="soak", rss_idle=200 * MB)
    run.rss_series = [(float(t), (300 + t // 60) * MB) for t in range(0, 640, 5)]  # +1 MB a minute
    early, late = soak_drift(run, 600) or (0, 0)
    assert (early, late) == (301 * MB, 309 * MB)  # minute 2 = [60, 120); last full = [540, 600)
    assert soak_rss_per_call(run, 600) == pytest.approx(10.9 * MB)
    assert soak_drift(run, 120) is None  # too short to tell minute 2 from the last


async def test_a_webhook_that_fails_is_a_failed_call_not_the_end_of_the_run() -> None:
    async def plan_call(index: int) -> CallPlan:
        raise httpx.ReadTimeout("the agent did not answer the webhook")

    results = await run_calls(3, plan_call, [], stagger=0.0, linger=False)
    assert [r.error for r in results] == ["webhook: ReadTimeout: the agent did not answer the webhook"] * 3
    run = figures("ours", 3, results, {}, Latencies(), [], None)
    assert run.failed_calls == 3
