"""Level candidates and touch statistics on constructed price paths with known events."""
import numpy as np
import pytest

from rl.analysis.levels import candidates as lv
from rl.analysis.levels import touches as ts
from tests.support.level_bars import generated_bars, path_bars, real_bars, support_path
from tests.support.reference_levels import (
    reference_candidates,
    reference_pivots,
    reference_touch_stats,
    reference_volume_profile,
)


def test_touch_bounce_and_failed_breakout_counts():
    closes, pierce = support_path()
    bars = path_bars(closes, pierce)
    st = ts.touch_stats(bars, np.array([100.0]), atr_value=1.0, timeframe="15m")
    assert st.touches[0] == 4          # three tests + the breakdown
    assert st.bounces[0] == 3          # the breakdown is not a bounce
    assert st.failed[0] == 1           # the 99.0 wick that closed back above
    assert st.bounce_atr_sum[0] / st.bounces[0] >= 1.0
    assert st.first_ms[0] > 0 and st.last_ms[0] > st.first_ms[0]


def test_far_level_untouched():
    bars = path_bars(*support_path())
    st = ts.touch_stats(bars, np.array([200.0]), 1.0, "15m")
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
    a = ts.touch_stats(b, np.array([100.0, 103.0]), 1.0, "15m")
    z = ts.touch_stats(m, np.array([K - 100.0, K - 103.0]), 1.0, "15m")
    for f in ("touches", "bounces", "failed", "volume_ratio"):
        np.testing.assert_allclose(getattr(a, f), getattr(z, f))


def assert_same_stats(got, want):
    """Counts and times exactly; the two float sums (bounce ATR, volume) to rounding: the
    volume sum is a BLAS dot product in the reference, whose order of additions is the
    library's own, so only the last bits may differ."""
    for f in ("touches", "bounces", "failed", "first_ms", "last_ms"):
        np.testing.assert_array_equal(getattr(got, f), getattr(want, f), err_msg=f)
    for f in ("bounce_atr_sum", "volume_ratio"):
        np.testing.assert_allclose(getattr(got, f), getattr(want, f), rtol=1e-12, atol=0, err_msg=f)


def check_against_reference(bars, tf, prices):
    atr = float(np.mean(bars.h - bars.l)) if len(bars) else float("nan")
    for s in (1, 2, 3):
        for got, want in zip(lv.pivots(bars.h, bars.l, s), reference_pivots(bars.h, bars.l, s)):
            np.testing.assert_array_equal(got, want)
    if len(bars):
        for got, want in zip(lv.volume_profile(bars.h, bars.l, bars.v, atr),
                             reference_volume_profile(bars.h, bars.l, bars.v, atr)):
            np.testing.assert_array_equal(got, want)          # same additions in the same order
    assert lv.candidates(bars, atr, tf) == reference_candidates(bars, atr, tf)
    want = reference_touch_stats(bars, prices, atr, tf)
    assert_same_stats(ts.touch_stats(bars, prices, atr, tf), want)
    prep = ts.touch_prep(bars, atr) if len(bars) else None
    assert_same_stats(ts.touch_stats(bars, prices, atr, tf, prep), want)
    light = ts.touch_stats(bars, prices, atr, tf, prep, events=False)
    for f in ("touches", "first_ms", "last_ms"):
        np.testing.assert_array_equal(getattr(light, f), getattr(want, f))


@pytest.mark.parametrize("seed", range(12))
def test_optimized_levels_equal_reference_generated(seed):
    rng = np.random.default_rng(100 + seed)
    n = int(rng.choice([1, 5, 13, 60, 500]))
    tf = ("15m", "8h", "1w")[seed % 3]
    bars = generated_bars(n, seed, tf, flat_every=7 if seed % 4 == 0 else 0)
    lo, hi = float(bars.l.min()), float(bars.h.max())
    prices = np.concatenate([rng.uniform(lo - 1, hi + 1, 40), bars.h[:5], bars.l[-5:], [lo, hi]])
    check_against_reference(bars, tf, prices)


def test_optimized_touch_stats_on_constructed_paths():
    closes, pierce = support_path()
    bars = path_bars(closes, pierce)
    check_against_reference(bars, "15m", np.array([100.0, 100.25, 99.75, 103.0, 106.0, 94.0, 200.0]))


@pytest.mark.shared_data
def test_optimized_levels_equal_reference_real(shared_data_dir):
    for tf, bars in real_bars(shared_data_dir).items():
        lo, hi = float(bars.l.min()), float(bars.h.max())
        check_against_reference(bars, tf, np.linspace(lo, hi, 60))


