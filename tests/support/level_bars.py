"""Bars for the level code: constructed price paths with known touches (path_bars,
support_path), seeded random walks (generated_bars) and the real archive (real_bars)."""
import numpy as np
import pytest

from rl.analysis.levels import candidates as lv
from tests.support.archives import read_archive
from tests.support.candles import aggregate
from tests.support.paths import shared_kline_files


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


def generated_bars(n, seed, tf="15m", vol=0.004, flat_every=0):
    rng = np.random.default_rng(seed)
    c = 100 * np.exp(np.cumsum(rng.normal(0, vol, n)))
    o = np.concatenate([[100.0], c[:-1]])
    spread = np.abs(rng.normal(0, vol, n)) * c
    h, l = np.maximum(o, c) + spread, np.minimum(o, c) - spread
    if flat_every:                      # some candles with high == low (zero range)
        h[::flat_every] = l[::flat_every] = c[::flat_every]
    t = 1_700_000_000_000 + np.arange(n, dtype=np.int64) * lv.TF_MS[tf]
    return lv.Bars(t, o, h, l, c, rng.gamma(2.0, 50.0, n))


def real_bars(shared_data_dir, symbol="FILUSDT"):
    files = shared_kline_files(symbol)
    if not files:
        pytest.skip(f"no archive files for {symbol}")
    m1 = read_archive(files[0])
    frames = aggregate(m1, m1.index[-1])
    return {tf: lv.Bars.from_frame(frames[tf]) for tf in ("15m", "8h", "1w")}
