"""Walk-forward Bayesian optimization: one Optuna study per fold, run by ask/tell.

Per fold, Optuna's TPE sampler (seeded) proposes parameters (rl.optimize.space); every
(symbol, training month) runs with them on a prepared month (rl.optimize.bank) and the
window's score (rl.optimize.objective) is told back. `jobs` worker processes evaluate trials
in parallel; only this process talks to the storage, so the default SQLite file needs no
locking across processes. Several machines share a study through Optuna's RDB storage
(`--storage postgresql://...`): each runs this same loop against it, and Optuna hands each
`ask()` a new trial (trial numbers are unique), so no trial is run twice.

Stopping: a worker asks for a new trial only while the fold's study holds fewer than
`trials` finished-or-running trials (COMPLETE + RUNNING; two workers asking at the same moment
can each add one more). Rerunning the command continues the studies it finds (resume).
Ctrl-C stops cleanly: trials already told are kept, the ones in flight are marked FAIL
(user attr "interrupted") and do not count, and the command exits with status 130.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import signal
import sys
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import optuna
import sqlalchemy.exc
from optuna.trial import TrialState
from tqdm import tqdm

from rl.optimize import space
from rl.optimize.bank import MonthBank, quiet_agent_logs
from rl.optimize.folds import Fold
from rl.optimize.objective import MonthRun, WindowScore, score_window, window_curve
from rl.strategy.params import ParamsError, StrategyParams

log = logging.getLogger(__name__)
STUDY_ATTR_SPACE = "search_space"
SEED_ATTR = "seed"
RUN_ATTR = "runs"              # trial user attr: the month runs (no curves)
CURVE_ATTR = "curve"           # trial user attr: the window's daily portfolio curve
SCORE_ATTR = "window"          # trial user attr: WindowScore.to_dict()


class Interrupted(Exception):
    """Ctrl-C during a study: finished trials are kept."""


def fold_study_name(study: str, fold: Fold) -> str:
    return f"{study}.fold{fold.index}"


# ------------------------------------------------------------------------ evaluation

_BANK: MonthBank | None = None        # the worker process' bank (inherited on fork)


def _init_worker(bank: MonthBank) -> None:
    global _BANK
    signal.signal(signal.SIGINT, signal.SIG_IGN)    # the parent handles Ctrl-C and stops us
    quiet_agent_logs()
    _BANK = bank


def evaluate(bank: MonthBank, params: StrategyParams, pairs: Sequence[tuple[str, str]]) -> list[MonthRun]:
    """One run per (symbol, month); a portfolio bank: one run per month over its symbols."""
    if bank.portfolio:
        return [bank.run_portfolio(syms, m, params) for m, syms in by_month(pairs)]
    return [bank.run(sym, m, params) for sym, m in pairs]


def by_month(pairs: Sequence[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    """(month, its symbols in the order given) for each month of `pairs`, months in order."""
    out: dict[str, list[str]] = {}
    for sym, m in pairs:
        out.setdefault(m, []).append(sym)
    return sorted(out.items())


def _work(task: tuple[int, StrategyParams, list[tuple[str, str]]]) -> tuple[int, list[MonthRun]]:
    tag, params, pairs = task
    assert _BANK is not None
    return tag, evaluate(_BANK, params, pairs)


class Evaluator:
    """Runs tasks (params over (symbol, month) pairs) in `jobs` processes, or inline for 1.
    submit() then next_done() -> (tag, runs); close() ends the workers."""

    def __init__(self, bank: MonthBank, jobs: int) -> None:
        self.bank = bank
        self.jobs = max(1, int(jobs))
        self._done: queue.Queue = queue.Queue()
        self._pool: Any = None
        self._inline: deque[tuple[int, StrategyParams, list[tuple[str, str]]]] = deque()
        self.pending = 0
        if self.jobs > 1:
            # fork shares the prepared months copy-on-write; spawn (Windows, macOS) makes each
            # worker prepare the months it needs itself (the bank is pickled without them)
            method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
            self._pool = mp.get_context(method).Pool(self.jobs, initializer=_init_worker, initargs=(bank,))

    def submit(self, tag: int, params: StrategyParams, pairs: Sequence[tuple[str, str]]) -> None:
        self.pending += 1
        if self._pool is None:          # run in next_done(), where Ctrl-C is let in
            self._inline.append((tag, params, list(pairs)))
            return
        self._pool.apply_async(_work, ((tag, params, list(pairs)),),
                               callback=lambda r: self._done.put(("ok", r)),
                               error_callback=lambda e, t=tag: self._done.put(("error", (t, e))))

    def next_done(self) -> tuple[int, list[MonthRun] | BaseException]:
        if self._inline:
            tag, params, pairs = self._inline.popleft()
            self.pending -= 1
            try:
                return tag, evaluate(self.bank, params, pairs)
            except Exception as exc:  # noqa: BLE001 - a failed run fails its trial, not the study
                return tag, exc
        while True:
            try:
                kind, payload = self._done.get(timeout=0.5)     # a timeout keeps Ctrl-C responsive
            except queue.Empty:
                continue
            self.pending -= 1
            return payload[0], payload[1]

    def close(self, terminate: bool = False) -> None:
        if self._pool is not None:
            if terminate:
                self._pool.terminate()
            else:
                self._pool.close()
            self._pool.join()
            self._pool = None


# ------------------------------------------------------------------------ one fold

@dataclass
class FoldOutcome:
    """A fold's chosen trial, its in-sample runs and its out-of-sample runs."""

    fold: Fold
    study_name: str
    trials_complete: int
    best_trial: int
    params: dict[str, int | float]                # the StrategyParams overrides chosen
    in_sample: WindowScore
    in_sample_runs: list[MonthRun]
    out_of_sample: WindowScore | None = None
    out_of_sample_runs: list[MonthRun] = field(default_factory=list)

    def row(self) -> dict:
        """The fold table's row."""
        oos = self.out_of_sample
        return {"fold": self.fold.index, **self.fold.to_dict(), "study": self.study_name,
                "trials": self.trials_complete, "best_trial": self.best_trial,
                "in_sample_score": self.in_sample.score, "in_sample_return_pct": self.in_sample.return_pct,
                "in_sample_max_drawdown_pct": self.in_sample.max_drawdown_pct,
                "in_sample_trades": self.in_sample.trades,
                "out_of_sample_score": None if oos is None else oos.score,
                "out_of_sample_return_pct": None if oos is None else oos.return_pct,
                "out_of_sample_max_drawdown_pct": None if oos is None else oos.max_drawdown_pct,
                "out_of_sample_trades": None if oos is None else oos.trades,
                "out_of_sample_sortino": None if oos is None else oos.sortino}