def _merge_one(p, tf, src, t, tol):
    return lv.merge_sets(p, tf, src, t, [len(p)], [tol])[0]


def _merge_many(sets):
    return lv.merge_sets(*(np.concatenate([s[k] for s in sets]) for k in range(4)),
                         [len(s[0]) for s in sets], [s[4] for s in sets])


def test_merge_sets_equals_merge():
    rng = np.random.default_rng(5)
    for _ in range(50):
        n = int(rng.integers(1, 60))
        p, tf, src, t = (np.round(rng.uniform(90, 110, n), 1), rng.integers(0, 3, n),
                         rng.integers(0, 3, n), rng.integers(0, 10**6, n))
        cands = [lv.Candidate(float(a), lv.LEVEL_TIMEFRAMES[b], lv.SOURCES[c], int(d)) for a, b, c, d in zip(p, tf, src, t)]
        for tol in (0.0, 0.5, 3.0, 50.0):               # 50: one cluster of everything
            want = lv.merge(cands, tol)
            price, tfm, srm, first = _merge_one(p, tf, src, t, tol)
            assert price.tolist() == [c.price for c in want]          # bit for bit
            assert first.tolist() == [c.first_seen_ms for c in want]
            assert [tuple(x for i, x in enumerate(lv.LEVEL_TIMEFRAMES) if m >> i & 1) for m in tfm.tolist()] == \
                [c.timeframes for c in want]
            assert [tuple(sorted(x for i, x in enumerate(lv.SOURCES) if m >> i & 1)) for m in srm.tolist()] == \
                [c.sources for c in want]


# ------------------------------------------------- batched forms (a backtest worker's chunks)

def assert_identical(got, want):
    """Same dtype and the very same numbers (NaN where NaN): the batched forms promise bits."""
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def _windows(bars, n, step, atr_scale=1.0):
    """Sliding windows of `bars` (n candles, every `step`), each with its own ATR."""
    out = []
    for end in range(n, len(bars) + 1, step):
        w = lv.Bars(*(x[end - n:end] for x in (bars.t, bars.o, bars.h, bars.l, bars.c, bars.v)))
        out.append((w, atr_scale * float(np.mean(w.h - w.l)) * (1 + 0.01 * (end % 7))))
    return out


def _check_touch_stats_many(jobs, tf):
    """touch_stats_many over (bars, atr, prices) jobs == touch_stats of each job, with and
    without events."""
    preps = [(ts.touch_prep(b, a), p) for b, a, p in jobs]
    for events in (True, False):
        _assert_stacked(ts.touch_stats_many(preps, tf, events=events), jobs, tf, events)


def _assert_stacked(got, jobs, tf, events):
    """`got` holds, stacked in job order, exactly touch_stats of each (bars, atr, prices) job."""
    k = 0
    for b, a, p in jobs:
        want = ts.touch_stats(b, p, a, tf, events=events)
        for f in ts.TouchStats.__dataclass_fields__:
            assert_identical(getattr(got, f)[k:k + len(p)], getattr(want, f))
        k += len(p)
    assert k == len(got.touches)


@pytest.mark.parametrize("seed", range(4))
def test_touch_stats_many_equals_one_window_at_a_time_generated(seed):
    rng = np.random.default_rng(300 + seed)
    tf = ("15m", "8h")[seed % 2]
    bars = generated_bars(700, seed, tf, flat_every=5 if seed % 2 else 0)   # zero-range candles too
    jobs = []
    for i, (w, atr) in enumerate(_windows(bars, 500, 17)):
        lo, hi = float(w.l.min()), float(w.h.max())
        k = int(rng.integers(0, 40)) if i != 2 else 0                        # one window without levels
        jobs.append((w, atr, np.sort(np.concatenate([rng.uniform(lo - 1, hi + 1, k), w.h[-3:], w.l[:2]]))))
    short = generated_bars(3, seed + 9, tf)                                   # windows of different lengths
    jobs.insert(1, (short, float(np.mean(short.h - short.l)), np.array([short.l[0], short.h[-1], 1e9])))
    _check_touch_stats_many(jobs, tf)
    _check_touch_stats_many(jobs[3:4], tf)                                  # one window
    _check_touch_stats_many([(w, a, np.array([1e9, -1e9])) for w, a, _ in jobs[:3]], tf)   # nothing touched


