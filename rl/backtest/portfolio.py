"""Portfolio backtest: several symbols on ONE account (one PaperExchange, one knowledge store,
one TradingAgent over all of them), stepped over time-aligned 1m bars.

    python -m rl.backtest --data ../shared/data --symbol FILUSDT,NEARUSDT --from 2023-09-01 --to 2023-09-30

The walk (docs/backtest.md "Portfolio"): the step times are the union of every symbol's own
step times (each symbol's tested bars are exactly those of its one-symbol run over the same
--from/--to, rl.backtest.data). At a step time T, in the agent's symbol order, each symbol
with a bar closing at T is shown to the exchange (`on_bar`), stepped (`agent.step(T, {sym:
bar})`) and, if that did anything, the exchange is shown its price at T (`on_price`): what a
replay cycle does symbol by symbol (`run_cycle`), so the dashboard's replay of the same files
makes the same trades. A symbol with no bar at T (a gap, or outside its data) is not stepped;
the others go on. A symbol joins at its first step (primed then, from its own warm-up
history, as its one-symbol run primes) and leaves after its last one; a position still open
then stays open, valued at its last price, and is listed as open at the end.

Per step the loop touches plain Python lists (no DataFrame per bar); the equity is read once
per step, after every symbol of it. With one symbol this is exactly `run_backtest`
(tests/backtest/test_golden.py).
"""
from __future__ import annotations

import sys
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
from tqdm import tqdm

from config import Settings
from rl.analysis.levels.candidates import Bars
from rl.backtest.data import WARMUP_DAYS, BacktestData, load_backtest_data, parse_day
from rl.backtest.metrics import TradeOutcome, exposure, summarize
from rl.backtest.scans import PreparedScans
from rl.market.candles import MINUTE_MS, bucket_start, index_to_ms
from rl.strategy.params import StrategyParams

DAY_MS = 86_400_000


def load_portfolio_data(paths: Sequence[str | Path], symbols: Sequence[str], date_from: str | None,
                        date_to: str | None, warmup_days: int = WARMUP_DAYS) -> list[BacktestData]:
    """Each symbol's bars for a portfolio over [date_from, date_to]: as its one-symbol run loads
    them, except that a symbol always joins after `warmup_days` of its own history. One whose
    data starts less than that before date_from (or any symbol, without date_from) starts
    trading at the first midnight `warmup_days` after its first bar, so no symbol trades blind
    beside the others (docs/backtest.md "Portfolio")."""
    lo = parse_day(date_from, "--from")
    out = []
    for sym in symbols:
        data = load_backtest_data(paths, sym, date_from, date_to, warmup_days)
        open_ms = index_to_ms(data.frame.index)
        ready = (int(open_ms[0]) + DAY_MS - 1) // DAY_MS * DAY_MS + warmup_days * DAY_MS
        if int(open_ms[data.first_bar]) < ready:
            day = time.strftime("%Y-%m-%d", time.gmtime(ready / 1000))
            if lo is not None and int(lo.timestamp() * 1000) > ready:
                day = str(date_from)
            try:
                data = load_backtest_data(paths, sym, day, date_to, warmup_days)
            except ValueError:
                raise ValueError(f"--symbol {sym} is invalid for this run: its data starts "
                                 f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(int(open_ms[0]) / 1000))} UTC "
                                 f"and leaves nothing to test after its {warmup_days}-day warm-up "
                                 f"up to --to={date_to or 'the end of its data'}") from None
        out.append(data)
    return out


# bars per symbol held as plain Python lists at a time: indexing lists per bar is ~10x cheaper
# than numpy scalars, and a day's worth keeps the run's memory per symbol, not per bar loaded
CHUNK = 1440


@dataclass
class _Leg:
    """One symbol of the run: its bar columns (numpy), the next CHUNK of them as plain lists,
    where it is, what it has done."""

    data: BacktestData
    cols: tuple[np.ndarray, ...]     # open time, open, high, low, close, volume
    k: int = 0                       # tested bars stepped so far
    price: float = 0.0               # this symbol's price now: the close of its newest bar
    joined: bool = False
    bars: dict = field(default_factory=dict)
    base: int = 0                    # index of the first bar in `lists`
    lists: tuple[list, ...] = ()

    def refill(self, i: int) -> None:
        """Hold bars i .. i + CHUNK as lists."""
        self.base = i
        self.lists = tuple(c[i:i + CHUNK].tolist() for c in self.cols)

    @property
    def symbol(self) -> str:
        return self.data.symbol

    @property
    def first(self) -> int:
        return self.data.first_bar

    @property
    def n(self) -> int:
        return self.data.tested_bars

    def step_time(self, k: int) -> int:
        return int(self.cols[0][self.first + k]) + MINUTE_MS


