"""Entry scores: long and short points out of 100 from the six confirmations of design 3.3.

trend 25 (1w + 8h direction), level 25 (best level score x proximity), RSI 15, MACD 20,
Bollinger 15, volume 5: `ScoreParams`' defaults (every rule scores by the params it is
given). Oscillators are read on closed 15m candles (the trading timeframe); only the level
and Bollinger components compare the *current* price with a level or band. Every rule is
written for a direction d (+1 long, -1 short) on signed quantities, which is what makes the
mirror property hold: flip the chart and the long and short scores swap. Missing data
scores 0 for that component and says so; nothing raises.
"""
from __future__ import annotations

from typing import Any, TypeGuard

from rl.strategy.params import ScoreParams

COMPONENTS = ("trend", "level", "rsi", "macd", "bollinger", "volume")   # a breakdown's order
TREND_TFS = ("8h", "1w")     # the timeframes a trend direction is read on
_DEFAULT = ScoreParams()     # the rules' default params (frozen, so one instance serves all)


def _ok(x: Any) -> TypeGuard[float]:
    """A number, not None nor NaN (a snapshot's value where its indicator is defined)."""
    return x is not None and x == x


def _clip01(x: float) -> float:
    return 0.0 if x < 0 else 1.0 if x > 1 else x


def _pair(long_pts: float, short_pts: float, m: float, reason_long: str, reason_short: str | None = None):
    """The long and short entries of one component worth at most `m` points."""
    return ({"points": round(long_pts, 6), "max": m, "reason": reason_long},
            {"points": round(short_pts, 6), "max": m, "reason": reason_short or reason_long})


def trend_direction(snap: dict | None, tf: str, notes: list[str]) -> float | None:
    """-1..+1: (EMA20 - EMA50) / ATR, clipped; with < 50 candles (close - EMA20) / ATR."""
    n = int(snap.get("bars", 0)) if snap else 0
    if not snap or not _ok(snap.get("atr")) or snap["atr"] <= 0:
        notes.append(f"{tf}: only {n} closed candles, no trend direction")
        return None
    if _ok(snap.get("ema_slow")) and _ok(snap.get("ema_fast")):
        return max(-1.0, min(1.0, (snap["ema_fast"] - snap["ema_slow"]) / snap["atr"]))
    if _ok(snap.get("ema_fast")):
        notes.append(f"{tf}: only {n} closed candles, EMA50 undefined; trend from close vs EMA20")
        return max(-1.0, min(1.0, (snap["close"] - snap["ema_fast"]) / snap["atr"]))
    notes.append(f"{tf}: only {n} closed candles, no trend direction")
    return None


def trend_component(snaps: dict[str, dict], notes: list[str], params: ScoreParams = _DEFAULT):
    weights = {"8h": params.trend_weight_8h, "1w": params.trend_weight_1w}
    dirs = {tf: trend_direction(snaps.get(tf), tf, notes) for tf in TREND_TFS}
    have = {tf: d for tf, d in dirs.items() if d is not None}
    m = params.points.trend
    if not have:
        return _pair(0.0, 0.0, m, "no timeframe has enough candles for a trend")
    wsum = sum(weights[tf] for tf in have)
    comb = sum(weights[tf] * d for tf, d in have.items()) / wsum
    if len(have) == 1:
        notes.append(f"trend uses {next(iter(have))} only")
    desc = ", ".join(f"{tf} {d:+.2f}" for tf, d in have.items())
    return _pair(m * max(0.0, comb), m * max(0.0, -comb), m, f"direction {comb:+.2f} ({desc})")


def _has_levels(book, notes: list[str]) -> bool:
    """Whether the book holds any level; notes when it does not."""
    if book is None or not book.size:
        notes.append("levels: none found")
        return False
    return True


def _level_side(book, x, price: float, m: float) -> tuple[float, float]:
    """(points, proximity) of one side's best level, worth at most `m` points."""
    prox = book.proximity(x, price)
    return m * x.score / 100.0 * prox, prox


