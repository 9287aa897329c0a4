"""StrategyParams: today's numbers as defaults, built from Settings, validated with messages
that name the field, and buildable from a flat dict of overrides (an optimizer's trial)."""
from __future__ import annotations

import io
import json
from dataclasses import FrozenInstanceError, fields, replace
from types import SimpleNamespace

import pytest

from config import Settings, load_settings
from rl.analysis.levels.book import FEATURES
from rl.analysis.levels.finder import DEFAULT_WEIGHTS
from rl.strategy.params import (
    PHASE_KEYS,
    LevelParams,
    LevelWeights,
    MultiTfRule,
    ParamsError,
    PhaseRule,
    StrategyParams,
)

# every strategy number as it was when they were module constants (phases.py, signals.py,
# levels/finder.py, levels/book.py, trade_plan.py, exits.py, learning.py, config.py)
TODAY = {
    "phases.learning_from": 30, "phases.stable_from": 100,
    "phases.exploration.min_score": 35.0, "phases.exploration.score_gap": 10.0, "phases.exploration.risk_scale": 0.5,
    "phases.learning.min_score": 45.0, "phases.learning.score_gap": 12.0, "phases.learning.risk_scale": 0.75,
    "phases.stable.min_score": 55.0, "phases.stable.score_gap": 15.0, "phases.stable.risk_scale": 1.0,
    "entry.reentry_cooldown_minutes": 60,
    "score.points.trend": 25.0, "score.points.level": 25.0, "score.points.rsi": 15.0, "score.points.macd": 20.0,
    "score.points.bollinger": 15.0, "score.points.volume": 5.0,
    "score.trend_weight_8h": 0.6, "score.trend_weight_1w": 0.4, "score.rsi_full": 20.0, "score.volume_full": 1.0,
    "score.macd_expanding": 14.0, "score.macd_on_side": 8.0, "score.macd_converging": 4.0,
    "levels.weights.volume_density": 0.20, "levels.weights.touch_bounce_count": 0.20,
    "levels.weights.bounce_magnitude": 0.15, "levels.weights.failed_breakout_count": 0.20,
    "levels.weights.duration_days": 0.10, "levels.weights.multi_tf_confirm": 0.15,
    "levels.multi_tf.touches_15m": 3, "levels.multi_tf.points_15m": 0.6, "levels.multi_tf.touches_8h": 2,
    "levels.multi_tf.points_8h": 0.3, "levels.multi_tf.touches_1w": 1, "levels.multi_tf.points_1w": 0.1,
    "levels.volume_ratio_full": 3.0, "levels.bounces_full": 5, "levels.bounce_atr_full": 3.0,
    "levels.failed_full": 3, "levels.duration_days_full": 30.0, "levels.proximity_atr": 3.0,
    "plan.max_risk_percent": 2.0, "plan.atr_buffer": 0.5, "plan.min_stop_pct": 0.002,
    "plan.reward_multiple": 2.0, "plan.fee_stop_multiple": 5.0, "plan.max_notional_percent": 100.0,
    "plan.min_reward_r": 1.0,
    "exits.opposite_score_exit": 70.0, "exits.partial_at_r": 1.0, "exits.partial_fraction": 0.5,
    "exits.trail_atr": 2.0,
    "learning.min_trades": 30, "learning.step": 0.05, "learning.min_weight": 0.02, "learning.max_weight": 0.50,
    "learning.min_correlation": 0.05, "learning.significance_z": 1.645,
    # the learned trade filter (rl.strategy.trade_filter; runs only with TRADE_FILTER=on)
    "filter.prior_strength": 10.0, "filter.forgetting": 0.995, "filter.threshold": 0.0,
    "filter.thompson": 1.0, "filter.explore_rate": 0.1, "filter.min_stake": 0.25,
    "filter.full_stake_p": 0.8, "filter.warmup_trades": 30, "filter.r_clip": 5.0,
    "filter.max_weight": 2.0, "filter.seed": 0, "filter.use_features": 1,
    # the risk protections (rl.risk.config.ProtectionConfig, new with them)
    "protections.max_drawdown_percent": 10.0, "protections.drawdown_lookback_days": 30.0,
    "protections.daily_loss_limit_percent": 4.0, "protections.stoploss_guard_trades": 3,
    "protections.stoploss_guard_window_hours": 6.0, "protections.stoploss_guard_pause_hours": 8.0,
}


