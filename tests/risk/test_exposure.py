"""The exposure caps (rl/risk/exposure.py): each cap triggers, holds at its boundary and is off at
0; a lone candidate is never refused; the correlation is numpy's Pearson correlation of the log
returns of the candles both series share, and too few shared candles never refuse."""
from __future__ import annotations

import numpy as np
import pytest

from rl.risk.exposure import (
    CORRELATION,
    OPEN_POSITIONS,
    TOTAL_RISK,
    Correlation,
    ExposureConfig,
    OpenExposure,
    check,
    correlation,
    log_returns,
    open_risk_percent,
    risk_at_stop,
)

Q = 15 * 60_000
EQ = 10_000.0
OFF = {"max_open_positions": 0, "max_total_risk_percent": 0.0, "max_correlation": 0.0}


def cfg(**kw) -> ExposureConfig:
    return ExposureConfig(**{**OFF, **kw})


def pos(sym: str, side: str = "LONG", risk: float = 100.0) -> OpenExposure:
    return OpenExposure(sym, side, risk)


# ------------------------------------------------------------------ open positions
def test_open_position_cap_refuses_the_entry_beyond_it_and_allows_up_to_it():
    c = cfg(max_open_positions=2)
    assert check(c, "CUSDT", "LONG", 100.0, [pos("AUSDT")], EQ) is None           # 1 open: the 2nd fits
    r = check(c, "CUSDT", "LONG", 100.0, [pos("AUSDT"), pos("BUSDT", "SHORT")], EQ)
    assert r is not None and r.rule == OPEN_POSITIONS
    assert r.details == {"open_positions": 2, "limit": 2, "symbols": ("AUSDT", "BUSDT")}
    assert "2 positions open (AUSDT, BUSDT), the cap is 2" in r.reason_en
    assert "已有 2 个持仓（AUSDT、BUSDT），上限 2 个" in r.reason_zh
    assert r.key == "max_open_positions:LONG:AUSDT,BUSDT"


def test_open_position_cap_off_and_a_lone_symbol_are_never_refused():
    many = [pos(f"S{i}USDT") for i in range(50)]
    assert check(cfg(), "XUSDT", "LONG", 100.0, many, EQ) is None
    strict = ExposureConfig(max_open_positions=1, max_total_risk_percent=0.01, max_correlation=0.01)
    # nothing else open (or only this symbol's own entry): never these caps' business
    assert check(strict, "XUSDT", "LONG", 9_000.0, [], EQ) is None
    assert check(strict, "XUSDT", "LONG", 9_000.0, [pos("XUSDT")], EQ) is None


# ------------------------------------------------------------------ total risk
def test_total_risk_cap_counts_open_risk_plus_the_candidate_and_allows_the_boundary():
    c = cfg(max_total_risk_percent=4.0)
    held = [pos("AUSDT", risk=150.0), pos("BUSDT", "SHORT", risk=100.0)]     # 2.5 % open
    assert check(c, "CUSDT", "LONG", 150.0, held, EQ) is None                  # 4.0 %: at the cap
    r = check(c, "CUSDT", "LONG", 150.01, held, EQ)                            # 4.0001 %: over it
    assert r is not None and r.rule == TOTAL_RISK
    assert r.details["open_risk"] == 250.0 and r.details["planned_risk"] == 150.01
    assert r.details["total_percent"] == pytest.approx(4.0001)
    assert "open risk 2.50 % of equity (AUSDT, BUSDT) plus this trade's 1.50 % would be 4.00 %" in r.reason_en
    assert "超过上限 4%" in r.reason_zh
    assert check(cfg(), "CUSDT", "LONG", 5_000.0, held, EQ) is None             # off


def test_total_risk_cap_refuses_without_equity():
    r = check(cfg(max_total_risk_percent=4.0), "CUSDT", "LONG", 1.0, [pos("AUSDT", risk=1.0)], 0.0)
    assert r is not None and r.rule == TOTAL_RISK and r.details["total_percent"] is None


def test_risk_at_stop_is_the_move_to_the_stop_plus_the_exit_fee_and_zero_past_break_even():
    assert risk_at_stop("LONG", 100.0, 98.0, 3.0, 0.0005) == pytest.approx(3 * 2 + 0.0005 * 98 * 3)
    assert risk_at_stop("SHORT", 100.0, 103.0, 2.0, 0.0) == pytest.approx(6.0)
    assert risk_at_stop("LONG", 100.0, 101.0, 2.0, 0.0) == 0.0                 # a stop past entry
    assert open_risk_percent([pos("A", risk=50.0), pos("B", risk=150.0)], EQ) == pytest.approx(2.0)
    assert open_risk_percent([pos("A")], 0.0) is None


# ------------------------------------------------------------------ correlation
def _series(returns: np.ndarray, start: int = 0, p0: float = 100.0) -> tuple[np.ndarray, np.ndarray]:
    closes = p0 * np.exp(np.concatenate([[0.0], np.cumsum(returns)]))
    times = (start + np.arange(len(closes))) * Q
    return times.astype(np.int64), closes


