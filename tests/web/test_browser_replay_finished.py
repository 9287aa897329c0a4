"""The replay-finished state in a real browser (Debian's Chromium driven by Playwright), issue
17 item 6: a short replay of generated archive zips (tests/support/archives.py) on a real
waitress server, wired as `python -m web.app --replay` wires it (web.world.build_world), plays
to the end of its data; the page then says "回放结束 / Replay finished" (never "运行中"),
the market time stands at the last bar, a note gives the figures and the ways on, and Start
says the replay is done. In replay the connectivity badge names the archive data, never
"Binance reachable"; offline paper says offline. An empty store's equity chart says why it
is empty. Screenshots at 1440x900 and 390x844 go to /tmp/h-replayend-*.png.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import requests

from config import Settings
from tests.support.archives import write_archive
from tests.support.browser import expect, require_browser, serve_app
from web.app import create_app
from web.world import build_world

pytestmark = [pytest.mark.browser, pytest.mark.slow]
require_browser()

SYMBOL = "BTCUSDT"
SPEED = 1e7          # the replayed day takes as long as the agent's cycles, a few seconds


@pytest.fixture
def replay_world(tmp_path: Path):
    archive = write_archive(tmp_path / "archive", SYMBOL, "2024-01", n=2 * 1440, start="2024-01-01", seed=5)
    settings = Settings(replay_dir=archive, replay_speed=SPEED, symbols=(SYMBOL,), min_reward_r=0.01,
                        db_path=tmp_path / "agent.db", entry_order="ioc", take_profit_order="market")
    world = build_world(settings, replay_symbol=SYMBOL)
    assert world.runner is not None, world.runner_note
    app = create_app(world.settings, market=world.market, runner=world.runner, replay=world.replay)
    with serve_app(app) as base:
        yield base, world
    world.runner.stop(30)
    world.runner.store.close()
    world.runner.exchange.close()



def _page(browser, width: int, height: int, errors: list[str]):
    page = browser.new_page(viewport={"width": width, "height": height}, timezone_id="UTC")
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    return page


def test_a_short_replay_reaches_the_finished_state_in_the_page(replay_world, browser):
    base, world = replay_world
    errors: list[str] = []
    page = _page(browser, 1440, 900, errors)
    page.goto(base + "/")
    page.wait_for_selector("body[data-ready='1']", timeout=20_000)

    # replay: the archive's data, never "Binance reachable"; an empty store draws no curve
    conn = page.locator("#badge-conn")
    expect(conn).to_have_text(f"回放数据 {SYMBOL} 2024-01")
    assert "币安" not in conn.inner_text()
    assert requests.get(base + "/api/equity", timeout=10).json()["equity"] == []
    empty = page.locator("#equity-chart .chart-empty")
    expect(empty).to_be_visible()
    expect(empty).to_have_text("暂无权益数据：启动Agent后开始记录")
    page.screenshot(path="/tmp/h-replayend-empty-1440.png")
    page.locator("#equity-chart").locator("xpath=..").screenshot(path="/tmp/h-replayend-equity-empty.png")

    page.click("#btn-start")
    badge = page.locator("#badge-agent")
    expect(badge).to_have_text("回放结束", timeout=90_000)
    status = requests.get(base + "/api/agent/status", timeout=10).json()
    assert status["state"] == "finished" and status["running"] is False
    done = status["replay_finished"]
    end_ms = world.replay["data_end_ms"] // 60_000 * 60_000
    assert done["end_ms"] == end_ms
    # the market time stands at the last bar; the note gives the figures and the ways on
    expect(page.locator("#world-time")).to_have_text("2024-01-02 23:59:00", timeout=10_000)
    note = page.locator("#replay-end")
    expect(note).to_be_visible()
    expect(note).to_contain_text(f"{done['trades']} 笔交易")
    expect(note).to_contain_text("最后一根K线 2024-01-02 23:59:00")
    expect(note).to_contain_text(str(world.settings.db_path))
    expect(page.locator("#log-list")).to_contain_text("回放结束", timeout=10_000)
    expect(page.locator("#btn-stop")).to_be_disabled()
    # at the end the page fetches the last bars, the account and the curve at once: the 1m
    # chart's last close is the last bar's, the account shows the summary's equity
    last_close = world.market.klines(SYMBOL, "1m", 1)["close"].iloc[-1]
    expect(page.locator("#last-1m")).to_have_text(str(last_close), timeout=5_000)
    expect(page.locator("#acc-total")).to_have_text(f"{done['equity_end']:,.2f}", timeout=5_000)
    expect(empty).to_be_hidden(timeout=5_000)
    page.locator("#equity-chart").locator("xpath=..").screenshot(path="/tmp/h-replayend-equity-drawn.png")
    # Start again: the page says the replay is done (and the server refuses it too)
    page.click("#btn-start")
    expect(page.locator("#toast")).to_contain_text("回放已结束", timeout=5_000)
    assert "回放已结束" in page.locator("#btn-start").get_attribute("title")
    expect(badge).to_have_text("回放结束")
    page.screenshot(path="/tmp/h-replayend-finished-1440.png")

    page.click("#btn-lang")
    expect(badge).to_have_text("Replay finished")
    expect(conn).to_have_text(f"Replay data {SYMBOL} 2024-01")
    expect(note).to_contain_text("Replay finished: the data ends at the 2024-01-02 23:59:00 bar")
    expect(note).to_contain_text("another data set")
    page.screenshot(path="/tmp/h-replayend-finished-1440-en.png")
    page.close()

    phone = _page(browser, 390, 844, errors)
    phone.goto(base + "/")
    phone.wait_for_selector("body[data-ready='1']", timeout=20_000)
    expect(phone.locator("#badge-agent")).to_have_text("回放结束", timeout=10_000)   # a new context: zh
    expect(phone.locator("#replay-end")).to_be_visible()
    width, inner = phone.evaluate("[document.scrollingElement.scrollWidth, innerWidth]")
    assert width <= inner, (width, inner)
    phone.screenshot(path="/tmp/h-replayend-finished-390.png", full_page=True)
    phone.close()
    assert errors == [], errors


def test_offline_paper_says_offline_plainly(browser, tmp_path: Path):
    """No market (Binance unreachable at start-up): the badge says offline, not a replay."""
    settings = Settings(symbols=("FILUSDT",), db_path=tmp_path / "paper.db")
    app = create_app(settings, market=None, runner=None, market_note="Binance unreachable: connection refused")
    errors: list[str] = []
    with serve_app(app) as base:
        page = _page(browser, 1440, 900, errors)
        page.goto(base + "/")
        page.wait_for_selector("body[data-ready='1']", timeout=20_000)
        expect(page.locator("#badge-conn")).to_have_text("离线·币安不可达")
        page.click("#btn-lang")
        expect(page.locator("#badge-conn")).to_have_text("Offline · Binance unreachable")
        page.locator("header").first.screenshot(path="/tmp/h-replayend-offline-paper.png")
        page.close()
    # offline the kline calls answer 503 (the page shows it): the browser logs those, nothing else
    assert [e for e in errors if "status of 503" not in e] == [], errors
