"""CandleFormer: the 15m/8h/1w candles a backtest forms bar by bar equal the market port's
(rl.market.candles.resample / aggregate_arrays) bit for bit, gaps in the data included."""
from __future__ import annotations

from bisect import bisect_left

import numpy as np
import pandas as pd

from rl.market.candle_former import FORMED_TIMEFRAMES, CandleFormer
from rl.market.candles import INTERVAL_MS, MINUTE_MS, bucket_start, index_to_ms, resample
from tests.support.candles import make_candles

COLS = ["open", "high", "low", "close", "volume"]


def _with_gaps(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """`frame` with a few holes: single minutes, an hour, and half a day across an 8h close."""
    rng = np.random.default_rng(seed)
    keep = np.ones(len(frame), dtype=bool)
    for i in rng.choice(len(frame), 40, replace=False):
        keep[i] = False
    keep[5_000:5_060] = False
    keep[9_100:9_820] = False
    return frame[keep]


def _served(frame: pd.DataFrame) -> dict[str, dict[int, tuple]]:
    """Per timeframe, open time -> OHLCV of the candle the market port forms."""
    out = {}
    for tf in FORMED_TIMEFRAMES:
        df = resample(frame, tf)
        out[tf] = {int(t): tuple(float(x) for x in row)
                   for t, row in zip(index_to_ms(df.index).tolist(), df[COLS].itertuples(index=False))}
    return out


def _run(frame: pd.DataFrame, first: int, pushed: dict[str, int],
         handed_at: dict | None = None) -> tuple[list[tuple], list[bool]]:
    """Start a former at bar `first` from the bars before it, add the rest: (every candle
    handed over, per added bar whether a 15m candle closed). `handed_at`: (tf, open) -> the
    bar at which the candle was handed over."""
    got: list[tuple] = []
    former = CandleFormer(lambda tf, t, o, h, l, c, v: got.append((tf, t, o, h, l, c, v)))
    t_ms = index_to_ms(frame.index)
    former.start(frame.iloc[:first], int(t_ms[first]), pushed)
    closes = []
    for t, row in zip(t_ms[first:].tolist(), frame.iloc[first:][COLS].itertuples(index=False)):
        n = len(got)
        closes.append(former.add(t, *(float(x) for x in row)))
        assert closes[-1] == any(tf == "15m" for tf, *_ in got[n:])
        if handed_at is not None:
            handed_at.update({(tf, c_t): t for tf, c_t, *_ in got[n:]})
    return got, closes


def test_formed_candles_equal_the_market_ports_bit_for_bit_with_gaps():
    frame = _with_gaps(make_candles(n=20_000, seed=5, vol=0.003, start="2024-01-03 05:17", freq="1min"), 1)
    t_ms = index_to_ms(frame.index)
    first = 8_000                                 # mid-week: history reaches back past Monday
    handed_at: dict = {}
    got, _ = _run(frame, first, {}, handed_at)
    want = _served(frame)
    start_ms = int(t_ms[first])
    stepped = t_ms[first:].tolist()
    seen: dict[str, list[int]] = {tf: [] for tf in FORMED_TIMEFRAMES}
    for tf, t, *ohlcv in got:
        assert tuple(ohlcv) == want[tf][t], (tf, t)          # bit for bit, volume (fsum) included
        seen[tf].append(t)
        # handed over with its bucket's last minute or, after a gap, the first bar after it
        end = t + INTERVAL_MS[tf]
        assert handed_at[(tf, t)] == stepped[bisect_left(stepped, end - MINUTE_MS)], (tf, t)
    last_ms = int(t_ms[-1])
    for tf in FORMED_TIMEFRAMES:
        assert seen[tf] == sorted(set(seen[tf]))              # in order, each once
        # every candle forming at the start or later, whose bucket closed before the last bar
        expected = [t for t in want[tf] if t >= bucket_start(start_ms, tf)
                    and bucket_start(last_ms, tf) > t]
        assert seen[tf] == expected, tf
    assert len(seen["1w"]) >= 1 and len(seen["8h"]) >= 20 and len(seen["15m"]) >= 700


def test_start_takes_the_minutes_of_the_forming_candle_from_history():
    frame = make_candles(n=3_000, seed=2, start="2024-01-01", freq="1min")
    t_ms = index_to_ms(frame.index)
    first = 2_020                                  # 10 minutes into the 15m bucket of 33:30
    b15 = bucket_start(int(t_ms[first]), "15m")
    assert int(t_ms[first]) - b15 == 10 * MINUTE_MS
    got, closes = _run(frame.iloc[: first + 5], first, {})
    assert [c[:2] for c in got] == [("15m", b15)] and closes == [False] * 4 + [True]
    assert tuple(got[0][2:]) == _served(frame.iloc[: first + 5])["15m"][b15]


def test_a_gap_across_a_close_hands_over_the_stale_candle_at_the_next_bar():
    frame = make_candles(n=200, seed=4, start="2024-01-01", freq="1min")
    t_ms = index_to_ms(frame.index)
    gapped = frame[(t_ms < t_ms[20]) | (t_ms >= t_ms[40])]      # 00:20 .. 00:39 missing
    got, closes = _run(gapped, 1, {})
    after = index_to_ms(gapped.index).tolist().index(int(t_ms[40]))
    assert closes[after - 1]                       # bar 00:40 hands over the 00:15 candle
    assert [c[1] for c in got if c[0] == "15m"][:2] == [int(t_ms[0]), int(t_ms[15])]
    assert int(t_ms[15]) + 15 * MINUTE_MS <= int(t_ms[40])
