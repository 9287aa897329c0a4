"""The learned trade filter (rl.strategy.trade_filter): exact online learning, finding a real
edge, staying humble on noise, numerical safety, determinism, its params and its state."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from rl.knowledge.store import KnowledgeStore
from rl.strategy.filter_features import FILTER_FEATURES, entry_features
from rl.strategy.params import FilterParams, ParamsError, StrategyParams
from rl.strategy.trade_filter import FilterError, TradeFilter

FEATS = ("a", "b", "c", "d")


def _batch_fit(x: np.ndarray, y: np.ndarray, weights: np.ndarray, kappa: float):
    """The posterior of a weighted batch fit over features standardised with the weighted
    mean and (population) std of the same trades, intercept first, prior N(0, sigma^2/kappa)."""
    n = weights.sum()
    mean = (weights[:, None] * x).sum(0) / n
    std = np.sqrt((weights[:, None] * (x - mean) ** 2).sum(0) / n)
    z = np.column_stack([np.ones(len(x)), (x - mean) / std])
    w = weights[:, None]
    precision = z.T @ (w * z) + kappa * np.eye(z.shape[1])
    cov = np.linalg.inv(precision)
    m = cov @ (z.T @ (weights * y))
    b = 1.0 + 0.5 * (float((weights * y * y).sum()) - float(m @ precision @ m))
    return m, cov, 2.0 + 0.5 * n, b


@pytest.mark.parametrize("forgetting", [1.0, 0.97])
def test_online_update_equals_a_batch_fit_on_the_same_trades(forgetting: float) -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(120, len(FEATS))) * [1.0, 0.01, 50.0, 3.0] + [0.0, 0.5, 1000.0, -2.0]
    y = x[:, 0] * 0.3 + rng.normal(size=120)
    f = TradeFilter(FEATS, FilterParams(forgetting=forgetting, r_clip=100.0))
    for row, r in zip(x, y):
        f.learn(dict(zip(FEATS, row)), float(r))
    m, cov, a, b = f.posterior()
    wts = forgetting ** np.arange(len(x) - 1, -1, -1, dtype=float)
    m2, cov2, a2, b2 = _batch_fit(x, y, wts, f.params.prior_strength)
    assert np.max(np.abs(m - m2)) < 1e-9
    assert np.max(np.abs(cov - cov2)) < 1e-9
    assert a == pytest.approx(a2, abs=1e-9) and b == pytest.approx(b2, abs=1e-9)
    assert f.learned == 120


def _signals(rng: np.random.Generator, n: int, edge: float) -> tuple[list[dict], np.ndarray]:
    """n signals over the filter's real features; R = edge x (standardised level_volume_density)
    - 0.1 + noise, so only that one feature predicts (the average signal loses a little)."""
    sig, rs = [], []
    for _ in range(n):
        x = {k: float(rng.uniform(0, 1)) for k in FILTER_FEATURES}
        x["side"] = float(rng.choice([-1.0, 1.0]))
        x["atr_pct"] = float(rng.uniform(0.1, 1.0))
        sig.append(x)
        rs.append(edge * (x["level_volume_density"] - 0.5) / 0.2887 - 0.1 + rng.normal())
    return sig, np.asarray(rs)


def _trade_through(f: TradeFilter, sig: list[dict], rs: np.ndarray) -> list[int]:
    """Walk the signals in order: the filter decides with what it learned so far, a taken
    signal's R is learned once it is known (before the next decision). The taken indices."""
    taken = []
    for i, (x, r) in enumerate(zip(sig, rs)):
        d = f.decide(x, f"S|{i}")
        f.count(d)
        if d.take:
            taken.append(i)
            f.learn(x, float(r))
    return taken