def test_correlation_is_numpys_pearson_of_the_log_returns_over_the_newest_shared_candles():
    rng = np.random.default_rng(7)
    common = rng.normal(0, 0.01, 600)
    ra = common + rng.normal(0, 0.004, 600)
    rb = 0.5 * common + rng.normal(0, 0.006, 600)
    a, b = _series(ra), _series(rb, p0=3.0)
    config = ExposureConfig()                           # lookback 384, min overlap 96
    got = correlation("BUSDT", a, b, config)
    want = np.corrcoef(np.diff(np.log(a[1]))[-384:], np.diff(np.log(b[1]))[-384:])[0, 1]
    assert got.overlap == 384 and got.value == pytest.approx(want, abs=1e-12)
    assert 0.5 < got.value < 0.95
    # b starts 300 candles later: only the 300 returns both have count
    late = _series(rb[300:], start=300, p0=3.0)
    got = correlation("BUSDT", a, late, config)
    want = np.corrcoef(np.diff(np.log(a[1]))[300:], np.diff(np.log(late[1])))[0, 1]
    assert got.overlap == 300 and got.value == pytest.approx(want, abs=1e-12)


def test_a_gap_gives_no_return_across_it():
    t = np.array([0, Q, 2 * Q, 5 * Q, 6 * Q], dtype=np.int64)
    c = np.array([100.0, 101.0, 100.0, 120.0, 121.0])
    r = log_returns(t, c, Q)
    assert sorted(r) == [Q, 2 * Q, 6 * Q]
    assert r[6 * Q] == pytest.approx(np.log(121 / 120))


def test_too_few_shared_candles_or_a_flat_series_give_no_correlation():
    rng = np.random.default_rng(1)
    r = rng.normal(0, 0.01, 200)
    a = _series(r)
    short = _series(r[:95])                          # 95 shared returns < 96
    got = correlation("BUSDT", a, short, ExposureConfig())
    assert got == Correlation("BUSDT", None, 95)
    flat = (a[0], np.full(len(a[0]), 5.0))
    assert correlation("BUSDT", a, flat, ExposureConfig()).value is None


def test_correlation_cap_refuses_the_same_side_above_the_threshold_and_allows_a_hedge():
    c = cfg(max_correlation=0.8)
    held = [pos("AUSDT", "LONG")]
    hi = {"AUSDT": Correlation("AUSDT", 0.85, 384)}
    r = check(c, "BUSDT", "LONG", 100.0, held, EQ, hi)
    assert r is not None and r.rule == CORRELATION and r.details["symbols"] == ("AUSDT",)
    assert "correlate +0.85 over 384 candles (cap 0.8)" in r.reason_en
    assert "相关系数 +0.85" in r.reason_zh
    assert check(c, "BUSDT", "SHORT", 100.0, held, EQ, hi) is None              # a hedge: allowed
    at = {"AUSDT": Correlation("AUSDT", 0.8, 384)}
    assert check(c, "BUSDT", "LONG", 100.0, held, EQ, at) is None               # not above: allowed
    neg = {"AUSDT": Correlation("AUSDT", -0.9, 384)}
    assert check(c, "BUSDT", "LONG", 100.0, held, EQ, neg) is None
    r = check(c, "BUSDT", "SHORT", 100.0, held, EQ, neg)                        # the same bet, mirrored
    assert r is not None and r.rule == CORRELATION
    unknown = {"AUSDT": Correlation("AUSDT", None, 20)}
    assert check(c, "BUSDT", "LONG", 100.0, held, EQ, unknown) is None           # too few: never refused
    assert check(cfg(), "BUSDT", "LONG", 100.0, held, EQ, hi) is None           # off


def test_the_caps_are_checked_in_order_count_then_risk_then_correlation():
    c = ExposureConfig(max_open_positions=1, max_total_risk_percent=2.0, max_correlation=0.5)
    corr = {"AUSDT": Correlation("AUSDT", 0.99, 384)}
    assert check(c, "BUSDT", "LONG", 500.0, [pos("AUSDT")], EQ, corr).rule == OPEN_POSITIONS
    c = ExposureConfig(max_open_positions=2, max_total_risk_percent=2.0, max_correlation=0.5)
    assert check(c, "BUSDT", "LONG", 500.0, [pos("AUSDT")], EQ, corr).rule == TOTAL_RISK
    assert check(c, "BUSDT", "LONG", 50.0, [pos("AUSDT")], EQ, corr).rule == CORRELATION


@pytest.mark.parametrize("field,value,rule", [
    ("max_open_positions", -1, "max_open_positions must be an integer 0..1000"),
    ("max_open_positions", 2.5, "max_open_positions must be an integer 0..1000"),
    ("max_total_risk_percent", 100.0, "max_total_risk_percent must be >= 0 and < 100"),
    ("max_total_risk_percent", float("nan"), "max_total_risk_percent must be a finite number"),
    ("max_correlation", 1.5, "max_correlation must be >= 0 and <= 1"),
    ("correlation_interval", "1h", "correlation_interval must be one of 15m, 8h"),
    ("correlation_min_overlap", 1000, "correlation_min_overlap must be an integer 3..384"),
])
def test_bad_config_values_raise_one_line_naming_the_field(field, value, rule):
    with pytest.raises(ValueError, match=rule) as e:
        ExposureConfig(**{field: value})
    assert str(e.value).startswith(f"{field}=") and "\n" not in str(e.value)
