"""The search space, the objective and the folds: pure parts, checked by hand-made examples."""
from __future__ import annotations

import math

import pytest

from rl.optimize import space
from rl.optimize.folds import Fold, consecutive, make_folds, month_days, months_by_symbol
from rl.optimize.objective import DD_PENALTY, SORTINO_CAP, MonthRun, daily_curve, score_window, window_curve
from rl.strategy.params import StrategyParams

DAY = 86_400_000


class Edge:
    """A trial that answers every suggestion with its low end (or high end): the corners of
    the space, where a range that breaks a StrategyParams rule shows up."""

    def __init__(self, high: bool) -> None:
        self.high = high
        self.asked: list[str] = []

    def suggest_float(self, name, low, high, *, log=False):
        self.asked.append(name)
        return high if self.high else low

    def suggest_int(self, name, low, high):
        self.asked.append(name)
        return high if self.high else low


@pytest.mark.parametrize("high", [False, True], ids=["low-corner", "high-corner"])
def test_every_corner_of_the_space_is_a_valid_parameter_set(high) -> None:
    base = StrategyParams()
    trial = Edge(high)
    overrides = space.suggest(trial, base)
    params = space.apply(base, overrides)            # raises ParamsError if a range breaks a rule
    flat = params.to_flat()
    for d in space.SPACE:
        assert flat[d.key] == (d.high if high else d.low)
    w = params.levels.weights.as_dict()
    assert abs(sum(w.values()) - 1.0) <= 1e-9
    assert min(w.values()) >= base.learning.min_weight - 1e-12
    assert len(trial.asked) == len(set(trial.asked)) == len(space.SPACE) + 6


def test_every_range_has_a_reason_and_names_a_real_parameter() -> None:
    flat = StrategyParams().to_flat()
    for row in space.describe():
        assert row["reason"].strip() and row["low"] < row["high"]
        assert row["key"] in flat or row["key"].startswith("raw_weight.")


def test_weights_are_the_normalised_minus_log_of_the_raw_numbers() -> None:
    raw = {f: math.exp(-1.0) for f in space.WEIGHT_FEATURES}       # -ln = 1 each: equal shares
    raw["volume_density"] = math.exp(-4.0)                          # -ln = 4: 4 of 9 parts
    w = space.weights_from_raw(raw, floor=0.0)
    assert w["levels.weights.volume_density"] == pytest.approx(4 / 9)
    assert w["levels.weights.duration_days"] == pytest.approx(1 / 9)
    floored = space.weights_from_raw(raw, floor=0.02)               # 0.02 + 0.88 x share
    assert floored["levels.weights.duration_days"] == pytest.approx(0.02 + 0.88 / 9)


def test_a_trials_overrides_are_rebuilt_from_its_recorded_params() -> None:
    class Recorder(Edge):
        def __init__(self):
            super().__init__(False)
            self.params = {}

        def suggest_float(self, name, low, high, *, log=False):
            self.params[name] = low + (high - low) * ((len(self.params) * 37 % 11) / 11)
            return self.params[name]

        def suggest_int(self, name, low, high):
            self.params[name] = high
            return high

    base = StrategyParams()
    t = Recorder()
    made = space.suggest(t, base)
    assert space.overrides_from_trial_params(t.params, base) == made


# ------------------------------------------------------------------------------ objective

def _run(month: str, equity: list[float], trades: int = 10, symbol: str = "X", start_day: int = 0) -> MonthRun:
    times = tuple((start_day + k) * DAY for k in range(len(equity)))
    return MonthRun(symbol=symbol, month=month, trades=trades, return_pct=(equity[-1] - 1) * 100,
                    max_drawdown_pct=0.0, sortino=None, buy_hold_return_pct=None, day_ms=times,
                    equity=tuple(equity))


def test_daily_curve_keeps_the_start_and_each_days_last_point() -> None:
    t = [0, 3_600_000, DAY - 1, DAY + 5, 2 * DAY + 7]
    times, eq = daily_curve(t, [100.0, 101.0, 102.0, 99.0, 98.0], balance=100.0)
    assert times == (0, DAY - 1, DAY + 5, 2 * DAY + 7)
    assert eq == (1.0, 1.02, 0.99, 0.98)


