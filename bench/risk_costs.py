"""Risk and costs: what each protection/cost change does on its own and all together.

    python bench/risk_costs.py                    # every symbol-month under the data root
    python bench/risk_costs.py --jobs 2 --markdown

Each month runs with default settings except for the variant's overrides (env-var names, as
`python -m rl.backtest --set`), from a 10,000 USDT start. Printed per variant and month:
trades, fees as % of the start, return %, max drawdown %, and the number of protection pauses;
then the median month per variant. The variants:

- `none`: the cost and risk rules of the risk issue off (no notional cap, no least reward,
  protections off, IOC entries). The fee-aware sizing of a stop-out (entry offset and both
  fees inside the risk budget) has no switch and stays on.
- `sizing`: only the notional cap (MAX_NOTIONAL_PERCENT) and least reward (MIN_REWARD_R).
- `protections`: only the drawdown guard, daily loss limit and stop-loss guard.
- `maker`: only post-only maker entries (ENTRY_ORDER=maker).
- `defaults`: everything at its default (sizing + protections, IOC entries).
- `defaults+maker`: the defaults with maker entries.
- `maker_tp`: only resting maker take-profits (TAKE_PROFIT_ORDER=maker).
- `defaults+maker_tp`: the defaults with resting maker take-profits.
- `defaults+maker+maker_tp`: the defaults with maker entries and maker take-profits.
Nothing here is tuned: the variants are the settings' defaults switched on and off.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.backtest import _bench_base, _month_bounds, data_root, months_available  # noqa: E402

PROTECTIONS_OFF = {"MAX_DRAWDOWN_PERCENT": "0", "DAILY_LOSS_LIMIT_PERCENT": "0", "STOPLOSS_GUARD_TRADES": "0"}
SIZING_OFF = {"MAX_NOTIONAL_PERCENT": "12500", "MIN_REWARD_R": "0.01"}  # > 0: a target must pay the fees
VARIANTS: dict[str, dict[str, str]] = {
    "none": {**PROTECTIONS_OFF, **SIZING_OFF},
    "sizing": dict(PROTECTIONS_OFF),
    "protections": dict(SIZING_OFF),
    "maker": {**PROTECTIONS_OFF, **SIZING_OFF, "ENTRY_ORDER": "maker"},
    "defaults": {},
    "defaults+maker": {"ENTRY_ORDER": "maker"},
    "maker_tp": {**PROTECTIONS_OFF, **SIZING_OFF, "TAKE_PROFIT_ORDER": "maker"},
    "defaults+maker_tp": {"TAKE_PROFIT_ORDER": "maker"},
    "defaults+maker+maker_tp": {"ENTRY_ORDER": "maker", "TAKE_PROFIT_ORDER": "maker"},
}


def run_one(job: tuple[str, str, str]) -> dict:
    from rl.backtest.data import load_backtest_data
    from rl.backtest.engine import backtest_settings, parse_overrides, run_backtest

    variant, symbol, month = job
    lo, hi = _month_bounds(month, None)
    overrides = parse_overrides([f"{k}={v}" for k, v in VARIANTS[variant].items()])
    settings = backtest_settings(symbol, 10_000.0, overrides, base=_bench_base())
    data = load_backtest_data([data_root()], symbol, lo, hi)
    doc = run_backtest(data, settings, progress=False).to_json()
    start = float(doc["start_balance"])
    pauses = (doc.get("protections") or {}).get("pauses") or []
    trades = doc["trades"]
    return {"variant": variant, "symbol": symbol, "month": month,
            "trades": len(trades) if isinstance(trades, list) else int(trades),
            "fees_pct": 100.0 * float(doc["fees"]) / start, "return_pct": float(doc["return_pct"]),
            "max_dd_pct": float(doc["max_drawdown_pct"]), "pauses": len(pauses)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--markdown", action="store_true", help="print markdown tables")
    args = ap.parse_args(argv)
    months = months_available(data_root())
    if not months:
        print(f"no archive months under {data_root()} (set BINANCE_DATA_DIR)")
        return 1
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    jobs = [(v, s, m) for v in variants for s, m in months]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(run_one, jobs))
    cols = ("trades", "fees_pct", "return_pct", "max_dd_pct", "pauses")
    for v in variants:
        mine = [r for r in rows if r["variant"] == v]
        print(f"\n{v}: {', '.join(f'{k}={x}' for k, x in VARIANTS[v].items()) or 'defaults'}")
        if args.markdown:
            print("| month | trades | fees % | return % | max DD % | pauses |\n|---|---|---|---|---|---|")
        for r in mine:
            cells = [f"{r['symbol']} {r['month']}", str(r["trades"]), f"{r['fees_pct']:.2f}",
                     f"{r['return_pct']:+.2f}", f"{r['max_dd_pct']:.2f}", str(r["pauses"])]
            print(("| " + " | ".join(cells) + " |") if args.markdown else "  ".join(f"{c:>16}" for c in cells))
        med = {k: statistics.median(r[k] for r in mine) for k in cols}
        cells = ["median", f"{med['trades']:g}", f"{med['fees_pct']:.2f}", f"{med['return_pct']:+.2f}",
                 f"{med['max_dd_pct']:.2f}", f"{med['pauses']:g}"]
        print(("| " + " | ".join(f"**{c}**" for c in cells) + " |") if args.markdown
              else "  ".join(f"{c:>16}" for c in cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
