"""Indicators: hand-computed short series, warm-up lengths, and loop reference agreement."""
import math

import numpy as np
import pandas as pd
import pytest

from rl.analysis import indicators as ind
from tests.support.candles import make_candles


def ref_ema(x, p, alpha=None):
    a = 2 / (p + 1) if alpha is None else alpha
    out = [math.nan] * len(x)
    start = next(i for i, v in enumerate(x) if not math.isnan(v))
    if len(x) - start < p:
        return out
    y = sum(x[start:start + p]) / p
    out[start + p - 1] = y
    for i in range(start + p, len(x)):
        y = a * x[i] + (1 - a) * y
        out[i] = y
    return out


def ref_rsi(c, p=14):
    g = [math.nan] + [max(c[i] - c[i - 1], 0) for i in range(1, len(c))]
    l_ = [math.nan] + [max(c[i - 1] - c[i], 0) for i in range(1, len(c))]
    ag, al = ref_ema(g, p, 1 / p), ref_ema(l_, p, 1 / p)
    out = []
    for a, b in zip(ag, al):
        if math.isnan(a):
            out.append(math.nan)
        elif b == 0:
            out.append(100.0 if a > 0 else 50.0)
        else:
            out.append(100 - 100 / (1 + a / b))
    return out


def test_ema_hand_values():
    out = ind.ema(np.array([1.0, 2, 3, 4, 5]), 3)
    assert np.isnan(out[:2]).all()
    assert out[2] == pytest.approx(2.0)          # SMA seed of 1,2,3
    assert out[3] == pytest.approx(0.5 * 4 + 0.5 * 2.0)
    assert out[4] == pytest.approx(0.5 * 5 + 0.5 * 3.0)


def test_rsi_hand_values_and_warmup():
    c = np.array([1.0, 2.0, 1.0, 2.0, 3.0])
    r = ind.rsi(c, 2)
    assert np.isnan(r[:2]).all()
    # changes +1, -1 -> avg gain 0.5, loss 0.5 -> 50
    assert r[2] == pytest.approx(50.0)
    # next change +1: gain (0.5+1)/2=0.75, loss 0.25 -> RS 3 -> 75
    assert r[3] == pytest.approx(75.0)
    assert ind.rsi(np.ones(30))[-1] == 50.0          # flat: neutral by convention
    assert ind.rsi(np.arange(30.0))[-1] == 100.0     # no losses


def test_atr_hand_values():
    h = np.array([10.0, 11, 12, 13])
    l = np.array([9.0, 10, 10, 12])
    c = np.array([9.5, 10.5, 11, 12.5])
    a = ind.atr(h, l, c, 2)
    # TR[1] = max(1, 1.5, 0.5)=1.5; TR[2]=max(2,1.5,0.5)=2; seed at index 2 = 1.75
    assert np.isnan(a[:2]).all()
    assert a[2] == pytest.approx(1.75)
    # TR[3] = max(1, 2, 1) = 2 -> (1.75 + 2)/2
    assert a[3] == pytest.approx(1.875)


def test_bollinger_hand_values():
    up, mid, lo = ind.bollinger(np.array([1.0, 2, 3, 4]), 3, 2.0)
    assert np.isnan(mid[:2]).all()
    sd = math.sqrt(2 / 3)  # population std of 1,2,3
    assert mid[2] == pytest.approx(2.0) and up[2] == pytest.approx(2 + 2 * sd) and lo[2] == pytest.approx(2 - 2 * sd)


def test_macd_warmup_positions():
    c = make_candles(100).close.to_numpy()
    line, sig, hist = ind.macd(c)
    assert np.isnan(line[:25]).all() and not np.isnan(line[25])
    assert np.isnan(sig[:33]).all() and not np.isnan(sig[33])
    assert sig[33] == pytest.approx(np.mean(line[25:34]))
    np.testing.assert_allclose(hist[33:], line[33:] - sig[33:])


