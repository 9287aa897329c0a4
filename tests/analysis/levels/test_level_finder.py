"""BestLevelFinder: weights validation, feature bounds, the multi-timeframe rule, ranking."""
from dataclasses import replace

import numpy as np
import pytest

from rl.analysis.levels import book as lb
from rl.analysis.levels import candidates as lv
from rl.analysis.levels import finder as lf
from rl.analysis.levels import touches as ts
from rl.strategy.params import LevelParams
from tests.support.level_bars import generated_bars, path_bars, real_bars, support_path
from tests.support.reference_levels import reference_candidates, reference_touch_stats


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
        return ts.TouchStats(a, z, z, z, np.array([0]), np.array([86_400_000]), z)
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


# ------------------------------------------------------------------ reference implementation
def reference_scan(bars, atrs, ref_price, weights=None):
    """The straightforward first BestLevelFinder.scan, kept as the definition the optimized
    scan (arrays, per-timeframe caches, lazy ScoredLevel objects) must reproduce: candidate
    objects, list merge, dense touch statistics and one level_features call per level."""
    finder = lf.BestLevelFinder(weights)
    tfs = [tf for tf in lv.LEVEL_TIMEFRAMES if tf in bars and len(bars[tf]) > 0]
    good = {tf: atrs.get(tf, float("nan")) for tf in tfs}
    good = {tf: a for tf, a in good.items() if a == a and a > 0}
    if not good:
        return []
    merge_atr = good.get("15m", next(iter(good.values())))
    cands = []
    for tf in good:
        cands += reference_candidates(bars[tf], good[tf], tf)
    span = lv.RANGE_ATR_8H * good["8h"] if "8h" in good else lv.RANGE_ATR_8H * 5.0 * merge_atr
    cands = [c for c in cands if abs(c.price - ref_price) <= span]
    clusters = lv.merge(cands, lv.MERGE_ATR * merge_atr)
    if not clusters:
        return []
    prices = np.array([c.price for c in clusters])
    stats = {tf: reference_touch_stats(bars[tf], prices, good[tf], tf) for tf in good}
    out = []
    for i, cl in enumerate(clusters):
        origin = cl.timeframe if cl.timeframe in stats else next(iter(stats))
        feats, raw = lf.level_features(stats, i, origin)
        out.append(lb.ScoredLevel(
            price=cl.price, kind="support" if cl.price <= ref_price else "resistance",
            score=finder.score(feats), features=feats, touches={tf: int(stats[tf].touches[i]) for tf in stats},
            timeframe=cl.timeframe, first_seen_ms=cl.first_seen_ms,
            last_touch_ms=max(int(st.last_ms[i]) for st in stats.values()), sources=cl.sources, stats=raw))
    out.sort(key=lambda x: (-x.score, abs(x.price - ref_price)))
    return out


def assert_same_level(got, want):
    """Everything exact except the float sums behind volume_density (and so the score),
    which may differ in the last bits (see tests/analysis/levels/test_levels.assert_same_stats)."""
    if want is None:
        assert got is None
        return
    assert (got.price, got.kind, got.timeframe, got.first_seen_ms, got.last_touch_ms, got.sources, got.touches) == \
        (want.price, want.kind, want.timeframe, want.first_seen_ms, want.last_touch_ms, want.sources, want.touches)
    assert got.score == pytest.approx(want.score, rel=1e-12, abs=1e-12)
    assert got.features.keys() == want.features.keys() and got.stats.keys() == want.stats.keys()
    for d_got, d_want in ((got.features, want.features), (got.stats, want.stats)):
        for k, v in d_want.items():
            assert d_got[k] == pytest.approx(v, rel=1e-12, abs=1e-12), k
            assert type(d_got[k]) is type(v), k       # even multi_tf_confirm's int 0 stays an int


