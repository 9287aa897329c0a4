"""Two symbols on one account in a real browser (Chromium via Playwright), issue 18 #3.

A replay of one archive root holding FILUSDT (around 4.0) and NEARUSDT (around 1.2), generated
by tests/support/archives.py and wired as `python -m web.app --replay ROOT --symbol
FILUSDT,NEARUSDT` wires it (web.world.build_world): the real AgentRunner, KnowledgeStore and
PaperExchange in SQLite files. One paper position per symbol (the agent is not started, so
nothing else trades). The switcher changes the four charts (candles, position lines) to the
chosen symbol, the choice survives a reload, the positions and PnL panels list both symbols,
and the page fits a desktop and a phone. Screenshots: /tmp/switcher-*.png.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import pytest

from config import load_settings
from tests.support.archives import write_archive
from tests.support.browser import expect, require_browser, serve_world, watch_page

pytestmark = [pytest.mark.browser, pytest.mark.slow]
require_browser()

KLINES = "binance/futures/um/monthly/klines"
SYMBOLS = ("FILUSDT", "NEARUSDT")
SHOTS = Path("/tmp")


def two_symbol_root(root: Path) -> Path:
    """An archive root with a month of 1m bars of each symbol, at clearly different prices."""
    for sym, seed, price in (("FILUSDT", 1, 4.0), ("NEARUSDT", 2, 1.2)):
        write_archive(root / KLINES / sym / "1m", sym, "2023-09", 30 * 1440, "2023-09-01", seed=seed,
                      price=price)
    return root


@contextmanager
def serve_two_symbols(tmp_path: Path):
    settings = load_settings({"REPLAY_DIR": str(two_symbol_root(tmp_path / "archive")),
                              "SYMBOLS": ",".join(SYMBOLS), "DB_PATH": str(tmp_path / "agent.db"),
                              "REPLAY_SPEED": "1"}, dotenv_path="/nonexistent")
    with serve_world(settings, ",".join(SYMBOLS)) as served:
        yield served


def _entry_line(page) -> float | None:
    lines = page.evaluate("window.dashboardCharts['15m'].describe().position")
    entry = [ln["price"] for ln in lines if ln["title"] in ("开仓", "entry")]
    return entry[0] if entry else None


def _closes(page, interval: str = "15m") -> list[float]:
    return page.evaluate(f"window.dashboardCharts['{interval}'].data.map(c => c.close)")


def _no_sideways_scroll(page) -> None:
    width, inner = page.evaluate("[document.scrollingElement.scrollWidth, innerWidth]")
    assert width <= inner, (width, inner)


def test_the_switcher_moves_all_four_charts_and_the_panels_list_both_symbols(browser, tmp_path: Path):
    with serve_two_symbols(tmp_path) as (base, runner):
        fil = runner.manual_order("FILUSDT", "BUY", "MARKET", 100)
        near = runner.manual_order("NEARUSDT", "SELL", "MARKET", 300)
        assert fil["status"] == "FILLED" and near["status"] == "FILLED"
        positions = {p["symbol"]: p for p in runner.positions() if p["amount"]}
        assert set(positions) == set(SYMBOLS)

        page = browser.new_page(viewport={"width": 1440, "height": 900})
        errors, _ = watch_page(page)
        page.goto(base + "/")
        page.wait_for_selector("body[data-ready='1']", timeout=20_000)

        # First visit: the first configured symbol, on every chart
        expect(page.locator("#symbol")).to_have_value("FILUSDT")
        expect(page.locator("#symbol option")).to_have_count(2)
        for itv in ("1m", "15m", "8h", "1w"):
            expect(page.locator(f".chart-box[data-interval='{itv}'] .chart-sym")).to_have_text("FILUSDT")
        expect(page.locator("#chart-15m")).to_have_attribute("data-position-lines", "1", timeout=10_000)
        assert _entry_line(page) == pytest.approx(positions["FILUSDT"]["entry_price"])
        assert min(_closes(page)) > 2.5                  # FILUSDT's candles (around 4.0)

        # Positions, open orders and PnL: every symbol at once, with its symbol
        for sym in SYMBOLS:
            expect(page.locator(f"#positions-body tr[data-symbol='{sym}']")).to_have_count(1, timeout=10_000)
            expect(page.locator(f"#pnl-body tr[data-symbol='{sym}']")).to_have_count(1, timeout=10_000)
        expect(page.locator("#pnl-body tr[data-total]")).to_have_count(1)
        expect(page.locator("#pnl-body tr[data-symbol='FILUSDT']")).to_have_class("current clickable")
        expect(page.locator("#protections-panel .scope-tag")).to_have_text("全账户")
        # the exposure caps under them: the agent's positions only (these two are manual)
        exp = runner.status()["exposure"]
        assert (exp["open_positions"], exp["max_open_positions"]) == (0, 3)
        risk = "–" if exp["open_risk_percent"] is None else f"{exp['open_risk_percent']:.2f}"   # – before a mark
        expect(page.locator("#exposure-line .figures")).to_have_text(
            f"持仓 0/3 · 止损风险 {risk}/{exp['max_total_risk_percent']:.1f} % · 相关性上限 {exp['max_correlation']:.2f}")
        page.screenshot(path=str(SHOTS / "switcher-desktop-fil.png"), full_page=True)

        # Switch to NEARUSDT: all four charts, their position lines and the URL follow
        page.select_option("#symbol", "NEARUSDT")
        for itv in ("1m", "15m", "8h", "1w"):
            expect(page.locator(f".chart-box[data-interval='{itv}'] .chart-sym")).to_have_text("NEARUSDT")
        page.wait_for_function("window.dashboardCharts['15m'].data.length > 0 && "
                               "Math.max(...window.dashboardCharts['15m'].data.map(c => c.close)) < 2.5",
                               timeout=10_000)
        for itv in ("1m", "8h", "1w"):
            page.wait_for_function(f"Math.max(...window.dashboardCharts['{itv}'].data.map(c => c.close)) < 2.5",
                                   timeout=10_000)
        assert _entry_line(page) == pytest.approx(positions["NEARUSDT"]["entry_price"])
        assert "symbol=NEARUSDT" in page.url
        expect(page.locator("#pnl-body tr[data-symbol='NEARUSDT']")).to_have_class("current clickable")

        # The choice survives a reload (URL), and a fresh visit without it (localStorage)
        page.reload()
        page.wait_for_selector("body[data-ready='1']", timeout=20_000)
        expect(page.locator("#symbol")).to_have_value("NEARUSDT")
        expect(page.locator(".chart-box[data-interval='15m'] .chart-sym")).to_have_text("NEARUSDT")
        page.goto(base + "/")
        page.wait_for_selector("body[data-ready='1']", timeout=20_000)
        expect(page.locator("#symbol")).to_have_value("NEARUSDT")
        assert max(_closes(page)) < 2.5

        # A PnL row switches back; English labels
        page.locator("#pnl-body tr[data-symbol='FILUSDT']").click()
        expect(page.locator("#symbol")).to_have_value("FILUSDT")
        page.wait_for_function("Math.min(...window.dashboardCharts['15m'].data.map(c => c.close)) > 2.5",
                               timeout=10_000)
        assert _entry_line(page) == pytest.approx(positions["FILUSDT"]["entry_price"])
        page.click("#btn-lang")
        expect(page.locator("#pnl-panel h2")).to_have_text("PnL by symbol")
        expect(page.locator("#protections-panel .scope-tag")).to_have_text("account-wide")
        expect(page.locator("#exposure-line .figures")).to_contain_text("positions 0/3 · risk at stops")
        expect(page.locator("#positions-body tr[data-symbol='NEARUSDT']")).to_contain_text("Short")

        # Closing one symbol's position: the positions panel keeps the other, the PnL row counts it
        closed = runner.close_position("NEARUSDT")
        assert closed["closed"]
        expect(page.locator("#positions-body tr[data-symbol='NEARUSDT']")).to_have_count(0, timeout=10_000)
        expect(page.locator("#positions-body tr[data-symbol='FILUSDT']")).to_have_count(1)
        near_row = page.locator("#pnl-body tr[data-symbol='NEARUSDT']")
        expect(near_row.locator("td").nth(3)).to_have_text("1", timeout=15_000)
        net = runner.store.trades(status="closed")[0]["net_pnl"]
        expect(near_row.locator("td").nth(1)).to_have_text(f"{net:,.2f}" if net < 0 else f"+{net:,.2f}")
        expect(near_row.locator("td").nth(4)).to_have_text("0%" if net <= 0 else "100%")
        page.screenshot(path=str(SHOTS / "switcher-desktop-en.png"), full_page=True)
        _no_sideways_scroll(page)

        # A phone: no sideways scroll, the switcher on screen and working
        phone = browser.new_page(viewport={"width": 390, "height": 844})
        phone.on("pageerror", lambda e: errors.append(str(e)))
        phone.goto(base + "/?symbol=NEARUSDT")
        phone.wait_for_selector("body[data-ready='1']", timeout=20_000)
        expect(phone.locator("#symbol")).to_have_value("NEARUSDT")
        box = phone.locator("#symbol").bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390 and box["y"] + box["height"] <= 844
        _no_sideways_scroll(phone)
        phone.screenshot(path=str(SHOTS / "switcher-phone-top.png"))
        phone.select_option("#symbol", "FILUSDT")
        expect(phone.locator(".chart-box[data-interval='15m'] .chart-sym")).to_have_text("FILUSDT")
        phone.locator("#pnl-panel").scroll_into_view_if_needed()
        _no_sideways_scroll(phone)
        phone.screenshot(path=str(SHOTS / "switcher-phone-panels.png"))
        assert errors == []