def _columns(frame: Any) -> tuple[np.ndarray, ...]:
    return (index_to_ms(frame.index), *(frame[k].to_numpy(dtype=np.float64)
                                        for k in ("open", "high", "low", "close", "volume")))


def step_times(datas: Sequence[BacktestData]) -> np.ndarray:
    """Every step time of the run: the union of each symbol's own step times (its tested bars'
    closes), sorted, each once."""
    parts = []
    for d in datas:
        open_ms = index_to_ms(d.frame.index)
        parts.append(open_ms[d.first_bar:d.first_bar + d.tested_bars] + MINUTE_MS)
    return np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)


def spans(datas: Sequence[BacktestData]) -> list[dict]:
    """Per symbol: the first and last step time of its tested bars (when it joins and leaves),
    its bars and gaps, and which other symbols its span overlaps."""
    out: list[dict[str, Any]] = []
    for d in datas:
        open_ms = index_to_ms(d.frame.index)
        lo, hi = int(open_ms[d.first_bar]) + MINUTE_MS, int(open_ms[d.first_bar + d.tested_bars - 1]) + MINUTE_MS
        out.append({"symbol": d.symbol, "joins_ms": lo, "leaves_ms": hi, "bars": d.tested_bars,
                    "warmup_bars": d.first_bar, "gaps": len(d.gaps)})
    for s in out:
        s["overlaps"] = [o["symbol"] for o in out if o is not s
                         and int(o["joins_ms"]) <= int(s["leaves_ms"]) and int(s["joins_ms"]) <= int(o["leaves_ms"])]
    return out


def run_portfolio(datas: Sequence[BacktestData], settings: Settings, *, trace: IO[str] | None = None,
                  progress: bool | None = None, store_path: str | Path = ":memory:",
                  on_step: Callable[[int, int], None] | None = None,
                  params: StrategyParams | None = None) -> Any:
    """Run the agent over every symbol of `datas` on one account (see the module docstring).
    `settings.symbols` must name the same symbols; the agent steps them in that order.
    on_step(step, T) is called after each step time (tests). Returns a BacktestResult with
    `per_symbol` and `spans` filled in."""
    from rl.backtest.engine import TraceWriter, build_backtest_world, pause_records, prime_frames

    legs_by_symbol = {d.symbol: _Leg(d, _columns(d.frame)) for d in datas}
    if len(legs_by_symbol) != len(datas):
        raise ValueError("--symbol is invalid: a symbol is given twice")
    if set(settings.symbols) != set(legs_by_symbol):
        raise ValueError(f"settings.symbols={settings.symbols!r} is invalid: they must be the run's "
                         f"symbols {sorted(legs_by_symbol)}")
    legs = [legs_by_symbol[s] for s in settings.symbols]         # the agent's own order
    for leg in legs:
        # before its first step, as run_backtest's price source: the first tested bar's close
        leg.price = float(leg.cols[4][leg.first])
        leg.refill(leg.first)
    times = step_times(datas)
    if not times.size:
        raise ValueError("--from/--to is invalid: no symbol has a bar to test")
    from rl.backtest.engine import StepClock

    clock = StepClock(int(times[0]))

    def price_source(sym: str) -> float:            # the market port's last_price at now
        return legs_by_symbol[sym].price

    writer = TraceWriter(trace)
    exchange, store, agent = build_backtest_world(settings, clock, price_source, store_path, writer, params)
    scans: dict[str, PreparedScans] = {}

    def join(leg: _Leg) -> None:
        """Prime the symbol at its first step, exactly as its one-symbol run does at its start."""
        d = leg.data
        open_ms = leg.cols[0]
        week0 = int(np.searchsorted(open_ms, int(bucket_start(int(open_ms[leg.first]), "1w")), side="left"))
        frames, price0, cut = prime_frames(d.frame, leg.first, week0)
        sc = scans[leg.symbol] = PreparedScans(d.frame, leg.symbol, leg.first, leg.n, frames, agent.params)
        agent.prime(leg.symbol, frames, price0, cut, scan_source=sc, m1_source=(Bars.from_frame(d.frame), leg.first))
        leg.joined = True

    n = len(times)
    eq = array("d", bytes(8 * n))                  # 8 bytes a step: the equity curve itself
    show = sys.stderr.isatty() if progress is None else progress
    bar = None
    started = time.perf_counter()
    try:
        if show:
            bar = tqdm(total=n, unit="step", file=sys.stderr, mininterval=0.5,
                       desc=f"backtest {','.join(settings.symbols)}")
        agent.startup()                              # what the replay runner does first
        for leg in legs:                             # the ones that start at once, before stepping
            if leg.step_time(0) == int(times[0]):
                join(leg)
        on_bar, on_price, step_fn = exchange.on_bar, exchange.on_price, agent.step
        margin_balance = exchange.margin_balance
        equity = margin_balance()
        j = 0
        for lo in range(0, n, CHUNK):
            for now in times[lo:lo + CHUNK].tolist():
                clock.now = now
                moved = False
                for leg in legs:
                    k = leg.k
                    if k >= leg.n:
                        continue
                    i = leg.first + k - leg.base
                    if i >= CHUNK:
                        leg.refill(leg.first + k)
                        i = 0
                    t_l, o_l, h_l, l_l, c_l, v_l = leg.lists
                    if t_l[i] + MINUTE_MS != now:   # no bar of this symbol closes now
                        continue
                    if not leg.joined:
                        join(leg)
                    c = leg.price = c_l[i]
                    sym = leg.symbol
                    on_bar(sym, o_l[i], h_l[i], l_l[i], c, now - 1)
                    leg.bars[sym] = (t_l[i], o_l[i], h_l[i], l_l[i], c, v_l[i])
                    if step_fn(now, leg.bars):
                        on_price(sym, c, now)       # as a replay cycle does in a position
                        moved = True
                    leg.k = k + 1
                if moved:
                    equity = margin_balance()
                eq[j] = equity
                if on_step is not None:
                    on_step(j, now)
                if bar is not None and j % 1000 == 999:
                    bar.update(1000)
                j += 1
        if bar is not None:
            bar.update(n - bar.n)
        seconds = time.perf_counter() - started
    finally:
        if bar is not None:
            bar.close()
    eq_t = np.asarray(times, dtype=np.int64)
    result = collect_portfolio(legs, settings, store, eq_t, np.frombuffer(eq, dtype=np.float64).copy(),
                               writer.decisions, seconds)
    result.protections = {"config": agent.params.protections.to_dict(),
                          "pauses": pause_records(agent.protections.state(int(eq_t[-1])))}
    store.close()
    return result