def test_kdj_hand_values():
    h = np.array([10.0, 12, 11])
    l = np.array([8.0, 9, 9])
    c = np.array([9.0, 11, 10])
    k, d, j = ind.kdj(h, l, c, n=2)
    assert np.isnan(k[0])
    rsv = (11 - 8) / (12 - 8) * 100            # 75
    k1 = (2 * 50 + rsv) / 3
    d1 = (2 * 50 + k1) / 3
    assert k[1] == pytest.approx(k1) and d[1] == pytest.approx(d1) and j[1] == pytest.approx(3 * k1 - 2 * d1)


def test_vwap_resets_at_utc_midnight():
    idx = pd.date_range("2024-01-01 23:58", periods=4, freq="1min", tz="UTC")
    h = pd.Series([11.0, 12, 13, 14], index=idx)
    l = pd.Series([9.0, 10, 11, 12], index=idx)
    c = pd.Series([10.0, 11, 12, 13], index=idx)
    v = pd.Series([1.0, 3, 2, 2], index=idx)
    out = ind.vwap(h, l, c, v)
    assert out.iloc[0] == pytest.approx(10.0)
    assert out.iloc[1] == pytest.approx((10 * 1 + 11 * 3) / 4)
    assert out.iloc[2] == pytest.approx(12.0)            # new session
    assert out.iloc[3] == pytest.approx((12 * 2 + 13 * 2) / 4)
    assert isinstance(out, pd.Series) and out.index.equals(idx)


def test_long_series_matches_loop_reference():
    df = make_candles(800, seed=11)
    c = df.close.tolist()
    np.testing.assert_allclose(ind.ema(df.close, 20).to_numpy(), ref_ema(c, 20), rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(ind.rsi(df.close).to_numpy(), ref_rsi(c), rtol=1e-10, equal_nan=True)
    # ATR reference: plain loop
    h, l = df.high.tolist(), df.low.tolist()
    tr = [math.nan] + [max(h[i] - l[i], abs(h[i] - c[i - 1]), abs(l[i] - c[i - 1])) for i in range(1, len(c))]
    np.testing.assert_allclose(ind.atr(df.high, df.low, df.close).to_numpy(), ref_ema(tr, 14, 1 / 14),
                               rtol=1e-12, equal_nan=True)
    mid = [math.nan] * 19 + [sum(c[i - 19:i + 1]) / 20 for i in range(19, len(c))]
    sd = [math.nan] * 19 + [math.sqrt(sum((x - mid[i]) ** 2 for x in c[i - 19:i + 1]) / 20) for i in range(19, len(c))]
    up, m, lo = ind.bollinger(df.close)
    np.testing.assert_allclose(m.to_numpy(), mid, rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(up.to_numpy(), np.array(mid) + 2 * np.array(sd), rtol=1e-12, equal_nan=True)
    e12, e26 = ref_ema(c, 12), ref_ema(c, 26)
    line = [a - b for a, b in zip(e12, e26)]
    np.testing.assert_allclose(ind.macd(df.close)[1].to_numpy(), ref_ema(line, 9), rtol=1e-10, equal_nan=True)


def test_indicator_state_matches_vectorized():
    df = make_candles(400, seed=5, freq="15min")
    st = ind.IndicatorState()
    t = (df.index.as_unit("ms").asi8)
    for i in range(len(df)):
        r = df.iloc[i]
        last = st.push(int(t[i]), r.open, r.high, r.low, r.close, r.volume)
    up, mid, lo = ind.bollinger(df.close)
    k, d, j = ind.kdj(df.high, df.low, df.close)
    expect = {"rsi": ind.rsi(df.close).iloc[-1], "macd_hist": ind.macd(df.close)[2].iloc[-1],
              "atr": ind.atr(df.high, df.low, df.close).iloc[-1], "ema_slow": ind.ema(df.close, 50).iloc[-1],
              "bb_upper": up.iloc[-1], "k": k.iloc[-1], "j": j.iloc[-1],
              "vwap": ind.vwap(df.high, df.low, df.close, df.volume).iloc[-1]}
    for key, v in expect.items():
        assert last[key] == pytest.approx(v, rel=1e-12), key


def test_bad_input_names_field():
    with pytest.raises(ValueError, match="period"):
        ind.ema([1.0, 2.0], 0)
    with pytest.raises(ValueError, match="fast"):
        ind.macd([1.0] * 40, fast=26, slow=12)
    with pytest.raises(ValueError, match="same length"):
        ind.atr([1.0, 2.0], [1.0], [1.0, 2.0])
    assert np.isnan(ind.rsi(np.arange(5.0))).all()   # shorter than warm-up: all NaN, no error


# ------------------------------------------------------------------ last values only
def _vector_last(t, h, l, c, v):
    """The reference: the last elements of the vector functions."""
    line, sg, hist = ind.macd(c)
    up, mid, lo = ind.bollinger(c)
    k, d, j = ind.kdj(h, l, c)
    n = len(c)
    return {"rsi": ind.rsi(c)[-1], "macd": line[-1], "macd_signal": sg[-1], "macd_hist": hist[-1],
            "bb_upper": up[-1], "bb_middle": mid[-1], "bb_lower": lo[-1], "atr": ind.atr(h, l, c)[-1],
            "ema_fast": ind.ema(c, 20)[-1], "ema_slow": ind.ema(c, 50)[-1], "k": k[-1], "d": d[-1],
            "j": j[-1], "vwap": ind.vwap(h, l, c, v, t)[-1],
            "hist_prev1": hist[-2] if n >= 2 else math.nan, "hist_prev2": hist[-3] if n >= 3 else math.nan}


def _bit_equal(a: dict, b: dict) -> list[str]:
    return [k for k in b if not (a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])))
            or type(a[k]) is not float]


