"""A small real walk-forward result: two folds, each a real Optuna study (TPE, in memory) of a
few trials over the made-up months of tests.optimize.fakes, the chosen parameters run on the
fold's test month, and the out-of-sample baselines computed over the same fake bank."""
from __future__ import annotations

import optuna

from rl.optimize.folds import Fold
from rl.optimize.objective import score_window, window_curve
from rl.optimize.oos_baselines import compute
from rl.optimize.study import Evaluator, fold_outcome, open_study, optimize_fold, trial_records
from rl.optimize.walkforward import WalkForwardConfig, WalkForwardResult
from rl.strategy.params import StrategyParams
from tests.optimize.fakes import FakeTestBank

SYMBOL = "AAAUSDT"
MONTHS = ["2023-08", "2023-09", "2023-10"]


def small_result(trials: int = 12, runs: int = 20, baselines: bool = True) -> WalkForwardResult:
    base = StrategyParams()
    bank = FakeTestBank()
    storage = optuna.storages.InMemoryStorage()
    folds, records = [], {}
    for k, (train, test) in enumerate([(MONTHS[0], MONTHS[1]), (MONTHS[1], MONTHS[2])], start=1):
        fold = Fold(k, (train,), (test,))
        study = open_study(f"w.fold{k}", storage, seed=3 + k)
        ev = Evaluator(bank, 1)
        optimize_fold(study, ev, base, [(SYMBOL, train)], trials, min_trades=1, show=False)
        ev.close()
        out = fold_outcome(study, fold, base)
        out.out_of_sample_runs = [bank.run(SYMBOL, test, base.replace_flat(out.params))]
        out.out_of_sample = score_window(out.out_of_sample_runs, 1)
        folds.append(out)
        records[study.study_name] = trial_records(study)
    tests = [r for f in folds for r in f.out_of_sample_runs]
    times, curve = window_curve(tests)
    result = WalkForwardResult(
        config=WalkForwardConfig(data=("d",), symbols=(SYMBOL,), study="w", storage="sqlite:///x.db",
                                 train_months=1, test_months=1, trials=trials),
        months=MONTHS, available={SYMBOL: MONTHS},
        data_files=[{"symbol": SYMBOL, "month": m, "file": "f", "sha256": "0" * 64} for m in MONTHS],
        base_params=base.to_flat(), folds=folds, out_of_sample=score_window(tests, 1),
        stitched={"day_ms": times, "equity": curve}, trials=records)
    if baselines:
        result.baselines = compute(result.to_json(), bank, runs=runs, seed=5)
    return result
