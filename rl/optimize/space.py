"""The optimizer's search space, declared in this one place, mapped onto StrategyParams.

Each entry names a dotted `StrategyParams` key (rl/strategy/params.py `to_flat`), its range
and why the range is what it is. The six level weights are not searched one by one (they must
sum to 1): six raw numbers u_i in (0, 1] become w_i = -ln(u_i) / sum(-ln(u_j)), which is
uniform on the simplex (Dirichlet(1): no mix of the features favoured beforehand), then
floored at learning's least weight so learning never starts below its own floor.

Every range keeps the cross-field rules of StrategyParams.validate (e.g. score.points.macd
>= score.macd_expanding = 14), so any sample is a valid parameter set.
What is NOT searched, and why: the level-feature rules (levels.*_full, levels.multi_tf) change
the prepared scans, which are computed once per month for every trial (docs/optimize.md
"Speed"); max_risk_percent, max_notional_percent and leverage are the trader's money
decisions, not the strategy's; the learning rules and phase boundaries are left for a later
study (they act only after 30 trades, which a month rarely gives with a high entry bar).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from rl.strategy.params import LevelWeights, StrategyParams

WEIGHT_PREFIX = "levels.weights."
WEIGHT_FEATURES = tuple(LevelWeights().as_dict())


@dataclass(frozen=True)
class Dim:
    """One searched number: its StrategyParams key, range, kind and the reason for the range."""

    key: str
    low: float
    high: float
    reason: str
    integer: bool = False
    log: bool = False


SPACE: tuple[Dim, ...] = (
    # entry bar per phase: the score is 0..100; below 20 nearly every 15m close qualifies, above
    # 80 hardly one a month does
    Dim("phases.exploration.min_score", 20.0, 70.0,
        "0..100 score: below 20 every close enters, above 70 a month gives few trades to learn from"),
    Dim("phases.learning.min_score", 25.0, 75.0,
        "as exploration, shifted: learning asks more once 30 trades are in"),
    Dim("phases.stable.min_score", 30.0, 80.0, "as learning, shifted: the stable phase asks the most"),
    Dim("phases.exploration.score_gap", 0.0, 30.0,
        "lead over the other side: 0 = none, 30 = a third of the scale, rarely met"),
    Dim("phases.learning.score_gap", 0.0, 30.0, "as exploration"),
    Dim("phases.stable.score_gap", 0.0, 30.0, "as exploration"),
    # stake per phase (share of MAX_RISK_PERCENT)
    Dim("phases.exploration.risk_scale", 0.25, 1.0,
        "stake while collecting evidence: a quarter to all of the trader's risk"),
    Dim("phases.learning.risk_scale", 0.25, 1.0, "as exploration"),
    Dim("phases.stable.risk_scale", 0.25, 1.0, "as exploration"),
    # entry-score component points (each confirmation's maximum; the total is capped at 100)
    Dim("score.points.trend", 5.0, 40.0,
        "each component 5..40: none silenced, none alone over the 35-55 entry bars"),
    Dim("score.points.level", 5.0, 40.0, "as trend"),
    Dim("score.points.rsi", 5.0, 40.0, "as trend"),
    Dim("score.points.macd", 14.0, 40.0, "as trend, but >= score.macd_expanding (14), a validation rule"),
    Dim("score.points.bollinger", 5.0, 40.0, "as trend"),
    Dim("score.points.volume", 0.0, 20.0, "a volume spike confirms weakly: 0 (off) to 20"),
    # stop and target multiples
    Dim("plan.atr_buffer", 0.1, 2.0,
        "stop beyond the level in ATR(15m): 0.1 sits in the noise, 2 is a wide swing stop"),
    Dim("plan.reward_multiple", 1.0, 4.0,
        "target in R with no opposing level: below 1 it comes before the 1R partial, 4 is rare in a month"),
    Dim("exits.partial_at_r", 0.5, 3.0, "first profit and break-even at 0.5..3 R: within the targets' range"),
    Dim("exits.trail_atr", 0.5, 5.0,
        "trailing distance in ATR(15m): 0.5 is one bar's noise, 5 gives most of the move back"),
    # protections
    Dim("protections.max_drawdown_percent", 5.0, 30.0,
        "pause at a 5..30 % fall from the 30-day peak: below 5 one bad day pauses, above 30 it never helps"),
    Dim("protections.daily_loss_limit_percent", 2.0, 10.0, "one to five full-risk (2 %) stop-outs a day"),
    Dim("protections.stoploss_guard_trades", 2, 6,
        "stop-outs in the window that pause: 2 is any pair, 6 about every trade of the window", integer=True),
    Dim("protections.stoploss_guard_pause_hours", 1.0, 24.0,
        "pause from one hour (a few 15m decisions) to a whole day", log=True),
)

# the raw numbers behind the weights (see the module docstring)
WEIGHT_DIMS: tuple[Dim, ...] = tuple(
    Dim(f"raw_weight.{f}", 1e-3, 1.0, "u in (0, 1] -> -ln(u) normalised: uniform on the weights' simplex")
    for f in WEIGHT_FEATURES)


class Suggester(Protocol):
    """What an Optuna trial offers (optuna.trial.Trial), so this module needs no Optuna."""

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float: ...

    def suggest_int(self, name: str, low: int, high: int) -> int: ...


def weights_from_raw(raw: Mapping[str, float], floor: float) -> dict[str, float]:
    """The level weights (summing to 1 up to float rounding) of the raw numbers u in (0, 1],
    each at least `floor`."""
    e = [-math.log(min(1.0, max(1e-12, float(raw[f])))) for f in WEIGHT_FEATURES]
    total = sum(e)
    share = [x / total for x in e] if total > 0 else [1.0 / len(e)] * len(e)
    free = 1.0 - floor * len(e)
    w = [floor + free * s for s in share]
    w[-1] = 1.0 - sum(w[:-1])          # exactly 1 as validate sums them
    return {f"{WEIGHT_PREFIX}{f}": x for f, x in zip(WEIGHT_FEATURES, w)}


def suggest(trial: Suggester, base: StrategyParams) -> dict[str, int | float]:
    """A trial's StrategyParams overrides (dotted key -> value), drawn from SPACE."""
    out: dict[str, int | float] = {}
    for d in SPACE:
        if d.integer:
            out[d.key] = trial.suggest_int(d.key, int(d.low), int(d.high))
        else:
            out[d.key] = trial.suggest_float(d.key, d.low, d.high, log=d.log)
    raw = {d.key.split(".", 1)[1]: trial.suggest_float(d.key, d.low, d.high) for d in WEIGHT_DIMS}
    out.update(weights_from_raw(raw, base.learning.min_weight))
    return out


def overrides_from_trial_params(params: Mapping[str, float], base: StrategyParams) -> dict[str, int | float]:
    """The overrides `suggest` made, rebuilt from a finished trial's recorded params."""
    out: dict[str, int | float] = {d.key: (int(params[d.key]) if d.integer else float(params[d.key]))
                                   for d in SPACE}
    out.update(weights_from_raw({d.key.split(".", 1)[1]: params[d.key] for d in WEIGHT_DIMS},
                                base.learning.min_weight))
    return out


def apply(base: StrategyParams, overrides: Mapping[str, int | float]) -> StrategyParams:
    """base with the overrides, validated (ParamsError naming the key if one breaks a rule)."""
    return base.replace_flat(overrides)


def describe() -> list[dict]:
    """The space as rows (key, low, high, kind, reason) for docs and the result file."""
    return [{"key": d.key, "low": d.low, "high": d.high,
             "kind": "int" if d.integer else ("log-float" if d.log else "float"), "reason": d.reason}
            for d in SPACE + WEIGHT_DIMS]


def apply_base(flat: Mapping[str, int | float]) -> StrategyParams:
    """The StrategyParams a flat dict of every leaf (`to_flat`) describes."""
    return StrategyParams().replace_flat(flat)
