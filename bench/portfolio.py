"""Portfolio backtest benchmark: one account over 3 symbols against three one-symbol runs,
and memory against symbols and months.

    python bench/portfolio.py                  # the three tables below
    python bench/portfolio.py --repeat 2       # each case twice (this machine is shared: ranges)

Cases (each in its own process, so its peak RSS is its own):
- speed: FILUSDT + NEARUSDT + a third symbol for 2023-09 as ONE portfolio, against the same
  three months run one symbol at a time (the sum of their seconds). Only FILUSDT and NEARUSDT
  overlap in ../shared/data, so the third is AVAXUSDT 2026-07 moved back a whole number of
  weeks onto 2023-08-30..09-29 (weekdays and UTC week boundaries kept; the bars are real, only
  their dates move), with its June as warm-up: a realistic third month that overlaps.
- memory per symbol: 1, 2 and 3 symbols of that month.
- memory per month: FILUSDT + NEARUSDT over 1 month (2023-09) and 2 months (2023-09..10).
Printed per case: bars, steps, seconds, bars/s, the RSS right after loading the data (the
archive frames: they grow with the bars loaded) and the peak RSS; `run MB` = peak - loaded, what
the run itself adds (it should grow with the symbols, not with the months).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.backtest import _bench_base, _current_rss_mb, _rss_mb, data_root  # noqa: E402

WEEK_MS = 7 * 86_400_000
MONTH = ("2023-09-01", "2023-09-30")
TWO_MONTHS = ("2023-09-01", "2023-10-31")


def _shifted_avax():
    """AVAXUSDT 2026-07 (June as warm-up) moved back whole weeks to start near 2023-09-01."""
    import pandas as pd

    from rl.backtest.data import load_backtest_data
    from rl.market.candles import index_to_ms

    data = load_backtest_data([data_root()], "AVAXUSDT", "2026-07-01", "2026-07-30")
    start = int(index_to_ms(data.frame.index)[data.first_bar])
    target = int(pd.Timestamp("2023-09-01", tz="UTC").timestamp() * 1000)
    shift = round((start - target) / WEEK_MS) * WEEK_MS
    frame = data.frame.copy()
    frame.index = frame.index - pd.Timedelta(milliseconds=shift)
    return replace(data, frame=frame, start_ms=data.start_ms - shift, end_ms=data.end_ms - shift, gaps=[])


def _load(symbol: str, span: tuple[str, str]):
    from rl.backtest.data import load_backtest_data

    if symbol == "AVAXUSDT*":
        return _shifted_avax()
    return load_backtest_data([data_root()], symbol, *span)


def run_case(symbols: list[str], span: tuple[str, str], alone: bool) -> dict:
    """One case in this process: the portfolio of `symbols`, or (alone) each one by itself."""
    from rl.backtest.engine import backtest_settings, run_backtest
    from rl.backtest.portfolio import run_portfolio

    t0 = time.perf_counter()
    datas = [_load(s, span) for s in symbols]
    datas = [replace(d, symbol=d.symbol) for d in datas]
    load_s = time.perf_counter() - t0
    loaded = _current_rss_mb()
    names = tuple(d.symbol for d in datas)
    if alone:
        results = [run_backtest(d, backtest_settings(d.symbol, base=_bench_base()), progress=False) for d in datas]
        bars, seconds = sum(r.bars for r in results), sum(r.seconds for r in results)
        steps, trades = bars, sum(r.summary["trades"] for r in results)
    else:
        r = run_portfolio(datas, backtest_settings(names, base=_bench_base()), progress=False)
        bars, seconds, steps, trades = r.bars, r.seconds, r.steps, r.summary["trades"]
    return {"symbols": list(names), "alone": alone, "span": list(span), "bars": bars, "steps": steps,
            "seconds": round(seconds, 2), "bars_per_second": round(bars / seconds, 1),
            "load_seconds": round(load_s, 2), "rss_after_load_mb": round(loaded, 1),
            "peak_rss_mb": round(_rss_mb(), 1), "trades": trades}


CASES = [
    ("3-symbol portfolio, 2023-09", ["FILUSDT", "NEARUSDT", "AVAXUSDT*"], MONTH, False),
    ("the same, 3 one-symbol runs", ["FILUSDT", "NEARUSDT", "AVAXUSDT*"], MONTH, True),
    ("1 symbol, 2023-09", ["FILUSDT"], MONTH, False),
    ("2 symbols, 2023-09", ["FILUSDT", "NEARUSDT"], MONTH, False),
    ("2 symbols, 2023-09..10", ["FILUSDT", "NEARUSDT"], TWO_MONTHS, False),
]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        c = json.loads(args.one)
        print(json.dumps(run_case(c["symbols"], tuple(c["span"]), c["alone"])))
        return 0
    if not (data_root() / "binance").is_dir():
        print(f"no archive under {data_root()} (set BINANCE_DATA_DIR)", file=sys.stderr)
        return 1
    print(f"{'case':<30}{'bars':>9}{'steps':>9}{'seconds':>9}{'bars/s':>9}{'data MB':>9}{'peak MB':>9}"
          f"{'run MB':>8}{'trades':>7}")
    for _ in range(args.repeat):
        for label, symbols, span, alone in CASES:
            one = json.dumps({"symbols": symbols, "span": span, "alone": alone})
            proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--one", one],
                                  capture_output=True, text=True, cwd=str(ROOT))
            if proc.returncode != 0:
                print(f"{label:<30} FAILED: {proc.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"{label:<30}{r['bars']:>9,}{r['steps']:>9,}{r['seconds']:>9.2f}{r['bars_per_second']:>9,.0f}"
                  f"{r['rss_after_load_mb']:>9.1f}{r['peak_rss_mb']:>9.1f}"
                  f"{r['peak_rss_mb'] - r['rss_after_load_mb']:>8.1f}{r['trades']:>7}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
