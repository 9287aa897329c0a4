"""Fixtures shared by the backtest tests."""
from __future__ import annotations

import pytest

from rl.backtest.data import BacktestData, load_backtest_data
from tests.support.paths import shared_data_root, shared_kline_files

SYMBOL = "FILUSDT"
DAY = "2023-09-01"


@pytest.fixture(scope="module")
def day_data() -> BacktestData:
    """FILUSDT's real bars of 2023-09-01 (skipped without the shared archive), once per module."""
    if not shared_kline_files(SYMBOL):
        pytest.skip(f"real Binance archive for {SYMBOL} not found under {shared_data_root()}")
    return load_backtest_data([shared_data_root()], SYMBOL, DAY, DAY)