def test_defaults_are_todays_numbers() -> None:
    flat = StrategyParams().to_flat()
    assert flat == TODAY
    assert [type(v) for v in flat.values()] == [type(v) for v in TODAY.values()]   # ints stay ints
    StrategyParams().validate()
    # the default Settings hold the same numbers, so an agent on default settings trades by TODAY
    assert StrategyParams.from_settings(Settings()) == StrategyParams()
    assert DEFAULT_WEIGHTS == LevelWeights().as_dict() and tuple(DEFAULT_WEIGHTS) == FEATURES
    assert tuple(f.name for f in fields(LevelWeights)) == FEATURES


def test_from_settings_builds_the_protections_from_their_settings() -> None:
    s = load_settings({"MAX_DRAWDOWN_PERCENT": "8", "DRAWDOWN_LOOKBACK_DAYS": "14",
                       "DAILY_LOSS_LIMIT_PERCENT": "0", "STOPLOSS_GUARD_TRADES": "4",
                       "STOPLOSS_GUARD_WINDOW_HOURS": "3", "STOPLOSS_GUARD_PAUSE_HOURS": "12"},
                      dotenv_path="/nonexistent")
    pc = StrategyParams.from_settings(s).protections
    assert (pc.max_drawdown_percent, pc.drawdown_lookback_days, pc.daily_loss_limit_percent) == (8.0, 14.0, 0.0)
    assert (pc.stoploss_guard_trades, pc.stoploss_guard_window_hours, pc.stoploss_guard_pause_hours) == (4, 3.0, 12.0)
    assert pc.stop_exit_kinds == StrategyParams().protections.stop_exit_kinds
    # an optimizer's trial sets a threshold by its dotted key; a bad one names it
    p = StrategyParams().replace_flat({"protections.max_drawdown_percent": 6, "protections.stoploss_guard_trades": 2.0})
    assert p.protections.max_drawdown_percent == 6.0 and p.protections.stoploss_guard_trades == 2
    with pytest.raises(ParamsError, match=r"^protections\.daily_loss_limit_percent=100\.0 is invalid: .*< 100"):
        StrategyParams().replace_flat({"protections.daily_loss_limit_percent": 100})
    with pytest.raises(ParamsError, match=r"^protections\.max_drawdown_percent=-1\.0 is invalid"):
        StrategyParams.from_settings(Settings(max_drawdown_percent=-1.0))


def test_from_settings_takes_the_numbers_settings_hold() -> None:
    s = load_settings({"MAX_RISK_PERCENT": "1.5", "PHASE_RISK_SCALE": "0.25,0.5,0.9",
                       "MIN_TRADES_FOR_ADJUST": "12", "REENTRY_COOLDOWN_MINUTES": "15"},
                      dotenv_path="/nonexistent")
    p = StrategyParams.from_settings(s)
    assert p.plan.max_risk_percent == 1.5
    assert [p.phases.rule(k).risk_scale for k in PHASE_KEYS] == [0.25, 0.5, 0.9]
    assert p.learning.min_trades == 12 and p.entry.reentry_cooldown_minutes == 15
    changed = {"plan.max_risk_percent", "learning.min_trades", "entry.reentry_cooldown_minutes",
               *(f"phases.{k}.risk_scale" for k in PHASE_KEYS)}
    assert {k for k, v in p.to_flat().items() if v != TODAY[k]} == changed   # the rest: defaults


