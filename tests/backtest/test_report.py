"""The HTML report: one self-contained file with the charts, the summary and every trade."""
from __future__ import annotations

import json
import re

from rl.backtest.report import price_chart, render_report


def _result(n: int = 3000) -> dict:
    t0 = 1_693_526_400_000
    times = [t0 + i * 60_000 for i in range(n)]
    closes = [4.0 + 0.001 * (i % 50) for i in range(n)]
    equity = [10_000.0 + (i % 7) - 3 for i in range(n)]
    trades = [
        {"id": 1, "side": "LONG", "status": "closed", "opened_ms": times[10], "closed_ms": times[90],
         "entry_time": "2023-09-01 00:10", "exit_time": "2023-09-01 01:30", "entry_price": 4.01,
         "exit_price": 4.04, "pnl": 12.5, "r_multiple": 1.2, "exit_reason": "target",
         "summary_en": "Long <b>at</b> support & won",
         "thought_chain": {"perception": {"price": 4.01}, "action": {"side": "LONG"},
                           "reward": {"pnl": 12.5}, "summary_zh": "做多获利", "summary_en": "won"}},
        {"id": 2, "side": "SHORT", "status": "open", "opened_ms": times[2000], "closed_ms": None,
         "entry_time": "2023-09-02 09:20", "exit_time": None, "entry_price": 4.02, "exit_price": None,
         "pnl": None, "r_multiple": None, "exit_reason": None, "thought_chain": None},
    ]
    return {"symbol": "FILUSDT", "from": "2023-09-01", "to": "2023-09-03",
            "summary": {"trades": 1, "win_rate": 1.0, "net_pnl": 12.5, "sharpe": None, "return_pct": 0.125},
            "final_weights": {"volume_density": 0.25, "touch_bounce_count": 0.75},
            "prices": {"time_ms": times, "close": closes},
            "equity": {"time_ms": times, "equity": equity, "drawdown": [-(i % 7) / 1e4 for i in range(n)]},
            "trades": trades,
            "weight_history": [{"time_ms": times[0], "weights": {"volume_density": 0.5, "touch_bounce_count": 0.5}},
                               {"time_ms": times[-1], "weights": {"volume_density": 0.25, "touch_bounce_count": 0.75}}]}


def test_report_is_self_contained_with_all_sections() -> None:
    page = render_report(_result())
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    # nothing fetched from anywhere: scripts are inline, no external links or sources
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', page) and "<script src" not in page
    assert page.count("<svg") == 4                   # no candles given: SVG price, equity, drawdown, weights
    assert "#1 LONG @ 4.0100" in page               # entry marker on the price chart
    assert "exit @ 4.0400 (target)" in page          # exit marker with its reason
    assert "做多获利" in page and "25.0%" in page and "75.0%" in page
    assert 'data-zh="交易" data-en="Trades">交易</span> (2)' in page
    assert ('<tr data-key="win_rate"><th><span data-zh="胜率" data-en="Win rate">胜率</span></th>'
            "<td>100.0 %</td></tr>") in page and "+0.12 %" in page
    assert ">win_rate<" not in page                  # words, not raw keys
    # the SVG charts' titles and legends in both languages, switched with the page
    assert '<text x="48" y="14" class="lbl" data-zh="权益" data-en="Equity">权益</text>' in page
    assert 'data-zh="特征权重" data-en="Feature weights"' in page and 'data-zh="价格" data-en="Price"' in page
    assert '<span data-zh="成交量密度" data-en="Volume density">' in page and "Equity / 权益" not in page