def pairs_of(months: Sequence[str], available: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    """(symbol, month) for each month and each symbol whose archive has it."""
    return [(s, m) for m in months for s in available if m in available[s]]


def _counts(study: optuna.Study) -> tuple[int, int]:
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
    done = sum(1 for t in trials if t.state == TrialState.COMPLETE)
    return done, len(trials) - done


def connect(url: str, attempts: int = 5) -> optuna.storages.BaseStorage:
    """Optuna's RDB storage at `url`. Workers started together on an empty database race to
    create its tables; the loser's CREATE fails, and on a retry it finds them made."""
    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url)
        except sqlalchemy.exc.SQLAlchemyError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 * (attempt + 1))        # backoff before the retry, not synchronisation
    raise AssertionError("unreachable")


def open_study(name: str, storage: str | optuna.storages.BaseStorage, seed: int | None) -> optuna.Study:
    """The fold's study, created or continued (resume), maximizing the score."""
    study = optuna.create_study(study_name=name, storage=storage, sampler=sampler_for(seed, 0),
                                direction="maximize", load_if_exists=True)
    study.set_user_attr(STUDY_ATTR_SPACE, space.describe())
    study.set_user_attr(SEED_ATTR, seed)
    return study


@contextmanager
def held_interrupt() -> Iterator[None]:
    """Hold Ctrl-C until the block ends, then raise it (KeyboardInterrupt). Around storage
    calls: interrupted between ask() and recording the trial as in flight, a trial would stay
    RUNNING in the storage, failed by nobody and counted against `trials`."""
    if threading.current_thread() is not threading.main_thread():
        yield                          # signals reach only the main thread
        return
    hit: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: hit.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if hit:
        raise KeyboardInterrupt


