"""Start Agent with every cycle failing: the badge in the real page (Chromium) says the agent
runs but its cycles fail, how many in a row, in both languages; never a plain "运行中"."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
pytestmark = [pytest.mark.browser, pytest.mark.shared_data, pytest.mark.slow]

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None

if sync_playwright is None:
    pytest.skip("playwright (python package) is not installed", allow_module_level=True)
if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} is absent (apt-get install chromium)", allow_module_level=True)

from tests.web.test_browser_dashboard import _serve  # noqa: E402 - after the skips


def _every_cycle_fails(runner) -> None:
    # the fault: each symbol's cycle raises, as an outage would; the error path is the real one
    def broken(sym, stop):
        raise ConnectionError("archive read failed")
    runner.agent._cycle_symbol = broken


def test_badge_counts_failing_cycles(shared_data_dir, tmp_path: Path):
    import re

    import requests

    with _serve(shared_data_dir, tmp_path, before_start=_every_cycle_fails) as (base, _runner):
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update"])
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(base + "/")
            page.wait_for_selector("body[data-ready='1']", timeout=20_000)
            page.click("#btn-start")
            badge = page.locator("#badge-agent")
            expect(badge).to_have_text(re.compile(r"运行中·连续失败 \d+ 次"), timeout=20_000)
            status = requests.get(base + "/api/agent/status", timeout=10).json()
            assert status["failed_cycles"] >= 1 and status["last_error"] is not None
            assert badge.get_attribute("title")
            page.click("#btn-lang")
            expect(badge).to_have_text(re.compile(r"running · \d+ cycles failing"), timeout=10_000)
            page.locator("header").first.screenshot(path=str(tmp_path / "badge-failing.png"))
            page.screenshot(path="/tmp/h-starter-badge-failing.png")
            browser.close()
            assert errors == [], errors
