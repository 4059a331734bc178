"""Pixel geometry of the analytics charts, drawn as inline SVG by the templates (no script, no CDN).

Each function returns the bars (x, y, width, height, label, value) and the chart's size; the SVG
scales to its container (``viewBox``), so one geometry serves a phone and a desktop.
"""

from __future__ import annotations

from typing import Any

WIDTH = 640
BAR_AREA = 160  # height of the bars' area of a vertical chart
ROW = 24  # height of one row of a horizontal chart
LABEL_WIDTH = 170  # left column of a horizontal chart


def bar_chart(
    pairs: list[tuple[str, int]], *, horizontal: bool = False, label_every: int = 1
) -> dict[str, Any]:
    """Bars for ``(label, value)`` pairs: columns left to right, or rows top to bottom."""
    top = max((value for _, value in pairs), default=0) or 1
    bars = []
    if horizontal:
        plot = WIDTH - LABEL_WIDTH - 50
        for i, (label, value) in enumerate(pairs):
            bars.append(
                {
                    "label": label,
                    "value": value,
                    "x": LABEL_WIDTH,
                    "y": i * ROW + 4,
                    "w": round(max(1.0, value / top * plot), 1) if value else 0,
                    "h": ROW - 8,
                    "text_y": i * ROW + ROW - 8,
                }
            )
        return {
            "width": WIDTH,
            "height": max(ROW, len(pairs) * ROW),
            "bars": bars,
            "label_width": LABEL_WIDTH,
        }
    slot = WIDTH / max(1, len(pairs))
    for i, (label, value) in enumerate(pairs):
        height = round(value / top * BAR_AREA, 1)
        bars.append(
            {
                "label": label,
                "value": value,
                "x": round(i * slot + slot * 0.15, 1),
                "y": round(20 + BAR_AREA - height, 1),
                "w": round(slot * 0.7, 1),
                "h": height,
                "mid": round(i * slot + slot / 2, 1),
                "show_label": i % label_every == 0,
            }
        )
    return {"width": WIDTH, "height": 20 + BAR_AREA + 22, "bars": bars, "base": 20 + BAR_AREA, "top": top}


def hour_chart(hours: list[int]) -> dict[str, Any]:
    """Calls per local hour of the day (24 columns, every third hour labelled)."""
    return bar_chart([(f"{h:02d}", n) for h, n in enumerate(hours)], label_every=3)
