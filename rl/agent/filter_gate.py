"""FilterGate: the agent's side of the learned trade filter (TRADE_FILTER=on).

At an entry signal it turns the decision's analysis into the filter's features, asks the
model (rl.strategy.trade_filter) whether to take it and at what stake, and keeps what it said
for the thought chain. At a close the journal asks it for the model's state after learning
from the trade; that state is written in the close's transaction and only then becomes the
gate's model, so a crash leaves model and trades in step (kill -9 safe), and a restart reloads
it from the store. The model learns only from trades closed before a decision: it is
updated at closes, and a decision reads the model as it is then.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from rl.analysis.result import Analysis
from rl.knowledge.store import KnowledgeStore
from rl.strategy.filter_features import FILTER_FEATURES, entry_features
from rl.strategy.params import FilterParams
from rl.strategy.trade_filter import FilterDecision, TradeFilter

PERCEPTION_KEY = "trade_filter"      # where an entry's features and prediction live in its perception


def _trend(ind: Mapping[str, float] | None) -> float | None:
    """The trend direction of one timeframe as the entry score reads it, (EMA20 - EMA50) / ATR
    clipped to -1..1, from the analysis' published indicators; None while EMA50 is undefined
    (the score's close-vs-EMA20 stand-in needs the close, which they do not publish)."""
    if not ind:
        return None
    fast, slow, atr = (float(ind.get(k, math.nan)) for k in ("ema_fast", "ema_slow", "atr"))
    if not all(math.isfinite(v) for v in (fast, slow, atr)) or atr <= 0:
        return None
    return max(-1.0, min(1.0, (fast - slow) / atr))


class FilterGate:
    """The trade filter between the agent's entry signal and its order (see the module doc)."""

    def __init__(self, store: KnowledgeStore, params: FilterParams) -> None:
        self.store = store
        self.params = params
        self.model = TradeFilter.from_state(store.filter_state(), FILTER_FEATURES, params)

    def reload(self) -> None:
        """Start-up: the model as the store holds it."""
        self.model = TradeFilter.from_state(self.store.filter_state(), FILTER_FEATURES, self.params)

    def features(self, side: str, a: Analysis, level_features: Mapping[str, float], now: int) -> dict[str, float]:
        return entry_features(side=side, breakdown=a.long_breakdown if side == "LONG" else a.short_breakdown,
                              level_features=level_features, atr=a.atr_15m, price=a.price,
                              trend_8h=_trend(a.indicators.get("8h")), trend_1w=_trend(a.indicators.get("1w")),
                              time_ms=now)

    def judge(self, sym: str, side: str, x: Mapping[str, float], now: int) -> FilterDecision:
        """The model's decision on this signal, counted (and the count stored)."""
        d = self.model.decide(x, f"{sym}|{side}|{now}")
        if d.reason != "warmup":
            self.model.count(d)
            self.store.set_filter_state(self.model.to_state(), now)
        return d

    @staticmethod
    def record(d: FilterDecision, x: Mapping[str, float]) -> dict:
        """What the thought chain keeps: the features and the model's prediction and decision."""
        return {"x": dict(x), **d.to_dict()}

    def learned(self, perception: Mapping[str, Any], r_multiple: float) -> TradeFilter | None:
        """The model after learning from a trade entered with `perception` that made
        `r_multiple`, or None when the trade carries no filter features (entered while the
        filter was off, or adopted from the exchange). The gate's model is unchanged until
        `adopt`."""
        rec = perception.get(PERCEPTION_KEY) if isinstance(perception, Mapping) else None
        if not isinstance(rec, Mapping) or not isinstance(rec.get("x"), Mapping):
            return None
        m = self.model.copy()
        m.learn(rec["x"], r_multiple)
        return m

    def adopt(self, model: TradeFilter) -> None:
        """The close that `model` learned from is stored: it is the model now."""
        self.model = model

    def view(self) -> dict:
        return self.model.view()
