"""The learned trade filter against not learning: TRADE_FILTER=on vs off (today's agent).

    python bench/learner.py                 # the shared ranges, 2 processes
    python bench/learner.py --jobs 1 --markdown

Each symbol's months run as ONE continuous backtest (`run_backtest` over the whole range, one
store), so everything learned (the six weights, and with the filter on its model) is carried
from month to month, as a live agent would carry it. Every arm starts from the same 10,000 USDT
and default settings, never the developer's .env. Arms: `off` (today's agent, the frozen
baseline), `on` (the learned filter) and `base` (the filter with its features ignored: it
learns only the average net R, a control for "it only helped by trading less"). Printed per
month and stitched, as off / on / base: return %, max drawdown % (within the month / over the
range), fees (USDT), closed trades, mean net R per trade (what trade selection changes; a
smaller stake does not) and the mean stake (share of the risk budget); then each filter's
trades learned from and how often it said no.

A fourth arm, `random` (`--random-runs N`, default 20; 0 leaves it out), is chance with the same
exits, fee-aware sizing and protections: rl.backtest.baselines.RandomEntries with as many entries
as the frozen agent (`off`) opened over the range, drawn uniformly over it, one seed per run
(seeds 0..N-1), each run as continuous as the others. Its cells are the median of the runs; the
stitched line adds the 10-90 % band and where `off` and `on` fall among the runs.

Out of sample = every month after a range's first: the filter warms up on its first 30 trades
(taken as the frozen agent takes them). Nothing is tuned here: the filter runs with the
defaults of rl.strategy.params.FilterParams.
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
from calendar import monthrange
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.backtest import _bench_base, data_root  # noqa: E402

RANGES = (("FILUSDT", "2023-08", "2023-11"), ("NEARUSDT", "2023-08", "2023-10"),
          ("AVAXUSDT", "2026-06", "2026-07"))
# off: today's agent (frozen: no filter); on: the learned filter; base: the filter learning only
# the average net R (features ignored): the control that says whether picking trades helps
# beyond trading less while the agent loses on average
ARMS = ("off", "on", "base")
RANDOM_RUNS = 20


def _months(first: str, last: str) -> list[str]:
    y, m = map(int, first.split("-"))
    out = []
    while f"{y:04d}-{m:02d}" <= last:
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def _ms(month: str) -> int:
    y, m = map(int, month.split("-"))
    return int(datetime(y, m, 1, tzinfo=UTC).timestamp() * 1000)


def _max_dd(eq: np.ndarray) -> float:
    if not len(eq):
        return 0.0
    peak = np.maximum.accumulate(eq)
    return float(np.max((peak - eq) / peak)) * 100.0


def _avg_r(trades: list[dict]) -> float | None:
    """Mean net R per closed trade: what trade selection changes (a smaller stake does not)."""
    rs = [float(x["r_multiple"]) for x in trades if x.get("r_multiple") is not None]
    return statistics.mean(rs) if rs else None


def _stake(trades: list[dict]) -> float | None:
    """Mean share of the risk budget the filter staked (1 for every trade without it)."""
    if not trades:
        return None
    return statistics.mean(float(((x.get("thought_chain") or {}).get("perception") or {})
                                 .get("trade_filter", {}).get("stake", 1.0)) for x in trades)


def run_arm(job: tuple) -> dict:
    """One continuous run of a symbol's range: (symbol, first, last, arm) with the filter `arm`
    (off/on/base), or (symbol, first, last, "random", seed, entries, (start_ms, end_ms))."""
    from rl.backtest.baselines import RandomEntries
    from rl.backtest.data import load_backtest_data
    from rl.backtest.engine import backtest_settings, run_backtest
    from rl.knowledge.store import KnowledgeStore
    from rl.strategy.params import StrategyParams

    logging.getLogger("rl").setLevel(logging.ERROR)     # the agent's run log is not the table
    symbol, first, last, arm = job[:4]
    y, m = map(int, last.split("-"))
    settings = backtest_settings(symbol, 10_000.0, {"trade_filter": "on" if arm in ("on", "base") else "off"},
                                 base=_bench_base())
    params = StrategyParams.from_settings(settings)
    if arm == "base":
        params = params.replace_flat({"filter.use_features": 0})
    policy = None
    if arm == "random":
        seed, count, (start, end) = job[4:]
        policy = RandomEntries.scheduled(count, start, end, seed)
    data = load_backtest_data([data_root()], symbol, f"{first}-01", f"{last}-{monthrange(y, m)[1]:02d}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "store.db"
        res = run_backtest(data, settings, progress=False, store_path=path, params=params, entry_policy=policy)
        store = KnowledgeStore(path, default_weights=res.final_weights)
        fstate = store.filter_state() or {}
        store.close()
    t, eq = res.equity_time_ms, res.equity
    months = []
    for mo in _months(first, last):
        lo, hi = _ms(mo), _ms(_months(mo, "9999-12")[1])
        i0 = int(np.searchsorted(t, lo, side="left"))
        i1 = int(np.searchsorted(t, hi, side="left"))
        start = float(eq[max(0, i0 - 1)]) if i0 > 0 else float(eq[0])
        seg = np.concatenate(([start], eq[i0:i1]))
        closed = [x for x in res.trades if lo <= int(x["closed_ms"]) < hi]
        months.append({"month": mo, "return_pct": (float(seg[-1]) / start - 1.0) * 100.0,
                       "max_dd_pct": _max_dd(seg), "fees": sum(float(x["fees"] or 0) for x in closed),
                       "trades": len(closed), "avg_r": _avg_r(closed), "stake": _stake(closed)})
    return {"symbol": symbol, "arm": arm, "months": months,
            "stitched": {"return_pct": (float(eq[-1]) / float(eq[0]) - 1.0) * 100.0, "max_dd_pct": _max_dd(eq),
                         "fees": sum(float(x["fees"] or 0) for x in res.trades), "trades": len(res.trades),
                         "avg_r": _avg_r(res.trades), "stake": _stake(res.trades)},
            "filter": {k: fstate.get(k) for k in ("learned", "seen", "taken", "skipped", "explored")},
            "opened": len(res.trades) + len(res.open_trades),
            "span": (int(t[0]), int(t[-1])), "seconds": res.seconds}


def random_median(runs: list[dict]) -> dict:
    """The random arm as one row set: each month's and the stitched figures are the median over
    the runs (None where no run has a value); `stitched_returns` keeps every run's return."""
    def med(values: list) -> float | None:
        vals = [v for v in values if v is not None]
        return statistics.median(vals) if vals else None

    keys = ("return_pct", "max_dd_pct", "fees", "trades", "avg_r", "stake")
    months = [{"month": mo["month"], **{k: med([r["months"][i][k] for r in runs]) for k in keys}}
              for i, mo in enumerate(runs[0]["months"])]
    stitched = {k: med([r["stitched"][k] for r in runs]) for k in keys}
    for row in months + [stitched]:
        row["trades"] = int(round(row["trades"])) if row["trades"] is not None else None
    return {"symbol": runs[0]["symbol"], "arm": "random", "months": months, "stitched": stitched,
            "stitched_returns": sorted(r["stitched"]["return_pct"] for r in runs)}