def sampler_for(seed: int | None, number: int) -> optuna.samplers.BaseSampler:
    """The TPE sampler that draws trial `number`: seeded with (seed, number), so workers on
    one study (same --seed) never draw the same parameters, and a rerun draws trial n as
    before given the same history. constant_liar: trials still running elsewhere count as
    bad, so parallel workers spread out instead of piling onto one spot."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=None if seed is None else seed * 100_003 + number,
                                          constant_liar=True)


def optimize_fold(study: optuna.Study, evaluator: Evaluator, base: StrategyParams,
                  pairs: Sequence[tuple[str, str]], trials: int, min_trades: int | None,
                  desc: str = "", show: bool | None = None,
                  on_told: Callable[[optuna.trial.FrozenTrial], None] | None = None) -> int:
    """Ask/tell until the study holds `trials` complete (or running) trials; returns the
    trials this call finished. Ctrl-C -> Interrupted (in-flight trials marked FAIL)."""
    done, running = _counts(study)
    show = sys.stderr.isatty() if show is None else show
    bar = tqdm(total=trials, initial=min(done, trials), desc=desc, unit="trial", file=sys.stderr,
               disable=not show, dynamic_ncols=True)
    in_flight: dict[int, optuna.trial.Trial] = {}
    finished = 0

    def best() -> str:
        try:
            return f"{study.best_value:.3f}"
        except ValueError:
            return "-"

    def fill() -> None:
        while len(in_flight) < evaluator.jobs:
            done_now, running_now = _counts(study)
            if done_now + running_now >= trials:
                return
            trial = study.ask()
            in_flight[trial.number] = trial
            # independent TPE samples at suggest time: the sampler seeded for this number draws it
            study.sampler = sampler_for(study.user_attrs.get(SEED_ATTR), trial.number)
            overrides = space.suggest(trial, base)
            try:
                params = space.apply(base, overrides)
            except ParamsError as exc:       # the space keeps the rules; say so if it did not
                study.tell(trial, state=TrialState.FAIL)
                del in_flight[trial.number]
                log.warning("trial %d: invalid parameters: %s", trial.number, exc)
                continue
            trial.set_user_attr("worker", worker_id())
            evaluator.submit(trial.number, params, pairs)

    try:
        # Ctrl-C is let in only while waiting for a result: a KeyboardInterrupt inside a
        # storage call could leave a trial RUNNING that nobody fails, or the storage's session
        # unusable for failing the ones in flight
        with held_interrupt():
            bar.set_postfix_str(f"best {best()}")
            fill()
        while in_flight:
            number, runs = evaluator.next_done()
            with held_interrupt():
                trial = in_flight.pop(number)
                if isinstance(runs, BaseException):
                    trial.set_user_attr("error", repr(runs)[:500])
                    study.tell(trial, state=TrialState.FAIL)
                    log.warning("trial %d failed: %r", number, runs)
                else:
                    ws = score_window(runs, min_trades)
                    times, curve = window_curve(runs)
                    trial.set_user_attr(SCORE_ATTR, ws.to_dict())
                    trial.set_user_attr(RUN_ATTR, [r.to_dict() for r in runs])
                    trial.set_user_attr(CURVE_ATTR, {"day_ms": times, "equity": curve})
                    frozen = study.tell(trial, ws.score)
                    finished += 1
                    bar.update(1)
                    bar.set_postfix_str(f"best {best()}")
                    if on_told is not None:
                        on_told(frozen)
                fill()
    except KeyboardInterrupt:
        for trial in in_flight.values():
            trial.set_user_attr("interrupted", True)
            study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        raise Interrupted(f"stopped by Ctrl-C: {finished} trial(s) of this run kept") from None
    finally:
        bar.close()
    return finished


def fold_outcome(study: optuna.Study, fold: Fold, base: StrategyParams) -> FoldOutcome:
    """The fold's best complete trial as a FoldOutcome (its in-sample figures from the trial)."""
    best = study.best_trial
    ws = best.user_attrs[SCORE_ATTR]
    runs = [MonthRun(**{**r, "day_ms": (), "equity": ()}) for r in best.user_attrs[RUN_ATTR]]
    complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    return FoldOutcome(fold=fold, study_name=study.study_name, trials_complete=complete,
                       best_trial=best.number,
                       params=space.overrides_from_trial_params(best.params, base),
                       in_sample=WindowScore(**ws), in_sample_runs=runs)


def trial_records(study: optuna.Study) -> list[dict]:
    """Every trial of a fold's study as a plain record (number, state, value, the sampled
    params, the window score, the month runs and the daily curve): what the overfitting
    statistics (deflated Sharpe, PBO) and the report read."""
    out = []
    for t in study.get_trials(deepcopy=False):
        out.append({"number": t.number, "state": t.state.name, "value": t.value,
                    "params": dict(t.params),
                    "datetime_start": t.datetime_start.isoformat() if t.datetime_start else None,
                    "datetime_complete": t.datetime_complete.isoformat() if t.datetime_complete else None,
                    "window": t.user_attrs.get(SCORE_ATTR), "runs": t.user_attrs.get(RUN_ATTR),
                    "curve": t.user_attrs.get(CURVE_ATTR)})
    return out


def worker_id() -> str:
    return f"{os.uname().nodename if hasattr(os, 'uname') else 'host'}:{os.getpid()}"


def wall_minutes(started: float) -> float:
    return (time.perf_counter() - started) / 60.0