def active_exposure(held: Sequence[TradeOutcome], spans_: Sequence[dict]) -> float:
    """Fraction of the time some symbol had data (the union of the spans, so a stretch where
    no symbol has bars, e.g. between non-overlapping months, is not counted) that a position
    was open. With one span this is metrics.exposure over it."""
    merged: list[list[int]] = []
    for lo, hi in sorted((int(s["joins_ms"]) - MINUTE_MS, int(s["leaves_ms"])) for s in spans_):
        if merged and lo <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    if len(merged) == 1:                  # exactly metrics.exposure (no rounding of a product)
        return exposure(held, merged[0][0], merged[0][1])
    total = sum(hi - lo for lo, hi in merged)
    covered = sum(exposure(held, lo, hi) * (hi - lo) for lo, hi in merged)
    return covered / total if total > 0 else 0.0


def _buy_hold(leg: _Leg) -> float | None:
    c = leg.cols
    first_open, last_close = float(c[1][leg.first]), float(c[4][leg.first + leg.n - 1])
    return (last_close / first_open - 1.0) * 100.0 if first_open else None


def per_symbol(legs: Sequence[_Leg], closed: Sequence[dict], still_open: Sequence[dict],
               balance: float) -> dict[str, dict]:
    """Each symbol's trades, net PnL, fees, win rate and its share of the account's return
    (net PnL of its closed trades / the start balance), beside its own buy & hold."""
    out: dict[str, dict] = {}
    for leg in legs:
        mine = [t for t in closed if t["symbol"] == leg.symbol]
        pnl = float(sum(float(t["pnl"] or 0.0) for t in mine))
        wins = sum(1 for t in mine if float(t["pnl"] or 0.0) > 0)
        out[leg.symbol] = {
            "trades": len(mine), "wins": wins, "win_rate": wins / len(mine) if mine else None,
            "net_pnl": pnl, "fees": float(sum(float(t["fees"] or 0.0) for t in mine)),
            "return_contribution_pct": pnl / balance * 100.0 if balance else 0.0,
            "open_at_end": sum(1 for t in still_open if t["symbol"] == leg.symbol),
            "bars": leg.k, "buy_hold_return_pct": _buy_hold(leg)}
    return out


