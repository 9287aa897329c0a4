"""Golden runs: a one-symbol backtest gives exactly the results recorded before the portfolio
engine existed (issue 18: "a one-symbol run gives exactly today's results").

Recorded: every trade (without thought chains), fees, final equity, every summary metric, the
final weights, the protections' pauses and a hash of the whole equity curve, on
- a synthetic month (tests/support/archives.write_archive: a seeded random walk priced like FIL),
- FILUSDT 2023-09 from ../shared/data when present (skipped with the reason otherwise).
Settings are pinned here (defaults of today, entry/take-profit order types spelled out) so a
change of a default elsewhere does not move the figures; a deliberate change of the strategy
does, and then the files are re-recorded with

    GOLDEN_UPDATE=1 python -m pytest tests/backtest/test_golden.py

(and the diff of tests/backtest/golden/*.json reviewed: it is the change in results).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from rl.backtest.data import BacktestData, load_backtest_data
from rl.backtest.engine import TIMING_FIELDS, BacktestResult, dumps_json, run_backtest
from tests.support.archives import write_archive
from tests.support.paths import shared_data_root, shared_kline_files
from tests.support.portfolio import pinned_settings

GOLDEN = Path(__file__).parent / "golden"
golden_settings = pinned_settings       # today's defaults spelled out (tests/support/portfolio.py)


def synthetic_month(tmp: Path, symbol: str = "SYNUSDT", seed: int = 5) -> BacktestData:
    """February 2024 of generated 1m bars (January as warm-up history)."""
    src = write_archive(tmp, symbol, "2024-01", 61 * 1440, "2024-01-01", seed=seed)
    return load_backtest_data([src], symbol, "2024-02-01", "2024-02-29")


def golden_doc(result: BacktestResult) -> dict:
    """What a golden file holds: the --json document without timing, plus the equity curve."""
    doc = result.to_json()
    for k in TIMING_FIELDS:
        doc.pop(k, None)
    eq = np.ascontiguousarray(result.equity, dtype=np.float64)
    t = np.ascontiguousarray(result.equity_time_ms, dtype=np.int64)
    doc["equity_curve"] = {"points": int(eq.size), "final": float(eq[-1]),
                           "sha256": hashlib.sha256(eq.tobytes() + t.tobytes()).hexdigest()}
    return json.loads(dumps_json(doc))


def check_golden(name: str, doc: dict) -> None:
    path = GOLDEN / f"{name}.json"
    if os.environ.get("GOLDEN_UPDATE") == "1":
        path.write_text(dumps_json(doc) + "\n", encoding="utf-8")
    if not path.exists():
        pytest.fail(f"{path} is missing: record it with GOLDEN_UPDATE=1")
    want = json.loads(path.read_text(encoding="utf-8"))
    assert doc["trades"] == want["trades"]                 # every trade first: the clearest diff
    assert doc == want


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> BacktestData:
    return synthetic_month(tmp_path_factory.mktemp("golden"))


@pytest.fixture(scope="module")
def shared_month() -> BacktestData:
    if not shared_kline_files("FILUSDT"):
        pytest.skip(f"real Binance archive for FILUSDT not found under {shared_data_root()} "
                    "(set BINANCE_DATA_DIR)")
    return load_backtest_data([shared_data_root()], "FILUSDT", "2023-09-01", "2023-09-30")


def test_synthetic_month_one_symbol_is_the_golden_run(synthetic) -> None:
    result = run_backtest(synthetic, golden_settings(synthetic.symbol), progress=False)
    assert result.summary["trades"] >= 10                  # a golden run that trades
    check_golden("synthetic-2024-02", golden_doc(result))


@pytest.mark.shared_data
def test_shared_month_one_symbol_is_the_golden_run(shared_month) -> None:
    result = run_backtest(shared_month, golden_settings("FILUSDT"), progress=False)
    assert result.summary["trades"] >= 10
    check_golden("FILUSDT-2023-09", golden_doc(result))


def one_symbol_view(doc: dict) -> dict:
    """A portfolio document of one symbol as a one-symbol document: without the portfolio
    part and the trades' symbol (the only keys a portfolio adds)."""
    out = {k: v for k, v in doc.items() if k not in ("symbols", "per_symbol", "spans", "steps")}
    out["trades"] = [{k: v for k, v in t.items() if k != "symbol"} for t in doc["trades"]]
    out["open_trades"] = [{k: v for k, v in t.items() if k != "symbol"} for t in doc["open_trades"]]
    return out


def test_the_portfolio_engine_with_one_symbol_is_the_golden_run(synthetic) -> None:
    from rl.backtest.portfolio import run_portfolio

    result = run_portfolio([synthetic], golden_settings(synthetic.symbol), progress=False)
    doc = golden_doc(result)
    assert doc["per_symbol"][synthetic.symbol]["trades"] == doc["trades"].__len__()
    check_golden("synthetic-2024-02", one_symbol_view(doc))


@pytest.mark.shared_data
def test_the_portfolio_engine_with_one_shared_symbol_is_the_golden_run(shared_month) -> None:
    from rl.backtest.portfolio import run_portfolio

    result = run_portfolio([shared_month], golden_settings("FILUSDT"), progress=False)
    check_golden("FILUSDT-2023-09", one_symbol_view(golden_doc(result)))
