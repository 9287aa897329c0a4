"""Overfitting statistics, pure: how much of a chosen trial's Sharpe ratio the search explains.

Two statistics an optimization report shows beside the winner's figures:

- The deflated Sharpe ratio (Bailey & López de Prado, "The Deflated Sharpe Ratio: Correcting for
  Selection Bias, Backtest Overfitting and Non-Normality", J. Portfolio Management 40(5), 2014):
  the probability that the chosen trial's true Sharpe ratio is above zero, after allowing for
  the best of N trials being lucky (the expected maximum Sharpe of N unskilled trials is the
  bar instead of 0) and for skewed, fat-tailed returns (a short sample of such returns makes
  a high Sharpe ratio more likely by chance).
- The probability of backtest overfitting (Bailey, Borwein, López de Prado & Zhu, "The
  Probability of Backtest Overfitting", J. Computational Finance 20(4), 2017), estimated by
  combinatorially symmetric cross-validation (CSCV): how often the trial that is best on one
  half of the sample ranks in the bottom half of the trials on the other half.

Conventions (stated because every implementation differs a little):
- Sharpe ratios here are per observation (per day for daily returns), NOT annualised: the
  formulas take the sample length T in the same units. Divide an annualised Sharpe by
  sqrt(periods per year) first (sqrt(365) for rl.backtest.metrics' daily figures).
- Skewness and kurtosis are the plain population moments (numpy, ddof=0); kurtosis is NOT
  excess kurtosis: normal returns have 3.
- The Sharpe ratio of a sample is mean / std (ddof=1), risk-free rate 0, as in
  rl.backtest.metrics.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from statistics import NormalDist

import numpy as np

EULER_GAMMA = 0.5772156649015329      # the Euler-Mascheroni constant of the paper's E[max SR]
_N = NormalDist()


# ----------------------------------------------------------------------------- Sharpe moments

@dataclass(frozen=True)
class ReturnMoments:
    """What the deflated Sharpe ratio needs of a return series (per-observation units)."""

    sharpe: float
    n_obs: int
    skew: float
    kurt: float          # non-excess: 3.0 for normal returns


def return_moments(returns: Sequence[float] | np.ndarray) -> ReturnMoments:
    """Per-observation Sharpe ratio (mean / std, ddof=1), length, skewness and kurtosis
    (population moments, kurtosis non-excess) of `returns`. ValueError for fewer than 3
    values or no variation (the statistics are undefined there, not zero)."""
    r = np.asarray(returns, dtype=float)
    if r.ndim != 1 or r.size < 3:
        raise ValueError(f"returns: need at least 3 values in one dimension, got shape {r.shape}")
    if not np.all(np.isfinite(r)):
        raise ValueError("returns: every value must be finite")
    sd = float(np.std(r, ddof=1))
    if sd == 0.0:
        raise ValueError("returns: all values are equal, the Sharpe ratio is undefined")
    d = r - r.mean()
    m2 = float(np.mean(d ** 2))
    return ReturnMoments(sharpe=float(r.mean()) / sd, n_obs=int(r.size),
                         skew=float(np.mean(d ** 3)) / m2 ** 1.5, kurt=float(np.mean(d ** 4)) / m2 ** 2)


# ----------------------------------------------------------------------------- deflated Sharpe

def expected_max_sharpe(n_trials: int, var_trials_sr: float) -> float:
    """E[max SR] of `n_trials` independent unskilled trials (true Sharpe 0) whose Sharpe
    estimates vary with variance `var_trials_sr` (per-observation units), by the paper's
    approximation (after the False Strategy theorem):

        E[max SR] ~= sqrt(V) * ((1 - g) * Z^-1(1 - 1/N) + g * Z^-1(1 - 1/(N e)))

    with g the Euler-Mascheroni constant and Z^-1 the standard normal quantile. One trial: 0
    (nothing was selected). Assumes the trials are independent; correlated trials are fewer
    "effective" trials, so passing the raw count errs on the strict side."""
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise ValueError(f"n_trials={n_trials!r} is invalid: it must be an integer >= 1")
    if not (math.isfinite(var_trials_sr) and var_trials_sr >= 0):
        raise ValueError(f"var_trials_sr={var_trials_sr!r} is invalid: it must be finite and >= 0")
    if n_trials == 1:
        return 0.0
    g = EULER_GAMMA
    z = (1 - g) * _N.inv_cdf(1 - 1 / n_trials) + g * _N.inv_cdf(1 - 1 / (n_trials * math.e))
    return math.sqrt(var_trials_sr) * z


def probabilistic_sharpe_ratio(sr: float, sr_benchmark: float, n_obs: int, skew: float = 0.0,
                               kurt: float = 3.0) -> float:
    """P(true Sharpe > `sr_benchmark`) given the estimate `sr` from `n_obs` returns with that
    skewness and (non-excess) kurtosis (Bailey & López de Prado 2012):

        PSR = Z( (SR - SR*) * sqrt(T - 1) / sqrt(1 - skew * SR + (kurt - 1) / 4 * SR^2) )

    Assumes the returns are i.i.d. (no autocorrelation); per-observation units."""
    for name, v in (("sr", sr), ("sr_benchmark", sr_benchmark), ("skew", skew), ("kurt", kurt)):
        if not math.isfinite(v):
            raise ValueError(f"{name}={v!r} is invalid: it must be finite")
    if isinstance(n_obs, bool) or not isinstance(n_obs, int) or n_obs < 2:
        raise ValueError(f"n_obs={n_obs!r} is invalid: it must be an integer >= 2")
    var = 1 - skew * sr + (kurt - 1) / 4 * sr * sr
    if var <= 0:
        raise ValueError(f"skew={skew!r}, kurt={kurt!r} with sr={sr!r}: 1 - skew*SR + (kurt-1)/4*SR^2 = "
                         f"{var:.4g} must be > 0 (inconsistent moments)")
    return _N.cdf((sr - sr_benchmark) * math.sqrt(n_obs - 1) / math.sqrt(var))


def deflated_sharpe_ratio(sr: float, n_trials: int, var_trials_sr: float, n_obs: int,
                          skew: float = 0.0, kurt: float = 3.0) -> float:
    """The deflated Sharpe ratio of the chosen trial: PSR with the benchmark E[max SR] of
    `n_trials` trials (`expected_max_sharpe`) instead of 0.

    `sr`: the chosen trial's per-observation Sharpe estimate over `n_obs` returns with that
    `skew` and `kurt` (non-excess); `var_trials_sr`: the variance of the Sharpe estimates
    across all trials (per observation). Read it as a probability: above 0.95 the Sharpe ratio
    is unlikely to be a product of the search alone; near 0.5 or below it is what the best of
    that many unskilled trials would show anyway. Assumptions: i.i.d. returns, independent
    trials (see expected_max_sharpe)."""
    return probabilistic_sharpe_ratio(sr, expected_max_sharpe(n_trials, var_trials_sr), n_obs, skew, kurt)


# ----------------------------------------------------------------------------- PBO (CSCV)

def sharpe_columns(block: np.ndarray) -> np.ndarray:
    """Per-column Sharpe ratio mean / std (ddof=1) of a T x N block: CSCV's default statistic.
    A column with no variation scores +inf, -inf or 0 by the sign of its mean (a steady gain
    beats any volatile one)."""
    mean = block.mean(axis=0)
    sd = block.std(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(sd > 0, mean / np.where(sd > 0, sd, 1.0), np.sign(mean) * np.inf)
    return np.nan_to_num(out, nan=0.0, posinf=np.inf, neginf=-np.inf)


@dataclass(frozen=True)
class OverfitResult:
    """The CSCV outcome. `pbo`: the share of splits whose in-sample best ranks at or below the
    out-of-sample median (logit <= 0). `logits`: one per split, ln(w / (1 - w)) with w the
    best trial's out-of-sample relative rank rank/(N+1). `prob_oos_loss`: the share of splits
    whose in-sample best has a statistic < 0 out of sample. `rows_used`: T after dropping the
    first T mod S rows."""

    pbo: float
    logits: list[float] = field(repr=False)
    n_splits: int
    n_trials: int
    partitions: int
    rows_used: int
    prob_oos_loss: float

    def to_dict(self) -> dict:
        return {"pbo": self.pbo, "n_splits": self.n_splits, "n_trials": self.n_trials,
                "partitions": self.partitions, "rows_used": self.rows_used,
                "prob_oos_loss": self.prob_oos_loss,
                "logit_median": float(np.median(self.logits)) if self.logits else None}


def _relative_rank(values: np.ndarray, k: int) -> float:
    """Rank of values[k] among `values`, 1 = lowest, ties at their average rank, over N + 1."""
    v = values[k]
    below = int(np.sum(values < v))
    tied = int(np.sum(values == v))        # itself included
    return (below + (tied + 1) / 2) / (values.size + 1)


def probability_of_backtest_overfitting(
        matrix: Sequence[Sequence[float]] | np.ndarray, partitions: int = 16,
        statistic: Callable[[np.ndarray], np.ndarray] = sharpe_columns) -> OverfitResult:
    """PBO of choosing the best of N trials, by CSCV over `matrix` (T x N: one row per period,
    e.g. a day, one column per trial, each cell that trial's return in that period).

    The procedure (Bailey et al. 2017, section 2): cut the T rows into `partitions` (S, even)
    consecutive blocks of equal size (the first T mod S rows are dropped so they are equal);
    for every one of the C(S, S/2) ways to pick S/2 blocks as the training set J (the other
    S/2 are the test set), compute `statistic` (default: Sharpe) of every trial on J and on
    its complement, take the trial best on J (the first on ties), and its relative rank w
    among all trials on the complement; logit = ln(w / (1 - w)). PBO is the share of splits
    with logit <= 0: the in-sample winner did no better than the median trial out of sample.

    Assumptions (the paper's): the T rows are comparable, roughly stationary periods and all
    N trials are scored on the same rows; each block keeps its rows' time order but blocks
    are recombined regardless of time, so serial dependence longer than a block is ignored.
    Reading: near 0 the search picks trials that stay good; near 0.5 the choice is as good as
    random; above 0.5 the search prefers trials that do worse than others on unseen rows."""
    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2:
        raise ValueError(f"matrix: must be 2-dimensional (T periods x N trials), got shape {m.shape}")
    t, n = m.shape
    if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 2 or partitions % 2:
        raise ValueError(f"partitions={partitions!r} is invalid: it must be an even integer >= 2")
    if n < 2:
        raise ValueError(f"matrix: needs at least 2 trials (columns), got {n}")
    if t < partitions:
        raise ValueError(f"matrix: {t} rows are fewer than partitions={partitions}: each block needs a row")
    if not np.all(np.isfinite(m)):
        raise ValueError("matrix: every value must be finite")
    size = t // partitions
    m = m[t - size * partitions:]
    blocks = [m[i * size:(i + 1) * size] for i in range(partitions)]
    logits: list[float] = []
    losses = 0
    for train in combinations(range(partitions), partitions // 2):
        chosen = set(train)
        is_rows = np.concatenate([blocks[i] for i in train])
        oos_rows = np.concatenate([blocks[i] for i in range(partitions) if i not in chosen])
        r_is = np.asarray(statistic(is_rows), dtype=float)
        r_oos = np.asarray(statistic(oos_rows), dtype=float)
        best = int(np.argmax(r_is))
        w = _relative_rank(r_oos, best)
        logits.append(math.log(w / (1 - w)))
        losses += bool(r_oos[best] < 0)
    k = len(logits)
    return OverfitResult(pbo=sum(1 for x in logits if x <= 0) / k, logits=logits, n_splits=k,
                         n_trials=n, partitions=partitions, rows_used=size * partitions,
                         prob_oos_loss=losses / k)


# ----------------------------------------------------------------------------- a study's trials

def returns_matrix(curves: Sequence[Sequence[float]]) -> np.ndarray:
    """Simple period returns (T x N) of N equity curves sampled at the same T + 1 times (e.g.
    every trial's daily curve over one training window). ValueError if they differ in length
    or an equity is not > 0."""
    if len(curves) < 1:
        raise ValueError("curves: need at least one equity curve")
    lengths = {len(c) for c in curves}
    if len(lengths) != 1:
        raise ValueError(f"curves: all curves must have the same points (same times), got lengths {sorted(lengths)}")
    e = np.asarray(curves, dtype=float).T
    if e.shape[0] < 2 or not np.all(np.isfinite(e)) or np.any(e <= 0):
        raise ValueError("curves: need at least 2 points each, every equity finite and > 0")
    return e[1:] / e[:-1] - 1.0


def default_partitions(rows: int) -> int:
    """CSCV's S for `rows` periods: the even S in 16..8 that drops the fewest rows (the larger
    on ties), or the largest even S <= rows / 2 for shorter samples (at least 2)."""
    if rows >= 16:
        return min(range(16, 7, -2), key=lambda s: (rows % s, -s))
    return max(2, rows // 2 // 2 * 2)


def trial_overfitting(curves: Sequence[Sequence[float]], chosen: int, periods_per_year: float = 365.0,
                      partitions: int | None = None) -> dict:
    """Both statistics for a study: `curves` are the trials' equity curves over the same
    window and times (one per trial, e.g. rl.optimize's daily curves), `chosen` the index of
    the trial the study picked. The deflated Sharpe ratio uses the chosen trial's daily
    returns and the variance of all trials' Sharpe estimates (per period); PBO runs CSCV over
    every trial's returns (`default_partitions` unless given). Figures per period unless
    named `_annualised` (x sqrt(periods_per_year))."""
    r = returns_matrix(curves)
    t, n = r.shape
    if not 0 <= chosen < n:
        raise ValueError(f"chosen={chosen!r} is invalid: it must index one of the {n} curves")
    srs = sharpe_columns(r) if t >= 2 else np.zeros(n)
    finite = srs[np.isfinite(srs)]
    var = float(np.var(finite, ddof=1)) if finite.size >= 2 else 0.0
    out: dict = {"n_trials": n, "n_obs": t, "var_trials_sharpe": var,
                 "expected_max_sharpe": expected_max_sharpe(n, var), "sharpe": None, "sharpe_annualised": None,
                 "skew": None, "kurt": None, "deflated_sharpe": None, "pbo": None}
    try:
        m = return_moments(r[:, chosen])
        out.update(sharpe=m.sharpe, sharpe_annualised=m.sharpe * math.sqrt(periods_per_year), skew=m.skew,
                   kurt=m.kurt, deflated_sharpe=deflated_sharpe_ratio(m.sharpe, n, var, m.n_obs, m.skew, m.kurt))
    except ValueError:
        pass                 # flat or too short a curve: no Sharpe ratio, so no deflated one
    if n >= 2 and t >= 2:
        s = partitions if partitions is not None else default_partitions(t)
        out["pbo"] = probability_of_backtest_overfitting(r, s).to_dict()
    return out


def overfit_sentence(stats: dict) -> tuple[str, str]:
    """(English, Chinese) plain reading of trial_overfitting's figures for a report."""
    dsr, pbo = stats.get("deflated_sharpe"), (stats.get("pbo") or {}).get("pbo")
    n = stats.get("n_trials")
    en, zh = [], []
    if dsr is not None:
        en.append(f"Deflated Sharpe ratio {dsr:.2f}: the probability that the chosen trial's Sharpe ratio is "
                  f"real rather than the luck of the best of {n} trials (0.95 or more is strong evidence).")
        zh.append(f"紧缩夏普比率 {dsr:.2f}：所选参数的夏普比率并非 {n} 次试验中择优的运气、而是真实存在的概率"
                  "（0.95 以上才算有力证据）。")
    if pbo is not None:
        en.append(f"Probability of backtest overfitting {pbo:.2f}: how often the trial best on one half of the "
                  "days ranks in the bottom half on the other half (0.5 means the choice is as good as random).")
        zh.append(f"回测过拟合概率 {pbo:.2f}：在一半日期上最好的参数，在另一半日期上排名落入后一半的频率"
                  "（0.5 表示选择与随机无异）。")
    return " ".join(en), "".join(zh)
