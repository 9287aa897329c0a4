"""An unreconciled trade (position gone, exit fills not found) is shown as such by the API and
in the trades table of the real page (Chromium via Playwright), in both languages: never as an
open position, never with a made-up PnL."""
from __future__ import annotations

from pathlib import Path

import pytest

from rl.analysis.levels.finder import FEATURES
from tests.support.browser import chromium, expect, require_browser, serve_replay_dashboard

pytestmark = [pytest.mark.browser, pytest.mark.shared_data, pytest.mark.slow]
require_browser()



def _seed_unreconciled(runner) -> None:
    store = runner.store
    tid = store.open_trade(symbol="FILUSDT", side="LONG", entry_client_order_id="FILUSDT:900", opened_ms=1_693_000_000_000,
                           entry_price=4.0, quantity=100.0, stop_price=3.9, target_price=4.3, leverage=10,
                           features={f: 0.5 for f in FEATURES}, perception={"price": 4.0}, action={"side": "LONG"})
    assert store.mark_unreconciled(tid, time_ms=1_693_000_600_000)


def test_an_unreconciled_trade_is_shown_as_unreconciled(shared_data_dir, tmp_path: Path):
    import requests

    with serve_replay_dashboard(shared_data_dir, tmp_path, before_start=_seed_unreconciled) as (base, _runner):
        trades = requests.get(base + "/api/trades", timeout=10).json()["trades"]
        assert [(t["status"], t["net_pnl"]) for t in trades] == [("unreconciled", None)]
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(base + "/")
            page.wait_for_selector("body[data-ready='1']", timeout=20_000)
            row = page.locator("#trades-body tr[data-status='unreconciled']")
            expect(row).to_have_count(1, timeout=10_000)
            expect(row).to_contain_text("未对账")
            expect(row).not_to_contain_text("持仓中")
            page.click("#btn-lang")
            expect(row).to_contain_text("unreconciled")
            row.scroll_into_view_if_needed()
            page.locator("#trades-body").screenshot(path=str(tmp_path / "trades-unreconciled.png"))
            browser.close()
            assert errors == [], errors
