"""The order/fill history and the aggregated chart markers in a real browser (#17 items 2, 9):
four manual market orders make two round trips inside one candle; the fills list shows each
fill's order type and purpose, fee (maker/taker), realized PnL, the trade it belongs to and who
placed it, with a symbol filter; on the weekly chart the trades share one marker per kind and
hovering that candle lists them (side, price, PnL). The replay world of
tests/web/test_browser_dashboard.py; the agent is not started."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.browser import chromium, expect, require_browser, serve_replay_dashboard, watch_page

pytestmark = [pytest.mark.browser, pytest.mark.shared_data, pytest.mark.slow]
require_browser()

SYMBOL = "FILUSDT"


def test_fills_history_and_the_aggregated_marker_tooltip(shared_data_dir, tmp_path: Path):
    with serve_replay_dashboard(shared_data_dir, tmp_path) as (base, runner), chromium() as browser:
        for side in ("BUY", "SELL", "BUY", "SELL"):
            runner.manual_order(SYMBOL, side, "MARKET", 50)
        trades = runner.store.trades(limit=10)
        assert len(trades) == 2 and all(t["status"] == "closed" for t in trades)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        errors, _ = watch_page(page)
        page.goto(base + "/")
        page.wait_for_selector("body[data-ready='1']", timeout=20_000)

        fills = page.locator("#fills-body tr")
        expect(fills).to_have_count(4, timeout=10_000)
        first = fills.first                                   # newest first: the last SELL
        expect(first).to_contain_text("卖出")
        expect(first).to_contain_text("市价 · 手动单")
        expect(first).to_contain_text(f"#{max(t['id'] for t in trades)}")
        expect(first).to_contain_text("手动")
        expect(first.locator("td").nth(6)).to_contain_text(" T")   # a market order: a taker fill
        expect(page.locator("#fills-more")).to_be_hidden()        # fewer than a page: nothing more
        page.locator("#fills-symbol").select_option(SYMBOL)
        expect(fills).to_have_count(4)

        # the 1w chart: both round trips in its last candle -> one marker, the list on hover
        chart = page.locator("#chart-1w")
        box = chart.bounding_box()
        assert box is not None
        tip = chart.locator(".trade-tip")
        for dx in range(50, 400, 3):                          # from the price scale leftwards
            page.mouse.move(box["x"] + box["width"] - dx, box["y"] + box["height"] / 2)
            if tip.is_visible():
                break
        expect(tip).to_be_visible()
        lines = tip.locator("div")
        expect(lines).to_have_count(4)
        expect(tip).to_contain_text("做多 开仓 @")
        expect(tip).to_contain_text("做多 平仓 @")
        page.screenshot(path="/tmp/h-honest-marker-tip.png", full_page=False)
        page.locator("#fills-panel").screenshot(path="/tmp/h-honest-fills.png")
        page.click("#btn-lang")
        expect(first).to_contain_text("market · manual order")
        assert errors == []
