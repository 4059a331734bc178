"""The agent's own event-loop lag over one bench level, read from its ``/metrics``.

``phone-agent serve`` samples how late a 100 ms timer of its event loop runs, ten times a second,
into the ``phone_agent_event_loop_lag_seconds`` histogram (``ops/load.py``). The bench reads the
histogram before and after a level; the difference is that level's samples. Their shares above
20, 50 and 100 ms say whether a level that fails on p95 stalled now and then (bursts: many calls'
turns ending together) or ran late throughout (a saturated core). A bot without the histogram
(stock Pipecat) has no figure.
"""

from __future__ import annotations

import httpx

METRIC = "phone_agent_event_loop_lag_seconds_bucket"
THRESHOLDS = (0.02, 0.05, 0.1)  # seconds; each is one of the histogram's bucket bounds


def read_histogram(port: int) -> dict[float, float] | None:
    """Cumulative sample counts by upper bound (``inf`` = all), or None without the metric."""
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    counts: dict[float, float] = {}
    for line in response.text.splitlines():
        if line.startswith(METRIC + "{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            counts[float(bound)] = float(line.rsplit(" ", 1)[1])
    return counts or None


def late_shares(before: dict[float, float] | None, after: dict[float, float] | None) -> dict[str, float]:
    """Samples between the two readings, and the % of them later than each of ``THRESHOLDS``."""
    if not before or not after or float("inf") not in after:
        return {}
    total = after[float("inf")] - before.get(float("inf"), 0.0)
    if total <= 0:
        return {}
    shares = {"samples": total}
    for bound in THRESHOLDS:
        within = after.get(bound, 0.0) - before.get(bound, 0.0)
        shares[f"over_{bound * 1000:.0f}ms"] = 100 * (total - within) / total
    return shares
