"""Shared fixtures: where the real archive data lives, and small generated candles."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_data_root() -> Path:
    """The Binance archive root: $BINANCE_DATA_DIR, else ../shared/data beside the repo."""
    env = os.environ.get("BINANCE_DATA_DIR")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


def shared_kline_files(symbol: str) -> list[Path]:
    base = shared_data_root() / "binance" / "futures" / "um" / "monthly" / "klines" / symbol / "1m"
    return sorted(base.glob(f"{symbol}-1m-*.zip")) if base.is_dir() else []


@pytest.fixture
def shared_data_dir() -> Path:
    root = shared_data_root()
    if not (root / "binance").is_dir():
        pytest.skip(f"real Binance archive data not found at {root} (set BINANCE_DATA_DIR)")
    return root


def make_candles(n: int = 600, start: str = "2024-01-01", freq: str = "1min",
                 seed: int = 7, price: float = 30000.0, vol: float = 0.0015) -> pd.DataFrame:
    """Realistic-looking OHLCV candles from a seeded random walk (UTC open_time index)."""
    rng = np.random.default_rng(seed)
    rets = rng.normal(0.0, vol, n)
    close = price * np.exp(np.cumsum(rets))
    open_ = np.concatenate([[price], close[:-1]])
    spread = np.abs(rng.normal(0.0, vol, n)) * close
    high = np.maximum(open_, close) + spread
    low = np.minimum(open_, close) - spread
    volume = rng.gamma(2.0, 50.0, n)
    idx = pd.date_range(start, periods=n, freq=freq, tz="UTC", name="open_time")
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close,
                         "volume": volume}, index=idx)


@pytest.fixture
def candles() -> pd.DataFrame:
    return make_candles()
