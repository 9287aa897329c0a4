"""Level candidates and touch statistics on constructed price paths with known events."""
import numpy as np
import pytest

from rl import levels as lv


def path_bars(closes, pierce=None, start_ms=0, step_ms=900_000, wick=0.3):
    """Candles from a close path: open = previous close, wicks of `wick` beyond the body.
    `pierce`: {bar index: low} overrides a low (a wick through a level)."""
    c = np.asarray(closes, float)
    o = np.concatenate([[c[0]], c[:-1]])
    h = np.maximum(o, c) + wick
    l = np.minimum(o, c) - wick
    for i, low in (pierce or {}).items():
        l[i] = low
    t = start_ms + np.arange(len(c), dtype=np.int64) * step_ms
    return lv.Bars(t, o, h, l, c, np.full(len(c), 10.0))


def leg(a, b, step=0.5):
    n = int(round(abs(b - a) / step))
    return list(np.linspace(a, b, n + 1)[1:])


def support_path():
    """Three clean tests of 100 (the third wicks to 99.0 and closes back: a failed breakout),
    then a real breakdown."""
    closes = [105.0] + leg(105, 100.5) + leg(100.5, 106) + leg(106, 100.5) + leg(100.5, 107)
    closes += leg(107, 100.5)
    pierce_at = len(closes) - 1
    closes += leg(100.5, 106) + leg(106, 94)
    return closes, {pierce_at: 99.0}


def test_touch_bounce_and_failed_breakout_counts():
    closes, pierce = support_path()
    bars = path_bars(closes, pierce)
    st = lv.touch_stats(bars, np.array([100.0]), atr_value=1.0, timeframe="15m")
    assert st.touches[0] == 4          # three tests + the breakdown
    assert st.bounces[0] == 3          # the breakdown is not a bounce
    assert st.failed[0] == 1           # the 99.0 wick that closed back above
    assert st.bounce_atr_sum[0] / st.bounces[0] >= 1.0
    assert st.first_ms[0] > 0 and st.last_ms[0] > st.first_ms[0]


def test_far_level_untouched():
    bars = path_bars(*support_path())
    st = lv.touch_stats(bars, np.array([200.0]), 1.0, "15m")
    assert st.touches[0] == 0 and st.bounces[0] == 0 and st.first_ms[0] == -1 and st.volume_ratio[0] == 0


def test_pivots_strength_and_no_repaint():
    high = np.array([1.0, 2, 5, 2, 1, 3, 4, 9])
    low = high - 0.5
    hi, lo = lv.pivots(high, low, 2)
    assert list(hi) == [2]             # 9 at the end has no right side yet: not a pivot
    assert list(lo) == [4]


def test_equal_highs_first_one_wins():
    high = np.array([1.0, 3, 3, 1, 0.5])
    hi, _ = lv.pivots(high, high - 0.1, 1)
    assert list(hi) == [1]


def test_volume_profile_conserves_volume_and_finds_node():
    rng = np.random.default_rng(0)
    mid = np.concatenate([rng.uniform(90, 110, 200), np.full(100, 100.0)])
    h, l = mid + 0.5, mid - 0.5
    v = np.ones(len(mid))
    centers, prof = lv.volume_profile(h, l, v, atr_value=1.0)
    assert prof.sum() == pytest.approx(v.sum())
    nodes = lv.volume_nodes(h, l, v, 1.0)
    assert len(nodes) >= 1 and np.min(np.abs(nodes - 100.0)) < 0.6


def test_merge_single_linkage_within_tolerance():
    c = [lv.Candidate(p, tf, "pivot_low", 0) for p, tf in ((100.0, "8h"), (100.3, "15m"), (100.6, "15m"), (102.0, "1w"))]
    out = lv.merge(c, 0.4)
    assert [round(x.price, 6) for x in out] == [pytest.approx(100.3), 102.0]
    assert out[0].timeframe == "15m" and out[0].timeframes == ("15m", "8h")


def test_candidates_short_history_is_empty_not_error():
    bars = path_bars([100.0, 101.0])
    assert lv.candidates(bars, float("nan"), "1w") == []


def test_touch_stats_mirror_symmetric():
    closes, pierce = support_path()
    b = path_bars(closes, pierce)
    K = 300.0
    m = lv.Bars(b.t, K - b.o, K - b.l, K - b.h, K - b.c, b.v)
    a = lv.touch_stats(b, np.array([100.0, 103.0]), 1.0, "15m")
    z = lv.touch_stats(m, np.array([K - 100.0, K - 103.0]), 1.0, "15m")
    for f in ("touches", "bounces", "failed", "volume_ratio"):
        np.testing.assert_allclose(getattr(a, f), getattr(z, f))
