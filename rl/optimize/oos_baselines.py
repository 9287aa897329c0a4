"""The stitched out-of-sample result against chance: random entries and buy & hold over the
walk-forward's unseen test months.

For every test (symbol, month) the fold's chosen parameters are run again (the same trades as
the walk-forward's test run: it is deterministic) to learn how many entries they opened, then
`runs` random-entry runs draw that many entries over the same month
(rl.backtest.baselines.RandomEntries: the same plan, sizing, exits and protections; run i uses
seed `seed + i`). Random run i of every test month is stitched exactly as the agent's test
runs are (rl.optimize.objective.window_curve: symbols averaged, months compounded), giving
`runs` stitched random curves: their returns are the distribution the headline result is
judged against, and their 10/50/90 % quantiles per day are the band the report draws.
Buy & hold: each test month's price at every UTC day end over its first open, stitched the
same way (no fees, no leverage).

`compute(doc, bank, ...)` works on a walk-forward result document
(profiles/NAME.walkforward.json, WalkForwardResult.to_json), so it can run after a study or
later on a saved result without rerunning any trial.
"""
from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from rl.backtest.baselines import percentile_of, spread
from rl.backtest.metrics import max_drawdown
from rl.optimize import space
from rl.optimize.bank import MonthBank, OosMonth, quiet_agent_logs
from rl.optimize.objective import MonthRun, window_curve

DEFAULT_RUNS = 20
BAND = (10.0, 50.0, 90.0)        # the report's band: 10-90 % of the random runs and their median

_BANK: MonthBank | None = None   # the worker's bank (inherited on fork)


def oos_pairs(doc: dict) -> list[tuple[int, str, str]]:
    """(fold index, symbol, month) of every test run, in the walk-forward's order."""
    avail = doc.get("available") or {}
    out = []
    for fold in doc.get("folds") or []:
        for m in fold["test"]:
            out += [(int(fold["fold"]), s, m) for s in avail if m in avail[s]]
    return out


def _init(bank: MonthBank) -> None:
    global _BANK
    quiet_agent_logs()
    _BANK = bank


def _task(task: tuple) -> tuple[tuple, Any]:
    assert _BANK is not None
    kind, sym, month, params, extra = task
    if kind == "agent":
        return task[:3], _BANK.oos_month(sym, month, params)
    count, span, seed = extra
    return (kind, sym, month, seed), _BANK.random_month(sym, month, params, count, span, seed)


def _run_all(bank: MonthBank, tasks: list[tuple], jobs: int) -> list[tuple[tuple, Any]]:
    global _BANK
    if jobs <= 1 or len(tasks) <= 1:
        _BANK = bank
        try:
            return [_task(t) for t in tasks]
        finally:
            _BANK = None
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    with mp.get_context(method).Pool(min(jobs, len(tasks)), initializer=_init, initargs=(bank,)) as pool:
        return list(pool.imap(_task, tasks))


def max_drawdown_pct(curve: Sequence[float]) -> float:
    return max_drawdown(np.asarray(curve, dtype=float)) * 100.0 if len(curve) else 0.0


def _ret(curve: Sequence[float]) -> float:
    return (float(curve[-1]) - 1.0) * 100.0 if curve else 0.0


def compute(doc: dict, bank: MonthBank, runs: int = DEFAULT_RUNS, seed: int = 0, jobs: int = 1,
            log: Callable[[str], None] = lambda _m: None) -> dict:
    """The `out_of_sample_baselines` section of a walk-forward result (module docstring)."""
    if runs < 1:
        raise ValueError(f"--baseline-runs={runs!r} is invalid: it must be >= 1 (20 or more give a distribution)")
    base = space.apply_base(doc["base_params"])
    params = {int(f["fold"]): space.apply(base, p) for f, p in zip(doc["folds"], doc["fold_params"])}
    pairs = oos_pairs(doc)
    if not pairs:
        raise ValueError("the walk-forward result has no test month: nothing to compare")
    log(f"out-of-sample baselines: {len(pairs)} test month(s), the agent and {runs} random-entry runs each")
    if jobs > 1:
        bank.prepare(sorted({(s, m) for _f, s, m in pairs}))     # once, before the workers fork
    firsts = _run_all(bank, [("agent", s, m, params[f], None) for f, s, m in pairs], jobs)
    tested: dict[tuple[str, str], OosMonth] = {(k[1], k[2]): v for k, v in firsts}
    tasks = [("random", s, m, params[f], (tested[(s, m)].opened, tested[(s, m)].span, seed + i))
             for i in range(runs) for f, s, m in pairs]
    randoms: dict[int, list[MonthRun]] = {}
    for key, run in _run_all(bank, tasks, jobs):
        randoms.setdefault(int(key[3]) - seed, []).append(run)
    agent_runs = [tested[(s, m)].run for _f, s, m in pairs]
    a_t, a_e = window_curve(agent_runs)
    b_t, b_e = window_curve([tested[(s, m)].buy_hold for _f, s, m in pairs])
    curves = [window_curve(randoms[i])[1] for i in range(runs)]
    rets = [_ret(c) for c in curves]
    agent_ret = _ret(a_e)
    band: dict[str, list] = {}
    same = [c for c in curves if len(c) == len(a_e)]
    if same and a_t:
        q = np.percentile(np.asarray(same, dtype=float), list(BAND), axis=0)
        band = {"day_ms": list(a_t), "p10": q[0].tolist(), "median": q[1].tolist(), "p90": q[2].tolist()}
    dist = spread(rets) or {}
    dist.update({"p10": float(np.percentile(rets, 10)), "p90": float(np.percentile(rets, 90))})
    per_month = []
    for f, s, m in pairs:
        mine = [r for i in range(runs) for r in randoms[i] if (r.symbol, r.month) == (s, m)]
        per_month.append({"fold": f, "symbol": s, "month": m, "entries_drawn": tested[(s, m)].opened,
                          "agent_return_pct": tested[(s, m)].run.return_pct,
                          "buy_hold_return_pct": tested[(s, m)].buy_hold.return_pct,
                          "random_median_return_pct": float(np.median([r.return_pct for r in mine]))})
    return {
        "agent": {"return_pct": agent_ret, "max_drawdown_pct": max_drawdown_pct(a_e),
                  "trades": sum(r.trades for r in agent_runs)},
        "random_entries": {
            "runs": runs, "seed": seed,
            "policy": "rl.backtest.baselines.RandomEntries: as many entries as the chosen parameters "
                      "opened in each test month, the same plan, sizing, exits and protections",
            "stitched_return_pct": rets, "return_pct": dist,
            "max_drawdown_pct": spread([max_drawdown_pct(c) for c in curves]),
            "agent_percentile": percentile_of(agent_ret, rets), "band": band},
        "buy_hold": {"return_pct": _ret(b_e), "curve": {"day_ms": list(b_t), "equity": list(b_e)}},
        "per_month": per_month,
    }


def compact(section: dict) -> dict:
    """What the profile's provenance keeps of `compute`'s section: the figures, not the curves."""
    rand = {k: v for k, v in section["random_entries"].items() if k != "band"}
    return {"agent": section["agent"], "random_entries": rand,
            "buy_hold": {"return_pct": section["buy_hold"]["return_pct"]}, "per_month": section["per_month"]}
