"""The backtest report in a real browser (Debian's Chromium via Playwright), from a real run.

`python -m rl.backtest --report` over a real week of FILUSDT archive bars writes the file; the
page must load from file:// with no console errors, draw the candlestick canvas, show the new
figures and breakdown tables, and switch its labels between Chinese and English. Screenshots go
to the test's tmp dir for a human to look at.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from rl.backtest.engine import main
from tests.support.browser import chromium, expect, require_browser

pytestmark = [pytest.mark.browser, pytest.mark.shared_data]   # ~4 s: kept in the routine suite
require_browser()


@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.support.paths import shared_data_root
    root = shared_data_root()
    if not (root / "binance").is_dir():
        pytest.skip(f"real Binance archive data not found at {root} (set BINANCE_DATA_DIR)")
    out = tmp_path_factory.mktemp("report") / "report.html"
    assert main(["--data", str(root), "--symbol", "FILUSDT", "--from", "2023-09-01", "--to", "2023-09-10",
                 "--report", str(out)]) == 0
    return out


def test_report_opens_in_chromium_with_chart_figures_and_both_languages(report_file: Path, tmp_path: Path) -> None:
    html = report_file.read_text(encoding="utf-8")
    assert report_file.stat().st_size < 1_000_000        # candles merged (10 days of 1m -> 5m), not 14,400
    assert "http://" not in html.split("<script>")[0] and 'src="' not in html   # self-contained
    with chromium() as browser:
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(report_file.as_uri())
            expect(page.locator("#price-chart canvas").first).to_be_visible()
            # the chart really drew candles: the library reports a visible range over them
            assert page.evaluate("window.reportChart.timeScale().getVisibleLogicalRange() !== null")
            for table in ("#performance", "#settings", "#by-exit", "#by-side", "#by-month", "#summary"):
                expect(page.locator(table)).to_be_visible()
            perf = page.locator("#performance")
            for key in ("cagr", "calmar", "sqn", "avg_duration", "best_trade", "worst_trade",
                        "losing_streak", "dd_peak", "dd_trough"):
                expect(perf.locator(f'tr[data-key="{key}"]')).to_have_count(1)
            expect(page.locator('#summary tr[data-key="profit_factor"] th')).to_have_text("利润因子")
            expect(perf.locator('tr[data-key="sqn"] th')).to_have_text("系统质量数 (SQN)")
            expect(page.locator("#by-exit")).to_contain_text("止损")
            # zoom with the wheel over the chart: fewer candles in view afterwards
            width = "(() => { const r = window.reportChart.timeScale().getVisibleLogicalRange(); return r.to - r.from; })()"
            before = page.evaluate(width)
            page.locator("#price-chart").scroll_into_view_if_needed()
            box = page.locator("#price-chart").bounding_box()
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.mouse.wheel(0, -600)
            page.wait_for_function(f"{width} < {before} * 0.95")
            page.evaluate("window.reportChart.timeScale().fitContent(); window.scrollTo(0, 0)")
            page.screenshot(path=str(tmp_path / "report_zh.png"), full_page=False)
            page.locator("#price-chart").screenshot(path=str(tmp_path / "report_chart.png"))

            page.click("#lang")
            expect(page.locator("html")).to_have_attribute("lang", "en")
            expect(page.locator('#summary tr[data-key="profit_factor"] th')).to_have_text("Profit factor")
            expect(page.locator("#by-exit")).to_contain_text("Stop loss")
            expect(page.locator("#by-exit")).not_to_contain_text("止损")
            # the SVG charts' titles switch too (#17 item 11)
            expect(page.locator('svg text[data-en="Equity"]')).to_have_text("Equity")
            expect(page.locator('svg text[data-en="Drawdown %"]')).to_have_text("Drawdown %")
            # a thought chain reads as sections, not a JSON dump
            first = page.locator("#trades details").first
            first.locator("summary").click()
            expect(first.locator(".chain-body")).to_contain_text("Score breakdown")
            expect(first.locator(".chain-body")).to_contain_text("Plan")
            assert '"perception"' not in first.inner_text()
            first.screenshot(path=str(tmp_path / "report_chain_en.png"))
            page.evaluate("window.scrollTo(0, 0)")
            page.screenshot(path=str(tmp_path / "report_en.png"))
            page.click("#lang")
            expect(page.locator('#summary tr[data-key="profit_factor"] th')).to_have_text("利润因子")
            assert errors == []
            assert all(u.startswith("file://") for u in requests), requests
        finally:
            browser.close()
    print(f"screenshots in {tmp_path}")