def test_window_curve_averages_symbols_and_compounds_months() -> None:
    a = _run("2023-01", [1.0, 1.1, 1.2], symbol="A")
    b = _run("2023-01", [1.0, 0.9, 1.0], symbol="B")
    c = _run("2023-02", [1.0, 1.5], symbol="A", start_day=3)
    times, curve = window_curve([a, b, c])
    assert curve == pytest.approx([1.0, 1.0, 1.1, 1.65])      # mean(1.1, 0.9), mean(1.2, 1.0), x1.5
    assert times[0] == 0 and len(times) == 4


def test_the_score_is_the_clipped_sortino_less_the_drawdown_penalty() -> None:
    eq = [1.0, 1.01, 0.99, 1.02, 1.0, 1.03]
    r = [eq[i + 1] / eq[i] - 1 for i in range(5)]
    mean = sum(r) / 5
    downside = math.sqrt(sum(min(x, 0.0) ** 2 for x in r) / 5)
    s = score_window([_run("2023-01", eq, trades=5)], min_trades=5)
    assert s.sortino == pytest.approx(mean / downside * math.sqrt(365))
    assert s.score == pytest.approx(min(SORTINO_CAP, s.sortino))     # drawdown ~2 %: no penalty
    deep = [1.0, 0.7, 0.75, 0.8]                                      # 30 % drawdown
    d = score_window([_run("2023-01", deep, trades=5)], min_trades=5)
    assert d.max_drawdown_pct == pytest.approx(30.0)
    assert d.score == pytest.approx(max(-SORTINO_CAP, d.sortino) - DD_PENALTY * 20.0)


def test_too_few_trades_score_below_the_floor_by_the_shortfall() -> None:
    s = score_window([_run("2023-01", [1.0, 1.5, 2.0], trades=2)], min_trades=8)
    assert s.score == pytest.approx(-SORTINO_CAP - 6 / 8)
    assert score_window([_run("2023-01", [1.0, 1.5, 2.0], trades=8)], min_trades=8).score == SORTINO_CAP


# ------------------------------------------------------------------------------ folds

MONTHS = ["2023-08", "2023-09", "2023-10", "2023-11"]


def test_rolling_folds_tile_the_tail_with_unseen_test_months() -> None:
    assert make_folds(MONTHS, 2, 1) == [Fold(1, ("2023-08", "2023-09"), ("2023-10",)),
                                        Fold(2, ("2023-09", "2023-10"), ("2023-11",))]
    assert make_folds(MONTHS, 1, 2) == [Fold(1, ("2023-08",), ("2023-09", "2023-10"))]


def test_anchored_folds_grow_from_the_first_month() -> None:
    assert make_folds(MONTHS, 2, 1, anchored=True) == [
        Fold(1, ("2023-08", "2023-09"), ("2023-10",)),
        Fold(2, ("2023-08", "2023-09", "2023-10"), ("2023-11",))]


def test_too_few_months_is_one_line_naming_the_flags() -> None:
    with pytest.raises(ValueError, match=r"--train-months=3 --test-months=2 is invalid: the data holds 4"):
        make_folds(MONTHS, 3, 2)
    with pytest.raises(ValueError, match="--test-months=0"):
        make_folds(MONTHS, 2, 0)


def test_consecutive_months_and_month_days() -> None:
    assert consecutive(["2023-05", "2023-08", "2023-09", "2023-10"]) == ["2023-08", "2023-09", "2023-10"]
    assert consecutive(["2022-12", "2023-01"]) == ["2022-12", "2023-01"]
    assert month_days("2024-02") == ("2024-02-01", "2024-02-29")
    assert Fold(1, ("2023-08",), ("2023-09",)).to_dict()["test_to"] == "2023-09-30"


def test_months_by_symbol_reads_the_archive_names(shared_data_dir) -> None:
    found = months_by_symbol([shared_data_dir], ["FILUSDT", "NEARUSDT"])
    assert list(found["FILUSDT"]) == ["2023-08", "2023-09", "2023-10", "2023-11"]
    assert list(found["NEARUSDT"]) == ["2023-08", "2023-09", "2023-10"]
