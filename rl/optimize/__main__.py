"""`python -m rl.optimize`: walk-forward Bayesian optimization of the strategy's numbers.

    python -m rl.optimize --data ../shared/data --symbols FILUSDT,NEARUSDT --train-months 2 \
        --test-months 1 --trials 200 --jobs 2 --study NAME [--storage URL] [--seed N] [--anchored]

Writes profiles/NAME.json (the profile) and profiles/NAME.walkforward.json (fold table, every
trial, the out-of-sample baselines); `--report out.html` also writes the optimization report.

    python -m rl.optimize report NAME|PATH.walkforward.json --out report.html [--data PATH ...]

renders the report again from a saved walk-forward result without rerunning any trial (the
random-entry baseline is computed and saved into the result and profile first if it lacks
one). See docs/optimize.md. Exit status: 0 done, 2 bad input, 130 stopped by Ctrl-C
(finished trials kept: rerun the same command to continue).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from config import PROFILES_DIR, PROJECT_ROOT, SettingsError
from rl.optimize.bank import MonthBank
from rl.optimize.folds import months_by_symbol
from rl.optimize.oos_baselines import DEFAULT_RUNS, compute
from rl.optimize.profile import save_baselines, write_profile, write_result
from rl.optimize.report import render_optimize_report
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
    p.add_argument("--baseline-runs", type=int, default=DEFAULT_RUNS,
                   help=f"random-entry runs over the stitched test months (default {DEFAULT_RUNS}; 0 = none)")
    p.add_argument("--report", metavar="FILE", help="also write the optimization report (self-contained HTML)")
    p.add_argument("--portfolio", action="store_true",
                   help="run each month's symbols as one portfolio on one account (rl.backtest.portfolio) "
                        "instead of one account per symbol")
    return p


def build_report_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rl.optimize report",
                                description="Render the optimization report of a saved walk-forward result.")
    p.add_argument("result", help="profile name (profiles/NAME.walkforward.json) or a .walkforward.json path")
    p.add_argument("--out", required=True, metavar="FILE", help="the HTML file to write")
    p.add_argument("--data", nargs="+", metavar="PATH",
                   help="archive root, when the result lacks its baseline and its recorded --data is elsewhere")
    p.add_argument("--baseline-runs", type=int, default=DEFAULT_RUNS,
                   help=f"random-entry runs when the result has none yet (default {DEFAULT_RUNS})")
    p.add_argument("--jobs", type=int, default=1, help="processes for those runs (default 1)")
    return p


def result_path(name: str) -> Path:
    if name.endswith(".json"):
        return Path(name).expanduser()
    if not _NAME.match(name):
        raise ValueError(f"result={name!r} is invalid: give a profile name or a .walkforward.json path")
    return PROFILES_DIR / f"{name}.walkforward.json"


def data_paths(recorded: Sequence[str]) -> list[str]:
    """The recorded --data paths, each as given or relative to the project (where the
    study ran from, usually)."""
    out = []
    for raw in recorded:
        p = Path(raw).expanduser()
        out.append(str(p if p.exists() or p.is_absolute() else PROJECT_ROOT / p))
    return out


def add_baselines(path: Path, doc: dict, data: Sequence[str], runs: int, jobs: int, log) -> None:
    cfg = doc["config"]
    bank = MonthBank.for_symbols(data, cfg["symbols"], cfg.get("balance"))
    section = compute(doc, bank, runs=runs, seed=int(cfg.get("seed") or 0), jobs=jobs, log=log)
    for f in save_baselines(path, doc, section):
        log(f"saved the out-of-sample baselines in {f}")


def report_main(argv: Sequence[str]) -> int:
    args = build_report_parser().parse_args(argv)
    log = lambda m: print(m, file=sys.stderr)        # noqa: E731
    try:
        path = result_path(args.result)
        if not path.is_file():
            raise ValueError(f"result={args.result!r} is invalid: no file {path} (python -m rl.optimize writes it)")
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ValueError(f"result={args.result!r} is invalid: {path} is not JSON ({exc})") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("folds"), list) or "config" not in doc:
            raise ValueError(f"result={args.result!r} is invalid: {path} is not a walk-forward result")
        if not doc.get("out_of_sample_baselines") and args.baseline_runs > 0 \
                and not doc.get("config", {}).get("portfolio"):
            if not 1 <= args.jobs <= 64:
                raise ValueError(f"--jobs={args.jobs!r} is invalid: it must be 1..64")
            add_baselines(path, doc, args.data or data_paths(doc["config"]["data"]), args.baseline_runs,
                          args.jobs, log)
        out = Path(args.out).expanduser()
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(render_optimize_report(doc), encoding="utf-8")
    except (SettingsError, ValueError, FileNotFoundError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"report: {out}")
    return 0


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
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["report"]:
        return report_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        if args.baseline_runs < 0:
            raise ValueError(f"--baseline-runs={args.baseline_runs!r} is invalid: it must be >= 0")
        cfg = config_from_args(args)
        months_by_symbol(cfg.data, cfg.symbols)          # bad --data / --symbols: one line now
    except (SettingsError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        # one bank for the study and the baselines after it: the test months are prepared once
        bank = MonthBank.for_symbols(cfg.data, cfg.symbols, cfg.balance, portfolio=cfg.portfolio)
        result = run_walk_forward(cfg, log=lambda m: print(m, file=sys.stderr), bank=bank)
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
    log = lambda m: print(m, file=sys.stderr)        # noqa: E731
    if args.baseline_runs > 0 and cfg.portfolio:
        # the random-entry runs are one account per (symbol, month); set against a portfolio's
        # one account they would compare different things, so none is claimed (the evidence
        # panel then says there is no baseline, and live trading stays gated)
        log("no out-of-sample baselines for a --portfolio study: random entries run one account "
            "per symbol-month, not a portfolio")
    elif args.baseline_runs > 0:
        try:
            result.baselines = compute(result.to_json(), bank, runs=args.baseline_runs,
                                       seed=cfg.seed or 0, jobs=cfg.jobs, log=log)
        except KeyboardInterrupt:
            print("stopped by Ctrl-C while running the baselines: the trials are kept; rerun the same "
                  "command to write the profile", file=sys.stderr)
            return 130
        b = result.baselines
        log(f"stitched out-of-sample {b['agent']['return_pct']:+.2f} %; random entries median "
            f"{b['random_entries']['return_pct']['median']:+.2f} % ({args.baseline_runs} runs); "
            f"buy & hold {b['buy_hold']['return_pct']:+.2f} %")
    out = Path(args.out).expanduser() if args.out else None
    prof = write_profile(result, cfg.study, out)
    res = write_result(result, cfg.study, out)
    print(f"profile: {prof}\nwalk-forward result: {res}")
    if args.report:
        report = Path(args.report).expanduser()
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(render_optimize_report(json.loads(res.read_text(encoding="utf-8"))), encoding="utf-8")
        print(f"report: {report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