def test_touch_stats_many_on_constructed_paths():
    closes, pierce = support_path()
    bars = path_bars(closes, pierce)
    prices = np.array([94.0, 99.75, 100.0, 100.25, 103.0, 106.0, 200.0])
    _check_touch_stats_many([(bars, 1.0, prices), (bars, 0.5, prices[::-1].copy()), (bars, 2.0, prices[2:4])], "15m")


@pytest.mark.shared_data
def test_touch_stats_many_equals_one_window_at_a_time_real(shared_data_dir):
    bars = real_bars(shared_data_dir)["15m"]
    jobs = [(w, a, np.linspace(float(w.l.min()), float(w.h.max()), 25)) for w, a in _windows(bars, 300, 41)]
    _check_touch_stats_many(jobs, "15m")


def _check_volume_nodes_many(windows):
    for with_extremes in (False, True):
        batch = [(w.h, w.l, w.v, a, (float(w.l.min()), float(w.h.max())) if with_extremes and len(w) else None)
                 for w, a in windows]
        for (w, a), got in zip(windows, lv.volume_nodes_many(batch)):
            assert_identical(got, lv.volume_nodes(w.h, w.l, w.v, a))


@pytest.mark.parametrize("seed", range(4))
def test_volume_nodes_many_equals_volume_nodes_generated(seed):
    bars = generated_bars(900, seed, flat_every=3 if seed % 2 else 0)
    windows = _windows(bars, 500, 23, atr_scale=(0.05, 0.3, 1.0, 20.0)[seed])   # 200-bin cap .. 10-bin floor
    flat = lv.Bars(bars.t[:20], *(np.full(20, 100.0),) * 4, bars.v[:20])      # high == low everywhere: no profile
    quiet = lv.Bars(*(x[:40] for x in (bars.t, bars.o, bars.h, bars.l, bars.c)), np.zeros(40))  # no volume
    one = lv.Bars(*(x[:1] for x in (bars.t, bars.o, bars.h, bars.l, bars.c, bars.v)))
    windows[1:1] = [(flat, 1.0), (quiet, 0.5), (windows[0][0], float("nan")), (one, 0.5)]
    _check_volume_nodes_many(windows)
    _check_volume_nodes_many(windows[:1])
    _check_volume_nodes_many(windows[1:3])                                     # none has nodes
    assert any(len(n) for n in lv.volume_nodes_many([(w.h, w.l, w.v, a, None) for w, a in windows]))


