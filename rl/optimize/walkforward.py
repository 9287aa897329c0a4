"""The walk-forward run: folds over the archive's months, a study per fold, the chosen
parameters of each fold run on its unseen test months, and the stitched out-of-sample equity.

`WalkForwardResult` is what the CLI prints and saves (profiles/NAME.walkforward.json) and what
a report reads: `fold_table()` (in-sample vs out-of-sample per fold), `trials` (every trial
of every fold, rl.optimize.study.trial_records), the test runs and the stitched curve.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import optuna

from config import PROJECT_ROOT
from rl.optimize import space
from rl.optimize.bank import MonthBank, quiet_agent_logs
from rl.optimize.folds import Fold, consecutive, make_folds, months_by_symbol, sha256
from rl.optimize.objective import (
    DD_FREE_PCT,
    DD_PENALTY,
    MIN_TRADES_PER_RUN,
    SORTINO_CAP,
    MonthRun,
    WindowScore,
    score_window,
    window_curve,
)
from rl.optimize.study import (
    Evaluator,
    FoldOutcome,
    by_month,
    connect,
    fold_outcome,
    fold_study_name,
    open_study,
    optimize_fold,
    pairs_of,
    trial_records,
)
from rl.strategy.params import StrategyParams


@dataclass(frozen=True)
class WalkForwardConfig:
    """The command line of `python -m rl.optimize`, validated by __main__."""

    data: tuple[str, ...]
    symbols: tuple[str, ...]
    study: str
    train_months: int = 2
    test_months: int = 1
    trials: int = 200
    jobs: int = 1
    storage: str | None = None
    seed: int | None = 0
    anchored: bool = False
    min_trades_per_run: int = MIN_TRADES_PER_RUN
    balance: float | None = None
    portfolio: bool = False           # each month's symbols as one portfolio on one account

    def storage_url(self) -> str:
        """--storage, or the study's SQLite file data/optimize/NAME.db (created)."""
        if self.storage:
            return rdb_url(self.storage)
        path = PROJECT_ROOT / "data" / "optimize" / f"{self.study}.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}"

    def public(self) -> dict:
        return {"data": list(self.data), "symbols": list(self.symbols), "study": self.study,
                "train_months": self.train_months, "test_months": self.test_months,
                "trials": self.trials, "jobs": self.jobs, "storage": masked(self.storage_url()),
                "seed": self.seed, "anchored": self.anchored,
                "min_trades_per_run": self.min_trades_per_run, "balance": self.balance,
                "portfolio": self.portfolio}


def rdb_url(url: str) -> str:
    """`url` with the PostgreSQL driver named: SQLAlchemy 2.1 reads a bare postgresql:// as
    psycopg 3, while the requirements install psycopg2 (psycopg2-binary)."""
    for bare in ("postgresql://", "postgres://"):
        if url.startswith(bare):
            return "postgresql+psycopg2://" + url[len(bare):]
    return url


def masked(url: str) -> str:
    """A storage URL without its password (postgresql://user:***@host/db)."""
    head, sep, tail = url.partition("://")
    if sep and "@" in tail:
        cred, _, rest = tail.rpartition("@")
        user = cred.split(":", 1)[0]
        return f"{head}://{user}:***@{rest}" if ":" in cred else url
    return url


