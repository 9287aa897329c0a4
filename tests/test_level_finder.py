"""BestLevelFinder: weights validation, feature bounds, the multi-timeframe rule, ranking."""
import numpy as np
import pytest

from rl import level_finder as lf
from rl import levels as lv
from tests.test_levels import path_bars, support_path


def test_default_weights_are_the_designs_and_valid():
    assert lf.DEFAULT_WEIGHTS == {"volume_density": .20, "touch_bounce_count": .20, "bounce_magnitude": .15,
                                  "failed_breakout_count": .20, "duration_days": .10, "multi_tf_confirm": .15}
    assert lf.validate_weights(lf.DEFAULT_WEIGHTS) == lf.DEFAULT_WEIGHTS


@pytest.mark.parametrize("bad, match", [
    ({**lf.DEFAULT_WEIGHTS, "volume_density": 0.3}, "sum to 1"),
    ({k: v for k, v in lf.DEFAULT_WEIGHTS.items() if k != "duration_days"}, "missing.*duration_days"),
    ({**lf.DEFAULT_WEIGHTS, "rsi": 0.0}, "unknown.*rsi"),
    ({**lf.DEFAULT_WEIGHTS, "volume_density": -0.1, "duration_days": 0.4}, "volume_density.*0..1"),
    ({**lf.DEFAULT_WEIGHTS, "volume_density": float("nan")}, "volume_density.*finite"),
])
def test_bad_weights_name_key_and_rule(bad, match):
    with pytest.raises(ValueError, match=match):
        lf.validate_weights(bad)
    with pytest.raises(ValueError):
        lf.BestLevelFinder(bad)


def _stats(t15, t8, t1w):
    def one(n):
        a = np.array([float(n)])
        z = np.zeros(1)
        return lv.TouchStats(a, z, z, z, np.array([0]), np.array([86_400_000]), z)
    return {"15m": one(t15), "8h": one(t8), "1w": one(t1w)}


@pytest.mark.parametrize("t15, t8, t1w, expect", [
    (3, 2, 1, 1.0), (2, 2, 1, 0.4), (3, 1, 0, 0.6), (0, 0, 1, 0.1), (5, 0, 3, 0.7), (0, 0, 0, 0.0)])
def test_multi_tf_confirm_rule(t15, t8, t1w, expect):
    feats, _ = lf.level_features(_stats(t15, t8, t1w), 0, "15m")
    assert feats["multi_tf_confirm"] == pytest.approx(expect)
    assert feats["duration_days"] == pytest.approx(np.log1p(1) / np.log1p(30))


def test_scan_finds_the_constructed_support_with_breakdown():
    closes, pierce = support_path()
    closes = closes[:-24]                           # stop at 106, before the breakdown
    b15 = path_bars(closes, pierce)
    finder = lf.BestLevelFinder()
    book = finder.scan({"15m": b15}, {"15m": 1.0}, ref_price=closes[-1])  # 106
    best = min(book.ranked, key=lambda x: abs(x.price - 100.0))
    assert abs(best.price - 100.0) < 0.5
    assert best.kind == "support"
    assert best.stats["bounces"] >= 2 and best.stats["failed_breakouts"] == 1
    for x in book.ranked:
        assert all(0.0 <= v <= 1.0 for v in x.features.values())
        assert 0.0 <= x.score <= 100.0
        assert x.score == pytest.approx(100 * sum(lf.DEFAULT_WEIGHTS[f] * x.features[f] for f in lf.FEATURES))
    scores = [x.score for x in book.ranked]
    assert scores == sorted(scores, reverse=True)
    assert any("8h" in n for n in book.notes)       # missing timeframes are reported


def test_weights_change_ranking_input():
    closes, pierce = support_path()
    b15 = path_bars(closes[:-24], pierce)
    only_failed = {f: 0.0 for f in lf.FEATURES}
    only_failed["failed_breakout_count"] = 1.0
    book = lf.BestLevelFinder(only_failed).scan({"15m": b15}, {"15m": 1.0}, closes[-25])
    top = book.ranked[0]
    assert top.score == pytest.approx(100 * top.features["failed_breakout_count"])
    near100 = min(book.ranked, key=lambda x: abs(x.price - 100.0))
    assert near100.score == pytest.approx(100 / 3)      # one failed breakout of the 3 that saturate


def test_view_relabels_and_picks_best_near_price():
    closes, pierce = support_path()
    b15 = path_bars(closes[:-24], pierce)
    book = lf.BestLevelFinder().scan({"15m": b15}, {"15m": 1.0}, closes[-25])
    levels, bs, br = book.view(100.4)
    assert bs is not None and bs.kind == "support" and bs.price <= 100.4
    assert br is None or (br.kind == "resistance" and br.price >= 100.4)
    assert all((x.kind == "support") == (x.price <= 100.4) for x in levels)
    levels2, bs2, _ = book.view(50.0)               # below every level: no support at all
    assert bs2 is None and all(x.kind == "resistance" for x in levels2)
    d = levels[0].to_dict()
    assert set(d) >= {"price", "kind", "score", "features", "touches", "timeframe", "first_seen_ms", "last_touch_ms"}
