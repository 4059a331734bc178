"""Report sections for reply shapes, the cold call, the capacity sweep and the soak (Markdown rows
and their JSON summaries); `bench/report.py` puts them together."""

from __future__ import annotations

from typing import Any

from bench.capacity import P95_FACTOR, largest_holding, shortfalls, soak_drift, soak_rss_per_call
from bench.loop_lag import THRESHOLDS
from bench.metrics import RunFigures, percentile
from bench.replies import SHAPE_NAMES, SHAPES
from bench.run import BenchResult

MB = 1024 * 1024


def ms(value: float | None) -> str:
    return "—" if value is None else f"{1000 * value:.0f}"


def load_text(load: tuple[float, float, float] | None) -> str:
    return "—" if load is None else " / ".join(f"{x:.2f}" for x in load)


def _p(values: list[float], q: float) -> float | None:
    return percentile(values, q)


def shape_summary(run: RunFigures) -> dict[str, dict[str, float | int | None]]:
    """v2v p50/p95 and turn count per reply shape, plus `overall`."""
    summary: dict[str, dict[str, float | int | None]] = {}
    for shape in (*SHAPE_NAMES, "overall"):
        values = run.v2v if shape == "overall" else run.by_shape.get(shape, [])
        if values:
            summary[shape] = {"turns": len(values), "v2v_p50": _p(values, 50), "v2v_p95": _p(values, 95)}
    return summary


def reply_shapes(result: BenchResult) -> list[str]:
    """v2v per reply shape for the latency runs, ours against stock at the same N."""
    runs = result.phase("latency")
    if not any(r.by_shape for r in runs):
        return []
    lines = [
        "",
        "## Voice-to-voice by reply shape",
        "",
        "The LLM fake's reply for caller turn k of a call is the k-th of these shapes (cycling); each "
        "call starts its utterances one further along, so every shape meets every utterance:",
        "",
        *[f'- {name}: "{text}"' for name, text in SHAPES.items()],
        "",
        "| target | N | shape | turns (confirmed) | v2v p50 | v2v p95 | ours / stock p50 |",
        "|---|--:|---|--:|--:|--:|--:|",
    ]
    stock = {r.n: shape_summary(r) for r in runs if r.target == "stock"}
    for run in runs:
        summary = shape_summary(run)
        for shape, row in summary.items():
            base = stock.get(run.n, {}).get(shape) if run.target != "stock" else None
            ratio = "—"
            if base and base["v2v_p50"] and row["v2v_p50"] is not None:
                ratio = f"{float(row['v2v_p50']) / float(base['v2v_p50']):.2f}"
            confirmed = f" ({run.shapes_confirmed})" if shape == "overall" else ""
            lines.append(
                f"| {run.target} | {run.n} | {shape} | {row['turns']}{confirmed} | {ms(row['v2v_p50'])} | "  # type: ignore[arg-type]
                f"{ms(row['v2v_p95'])} | {ratio} |"  # type: ignore[arg-type]
            )
    lines += [
        "",
        "Confirmed = turns whose shape was read from the one chat request between the caller's last "
        "word and the reply (the others are assumed from their position in the call).",
    ]
    return lines


def cold_summary(cold: RunFigures, warm: list[RunFigures]) -> dict[str, Any]:
    """The cold call against the later (warm) calls: greeting, and each turn against the warm
    turns at the same position with the same utterance (so the same reply shape)."""
    warm_turns = [t for run in warm for t in run.turn_log]
    warm_greetings = [g for run in warm for g in run.greeting]
    turns: list[dict[str, Any]] = []
    for position, text, shape, v2v in cold.turn_log:
        same = [w[3] for w in warm_turns if w[0] == position and w[1] == text]
        turns.append(
            {"position": position, "utterance": text, "shape": shape, "cold": v2v, "warm_p50": _p(same, 50)}
        )
    later_cold = [v2v for position, _, _, v2v in cold.turn_log if position > 1]
    later_warm = [w[3] for w in warm_turns if w[0] > 1]
    return {
        "greeting_cold": cold.greeting[0] if cold.greeting else None,
        "greeting_warm_p50": _p(warm_greetings, 50),
        "turns": turns,
        "later_cold_p50": _p(later_cold, 50),
        "later_warm_p50": _p(later_warm, 50),
    }


