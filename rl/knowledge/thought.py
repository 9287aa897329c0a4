"""Thought chains (design §3.4): why the agent took a trade and what came of it, zh + en.

A chain has four parts: perception (what the agent saw: price, indicators per timeframe, the
chosen level and its six features, both scores with their breakdown, phase and threshold),
action (what it did: side, price, quantity, stop, target, leverage, order ids), reward (what it
got: realized PnL, R multiple, fees, and how the weights moved because of this trade) and a
one-sentence summary in Chinese and English. Built from plain dicts so it is JSON as-is and the
store can persist it in the same transaction as the trade. Pure functions, no I/O.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from collections.abc import Mapping as _AbcMapping
from typing import Any

from rl.execution.actions import EXIT_KIND_ZH
from rl.strategy.learning import FeatureEvidence, moved_features

PARTS = ("perception", "action", "reward", "summary")


def _num(x: Any) -> Any:
    """JSON-safe number: numpy scalars to float, NaN/inf to None."""
    if x is None or isinstance(x, (bool, str)):
        return x
    if hasattr(x, "item"):
        x = x.item()
    if isinstance(x, (int, float)):
        return x if isinstance(x, int) or math.isfinite(x) else None
    return x


_PLAIN = (str, int, bool, type(None))
_isfinite = math.isfinite
# types whose instances always take `_num` below (numpy scalars: no to_dict, not a mapping or
# sequence, no instance __dict__ that could add one), so the checks run once per type
_SCALAR_TYPES: set[type] = set()


def json_safe(obj: Any) -> Any:
    """Deep copy into JSON-safe primitives (to_dict() objects, numpy, tuples)."""
    t = type(obj)
    if t is float:          # fast paths, same result as below: an entry cleans ~180 values
        return obj if _isfinite(obj) else None
    if t in _PLAIN:
        return obj
    if t is dict:
        return _clean_dict(obj)
    if t in _SCALAR_TYPES:
        return _num(obj)
    # (collections.abc.Mapping: what typing.Mapping's isinstance check defers to, minus its
    # Python-level indirection)
    if hasattr(obj, "to_dict") and not isinstance(obj, _AbcMapping):
        obj = obj.to_dict()
        if type(obj) is dict:
            return _clean_dict(obj)
    elif not (hasattr(obj, "__dict__") or isinstance(obj, (_AbcMapping, list, tuple))):
        _SCALAR_TYPES.add(t)            # decided by its type alone: always `_num` from now on
    if isinstance(obj, _AbcMapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return _num(obj)


def _clean_dict(d: dict) -> dict:
    """`{str(k): json_safe(v) for k, v in d.items()}` with the scalar cases inlined (perceptions
    are mostly flat dicts of floats)."""
    out = {}
    for k, v in d.items():
        if type(k) is not str:
            k = str(k)
        t = type(v)
        if t is float:
            out[k] = v if _isfinite(v) else None
        elif t is str or t is int or t is bool or v is None:
            out[k] = v
        else:
            out[k] = json_safe(v)
    return out


def build_perception(*, symbol: str, time_ms: int, price: float, analysis: Mapping[str, Any] | Any,
                     level: Mapping[str, Any] | Any | None, phase: Mapping[str, Any],
                     decision: Mapping[str, Any] | None = None,
                     weights: Mapping[str, float] | None = None,
                     protections: Mapping[str, Any] | None = None) -> dict:
    """What the agent saw when it decided to enter.

    `analysis` is Analysis.to_dict() (or the object): its indicators per timeframe, long/short
    scores with breakdowns and notes are kept; `level` is the chosen ScoredLevel (its six
    features are what the learner later correlates with the outcome); `protections` what the
    risk protections said then (the active pauses and the one lifted last)."""
    a = json_safe(analysis) or {}
    lv = json_safe(level) if level is not None else None
    return {
        "symbol": symbol, "time_ms": int(time_ms), "price": _num(price),
        "indicators": a.get("indicators", {}),
        "atr_15m": a.get("atr_15m"),
        "level": lv,
        "features": (lv or {}).get("features", {}),
        "scores": {"long": a.get("long_score", a.get("long")), "short": a.get("short_score", a.get("short")),
                   "long_breakdown": a.get("long_breakdown", {}),
                   "short_breakdown": a.get("short_breakdown", {})},
        "notes": a.get("notes", []),
        "phase": json_safe(phase),
        "decision": json_safe(decision) if decision is not None else None,
        "weights": json_safe(weights) if weights is not None else None,
        "protections": json_safe(protections) if protections is not None else None,
    }


def build_action(*, side: str, price: float, quantity: float, stop: float | None, target: float | None,
                 leverage: int, order_ids: Sequence[str], stop_order_id: str | None = None,
                 risk_amount: float | None = None, fee: float | None = None,
                 reason_zh: str = "", reason_en: str = "") -> dict:
    """What the agent did: the filled entry and its protection."""
    return {"side": side, "price": _num(price), "quantity": _num(quantity), "stop": _num(stop),
            "target": _num(target), "leverage": int(leverage), "order_ids": list(order_ids),
            "stop_order_id": stop_order_id, "risk_amount": _num(risk_amount), "entry_fee": _num(fee),
            "reason_zh": reason_zh, "reason_en": reason_en}


def build_reward(*, realized_pnl: float, fees: float, r_multiple: float, exit_reason: str,
                 weight_change: Mapping[str, Any] | None = None, funding: float = 0.0,
                 **extra: Any) -> dict:
    """What came of it; `weight_change` is WeightUpdate.to_dict() when learning ran; `funding`
    (received > 0, paid < 0 while open) is part of the net PnL and listed when not 0."""
    out = {"realized_pnl": _num(realized_pnl), "fees": _num(fees),
           "net_pnl": _num(realized_pnl - fees + funding), "r_multiple": _num(r_multiple),
           "exit_reason": exit_reason, "weight_change": json_safe(weight_change)}
    if funding:
        out["funding"] = _num(funding)
    out.update(json_safe(extra))
    return out


_EXIT_ZH = {**EXIT_KIND_ZH, "reconcile": "交易所已无持仓"}
# stored keys read as they are in English, except the one that corrects a take-profit's claim
_EXIT_EN = {"target_loss": "the take-profit price (a net loss after fees)"}
_SIDE_ZH = {"LONG": "做多", "SHORT": "做空"}

# The six level features by their Chinese names (the dashboard's w_* labels say the same).
FEATURE_ZH = {"volume_density": "成交量密集", "touch_bounce_count": "触及反弹", "bounce_magnitude": "反弹幅度",
              "failed_breakout_count": "假突破", "duration_days": "持续天数", "multi_tf_confirm": "多周期确认"}
_FEATURE_RE = re.compile("|".join(sorted(map(re.escape, FEATURE_ZH), key=len, reverse=True)))


def features_zh(text: str) -> str:
    """`text` with every feature identifier replaced by its Chinese name (the learner writes
    identifiers into its Chinese reason; a Chinese reader should not meet snake_case)."""
    return _FEATURE_RE.sub(lambda m: FEATURE_ZH[m.group(0)], text)


def summarize(perception: Mapping[str, Any], action: Mapping[str, Any],
              reward: Mapping[str, Any]) -> tuple[str, str]:
    """One sentence per language: what was seen, what was done, what came of it."""
    side = str(action.get("side", ""))
    sym = perception.get("symbol", "")
    scores = perception.get("scores") or {}
    score = scores.get("long") if side == "LONG" else scores.get("short")
    score_s = f"{float(score):.0f}" if isinstance(score, (int, float)) else "?"
    lv = perception.get("level") or {}
    lv_price = lv.get("price")
    lv_s = f"{float(lv_price):.6g}" if isinstance(lv_price, (int, float)) else "-"
    r = reward.get("r_multiple")
    r_s = f"{float(r):+.2f}R" if isinstance(r, (int, float)) else "?R"
    net = reward.get("net_pnl")
    net_s = f"{float(net):+.2f}" if isinstance(net, (int, float)) else "?"
    reason = str(reward.get("exit_reason", ""))
    phase = perception.get("phase") or {}
    wc = reward.get("weight_change") or {}
    moved = ""
    moved_en = ""
    if wc.get("applied"):
        # the features this close really moved (not max/min of a delta that may be all zero)
        evidence = {k: FeatureEvidence(**v) for k, v in (wc.get("evidence") or {}).items()}
        up, down = moved_features(wc.get("old") or {}, wc.get("new") or {}, evidence)
        if up or down:
            moved = "；权重调整：" + " ".join([f"{FEATURE_ZH.get(k, k)}↑" for k in up]
                                          + [f"{FEATURE_ZH.get(k, k)}↓" for k in down])
            moved_en = "; weights moved: " + ", ".join([f"{k} up" for k in up] + [f"{k} down" for k in down])
    if action.get("manual"):
        # the trader's own order: no level, no score and no stop behind it, so no R either
        px = action.get("price")
        px_s = f"{float(px):.6g}" if isinstance(px, (int, float)) else "?"
        return (f"手动{_SIDE_ZH.get(side, side)} {sym} @ {px_s}，{_EXIT_ZH.get(reason, reason)}出场，"
                f"净盈亏 {net_s} USDT。",
                f"manual {side.lower()} {sym} at {px_s}, exited by {_EXIT_EN.get(reason, reason) or 'close'}, "
                f"net {net_s} USDT.")
    zh = (f"{phase['name_zh'] + '：' if phase.get('name_zh') else ''}"
          f"{sym} 在 {lv_s} 附近以 {score_s} 分{_SIDE_ZH.get(side, side)}，"
          f"{_EXIT_ZH.get(reason, reason)}出场，净盈亏 {net_s} USDT（{r_s}）{moved}。")
    en = (f"{phase.get('name_en', '').lower() + ' phase: ' if phase.get('name_en') else ''}"
          f"{side.lower()} {sym} near {lv_s} on a score of {score_s}, "
          f"exited by {_EXIT_EN.get(reason, reason) or 'close'}, "
          f"net {net_s} USDT ({r_s}){moved_en}.")
    return zh, en