@pytest.mark.parametrize("key, value, named, rule", [
    ("phases.exploration.min_score", 120, None, "within 0..100"),
    ("phases.learning.risk_scale", 0.0, None, "in (0, 1]"),
    ("phases.stable_from", 30, None, "> phases.learning_from (30)"),
    ("entry.reentry_cooldown_minutes", -1, None, "an integer 0..10080"),
    ("score.points.rsi", -1, None, "within 0..100"),
    ("score.macd_expanding", 25, None, "<= score.points.macd (20)"),
    ("score.macd_on_side", 2, None, ">= score.macd_converging (4)"),
    ("score.rsi_full", 0, None, "> 0"),
    ("levels.weights.volume_density", 0.5, "sum of levels.weights", "1 (within 1e-6)"),
    ("levels.multi_tf.points_1w", 0.5, "sum of levels.multi_tf.points_*", "<= 1"),
    ("levels.proximity_atr", 0, None, "> 0"),
    ("plan.max_risk_percent", 0, None, "in [0.01, 10]"),
    ("plan.max_risk_percent", 100, None, "in [0.01, 10]"),
    ("plan.max_notional_percent", 0, None, "in (0, 12500]"),
    ("plan.min_reward_r", -1, None, "in (0, 100]"),
    ("plan.min_reward_r", 0.0, None, "in (0, 100] (a target must pay more than the fees)"),
    ("exits.partial_fraction", 1.0, None, "in (0, 1)"),
    ("learning.min_weight", 0.2, None, "within 0..0.166667"),
    ("learning.step", 1.5, None, "in (0, 1)"),
    ("plan.atr_buffer", float("nan"), None, "a finite number"),
])
def test_a_bad_value_names_the_field_and_the_rule(key, value, named, rule) -> None:
    with pytest.raises(ParamsError) as e:
        StrategyParams().replace_flat({key: value})
    msg = str(e.value)
    assert isinstance(e.value, ValueError) and "\n" not in msg
    assert msg.startswith(f"{named or key}=") and f"is invalid: it must be {rule}" in msg


def test_validate_checks_params_built_by_hand() -> None:
    bad = replace(StrategyParams(), phases=replace(StrategyParams().phases,
                                                   exploration=PhaseRule(35.0, -1.0, 0.5)))
    with pytest.raises(ParamsError, match=r"^phases\.exploration\.score_gap=-1\.0 is invalid"):
        bad.validate()
    with pytest.raises(ParamsError, match="phase_risk_scale"):
        StrategyParams.from_settings(Settings(phase_risk_scale=(0.5, 1.0)))  # type: ignore[arg-type]


def test_flat_overrides_build_a_validated_copy() -> None:
    base = StrategyParams()
    p = base.replace_flat({"phases.exploration.min_score": 30, "entry.reentry_cooldown_minutes": 15.0,
                           "levels.proximity_atr": 2})
    assert p.phases.exploration.min_score == 30.0 and type(p.phases.exploration.min_score) is float
    assert p.entry.reentry_cooldown_minutes == 15 and type(p.entry.reentry_cooldown_minutes) is int
    assert p.levels.proximity_atr == 2.0
    assert {k for k, v in p.to_flat().items() if v != TODAY[k]} == {
        "phases.exploration.min_score", "entry.reentry_cooldown_minutes", "levels.proximity_atr"}
    assert base.to_flat() == TODAY                      # the original is untouched (and frozen)
    with pytest.raises(FrozenInstanceError):
        base.plan.atr_buffer = 1.0                      # type: ignore[misc]
    assert base.replace_flat(p.to_flat()) == p          # a flat dict round-trips
    assert base.replace_flat({}) == base
    # several weights at once: only the result has to sum to 1
    w = base.replace_flat({"levels.weights.volume_density": 0.3, "levels.weights.duration_days": 0.0})
    assert w.levels.weights.as_dict()["volume_density"] == 0.3


@pytest.mark.parametrize("overrides, says", [
    ({"phases.exploration.minscore": 30}, "phases.exploration.minscore: unknown parameter; phases.exploration has"),
    ({"nope": 1}, "nope: unknown parameter; StrategyParams has phases"),
    ({"plan.atr_buffer.x": 1}, "plan.atr_buffer.x: unknown parameter; atr_buffer is a number"),
    ({"phases.exploration": 30}, "phases.exploration: is a group"),
    ({"entry.reentry_cooldown_minutes": 1.5}, "entry.reentry_cooldown_minutes=1.5 is invalid: it must be an integer"),
    ({"plan.atr_buffer": True}, "plan.atr_buffer=True is invalid: it must be a number"),
    ({"plan.atr_buffer": "0.5"}, "plan.atr_buffer='0.5' is invalid: it must be a number"),
])
def test_flat_overrides_refuse_unknown_keys_and_wrong_kinds(overrides, says) -> None:
    with pytest.raises(ParamsError, match="^" + says.replace(".", r"\.").replace("(", r"\(")):
        StrategyParams().replace_flat(overrides)


