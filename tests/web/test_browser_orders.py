"""The open-orders panel in a real browser (Chromium via Playwright) over the replay world of
tests/web/test_browser_dashboard.py: a resting limit order (which holds margin while the
positions say "no position") is listed and cancelled through the confirmation; the stop-loss of
an open position is cancelled only through the second, explicit warning. The agent is not
started, so nothing fills the resting order meanwhile. Screenshots go under the test's tmp dir."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.browser import expect, require_browser, serve_replay_dashboard, watch_page

pytestmark = [pytest.mark.browser, pytest.mark.shared_data, pytest.mark.slow]
require_browser()

SYMBOL = "FILUSDT"



def _tick_price(runner, factor: float) -> float:
    f = runner.exchange.filters(SYMBOL)
    return f.round_price(runner.market.last_price(SYMBOL) * factor, "nearest")


def test_a_resting_order_is_shown_and_cancelled_and_a_stop_needs_the_warning(shared_data_dir, browser,
                                                                              tmp_path: Path):
    with serve_replay_dashboard(shared_data_dir, tmp_path) as (base, runner):
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        errors, _ = watch_page(page)
        page.goto(base + "/")
        page.wait_for_selector("body[data-ready='1']", timeout=20_000)
        body = page.locator("#open-orders-body")
        expect(body).to_contain_text("无挂单", timeout=10_000)

        price = _tick_price(runner, 0.97)
        placed = runner.manual_order(SYMBOL, "BUY", "LIMIT", 50, price)
        assert placed["status"] == "NEW"
        row = body.locator(f"tr[data-order-id='{placed['order_id']}']")
        expect(row).to_be_visible(timeout=10_000)
        expect(row).to_contain_text("买入")
        expect(row).to_contain_text("限价")
        expect(row).to_contain_text("手动")
        expect(row).to_contain_text("50 / 0")
        assert runner.account()["initial_margin"] > 0
        page.screenshot(path=str(tmp_path / "open-orders-resting.png"), full_page=True)

        row.locator("button[data-cancel]").click()
        dialog = page.locator("#cancel-dialog")
        expect(dialog).to_be_visible()
        expect(page.locator("#cancel-warn")).to_be_hidden()
        page.locator("#cancel-no").click()                  # "back": nothing is cancelled
        expect(dialog).to_be_hidden()
        assert len(runner.exchange.open_orders(SYMBOL)) == 1
        row.locator("button[data-cancel]").click()
        page.locator("#cancel-yes").click()
        expect(row).to_have_count(0, timeout=10_000)
        expect(body).to_contain_text("无挂单")
        assert runner.exchange.open_orders(SYMBOL) == [] and runner.account()["initial_margin"] == 0

        # a position with its stop-loss: the dialog warns, in English after the switch
        runner.manual_order(SYMBOL, "BUY", "MARKET", 50)
        stop = runner.exchange.place_stop(SYMBOL, "SELL", "STOP_MARKET", _tick_price(runner, 0.8),
                                          None, "ag-sl-browser")
        runner.store.orders.record(stop, "stop")
        page.click("#btn-lang")
        srow = body.locator(f"tr[data-order-id='{stop.algo_id}']")
        expect(srow).to_contain_text("protective stop", timeout=10_000)
        expect(srow).to_contain_text("agent")
        expect(page.locator("#fills-body")).to_contain_text("manual", timeout=10_000)
        srow.locator("button[data-cancel]").click()
        expect(page.locator("#cancel-warn")).to_be_visible()
        expect(page.locator("#cancel-warn")).to_contain_text("unprotected")
        expect(page.locator("#cancel-warn")).to_contain_text("places its stop again")
        expect(page.locator("#cancel-yes")).to_contain_text("Cancel anyway")
        page.screenshot(path=str(tmp_path / "open-orders-stop-warning.png"), full_page=True)
        page.locator("#cancel-yes").click()
        expect(srow).to_have_count(0, timeout=10_000)
        assert runner.exchange.open_stops(SYMBOL) == []
        assert any("unprotected" in r["message_en"] for r in runner.logs(limit=10))
        page.screenshot(path=str(tmp_path / "open-orders-after.png"), full_page=True)
        assert errors == []
