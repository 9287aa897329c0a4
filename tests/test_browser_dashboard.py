"""The dashboard in a real browser (Debian's Chromium driven by Playwright) over replayed data.

A real waitress server on a free loopback port serves the app in replay mode over
../shared/data (FILUSDT). The agent is tests.test_web_api.FakeRunner until the lead wires the
real AgentRunner in. The screenshot is saved under the test's tmp dir for a human to look at.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from config import Settings
from tests.test_web_api import FakeRunner
from web.app import create_app
from web.world import build_market

CHROMIUM = "/usr/bin/chromium"
pytestmark = [pytest.mark.browser, pytest.mark.shared_data]

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None

if sync_playwright is None:
    pytest.skip("playwright (python package) is not installed", allow_module_level=True)
if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} is absent (apt-get install chromium)", allow_module_level=True)


@pytest.fixture
def server(shared_data_dir: Path, tmp_path: Path):
    from waitress.server import create_server

    settings = Settings(symbols=("FILUSDT",), replay_dir=shared_data_dir, replay_speed=60.0,
                        db_path=tmp_path / "agent.db")
    settings, market, clock, replay = build_market(settings, symbol_given=True)
    price = float(market.last_price("FILUSDT"))
    runner = FakeRunner(clock, ("FILUSDT",), tick=0.3, price=price)
    app = create_app(settings, market=market, runner=runner, replay=replay)
    srv = create_server(app, host="127.0.0.1", port=0, threads=6)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.effective_port}", runner
    runner.stop()
    srv.close()
    thread.join(5)


@pytest.fixture
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update"])
        yield b
        b.close()


def test_dashboard_end_to_end(server, browser, tmp_path: Path):
    base, runner = server
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    foreign: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("request", lambda r: None if r.url.startswith(base) or r.url.startswith("data:")
            else foreign.append(r.url))

    page.goto(base + "/")
    page.wait_for_selector("body[data-ready='1']", timeout=20_000)

    # Chinese by default; four charts drawn, each with candles (last close shown above it).
    expect(page.locator("h1")).to_have_text("自学习交易代理")
    expect(page.locator("#badge-mode")).to_have_text("回放")
    for itv in ("1m", "15m", "8h", "1w"):
        assert page.locator(f"#chart-{itv} canvas").count() > 0, itv
        expect(page.locator(f"#last-{itv}")).not_to_have_text("")
    bars = page.evaluate("fetch('/api/klines_all/FILUSDT?limit=300').then(r => r.json())")
    assert all(len(bars["klines"][i]) > 0 for i in ("1m", "15m", "8h", "1w"))

    # Start the agent with the button: status badge, training panel and run log update.
    page.click("#btn-start")
    expect(page.locator("#badge-agent")).to_have_text("运行中", timeout=10_000)
    expect(page.locator("#phase-name")).to_have_text("探索期", timeout=10_000)
    expect(page.locator("#log-list li.log").first).to_contain_text("观望中", timeout=10_000)
    first_count = page.locator("#log-list li.log").count()
    page.locator("#log-list li.log").nth(first_count).wait_for(timeout=15_000)  # auto-updates
    expect(page.locator("#weights .wrow")).to_have_count(6)
    expect(page.locator("#acc-total")).to_have_text("10,012.50", timeout=10_000)

    # A trade's thought chain opens on click.
    row = page.locator("#trades-body tr.clickable").first
    row.wait_for(timeout=20_000)
    row.click()
    dialog = page.locator("#thought-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("感知")
    expect(dialog).to_contain_text("支撑位反弹做多")
    page.screenshot(path=str(tmp_path / "dashboard-thought.png"))
    page.click("#thought-close")

    # The manual order form validates before sending anything.
    page.fill("#order-form input[name=quantity]", "-1")
    page.click("#order-form button[type=submit]")
    expect(page.locator(".field-error[data-for=quantity]")).not_to_have_text("")
    assert runner.orders == []

    # Language switch, remembered across a reload.
    page.click("#btn-lang")
    expect(page.locator("h1")).to_have_text("Self-learning trading agent")
    expect(page.locator("#badge-agent")).to_have_text("running")
    page.reload()
    page.wait_for_selector("body[data-ready='1']", timeout=20_000)
    expect(page.locator("h1")).to_have_text("Self-learning trading agent")
    expect(page.locator("#log-list li.log").first).to_contain_text("waiting", timeout=10_000)

    assert errors == [], errors        # no JS errors, no failed loads so far

    # A POST without the token (what a foreign page could send) is refused.
    refused = page.evaluate("fetch('/api/agent/stop', {method: 'POST'}).then(async r => [r.status, await r.json()])")
    assert refused[0] == 403 and "token" in refused[1]["error"].lower()
    assert runner.running

    page.wait_for_timeout(2500)  # one more polling round for the screenshot
    page.evaluate("window.scrollTo(0, 0)")
    # Usable at 1280x800: nothing wider than the window (no sideways scrolling).
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot))
    page.screenshot(path=str(tmp_path / "dashboard-full.png"), full_page=True)
    print(f"screenshots: {shot}")
    assert shot.stat().st_size > 10_000
    assert foreign == [], foreign
