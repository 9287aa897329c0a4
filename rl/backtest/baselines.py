"""Baselines a backtest is judged against: what chance and no learning would have made.

- Buy & hold: the summary's `buy_hold_return_pct` (rl.backtest.metrics).
- Random entries: the same agent, over the same bars, with its entry decisions replaced by a
  seeded coin. At every point where the agent itself decides whether to enter (flat, at a 15m
  close, no re-entry cooldown running) the `RandomEntries` policy (TradingAgent.entry_policy)
  enters with probability p, long or short with probability 1/2 each; everything after that
  decision is the agent's: the level its plan uses for that side (support for a long,
  resistance for a short), the stop/target and fee-aware size of rl.strategy.trade_plan, the
  exit manager and the risk protections (an entry drawn while they pause entries is skipped,
  as the agent's would be). Learning runs as usual.
  The rate is matched to the agent's own run: run i draws K entry times uniformly over the
  tested period (K = the trades the agent opened; random.Random seeded with i's seed), and
  each is tried at the first decision point at or after its time where the agent itself
  could have entered, until it becomes a trade (`RandomEntries`). A random run therefore
  opens about K trades, fewer only when entries are still due at the end. (Matching a rate
  per decision point instead missed badly: the agent holds positions and is paused far more
  than random runs, which then had 2-3x its decision points; and its entry signals repeat at
  close after close while its plan refuses them, so matching signals made random runs trade
  ~1.5x as often.) With ENTRY_ORDER=maker a resting random entry is also cancelled when the
  next 15m analysis does not back its side, as the agent's is.
  Run i uses seed `seed + i`; at least 20 runs give a distribution (min, quartiles, max) and
  the agent's percentile in it.
- Frozen learning: the same agent with its level-feature weights fixed at their starting
  values (`frozen_learning`), over the same bars.

`run_with_baselines` runs the agent and all of them (in `jobs` processes); `baseline_report`
builds the JSON section from finished runs, so an optimizer can call it on its own runs.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import random
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import IO, Any

import numpy as np
from tqdm import tqdm

from config import Settings
from rl.backtest.data import BacktestData
from rl.backtest.engine import BacktestResult, run_backtest
from rl.backtest.metrics import DAY_MS
from rl.strategy.params import StrategyParams
from rl.strategy.phases import Decision

DEFAULT_RUNS = 20
# LearningParams.min_trades' largest valid value: no backtest closes that many trades, so the
# learner never applies an update and the weights stay at their starting values
NEVER_LEARN = 100_000
FIGURES = ("return_pct", "max_drawdown_pct", "fees", "trades", "sharpe")


# ----------------------------------------------------------------------------- entry policies

class ObservedEntries:
    """An entry policy that changes nothing (the agent's decision is returned as it is) and
    counts the agent's decision points and entry signals while entries are not paused."""

    def __init__(self) -> None:
        self.eligible = 0
        self.entries = 0

    def __call__(self, d: Decision, symbol: str, now_ms: int, paused: bool) -> Decision:
        if not paused:
            self.eligible += 1
            self.entries += d.action != "wait"
        return d


class RandomEntries:
    """Entries due at `due_ms` (sorted times, e.g. `RandomEntries.scheduled`), each tried at
    the first unpaused decision point at or after its time, long or short by a fair coin, and
    tried again at the next one until it became a trade. "Became a trade" is read from the
    closed-trade count the decision carries: decisions happen only while flat, so every entry
    that filled has closed by then (`owed` = entries due so far - trades since the start).
    So a drawn entry the plan refuses (no level, reward below the minimum) or a maker entry
    that never filled moves to the next feasible close, and entries due while a position is
    open or entries are paused wait for the next opportunity. Paused: the agent's own
    decision passes (the pause skips it) and no coin is drawn."""

    def __init__(self, due_ms: Sequence[int], seed: int) -> None:
        self.due_ms = sorted(int(t) for t in due_ms)
        self.seed = int(seed)
        self._rng = random.Random(self.seed)
        self._passed = 0                       # due times <= now
        self._count0: int | None = None        # closed trades at the first decision
        self.eligible = 0
        self.entries = 0                       # entry decisions returned (tries)

    @classmethod
    def scheduled(cls, count: int, start_ms: int, end_ms: int, seed: int) -> RandomEntries:
        """`count` entry times drawn uniformly from [start_ms, end_ms) by random.Random(seed)."""
        if count < 0 or end_ms <= start_ms:
            raise ValueError(f"count={count!r}, [{start_ms}, {end_ms}) are invalid: count >= 0, a non-empty span")
        rng = random.Random(f"times:{seed}")
        return cls([start_ms + int(rng.random() * (end_ms - start_ms)) for _ in range(count)], seed)

    def __call__(self, d: Decision, symbol: str, now_ms: int, paused: bool) -> Decision:
        count = d.phase.trade_count
        if self._count0 is None:
            self._count0 = count
        while self._passed < len(self.due_ms) and self.due_ms[self._passed] <= now_ms:
            self._passed += 1
        if paused:
            return d
        self.eligible += 1
        if self._passed - (count - self._count0) <= 0:
            return replace(d, action="wait", reason_zh="随机基线：未到随机入场时间",
                           reason_en="random baseline: no entry due",
                           log_zh="随机基线观望", log_en="random baseline waits")
        self.entries += 1
        long = self._rng.random() < 0.5
        side_zh, side_en = ("做多", "long") if long else ("做空", "short")
        return replace(d, action="enter_long" if long else "enter_short",
                       reason_zh=f"随机基线：随机{side_zh}（种子 {self.seed}）",
                       reason_en=f"random baseline: random {side_en} (seed {self.seed})",
                       log_zh=f"随机基线{side_zh}", log_en=f"random baseline enters {side_en}")


def frozen_learning(params: StrategyParams) -> StrategyParams:
    """`params` with learning switched off: the level weights stay at their starting values."""
    return replace(params, learning=replace(params.learning, min_trades=NEVER_LEARN))


# ----------------------------------------------------------------------------- statistics

def percentile_of(value: float, samples: Sequence[float]) -> float | None:
    """Where `value` falls among `samples`, in percent: the share below it plus half the share
    equal to it (50 = the median run; 100 = above every one). None without samples."""
    xs = [float(x) for x in samples]
    if not xs:
        return None
    below = sum(1 for x in xs if x < value)
    equal = sum(1 for x in xs if x == value)
    return 100.0 * (below + 0.5 * equal) / len(xs)


def spread(samples: Sequence[float]) -> dict[str, float] | None:
    """min, p25, median, p75, max (linear interpolation, numpy's default), None when empty."""
    xs = np.asarray([float(x) for x in samples], dtype=float)
    if xs.size == 0:
        return None
    q = np.percentile(xs, [0, 25, 50, 75, 100])
    return {"min": float(q[0]), "p25": float(q[1]), "median": float(q[2]), "p75": float(q[3]),
            "max": float(q[4])}


def daily_equity(result: BacktestResult) -> tuple[list[int], list[float]]:
    """The run's equity at the end of each UTC day (time = that day's last point)."""
    t = np.asarray(result.equity_time_ms, dtype=np.int64)
    e = np.asarray(result.equity, dtype=float)
    if t.size == 0:
        return [], []
    last = np.concatenate([np.flatnonzero(np.diff(t // DAY_MS) != 0), [t.size - 1]])
    return t[last].tolist(), e[last].tolist()


@dataclass(frozen=True)
class RunFigures:
    """What a baseline keeps of one run."""

    return_pct: float
    max_drawdown_pct: float
    fees: float
    trades: int
    sharpe: float | None
    eligible: int              # decision points with entries not paused
    entries: int               # entry signals among them
    day_ms: list[int]
    equity: list[float]        # end-of-day equity
    final_weights: dict[str, float]
    seed: int | None = None

    @classmethod
    def of(cls, result: BacktestResult, eligible: int, entries: int, seed: int | None = None) -> RunFigures:
        s = result.summary
        day_ms, equity = daily_equity(result)
        return cls(return_pct=float(s["return_pct"]), max_drawdown_pct=float(s["max_drawdown_pct"]),
                   fees=float(s["fees"]), trades=int(s["trades"]), sharpe=s.get("sharpe"),
                   eligible=eligible, entries=entries, day_ms=day_ms, equity=equity,
                   final_weights=dict(result.final_weights), seed=seed)

    def figures(self) -> dict[str, Any]:
        return {"return_pct": self.return_pct, "max_drawdown_pct": self.max_drawdown_pct, "fees": self.fees,
                "trades": self.trades, "sharpe": self.sharpe, "decision_points": self.eligible,
                "entry_signals": self.entries, "final_weights": self.final_weights}


def baseline_report(agent: RunFigures, frozen: RunFigures | None, randoms: Sequence[RunFigures],
                    buy_hold_return_pct: float | None, seed: int, opened: int) -> dict:
    """The `baselines` section of a report (see docs/backtest.md "Baselines"). `opened`: the
    agent's trades opened, the entries each random run drew."""
    rand: dict[str, Any] = {"runs": len(randoms), "seed": seed, "entries_drawn": opened}
    rand["figures"] = {k: spread([getattr(r, k) for r in randoms if getattr(r, k) is not None]) for k in FIGURES}
    # percentile of the agent among the random runs; for max drawdown and fees lower is better,
    # so a high percentile there means the agent drew down (paid) more than most random runs
    rand["agent_percentile"] = {
        k: (None if getattr(agent, k) is None
            else percentile_of(getattr(agent, k), [getattr(r, k) for r in randoms if getattr(r, k) is not None]))
        for k in FIGURES}
    rand["per_run"] = [{"seed": r.seed, **r.figures()} for r in randoms]
    days = agent.day_ms
    band = {}
    same = [r.equity for r in randoms if r.day_ms == days]
    if same and days:
        q = np.percentile(np.asarray(same, dtype=float), [25, 50, 75], axis=0)
        band = {"day_ms": list(days), "p25": q[0].tolist(), "median": q[1].tolist(), "p75": q[2].tolist()}
    rand["equity_band"] = band
    return {"buy_hold_return_pct": buy_hold_return_pct,
            "agent": {**agent.figures(), "equity": {"day_ms": agent.day_ms, "equity": agent.equity}},
            "random_entries": rand,
            "frozen_learning": None if frozen is None else {
                **frozen.figures(), "equity": {"day_ms": frozen.day_ms, "equity": frozen.equity}}}


# ----------------------------------------------------------------------------- running them

_JOB: tuple[BacktestData, Settings, StrategyParams, dict] | None = None   # inherited on fork


def _baseline_run(task: tuple[str, int, int, tuple[int, int]]) -> RunFigures:
    """One baseline run of the job set up by run_with_baselines: (kind "frozen" or "random",
    seed, entries to draw, (start_ms, end_ms) of the tested period)."""
    assert _JOB is not None
    data, settings, params, kwargs = _JOB
    kind, seed, count, (start, end) = task
    quiet = logging.getLogger("rl")        # the agent run logged its reasons; 21 more would bury them
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        return _run_one(data, settings, params, kwargs, kind, seed, count, start, end)
    finally:
        quiet.setLevel(level)


def _run_one(data: BacktestData, settings: Settings, params: StrategyParams, kwargs: dict, kind: str,
             seed: int, count: int, start: int, end: int) -> RunFigures:
    if kind == "frozen":
        observed = ObservedEntries()
        r = run_backtest(data, settings, entry_policy=observed, progress=False, params=frozen_learning(params),
                         **kwargs)
        return RunFigures.of(r, observed.eligible, observed.entries)
    policy = RandomEntries.scheduled(count, start, end, seed)
    r = run_backtest(data, settings, entry_policy=policy, progress=False, params=params, **kwargs)
    return RunFigures.of(r, policy.eligible, policy.entries, seed)


def run_with_baselines(data: BacktestData, settings: Settings, *, runs: int = DEFAULT_RUNS, seed: int = 0,
                       jobs: int = 1, trace: IO[str] | None = None, progress: bool | None = None,
                       params: StrategyParams | None = None,
                       run_kwargs: Mapping[str, Any] | None = None) -> tuple[BacktestResult, dict]:
    """The agent's run (exactly the trades of a plain `run_backtest`: the observing policy
    changes nothing), then the frozen-learning run and `runs` random-entry runs drawing as
    many entries as the agent opened, in `jobs` processes (fork; each run is independent and
    seeded, so the figures do not depend on `jobs`). Returns (the agent's result, its baselines section).
    `run_kwargs`: passed on to every run_backtest call (e.g. a prepared month)."""
    global _JOB
    if runs < 0 or jobs < 1:
        raise ValueError(f"runs={runs!r}, jobs={jobs!r} are invalid: runs >= 0, jobs >= 1")
    params = params or StrategyParams.from_settings(settings)
    kwargs = dict(run_kwargs or {})
    observed = ObservedEntries()
    agent = run_backtest(data, settings, entry_policy=observed, trace=trace, progress=progress, params=params,
                         **kwargs)
    opened = len(agent.trades) + len(agent.open_trades)
    span = (int(agent.equity_time_ms[0]), int(agent.equity_time_ms[-1]))
    tasks = [("frozen", 0, opened, span)] + [("random", seed + i, opened, span) for i in range(runs)]
    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(total=len(tasks), unit="run", file=sys.stderr, desc="baselines") if show else None
    _JOB = (data, settings, params, kwargs)
    out: list[RunFigures] = []
    try:
        if jobs == 1:
            for t in tasks:
                out.append(_baseline_run(t))
                if bar is not None:
                    bar.update(1)
        else:
            with mp.get_context("fork").Pool(min(jobs, len(tasks))) as pool:
                for fig in pool.imap(_baseline_run, tasks):
                    out.append(fig)
                    if bar is not None:
                        bar.update(1)
    finally:
        _JOB = None
        if bar is not None:
            bar.close()
    report = baseline_report(RunFigures.of(agent, observed.eligible, observed.entries), out[0], out[1:],
                             agent.summary.get("buy_hold_return_pct"), seed, opened)
    return agent, report


def format_baselines(report: Mapping[str, Any]) -> str:
    """The baselines as plain text (what the CLI prints under the summary)."""
    a, f, r = report["agent"], report.get("frozen_learning"), report["random_entries"]

    def pct(v: Any) -> str:
        return "—" if v is None else f"{v:+.2f} %"

    lines = [f"Baselines / 基准 (random entries: {r['runs']} runs from seed {r['seed']}, each drawing "
             f"{r['entries_drawn']} entry times = the agent's trades):",
             f"  {'':<26}{'return':>10}{'max DD':>10}{'fees':>11}{'trades':>8}"]

    def row(label: str, x: Mapping[str, Any]) -> str:
        return (f"  {label:<26}{pct(x['return_pct']):>10}{x['max_drawdown_pct']:>8.2f} %"
                f"{x['fees']:>11,.2f}{x['trades']:>8d}")
    lines.append(row("agent / 智能体", a))
    if f is not None:
        lines.append(row("frozen learning / 冻结学习", f))
    lines.append(f"  {'buy & hold / 持有':<26}{pct(report.get('buy_hold_return_pct')):>10}")
    fig = r["figures"]
    if r["runs"]:
        for q in ("min", "p25", "median", "p75", "max"):
            lines.append(f"  {'random ' + q:<26}{pct(fig['return_pct'][q]):>10}"
                         f"{fig['max_drawdown_pct'][q]:>8.2f} %{fig['fees'][q]:>11,.2f}{fig['trades'][q]:>8.1f}")
        p = r["agent_percentile"]
        lines.append(f"  agent percentile among random runs / 智能体在随机中的百分位: return {p['return_pct']:.0f}, "
                     f"max DD {p['max_drawdown_pct']:.0f} (higher = deeper), trades {p['trades']:.0f}")
    return "\n".join(lines)
