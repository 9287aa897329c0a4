"""The embedded default end to end: paper trading on live mainnet candles.

`python -m web.app` with no settings builds exactly this world (web.world.build_world). Binance
is mocked over HTTP with `responses`, answering /fapi/v1/klines and /fapi/v2/ticker/price in the
documented shapes from one deterministic 1m price path, so the agent perceives, analyzes and
decides on real-shaped data, and the paper account trades on it.
"""
from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import parse_qs, urlparse

import numpy as np
import responses

from config import load_settings
from web.world import build_world

MIN = 60_000
EXCHANGE_INFO = {"timezone": "UTC", "serverTime": 1, "rateLimits": [], "exchangeFilters": [], "symbols": [{
    "symbol": "BTCUSDT", "pair": "BTCUSDT", "contractType": "PERPETUAL", "status": "TRADING",
    "baseAsset": "BTC", "quoteAsset": "USDT", "marginAsset": "USDT", "pricePrecision": 2,
    "quantityPrecision": 3, "filters": [
        {"filterType": "PRICE_FILTER", "minPrice": "556.80", "maxPrice": "4529764", "tickSize": "0.10"},
        {"filterType": "LOT_SIZE", "stepSize": "0.001", "maxQty": "1000", "minQty": "0.001"},
        {"filterType": "MARKET_LOT_SIZE", "stepSize": "0.001", "maxQty": "120", "minQty": "0.001"},
        {"filterType": "MIN_NOTIONAL", "notional": "100"}]}]}
IV_MS = {"1m": MIN, "15m": 15 * MIN, "8h": 480 * MIN, "1w": 10080 * MIN}


def _price(t_ms: np.ndarray) -> np.ndarray:
    """A smooth, deterministic path with swings (so levels and signals exist)."""
    m = t_ms / MIN
    return 30_000 * (1 + 0.03 * np.sin(m / 700) + 0.01 * np.sin(m / 97) + 0.004 * np.sin(m / 13))


def _rows(interval: str, limit: int, now_ms: int) -> list[list]:
    step = IV_MS[interval]
    anchor = 4 * 86_400_000 if interval == "1w" else 0          # weeks open Monday 00:00 UTC
    last_open = (now_ms - anchor) // step * step + anchor       # the forming candle
    opens = last_open - step * np.arange(limit - 1, -1, -1)
    rows = []
    for o in opens:
        end = min(o + step, now_ms)
        ts = np.arange(o, max(end, o + 1), MIN)
        px = _price(ts)
        rows.append([int(o), f"{px[0]:.2f}", f"{px.max():.2f}", f"{px.min():.2f}", f"{px[-1]:.2f}",
                     f"{len(ts) * 12.5:.3f}", int(o + step - 1), f"{len(ts) * 12.5 * px[-1]:.2f}",
                     len(ts) * 40, f"{len(ts) * 6.1:.3f}", f"{len(ts) * 6.1 * px[-1]:.2f}", "0"])
    return rows


def _klines(request):
    q = parse_qs(urlparse(request.url).query)
    assert q["symbol"] == ["BTCUSDT"]
    rows = _rows(q["interval"][0], int(q.get("limit", ["500"])[0]), int(time.time() * 1000))
    return 200, {"X-MBX-USED-WEIGHT-1M": "10"}, __import__("json").dumps(rows)


def _ticker(request):
    now = int(time.time() * 1000)
    px = float(_price(np.array([now // MIN * MIN - MIN]))[0])
    return 200, {}, __import__("json").dumps({"symbol": "BTCUSDT", "price": f"{px:.2f}", "time": now})


@contextmanager
def binance() -> Iterator[responses.RequestsMock]:
    """Binance's public market endpoints; any other request fails (no network)."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rs:
        rs.add_callback(responses.GET, re.compile(r"https://fapi\.binance\.com/fapi/v1/klines.*"),
                        callback=_klines)
        rs.add_callback(responses.GET, re.compile(r"https://fapi\.binance\.com/fapi/v2/ticker/price.*"),
                        callback=_ticker)
        rs.add(responses.GET, "https://fapi.binance.com/fapi/v1/exchangeInfo", json=EXCHANGE_INFO)
        yield rs


def test_default_world_paper_trades_on_live_candles(tmp_path):
    settings = load_settings({"DB_PATH": str(tmp_path / "agent.db")}, dotenv_path="/nonexistent")
    assert settings.trading_mode == "paper" and settings.mode_label == "paper"
    with binance() as rs:
        world = build_world(settings)
        assert world.runner is not None, world.runner_note
        agent = world.runner.agent
        agent.startup()
        agent.run_cycle()
        agent.run_cycle()
        status = agent.status()
        assert status["last_error"] is None, status["last_error"]
        assert status["connectivity"]["market"] == "ok"
        scores = status["last_scores"]["BTCUSDT"]
        assert 0 <= scores["long"] <= 100 and 0 <= scores["short"] <= 100
        assert agent.levels("BTCUSDT"), "levels found on live-shaped candles"
        account = world.runner.account()
        assert abs(account["margin_balance"] - 10_000.0) < 200.0     # the paper account
        # every request went to the public mainnet host, none signed, none to a trade endpoint
        assert all(c.request.url.startswith("https://fapi.binance.com/fapi/") for c in rs.calls)
        assert not any("signature=" in c.request.url for c in rs.calls)
        # the paper account trades under Binance's real filters, read from exchangeInfo
        f = world.runner.agent.exchange.filters("BTCUSDT")
        assert (str(f.tick_size), str(f.step_size), str(f.min_notional)) == ("0.10", "0.001", "100")
        world.runner.stop()
