"""rl.market.ports: the replay port shows nothing from the future; the live port maps failures."""
from __future__ import annotations

import pandas as pd
import pytest
import requests
import responses

import client as binance
from rl.clock import ManualClock
from rl.errors import BinanceError, MarketUnavailable
from rl.market.archive import load_symbols
from rl.market.candles import COLUMNS, normalize_frame, resample
from rl.market.ports import LiveMarketData, MarketDataPort, ReplayMarketData
from tests.support.candles import make_candles

MIN = 60_000
KLINES_URL = "https://fapi.binance.com/fapi/v1/klines"
PRICE_URL = "https://fapi.binance.com/fapi/v2/ticker/price"


def ms(text: str) -> int:
    return int(pd.Timestamp(text, tz="UTC").value // 1_000_000)


@pytest.fixture
def frame() -> pd.DataFrame:
    # Sat 2024-01-06 00:00 .. Tue 2024-01-09 ~00:00: crosses 8h opens and Monday 00:00.
    return normalize_frame(make_candles(4 * 24 * 60, start="2024-01-06", seed=3))


def replay_at(frame: pd.DataFrame, when: str | int) -> ReplayMarketData:
    clock = ManualClock(ms(when) if isinstance(when, str) else when)
    return ReplayMarketData({"BTCUSDT": frame}, clock)


# --------------------------------------------------------------------------- replay

def test_replay_1m_shows_closed_bars_plus_open_only_forming_bar(frame):
    now = ms("2024-01-08 00:07:30")
    rep = replay_at(frame, now)
    df = rep.klines("BTCUSDT", "1m", limit=5)
    assert len(df) == 5 and list(df.columns) == list(COLUMNS)
    assert df.index[-1] == pd.Timestamp("2024-01-08 00:07", tz="UTC")
    forming = df.iloc[-1]
    bar = frame.loc[pd.Timestamp("2024-01-08 00:07", tz="UTC")]
    assert forming["open"] == forming["high"] == forming["low"] == forming["close"] == bar["open"]
    assert forming["volume"] == 0 and forming["trades"] == 0
    assert forming["close_time"] == ms("2024-01-08 00:08") - 1
    pd.testing.assert_frame_equal(df.iloc[:-1], frame.loc["2024-01-08 00:03":"2024-01-08 00:06"],
                                  check_freq=False)
    assert rep.last_price("BTCUSDT") == frame.loc[pd.Timestamp("2024-01-08 00:06", tz="UTC"), "close"]
    assert rep.now_ms() == now and not rep.finished
    assert isinstance(rep, MarketDataPort)


@pytest.mark.parametrize("interval", ["1m", "15m", "8h", "1w", "1h", "1d"])
@pytest.mark.parametrize("when", ["2024-01-08 00:00", "2024-01-08 00:07:30", "2024-01-07 16:14:59.999",
                                  "2024-01-07 21:33:01"])
def test_replay_shows_no_future_data(frame, interval, when):
    """Change everything from the forming bar's high/close onwards: nothing visible may move."""
    now = ms(when)
    future = frame.copy()
    from_forming = future.index >= pd.Timestamp(now - now % MIN, unit="ms", tz="UTC")
    later = future.index > pd.Timestamp(now, unit="ms", tz="UTC")
    for col in ("high", "close", "volume", "quote_volume", "taker_buy_volume", "trades"):
        future.loc[from_forming, col] = future.loc[from_forming, col] * 3 + 1000
    future.loc[from_forming, "low"] = 1.0
    future.loc[later, "open"] = 2.0
    a = replay_at(frame, now).klines("BTCUSDT", interval, limit=1500)
    b = replay_at(future, now).klines("BTCUSDT", interval, limit=1500)
    pd.testing.assert_frame_equal(a, b)
    assert a.index[-1] <= pd.Timestamp(now, unit="ms", tz="UTC")
    assert replay_at(frame, now).last_price("BTCUSDT") == replay_at(future, now).last_price("BTCUSDT")


@pytest.mark.parametrize("interval", ["15m", "8h", "1w"])
def test_replay_higher_timeframes_are_resampled_visible_1m(frame, interval):
    now = ms("2024-01-08 09:41:10")
    rep = replay_at(frame, now)
    visible = rep.klines("BTCUSDT", "1m", limit=1500)
    all_visible = pd.concat([frame[frame["close_time"] < now], visible.iloc[-1:]])
    expected = resample(all_visible, interval, now_ms=now)
    got = rep.klines("BTCUSDT", interval, limit=1500)
    pd.testing.assert_frame_equal(got, expected, check_freq=False)


def test_replay_forming_higher_candles_by_hand(frame):
    now = ms("2024-01-08 08:02:30")             # 8h bucket opened 08:00; week opened Monday 00:00
    rep = replay_at(frame, now)
    closed = frame.loc["2024-01-08 08:00":"2024-01-08 08:01"]
    forming_open = frame.loc[pd.Timestamp("2024-01-08 08:02", tz="UTC"), "open"]
    h8 = rep.klines("BTCUSDT", "8h", limit=3)
    assert list(h8.index) == [pd.Timestamp(t, tz="UTC") for t in
                              ("2024-01-07 16:00", "2024-01-08 00:00", "2024-01-08 08:00")]
    last = h8.iloc[-1]
    assert last["open"] == closed["open"].iloc[0]
    assert last["high"] == max(closed["high"].max(), forming_open)
    assert last["low"] == min(closed["low"].min(), forming_open)
    assert last["close"] == forming_open and last["volume"] == pytest.approx(closed["volume"].sum())
    assert last["close_time"] == ms("2024-01-08 16:00") - 1
    prev = frame.loc["2024-01-08 00:00":"2024-01-08 07:59"]
    assert h8.iloc[-2]["high"] == prev["high"].max() and h8.iloc[-2]["close"] == prev["close"].iloc[-1]

    w = rep.klines("BTCUSDT", "1w", limit=10)
    assert list(w.index) == [pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-01-08", tz="UTC")]
    assert w.iloc[0]["open"] == frame["open"].iloc[0]                 # data starts Saturday
    assert w.iloc[0]["close"] == frame.loc[pd.Timestamp("2024-01-07 23:59", tz="UTC"), "close"]
    assert w.iloc[1]["high"] == max(frame.loc["2024-01-08 00:00":"2024-01-08 08:01", "high"].max(),
                                    forming_open)

    at_boundary = replay_at(frame, "2024-01-08 08:00").klines("BTCUSDT", "8h", limit=2).iloc[-1]
    o = frame.loc[pd.Timestamp("2024-01-08 08:00", tz="UTC"), "open"]
    assert at_boundary["open"] == at_boundary["high"] == at_boundary["close"] == o
    assert at_boundary["volume"] == 0


def test_replay_limits_and_errors(frame):
    rep = replay_at(frame, "2024-01-08 12:00")
    assert len(rep.klines("BTCUSDT", "1m", limit=1)) == 1
    assert len(rep.klines("BTCUSDT", "15m", limit=100)) == 100
    assert len(rep.klines("BTCUSDT", "15m", limit=500)) == 2 * 96 + 48 + 1   # all there is
    assert len(rep.klines("BTCUSDT", "8h", limit=500)) == 8       # all there is (+ forming)
    with pytest.raises(ValueError, match="limit=0 is invalid"):
        rep.klines("BTCUSDT", "1m", limit=0)
    with pytest.raises(ValueError, match="limit=1501 is invalid"):
        rep.klines("BTCUSDT", "1m", limit=1501)
    with pytest.raises(ValueError, match="interval='1x' is invalid"):
        rep.klines("BTCUSDT", "1x")
    with pytest.raises(ValueError, match="symbol='ETHUSDT' is invalid.*BTCUSDT"):
        rep.klines("ETHUSDT", "1m")
    with pytest.raises(ValueError, match="strictly increasing"):
        ReplayMarketData({"X": frame.iloc[::-1]}, ManualClock(0))
    with pytest.raises(ValueError, match="whole minutes"):
        ReplayMarketData({"X": make_candles(5, freq="30s")}, ManualClock(0))


def test_replay_before_start_and_after_end(frame):
    before = replay_at(frame, ms("2024-01-06") - 1)
    with pytest.raises(MarketUnavailable, match="before the archive data for BTCUSDT starts"):
        before.klines("BTCUSDT", "1m")
    with pytest.raises(MarketUnavailable):
        before.last_price("BTCUSDT")
    first = replay_at(frame, "2024-01-06 00:00:10")
    assert first.last_price("BTCUSDT") == frame["open"].iloc[0]   # nothing closed yet
    assert len(first.klines("BTCUSDT", "1w")) == 1

    clock = ManualClock(int(frame["close_time"].iloc[-1]))
    rep = ReplayMarketData({"BTCUSDT": frame}, clock)
    assert not rep.finished and rep.end_ms == int(frame["close_time"].iloc[-1])
    clock.advance(0.001)
    assert rep.finished
    df = rep.klines("BTCUSDT", "1m", limit=3)
    pd.testing.assert_frame_equal(df, frame.iloc[-3:], check_freq=False)   # no partial bar
    assert rep.last_price("BTCUSDT") == frame["close"].iloc[-1]
    clock.advance(30 * 86400)
    assert rep.klines("BTCUSDT", "8h").index[-1] == frame.index[-1].floor("8h")


def test_replay_inside_a_data_gap_shows_last_bar_before_it(frame):
    holed = frame.drop(frame.loc["2024-01-07 10:00":"2024-01-07 10:29"].index)
    rep = replay_at(holed, "2024-01-07 10:12:00")
    df = rep.klines("BTCUSDT", "1m", limit=2)
    assert df.index[-1] == pd.Timestamp("2024-01-07 09:59", tz="UTC")
    assert df["volume"].iloc[-1] > 0                                    # a real closed bar
    m15 = rep.klines("BTCUSDT", "15m", limit=2)
    assert m15.index[-1] == pd.Timestamp("2024-01-07 09:45", tz="UTC")


@pytest.mark.shared_data
def test_replay_real_archive(shared_data_dir):
    clock = ManualClock(ms("2023-10-16 13:05:20"))
    data = load_symbols(shared_data_dir, ["FILUSDT", "NEARUSDT"], start="2023-09", end="2023-10")
    rep = ReplayMarketData({sym: d.frame for sym, d in data.items()}, clock)
    assert rep.symbols == ("FILUSDT", "NEARUSDT") and rep.start_ms == ms("2023-09-01")
    w = rep.klines("NEARUSDT", "1w", limit=500)
    assert w.index[-1] == pd.Timestamp("2023-10-16", tz="UTC")   # a Monday
    assert (w.index.day_of_week == 0).all()                      # weeks open on Monday 00:00
    assert w.index[0] == pd.Timestamp("2023-08-28", tz="UTC")    # the week holding Fri 09-01
    h8 = rep.klines("FILUSDT", "8h", limit=500)
    assert set(h8.index.hour) <= {0, 8, 16} and h8.index[-1] == pd.Timestamp("2023-10-16 08:00", tz="UTC")
    assert rep.klines("FILUSDT", "1m", limit=1).index[-1] == pd.Timestamp("2023-10-16 13:05", tz="UTC")


# --------------------------------------------------------------------------- live

def kline_row(open_ms: int, interval_ms: int = MIN, price: str = "43000.10") -> list:
    """One row exactly as /fapi/v1/klines sends it (numbers as strings, times as ints)."""
    return [open_ms, price, "43050.00", "42990.00", "43010.50", "12.345", open_ms + interval_ms - 1,
            "530882.1", 421, "6.1", "262300.5", "0"]


def make_live(clock: ManualClock | None = None) -> LiveMarketData:
    client = binance.BinanceClient(market_url="https://fapi.binance.com", sleep=lambda s: None)
    return LiveMarketData(client, clock=clock or ManualClock(ms("2024-01-10 12:00:30")))


@responses.activate
def test_live_klines_parsed_and_request_shaped():
    t0 = ms("2024-01-10 11:59")
    responses.get(KLINES_URL, json=[kline_row(t0), kline_row(t0 + MIN)])
    df = make_live().klines("BTCUSDT", "1m", limit=2)
    assert len(df) == 2 and df.index[-1] == pd.Timestamp("2024-01-10 12:00", tz="UTC")
    assert df["close"].iloc[-1] == 43010.5 and df["trades"].iloc[0] == 421
    q = responses.calls[0].request.url
    assert "symbol=BTCUSDT" in q and "interval=1m" in q and "limit=2" in q


@responses.activate
def test_live_caches_long_intervals_at_most_a_minute_and_never_across_a_candle():
    wk = 7 * 24 * 60 * MIN
    responses.get(KLINES_URL, json=[kline_row(ms("2024-01-01"), wk), kline_row(ms("2024-01-08"), wk)])
    clock = ManualClock(ms("2024-01-14 23:58:30"))
    live = make_live(clock)
    first = live.klines("BTCUSDT", "1w", limit=2)
    assert len(live.klines("BTCUSDT", "1w", limit=1)) == 1            # served from cache
    assert len(responses.calls) == 1
    first.loc[first.index[-1], "close"] = -1.0                         # callers get copies
    assert live.klines("BTCUSDT", "1w", limit=2)["close"].iloc[-1] == 43010.5
    live.klines("BTCUSDT", "1w", limit=5)                              # wants more: fetch
    assert len(responses.calls) == 2
    clock.advance(61)                                                  # a new week opened
    live.klines("BTCUSDT", "1w", limit=2)
    assert len(responses.calls) == 3
    live.klines("BTCUSDT", "1m", limit=2)
    live.klines("BTCUSDT", "1m", limit=2)                              # 1m never cached
    assert len(responses.calls) == 5


@responses.activate
def test_live_network_failure_becomes_market_unavailable():
    responses.get(KLINES_URL, body=requests.exceptions.ConnectionError("Name or service not known"))
    responses.get(PRICE_URL, body=requests.exceptions.ConnectionError("down"))
    live = make_live()
    with pytest.raises(MarketUnavailable) as err:
        live.klines("BTCUSDT", "15m")
    msg = str(err.value)
    assert "Binance (https://fapi.binance.com) is unreachable" in msg
    assert "python -m web.app --replay PATH" in msg
    with pytest.raises(MarketUnavailable, match="unreachable"):
        live.last_price("BTCUSDT")


@responses.activate
def test_live_binance_errors_pass_through_and_price():
    responses.get(KLINES_URL, status=400, json={"code": -1121, "msg": "Invalid symbol."})
    responses.get(PRICE_URL, json={"symbol": "BTCUSDT", "price": "6000.01", "time": 1589437530011})
    live = make_live()
    with pytest.raises(BinanceError) as err:
        live.klines("NOPEUSDT", "1m")
    assert err.value.code == -1121 and not isinstance(err.value, MarketUnavailable)
    assert live.last_price("BTCUSDT") == 6000.01
    assert live.now_ms() == ms("2024-01-10 12:00:30")
    assert isinstance(live, MarketDataPort)
    with pytest.raises(ValueError, match="interval='2m'"):
        live.klines("BTCUSDT", "2m")


@responses.activate
def test_live_rate_limit_becomes_market_unavailable():
    responses.get(KLINES_URL, status=429, headers={"Retry-After": "7"},
                  json={"code": -1003, "msg": "Too many requests."})
    with pytest.raises(MarketUnavailable, match="rate limit.*7 s"):
        make_live().klines("BTCUSDT", "1m")
