"""The facade: analyze() shape, degradation on short histories, and incremental == fresh."""
import json

import numpy as np
import pandas as pd
import pytest

from rl.analysis.analyzer import TIMEFRAMES, IncrementalAnalyzer, analyze
from tests.support.candles import aggregate, make_candles

M1 = make_candles(6 * 24 * 60, seed=21, price=50.0, vol=0.0012)


def test_analysis_shape_and_json_safe():
    frames = aggregate(M1, M1.index[-1])
    price = float(M1.close.iloc[-2])
    a = analyze("ABCUSDT", frames, price, 123)
    assert set(a.indicators) == set(TIMEFRAMES)
    assert set(a.indicators["15m"]) == {"rsi", "macd", "macd_signal", "macd_hist", "bb_upper", "bb_middle",
                                        "bb_lower", "atr", "ema_fast", "ema_slow", "k", "d", "j", "vwap"}
    assert a.long_score == pytest.approx(sum(c["points"] for c in a.long_breakdown.values()))
    assert {c["max"] for c in a.long_breakdown.values()} == {25, 15, 20, 5}
    assert a.atr_15m > 0 and a.levels
    assert a.best_support is None or a.best_support.price <= price
    d = a.to_dict()
    json.dumps(d, allow_nan=False)                   # NaN became None
    assert d["indicators"]["1w"]["ema_slow"] is None  # 6 days: no weekly EMA50


def test_short_history_degrades_without_raising():
    tiny = {"15m": make_candles(10, freq="15min"), "8h": make_candles(3, freq="8h")}
    a = analyze("NEWUSDT", tiny, 30000.0, 0)
    assert 0 <= a.long_score <= 100 and 0 <= a.short_score <= 100
    assert a.long_breakdown["rsi"]["points"] == 0 and a.long_breakdown["macd"]["points"] == 0
    assert any("1w" in n for n in a.notes) and any("MACD" in n for n in a.notes)
    empty = analyze("NEWUSDT", {}, 1.0, 0)
    assert empty.long_score == 0 and empty.levels == [] and empty.best_support is None


@pytest.mark.parametrize("bad, match", [
    (dict(price=-1.0), "price"), (dict(price=float("nan")), "price"), (dict(time_ms=1.5), "time_ms"),
    (dict(frames={"5m": M1}), "5m"), (dict(weights={"volume_density": 1.0}), "missing")])
def test_bad_inputs_name_the_field(bad, match):
    kw = dict(symbol="X", frames={"1m": M1.iloc[:100]}, price=50.0, time_ms=0) | bad
    with pytest.raises(ValueError, match=match):
        analyze(**kw)