def percentile_among(value: float, samples: list[float]) -> float:
    """Share of `samples` below `value` (ties count half), in %."""
    below = sum(1 for x in samples if x < value) + 0.5 * sum(1 for x in samples if x == value)
    return 100.0 * below / len(samples)


def _cell(values: list, fmt: str) -> str:
    return " / ".join("—" if v is None else fmt.format(v) for v in values)


_COLUMNS = (("return %", "return_pct", "{:+.2f}"), ("max DD %", "max_dd_pct", "{:.2f}"),
            ("fees", "fees", "{:.0f}"), ("trades", "trades", "{:d}"), ("avg R", "avg_r", "{:+.3f}"),
            ("stake", "stake", "{:.2f}"))


def _table(results: list[dict], markdown: bool) -> str:
    by = {(r["symbol"], r["arm"]): r for r in results}
    shown = ARMS + (("random",) if any(r["arm"] == "random" for r in results) else ())
    head = ["symbol", "month"] + [f"{name} ({'/'.join(shown)})" for name, _, _ in _COLUMNS]
    rows = []
    oos: dict[str, list[float]] = {arm: [] for arm in shown}
    for symbol, _, _ in RANGES:
        arms = [by.get((symbol, arm)) for arm in shown]
        if any(a is None for a in arms):
            continue
        for i, mo in enumerate(arms[0]["months"]):
            cells = [[a["months"][i][key] for a in arms] for _, key, _ in _COLUMNS]
            rows.append([symbol, mo["month"] + ("" if i else " (warm-up)")]
                        + [_cell(c, fmt) for c, (_, _, fmt) in zip(cells, _COLUMNS)])
            if i:
                for arm, a in zip(shown, arms):
                    oos[arm].append(a["months"][i]["return_pct"])
        cells = [[a["stitched"][key] for a in arms] for _, key, _ in _COLUMNS]
        rows.append([symbol, "stitched"] + [_cell(c, fmt) for c, (_, _, fmt) in zip(cells, _COLUMNS)])
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
    else:
        w = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(head)]
        lines = ["  ".join(h.ljust(w[i]) for i, h in enumerate(head))]
        lines += ["  ".join(c.ljust(w[i]) for i, c in enumerate(r)) for r in rows]
    if oos["off"]:
        n = len(oos["off"])
        lines.append("")
        lines.append(f"out of sample ({n} months after each range's first), mean monthly return: "
                     + ", ".join(f"{arm} {statistics.mean(v):+.2f} %" for arm, v in oos.items()))
        for arm in shown[1:]:
            wins = sum(1 for x, y in zip(oos["off"], oos[arm]) if y > x)
            lines.append(f"{arm} beats off in {wins} of {n} out-of-sample months")
        if "random" in oos:
            for arm in ARMS:
                wins = sum(1 for x, y in zip(oos["random"], oos[arm]) if y > x)
                lines.append(f"{arm} beats the random median in {wins} of {n} out-of-sample months")
    for r in results:
        if r["arm"] == "random":
            rets = r["stitched_returns"]
            q = np.percentile(rets, [10, 50, 90])
            ranks = {arm: percentile_among(by[(r["symbol"], arm)]["stitched"]["return_pct"], rets)
                     for arm in ARMS if (r["symbol"], arm) in by}
            where = ", ".join(f"{arm} at the {pct:.0f}th" for arm, pct in ranks.items())
            lines.append(f"random {r['symbol']} stitched over {len(rets)} runs: 10/50/90 % "
                         f"{q[0]:+.2f} / {q[1]:+.2f} / {q[2]:+.2f} %; {where} percentile")
    for r in results:
        if r["arm"] in ("on", "base"):
            f = r["filter"]
            seen = f.get("seen") or 0
            said_no = f"{(f.get('skipped') or 0) / seen:.0%}" if seen else "—"
            lines.append(f"filter {r['arm']} {r['symbol']}: learned from {f.get('learned')} trades, judged {seen} "
                         f"signals after warm-up, said no to {f.get('skipped')} ({said_no}), "
                         f"explored {f.get('explored')}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--markdown", action="store_true")
    p.add_argument("--random-runs", type=int, default=RANDOM_RUNS,
                   help=f"random-entry runs per symbol (default {RANDOM_RUNS}; 0: no random arm)")
    args = p.parse_args(argv)
    if args.random_runs < 0:
        p.error(f"--random-runs={args.random_runs} is invalid: it must be >= 0")
    jobs: list[tuple] = [(s, a, b, arm) for s, a, b in RANGES for arm in ARMS]
    with ProcessPoolExecutor(max(1, args.jobs)) as ex:
        results = list(ex.map(run_arm, jobs))
        off = {r["symbol"]: r for r in results if r["arm"] == "off"}
        randoms = [(s, a, b, "random", seed, off[s]["opened"], off[s]["span"])
                   for s, a, b in RANGES for seed in range(args.random_runs)]
        runs = list(ex.map(run_arm, randoms))
    for s, _, _ in RANGES:
        mine = [r for r in runs if r["symbol"] == s]
        if mine:
            results.append(random_median(mine))
    print(_table(results, args.markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