def test_level_params_reach_both_feature_implementations_and_the_book(monkeypatch) -> None:
    """Other saturation points, multi-timeframe rule and proximity give other features and
    best levels, identically on the scalar and the array path of the finder."""
    import numpy as np

    from rl.analysis.levels import finder as lf
    from tests.support.level_bars import generated_bars

    bars = {"15m": generated_bars(500, 3, "15m", 0.004), "8h": generated_bars(300, 53, "8h", 0.02),
            "1w": generated_bars(100, 93, "1w", 0.06)}
    atrs = {tf: float(np.mean(b.h[-14:] - b.l[-14:])) for tf, b in bars.items()}
    ref = float(bars["15m"].c[-1])
    other = LevelParams(bounces_full=3, bounce_atr_full=2.0, volume_ratio_full=2.0, failed_full=2,
                        duration_days_full=10.0, proximity_atr=1.0,
                        multi_tf=MultiTfRule(touches_15m=2, points_15m=0.5, points_8h=0.4))
    scans = {}
    for small in (0, 10**9):                            # every scan on one path, then the other
        monkeypatch.setattr(lf, "SMALL_SCAN", small)
        scans[small] = [lf.BestLevelFinder(params=p).prepare(bars, atrs, ref) for p in (LevelParams(), other)]
    assert scans[0] == scans[10**9]
    default, mine = scans[0]
    assert default.M.shape == mine.M.shape and not np.array_equal(default.M[1:7], mine.M[1:7])
    book = lf.BestLevelFinder(params=other).rank(mine)
    far = ref + 2 * book.atr                           # 2 ATR away: out of reach at 1 ATR, not at 3
    level = SimpleNamespace(price=far)
    assert book.proximity(level, ref) == 0.0
    assert lf.BestLevelFinder().rank(default).proximity(level, ref) > 0.0


@pytest.mark.shared_data
def test_a_backtest_trades_by_the_params_it_is_given() -> None:
    """Overridden params reach every part: the decisions show the exploration bar they set and
    the trades differ from the defaults'."""
    from rl.backtest.data import load_backtest_data
    from rl.backtest.engine import TIMING_FIELDS, backtest_settings, dumps_json, run_backtest
    from tests.support.paths import shared_data_root, shared_kline_files

    if not shared_kline_files("FILUSDT"):
        pytest.skip("real Binance archive for FILUSDT not found")
    data = load_backtest_data([shared_data_root()], "FILUSDT", "2023-09-01", "2023-09-02")
    settings = backtest_settings("FILUSDT", 10_000.0, {}, base=Settings())
    params = StrategyParams.from_settings(settings).replace_flat({
        "phases.exploration.min_score": 30, "phases.exploration.score_gap": 8,
        "levels.proximity_atr": 2.5, "levels.bounces_full": 4, "levels.weights.volume_density": 0.25,
        "levels.weights.duration_days": 0.05, "score.rsi_full": 15, "score.points.trend": 20,
        "plan.atr_buffer": 0.75, "exits.trail_atr": 1.5})

    def run(p):
        buf = io.StringIO()
        doc = run_backtest(data, settings, trace=buf, progress=False, params=p).to_json()
        for k in TIMING_FIELDS:
            doc.pop(k, None)
        return dumps_json(doc), buf.getvalue()

    mine = run(params)
    decisions = [json.loads(x) for x in mine[1].splitlines() if '"event":"decision"' in x]
    assert decisions and {d["min_score"] for d in decisions if d["phase"] == "exploration"} == {30.0}
    assert mine != run(None)
