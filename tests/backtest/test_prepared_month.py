"""A month prepared once (rl.backtest.engine.prepare_month) and run many times, as the optimizer
does, makes exactly the trades of a plain backtest: the same JSON and trace byte for byte, for
the default parameters and for changed weights, entry bars, exits and protections, and for a
second and third run on the same prepared month (nothing in it is consumed or changed)."""
from __future__ import annotations

import io

import pytest

from rl.backtest.data import load_backtest_data
from rl.backtest.engine import TIMING_FIELDS, backtest_settings, dumps_json, prepare_month, run_backtest
from rl.strategy.params import StrategyParams
from tests.support.paths import shared_data_root, shared_kline_files

SYMBOL = "FILUSDT"
CHANGED = {"levels.weights.volume_density": 0.45, "levels.weights.touch_bounce_count": 0.05,
           "levels.weights.bounce_magnitude": 0.1, "levels.weights.failed_breakout_count": 0.2,
           "levels.weights.duration_days": 0.1, "levels.weights.multi_tf_confirm": 0.1,
           "levels.proximity_atr": 2.0, "phases.exploration.min_score": 28.0,
           "phases.exploration.score_gap": 4.0, "plan.atr_buffer": 0.3, "exits.trail_atr": 1.2,
           "score.points.rsi": 30.0, "protections.stoploss_guard_trades": 2}


@pytest.fixture(scope="module")
def data():
    if not shared_kline_files(SYMBOL):
        pytest.skip(f"real {SYMBOL} archive data not found under {shared_data_root()}")
    return load_backtest_data([shared_data_root()], SYMBOL, "2023-09-04", "2023-09-09")


def _run(data, params, month=None) -> tuple[str, str]:
    buf = io.StringIO()
    result = run_backtest(data, backtest_settings(SYMBOL), trace=buf, progress=False, params=params, month=month)
    doc = result.to_json()
    for k in TIMING_FIELDS:
        doc.pop(k)
    return dumps_json(doc), buf.getvalue()


@pytest.mark.parametrize("changed", [False, True], ids=["defaults", "changed-params"])
def test_a_prepared_month_runs_exactly_as_a_plain_backtest(data, changed) -> None:
    params = StrategyParams.from_settings(backtest_settings(SYMBOL))
    if changed:
        params = params.replace_flat(CHANGED)
    plain = _run(data, params)
    month = prepare_month(data)
    assert '"event":"entry"' in plain[1]           # the window trades: the comparison means something
    for _ in range(2):                             # reused: the prepared month is not consumed
        assert _run(data, params, month) == plain


def test_a_prepared_month_refuses_other_level_feature_rules(data) -> None:
    month = prepare_month(data)
    params = StrategyParams().replace_flat({"levels.bounces_full": 7})
    with pytest.raises(ValueError, match="levels.weights and levels.proximity_atr"):
        run_backtest(data, backtest_settings(SYMBOL), progress=False, params=params, month=month)
