"""Shared fixtures: where the real archive data lives, and small generated candles.
Plain helpers (builders, payloads, paths) live in tests/support."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.support.candles import make_candles
from tests.support.paths import shared_data_root


@pytest.fixture
def shared_data_dir() -> Path:
    root = shared_data_root()
    if not (root / "binance").is_dir():
        pytest.skip(f"real Binance archive data not found at {root} (set BINANCE_DATA_DIR)")
    return root


@pytest.fixture
def candles() -> pd.DataFrame:
    return make_candles()


@pytest.fixture
def browser():
    """One real Chromium for a page test (tests/support/browser.py); skipped without one."""
    from tests.support.browser import chromium

    with chromium() as b:
        yield b