def collect_portfolio(legs: Sequence[_Leg], settings: Settings, store: Any, eq_t: np.ndarray,
                      eq: np.ndarray, decisions: int, seconds: float) -> Any:
    """The run's BacktestResult: one equity curve and one set of metrics for the account,
    and the per-symbol breakdown."""
    from rl.backtest.engine import BacktestResult, _iso_day, _trade_row, public_settings

    rows = list(reversed(store.trades(limit=10**9)))          # oldest first
    closed = [_trade_row(t, store) | {"symbol": t["symbol"]} for t in rows if t["status"] == "closed"]
    still_open = [_trade_row(t, store) | {"symbol": t["symbol"]} for t in rows if t["status"] != "closed"]
    outcomes = [TradeOutcome(pnl=float(t["pnl"] or 0.0), fees=float(t["fees"] or 0.0),
                             r_multiple=t["r_multiple"], opened_ms=t["opened_ms"],
                             closed_ms=int(t["closed_ms"])) for t in closed]
    start_ms = min(int(leg.cols[0][leg.first]) for leg in legs)
    times_with_start = np.concatenate(([start_ms], eq_t))
    equity_with_start = np.concatenate(([settings.paper_balance], eq))
    summary = summarize(outcomes, times_with_start, equity_with_start, settings.paper_balance).to_dict()
    held = outcomes + [TradeOutcome(0.0, 0.0, None, t["opened_ms"], int(eq_t[-1])) for t in still_open]
    the_spans = spans([leg.data for leg in legs])
    summary["exposure_pct"] = active_exposure(held, the_spans) * 100.0
    breakdown = per_symbol(legs, closed, still_open, settings.paper_balance)
    holds = [b["buy_hold_return_pct"] for b in breakdown.values() if b["buy_hold_return_pct"] is not None]
    # buy & hold of the portfolio: the balance split equally over the symbols, each held over
    # its own span (docs/backtest.md)
    summary["buy_hold_return_pct"] = float(np.mean(holds)) if holds else None
    history = store.weight_history(limit=10**9)
    return BacktestResult(
        symbol=",".join(leg.symbol for leg in legs), date_from=_iso_day(int(start_ms)),
        date_to=_iso_day(int(eq_t[-1]) - MINUTE_MS), settings=public_settings(settings),
        summary=summary, final_weights=store.current_weights(), trades=closed, open_trades=still_open,
        weight_history=[{"time_ms": w["time_ms"], "weights": w["weights"], "reason": w["reason"]}
                        for w in history],
        equity_time_ms=times_with_start, equity=equity_with_start,
        price_time_ms=np.zeros(0, dtype=np.int64), price_close=np.zeros(0, dtype=np.float64),
        bars=int(sum(leg.k for leg in legs)), decisions=decisions,
        gaps=int(sum(len(leg.data.gaps) for leg in legs)), seconds=seconds,
        symbols=[leg.symbol for leg in legs], per_symbol=breakdown, spans=the_spans,
        steps=int(eq_t.size))


def span_lines(spans_: Sequence[dict]) -> list[str]:
    """How the run covered each symbol, for the text summary (zh / en)."""
    def day(ms: int) -> str:
        return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ms / 1000))
    lines = []
    for s in spans_:
        with_ = ", ".join(s["overlaps"]) if s["overlaps"] else "none / 无"
        lines.append(f"    {s['symbol']:<12}{day(s['joins_ms'])} → {day(s['leaves_ms'])}  "
                     f"{s['bars']:,} bars, warm-up {s['warmup_bars']:,} bars, overlaps / 重叠: {with_}")
    if any(not s["overlaps"] for s in spans_) and len(spans_) > 1:
        lines.append("    A symbol without overlap trades alone on the account during its span "
                     "/ 无重叠的品种在其时段内单独交易")
    return lines


def per_symbol_lines(breakdown: dict[str, dict]) -> list[str]:
    """The per-symbol table of the text summary."""
    head = (f"    {'symbol / 品种':<14}{'trades/交易':>12}{'win/胜率':>10}{'net PnL/净盈亏':>16}"
            f"{'fees/手续费':>13}{'contrib./贡献':>15}{'B&H/持有':>10}")
    lines = [head]
    for sym, b in breakdown.items():
        win = "—" if b["win_rate"] is None else f"{b['win_rate'] * 100:.1f} %"
        bh = "—" if b["buy_hold_return_pct"] is None else f"{b['buy_hold_return_pct']:+.2f} %"
        extra = f"  (+{b['open_at_end']} open / 未平仓)" if b["open_at_end"] else ""
        lines.append(f"    {sym:<14}{b['trades']:>12d}{win:>10}{b['net_pnl']:>16,.2f}{b['fees']:>13,.2f}"
                     f"{b['return_contribution_pct']:>+13.2f} %{bh:>10}{extra}")
    return lines
