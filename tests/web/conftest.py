"""Fixtures shared by the web API tests: the real app over a paper runner on 45 days of
generated 1m candles, the clock mid-bar on day 30 (a module may define its own `world`)."""
from __future__ import annotations

from pathlib import Path

import pytest

from config import Settings
from rl.clock import ManualClock
from rl.market.ports import ReplayMarketData
from tests.support.candles import make_candles
from tests.web.test_web_api import DAY_MIN, SYMBOL, TOKEN, build_runner
from web.app import create_app


@pytest.fixture
def world(tmp_path: Path):
    frame = make_candles(n=45 * DAY_MIN, start="2024-01-01", price=4.0, vol=0.002)
    clock = ManualClock(int(frame.index[30 * DAY_MIN].value // 1_000_000) + 30_000)
    market = ReplayMarketData({SYMBOL: frame}, clock)
    settings = Settings(symbols=(SYMBOL,), db_path=tmp_path / "agent.db")
    runner = build_runner(settings, market, clock)
    app = create_app(settings, market=market, runner=runner, token=TOKEN)
    yield app, runner
    runner.stop()
    runner.store.close()
    runner.exchange.close()


@pytest.fixture
def client(world):
    return world[0].test_client()
