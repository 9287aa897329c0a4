"""The order form's stop-loss / take-profit fields in a real browser (#17 item 3): a wrong-side
stop is refused under its field; a market buy with a stop-loss and a take-profit shows both in
the open orders as the trader's reduce-only orders. The replay world of
tests/web/test_browser_dashboard.py; the agent is not started."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.browser import chromium, expect, require_browser, serve_replay_dashboard

pytestmark = [pytest.mark.browser, pytest.mark.shared_data, pytest.mark.slow]
require_browser()

SYMBOL = "FILUSDT"


def test_a_manual_order_with_a_stop_loss_shows_it_in_open_orders(shared_data_dir, tmp_path: Path):
    with serve_replay_dashboard(shared_data_dir, tmp_path) as (base, runner), chromium() as browser:
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("dialog", lambda d: d.accept())             # the market order's confirmation
        page.goto(base + "/")
        page.wait_for_selector("body[data-ready='1']", timeout=20_000)
        f = runner.exchange.filters(SYMBOL)
        last = runner.market.last_price(SYMBOL)
        sl, tp = f.round_price(last * 0.95, "down"), f.round_price(last * 1.05, "up")
        form = page.locator("#order-form")

        # a LIMIT buy with its stop above the price: refused under the field, nothing sent
        form.locator("select[name=type]").select_option("LIMIT")
        form.locator("input[name=quantity]").fill("50")
        form.locator("input[name=price]").fill(str(f.round_price(last * 0.97, "down")))
        form.locator("input[name=stopLoss]").fill(str(tp))
        form.locator("button[type=submit]").click()
        expect(form.locator(".field-error[data-for=stopLoss]")).to_have_text("须低于下单价格")
        assert runner.exchange.open_orders(SYMBOL) == []

        # a MARKET buy with the server's check: a stop above the last price is named by the server
        form.locator("select[name=type]").select_option("MARKET")
        form.locator("button[type=submit]").click()
        expect(form.locator(".field-error[data-for=stopLoss]")).to_contain_text("below the entry price",
                                                                                timeout=10_000)
        assert runner.exchange.position(SYMBOL) is None

        form.locator("input[name=quantity]").fill("50")
        form.locator("input[name=stopLoss]").fill(str(sl))
        form.locator("input[name=takeProfit]").fill(str(tp))
        form.locator("button[type=submit]").click()
        body = page.locator("#open-orders-body")
        stop_row = body.locator("tr", has_text="STOP_MARKET").or_(body.locator("tr", has_text="止损"))
        expect(body.locator("tr")).to_have_count(2, timeout=10_000)
        expect(body).to_contain_text("手动")
        expect(body).to_contain_text(f"{sl:g}")
        expect(body).to_contain_text(f"{tp:g}")
        assert stop_row.count() >= 1
        page.screenshot(path="/tmp/h-honest-manual-stops.png", full_page=True)
        assert sorted(s.type for s in runner.exchange.open_stops(SYMBOL)) == ["STOP_MARKET", "TAKE_PROFIT_MARKET"]
        assert errors == []
