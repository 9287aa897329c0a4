"""Backtest speed benchmark: the full agent over each month of 1m bars in ../shared/data.

    python bench/backtest.py                 # every symbol-month found; one subprocess each
    python bench/backtest.py --symbol FILUSDT --month 2023-09
    python bench/backtest.py --profile FILUSDT 2023-09 [--days 3]   # cProfile: where time goes

Each month runs in its own process so its peak memory (ru_maxrss) is its own. Printed per
month: bars, seconds, bars/s, peak RSS and the RSS right after loading the data (the part that
grows with the candles: the archive frame). The target is >= 60,000 bars/s with memory flat in
the number of candles (docs/backtest.md).
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import re
import subprocess
import sys
import time
from calendar import monthrange
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TARGET_BARS_PER_SECOND = 60_000


def data_root() -> Path:
    env = os.environ.get("BINANCE_DATA_DIR")
    return Path(env) if env else ROOT.parent / "shared" / "data"


def months_available(root: Path) -> list[tuple[str, str]]:
    """(symbol, YYYY-MM) of every monthly 1m archive file under root."""
    base = root / "binance" / "futures" / "um" / "monthly" / "klines"
    out = []
    for f in sorted(base.glob("*/1m/*-1m-*.zip")) if base.is_dir() else []:
        m = re.match(r"^([A-Z0-9]+)-1m-(\d{4}-\d{2})\.zip$", f.name)
        if m:
            out.append((m.group(1), m.group(2)))
    return out


def _rss_mb() -> float:
    """Peak resident memory of this process so far, MB (Linux reports KiB); NaN on Windows."""
    try:
        import resource
    except ImportError:          # Windows has no getrusage
        return float("nan")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _current_rss_mb() -> float:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


def _month_bounds(month: str, days: int | None) -> tuple[str, str]:
    y, m = map(int, month.split("-"))
    last = monthrange(y, m)[1] if days is None else min(days, monthrange(y, m)[1])
    return f"{month}-01", f"{month}-{last:02d}"


def run_one(symbol: str, month: str, days: int | None = None) -> dict:
    """One month (or its first `days` days) through rl.backtest.engine; figures as a dict."""
    from rl.backtest.data import load_backtest_data
    from rl.backtest.engine import backtest_settings, run_backtest

    lo, hi = _month_bounds(month, days)
    settings = backtest_settings(symbol, base=_bench_base())
    t0 = time.perf_counter()
    data = load_backtest_data([data_root()], symbol, lo, hi)
    load_s = time.perf_counter() - t0
    rss_loaded = _current_rss_mb()
    result = run_backtest(data, settings, progress=False)
    return {"symbol": symbol, "month": month, "bars": result.bars, "seconds": round(result.seconds, 2),
            "bars_per_second": round(result.bars_per_second, 1), "load_seconds": round(load_s, 2),
            "rss_after_load_mb": round(rss_loaded, 1), "peak_rss_mb": round(_rss_mb(), 1),
            "trades": result.summary["trades"], "return_pct": round(result.summary["return_pct"], 3)}


def _bench_base():
    """Default settings, not the developer's .env: the benchmark must be reproducible."""
    from config import load_settings
    return load_settings(environ={}, dotenv_path=os.devnull)


def profile_one(symbol: str, month: str, days: int | None, top: int = 30) -> str:
    from rl.backtest.data import load_backtest_data
    from rl.backtest.engine import backtest_settings, run_backtest

    lo, hi = _month_bounds(month, days)
    data = load_backtest_data([data_root()], symbol, lo, hi)
    settings = backtest_settings(symbol, base=_bench_base())
    prof = cProfile.Profile()
    prof.enable()
    result = run_backtest(data, settings, progress=False)
    prof.disable()
    out = io.StringIO()
    out.write(f"{symbol} {lo}..{hi}: {result.bars} bars in {result.seconds:.2f} s "
              f"({result.bars_per_second:,.0f} bars/s under cProfile)\n")
    st = pstats.Stats(prof, stream=out)
    st.sort_stats("cumulative").print_stats(top)
    st.sort_stats("tottime").print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--symbol")
    p.add_argument("--month", help="YYYY-MM")
    p.add_argument("--days", type=int, help="only the first N days of each month (quick look)")
    p.add_argument("--profile", nargs=2, metavar=("SYMBOL", "MONTH"))
    p.add_argument("--one", nargs=2, metavar=("SYMBOL", "MONTH"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one[0], args.one[1], args.days)))
        return 0
    if args.profile:
        print(profile_one(args.profile[0], args.profile[1], args.days))
        return 0
    root = data_root()
    todo = [(s, m) for s, m in months_available(root)
            if (args.symbol is None or s == args.symbol.upper()) and (args.month is None or m == args.month)]
    if not todo:
        print(f"no monthly 1m archive files under {root} (set BINANCE_DATA_DIR)", file=sys.stderr)
        return 1
    print(f"{'symbol':<10}{'month':<9}{'bars':>8}{'seconds':>9}{'bars/s':>10}{'peak MB':>9}"
          f"{'data MB':>9}{'trades':>7}  target {TARGET_BARS_PER_SECOND:,} bars/s")
    worst = None
    for sym, month in todo:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--one", sym, month]
        if args.days:
            cmd += ["--days", str(args.days)]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=str(ROOT))
        if proc.returncode != 0:
            print(f"{sym:<10}{month:<9} FAILED: {proc.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{sym:<10}{month:<9}{r['bars']:>8}{r['seconds']:>9.2f}{r['bars_per_second']:>10,.0f}"
              f"{r['peak_rss_mb']:>9.1f}{r['rss_after_load_mb']:>9.1f}"
              f"{r['trades']:>7}", flush=True)
        worst = r["bars_per_second"] if worst is None else min(worst, r["bars_per_second"])
    if worst is not None:
        verdict = "meets" if worst >= TARGET_BARS_PER_SECOND else "MISSES"
        print(f"slowest month: {worst:,.0f} bars/s — {verdict} the {TARGET_BARS_PER_SECOND:,} bars/s target")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