@dataclass
class WalkForwardResult:
    config: WalkForwardConfig
    months: list[str]
    available: dict[str, list[str]]              # symbol -> months its archive holds
    data_files: list[dict]                       # symbol, month, file, sha256
    base_params: dict[str, int | float]
    folds: list[FoldOutcome]
    out_of_sample: WindowScore
    stitched: dict                               # {"day_ms": [...], "equity": [...]}, starts at 1.0
    trials: dict[str, list[dict]] = field(default_factory=dict)
    started: str = ""
    seconds: float = 0.0
    prepare_seconds: float = 0.0
    month_trials: int = 0                        # month runs of trials finished by this call
    optimize_seconds: float = 0.0                # wall time of those
    # the stitched test months against random entries and buy & hold (rl.optimize.oos_baselines)
    baselines: dict | None = None

    @property
    def month_trials_per_minute(self) -> float | None:
        return self.month_trials / (self.optimize_seconds / 60.0) if self.optimize_seconds > 0 else None

    def fold_table(self) -> list[dict]:
        return [f.row() for f in self.folds]

    def test_runs(self) -> list[MonthRun]:
        return [r for f in self.folds for r in f.out_of_sample_runs]

    def to_json(self) -> dict:
        return {"config": self.config.public(), "months": self.months, "available": self.available,
                "data_files": self.data_files, "base_params": self.base_params,
                "search_space": space.describe(),
                "objective": objective_doc(self.config.min_trades_per_run),
                "folds": self.fold_table(),
                "fold_params": [f.params for f in self.folds],
                "in_sample_runs": [[r.to_dict() for r in f.in_sample_runs] for f in self.folds],
                "out_of_sample_runs": [r.to_dict(curve=True) for r in self.test_runs()],
                "out_of_sample": self.out_of_sample.to_dict(), "stitched": self.stitched,
                "out_of_sample_baselines": self.baselines,
                "trials": self.trials, "started": self.started, "seconds": round(self.seconds, 1),
                "prepare_seconds": round(self.prepare_seconds, 1), "month_trials": self.month_trials,
                "optimize_seconds": round(self.optimize_seconds, 1),
                "month_trials_per_minute": (None if self.month_trials_per_minute is None
                                            else round(self.month_trials_per_minute, 1))}


def objective_doc(min_trades_per_run: int) -> dict:
    return {"name": "clipped Sortino with drawdown penalty (rl/optimize/objective.py)",
            "formula": f"clip(Sortino, -{SORTINO_CAP:g}, {SORTINO_CAP:g}) - {DD_PENALTY:g} * "
                       f"max(0, max drawdown % - {DD_FREE_PCT:g}); fewer than {min_trades_per_run} "
                       f"closed trades per (symbol, month): -{SORTINO_CAP:g} - shortfall",
            "min_trades_per_run": min_trades_per_run}


def plan(cfg: WalkForwardConfig) -> tuple[dict[str, dict[str, Path]], list[str], list[Fold]]:
    """(files by symbol and month, the months used, the folds); ValueError naming the flag."""
    available = months_by_symbol(cfg.data, cfg.symbols)
    for sym, ms in available.items():
        if not ms:
            raise ValueError(f"--symbols={sym} is invalid: no monthly 1m archive files for it under --data")
    months = consecutive([m for ms in available.values() for m in ms])
    return available, months, make_folds(months, cfg.train_months, cfg.test_months, cfg.anchored)


