"""The ask/tell loop of one fold (rl.optimize.study): trial counts, resume, failures, and
the per-trial records a report reads; over a made-up bank, in Optuna's in-memory storage and
in a real SQLite file."""
from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from rl.optimize.folds import Fold
from rl.optimize.study import (
    CURVE_ATTR,
    RUN_ATTR,
    SCORE_ATTR,
    Evaluator,
    fold_outcome,
    open_study,
    optimize_fold,
    trial_records,
)
from rl.strategy.params import StrategyParams
from tests.optimize.fakes import FakeBank

PAIRS = [("AAAUSDT", "2023-08"), ("BBBUSDT", "2023-08")]
FOLD = Fold(1, ("2023-08",), ("2023-09",))


def _loop(study, bank, trials, jobs=1):
    ev = Evaluator(bank, jobs)
    try:
        return optimize_fold(study, ev, StrategyParams(), PAIRS, trials, min_trades=10, show=False)
    finally:
        ev.close()


def test_a_fold_runs_exactly_the_trials_asked_and_records_each() -> None:
    study = open_study("t", optuna.storages.InMemoryStorage(), seed=1)
    assert _loop(study, FakeBank(), 4) == 4
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    for t in trials:
        assert t.value == t.user_attrs[SCORE_ATTR]["score"]
        assert [r["symbol"] for r in t.user_attrs[RUN_ATTR]] == ["AAAUSDT", "BBBUSDT"]
        assert t.user_attrs[CURVE_ATTR]["equity"][0] == 1.0
    rec = trial_records(study)
    assert [r["number"] for r in rec] == [0, 1, 2, 3] and rec[0]["window"]["runs"] == 2


def test_rerunning_continues_the_study_in_its_sqlite_file(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert _loop(open_study("s", url, seed=3), FakeBank(), 3) == 3
    again = open_study("s", url, seed=3)                 # a new process would do just this
    assert _loop(again, FakeBank(), 5) == 2              # only the two missing ones
    assert _loop(open_study("s", url, seed=3), FakeBank(), 5) == 0
    numbers = [t.number for t in open_study("s", url, seed=3).get_trials(states=(TrialState.COMPLETE,))]
    assert numbers == [0, 1, 2, 3, 4]


def test_two_worker_processes_share_the_trials_none_twice() -> None:
    study = open_study("p", optuna.storages.InMemoryStorage(), seed=2)
    assert _loop(study, FakeBank(), 6, jobs=2) == 6
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 6 and len({tuple(sorted(t.params.items())) for t in trials}) == 6


def test_a_failing_run_fails_its_trial_and_the_study_goes_on() -> None:
    study = open_study("f", optuna.storages.InMemoryStorage(), seed=4)
    _loop(study, FakeBank(fail_when=1.0), 6)
    states = [t.state for t in study.get_trials()]
    assert TrialState.FAIL in states and states.count(TrialState.COMPLETE) == 6
    failed = [t for t in study.get_trials() if t.state == TrialState.FAIL]
    assert "made-up failure" in failed[0].user_attrs["error"]


def test_the_fold_outcome_is_the_best_trial_with_its_parameters() -> None:
    study = open_study("b", optuna.storages.InMemoryStorage(), seed=5)
    _loop(study, FakeBank(), 8)
    out = fold_outcome(study, FOLD, StrategyParams())
    best = max(study.get_trials(states=(TrialState.COMPLETE,)), key=lambda t: t.value)
    assert out.best_trial == best.number and out.in_sample.score == best.value
    assert out.params["plan.atr_buffer"] == pytest.approx(best.params["plan.atr_buffer"])
    assert abs(sum(v for k, v in out.params.items() if k.startswith("levels.weights.")) - 1) < 1e-9
    assert out.row()["trials"] == 8 and out.row()["test"] == ["2023-09"]
