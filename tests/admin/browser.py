"""Debian's Chromium driven by Playwright (never ``playwright install``: no network here)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "admin"


@contextmanager
def chromium_page(extra_args: tuple[str, ...] = ()) -> Iterator[object]:
    """A page of a fresh headless Chromium profile (skips when Chromium or Playwright is missing);
    ``extra_args``: more command-line switches (e.g. a fake microphone, ``fake_microphone``)."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    profile = tempfile.mkdtemp(prefix="pa-chromium-")
    try:
        with sync_api.sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                profile,
                executable_path=CHROMIUM,
                headless=True,
                args=[*ARGS, *extra_args],
                viewport={"width": 1100, "height": 900},
            )
            try:
                page = context.new_page()
                page.set_default_timeout(20_000)
                yield page
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def screenshot(target: object, name: str) -> None:
    """Save a screenshot of a page or an element to test-artifacts/admin/<name>.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    target.screenshot(path=str(ARTIFACTS / f"{name}.png"))  # type: ignore[attr-defined]


def fake_microphone(wav: Path) -> tuple[str, ...]:
    """Switches that make Chromium's microphone play ``wav`` once (no permission prompt)."""
    return (
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}%noloop",
        "--autoplay-policy=no-user-gesture-required",
    )
