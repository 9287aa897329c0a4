"""Start Agent with every cycle failing: the badge in the real page (Chromium) says the agent
runs but its cycles fail, how many in a row, in both languages; never a plain "运行中"."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.browser import chromium, expect, require_browser, serve_replay_dashboard

pytestmark = [pytest.mark.browser, pytest.mark.shared_data, pytest.mark.slow]
require_browser()



def _every_cycle_fails(runner) -> None:
    # the fault: each symbol's cycle raises, as an outage would; the error path is the real one
    def broken(sym, stop):
        raise ConnectionError("archive read failed")
    runner.agent._cycle_symbol = broken


def test_badge_counts_failing_cycles(shared_data_dir, tmp_path: Path):
    import re

    import requests

    with serve_replay_dashboard(shared_data_dir, tmp_path, before_start=_every_cycle_fails) as (base, _runner):
        with chromium() as browser:
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