def _candles(r: dict) -> dict:
    t = r["prices"]["time_ms"]
    step = 15
    keys = list(range(0, len(t), step))
    return {"minutes": 15, "time_s": [t[i] // 1000 // 900 * 900 for i in keys],
            "open": [4.0] * len(keys), "high": [4.1] * len(keys), "low": [3.9] * len(keys),
            "close": [4.05] * len(keys)}


def test_report_with_candles_inlines_the_chart_library_and_levels() -> None:
    r = _result()
    r["candles"] = _candles(r)
    lv = {"price": 4.0, "kind": "support", "score": 70.0}
    r["trades"][0]["thought_chain"]["perception"]["level"] = lv
    r["trades"][1]["thought_chain"] = {"perception": {"level": {**lv, "price": 4.001, "score": 50.0}}}
    page = render_report(r)
    body = re.sub(r"<script.*?</script>", "", page, flags=re.S)
    assert body.count("<svg") == 3                   # the price is the candlestick chart now
    assert "LightweightCharts" in page and 'id="price-chart"' in page
    data = json.loads(re.search(r'<script type="application/json" id="chart-data">(.*?)</script>', page).group(1))
    assert data["minutes"] == 15 and len(data["candles"]) == 200
    assert data["levels"] == [lv]                    # 4.001 is within 0.4 % of the better 4.0: drawn once
    (t1, t2) = data["trades"]
    assert (t1["entry_t"], t1["exit_t"]) == (1_693_526_400, 1_693_526_400 + 900 * 6)   # snapped to 15m
    assert t2["exit_t"] is None


def test_report_figures_breakdowns_and_settings() -> None:
    r = _result()
    r["settings"] = {"leverage": 10, "taker_fee": 0.0005}
    page = render_report(r)
    perf = re.search(r'<table id="performance">(.*?)</table>', page).group(1)
    assert "最长连亏" in perf and "1小时 20分" in perf and "+12.50" in perf           # duration 80 min
    assert '<span data-zh="杠杆" data-en="Leverage">杠杆</span></th><td>10</td>' in page
    by_exit = re.search(r'<table id="by-exit">(.*?)</table>', page).group(1)
    assert 'data-en="Take profit">止盈</span></th><td>1</td><td>100.0 %</td><td>+12.50</td>' in by_exit
    assert "2023-09" in re.search(r'<table id="by-month">(.*?)</table>', page).group(1)
    assert "利润因子" in page and "盈亏比" not in page


def test_thought_chain_is_readable_not_json() -> None:
    page = render_report(_result())
    chain = re.search(r'<div class="chain-body">(.*?)</div></details>', page, re.S).group(1)
    assert "{" not in chain and '"perception"' not in chain
    assert 'data-en="Outcome"' in chain or 'data-en="Plan"' in chain


def test_report_lists_the_protections_pauses() -> None:
    r = _result()
    r["protections"] = {"config": {}, "pauses": [
        {"rule": "daily_loss", "started": "2023-09-01T09:00:00Z", "until": "2023-09-02T00:00:00Z",
         "started_ms": 1, "until_ms": 2, "active": False, "reason_en": "Daily loss limit <4 %>",
         "reason_zh": "日亏损保护"},
        {"rule": "drawdown", "started": "2023-09-02T10:00:00Z", "until": "2023-10-01T00:00:00Z",
         "started_ms": 3, "until_ms": 4, "active": True, "reason_en": "Drawdown guard", "reason_zh": "回撤保护"}]}
    page = render_report(r)
    assert 'data-en="Protections">风控暂停</span> (2)' in page
    assert ('<td><span data-zh="日亏损保护" data-en="Daily loss limit">日亏损保护</span></td>'
            "<td>2023-09-01T09:00:00Z</td><td>2023-09-02T00:00:00Z</td>") in page
    assert '2023-10-01T00:00:00Z (<span data-zh="进行中" data-en="active">进行中</span>)' in page
    assert "Daily loss limit &lt;4 %&gt;" in page and "日亏损保护" in page
    assert 'data-en="No pauses">无暂停' in render_report(_result())


def test_report_escapes_text_from_the_store() -> None:
    page = render_report(_result())
    assert "Long &lt;b&gt;at&lt;/b&gt; support &amp; won" in page
    assert "<b>at</b>" not in page


def test_report_of_an_empty_run_still_renders() -> None:
    page = render_report({"symbol": "X", "summary": {"trades": 0, "sharpe": None}, "trades": []})
    assert 'data-en="Trades">交易</span> (0)' in page and "<svg" not in page


def test_a_long_chart_is_thinned_but_keeps_its_extremes() -> None:
    xs = list(range(10_000))
    ys = [0.0] * 10_000
    ys[4321] = 99.0
    ys[777] = -5.0
    svg = price_chart(xs, ys, [])
    line = re.search(r'<polyline [^>]*points="([^"]*)"', svg).group(1)
    ox = [float(p.split(",")[0]) for p in line.split()]
    assert len(ox) <= 2000 and ox == sorted(ox)
    ticks = re.findall(r'class="tick">([^<]*)<', svg)
    assert "99.00" in ticks and "-5.0000" in ticks          # the price axis still spans both spikes

