"""`python -m rl.optimize`: walk-forward Bayesian optimization of the strategy's numbers.

    python -m rl.optimize --data ../shared/data --symbols FILUSDT,NEARUSDT --train-months 2 \
        --test-months 1 --trials 200 --jobs 2 --study NAME [--storage URL] [--seed N] [--anchored]

Writes profiles/NAME.json (the profile) and profiles/NAME.walkforward.json (fold table, every
trial); see docs/optimize.md. Exit status: 0 done, 2 bad input, 130 stopped by Ctrl-C
(finished trials kept: rerun the same command to continue).
"""
from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from config import SettingsError
from rl.optimize.folds import months_by_symbol
from rl.optimize.profile import write_profile, write_result
from rl.optimize.study import Interrupted
from rl.optimize.walkforward import WalkForwardConfig, format_fold_table, run_walk_forward

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rl.optimize",
                                description="Walk-forward Bayesian optimization (Optuna TPE) of the strategy.")
    p.add_argument("--data", nargs="+", required=True, metavar="PATH", help="archive root or files (../shared/data)")
    p.add_argument("--symbols", required=True, help="comma-separated symbols, e.g. FILUSDT,NEARUSDT")
    p.add_argument("--train-months", type=int, default=2, help="months each fold optimizes on (default 2)")
    p.add_argument("--test-months", type=int, default=1, help="unseen months each fold is judged on (default 1)")
    p.add_argument("--trials", type=int, default=200, help="trials per fold, the study's total (default 200)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes on this machine (default 1)")
    p.add_argument("--study", required=True, help="study name: storage key and profiles/NAME.json")
    p.add_argument("--storage", help="Optuna storage URL (default sqlite file data/optimize/NAME.db); "
                                     "postgresql://user:pass@host/db lets several machines share the study")
    p.add_argument("--seed", type=int, default=0, help="sampler seed (fold k uses seed + k; default 0)")
    p.add_argument("--anchored", action="store_true", help="anchored folds: training always starts at the first month")
    p.add_argument("--min-trades", type=int, default=5,
                   help="least closed trades per symbol-month of a window before it scores (default 5)")
    p.add_argument("--out", metavar="DIR", help="where NAME.json and NAME.walkforward.json go (default profiles/)")
    p.add_argument("--balance", type=float, help="starting balance per symbol-month (default PAPER_BALANCE)")
    p.add_argument("--portfolio", action="store_true",
                   help="run each month's symbols as one portfolio on one account (rl.backtest.portfolio) "
                        "instead of one account per symbol")
    return p


def config_from_args(args: argparse.Namespace) -> WalkForwardConfig:
    symbols = tuple(s.strip().upper() for s in args.symbols.split(",") if s.strip())
    if not symbols or len(set(symbols)) != len(symbols):
        raise ValueError(f"--symbols={args.symbols!r} is invalid: list distinct symbols, e.g. FILUSDT,NEARUSDT")
    if not _NAME.match(args.study):
        raise ValueError(f"--study={args.study!r} is invalid: use letters, digits, _ . - (it names files)")
    if args.trials < 1:
        raise ValueError(f"--trials={args.trials!r} is invalid: it must be >= 1")
    if not 1 <= args.jobs <= 64:
        raise ValueError(f"--jobs={args.jobs!r} is invalid: it must be 1..64")
    if args.min_trades < 0:
        raise ValueError(f"--min-trades={args.min_trades!r} is invalid: it must be >= 0")
    if args.storage is not None and "://" not in args.storage:
        raise ValueError(f"--storage={args.storage!r} is invalid: give a URL such as "
                         "sqlite:///study.db or postgresql://user:pass@host/db")
    return WalkForwardConfig(data=tuple(args.data), symbols=symbols, study=args.study,
                             train_months=args.train_months, test_months=args.test_months,
                             trials=args.trials, jobs=args.jobs, storage=args.storage, seed=args.seed,
                             anchored=args.anchored, min_trades_per_run=args.min_trades, balance=args.balance,
                             portfolio=args.portfolio)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = config_from_args(args)
        months_by_symbol(cfg.data, cfg.symbols)          # bad --data / --symbols: one line now
    except (SettingsError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        result = run_walk_forward(cfg, log=lambda m: print(m, file=sys.stderr))
    except Interrupted as exc:
        print(f"{exc}; rerun the same command to continue the study", file=sys.stderr)
        return 130
    except KeyboardInterrupt:            # while preparing months or running a fold's test months
        print("stopped by Ctrl-C: finished trials are kept; rerun the same command to continue",
              file=sys.stderr)
        return 130
    except (SettingsError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_fold_table(result))
    rate = result.month_trials_per_minute
    print(f"time {result.seconds:.0f} s (preparing months {result.prepare_seconds:.0f} s); "
          f"{result.month_trials} month-trials in {result.optimize_seconds:.0f} s"
          + (f" = {rate:.1f} month-trials/min" if rate is not None else ""))
    out = Path(args.out).expanduser() if args.out else None
    prof = write_profile(result, cfg.study, out)
    res = write_result(result, cfg.study, out)
    print(f"profile: {prof}\nwalk-forward result: {res}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
