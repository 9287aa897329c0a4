"""The trade filter: a Bayesian online linear regression of a trade's net R multiple (after
fees) on what was known at its entry, which decides whether a signal the entry score proposes
is taken and how much of the risk budget it stakes (meta-labelling).

Model: y = w · z + noise, z = (1, standardised features), with a Normal-Inverse-Gamma prior
centred on "no edge" (every weight 0, the intercept too: the expected net R of any trade is 0
until trades say otherwise). Precision `prior_strength` per weight: the prior counts like that
many trades at 0R. Noise variance ~ InvGamma(2, 1) (about 1 R^2, what a stop-and-target trade
has).

Why sufficient statistics of the RAW features: the standardisation (running weighted mean and
variance of each feature) changes with every trade, and a posterior over standardised
features that were standardised with stats that later moved would depend on the order of
updates. Keeping n, sum x, sum x x', sum x y, sum y, sum y^2 (each discounted by the
forgetting factor before a new trade is added) and forming Z'Z and Z'y from them with the
CURRENT standardisation makes the posterior exactly that of a batch fit over every learned
trade standardised alike (tested to 1e-9 with forgetting 1). Forgetting < 1 weighs a trade
k closes ago by forgetting^k: a regime change fades the old evidence.

Numerically safe: a feature with (almost) no variance gets z = 0, so its weight stays at the
prior; R multiples are clipped to +-`r_clip` before they are learned; the posterior weights
used for predictions are clipped to +-`max_weight` R per standard deviation; a non-finite
input raises before anything changes. Pure: no I/O, no clock; the draw for Thompson sampling
and the exploration budget comes from a seeded hash of (seed, symbol, decision time), so a
decision is deterministic and the same after a restart.
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from rl.strategy.params import FilterParams

_NOISE_A0 = 2.0        # InvGamma shape of the noise variance prior
_NOISE_B0 = 1.0        # ... and scale: prior mean variance b0/(a0-1) = 1 R^2
_MIN_VAR = 1e-12       # a feature whose weighted variance is below this (x its scale) is constant


class FilterError(ValueError):
    """Bad input to the trade filter (a non-finite feature or R); names the field."""


@dataclass(frozen=True)
class Prediction:
    """What the model expects of a trade: `mean` (expected net R), `spread` (the standard
    deviation of that expectation: how unsure the model is), `p_positive` (P(expected net R
    > 0)) and each feature's contribution to the mean (weight x standardised value)."""

    mean: float
    spread: float
    p_positive: float
    contributions: dict[str, float]

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        """The k features that pushed the prediction most (largest |contribution|)."""
        return sorted(self.contributions.items(), key=lambda kv: -abs(kv[1]))[:k]


@dataclass(frozen=True)
class FilterDecision:
    """take: the signal is traded; stake: the share (0..1] of the risk budget it stakes;
    reason: 'warmup' (too few trades learned: every signal is taken at full stake), 'edge'
    (the model's draw clears the threshold), 'explore' (the draw did not, but without it the
    share of judged signals taken would fall below the exploration budget: taken at the least
    stake), 'skip'. `draw`: the Thompson draw of expected R."""

    take: bool
    stake: float
    reason: str
    draw: float
    prediction: Prediction

    def to_dict(self) -> dict:
        p = self.prediction
        return {"take": self.take, "stake": self.stake, "reason": self.reason, "draw": self.draw,
                "mean": p.mean, "spread": p.spread, "p_positive": p.p_positive,
                "top": [[k, v] for k, v in p.top()]}


def standard_normal(seed: int, key: str) -> float:
    """A deterministic standard normal draw from (seed, key) (Box-Muller on a hash): the same
    decision draws the same after a restart, and no generator state needs storing."""
    h = hashlib.blake2b(f"{seed}|{key}".encode(), digest_size=16).digest()
    u1 = (int.from_bytes(h[:8], "big") + 0.5) / 2.0**64
    u2 = (int.from_bytes(h[8:], "big") + 0.5) / 2.0**64
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


