"""Feature-weight learning from closed trades (design §9): pure functions, no I/O.

After every close, once at least `min_trades` trades are closed, each of the six level features
is judged by how its value AT ENTRY related to the trade's outcome (R multiple) over all closed
trades so far. A feature whose higher values went with better outcomes "predicted profit" and
gains 5 % of its weight; one whose higher values went with worse outcomes loses 5 %. (The
numbers here are `LearningParams`' defaults.)

Only a correlation that clears a significance bar counts: |r| > z / sqrt(n) (z = 1.645, the
one-sided 5 % critical value of r for n trades, e.g. 0.30 at 30 trades, 0.16 at 100). Below it
the feature is "inconclusive" and keeps its weight. Without this bar the update, re-applied
after every close, compounds sampling noise: in a replay of ~170 trades every feature's noisy
r hovered around zero, four drifted to the floor and two to the cap with no real evidence. The
weights are then renormalized to sum 1 and kept inside [min_weight, max_weight] so no feature
dies out (a dead feature could never earn its way back) and none takes over the level score
alone.

Why Pearson correlation with the R multiple: R normalizes outcome by the risk taken, so a big
position's win does not count more than a small one's, and correlation is scale-free, so a
feature measured in days and one measured in touches are judged alike. A feature with no
variation across trades carries no evidence and keeps its weight (before renormalization).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from rl.errors import LearningError
from rl.strategy.params import LearningParams


@dataclass(frozen=True)
class FeatureEvidence:
    """Why one feature moved: its relation to outcome over the closed trades."""

    feature: str
    n: int                       # trades that carried a value for this feature
    correlation: float | None    # Pearson(feature at entry, R multiple); None = no variation
    mean_when_win: float | None  # average feature value in winning trades
    mean_when_loss: float | None  # ... and in losing ones
    verdict: str                 # "helped" | "did_not_help" | "inconclusive" | "no_evidence"
    threshold: float | None = None  # the |r| this sample size needed to count

    def to_dict(self) -> dict:
        return {"feature": self.feature, "n": self.n, "correlation": self.correlation,
                "mean_when_win": self.mean_when_win, "mean_when_loss": self.mean_when_loss,
                "verdict": self.verdict, "threshold": self.threshold}


@dataclass(frozen=True)
class WeightUpdate:
    """The outcome of one learning step: old and new weights and the evidence behind them."""

    old: dict[str, float]
    new: dict[str, float]
    evidence: dict[str, FeatureEvidence] = field(default_factory=dict)
    trade_count: int = 0
    applied: bool = False        # False: too few trades, nothing changed
    reason_zh: str = ""
    reason_en: str = ""

    @property
    def delta(self) -> dict[str, float]:
        return {k: self.new[k] - self.old.get(k, 0.0) for k in self.new}

    def to_dict(self) -> dict:
        return {"old": dict(self.old), "new": dict(self.new), "delta": self.delta,
                "trade_count": self.trade_count, "applied": self.applied,
                "evidence": {k: v.to_dict() for k, v in self.evidence.items()},
                "reason_zh": self.reason_zh, "reason_en": self.reason_en}


def validate_weight_map(weights: Mapping[str, float], name: str = "weights") -> dict[str, float]:
    """Finite, non-negative weights summing to 1 (±1e-6); returns a plain dict copy."""
    if not isinstance(weights, Mapping) or not weights:
        raise LearningError(f"{name} must be a non-empty mapping feature -> weight")
    out: dict[str, float] = {}
    for k, v in weights.items():
        try:
            fv = float(v)
        except (TypeError, ValueError):
            raise LearningError(f"{name}[{k!r}]={v!r} is invalid: it must be a number") from None
        if not math.isfinite(fv) or fv < 0:
            raise LearningError(f"{name}[{k!r}]={v!r} is invalid: it must be finite and >= 0")
        out[str(k)] = fv
    total = sum(out.values())
    if abs(total - 1.0) > 1e-6:
        raise LearningError(f"{name} sum to {total:.6f}: they must sum to 1")
    return out


def significance_threshold(n: int, params: LearningParams = LearningParams()) -> float:
    """|r| a sample of n trades must exceed before it counts as evidence (≈ critical r)."""
    return max(params.min_correlation, params.significance_z / math.sqrt(n)) if n > 0 else float("inf")


class EvidenceStats:
    """Running statistics of (feature value at entry, R multiple) per feature over closed
    trades, updated in O(features) per trade: the learner runs after every close, and
    recomputing correlations over all trades each time made a long backtest quadratic (a
    year of ~2,000 trades: seconds in learning alone).

    Welford's updates for the means, the sums of squared deviations and the co-moment give
    Pearson's r as the two-pass formula does, to float rounding (~1e-15), and stay accurate
    for large or near-constant values. Win/loss sums run in trade order, as `sum` does."""

    __slots__ = ("features", "count", "_s")

    def __init__(self, features: Sequence[str]) -> None:
        self.features = list(features)
        self.count = 0                                 # samples added (trades), with or without values
        # per feature: [n, mean x, mean y, sxx, syy, sxy, win sum, wins, loss sum, losses]
        self._s: dict[str, list] = {f: [0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0, 0.0, 0] for f in self.features}

    @classmethod
    def of(cls, samples: Sequence[tuple[Mapping[str, float], float]], features: Sequence[str]) -> EvidenceStats:
        st = cls(features)
        for i, (values, r) in enumerate(samples):
            st.add(values, r, index=i)
        return st

    def add(self, values: Mapping[str, float], r: float, index: int | None = None) -> None:
        """One closed trade: its feature values at entry and its R multiple. A feature absent
        (or None) is not counted for that trade. Bad values raise before anything changes."""
        isfinite = math.isfinite
        y = float(r)
        pairs = []
        for f in self.features:
            v = values[f] if f in values else None
            if v is None:
                continue
            x = float(v)
            if not (isfinite(x) and isfinite(y)):
                at = f"samples[{index}]" if index is not None else "sample"
                raise LearningError(f"{at} feature {f!r}={x!r} R={y!r} is invalid: both must be finite")
            pairs.append((self._s[f], x))
        self.count += 1
        for s, x in pairs:
            n = s[0] = s[0] + 1
            dx = x - s[1]
            s[1] += dx / n
            dy = y - s[2]
            s[2] += dy / n
            s[3] += dx * (x - s[1])
            s[4] += dy * (y - s[2])
            s[5] += dx * (y - s[2])
            if y > 0:
                s[6] += x
                s[7] += 1
            else:
                s[8] += x
                s[9] += 1

    def evidence(self, params: LearningParams = LearningParams()) -> dict[str, FeatureEvidence]:
        """Each feature judged over the trades added so far (see the module doc)."""
        out: dict[str, FeatureEvidence] = {}
        for f in self.features:
            n, mx, my, sxx, syy, sxy, ws, wn, ls, ln = self._s[f]
            corr = None
            if n >= 2 and not (sxx <= 1e-18 * max(1.0, mx * mx) * n or syy <= 1e-18 * max(1.0, my * my) * n):
                corr = max(-1.0, min(1.0, sxy / math.sqrt(sxx * syy)))
            thr = significance_threshold(n, params)
            verdict = ("no_evidence" if corr is None
                       else "helped" if corr > thr
                       else "did_not_help" if corr < -thr else "inconclusive")
            out[f] = FeatureEvidence(feature=f, n=n, correlation=corr,
                                     mean_when_win=ws / wn if wn else None,
                                     mean_when_loss=ls / ln if ln else None,
                                     verdict=verdict, threshold=thr if n else None)
        return out


def feature_evidence(samples: Sequence[tuple[Mapping[str, float], float]],
                     features: Sequence[str],
                     params: LearningParams = LearningParams()) -> dict[str, FeatureEvidence]:
    """Judge each feature over `samples` = [(feature values at entry, R multiple), ...]."""
    return EvidenceStats.of(samples, features).evidence(params)


def project_to_bounds(weights: Mapping[str, float], min_weight: float,
                      max_weight: float) -> dict[str, float]:
    """Renormalize to sum 1 with every weight inside [min_weight, max_weight].

    Clip-and-redistribute: weights pinned at a bound stay there and the remaining mass is
    shared among the free ones in proportion to their size, repeated until nothing crosses a
    bound. This keeps the ranking of the free weights and always terminates (each round pins
    at least one more feature).
    """
    n = len(weights)
    if n == 0:
        raise LearningError("weights must not be empty")
    if not (0 <= min_weight <= max_weight) or n * min_weight > 1 + 1e-12 or n * max_weight < 1 - 1e-12:
        raise LearningError(f"bounds [{min_weight}, {max_weight}] are invalid for {n} features: "
                            "need n*min <= 1 <= n*max")
    w = {k: max(0.0, float(v)) for k, v in weights.items()}
    pinned: dict[str, float] = {}
    for _ in range(n + 1):
        free = {k: v for k, v in w.items() if k not in pinned}
        mass = 1.0 - sum(pinned.values())
        total = sum(free.values())
        scaled = ({k: mass * v / total for k, v in free.items()} if total > 0
                  else {k: mass / len(free) for k in free}) if free else {}
        crossed = False
        for k, v in scaled.items():
            if v < min_weight - 1e-15:
                pinned[k] = min_weight
                crossed = True
            elif v > max_weight + 1e-15:
                pinned[k] = max_weight
                crossed = True
        if not crossed:
            result = {**scaled, **pinned}
            return {k: result[k] for k in weights}
    result = {**{k: w[k] for k in w if k not in pinned}, **pinned}  # pragma: no cover - unreachable
    return {k: result[k] for k in weights}


def update_weights(weights: Mapping[str, float],
                   samples: Sequence[tuple[Mapping[str, float], float]] | EvidenceStats,
                   params: LearningParams) -> WeightUpdate:
    """One learning step over all closed trades; `applied` is False below `params.min_trades`.
    `samples`: [(feature values at entry, R multiple), ...], or their running `EvidenceStats`
    over the weights' features (what the agent keeps: O(1) per close)."""
    old = validate_weight_map(weights)
    min_trades, step = params.min_trades, params.step
    if int(min_trades) < 1:
        raise LearningError(f"min_trades={min_trades!r} is invalid: it must be >= 1")
    if not 0 < step < 1:
        raise LearningError(f"step={step!r} is invalid: it must be between 0 and 1")
    n = samples.count if isinstance(samples, EvidenceStats) else len(samples)
    if n < min_trades:
        return WeightUpdate(old=old, new=dict(old), trade_count=n, applied=False,
                            reason_zh=f"已平仓 {n} 笔，少于 {min_trades} 笔，暂不调整权重",
                            reason_en=f"{n} closed trades, fewer than {min_trades}: weights unchanged")
    if isinstance(samples, EvidenceStats):
        if samples.features != list(old):
            raise LearningError(f"samples: statistics over {samples.features}, weights over {list(old)}")
        evidence = samples.evidence(params)
    else:
        evidence = feature_evidence(samples, list(old), params)
    raw = dict(old)
    for f, ev in evidence.items():
        if ev.verdict == "helped":
            raw[f] = old[f] * (1 + step)
        elif ev.verdict == "did_not_help":
            raw[f] = old[f] * (1 - step)
    new = project_to_bounds(raw, params.min_weight, params.max_weight)
    reason_zh, reason_en = describe_change(n, old, new, evidence)
    return WeightUpdate(old=old, new=new, evidence=evidence, trade_count=n, applied=True,
                        reason_zh=reason_zh, reason_en=reason_en)