def test_a_feature_that_truly_predicts_r_is_found_and_lifts_net_r() -> None:
    rng = np.random.default_rng(1)
    sig, rs = _signals(rng, 1500, edge=0.6)
    f = TradeFilter(FILTER_FEATURES)
    taken = _trade_through(f, sig, rs)
    view = f.view()["weights"]
    best = max(view, key=lambda k: abs(view[k]["weight"]))
    assert best == "level_volume_density" and view[best]["weight"] > 0.3
    others = [abs(v["weight"]) for k, v in view.items() if k != best]
    assert max(others) < 0.5 * view[best]["weight"]
    after = [i for i in taken if i >= 300]                       # once it has learned
    lifted = float(np.mean(rs[after]))
    assert lifted > float(np.mean(rs[300:])) + 0.3               # the filter lifts mean net R
    assert lifted > 0 > float(np.mean(rs))                        # ...from losing to winning
    assert f.skipped > 0.2 * f.seen


def test_pure_noise_stays_near_the_prior_and_keeps_its_exploration_budget() -> None:
    rng = np.random.default_rng(2)
    sig, _ = _signals(rng, 1200, edge=0.0)
    rs = rng.normal(-0.3, 1.0, size=len(sig))                    # losing, and unpredictable
    p = FilterParams(explore_rate=0.15)
    f = TradeFilter(FILTER_FEATURES, p)
    taken = _trade_through(f, sig, rs)
    weights = f.view()["weights"]
    assert max(abs(v["weight"]) for v in weights.values()) < 0.2   # no feature "found"
    # never below its exploration budget, counted over the signals it judged after warm-up
    assert f.taken >= p.explore_rate * f.seen
    assert len(taken) - p.warmup_trades >= math.floor(p.explore_rate * (len(sig) - p.warmup_trades))
    assert f.view()["baseline_r"] < 0                               # it did learn the loss


def test_noise_with_no_edge_leaves_the_posterior_at_the_prior_mean() -> None:
    rng = np.random.default_rng(3)
    f = TradeFilter(FEATS)
    for _ in range(400):
        f.learn(dict(zip(FEATS, rng.uniform(size=4))), float(rng.normal()))
    m, _, _, _ = f.posterior()
    assert np.max(np.abs(m)) < 0.15


def test_degenerate_features_give_no_nan_and_bad_input_raises_before_anything_changes() -> None:
    f = TradeFilter(FEATS, FilterParams(forgetting=1.0))
    for i in range(50):                     # a constant, a tiny-variance and a huge feature
        f.learn({"a": 1.0, "b": 1e-9 * (i % 2), "c": 1e12 + i, "d": 0.0}, 1e9 if i == 3 else -0.5)
    pr = f.predict({"a": 1.0, "b": 0.0, "c": 1e12, "d": 5.0})
    assert all(math.isfinite(v) for v in (pr.mean, pr.spread, pr.p_positive))
    assert all(math.isfinite(v) for v in pr.contributions.values())
    assert abs(pr.contributions["a"]) == 0.0 and abs(pr.contributions["d"]) == 0.0   # constant: no say
    w, _, _, _ = f.posterior()
    assert np.all(np.isfinite(w))
    assert np.all(np.abs(np.clip(w, -2, 2)) <= f.params.max_weight)
    assert f.sy <= 5.0 + 49 * -0.5 + 1e-9                          # the 1e9 R was clipped to r_clip
    before = f.to_state()
    with pytest.raises(FilterError, match="features\\['b'\\]"):
        f.learn({"a": 1.0, "b": float("nan")}, 0.0)
    with pytest.raises(FilterError, match="r_multiple"):
        f.learn({"a": 1.0}, float("inf"))
    assert f.to_state() == before


def test_decisions_are_deterministic_given_the_seed_and_stakes_stay_within_the_budget() -> None:
    rng = np.random.default_rng(4)
    sig, rs = _signals(rng, 400, edge=0.6)
    runs = []
    for _ in range(2):
        f = TradeFilter(FILTER_FEATURES)
        runs.append(_trade_through(f, sig, rs))
    assert runs[0] == runs[1]
    other = TradeFilter(FILTER_FEATURES, FilterParams(seed=7))
    assert _trade_through(other, sig, rs) != runs[0]
    for x in sig[:100]:
        d = f.decide(x, "k")
        assert (0 < d.stake <= 1.0) if d.take else d.stake == 0.0


