"""The dashboard in a real browser (Debian's Chromium driven by Playwright) over replayed data.

A real waitress server on a free loopback port serves the app exactly as `python -m web.app
--replay ../shared/data --symbol FILUSDT` wires it (web.world.build_world): the real AgentRunner
and TradingAgent, a KnowledgeStore and a PaperExchange in SQLite files under tmp_path, and
ReplayMarketData over the archive on a ScaledClock at 3000x, so the agent trades within
seconds. Screenshots are saved under the test's tmp dir for a human to look at.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.support.browser import expect, require_browser, serve_replay_dashboard, watch_page

pytestmark = [pytest.mark.browser, pytest.mark.shared_data, pytest.mark.slow]
require_browser()




@pytest.fixture
def server(shared_data_dir: Path, tmp_path: Path):
    with serve_replay_dashboard(shared_data_dir, tmp_path) as served:
        yield served



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
    expect(page.locator("#weights .wrow")).to_have_count(6)
    expect(page.locator("#log-list li.log").first).to_be_visible(timeout=10_000)
    first_count = page.locator("#log-list li.log").count()
    page.locator("#log-list li.log").nth(first_count).wait_for(timeout=15_000)  # auto-updates
    expect(page.locator("#last-scores")).to_contain_text("做多", timeout=10_000)
    expect(page.locator("#last-error")).not_to_contain_text("object")
    # The account panel shows the paper account the API reports (not a placeholder).
    expect(page.locator("#acc-total")).not_to_have_text("—", timeout=10_000)

    # Bounded wait for the real agent's first closed trade (a few replayed hours at 3000x).
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and not runner.store.trades(status="closed"):
        time.sleep(0.25)
    assert runner.store.trades(status="closed"), "the agent made no closed trade within 40 s"
    row = page.locator("#trades-body tr.clickable[data-status=closed]").first
    row.wait_for(timeout=15_000)
    expect(page.locator("#log-list")).to_contain_text(re.compile(r"做多:\d+ 做空:\d+"))  # decision lines

    # Its thought chain opens on click and shows all four parts.
    row.click()
    dialog = page.locator("#thought-dialog")
    expect(dialog).to_be_visible()
    for part, heading in (("perception", "感知"), ("action", "行动"), ("reward", "奖励"), ("summary", "总结")):
        section = dialog.locator(f".chain.{part}")
        expect(section.locator("h4")).to_have_text(heading)
        expect(section.locator("dd, p").first).not_to_have_text("—")
    trade_id = int(row.get_attribute("data-trade-id"))
    summary_zh = runner.store.trade(trade_id)["thought_chain"]["summary_zh"]
    expect(dialog.locator(".chain.summary p")).to_have_text(summary_zh)
    dialog.locator(".chain.perception details summary").click()     # the raw data opens too
    expect(dialog.locator(".chain.perception details > dl")).to_be_visible()
    page.screenshot(path=str(tmp_path / "dashboard-thought.png"))
    page.click("#thought-close")

    # The manual order form validates before sending anything.
    page.fill("#order-form input[name=quantity]", "-1")
    page.click("#order-form button[type=submit]")
    expect(page.locator(".field-error[data-for=quantity]")).not_to_have_text("")
    assert not any("manual order" in line["message_en"] for line in runner.store.decisions.recent(limit=1000))

    # Language switch, remembered across a reload.
    page.click("#btn-lang")
    expect(page.locator("h1")).to_have_text("Self-learning trading agent")
    expect(page.locator("#badge-agent")).to_have_text("running")
    page.reload()
    page.wait_for_selector("body[data-ready='1']", timeout=20_000)
    expect(page.locator("h1")).to_have_text("Self-learning trading agent")
    expect(page.locator("#log-list li.log").first).to_be_visible(timeout=10_000)
    expect(page.locator("#log-list")).to_contain_text(re.compile(r"long:\d+ short:\d+"), timeout=10_000)
    expect(page.locator("#phase-name")).to_have_text("exploration", timeout=10_000)

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


def _seed_stop_outs(runner) -> None:
    """Three losing stop-outs in the hour before the replay clock: the stop-loss guard's pause
    (720 h here, so it outlasts the test) is rebuilt from them when the agent starts."""
    now = runner.clock.now_ms()
    store = runner.store
    for i in range(3):
        t = now - (60 - 20 * i) * 60_000
        tid = store.open_trade(symbol="FILUSDT", side="LONG", entry_client_order_id=f"seed-{i}",
                               opened_ms=t - 600_000, entry_price=4.0, quantity=100.0, stop_price=3.9,
                               target_price=4.2, leverage=10, features={}, perception={}, action={})
        store.record_exit(tid, client_order_id=f"seed-x-{i}", time_ms=t, kind="stop", price=3.9,
                          quantity=100.0, pnl=-10.0, fee=0.2)
        store.close_trade(tid, closed_ms=t, exit_reason="stop", reward={}, summary_zh="种子", summary_en="seed")


def test_dashboard_shows_an_active_pause_with_its_reason_and_lift_time(shared_data_dir, browser, tmp_path):
    with serve_replay_dashboard(shared_data_dir, tmp_path, before_start=_seed_stop_outs, replay_speed=60.0,
                stoploss_guard_pause_hours=720.0) as (base, runner):
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        errors, _ = watch_page(page)
        page.goto(base + "/")
        page.wait_for_selector("body[data-ready='1']", timeout=20_000)
        panel = page.locator("#protections-panel")
        expect(panel.locator("h2")).to_have_text("风控保护")
        expect(panel.locator("li")).to_have_text("无")                  # nothing active yet
        page.click("#btn-start")                                        # start-up rebuilds the pause
        pause = panel.locator("li.pause")
        expect(pause).to_have_count(1, timeout=10_000)
        active = runner.status()["protections"]["active"][0]
        assert active["rule"] == "stoploss_guard"
        expect(pause).to_have_attribute("data-rule", "stoploss_guard")
        expect(pause).to_contain_text("止损保护")
        expect(pause).to_contain_text("暂停开仓")
        expect(pause).to_contain_text(active["reason_zh"])
        expect(pause).to_contain_text(re.compile(r"最早 \d{4}-\d{2}-\d{2} \d{2}:\d{2}(:\d{2})? 解除"))
        page.screenshot(path=str(tmp_path / "dashboard-paused-zh.png"))
        page.click("#btn-lang")                                         # the page's language
        expect(pause).to_contain_text("Stop-loss guard")
        expect(pause).to_contain_text(active["reason_en"])
        expect(pause).to_contain_text("at the earliest")
        expect(panel.locator("h2")).to_have_text("Protections")
        shot = tmp_path / "dashboard-paused.png"
        page.screenshot(path=str(shot))
        print(f"screenshot: {shot}")
        assert errors == [], errors


def _hedge_mode_account(runner) -> None:
    """The account reports hedge mode, as a Binance account switched to dual-side positions
    would (GET /fapi/v1/positionSide/dual: true); the paper account itself is always one-way."""
    from rl.execution.port import AccountMode, SymbolMode

    leverage = runner.settings.leverage
    runner.exchange.account_mode = lambda symbols: AccountMode(
        hedge_mode=True, multi_assets=False,
        symbols=tuple(SymbolMode(s, "ISOLATED", leverage) for s in symbols))


def test_dashboard_shows_an_account_mode_mismatch_that_refuses_entries(shared_data_dir, browser, tmp_path):
    with serve_replay_dashboard(shared_data_dir, tmp_path, before_start=_hedge_mode_account) as (base, runner):
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        errors, _ = watch_page(page)
        page.goto(base + "/")
        page.wait_for_selector("body[data-ready='1']", timeout=20_000)
        panel = page.locator("#protections-panel")
        page.click("#btn-start")                                        # start-up checks the modes
        item = panel.locator("li[data-mode='hedge_mode']")
        expect(item).to_have_count(1, timeout=10_000)
        problem = runner.status()["account_mode"]["problems"][0]
        expect(item).to_contain_text("账户模式不符，暂停开仓")
        expect(item).to_contain_text(problem["zh"])
        page.click("#btn-lang")
        expect(item).to_contain_text("Account mode mismatch: no entries")
        expect(item).to_contain_text(problem["en"])
        page.screenshot(path=str(tmp_path / "dashboard-account-mode.png"))
        assert errors == [], errors


def test_order_form_retry_after_a_lost_answer_places_one_order(shared_data_dir, browser, tmp_path):
    # The first answer is lost on the way back (the server placed the order; the page sees a
    # network error); the trader submits again: the same clientOrderId goes out, the server
    # answers the first result, and one order exists. A changed order gets a new id.
    with serve_replay_dashboard(shared_data_dir, tmp_path, replay_speed=60.0) as (base, runner):
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        sent: list[dict] = []

        def lose_first_answer(route, request):
            sent.append(request.post_data_json)
            if len(sent) == 1:
                route.fetch()                        # the server does place the order ...
                route.abort("connectionreset")       # ... and its answer never arrives
            else:
                route.continue_()

        page.route("**/api/order", lose_first_answer)
        page.on("dialog", lambda d: d.accept())      # the market-order confirmation: yes
        page.goto(base + "/")
        page.wait_for_selector("body[data-ready='1']", timeout=20_000)
        page.fill("#order-form input[name=quantity]", "10")
        page.click("#order-form button[type=submit]")
        expect(page.locator("#order-form button[type=submit]")).to_be_enabled(timeout=10_000)
        assert len(sent) == 1 and runner.exchange.position("FILUSDT").amount == 10
        page.click("#order-form button[type=submit]")                  # the retry
        expect(page.locator("#order-form input[name=quantity]")).to_have_value("", timeout=10_000)
        assert len(sent) == 2 and sent[1] == sent[0] and sent[0]["clientOrderId"].startswith("web-")
        assert runner.exchange.position("FILUSDT").amount == 10        # still one order
        page.fill("#order-form input[name=quantity]", "10")            # a new order: new id
        page.click("#order-form button[type=submit]")
        expect(page.locator("#order-form input[name=quantity]")).to_have_value("", timeout=10_000)
        assert len(sent) == 3 and sent[2]["clientOrderId"] != sent[0]["clientOrderId"]
        assert runner.exchange.position("FILUSDT").amount == 20



def _seed_filter(runner) -> None:
    """A stored trade-filter model that learned 40 trades in which the level's volume density
    predicted R (TRADE_FILTER=on reloads it at start-up)."""
    import numpy as np

    from rl.strategy.filter_features import FILTER_FEATURES
    from rl.strategy.trade_filter import TradeFilter

    rng = np.random.default_rng(0)
    f = TradeFilter(FILTER_FEATURES, runner.agent.params.filter)
    for _ in range(40):
        x = {k: float(rng.uniform()) for k in FILTER_FEATURES}
        f.learn(x, 3.0 * (x["level_volume_density"] - 0.5) + float(rng.normal(0, 0.2)))
    f.seen, f.taken, f.skipped = 20, 15, 5
    runner.store.set_filter_state(f.to_state(), 0)


def test_dashboard_shows_the_trade_filter_next_to_the_weights(shared_data_dir, browser, tmp_path):
    with serve_replay_dashboard(shared_data_dir, tmp_path, before_start=_seed_filter, replay_speed=60.0,
                trade_filter="on") as (base, runner):
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        errors, _ = watch_page(page)
        page.goto(base + "/")
        page.wait_for_selector("body[data-ready='1']", timeout=20_000)
        page.click("#btn-start")
        box = page.locator("#filter-box")
        expect(box).to_be_visible(timeout=10_000)
        expect(page.locator("#weights .wrow")).to_have_count(6)          # the six weight bars stay
        expect(box.locator(".wrow")).to_have_count(6)
        expect(box.locator(".wrow").first).to_have_attribute("data-feature", "level_volume_density")
        expect(page.locator("#filter-head")).to_contain_text("已学 40 笔")
        # (the running agent may judge a signal meanwhile: 20 seeded decisions, or a few more)
        expect(page.locator("#filter-head")).to_contain_text(re.compile(r"评估 2\d 次信号，拒绝 \d+%"))
        page.click("#btn-lang")
        expect(page.locator("#filter-head")).to_contain_text("learned from 40 trades")
        shot = tmp_path / "dashboard-filter.png"
        page.screenshot(path=str(shot))
        print(f"screenshot: {shot}")
        assert errors == [], errors