@pytest.mark.shared_data
def test_volume_nodes_many_equals_volume_nodes_real(shared_data_dir):
    for _tf, bars in real_bars(shared_data_dir).items():
        n = min(len(bars), 500)
        _check_volume_nodes_many(_windows(bars, n, max(1, (len(bars) - n) // 30)))


def test_merge_sets_together_equal_one_at_a_time():
    rng = np.random.default_rng(8)
    sets = []
    for i in range(40):
        n = 0 if i % 9 == 4 else int(rng.integers(1, 60))                      # some sets empty
        p = np.round(rng.uniform(90, 110, n), 1)
        if i % 11 == 5 and n:
            p[0] = np.nan                                                      # a NaN gap starts a cluster
        sets.append((p, rng.integers(0, 3, n), rng.integers(0, 3, n), rng.integers(0, 10**6, n),
                     float(rng.choice([0.0, 0.5, 3.0, 50.0]))))
    for batch in (sets, sets[:1], sets[4:5], [s for s in sets if not len(s[0])]):
        for s, got in zip(batch, _merge_many(batch)):
            for g, w in zip(got, _merge_one(*s)):
                assert_identical(g, w)
    for batch in (sets[:12], sets[20:23]):                                       # and the Python merge
        for (p, tf, src, t, tol), got in zip(batch, _merge_many(batch)):
            if np.isnan(p).any():
                continue
            cands = [lv.Candidate(float(a), lv.LEVEL_TIMEFRAMES[b], lv.SOURCES[c], int(d))
                     for a, b, c, d in zip(p, tf, src, t)]
            assert got[0].tolist() == [c.price for c in lv.merge(cands, tol)]


@pytest.mark.parametrize("sizes", [[1, 40, 2, 7, 1, 13, 3, 40, 1],            # few clusters: per-cluster sums
                                   [1, 3, 2, 7, 1, 2, 3, 4, 1, 2, 5, 2] * 4])  # many short ones: vector sums
def test_merge_sets_means_sum_left_to_right_like_merge(sizes):
    """Clusters of 1..40 members, in an order where summing differently would change bits:
    each level price is its members summed left to right and divided by their count, as
    `merge`'s sum() / len(). Cluster k spans under 1e6 from k * 1e7: linked within, apart."""
    rng = np.random.default_rng(12)
    parts = [k * 1e7 + np.sort(rng.uniform(0.1, 1e6, m) * (1 + 1e-13 * rng.standard_normal(m)))
             for k, m in enumerate(sizes)]
    want = [sum(p.tolist()) / len(p) for p in parts]
    sp = np.concatenate(parts)
    z = np.zeros(len(sp), dtype=np.int64)
    (means, _, _, _), = lv.merge_sets(sp, z, z, z, [len(sp)], [1e6])
    assert means.tolist() == want


def _check_touch_stats_windows(series_bars, jobs, tf="15m"):
    """touch_stats_windows over (a, end, atr, prices) windows of one series == touch_stats of
    each window's own Bars, with and without events."""
    b = series_bars
    series = ts.series_prep(b.t, b.h, b.l, b.c, b.v)
    windows = [(lv.Bars(*(x[a:end] for x in (b.t, b.o, b.h, b.l, b.c, b.v))), a, end, atr, p)
               for a, end, atr, p in jobs]
    for events in (True, False):
        got = ts.touch_stats_windows(series, [(a, end, atr, float(w.h.max()) - float(w.l.min()), p)
                                              for w, a, end, atr, p in windows], tf, events=events)
        _assert_stacked(got, [(w, atr, p) for w, _, _, atr, p in windows], tf, events)


@pytest.mark.parametrize("seed", range(4))
def test_touch_stats_windows_equals_one_window_at_a_time_generated(seed):
    """Windows at the series' start and end, of different lengths (down to LOOKAHEAD + 1,
    where every forward extreme is cut by the window's end), zero-range candles, levels at
    the windows' first and last candles (edge episodes), a window without levels."""
    rng = np.random.default_rng(700 + seed)
    bars = generated_bars(800, seed, flat_every=6 if seed % 2 else 0)
    N = len(bars)
    spans = [(0, 500), (300, N), (N - lv.LOOKAHEAD - 1, N), (0, lv.LOOKAHEAD + 1), (123, 140), (250, 750)]
    spans += [(a, a + 500) for a in rng.integers(0, N - 500, 6).tolist()]
    jobs = []
    for i, (a, end) in enumerate(spans):
        h, l = bars.h[a:end], bars.l[a:end]
        atr = float(np.mean(h - l)) * (1 + 0.1 * i)
        k = 0 if i == 4 else int(rng.integers(1, 40))
        p = np.concatenate([rng.uniform(l.min() - 1, h.max() + 1, k), h[:1], l[-1:], h[-lv.LOOKAHEAD:][:2]]) if k else np.zeros(0)
        jobs.append((a, end, atr, np.sort(p)))
    _check_touch_stats_windows(bars, jobs)
    _check_touch_stats_windows(bars, jobs[1:2])                                 # one window
    _check_touch_stats_windows(bars, [(a, e, atr, np.array([1e9, -1e9])) for a, e, atr, _ in jobs[:3]])  # untouched


def test_touch_stats_windows_on_constructed_paths():
    closes, pierce = support_path()
    bars = path_bars(closes, pierce)
    prices = np.array([94.0, 99.75, 100.0, 100.25, 103.0, 106.0, 200.0])
    n = len(bars)
    _check_touch_stats_windows(bars, [(0, n, 1.0, prices), (5, n - 3, 0.5, prices[2:5]), (n - 20, n, 2.0, prices)])


def test_touch_stats_windows_rejects_windows_it_cannot_read():
    bars = generated_bars(100, 1)
    series = ts.series_prep(bars.t, bars.h, bars.l, bars.c, bars.v)
    p = np.array([100.0])
    for a, end, atr in ((0, lv.LOOKAHEAD, 1.0), (90, 101, 1.0), (-1, 50, 1.0), (0, 50, 0.0), (0, 50, float("nan"))):
        with pytest.raises(ValueError, match="touch_stats_windows: window"):
            ts.touch_stats_windows(series, [(a, end, atr, 1.0, p)], "15m")


@pytest.mark.shared_data
def test_touch_stats_windows_equals_one_window_at_a_time_real(shared_data_dir):
    bars = real_bars(shared_data_dir)["15m"]
    jobs = [(end - 300, end, atr, np.linspace(float(w.l.min()), float(w.h.max()), 25))
            for end, (w, atr) in zip(range(300, len(bars) + 1, 41), _windows(bars, 300, 41))]
    _check_touch_stats_windows(bars, jobs)