@pytest.mark.parametrize("n", [1, 2, 3, 9, 14, 15, 16, 20, 21, 26, 33, 34, 35, 36, 50, 51, 500])
def test_latest_is_bit_equal_to_the_vector_functions(n):
    """`latest` (the analysis snapshot's fast path) must give exactly the floats the vector
    functions end with, at every warm-up boundary: the decisions and the stored thought
    chains must not change by a bit."""
    df = make_candles(n, seed=n, start="2024-01-01 17:30")       # crosses a UTC midnight
    t = df.index.as_unit("ms").asi8
    h, l, c, v = (df[k].to_numpy() for k in ("high", "low", "close", "volume"))
    assert _bit_equal(ind.latest(t, h, l, c, v), _vector_last(t, h, l, c, v)) == []


def test_latest_flat_and_rounded_prices_hit_the_zero_branches():
    # a flat window: RSI's no-change branch (50), KDJ's zero-range branch, zero Bollinger width
    n = 120
    t = np.arange(n, dtype=np.int64) * 60_000
    c = np.full(n, 2.5)
    assert _bit_equal(ind.latest(t, c, c, c, np.ones(n)), _vector_last(t, c, c, c, np.ones(n))) == []
    df = make_candles(300, seed=3, price=0.5)
    r = df.round(3)                                              # tick-rounded: many zero changes
    t = df.index.as_unit("ms").asi8
    h, l, c, v = (r[k].to_numpy() for k in ("high", "low", "close", "volume"))
    up = c.copy()
    up[100:] = np.maximum.accumulate(c[100:]) + 1                # only gains: RSI's 100 branch
    for cc in (c, up):
        hh, ll = np.maximum(h, cc), np.minimum(l, cc)
        assert _bit_equal(ind.latest(t, hh, ll, cc, v), _vector_last(t, hh, ll, cc, v)) == []


def test_latest_declines_nan_input():
    c = make_candles(60)["close"].to_numpy().copy()
    c[10] = np.nan
    t = np.arange(60, dtype=np.int64) * 60_000
    assert ind.latest(t, c, c, c, np.ones(60)) is None


def test_latest_on_real_minutes(shared_data_dir):
    """500-minute windows of a real month, as an entry's perception reads them."""
    from rl.backtest.data import load_backtest_data
    data = load_backtest_data([shared_data_dir], "FILUSDT", "2023-11-01", "2023-11-03")
    f = data.frame
    t = f.index.as_unit("ms").asi8
    cols = [f[k].to_numpy() for k in ("high", "low", "close", "volume")]
    for end in range(500, len(f), 997):
        args = (t[end - 500:end], *(x[end - 500:end] for x in cols))
        assert _bit_equal(ind.latest(*args), _vector_last(*args)) == [], end
