"""Deflated Sharpe ratio and probability of backtest overfitting against worked examples: the
DSR paper's numerical example, one DSR computed step by step from the formula with explicit
numbers, a CSCV enumerated by hand, and the two limits PBO must reach (a dominant trial: 0;
pure noise: about 0.5)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from rl.backtest.overfit import (
    default_partitions,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    overfit_sentence,
    probabilistic_sharpe_ratio,
    probability_of_backtest_overfitting,
    return_moments,
    returns_matrix,
    trial_overfitting,
)


def _phi(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def test_the_dsr_papers_numerical_example() -> None:
    # Bailey & Lopez de Prado 2014, "A numerical example": 100 trials, annualised Sharpe
    # variance 1/2 across them, the best annualised SR 2.5, 5 years of daily returns (T=1250,
    # 250 days a year), skewness -3, kurtosis 10 -> E[max SR] 0.1132 (daily), DSR 0.9004
    v = 0.5 / 250
    sr0 = expected_max_sharpe(100, v)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    dsr = deflated_sharpe_ratio(2.5 / math.sqrt(250), 100, v, 1250, skew=-3.0, kurt=10.0)
    assert dsr == pytest.approx(0.9004, abs=5e-4)


def test_dsr_by_hand_from_the_formula() -> None:
    # 10 trials, Sharpe variance 0.01, chosen SR 0.3 over 101 days, skew 0.5, kurtosis 4
    # E[max SR] = 0.1 * (0.42278 * Z^-1(0.9) + 0.57722 * Z^-1(1 - 1/(10 e)))
    #   Z^-1(0.9) = 1.281552, Z^-1(0.963212) = 1.789242 (normal tables)
    #   = 0.1 * (0.541820 + 1.032779) = 0.157460
    sr0 = expected_max_sharpe(10, 0.01)
    assert sr0 == pytest.approx(0.157460, abs=2e-6)
    # z = (0.3 - 0.157460) * sqrt(100) / sqrt(1 - 0.5 * 0.3 + 3/4 * 0.09)
    #   = 1.42540 / sqrt(0.9175) = 1.42540 / 0.957862 = 1.488107 -> Phi = 0.93164
    z = (0.3 - sr0) * 10 / math.sqrt(0.9175)
    assert z == pytest.approx(1.488107, abs=5e-5)
    assert deflated_sharpe_ratio(0.3, 10, 0.01, 101, 0.5, 4.0) == pytest.approx(_phi(z), abs=1e-12)
    assert _phi(z) == pytest.approx(0.93164, abs=5e-5)


def test_dsr_falls_with_more_trials_and_one_trial_is_the_psr_against_zero() -> None:
    args = dict(var_trials_sr=0.01, n_obs=250, skew=0.0, kurt=3.0)
    values = [deflated_sharpe_ratio(0.1, n, **args) for n in (1, 2, 10, 100, 1000)]
    assert values == sorted(values, reverse=True) and values[-1] < 0.1
    assert values[0] == probabilistic_sharpe_ratio(0.1, 0.0, 250)
    assert probabilistic_sharpe_ratio(0.2, 0.2, 30, 1.0, 5.0) == 0.5
    assert expected_max_sharpe(50, 0.0) == 0.0


@pytest.mark.parametrize("call, message", [
    (lambda: expected_max_sharpe(0, 0.1), "n_trials"),
    (lambda: expected_max_sharpe(3, -1.0), "var_trials_sr"),
    (lambda: probabilistic_sharpe_ratio(0.1, 0.0, 1), "n_obs"),
    (lambda: probabilistic_sharpe_ratio(2.0, 0.0, 10, skew=3.0, kurt=3.0), "inconsistent"),
    (lambda: return_moments([1.0, 1.0, 1.0]), "equal"),
])
def test_bad_inputs_name_the_field(call, message) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_return_moments_match_the_definitions() -> None:
    r = np.array([0.01, -0.02, 0.03, 0.0, 0.05])
    m = return_moments(r)
    d = r - r.mean()
    assert m.sharpe == pytest.approx(r.mean() / r.std(ddof=1))
    assert m.skew == pytest.approx(np.mean(d ** 3) / np.mean(d ** 2) ** 1.5)
    assert m.kurt == pytest.approx(np.mean(d ** 4) / np.mean(d ** 2) ** 2) and m.n_obs == 5


def test_cscv_enumerated_by_hand() -> None:
    # 4 periods x 3 trials, S = 4 blocks of one row, statistic = the mean; C(4, 2) = 6 splits
    #            A  B  C
    m = np.array([[0, 1, 2],
                  [0, 0, 2],
                  [1, 0, 0],
                  [1, 1, 0]], dtype=float)
    # train rows | IS means (A,B,C) | best | OOS means   | OOS rank of best / 4 | logit
    # 0,1        | 0,  .5, 2        | C    | 1, .5, 0    | 1/4                  | ln(1/3)
    # 0,2        | .5, .5, 1        | C    | .5, .5, 1   | 3/4                  | ln 3
    # 0,3        | .5, 1,  1 (tie)  | B    | .5, 0, 1    | 1/4                  | ln(1/3)
    # 1,2        | .5, 0,  1        | C    | .5, 1, 1    | (1 + 1.5)/4 = 5/8    | ln(5/3)
    # 1,3        | .5, .5, 1        | C    | .5, .5, 1   | 3/4                  | ln 3
    # 2,3        | 1,  .5, 0        | A    | 0, .5, 2    | 1/4                  | ln(1/3)
    # logit <= 0 in 3 of 6 splits -> PBO 1/2; no best trial loses out of sample (all >= 0)
    res = probability_of_backtest_overfitting(m, 4, statistic=lambda x: x.mean(axis=0))
    third, three = math.log(1 / 3), math.log(3)
    assert res.logits == pytest.approx([third, three, third, math.log(5 / 3), three, third])
    assert res.pbo == 0.5 and res.n_splits == 6 and res.prob_oos_loss == 0.0
    assert res.rows_used == 4 and res.n_trials == 3


def test_a_trial_that_dominates_every_block_has_pbo_zero() -> None:
    rng = np.random.default_rng(7)
    m = rng.normal(0.0, 0.01, size=(96, 25))
    m[:, 3] += 0.05                   # far above the noise in every block
    res = probability_of_backtest_overfitting(m, 8)
    assert res.pbo == 0.0 and res.prob_oos_loss == 0.0
    assert res.n_splits == math.comb(8, 4)


def test_pure_noise_gives_pbo_near_one_half_over_many_seeds() -> None:
    pbos = [probability_of_backtest_overfitting(np.random.default_rng(s).normal(0, 0.01, (64, 20)), 8).pbo
            for s in range(40)]
    assert abs(float(np.mean(pbos)) - 0.5) < 0.08


def test_rows_beyond_a_whole_number_of_blocks_are_dropped_from_the_start() -> None:
    m = np.random.default_rng(1).normal(0, 1, (67, 4))
    assert probability_of_backtest_overfitting(m, 8).logits == \
        probability_of_backtest_overfitting(m[3:], 8).logits


@pytest.mark.parametrize("matrix, s, message", [
    (np.zeros((10, 3)), 3, "partitions"),
    (np.zeros((10, 1)), 2, "2 trials"),
    (np.zeros((3, 3)), 4, "fewer than"),
    (np.zeros(5), 2, "2-dimensional"),
])
def test_pbo_bad_input_names_the_rule(matrix, s, message) -> None:
    with pytest.raises(ValueError, match=message):
        probability_of_backtest_overfitting(matrix, s)


def test_trial_overfitting_on_curves_matches_the_pure_functions() -> None:
    rng = np.random.default_rng(3)
    rets = rng.normal(0.0, 0.01, (48, 6))
    rets[:, 2] += 0.004
    curves = [list(np.concatenate([[1.0], np.cumprod(1 + rets[:, j])])) for j in range(6)]
    stats = trial_overfitting(curves, chosen=2)
    back = returns_matrix(curves)
    assert back == pytest.approx(rets)
    srs = back.mean(axis=0) / back.std(axis=0, ddof=1)
    m = return_moments(back[:, 2])
    assert stats["var_trials_sharpe"] == pytest.approx(np.var(srs, ddof=1))
    assert stats["deflated_sharpe"] == pytest.approx(
        deflated_sharpe_ratio(m.sharpe, 6, float(np.var(srs, ddof=1)), 48, m.skew, m.kurt))
    assert stats["pbo"] == probability_of_backtest_overfitting(back, 16).to_dict()
    en, zh = overfit_sentence(stats)
    assert "Deflated Sharpe ratio" in en and "回测过拟合概率" in zh


def test_default_partitions_drop_few_rows() -> None:
    assert default_partitions(59) == 14 and default_partitions(64) == 16 and default_partitions(30) == 10
    assert default_partitions(9) == 4 and default_partitions(3) == 2


def test_curves_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="same points"):
        returns_matrix([[1.0, 1.1], [1.0, 1.1, 1.2]])