class _ListBook:
    """The plain definition of a book's answers over the full list of ranked levels (the
    reference `LevelBook` is checked against): supports <= price, resistances >= price; the
    best support maximises score * max(0, 1 - distance / (3 ATR15m)), else the nearest."""

    def __init__(self, ranked, atr_value):
        self.ranked, self.atr = ranked, atr_value
        self._levels = sorted(ranked, key=lambda x: x.price)

    def view(self, price):
        listed = [self._as(x, 0 if x.price <= price else 1) for x in self.ranked[:lb.MAX_LEVELS]]
        below = [x for x in reversed(self._levels) if x.price <= price]
        above = [x for x in self._levels if x.price >= price]
        return listed, self._best(below, price, 0), self._best(above, price, 1)

    def _best(self, walk, price, side):
        reach = LevelParams().proximity_atr * self.atr if self.atr == self.atr else 0.0
        best, best_eff = None, 0.0
        for x in walk:
            dist = abs(price - x.price)
            if dist >= reach:
                break
            eff = x.score * (1.0 - dist / reach)
            if eff > best_eff:
                best, best_eff = x, eff
        pick = best if best is not None else (walk[0] if walk else None)
        return None if pick is None else self._as(pick, side)

    @staticmethod
    def _as(x, side):
        kind = "support" if side == 0 else "resistance"
        return x if x.kind == kind else replace(x, kind=kind)


def assert_scan_equals_reference(finder, bars, atrs, ref_price, probes=()):
    book = finder.scan(bars, atrs, ref_price)
    want = reference_scan(bars, atrs, ref_price, finder.weights)
    assert len(book.ranked) == len(want)
    for got, w in zip(book.ranked, want):
        assert_same_level(got, w)
    ref_book = _ListBook(want, book.atr)
    for p in (ref_price, *probes, *(x.price for x in want[:3])):
        g_levels, g_bs, g_br = book.view(p)
        w_levels, w_bs, w_br = ref_book.view(p)
        assert len(g_levels) == len(w_levels)
        for g, w in zip(g_levels, w_levels):
            assert_same_level(g, w)
        assert_same_level(g_bs, w_bs)
        assert_same_level(g_br, w_br)
    return book


def _atr(b):
    return float(np.mean(b.h[-14:] - b.l[-14:])) if len(b) else float("nan")


@pytest.mark.parametrize("seed", range(6))
def test_scan_equals_reference_generated(seed):
    bars = {"15m": generated_bars(500, seed, "15m", 0.004), "8h": generated_bars(300, seed + 50, "8h", 0.02),
            "1w": generated_bars(40 + 30 * seed, seed + 90, "1w", 0.06)}
    atrs = {tf: _atr(b) for tf, b in bars.items()}
    ref = float(bars["15m"].c[-1])
    finder = lf.BestLevelFinder()
    for drop in ((), ("1w",), ("8h",), ("8h", "1w"), ("15m",)):
        sub = {tf: b for tf, b in bars.items() if tf not in drop}
        assert_scan_equals_reference(finder, sub, atrs, ref, probes=(ref * 0.98, ref * 1.02, 1e-9, 1e9))


def test_cached_scans_of_a_sliding_window_equal_reference():
    """One finder reused across a backtest-like sequence (15m slides every scan, 8h every
    32nd, weights changed midway): its caches must never leak a stale answer."""
    m15 = generated_bars(900, 3, "15m", 0.004)
    h8 = generated_bars(400, 4, "8h", 0.02)
    w1 = generated_bars(80, 5, "1w", 0.06)
    finder = lf.BestLevelFinder()
    for k, end in enumerate(range(500, 900, 23)):
        sl = slice(end - 500, end)
        b15 = lv.Bars(*(a[sl] for a in (m15.t, m15.o, m15.h, m15.l, m15.c, m15.v)))
        e8 = 300 + (end - 500) // 32
        b8 = lv.Bars(*(a[e8 - 300:e8] for a in (h8.t, h8.o, h8.h, h8.l, h8.c, h8.v)))
        bars = {"15m": b15, "8h": b8, "1w": w1}
        if k == 8:
            finder = lf.BestLevelFinder({**lf.DEFAULT_WEIGHTS, "volume_density": 0.3, "duration_days": 0.0})
        assert_scan_equals_reference(finder, bars, {tf: _atr(b) for tf, b in bars.items()}, float(b15.c[-1]))


@pytest.mark.shared_data
def test_scan_equals_reference_real(shared_data_dir):
    bars = real_bars(shared_data_dir)
    atrs = {tf: _atr(b) for tf, b in bars.items()}
    finder = lf.BestLevelFinder()
    for cut in (300, 400, 500):
        sub = {tf: (lv.Bars(*(a[:cut] for a in (b.t, b.o, b.h, b.l, b.c, b.v))) if tf == "15m" else b)
               for tf, b in bars.items()}
        ref = float(sub["15m"].c[-1])
        assert_scan_equals_reference(finder, sub, atrs, ref, probes=(ref * 0.99, ref * 1.01))