def _ms(ts):
    return int(ts.value // 1_000_000)


def _fed(inc: IncrementalAnalyzer, bars: int):
    """Prime `inc` at day 5 of M1, then push `bars` 1m candles (and each 15m candle when it
    closes); yields (i, the 1m row, its close time, whether a 15m candle closed)."""
    start = 5 * 24 * 60
    inc.update(aggregate(M1, M1.index[start]), float(M1.close.iloc[start - 1]), 0)
    m15 = aggregate(M1, M1.index[-1])["15m"]
    for i in range(start, start + bars):
        r = M1.iloc[i]
        inc.push_candle("1m", _ms(M1.index[i]), r.open, r.high, r.low, r.close, r.volume)
        end = M1.index[i] + pd.Timedelta("1min")
        closed = end.minute % 15 == 0
        if closed:
            t15 = end - pd.Timedelta("15min")
            g = m15.loc[t15]
            inc.push_candle("15m", _ms(t15), g.open, g.high, g.low, g.close, g.volume)
        yield i, r, end, closed


def test_incremental_equals_fresh_analyze():
    inc = IncrementalAnalyzer("X")
    checked = 0
    for i, r, end, _ in _fed(inc, 120):
        price = float(r.close) * (1 + 0.0005 * np.sin(i))
        got = inc.score(price, i)
        if i % 17 == 0 or end.minute % 15 == 0:
            want = analyze("X", aggregate(M1, end), price, i)
            assert got.long_score == pytest.approx(want.long_score, abs=1e-9)
            assert got.short_score == pytest.approx(want.short_score, abs=1e-9)
            assert [x.price for x in got.levels] == pytest.approx([x.price for x in want.levels])
            assert got.long_breakdown.keys() == want.long_breakdown.keys()
            for tf in TIMEFRAMES:
                for k, v in want.indicators[tf].items():
                    assert got.indicators[tf][k] == pytest.approx(v, rel=1e-9, nan_ok=True), (tf, k)
            checked += 1
    assert checked >= 10


def test_incremental_rejects_out_of_order_candles():
    inc = IncrementalAnalyzer("X")
    inc.push_candle("15m", 900_000, 1, 2, 0.5, 1.5, 10)
    with pytest.raises(ValueError, match="open_time_ms"):
        inc.push_candle("15m", 900_000, 1, 2, 0.5, 1.5, 10)
    with pytest.raises(ValueError, match="tf"):
        inc.push_candle("4h", 0, 1, 2, 0.5, 1.5, 10)


def test_incremental_across_8h_close_and_weight_change_equals_fresh():
    """The level finder caches 8h/1w work between their closes: an 8h close and a weights
    change must both show up exactly as in a fresh analyze()."""
    start = 5 * 24 * 60 - 40                         # 23:20 -> crosses the 00:00 8h close
    inc = IncrementalAnalyzer("X")
    inc.update(aggregate(M1, M1.index[start]), float(M1.close.iloc[start - 1]), 0)
    full = aggregate(M1, M1.index[-1])
    weights = {"volume_density": 0.1, "touch_bounce_count": 0.3, "bounce_magnitude": 0.1,
               "failed_breakout_count": 0.2, "duration_days": 0.2, "multi_tf_confirm": 0.1}
    use = None
    for i in range(start, start + 75):
        r = M1.iloc[i]
        inc.push_candle("1m", _ms(M1.index[i]), r.open, r.high, r.low, r.close, r.volume)
        end = M1.index[i] + pd.Timedelta("1min")
        if end.minute % 15 == 0:
            g = full["15m"].loc[end - pd.Timedelta("15min")]
            inc.push_candle("15m", _ms(end - pd.Timedelta("15min")), g.open, g.high, g.low, g.close, g.volume)
        if end.minute == 0 and end.hour % 8 == 0:
            g = full["8h"].loc[end - pd.Timedelta("8h")]
            inc.push_candle("8h", _ms(end - pd.Timedelta("8h")), g.open, g.high, g.low, g.close, g.volume)
        if i == start + 50:
            inc.set_weights(weights)
            use = weights
        if end.minute % 15 == 0 or i in (start + 50, start + 51):
            price = float(r.close)
            got = inc.score(price, i)
            want = analyze("X", aggregate(M1, end), price, i, weights=use)
            assert got.long_score == pytest.approx(want.long_score, abs=1e-9)
            assert got.short_score == pytest.approx(want.short_score, abs=1e-9)
            # every component, the ones kept between closes (trend, RSI, MACD, volume) included,
            # equals one computed now, its reason too
            for side in ("long_breakdown", "short_breakdown"):
                for comp, part in getattr(want, side).items():
                    mine = getattr(got, side)[comp]
                    assert mine["points"] == pytest.approx(part["points"], abs=1e-9), comp
                    assert mine["reason"] == part["reason"], comp
            assert [x.price for x in got.levels] == [x.price for x in want.levels]
            assert [x.score for x in got.levels] == pytest.approx([x.score for x in want.levels], abs=1e-9)
            assert [x.to_dict()["touches"] for x in got.levels] == [x.to_dict()["touches"] for x in want.levels]
            for a, b in ((got.best_support, want.best_support), (got.best_resistance, want.best_resistance)):
                assert (a is None) == (b is None) and (a is None or a.price == b.price)


def test_levels_built_on_first_read_equal_eager_view():
    """Analysis.levels is built lazily (the backtest reads only the best support and
    resistance); whoever reads it gets exactly the book's view at that price, and copies,
    pickles, replace() and == all behave as with a plain list."""
    import copy
    import dataclasses
    import pickle

    from rl.analysis.analyzer import Analysis
    frames = aggregate(M1, M1.index[-1])
    price = float(M1.close.iloc[-2])
    a, b = analyze("X", frames, price, 7), analyze("X", frames, price, 7)
    # (Analysis == Analysis is False whenever an indicator is NaN, so compare fields)
    assert [getattr(a, f.name) for f in dataclasses.fields(a) if f.name != "indicators"] == \
        [getattr(b, f.name) for f in dataclasses.fields(b) if f.name != "indicators"]
    assert isinstance(a.levels, list) and a.levels and a.levels is a.levels   # stored once built
    c = analyze("X", frames, price, 7)
    assert pickle.loads(pickle.dumps(c)).levels == a.levels           # pickled while deferred
    assert copy.deepcopy(analyze("X", frames, price, 7)).levels == a.levels
    assert dataclasses.replace(analyze("X", frames, price, 7), price=price).levels == a.levels
    assert dataclasses.asdict(analyze("X", frames, price, 7))["levels"] == [dataclasses.asdict(x) for x in a.levels]
    plain = Analysis("X", 1.0, 0, 0.0, 0.0, {}, {}, [], None, None, {}, float("nan"))
    assert plain.levels == [] and "levels" in repr(plain)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plain.levels = []
    # the eager best support/resistance equal the ones of the full view at this price
    inc = IncrementalAnalyzer("X")
    inc.update(frames, price, 7)
    book = inc.finder.rank(inc.prepare_scan())        # the book of the analyzer's current candles
    for p in (price * 0.98, price, price * 1.02):
        got = inc.score(p, 8)
        listed, bs, br = book.view(p)
        assert (got.best_support, got.best_resistance) == (bs, br)
        assert got.levels == listed == analyze("X", frames, p, 8).levels


def test_lazy_1m_indicators_read_later_show_the_state_they_were_scored_on():
    """The 1m indicators are computed on first read (charts, an entry's perception); read after
    many more 1m candles (past a trim of the 1m ring) they must still be those of the candles
    held when the analysis was made."""
    inc = IncrementalAnalyzer("X", max_bars=60)
    start = 2 * 24 * 60
    inc.update(aggregate(M1, M1.index[start]), float(M1.close.iloc[start - 1]), 0)
    for i in range(start, start + 30):
        r = M1.iloc[i]
        inc.push_candle("1m", _ms(M1.index[i]), r.open, r.high, r.low, r.close, r.volume)
    early = inc.score(float(M1.close.iloc[start + 29]), 1)
    want = analyze("X", {"1m": M1.iloc[:start + 30].iloc[-60:]}, float(M1.close.iloc[start + 29]), 1).indicators["1m"]
    for i in range(start + 30, start + 200):          # > 2 x max_bars more: the ring trims
        r = M1.iloc[i]
        inc.push_candle("1m", _ms(M1.index[i]), r.open, r.high, r.low, r.close, r.volume)
    late = inc.score(float(M1.close.iloc[start + 199]), 2)
    assert early.indicators["1m"] == pytest.approx(want, rel=1e-12, nan_ok=True)
    assert late.indicators["1m"]["ema_fast"] != early.indicators["1m"]["ema_fast"]


def test_breakdowns_built_on_first_read_match_the_scores_and_the_moment():
    """The reasons of both score breakdowns are formatted on first read (a backtest reads
    them only at an entry): read after many more candles they must be those of the moment
    scored, and the scores summed without them must equal `total` of them to the bit."""
    from rl.analysis import signals as sig
    inc = IncrementalAnalyzer("X")
    kept = []
    for i, r, _, closed in _fed(inc, 300):
        if closed:
            price = float(r.close) * (1 + 0.002 * np.sin(i))
            a = inc.score(price, i)
            now = inc.score(price, i)                  # the same moment, its reasons read at once
            kept.append((a, (now.long_breakdown, now.short_breakdown)))
    assert len(kept) >= 15
    for a, (long_now, short_now) in kept:         # read long after they were scored
        assert (a.long_breakdown, a.short_breakdown) == (long_now, short_now)
        assert a.long_score == sig.total(a.long_breakdown)
        assert a.short_score == sig.total(a.short_breakdown)
        assert list(a.long_breakdown) == list(sig.COMPONENTS)
        assert json.loads(json.dumps(a.to_dict()))["long_breakdown"]["bollinger"]["reason"].startswith(("%B", "bands"))


def test_1m_ring_following_the_archive_reads_as_the_copied_ring():
    """A backtest's 1m ring reads the archive's arrays instead of copying each bar: every view
    (taken at any time, read later, past the ring's capacity) must show the same candles as
    the list ring, and a bar that is not the archive's next one is refused."""
    from rl.analysis.levels.candidates import Bars
    src = Bars.from_frame(M1.iloc[:400])
    rows = list(zip(src.t.tolist(), *(getattr(src, f).tolist() for f in "ohlcv")))
    plain, follow = IncrementalAnalyzer("X", max_bars=60), IncrementalAnalyzer("X", max_bars=60)
    for an in (plain, follow):
        for r in rows[:25]:
            an.push_candle("1m", *r)
    follow.follow_1m(src, 25)
    views = []
    for k in range(25, 400):
        for an in (plain, follow):
            an.push_candle("1m", *rows[k])
        if k % 37 == 0:
            views.append((plain.rings["1m"].view(), follow.rings["1m"].view()))
    for pv, fv in views + [(plain.rings["1m"].view(), follow.rings["1m"].view())]:
        a, b = plain.rings["1m"].bars_of(pv), follow.rings["1m"].bars_of(fv)
        assert all(np.array_equal(getattr(a, f), getattr(b, f)) for f in "tohlcv") and len(a) <= 60
    assert follow.rings["1m"].n == plain.rings["1m"].n == 60
    assert follow.rings["1m"].last_time() == plain.rings["1m"].last_time()
    with pytest.raises(ValueError, match="open_time_ms: 1m candle"):
        follow.rings["1m"].push(rows[-1][0] + 60_000, 1.0, 1.0, 1.0, 1.0, 1.0)
    other = IncrementalAnalyzer("X", max_bars=60)
    other.push_candle("1m", *rows[3])
    with pytest.raises(ValueError, match="source: its rows before 10"):
        other.follow_1m(src, 10)                          # it holds row 3, not row 9


def test_best_levels_built_on_first_read_are_the_books_picks():
    """The best support/resistance are scored from their ranking row and built on first read:
    then they are exactly the book's `pick` (and `view`) at that price, labelled by side."""
    frames = aggregate(M1, M1.index[-1])
    price = float(M1.close.iloc[-2])
    inc = IncrementalAnalyzer("X")
    inc.update(frames, price, 7)
    book = inc.finder.rank(inc.prepare_scan())        # the book of the analyzer's current candles
    for p in (price * 0.97, price, price * 1.03):
        a = inc.score(p, 8)
        want = book.pick(p)
        assert (a.best_support, a.best_resistance) == want == book.view(p)[1:]
        assert a.best_support is None or a.best_support.kind == "support"
        assert a.best_resistance is None or a.best_resistance.kind == "resistance"
        assert a.best_support is a.best_support                     # stored once built
