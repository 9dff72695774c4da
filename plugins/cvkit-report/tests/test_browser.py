"""The report in a real browser: headless Chromium (Debian's package) loads every image of
the page of a tiny run without a console error; a screenshot is saved."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from cvkit_report.page import ReportSettings, build_report
from cvkit_report.runs import read_run

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _chromium() -> str:
    path = (
        os.environ.get("CVKIT_CHROMIUM")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )
    if path is None:
        pytest.skip(
            "no Chromium: `apt-get install chromium` (make test installs it as root on Debian)"
        )
    return path


@pytest.mark.slow
def test_the_report_renders_in_headless_chromium(tiny_runs, registry, tmp_path) -> None:
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    browser_path = _chromium()
    page_file = build_report(
        [read_run(tiny_runs["base"]), read_run(tiny_runs["staged"])],
        tmp_path / "report",
        ReportSettings(tsne_sample=12),
        registry,
    )
    errors: list[str] = []
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=browser_path, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on(
            "console",
            lambda message: errors.append(message.text) if message.type == "error" else None,
        )
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("requestfailed", lambda request: errors.append(f"failed: {request.url}"))
        page.goto(page_file.as_uri(), wait_until="load")
        images = page.evaluate(
            "Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])"
        )
        screenshot = Path(tmp_path / "report.png")
        page.screenshot(path=str(screenshot), full_page=True)
        browser.close()
    assert errors == []
    expected = page_file.read_text().count("<img ")
    assert len(images) == expected >= 20  # two runs' panels and the comparison
    assert [src for src, complete, width in images if not complete or width == 0] == []
    assert screenshot.stat().st_size > 50_000
