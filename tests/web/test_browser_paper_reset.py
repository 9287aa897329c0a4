"""Resetting the paper account from the dashboard in a real browser (Debian's Chromium).

A real waitress server serves the paper world `python -m web.app` builds (web.world.build_world,
DB_PATH unset, so the store is the paper mode's own under a tmp store folder), with Binance's
public endpoints mocked over HTTP by `responses`. A manual order costs the account a fee; the
reset button asks first (a dismissed dialog changes nothing), then starts the account over at
PAPER_BALANCE. Screenshots are saved under the test's tmp dir.
"""
from __future__ import annotations

import threading
from pathlib import Path

import pytest

import config
from tests.support.browser import expect, require_browser
from tests.web.test_mode_stores import SYMBOL, binance, settings
from web.app import create_app
from web.world import build_world

pytestmark = [pytest.mark.browser, pytest.mark.slow]
require_browser()



def test_reset_button_confirms_then_shows_the_fresh_balance(browser, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch):
    from waitress.server import create_server

    monkeypatch.setattr(config, "STORE_ROOT", tmp_path / "data")
    with binance():
        world = build_world(settings(PAPER_BALANCE="2500"))
        assert world.runner is not None, world.runner_note
        world.runner.manual_order(SYMBOL, "BUY", "MARKET", 0.01)     # a trade and its fee
        app = create_app(world.settings, market=world.market, runner=world.runner,
                         reset_paper=world.reset_paper)
        svc = app.extensions["dashboard_service"]
        srv = create_server(app, host="127.0.0.1", port=0, threads=6)
        thread = threading.Thread(target=srv.run, daemon=True)
        thread.start()
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            errors: list[str] = []
            resets: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: resets.append(r.method) if r.url.endswith("/api/agent/reset") else None)
            page.goto(f"http://127.0.0.1:{srv.effective_port}/")
            page.wait_for_selector("body[data-ready='1']", timeout=20_000)
            button = page.locator("#btn-reset")
            expect(button).to_be_visible()
            expect(button).to_have_text("重置模拟账户")
            expect(page.locator("#acc-total")).not_to_have_text("—", timeout=10_000)
            before = page.locator("#acc-total").inner_text()
            assert before != "2,500.00"
            expect(page.locator("#trades-body tr.clickable")).to_have_count(1, timeout=10_000)

            page.screenshot(path=str(tmp_path / "paper-before-reset.png"))
            # Cancel: the dialog names the balance it would start over with; nothing changes.
            seen: list[str] = []

            def dismiss(d):
                seen.append(d.message)
                d.dismiss()
            page.once("dialog", dismiss)
            button.click()
            assert seen and "2,500.00 USDT" in seen[0] and "确定重置模拟账户" in seen[0]

            # English, then confirm: the page reloads on the fresh account.
            page.click("#btn-lang")
            expect(button).to_have_text("Reset paper account")
            page.once("dialog", lambda d: (seen.append(d.message), d.accept()))
            with page.expect_navigation():
                button.click()
            assert "Reset the paper account?" in seen[-1]
            assert resets == ["POST"]              # the dismissed dialog sent nothing
            page.wait_for_selector("body[data-ready='1']", timeout=20_000)
            expect(page.locator("#acc-total")).to_have_text("2,500.00", timeout=10_000)
            expect(page.locator("#trades-body tr.clickable")).to_have_count(0)
            assert svc.runner is not world.runner and svc.runner.trades() == []
            page.screenshot(path=str(tmp_path / "paper-reset.png"), full_page=True)
            print("screenshot:", tmp_path / "paper-reset.png")
            assert not errors, errors
        finally:
            srv.close()
            thread.join(5)
            svc.runner.stop()
            svc.runner.store.close()
            svc.runner.exchange.close()