def cold_calls(result: BenchResult) -> list[str]:
    """The first call of a fresh process against the calls after it."""
    colds = result.phase("cold")
    if not colds:
        return []
    lines = [
        "",
        "## First call of a fresh process",
        "",
        "Cold = the first call after the process answered its health check / listened; warm = the "
        "latency runs after it (N=1 first). Turn 1 is compared with warm turns at position 1 with the "
        "same utterance (so the same reply shape).",
        "",
        "| target | greeting cold | greeting warm p50 | turn 1 cold | turn 1 warm p50 | turn 1 cold − warm "
        "| later turns cold p50 | later turns warm p50 |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for cold in colds:
        warm = [r for r in result.phase("latency") if r.target == cold.target]
        summary = cold_summary(cold, warm[:1])
        first = summary["turns"][0] if summary["turns"] else {}
        delta = None
        if first.get("cold") is not None and first.get("warm_p50") is not None:
            delta = first["cold"] - first["warm_p50"]
        lines.append(
            f"| {cold.target} | {ms(summary['greeting_cold'])} | {ms(summary['greeting_warm_p50'])} | "
            f"{ms(first.get('cold'))} | {ms(first.get('warm_p50'))} | {ms(delta)} | "
            f"{ms(summary['later_cold_p50'])} | {ms(summary['later_warm_p50'])} |"
        )
    return lines


def capacity(result: BenchResult) -> list[str]:
    """The pinned sweep: every N with why it does (not) hold, and the capacity per target."""
    runs = result.phase("capacity")
    if not runs:
        return []
    late = result.options.late_after
    lines = [
        "",
        "## Capacity on one pinned core",
        "",
        "Agent on core 0 (`taskset -c 0`), callers and fakes on core 1. N holds when v2v p95 ≤ "
        f"{P95_FACTOR:g}x the p95 at N=1, no turn is missed (no reply within 12 s), none is late (reply "
        f"started > {late:g} s after the caller stopped) and no call fails; the sweep stops at the first "
        "N that does not. Core busy % = by anyone (other work on the machine shares the cores); load "
        "average (1/5/15 min) when the run ended. Loop late = the agent's own event-loop probes "
        "(a 100 ms timer, ten a second) that ran more than 20 / 50 / 100 ms late, % of the run's "
        "probes (`bench/loop_lag.py`; — for a bot without them).",
        "",
        f"| {TURN_COLUMNS} | agent CPU % | harness CPU % | core 0 / 1 busy % | loop late % | RSS MB | "
        "load | holds |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|",
    ]
    verdicts = []
    for name in dict.fromkeys(r.target for r in runs):
        mine = [r for r in runs if r.target == name]
        base = next((r for r in mine if r.n == 1), None)
        base_p95 = base.p("v2v", 95) if base else None
        for run in mine:
            reasons = shortfalls(run, base_p95)
            lines.append(
                f"| {_turn_cells(run)} | {_num(run.cpu_percent)} | {_num(run.harness_cpu_percent)} | "
                f"{' / '.join(f'{b:.0f}' for b in run.cores_busy) or '—'} | {_late_cells(run)} | "
                f"{_num(run.rss_peak and run.rss_peak / MB)} | {load_text(run.load)} | "
                f"{'yes' if not reasons else 'no: ' + '; '.join(reasons)} |"
            )
        best = largest_holding(mine)
        verdicts.append(f"- {name}: **{best if best else '—'}** concurrent calls (tried N = "
                        f"{', '.join(str(r.n) for r in mine)})")  # fmt: skip
    return [*lines, "", "Capacity (largest N that holds):", "", *verdicts]


def _late_cells(run: RunFigures) -> str:
    """The shares of late event-loop probes, '20 ms / 50 ms / 100 ms' (— without them)."""
    shares = [run.loop_lag.get(f"over_{bound * 1000:.0f}ms") for bound in THRESHOLDS]
    if any(share is None for share in shares):
        return "—"
    return " / ".join(f"{share:.1f}" for share in shares if share is not None)


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"


TURN_COLUMNS = "target | N | calls (failed) | turns | v2v p50 | v2v p95 | missed | late | cut short"


def _turn_cells(run: RunFigures) -> str:
    """The cells under TURN_COLUMNS."""
    return (
        f"{run.target} | {run.n} | {run.calls} ({run.failed_calls}) | {run.turns} | {ms(run.p('v2v', 50))} | "
        f"{ms(run.p('v2v', 95))} | {run.unanswered} | {run.late} | {run.cut_short}"
    )


def soak(result: BenchResult) -> list[str]:
    """RSS drift and per-call RSS over each soak."""
    runs, seconds = result.phase("soak"), result.options.soak_seconds
    if not runs:
        return []
    lines = [
        "",
        f"## Soak ({seconds:.0f} s, every caller slot calling back to back)",
        "",
        "RSS of the agent's process tree; drift = median of minute 2 → median of the last full minute; "
        "per call = that last median above the idle RSS, over N.",
        "",
        f"| {TURN_COLUMNS} | RSS MB minute 2 | RSS MB last minute | drift | RSS MB/call | load |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for run in runs:
        drift = soak_drift(run, seconds)
        per_call = soak_rss_per_call(run, seconds)
        early, late = (drift[0] / MB, drift[1] / MB) if drift else (None, None)
        change = f"{100 * (drift[1] - drift[0]) / drift[0]:+.1f} %" if drift and drift[0] else "—"
        each = "—" if per_call is None else f"{per_call / MB:.1f}"
        lines.append(
            f"| {_turn_cells(run)} | {_num(early)} | {_num(late)} | {change} | {each} | "
            f"{load_text(run.load)} |"
        )
    return lines


def summaries(result: BenchResult) -> dict[str, Any]:
    """The JSON form of these sections."""
    capacity_runs = result.phase("capacity")
    return {
        "reply_shapes": [
            {"target": r.target, "n": r.n, "shapes": shape_summary(r)} for r in result.phase("latency")
        ],
        "cold": [
            {
                "target": c.target,
                **cold_summary(c, [r for r in result.phase("latency") if r.target == c.target][:1]),
            }
            for c in result.phase("cold")
        ],
        "capacity": {
            name: largest_holding([r for r in capacity_runs if r.target == name])
            for name in dict.fromkeys(r.target for r in capacity_runs)
        },
        "soak": [
            {
                "target": r.target,
                "n": r.n,
                "rss_minute_2_and_last": soak_drift(r, result.options.soak_seconds),
                "rss_per_call": soak_rss_per_call(r, result.options.soak_seconds),
            }
            for r in result.phase("soak")
        ],
    }
