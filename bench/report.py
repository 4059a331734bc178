"""The report of a run: a Markdown table (plus ours/stock ratios and the breakdown of where the time
goes), the raw figures as JSON, and a PNG histogram of voice-to-voice latency."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import report_sections
from bench.metrics import RunFigures, percentile
from bench.report_sections import MB, load_text, ms
from bench.run import BenchResult


def _num(value: float | None, fmt: str = "{:.1f}") -> str:
    return "—" if value is None else fmt.format(value)


def _ratio(ours: float | None, stock: float | None) -> str:
    return "—" if ours is None or not stock else f"{ours / stock:.2f}"


def markdown(result: BenchResult) -> str:
    """The whole report as Markdown."""
    opts, lat = result.options, result.options.latencies
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(result.started))
    lines = [
        f"# phone-agent benchmark — {stamp}",
        "",
        f"Machine: {os.cpu_count()} cores; load average {load_text(result.load_before)} before, "
        f"{load_text(result.load_after)} after; run took {result.finished - result.started:.0f} s"
        + (" (`--quick`: targets side by side, a smoke run, not a measurement)." if opts.quick else "."),
        f"Fakes: STT {ms(lat.stt)} ms after the audio ends, LLM first token {ms(lat.llm_first_token)} ms "
        f"then {lat.tokens_per_second:g} tokens/s, TTS first audio {ms(lat.tts_first_audio)} ms then "
        f"{lat.tts_realtime_factor:g}x real time: {ms(lat.providers_total)} ms no pipeline can beat. "
        f"Every transcript: {lat.transcript!r}.",
        f"Callers: espeak-ng, real-time paced, Media Stream protocol; {len(opts.utterances)} utterance(s) "
        f"per call{f'; soak of {opts.soak_seconds:.0f} s' if opts.soak_seconds else ''}. "
        "LLM replies: four shapes by caller turn (below).",
        "",
        "| target | N | calls (failed) | turns answered (cut in) | v2v p50 | v2v p95 | v2v p99 | "
        "overhead p50 | overhead p95 | end-of-turn p50 | greeting p50 | greeting p95 | gap p99 | underruns | "
        "missed | late | cut short | CPU % | CPU %/call | RSS MB | RSS MB/call | load |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for run in result.phase("latency"):
        lines.append(
            f"| {run.target} | {run.n} | {run.calls} ({run.failed_calls}) | "
            f"{run.turns - run.unanswered}/{run.turns} ({run.talked_over}) | "
            f"{ms(run.p('v2v', 50))} | {ms(run.p('v2v', 95))} | "
            f"{ms(run.p('v2v', 99))} | {ms(run.p('overhead', 50))} | {ms(run.p('overhead', 95))} | "
            f"{ms(run.p('eot_wait', 50))} | {ms(run.p('greeting', 50))} | {ms(run.p('greeting', 95))} | "
            f"{ms(run.p('gaps', 99))} | {run.underruns} | {run.unanswered} | {run.late} | {run.cut_short} | "
            f"{_num(run.cpu_percent, '{:.0f}')} | "
            f"{_num(run.cpu_per_call)} | {_num(run.rss_peak and run.rss_peak / MB, '{:.0f}')} | "
            f"{_num(run.rss_per_call and run.rss_per_call / MB)} | {load_text(run.load)} |"
        )
    lines += [
        "",
        "Times in ms. v2v = caller's last speech frame → first agent audio frame at the caller; "
        "overhead = v2v − configured provider latencies − end-of-turn wait (turns whose requests "
        "could be told apart); gap p99 = outbound media inter-arrival inside an answer; missed = no "
        f"reply within 12 s; late = reply started > {opts.late_after:g} s after the caller stopped; cut "
        "short = caller utterances the bot split into two turns (chat requests holding more caller "
        "turns than the caller spoke); load = load average when the run ended.",
    ]
    latency = result.phase("latency")
    lines += _breakdown(latency)
    lines += report_sections.reply_shapes(result)
    lines += report_sections.cold_calls(result)
    lines += _by_utterance(latency)
    lines += _ratios(latency)
    lines += report_sections.capacity(result)
    lines += report_sections.soak(result)
    errors = sorted({e for run in result.runs for e in run.errors})
    if errors:
        lines += ["", "Errors seen: " + "; ".join(errors[:5])]
    return "\n".join(lines) + "\n"


def _breakdown(runs: Iterable[RunFigures]) -> list[str]:
    rows = [r for r in runs if r.attributed]
    if not rows:
        return []
    lines = [
        "",
        "Where the time goes (medians, ms, attributed turns): end-of-turn wait → STT request; "
        "STT leg = STT request → LLM request; LLM leg = LLM request → TTS text; TTS leg = TTS text → "
        "audio at the caller.",
        "",
        "| target | N | attributed | end-of-turn | STT leg | LLM leg | TTS leg | overhead p50 "
        "| overhead p95 |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for run in rows:
        legs = {k: percentile(v, 50) for k, v in run.legs.items()}
        lines.append(
            f"| {run.target} | {run.n} | {run.attributed}/{len(run.v2v)} | {ms(run.p('eot_wait', 50))} | "
            f"{ms(legs.get('stt_leg'))} | {ms(legs.get('llm_leg'))} | {ms(legs.get('tts_leg'))} | "
            f"{ms(run.p('overhead', 50))} | {ms(run.p('overhead', 95))} |"
        )
    return lines


def _by_utterance(runs: list[RunFigures]) -> list[str]:
    rows = [r for r in runs if r.by_utterance and r.n == min(x.n for x in runs if x.target == r.target)]
    if not rows:
        return []
    lines = ["", "Voice-to-voice by utterance (p50 / max, ms):", ""]
    for run in rows:
        parts = [f'"{text}" {ms(percentile(v, 50))} / {ms(max(v))}' for text, v in run.by_utterance.items()]
        lines.append(f"- {run.target} N={run.n}: " + "; ".join(parts))
    return lines


def _ratios(runs: list[RunFigures]) -> list[str]:
    stock = {r.n: r for r in runs if r.target == "stock"}
    ours = [r for r in runs if r.target == "ours" and r.n in stock]
    if not ours:
        return []
    lines = [
        "",
        "ours / stock (lower is better):",
        "",
        "| N | v2v p50 | v2v p95 | greeting p50 | CPU %/call | RSS/call |",
        "|--:|--:|--:|--:|--:|--:|",
    ]
    for run in ours:
        base = stock[run.n]
        lines.append(
            f"| {run.n} | {_ratio(run.p('v2v', 50), base.p('v2v', 50))} | "
            f"{_ratio(run.p('v2v', 95), base.p('v2v', 95))} | "
            f"{_ratio(run.p('greeting', 50), base.p('greeting', 50))} | "
            f"{_ratio(run.cpu_per_call, base.cpu_per_call)} | {_ratio(run.rss_per_call, base.rss_per_call)} |"
        )
    return lines


def histogram(result: BenchResult, path: Path) -> Path:
    """A PNG histogram of voice-to-voice latency, one series per target and N."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5), dpi=100)
    floor = 1000 * result.options.latencies.providers_total
    shown = result.phase("latency") or result.runs
    values = [1000 * v for run in shown for v in run.v2v] + [floor]
    low, high = min(values) - 20, max(values) + 20
    width = max(10.0, (high - low) / 40)
    bins = [low + width * i for i in range(int((high - low) / width) + 2)]
    for run in shown:
        if run.v2v:
            ax.hist(
                [1000 * v for v in run.v2v], bins=bins, alpha=0.55,
                label=f"{run.target} N={run.n} (p50 {ms(run.p('v2v', 50))} ms)",
            )  # fmt: skip
    ax.axvline(floor, color="black", linestyle="--",
               label="configured provider latency")  # fmt: skip
    ax.set_xlabel("voice-to-voice latency (ms)")
    ax.set_ylabel("turns")
    ax.set_title("Voice-to-voice latency at the caller")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def to_json(result: BenchResult) -> dict[str, Any]:
    """Every run's raw figures with a summary, and the sections' summaries."""
    runs = []
    for run in result.runs:
        data = asdict(run)
        data.pop("gaps")  # tens of thousands of numbers; the percentiles are in the summary
        data["summary"] = {
            "v2v_p50": run.p("v2v", 50), "v2v_p95": run.p("v2v", 95), "v2v_p99": run.p("v2v", 99),
            "overhead_p50": run.p("overhead", 50), "overhead_p95": run.p("overhead", 95),
            "greeting_p50": run.p("greeting", 50), "gap_p99": run.p("gaps", 99),
            "rss_per_call": run.rss_per_call, "cpu_per_call": run.cpu_per_call,
            "missed": run.unanswered, "late": run.late, "cut_short": run.cut_short,
            "by_shape": report_sections.shape_summary(run),
        }  # fmt: skip
        runs.append(data)
    return {
        "options": asdict(result.options),
        "started": result.started,
        "load_before": result.load_before,
        "load_after": result.load_after,
        "runs": runs,
        **report_sections.summaries(result),
    }


def write_report(result: BenchResult, out_dir: Path, label: str = "latest") -> dict[str, Path]:
    """Write `<label>.md`, `<label>.json` and `<label>.png` under `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "md": out_dir / f"{label}.md",
        "json": out_dir / f"{label}.json",
        "png": out_dir / f"{label}.png",
    }
    paths["md"].write_text(markdown(result))
    paths["json"].write_text(json.dumps(to_json(result), indent=1))
    histogram(result, paths["png"])
    return paths