def level_component(book, best_support, best_resistance, price: float, notes: list[str],
                    params: ScoreParams = _DEFAULT):
    m = params.points.level

    def side(x, word: str) -> tuple[float, str]:
        if x is None:
            return 0.0, f"no {word} on this side of price"
        pts, prox = _level_side(book, x, price, m)
        dist = abs(price - x.price) / book.atr if book.atr == book.atr and book.atr > 0 else float("nan")
        return (pts, f"{word} {x.price:.6g} (score {x.score:.0f}, {x.timeframe}) {dist:.2f} ATR away, "
                     f"proximity {prox:.2f}")
    if not _has_levels(book, notes):
        return _pair(0.0, 0.0, m, "no levels found")
    lp, lr = side(best_support, "support")
    sp, sr = side(best_resistance, "resistance")
    return _pair(lp, sp, m, lr, sr)


def rsi_component(s: dict | None, notes: list[str], params: ScoreParams = _DEFAULT):
    r = s.get("rsi") if s else None
    m = params.points.rsi
    if not _ok(r):
        notes.append("15m: RSI needs 15 closed candles; RSI scores 0")
        return _pair(0.0, 0.0, m, "RSI undefined (short history)")
    full = params.rsi_full
    return _pair(m * _clip01((50.0 - r) / full), m * _clip01((r - 50.0) / full), m,
                 f"RSI(14) 15m = {r:.1f}")


def macd_points(h0: float, h1: float, h2: float, d: int,
                params: ScoreParams = _DEFAULT) -> tuple[float, str]:
    """Tiers for direction d on the 15m histogram (h0 latest closed, h1, h2 before)."""
    a0, a1, a2 = d * h0, (d * h1 if _ok(h1) else float("nan")), (d * h2 if _ok(h2) else float("nan"))
    if (a1 <= 0 < a0) or (a2 <= 0 < a1 and a0 > 0):
        return params.points.macd, "fresh " + ("golden" if d > 0 else "death") + " cross (last 2 candles)"
    if a0 > 0 and a0 > a1:
        return params.macd_expanding, "histogram on our side and expanding"
    if a0 > 0:
        return params.macd_on_side, "histogram on our side"
    if a0 > a1:
        return params.macd_converging, "histogram against us but converging"
    return 0.0, "histogram against us"


def macd_component(s: dict | None, notes: list[str], params: ScoreParams = _DEFAULT):
    m = params.points.macd
    if not s or not _ok(h0 := s.get("macd_hist")):
        notes.append("15m: MACD needs 34 closed candles; MACD scores 0")
        return _pair(0.0, 0.0, m, "MACD undefined (short history)")
    h1, h2 = s.get("hist_prev1", float("nan")), s.get("hist_prev2", float("nan"))
    lp, lr = macd_points(h0, h1, h2, 1, params)
    sp, sr = macd_points(h0, h1, h2, -1, params)
    return _pair(lp, sp, m, f"{lr}; hist {h0:.6g}", f"{sr}; hist {h0:.6g}")


def _percent_b(s: dict | None, price: float) -> float | None:
    """%B of price in the 15m bands, None when they are undefined or zero width."""
    up, lo = (s.get("bb_upper"), s.get("bb_lower")) if s else (None, None)
    if not (_ok(up) and _ok(lo)) or up - lo <= 0:
        return None
    return (price - lo) / (up - lo)


def _noted_percent_b(s: dict | None, price: float, notes: list[str]) -> float | None:
    """`_percent_b`, noting when the bands cannot score."""
    pb = _percent_b(s, price)
    if pb is None:
        notes.append("15m: Bollinger bands undefined or zero width; Bollinger scores 0")
    return pb


def _bollinger_points(pb: float, m: float) -> tuple[float, float]:
    return m * _clip01((0.5 - pb) / 0.5), m * _clip01((pb - 0.5) / 0.5)


def bollinger_component(s: dict | None, price: float, notes: list[str],
                        params: ScoreParams = _DEFAULT):
    pb = _noted_percent_b(s, price, notes)
    m = params.points.bollinger
    if pb is None:
        return _pair(0.0, 0.0, m, "bands undefined")
    assert s is not None                     # pb is None without the snapshot
    up, lo = s["bb_upper"], s["bb_lower"]
    return _pair(*_bollinger_points(pb, m), m,
                 f"%B = {pb:.2f} (price {price:.6g}, bands {lo:.6g}..{up:.6g})")