def test_warm_up_takes_every_signal_at_full_stake() -> None:
    f = TradeFilter(FILTER_FEATURES)
    d = f.decide({k: 0.0 for k in FILTER_FEATURES}, "x")
    assert d.take and d.stake == 1.0 and d.reason == "warmup"
    assert d.prediction.mean == 0.0 and d.prediction.p_positive == pytest.approx(0.5)


def test_state_round_trips_through_the_store_and_a_restart(tmp_path) -> None:
    rng = np.random.default_rng(6)
    sig, rs = _signals(rng, 120, edge=0.5)
    f = TradeFilter(FILTER_FEATURES)
    _trade_through(f, sig, rs)
    path = tmp_path / "agent.db"
    store = KnowledgeStore(path, default_weights=StrategyParams().levels.weights.as_dict())
    store.set_filter_state(f.to_state(), 1)
    store.close()
    store = KnowledgeStore(path, default_weights=StrategyParams().levels.weights.as_dict())
    g = TradeFilter.from_state(store.filter_state(), FILTER_FEATURES, FilterParams())
    store.close()
    assert g.to_state() == f.to_state()
    probe = sig[7]
    assert g.predict(probe) == f.predict(probe)
    assert g.decide(probe, "k") == f.decide(probe, "k")
    # a state over another feature list starts afresh instead of misreading it
    assert TradeFilter.from_state(f.to_state(), FEATS, FilterParams()).learned == 0


def test_filter_params_are_typed_searchable_and_validated() -> None:
    flat = StrategyParams().to_flat()
    for k in ("prior_strength", "forgetting", "threshold", "thompson", "explore_rate", "min_stake",
              "warmup_trades", "seed"):
        assert f"filter.{k}" in flat
    p = StrategyParams().replace_flat({"filter.forgetting": 0.98, "filter.warmup_trades": 10.0})
    assert p.filter == replace(FilterParams(), forgetting=0.98, warmup_trades=10)
    with pytest.raises(ParamsError, match="filter.forgetting"):
        StrategyParams().replace_flat({"filter.forgetting": 1.5})
    with pytest.raises(ParamsError, match="filter.min_stake"):
        StrategyParams().replace_flat({"filter.min_stake": 0})


def test_entry_features_are_side_relative_finite_and_complete() -> None:
    bd = {"trend": {"points": 12.5, "max": 25}, "level": {"points": 5, "max": 25},
          "rsi": {"points": float("nan"), "max": 15}, "macd": {"points": 20, "max": 0}}
    lf = {"volume_density": 0.4, "duration_days": 1.0}
    long = entry_features(side="LONG", breakdown=bd, level_features=lf, atr=0.02, price=4.0,
                          trend_8h=0.5, trend_1w=None, time_ms=6 * 3_600_000)
    short = entry_features(side="SHORT", breakdown=bd, level_features=lf, atr=0.02, price=4.0,
                           trend_8h=0.5, trend_1w=None, time_ms=6 * 3_600_000)
    assert tuple(long) == FILTER_FEATURES and all(math.isfinite(v) for v in long.values())
    assert long["score_trend"] == 0.5 and long["score_rsi"] == 0.0 and long["score_macd"] == 0.0
    assert long["atr_pct"] == pytest.approx(0.5) and long["level_volume_density"] == 0.4
    assert long["trend_8h"] == 0.5 and short["trend_8h"] == -0.5 and long["trend_1w"] == 0.0
    assert long["hour_sin"] == pytest.approx(1.0) and long["side"] == 1.0 and short["side"] == -1.0


def test_the_control_arm_without_features_learns_only_the_average() -> None:
    rng = np.random.default_rng(8)
    sig, rs = _signals(rng, 400, edge=0.6)
    f = TradeFilter(FILTER_FEATURES, FilterParams(use_features=0, forgetting=1.0))
    for x, r in zip(sig, rs):
        f.learn(x, float(r))
    view = f.view()
    assert all(v["weight"] == 0.0 for v in view["weights"].values())
    assert view["baseline_r"] == pytest.approx(float(np.mean(rs)) * 400 / 410, abs=1e-9)
