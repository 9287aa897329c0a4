"""Weight learning (design §9): direction follows the evidence, sum stays 1, bounds hold."""
from __future__ import annotations

import math

import numpy as np
import pytest

from rl.strategy.learning import LearningError, feature_evidence, project_to_bounds, update_weights
from rl.strategy.params import LearningParams

L30 = LearningParams(min_trades=30)
MIN_WEIGHT, MAX_WEIGHT = L30.min_weight, L30.max_weight

W = {"volume_density": 0.20, "touch_bounce_count": 0.20, "bounce_magnitude": 0.15,
     "failed_breakout_count": 0.20, "duration_days": 0.10, "multi_tf_confirm": 0.15}


def correlation(xs, ys):
    """The Pearson correlation the learner finds between one feature's values and the R multiples."""
    return feature_evidence([({"x": x}, y) for x, y in zip(xs, ys)], ["x"])["x"].correlation


def constructed_samples(n: int = 40, seed: int = 1):
    """touch_bounce_count predicts R, duration_days predicts the opposite, the rest are noise."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        good = rng.uniform(0, 1)
        bad = rng.uniform(0, 1)
        r = 3 * good - 3 * bad + rng.normal(0, 0.2)
        feats = {k: float(rng.uniform(0, 1)) for k in W}
        feats["touch_bounce_count"] = good
        feats["duration_days"] = bad
        feats["multi_tf_confirm"] = 0.6          # constant: no evidence either way
        out.append((feats, r))
    return out


def test_below_min_trades_nothing_changes():
    upd = update_weights(W, constructed_samples(29), L30)
    assert not upd.applied and upd.new == W
    assert "30" in upd.reason_en


def test_weights_move_in_direction_of_evidence_and_sum_to_one():
    samples = constructed_samples(40)
    upd = update_weights(W, samples, L30)
    assert upd.applied and upd.trade_count == 40
    assert upd.evidence["touch_bounce_count"].verdict == "helped"
    assert upd.evidence["duration_days"].verdict == "did_not_help"
    assert upd.evidence["multi_tf_confirm"].verdict == "no_evidence"
    assert upd.new["touch_bounce_count"] > W["touch_bounce_count"]
    assert upd.new["duration_days"] < W["duration_days"]
    assert sum(upd.new.values()) == pytest.approx(1.0, abs=1e-12)
    # relative to the helped feature, the hurt one lost about 10 % (1.05 vs 0.95)
    ratio_before = W["duration_days"] / W["touch_bounce_count"]
    ratio_after = upd.new["duration_days"] / upd.new["touch_bounce_count"]
    assert ratio_after == pytest.approx(ratio_before * 0.95 / 1.05)


def test_repeated_learning_never_lets_a_feature_die_or_dominate():
    samples = constructed_samples(60)
    w = dict(W)
    for _ in range(300):
        w = update_weights(w, samples, L30).new
        assert sum(w.values()) == pytest.approx(1.0, abs=1e-9)
        assert min(w.values()) >= MIN_WEIGHT - 1e-12
        assert max(w.values()) <= MAX_WEIGHT + 1e-12
    assert w["duration_days"] == pytest.approx(MIN_WEIGHT)
    assert w["touch_bounce_count"] == max(w.values())


def test_project_to_bounds_keeps_order_of_free_weights():
    out = project_to_bounds({"a": 0.9, "b": 0.05, "c": 0.03, "d": 0.02}, 0.05, 0.5)
    assert sum(out.values()) == pytest.approx(1.0)
    assert out["a"] == pytest.approx(0.5)
    assert out["b"] >= out["c"] >= out["d"] >= 0.05 - 1e-12


def test_pearson_and_no_variation():
    assert correlation([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert correlation([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert correlation([1, 1, 1], [1, 2, 3]) is None
    ev = feature_evidence([({"x": 1.0}, 1.0), ({"x": 2.0}, -1.0)] * 10, ["x", "missing"])
    assert ev["x"].verdict == "did_not_help" and ev["x"].mean_when_win == 1.0
    assert ev["missing"].n == 0 and ev["missing"].verdict == "no_evidence"


@pytest.mark.parametrize("weights, field", [
    ({"a": 0.5, "b": 0.6}, "sum"),
    ({"a": -0.1, "b": 1.1}, "weights['a']"),
    ({"a": "x", "b": 1.0}, "weights['a']"),
    ({}, "weights"),
])
def test_bad_weights_are_named(weights, field):
    with pytest.raises(LearningError, match=field.replace("[", r"\[").replace("]", r"\]")):
        update_weights(weights, [], L30)


def test_bad_parameters():
    with pytest.raises(LearningError, match="min_trades"):
        update_weights(W, [], LearningParams(min_trades=0))
    with pytest.raises(LearningError, match="step"):
        update_weights(W, [], LearningParams(min_trades=1, step=1.5))
    with pytest.raises(LearningError, match="finite"):
        feature_evidence([({"x": float("nan")}, 1.0)], ["x"])


def test_noise_is_inconclusive_and_does_not_move_weights():
    """Features unrelated to outcome must not drift however often learning runs."""
    rng = np.random.default_rng(11)
    samples = [({k: float(rng.uniform(0, 1)) for k in W}, float(rng.normal(0, 1))) for _ in range(200)]
    w = dict(W)
    for _ in range(50):
        upd = update_weights(w, samples, L30)
        w = upd.new
    assert all(e.verdict == "inconclusive" for e in upd.evidence.values())
    assert w == pytest.approx(W)


def test_significance_threshold_shrinks_with_more_trades():
    from rl.strategy.learning import significance_threshold
    assert significance_threshold(30) == pytest.approx(1.645 / 30 ** 0.5)
    assert significance_threshold(100) == pytest.approx(0.1645)
    assert significance_threshold(10**6) == pytest.approx(0.05)   # never below min_correlation


# ------------------------------------------------------------------ running statistics
def _random_samples(rng, n, features):
    return [({f: rng.choice([rng.random(), 0.0, 1.0, None, rng.gauss(5, 3)]) for f in features
              if rng.random() > 0.1}, rng.choice([rng.gauss(0, 1), 0.0, -1.0, 2.0])) for _ in range(n)]


def test_running_evidence_equals_evidence_over_all_samples_at_every_close():
    """The agent adds one closed trade at a time; after each, the statistics must equal those
    of all samples so far (same operations in the same order: exactly), and the learning step
    from them the one from the samples."""
    import random

    from rl.strategy.learning import EvidenceStats
    rng = random.Random(8)
    samples = _random_samples(rng, 120, list(W))
    running = EvidenceStats(list(W))
    for k, (values, r) in enumerate(samples):
        running.add(values, r)
        assert running.count == k + 1
        assert running.evidence() == EvidenceStats.of(samples[:k + 1], list(W)).evidence()
    a = update_weights(W, running, L30)
    b = update_weights(W, samples, L30)
    assert a.new == b.new and a.evidence == b.evidence and a.trade_count == b.trade_count == 120
    assert a.reason_en == b.reason_en


def test_running_correlation_is_accurate_far_from_zero():
    """Welford's updates keep r accurate where naive sums of squares cancel: feature values
    around 1e9 varying by units (e.g. first-seen times in ms)."""
    import random
    from fractions import Fraction

    rng = random.Random(2)
    xs = [1e9 + rng.randint(0, 50) for _ in range(200)]
    ys = [0.01 * (x - 1e9) + rng.gauss(0, 0.2) for x in xs]
    fx, fy = [Fraction(x) for x in xs], [Fraction(y) for y in ys]
    mx, my = sum(fx) / len(fx), sum(fy) / len(fy)
    sxy = sum((a - mx) * (b - my) for a, b in zip(fx, fy))
    exact = float(sxy) / math.sqrt(float(sum((a - mx) ** 2 for a in fx)) * float(sum((b - my) ** 2 for b in fy)))
    assert correlation(xs, ys) == pytest.approx(exact, rel=1e-9)


def test_running_evidence_rejects_a_bad_sample_whole_and_other_features():
    from rl.strategy.learning import EvidenceStats
    st = EvidenceStats(["a", "b"])
    st.add({"a": 1.0, "b": 2.0}, 1.0)
    before = st.evidence()
    with pytest.raises(LearningError, match=r"feature 'b'=nan"):
        st.add({"a": 3.0, "b": float("nan")}, 1.0)
    assert st.count == 1 and st.evidence() == before          # nothing of it was counted
    with pytest.raises(LearningError, match=r"statistics over \['a', 'b'\]"):
        update_weights({"b": 0.5, "a": 0.5}, st, LearningParams(min_trades=1))


def test_learning_numbers_come_from_the_params():
    """A bigger step moves the weights further; a stricter z makes the same evidence inconclusive."""
    samples = constructed_samples(40)
    small = update_weights(W, samples, L30)
    big = update_weights(W, samples, LearningParams(min_trades=30, step=0.2))
    gain_small, gain_big = (u.new["touch_bounce_count"] - W["touch_bounce_count"] for u in (small, big))
    assert gain_big > gain_small > 0
    strict = update_weights(W, samples, LearningParams(min_trades=30, significance_z=50.0))
    assert all(e.verdict in ("inconclusive", "no_evidence") for e in strict.evidence.values())
    assert strict.new == pytest.approx(W)
    assert not update_weights(W, samples, LearningParams(min_trades=41)).applied