def _both_paths_agree(monkeypatch, finder, bars, atrs, ref):
    """Prepare and rank the scan once with the scalar code (every scan counts as small) and
    once with the array code (none does) and demand identical output (every column of the
    prepared scan; every ranked level in order, its score and features, types included:
    multi_tf's int 0): the size of a scan picks one of each, so they must agree exactly."""
    out = []
    for small in (10**9, 0):
        monkeypatch.setattr(lf, "SMALL_SCAN", small)
        scan = finder.prepare(bars, atrs, ref)
        ranked = finder.rank(scan).ranked
        out.append((scan, ranked, [[type(v) for v in x.features.values()] for x in ranked]))
    assert out[0] == out[1]


@pytest.mark.parametrize("seed", range(4))
def test_small_and_array_rank_identical_generated(monkeypatch, seed):
    bars = {"15m": generated_bars(500, seed, "15m", 0.004), "8h": generated_bars(300, seed + 50, "8h", 0.02),
            "1w": generated_bars(40 + 30 * seed, seed + 90, "1w", 0.06)}
    atrs = {tf: _atr(b) for tf, b in bars.items()}
    ref = float(bars["15m"].c[-1])
    finder = lf.BestLevelFinder({**lf.DEFAULT_WEIGHTS, "volume_density": 0.3, "duration_days": 0.0})
    for drop in ((), ("1w",), ("8h",), ("8h", "1w"), ("15m",)):
        _both_paths_agree(monkeypatch, finder, {tf: b for tf, b in bars.items() if tf not in drop}, atrs, ref)
    wide = {"15m": generated_bars(2000, seed, "15m", 0.006), "8h": generated_bars(300, seed + 50, "8h", 0.06)}
    _both_paths_agree(monkeypatch, finder, wide, {tf: _atr(b) for tf, b in wide.items()},
                      float(wide["15m"].c[-1]))                                             # a big scan


@pytest.mark.shared_data
def test_small_and_array_rank_identical_real(monkeypatch, shared_data_dir):
    bars = real_bars(shared_data_dir)
    atrs = {tf: _atr(b) for tf, b in bars.items()}
    finder = lf.BestLevelFinder()
    cuts = range(200, len(bars["15m"]) + 1, 37)
    assert len(cuts) > 3
    for cut in cuts:
        sub = {tf: (lv.Bars(*(a[cut - 200:cut] for a in (b.t, b.o, b.h, b.l, b.c, b.v))) if tf == "15m" else b)
               for tf, b in bars.items()}
        _both_paths_agree(monkeypatch, finder, sub, atrs, float(sub["15m"].c[-1]))


def test_merged_many_scans_equals_one_at_a_time():
    """Scans prepared together (their candidates filtered within reach of each scan's
    reference price and merged together) give each scan the levels it gets alone: scans with
    different timeframes and spans, one with nothing in reach, one without any candidate."""
    bars = {"15m": generated_bars(500, 1, "15m", 0.004), "8h": generated_bars(300, 2, "8h", 0.02),
            "1w": generated_bars(60, 3, "1w", 0.06)}
    atrs = {tf: _atr(b) for tf, b in bars.items()}
    ref = float(bars["15m"].c[-1])
    inputs = [({tf: bars[tf] for tf in sub}, atrs, r)
              for sub, r in ((("15m", "8h", "1w"), ref), (("15m",), ref * 1.01), (("15m", "8h"), 1e9),
                             (("8h", "1w"), ref))]
    flat = lv.Bars(bars["15m"].t[:50], *([np.full(50, ref)] * 4), np.full(50, 10.0))   # no pivot, no profile
    inputs.insert(2, ({"15m": flat}, atrs, ref))
    together = lf.BestLevelFinder().prepare_many(inputs)
    assert [g.M.shape[1] == 0 for g in together] == [False, False, True, True, False]  # no candidate; none in reach
    for inp, got in zip(inputs, together):
        assert got == lf.BestLevelFinder().prepare(*inp)