@dataclass
class TradeFilter:
    """The model's state (JSON-able through to_state/from_state) and its maths."""

    features: tuple[str, ...]
    params: FilterParams = field(default_factory=FilterParams)
    n: float = 0.0                       # discounted count of learned trades
    learned: int = 0                     # trades learned from (not discounted)
    # (empty: zeros of the features' size)
    sx: np.ndarray = field(default_factory=lambda: np.zeros(0))
    sxx: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    sxy: np.ndarray = field(default_factory=lambda: np.zeros(0))
    sy: float = 0.0
    syy: float = 0.0
    # decisions counted since the model began: seen (signals judged after warm-up), taken
    # (on merit or exploring), skipped, explored
    seen: int = 0
    taken: int = 0
    skipped: int = 0
    explored: int = 0

    def __post_init__(self) -> None:
        d = len(self.features)
        self.features = tuple(self.features)
        self.sx = np.asarray(self.sx, dtype=float) if np.size(self.sx) else np.zeros(d)
        self.sxx = np.asarray(self.sxx, dtype=float) if np.size(self.sxx) else np.zeros((d, d))
        self.sxy = np.asarray(self.sxy, dtype=float) if np.size(self.sxy) else np.zeros(d)
        if self.sx.shape != (d,) or self.sxx.shape != (d, d) or self.sxy.shape != (d,):
            raise FilterError(f"state arrays do not match the {d} features")

    # ------------------------------------------------------------------ learning
    def vector(self, values: Mapping[str, float], what: str = "features") -> np.ndarray:
        """The features of `values` in model order; a missing one counts as 0. With
        params.use_features=0 every feature reads 0 (constant: no say, only the bias learns)."""
        x = np.array([float(values.get(f, 0.0)) for f in self.features])
        if not np.all(np.isfinite(x)):
            bad = [f for f, v in zip(self.features, x) if not math.isfinite(v)]
            raise FilterError(f"{what}[{bad[0]!r}]={values.get(bad[0])!r} is invalid: it must be finite")
        return x if self.params.use_features else np.zeros(len(self.features))

    def learn(self, values: Mapping[str, float], r_multiple: float) -> None:
        """One closed trade: its features at entry and its net R multiple (clipped)."""
        x = self.vector(values)
        y = float(r_multiple)
        if not math.isfinite(y):
            raise FilterError(f"r_multiple={r_multiple!r} is invalid: it must be finite")
        c = self.params.r_clip
        y = max(-c, min(c, y))
        lam = self.params.forgetting
        self.n = lam * self.n + 1.0
        self.sx = lam * self.sx + x
        self.sxx = lam * self.sxx + np.outer(x, x)
        self.sxy = lam * self.sxy + x * y
        self.sy = lam * self.sy + y
        self.syy = lam * self.syy + y * y
        self.learned += 1

    def standardisation(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean, 1/std) of each feature over the learned trades (weighted like them);
        1/std is 0 for a feature that (almost) never varied: its z is then always 0."""
        d = len(self.features)
        if self.n <= 0:
            return np.zeros(d), np.zeros(d)
        mean = self.sx / self.n
        var = np.diag(self.sxx) / self.n - mean * mean
        scale = np.maximum(1.0, mean * mean)
        ok = var > _MIN_VAR * scale
        inv = np.zeros(d)
        inv[ok] = 1.0 / np.sqrt(var[ok])
        return mean, inv

    def posterior(self) -> tuple[np.ndarray, np.ndarray, float, float]:
        """(mean weights m, covariance factor V, noise shape a, noise scale b) over
        z = (1, standardised features): weights ~ N(m, sigma^2 V), sigma^2 ~ InvGamma(a, b)."""
        d = len(self.features)
        mean, inv = self.standardisation()
        # Z'Z and Z'y of the learned trades standardised with (mean, inv), from the raw sums
        a_mat = np.zeros((d + 1, d + 1))
        centred = self.sxx - np.outer(mean, self.sx) - np.outer(self.sx, mean) + self.n * np.outer(mean, mean)
        a_mat[1:, 1:] = centred * np.outer(inv, inv)
        sz = (self.sx - self.n * mean) * inv                 # sum of z (0 up to rounding)
        a_mat[0, 0] = self.n
        a_mat[0, 1:] = a_mat[1:, 0] = sz
        zy = np.empty(d + 1)
        zy[0] = self.sy
        zy[1:] = (self.sxy - mean * self.sy) * inv
        precision = a_mat + self.params.prior_strength * np.eye(d + 1)
        cov = np.linalg.inv(precision)
        cov = 0.5 * (cov + cov.T)
        m = cov @ zy
        a = _NOISE_A0 + 0.5 * self.n
        b = _NOISE_B0 + 0.5 * max(0.0, self.syy - float(m @ precision @ m))
        return m, cov, a, b

    # ------------------------------------------------------------------ predicting
    def predict(self, values: Mapping[str, float]) -> Prediction:
        """Expected net R of a trade with these features, its spread and P(> 0)."""
        x = self.vector(values)
        mean, inv = self.standardisation()
        z = np.empty(len(self.features) + 1)
        z[0] = 1.0
        z[1:] = (x - mean) * inv
        w, cov, a, b = self.posterior()
        lim = self.params.max_weight
        w = np.clip(w, -lim, lim)
        contrib = w * z
        mu = float(contrib.sum())
        sigma2 = b / (a - 1.0)                               # E[noise variance]
        spread = math.sqrt(max(0.0, float(z @ cov @ z) * sigma2))
        p = 0.5 if spread <= 0 else 0.5 * (1.0 + math.erf(mu / (spread * math.sqrt(2.0))))
        return Prediction(mean=mu, spread=spread, p_positive=p,
                          contributions={f: float(c) for f, c in zip(self.features, contrib[1:])}
                          | {"(bias)": float(contrib[0])})

    def decide(self, values: Mapping[str, float], key: str) -> FilterDecision:
        """Take the signal or not, and at what stake. `key`: what makes this decision's random
        draw its own (symbol and decision time): the same key always draws the same."""
        pr = self.predict(values)
        p = self.params
        draw = pr.mean + p.thompson * pr.spread * standard_normal(p.seed, key)
        if self.learned < p.warmup_trades:
            return FilterDecision(True, 1.0, "warmup", draw, pr)
        if draw > p.threshold:
            # stake grows with confidence: full budget at P(edge > 0) >= full_stake_p
            span = max(1e-9, p.full_stake_p - 0.5)
            stake = min(1.0, max(p.min_stake, (pr.p_positive - 0.5) / span))
            return FilterDecision(True, stake, "edge", draw, pr)
        if self.taken < p.explore_rate * (self.seen + 1):
            return FilterDecision(True, p.min_stake, "explore", draw, pr)
        return FilterDecision(False, 0.0, "skip", draw, pr)

    def count(self, decision: FilterDecision) -> None:
        """Tally a decision for the dashboard (how often the model says no)."""
        if decision.reason == "warmup":
            return
        self.seen += 1
        if decision.reason == "skip":
            self.skipped += 1
        else:
            self.taken += 1
            if decision.reason == "explore":
                self.explored += 1

    # ------------------------------------------------------------------ state
    def to_state(self) -> dict:
        return {"version": 1, "features": list(self.features), "n": self.n, "learned": self.learned,
                "sx": self.sx.tolist(), "sxx": self.sxx.tolist(), "sxy": self.sxy.tolist(),
                "sy": self.sy, "syy": self.syy, "seen": self.seen, "taken": self.taken, "skipped": self.skipped,
                "explored": self.explored}

    @classmethod
    def from_state(cls, state: Mapping | None, features: Sequence[str], params: FilterParams) -> TradeFilter:
        """The model a stored state describes; a fresh one when there is none or it was made
        over other features (a new version of the feature list starts learning again)."""
        if not state or list(state.get("features") or []) != list(features):
            return cls(tuple(features), params)
        return cls(tuple(features), params, n=float(state["n"]), learned=int(state["learned"]),
                   sx=np.asarray(state["sx"], dtype=float), sxx=np.asarray(state["sxx"], dtype=float),
                   sxy=np.asarray(state["sxy"], dtype=float), sy=float(state["sy"]),
                   syy=float(state["syy"]), seen=int(state.get("seen", 0)), taken=int(state.get("taken", 0)),
                   skipped=int(state.get("skipped", 0)), explored=int(state.get("explored", 0)))

    def copy(self) -> TradeFilter:
        return TradeFilter.from_state(self.to_state(), self.features, self.params)

    def view(self) -> dict:
        """What the dashboard shows: trades learned from, the model's view per feature (its
        weight: expected R per standard deviation of the feature, and how sure it is), the
        baseline expectation and how often it says no."""
        w, cov, a, b = self.posterior()
        sigma2 = b / (a - 1.0)
        sd = np.sqrt(np.maximum(0.0, np.diag(cov) * sigma2))
        lim = self.params.max_weight
        w = np.clip(w, -lim, lim)
        judged = self.seen
        return {"learned": self.learned, "effective_trades": self.n,
                "warmup_trades": self.params.warmup_trades, "baseline_r": float(w[0]),
                "baseline_sd": float(sd[0]),
                "weights": {f: {"weight": float(w[i + 1]), "sd": float(sd[i + 1])}
                            for i, f in enumerate(self.features)},
                "seen": judged, "taken": self.taken, "skipped": self.skipped, "explored": self.explored,
                "skip_rate": (self.skipped / judged) if judged else None}
