"""The dashboard on a phone (390x844) and a desktop (1440x900) in real Chromium, and the chart
extras of issue 17 (#8, #9): no sideways scrolling, every control reachable, one chart at a time
behind tabs, the thought-chain dialog inside the screen, the open position's lines on the chart,
an OHLC readout and a labelled, switchable time zone. Screenshots land in the test's tmp dir."""
from __future__ import annotations

import re

import pytest

from tests.support.browser import expect, require_browser, serve_replay_dashboard, watch_page
from tests.web.test_browser_dashboard import _seed_stop_outs

pytestmark = [pytest.mark.browser, pytest.mark.shared_data, pytest.mark.slow]
require_browser()


def _inside(page, selector: str) -> None:
    box = page.locator(selector).bounding_box()
    vw = page.evaluate("innerWidth")
    vh = page.evaluate("innerHeight")
    assert box is not None, selector
    assert box["x"] >= 0 and box["x"] + box["width"] <= vw, (selector, box, vw)
    assert box["y"] >= 0 and box["y"] + box["height"] <= vh, (selector, box, vh)


def _no_sideways_scroll(page) -> None:
    width, inner = page.evaluate("[document.scrollingElement.scrollWidth, innerWidth]")
    assert width <= inner, (width, inner)


def _open_paper_position(page) -> None:
    """A market BUY of 10 through the page's own order form (the paper exchange fills it),
    saying yes to the market-order confirmation."""
    page.once("dialog", lambda d: d.accept())
    page.fill("#order-form input[name=quantity]", "10")
    page.click("#order-form button[type=submit]")
    expect(page.locator("#order-form input[name=quantity]")).to_have_value("", timeout=10_000)


def _position_lines(page) -> list[dict]:
    return page.evaluate("window.dashboardCharts['15m'].describe().position")


def test_phone_layout_stacks_panels_and_keeps_controls_on_screen(shared_data_dir, browser, tmp_path):  # noqa: F811
    with serve_replay_dashboard(shared_data_dir, tmp_path, before_start=_seed_stop_outs, replay_speed=60.0) as (base, runner):
        page = browser.new_page(viewport={"width": 390, "height": 844})
        errors, _ = watch_page(page)
        page.goto(base + "/")
        page.wait_for_selector("body[data-ready='1']", timeout=20_000)

        _no_sideways_scroll(page)
        _inside(page, "#btn-start")
        _inside(page, "#btn-lang")
        _inside(page, "#btn-tz")
        # One chart at a time: 15m first, the tab switches to 1w.
        expect(page.locator(".chart-tabs")).to_be_visible()
        expect(page.locator("#chart-15m")).to_be_visible()
        expect(page.locator("#chart-1w")).to_be_hidden()
        page.screenshot(path=str(tmp_path / "phone-top.png"))
        page.click(".chart-tab[data-interval='1w']")
        expect(page.locator("#chart-1w")).to_be_visible()
        expect(page.locator("#chart-15m")).to_be_hidden()
        assert page.locator("#chart-1w canvas").first.bounding_box()["width"] > 300
        page.click(".chart-tab[data-interval='15m']")

        # The order form and its submit button can be reached and used.
        page.locator("#order-form").scroll_into_view_if_needed()
        _inside(page, "#order-form button[type=submit]")
        _open_paper_position(page)
        expect(page.locator("#chart-15m")).to_have_attribute("data-position-lines", re.compile(r"[1-9]"), timeout=15_000)
        _no_sideways_scroll(page)

        # The thought-chain dialog of a (seeded) trade opens inside the screen.
        row = page.locator("#trades-body tr.clickable").first
        row.wait_for(timeout=15_000)
        row.scroll_into_view_if_needed()
        row.click()
        expect(page.locator("#thought-dialog")).to_be_visible()
        _inside(page, "#thought-dialog")
        _inside(page, "#thought-close")
        page.screenshot(path=str(tmp_path / "phone-dialog.png"))
        page.click("#thought-close")
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(tmp_path / "phone-full.png"), full_page=True)
        _no_sideways_scroll(page)
        assert errors == [], errors
        print(f"screenshots: {tmp_path}")