def run_walk_forward(cfg: WalkForwardConfig, show: bool | None = None,
                     storage: str | optuna.storages.BaseStorage | None = None,
                     log: Any = print, bank: MonthBank | None = None) -> WalkForwardResult:
    """The whole walk-forward (see the module docstring). Raises study.Interrupted on Ctrl-C
    (finished trials stay in the storage; rerun to continue). `bank`: the prepared months to
    use (one the caller keeps, e.g. for the out-of-sample baselines after); by default its own."""
    t0 = time.perf_counter()
    started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    quiet_agent_logs()
    optuna.logging.set_verbosity(optuna.logging.WARNING)    # the progress bar says it all
    available, months, folds = plan(cfg)
    if bank is None:
        bank = MonthBank.for_symbols(cfg.data, cfg.symbols, cfg.balance, portfolio=cfg.portfolio)
    base = StrategyParams.from_settings(bank.settings[cfg.symbols[0]])
    needed = pairs_of(sorted({m for f in folds for m in f.train + f.test}), available)
    log(f"walk-forward: {len(folds)} fold(s) over {months[0]}..{months[-1]}, "
        f"{len(needed)} symbol-months; preparing them once ...")
    bank.prepare(needed)                      # before the workers fork: they share it
    prepare_s = time.perf_counter() - t0
    url = storage if storage is not None else connect(cfg.storage_url())
    evaluator = Evaluator(bank, cfg.jobs)
    outcomes: list[FoldOutcome] = []
    records: dict[str, list[dict]] = {}
    month_trials = 0
    opt_s = 0.0
    try:
        for fold in folds:
            name = fold_study_name(cfg.study, fold)
            seed = None if cfg.seed is None else cfg.seed + fold.index
            study = open_study(name, url, seed)
            train = pairs_of(fold.train, available)
            need = cfg.min_trades_per_run * len(train)
            t1 = time.perf_counter()
            n = optimize_fold(study, evaluator, base, train, cfg.trials, need,
                              desc=f"fold {fold.index}/{len(folds)} train {fold.train[0]}..{fold.train[-1]}",
                              show=show)
            opt_s += time.perf_counter() - t1
            month_trials += n * len(train)
            out = fold_outcome(study, fold, base)
            test = pairs_of(fold.test, available)
            params = space.apply(base, out.params)
            # one task per (symbol, month), or per month when its symbols run as a portfolio
            tasks = ([[(s, m) for s in syms] for m, syms in by_month(test)] if cfg.portfolio
                     else [[pair] for pair in test])
            for k, task in enumerate(tasks):
                evaluator.submit(k, params, task)
            got: dict[int, list[MonthRun]] = {}
            while evaluator.pending:
                tag, runs = evaluator.next_done()
                if isinstance(runs, BaseException):
                    raise runs
                got[tag] = runs
            out.out_of_sample_runs = [r for k in sorted(got) for r in got[k]]
            out.out_of_sample = score_window(out.out_of_sample_runs, cfg.min_trades_per_run * len(test))
            outcomes.append(out)
            records[name] = trial_records(study)
            log(f"fold {fold.index}: {n} trial(s) run by this worker; best trial {out.best_trial} of "
                f"{out.trials_complete}, "
                f"in-sample score {out.in_sample.score:.3f} ({out.in_sample.return_pct:+.2f} %), "
                f"out-of-sample {fold.test[0]}..{fold.test[-1]}: score {out.out_of_sample.score:.3f} "
                f"({out.out_of_sample.return_pct:+.2f} %)")
        evaluator.close()
    except BaseException:
        evaluator.close(terminate=True)
        raise
    tests = [r for f in outcomes for r in f.out_of_sample_runs]
    times, curve = window_curve(tests)
    files = [{"symbol": s, "month": m, "file": str(p), "sha256": sha256(p)}
             for s, ms in available.items() for m, p in ms.items() if m in months]
    return WalkForwardResult(
        config=cfg, months=months, available={s: list(ms) for s, ms in available.items()},
        data_files=files, base_params=base.to_flat(), folds=outcomes,
        out_of_sample=score_window(tests, cfg.min_trades_per_run * symbol_months(tests)),
        stitched={"day_ms": times, "equity": curve}, trials=records, started=started,
        seconds=time.perf_counter() - t0, prepare_seconds=prepare_s, month_trials=month_trials,
        optimize_seconds=opt_s)


def symbol_months(runs: Sequence[MonthRun]) -> int:
    """(symbol, month) pairs behind `runs` (a portfolio run "A,B" stands for two), so the
    least-trades rule counts the same with and without --portfolio."""
    return sum(len(r.symbol.split(",")) for r in runs)


def format_fold_table(result: WalkForwardResult) -> str:
    """The fold table as fixed-width text (what the CLI prints)."""
    head = (f"{'fold':>4}  {'train':<17}  {'test':<17}  {'trials':>6}  {'best':>4}  {'IS score':>8}  "
            f"{'IS ret %':>8}  {'OOS score':>9}  {'OOS ret %':>9}  {'OOS DD %':>8}  {'OOS trades':>10}")
    lines = [head]
    for f in result.folds:
        o = f.out_of_sample
        lines.append(f"{f.fold.index:>4}  {f.fold.train[0] + '..' + f.fold.train[-1]:<17}  "
                     f"{f.fold.test[0] + '..' + f.fold.test[-1]:<17}  {f.trials_complete:>6}  "
                     f"{f.best_trial:>4}  {f.in_sample.score:>8.3f}  {f.in_sample.return_pct:>+8.2f}  "
                     f"{(o.score if o else float('nan')):>9.3f}  {(o.return_pct if o else float('nan')):>+9.2f}  "
                     f"{(o.max_drawdown_pct if o else float('nan')):>8.2f}  {(o.trades if o else 0):>10}")
    s = result.out_of_sample
    lines.append(f"stitched out-of-sample ({len(result.test_runs())} symbol-months): return {s.return_pct:+.2f} %, "
                 f"max drawdown {s.max_drawdown_pct:.2f} %, Sortino "
                 f"{'-' if s.sortino is None else f'{s.sortino:.2f}'}, trades {s.trades}, score {s.score:.3f}")
    return "\n".join(lines)


def describe_months(available: dict[str, Sequence[str]]) -> str:
    return "; ".join(f"{s}: {', '.join(ms)}" for s, ms in available.items())