# A weight that moved less than this did not move (renormalization leaves float dust).
MOVE_EPS = 1e-9


def moved_features(old: Mapping[str, float], new: Mapping[str, float],
                   evidence: Mapping[str, FeatureEvidence] | None = None) -> tuple[list[str], list[str]]:
    """(raised, lowered): the features whose weight really rose / fell. With `evidence`, only
    those the evidence moved (helped up, did_not_help down): renormalization nudges every
    other weight too, and listing those would bury the cause."""
    up = [k for k in new if new[k] - old.get(k, 0.0) > MOVE_EPS]
    down = [k for k in new if new[k] - old.get(k, 0.0) < -MOVE_EPS]
    if evidence:
        up = [k for k in up if k in evidence and evidence[k].verdict == "helped"]
        down = [k for k in down if k in evidence and evidence[k].verdict == "did_not_help"]
    return up, down


def describe_change(n: int, old: Mapping[str, float], new: Mapping[str, float],
                    evidence: Mapping[str, FeatureEvidence]) -> tuple[str, str]:
    """What this learning step actually did, in words (zh, en): which weights rose and fell
    and from what to what, or that none moved and why. Never 'none +5 %' for no change."""
    up, down = moved_features(old, new, evidence)
    if not up and not down:
        judged = [k for k, e in evidence.items() if e.verdict in ("helped", "did_not_help")]
        if judged:                                   # evidence, but the bounds held the weights
            return (f"基于 {n} 笔已平仓交易：{', '.join(judged)} 有显著证据，但权重已在上下限，均未改变",
                    f"from {n} closed trades: {', '.join(judged)} cleared the bar but sit at their "
                    "bounds: no weight changed")
        return (f"基于 {n} 笔已平仓交易：没有特征的证据达到显著水平，权重均未改变",
                f"from {n} closed trades: no feature's evidence cleared the bar: no weight changed")
    parts_zh: list[str] = []
    parts_en: list[str] = []
    for k in up:
        parts_zh.append(f"{k} 预示盈利，权重 {old[k]:.3f}→{new[k]:.3f}")
        parts_en.append(f"{k} predicted profit, weight {old[k]:.3f} -> {new[k]:.3f}")
    for k in down:
        parts_zh.append(f"{k} 预示亏损，权重 {old[k]:.3f}→{new[k]:.3f}")
        parts_en.append(f"{k} predicted losses, weight {old[k]:.3f} -> {new[k]:.3f}")
    return (f"基于 {n} 笔已平仓交易：{'；'.join(parts_zh)}；其余按比例归一化（总和为1）",
            f"from {n} closed trades: {'; '.join(parts_en)}; the rest rescaled to sum 1")
