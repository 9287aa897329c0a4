"""The trade filter's inputs: what is known at an entry decision, as one flat dict of floats.

Everything is read from the decision's own analysis (closed candles only), so a feature can
never hold the future. Side-relative where a linear model needs it: the entry components are
the chosen side's (points / max, 0..1) and the trends are signed toward the trade (+1: the
trend runs our way), because a linear regression cannot form the product trend x side itself.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

COMPONENTS = ("trend", "level", "rsi", "macd", "bollinger", "volume")
LEVEL_FEATURES = ("volume_density", "touch_bounce_count", "bounce_magnitude",
                  "failed_breakout_count", "duration_days", "multi_tf_confirm")
# model order; a change of this list (names or order) starts a stored model afresh
FILTER_FEATURES: tuple[str, ...] = (
    *(f"score_{c}" for c in COMPONENTS), *(f"level_{f}" for f in LEVEL_FEATURES),
    "atr_pct", "trend_8h", "trend_1w", "hour_sin", "hour_cos", "side")

_DAY_MS = 86_400_000


def _finite(v: object, default: float = 0.0) -> float:
    try:
        x = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default
    return x if math.isfinite(x) else default


def entry_features(*, side: str, breakdown: Mapping[str, Mapping], level_features: Mapping[str, float],
                   atr: float, price: float, trend_8h: float | None, trend_1w: float | None,
                   time_ms: int) -> dict[str, float]:
    """The filter's features of an entry on `side` ("LONG"/"SHORT"): the side's six entry
    components as a share of their maximum, the chosen level's six features, ATR(15m) as a
    percentage of price, the 8h and 1w trend directions (-1..1) signed toward the trade (0
    when undefined), the UTC hour of day on the unit circle and the side (+1 long, -1 short).
    Missing or non-finite inputs count as 0, so the vector is always finite."""
    sign = 1.0 if side == "LONG" else -1.0
    out: dict[str, float] = {}
    for c in COMPONENTS:
        part = breakdown.get(c) or {}
        m = _finite(part.get("max"))
        out[f"score_{c}"] = _finite(part.get("points")) / m if m > 0 else 0.0
    for f in LEVEL_FEATURES:
        out[f"level_{f}"] = _finite(level_features.get(f))
    p = _finite(price)
    out["atr_pct"] = 100.0 * _finite(atr) / p if p > 0 else 0.0
    out["trend_8h"] = sign * _finite(trend_8h)
    out["trend_1w"] = sign * _finite(trend_1w)
    angle = 2.0 * math.pi * ((int(time_ms) % _DAY_MS) / _DAY_MS)
    out["hour_sin"] = math.sin(angle)
    out["hour_cos"] = math.cos(angle)
    out["side"] = sign
    return out
