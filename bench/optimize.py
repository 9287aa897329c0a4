"""Optimizer speed benchmark: month-trials per minute on prepared months (rl.optimize).

    python bench/optimize.py                                  # FILUSDT,NEARUSDT 2023-08..09, 6 trials, 2 jobs
    python bench/optimize.py --symbols FILUSDT --months 2023-09 --trials 8 --jobs 1
    python bench/optimize.py --plain                           # also time one unprepared backtest

A month-trial is one trial's run of one (symbol, month). Trials draw their parameters from the
search space (rl.optimize.space) with Optuna's TPE sampler (seeded, in memory), exactly as a
study does; each trial runs every (symbol, month) given. Printed: the time to prepare the
months once, the wall time of the trials, month-trials per minute (wall), CPU seconds per
month-trial (all processes) and the load average before and after: on a shared machine the
wall figure says as much about the neighbours as about the code, the CPU figure less so.
The issue's aim is >= 60 month-trials per minute on this 2-core machine.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TARGET_MONTH_TRIALS_PER_MINUTE = 60


def _cpu_seconds() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv: list[str] | None = None) -> int:
    import optuna

    from rl.backtest.engine import run_backtest
    from rl.optimize.bank import MonthBank, quiet_agent_logs
    from rl.optimize.study import Evaluator, open_study, optimize_fold

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=os.environ.get("BINANCE_DATA_DIR", str(ROOT.parent / "shared" / "data")))
    p.add_argument("--symbols", default="FILUSDT,NEARUSDT")
    p.add_argument("--months", default="2023-08,2023-09")
    p.add_argument("--trials", type=int, default=6)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plain", action="store_true", help="also time the first month as a plain backtest")
    args = p.parse_args(argv)
    quiet_agent_logs()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
    pairs = [(s, m.strip()) for m in args.months.split(",") for s in symbols]
    bank = MonthBank.for_symbols([args.data], symbols)
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    bank.prepare(pairs)
    prep = time.perf_counter() - t0
    print(f"prepared {len(pairs)} symbol-months in {prep:.1f} s "
          f"(peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")
    if args.plain:
        sym, m = pairs[0]
        pm = bank.month(sym, m)
        t = time.perf_counter()
        run_backtest(pm.data, bank.settings[sym], progress=False)
        plain = time.perf_counter() - t
        t = time.perf_counter()
        run_backtest(pm.data, bank.settings[sym], progress=False, month=pm)
        prepared = time.perf_counter() - t
        print(f"{sym} {m}, default params: plain backtest {plain:.2f} s, on the prepared month {prepared:.2f} s")
    study = open_study("bench", optuna.storages.InMemoryStorage(), args.seed)
    from rl.strategy.params import StrategyParams
    base = StrategyParams.from_settings(bank.settings[symbols[0]])
    ev = Evaluator(bank, args.jobs)
    cpu0 = _cpu_seconds()
    t1 = time.perf_counter()
    n = optimize_fold(study, ev, base, pairs, args.trials, min_trades=None, show=sys.stderr.isatty())
    ev.close()                                   # joins the workers: their CPU time is counted
    wall = time.perf_counter() - t1
    cpu = _cpu_seconds() - cpu0
    runs = n * len(pairs)
    rate = runs / (wall / 60.0)
    load1 = os.getloadavg()
    print(f"{n} trials x {len(pairs)} symbol-months = {runs} month-trials in {wall:.1f} s with {args.jobs} job(s): "
          f"{rate:.1f} month-trials/min (aim >= {TARGET_MONTH_TRIALS_PER_MINUTE}); "
          f"{cpu / runs:.2f} CPU s per month-trial")
    print(f"load average (1 min) before {load0[0]:.2f}, after {load1[0]:.2f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