def volume_component(s: dict | None, notes: list[str], params: ScoreParams = _DEFAULT):
    m = params.points.volume
    if not s or not _ok(avg := s.get("vol_avg")) or avg <= 0:
        notes.append("15m: volume needs 21 closed candles; volume scores 0")
        return _pair(0.0, 0.0, m, "volume average undefined")
    r = s["volume"] / avg
    pts = m * _clip01((r - 1.0) / params.volume_full)
    body = s["close"] - s["open"]
    candle = "up" if body > 0 else "down" if body < 0 else "flat"
    why = f"last 15m volume {r:.2f}x its 20-candle average, candle {candle}"
    return _pair(pts if body > 0 else 0.0, pts if body < 0 else 0.0, m, why)


def static_components(snaps: dict[str, dict], notes: list[str], params: ScoreParams,
                      trend: tuple[tuple, list[str]] | None = None) -> tuple[dict, dict]:
    """The components that do not depend on the live price (cached between candle closes).
    `trend`: (trend_component's result, the notes it added) from an earlier call on the same
    8h and 1w snapshots and params (the trend reads nothing else), reused instead of recomputed."""
    s15 = snaps.get("15m")
    if trend is None:
        tr = trend_component(snaps, notes, params)
    else:
        tr = trend[0]
        notes.extend(trend[1])
    parts = {"trend": tr, "rsi": rsi_component(s15, notes, params),
             "macd": macd_component(s15, notes, params), "volume": volume_component(s15, notes, params)}
    return {k: v[0] for k, v in parts.items()}, {k: v[1] for k, v in parts.items()}


def price_components(snaps: dict[str, dict], book, best_support, best_resistance, price: float,
                     notes: list[str], params: ScoreParams) -> tuple[dict, dict]:
    """The components comparing the live price with a level or a band."""
    lvl = level_component(book, best_support, best_resistance, price, notes, params)
    bb = bollinger_component(snaps.get("15m"), price, notes, params)
    return {"level": lvl[0], "bollinger": bb[0]}, {"level": lvl[1], "bollinger": bb[1]}


def total(breakdown: dict[str, dict]) -> float:
    return round(min(100.0, max(0.0, sum(c["points"] for c in breakdown.values()))), 6)


def price_scores(snaps: dict[str, dict], book, best_support, best_resistance, price: float,
                 static: tuple[dict, dict], notes: list[str], params: ScoreParams) -> tuple[float, float]:
    """(long score, short score) = `total` of the breakdowns `price_components` and `static`
    make, to the bit, without formatting a reason: a backtest rescores at every 15m close
    and reads the reasons only at an entry. Adds the notes `price_components` adds."""
    lp = sp = 0.0
    if _has_levels(book, notes):
        m = params.points.level
        lp = _level_side(book, best_support, price, m)[0] if best_support is not None else 0.0
        sp = _level_side(book, best_resistance, price, m)[0] if best_resistance is not None else 0.0
    pb = _noted_percent_b(snaps.get("15m"), price, notes)
    bl, bs = (0.0, 0.0) if pb is None else _bollinger_points(pb, params.points.bollinger)
    return _total_with(static[0], lp, bl), _total_with(static[1], sp, bs)


def _total_with(static_side: dict, level: float, bollinger: float) -> float:
    """`total` of static_side plus the level and Bollinger points (rounded as `_pair` does),
    added in COMPONENTS order, left to right, as `total`'s sum adds a breakdown."""
    s = static_side
    pts = (((((s["trend"]["points"] + round(level, 6)) + s["rsi"]["points"]) + s["macd"]["points"])
            + round(bollinger, 6)) + s["volume"]["points"])
    return round(min(100.0, max(0.0, pts)), 6)


assert COMPONENTS == ("trend", "level", "rsi", "macd", "bollinger", "volume")   # _total_with's order
