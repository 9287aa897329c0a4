"""Entry scores: component rules, bounds, and the mirror property (generated and real data)."""
import pandas as pd
import pytest

from rl.analysis import signals as sig
from rl.analysis.analyzer import analyze
from rl.strategy.params import ComponentPoints, ScoreParams
from tests.support.archives import read_archive
from tests.support.candles import aggregate, make_candles
from tests.support.paths import shared_kline_files


def mirror(frames, K):
    out = {}
    for tf, df in frames.items():
        out[tf] = pd.DataFrame({"open": K - df.open, "high": K - df.low, "low": K - df.high,
                                "close": K - df.close, "volume": df.volume}, index=df.index)
    return out


def assert_mirrored(frames, price, K):
    a = analyze("T", frames, price, 0)
    b = analyze("T", mirror(frames, K), K - price, 0)
    assert a.long_score == pytest.approx(b.short_score, abs=1e-6)
    assert a.short_score == pytest.approx(b.long_score, abs=1e-6)
    for comp in sig.COMPONENTS:
        assert a.long_breakdown[comp]["points"] == pytest.approx(b.short_breakdown[comp]["points"], abs=1e-6), comp
    for s in (a.long_score, a.short_score):
        assert 0.0 <= s <= 100.0
    return a


def generated_m1(seed, n=8 * 24 * 60 * 3):
    return make_candles(n, seed=seed, price=100.0, vol=0.0012)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_mirror_symmetry_generated(seed):
    m1 = generated_m1(seed)
    for cut_i in (len(m1) // 2, len(m1) - 7):
        cut = m1.index[cut_i]
        frames = aggregate(m1, cut)
        price = float(m1.close.iloc[cut_i - 1]) * 1.001
        assert_mirrored(frames, price, K=2 * float(m1.high.max()) + 1)


@pytest.mark.shared_data
@pytest.mark.parametrize("symbol", ["FILUSDT", "NEARUSDT", "AVAXUSDT"])
def test_mirror_symmetry_real_data(shared_data_dir, symbol):
    files = shared_kline_files(symbol)
    if not files:
        pytest.skip(f"no archive files for {symbol}")
    m1 = read_archive(files[0])
    K = 2 * float(m1.high.max())
    for frac in (0.5, 0.97):
        i = int(len(m1) * frac)
        frames = aggregate(m1, m1.index[i])
        a = assert_mirrored(frames, float(m1.close.iloc[i - 1]), K)
        assert any("1w" in n for n in a.notes)      # a month holds few weekly candles: said, not raised


def test_component_rules_rsi_bollinger_volume():
    notes = []
    lo, sh = sig.rsi_component({"rsi": 30.0}, notes)
    assert lo["points"] == 15 and sh["points"] == 0
    lo, sh = sig.rsi_component({"rsi": 60.0}, notes)
    assert lo["points"] == 0 and sh["points"] == pytest.approx(7.5)
    s = {"bb_upper": 110.0, "bb_lower": 90.0}
    assert sig.bollinger_component(s, 90.0, notes)[0]["points"] == 15
    assert sig.bollinger_component(s, 100.0, notes)[0]["points"] == 0
    assert sig.bollinger_component(s, 105.0, notes)[1]["points"] == pytest.approx(7.5)
    v = {"vol_avg": 10.0, "volume": 20.0, "close": 101.0, "open": 100.0}
    lo, sh = sig.volume_component(v, notes)
    assert lo["points"] == 5 and sh["points"] == 0
    assert notes == []


def test_macd_tiers_and_symmetry():
    assert sig.macd_points(0.5, -0.1, -0.3, 1)[0] == 20       # fresh golden cross
    assert sig.macd_points(-0.5, 0.1, 0.3, -1)[0] == 20       # fresh death cross
    assert sig.macd_points(0.5, 0.3, 0.1, 1)[0] == 14
    assert sig.macd_points(0.5, 0.7, 0.9, 1)[0] == 8
    assert sig.macd_points(-0.5, -0.7, -0.9, 1)[0] == 4
    assert sig.macd_points(-0.5, -0.3, -0.1, 1)[0] == 0
    for h in [(0.2, -0.1, 0.3), (0.0, 0.1, -0.2), (-1.0, -2.0, float("nan"))]:
        assert sig.macd_points(*h, 1)[0] == sig.macd_points(*(-x for x in h), -1)[0]


def test_trend_uses_what_exists():
    notes = []
    snaps = {"8h": {"atr": 2.0, "ema_fast": 104.0, "ema_slow": 100.0, "close": 105.0, "bars": 200},
             "1w": {"atr": 10.0, "ema_fast": 90.0, "ema_slow": float("nan"), "close": 95.0, "bars": 30}}
    lo, sh = sig.trend_component(snaps, notes)
    # 8h: +1 (clipped), 1w: (95-90)/10 = +0.5 -> 0.6*1 + 0.4*0.5 = 0.8
    assert lo["points"] == pytest.approx(20.0) and sh["points"] == 0
    assert any("1w" in n and "EMA50" in n for n in notes)
    notes = []
    lo, sh = sig.trend_component({}, notes)
    assert lo["points"] == sh["points"] == 0 and len(notes) == 2


def test_component_numbers_come_from_score_params():
    """Each rule scores by its ScoreParams: the maxima, where RSI and volume give full points,
    the MACD tiers and the trend timeframes' shares."""
    p = ScoreParams(points=ComponentPoints(rsi=30.0, volume=10.0, macd=40.0, trend=50.0), rsi_full=10.0,
                    volume_full=2.0, macd_expanding=30.0, trend_weight_8h=1.0, trend_weight_1w=1.0)
    notes = []
    lo, _ = sig.rsi_component({"rsi": 40.0}, notes, p)
    assert (lo["points"], lo["max"]) == (30.0, 30.0)                     # 10 below 50 is full now
    v = {"vol_avg": 10.0, "volume": 20.0, "close": 101.0, "open": 100.0}
    assert sig.volume_component(v, notes, p)[0]["points"] == pytest.approx(5.0)   # 2x is half of 3x
    assert sig.macd_points(0.5, -0.1, -0.3, 1, p)[0] == 40.0
    assert sig.macd_points(0.5, 0.3, 0.1, 1, p)[0] == 30.0
    snaps = {"8h": {"atr": 2.0, "ema_fast": 104.0, "ema_slow": 100.0, "close": 105.0, "bars": 200},
             "1w": {"atr": 10.0, "ema_fast": 90.0, "ema_slow": float("nan"), "close": 95.0, "bars": 30}}
    assert sig.trend_component(snaps, notes, p)[0]["points"] == pytest.approx(50.0 * 0.75)   # (1 + 0.5) / 2


def test_analysis_scores_by_its_params():
    """analyze() with other score params gives other points (and says so in each breakdown's
    max); with the default params it is the default analysis."""
    m1 = generated_m1(1)
    frames = aggregate(m1, m1.index[-7])
    price = float(m1.close.iloc[-8])
    base = analyze("T", frames, price, 0)
    assert analyze("T", frames, price, 0, score_params=ScoreParams()).to_dict() == base.to_dict()
    d = ScoreParams()
    doubled = ScoreParams(points=ComponentPoints(**{c: 2 * base.long_breakdown[c]["max"] for c in sig.COMPONENTS}),
                          macd_expanding=2 * d.macd_expanding, macd_on_side=2 * d.macd_on_side,
                          macd_converging=2 * d.macd_converging)
    a = analyze("T", frames, price, 0, score_params=doubled)
    for side in ("long_breakdown", "short_breakdown"):
        got, want = getattr(a, side), getattr(base, side)
        for c in sig.COMPONENTS:
            assert got[c]["max"] == 2 * want[c]["max"]
            assert got[c]["points"] == pytest.approx(2 * want[c]["points"])
    assert a.short_score == pytest.approx(2 * base.short_score)     # (35.7: under the 100 cap)