def test_desktop_chart_shows_position_lines_ohlc_and_time_zone(shared_data_dir, browser, tmp_path):  # noqa: F811
    with serve_replay_dashboard(shared_data_dir, tmp_path, replay_speed=60.0) as (base, runner):
        page = browser.new_page(viewport={"width": 1440, "height": 900}, timezone_id="Asia/Shanghai")
        errors, _ = watch_page(page)
        page.goto(base + "/")
        page.wait_for_selector("body[data-ready='1']", timeout=20_000)
        _no_sideways_scroll(page)
        expect(page.locator(".chart-tabs")).to_be_hidden()                  # all four charts shown
        for itv in ("1m", "15m", "8h", "1w"):
            expect(page.locator(f"#chart-{itv}")).to_be_visible()

        # No position: no lines. A paper position: its entry price as a line on every chart.
        expect(page.locator("#chart-15m")).to_have_attribute("data-position-lines", "0")
        assert _position_lines(page) == []
        _open_paper_position(page)
        expect(page.locator("#chart-15m")).to_have_attribute("data-position-lines", re.compile(r"[1-9]"), timeout=15_000)
        entry = runner.exchange.position("FILUSDT").entry_price
        lines = _position_lines(page)
        assert [ln["title"] for ln in lines] == ["开仓"] and abs(lines[0]["price"] - entry) < 1e-9
        assert page.evaluate("window.dashboardCharts['1w'].describe().position.length") == 1

        # OHLC readout: the last bar without a crosshair, the hovered bar with one.
        readout = page.locator("#chart-15m .ohlc")
        expect(readout).to_contain_text("收")
        box = page.locator("#chart-15m").bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.5)
        expect(readout).to_contain_text("开")
        hovered = readout.inner_text()
        page.screenshot(path=str(tmp_path / "desktop-position.png"))

        # Time zone: labelled local (UTC+8 here), switched to UTC; the world clock follows.
        tz = page.locator("#btn-tz")
        expect(tz).to_have_text("本地 UTC+8")
        before = page.locator("#world-time").inner_text()
        tz.click()
        expect(tz).to_have_text("UTC")
        expect(page.locator("#world-time")).not_to_have_text(before)
        page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.5 + 1)
        assert readout.inner_text().split()[1] != hovered.split()[1]       # the bar's time moved 8 h
        page.reload()
        page.wait_for_selector("body[data-ready='1']", timeout=20_000)
        expect(page.locator("#btn-tz")).to_have_text("UTC")                 # remembered
        page.click("#btn-lang")
        expect(page.locator("#chart-15m")).to_have_attribute("data-position-lines", re.compile(r"[1-9]"), timeout=15_000)
        assert [ln["title"] for ln in _position_lines(page)] == ["entry"]
        page.screenshot(path=str(tmp_path / "desktop-utc-en.png"))
        assert errors == [], errors
        print(f"screenshots: {tmp_path}")


def test_order_form_shows_notional_asks_before_market_and_explains_refusals(shared_data_dir, browser, tmp_path):  # noqa: F811
    with serve_replay_dashboard(shared_data_dir, tmp_path, replay_speed=60.0) as (base, runner):
        page = browser.new_page(viewport={"width": 390, "height": 844})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(base + "/")
        page.wait_for_selector("body[data-ready='1']", timeout=20_000)
        expect(page.locator("#order-qty-label")).to_have_text("数量（FIL）")
        estimate = page.locator("#order-estimate")
        expect(estimate).to_contain_text("输入数量")
        page.fill("#order-form input[name=quantity]", "10")
        expect(estimate).to_contain_text(re.compile(r"名义价值 ≈ 3\d\.\d\d USDT · 需保证金 ≈ \d+\.\d\d USDT（\d+倍）"))

        # A market order asks first; saying no sends nothing.
        asked: list[str] = []

        def say_no(d):
            asked.append(d.message)
            d.dismiss()
        page.once("dialog", say_no)
        page.click("#order-form button[type=submit]")
        expect(page.locator("#order-form button[type=submit]")).to_be_enabled()
        assert asked and "确认市价" in asked[0] and "FILUSDT" in asked[0], asked
        assert runner.exchange.position("FILUSDT") is None

        # A refused order (far more margin than the paper account has): Binance's code explained.
        page.once("dialog", lambda d: d.accept())
        page.fill("#order-form input[name=quantity]", "1000000")
        page.click("#order-form button[type=submit]")
        toast = page.locator("#toast")
        expect(toast).to_contain_text("币安拒绝了订单（-2019）：保证金不足", timeout=10_000)
        assert "Margin is insufficient" in (toast.get_attribute("title") or "")
        assert runner.exchange.position("FILUSDT") is None
        page.screenshot(path=str(tmp_path / "phone-order-refused.png"))
        page.fill("#order-form input[name=quantity]", "10")        # reduce-only while flat: -2022
        page.check("#order-form input[name=reduceOnly]")
        page.once("dialog", lambda d: d.accept())
        page.click("#order-form button[type=submit]")
        expect(toast).to_contain_text("只减仓单被拒绝：没有可减少的持仓", timeout=10_000)
        page.uncheck("#order-form input[name=reduceOnly]")
        page.once("dialog", lambda d: d.accept())               # -4005, as the issue saw it
        page.fill("#order-form input[name=quantity]", "10000000")
        page.click("#order-form button[type=submit]")
        expect(toast).to_contain_text("数量超过该交易对的最大下单量", timeout=10_000)
        page.click("#btn-lang")
        expect(page.locator("#order-qty-label")).to_have_text("Quantity (FIL)")
        expect(estimate).to_contain_text("margin needed")
        assert errors == [], errors
