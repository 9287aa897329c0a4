"""Backtest: the live TradingAgent, unchanged, run over archive 1m bars.

    python -m rl.backtest --data ../shared/data --symbol FILUSDT --from 2023-09-01 --to 2023-09-30 \
        --json out.json --report out.html --trace decisions.jsonl --set LEVERAGE=5

No second strategy implementation: the agent's backtest driver `TradingAgent.step()` runs the
same per-closed-1m-bar routine (`_on_bar`) that `run_cycle()` runs live and in replay. This
loop primes the agent with what a replay's first cycle sees, then per bar shows the bar to a
PaperExchange (`on_bar`), steps the agent at the bar's close and, in a position, shows the
exchange the price at that instant (`on_price`), as a replay cycle does: the dashboard's
replay (BarClock) makes the same trades (parity; see docs/backtest.md). Arrays only, no
DataFrame per bar. Figures come from rl.backtest.metrics, shared with the dashboard; the HTML report
from rl.backtest.report.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import numpy as np
from tqdm import tqdm

from config import _PARSERS, Settings, SettingsError, load_settings, read_profile
from rl.agent.agent import KLINE_LIMITS, TradingAgent
from rl.analysis.levels.candidates import Bars
from rl.backtest.candles import bucket_minutes, resample_ohlc
from rl.backtest.data import BacktestData, load_backtest_data
from rl.backtest.metrics import TradeOutcome, drawdown_curve, exposure, summarize
from rl.backtest.report import render_report
from rl.backtest.scans import PreparedScans, prepared_scans
from rl.execution.router import OrderRouter, sequential_ids
from rl.knowledge.store import KnowledgeStore
from rl.market.candles import DETAIL_SUM_COLUMNS, INTERVAL_MS, MINUTE_MS, bucket_start, index_to_ms
from rl.market.ports import ReplayMarketData
from rl.paper.exchange import PaperExchange
from rl.risk import ProtectionState
from rl.risk.records import RULES
from rl.strategy.params import LevelParams, LevelWeights, StrategyParams

# Settings a backtest decides itself; --set on them would be silently ignored, so refuse.
_NOT_SETTABLE = {"TRADING_MODE", "API_KEY", "API_SECRET", "LIVE_TRADING_CONFIRM", "SYMBOLS", "STRATEGY_PROFILE",
                 "DB_PATH", "HOST", "PORT", "REPLAY_DIR", "REPLAY_SPEED", "MARKET_DATA_URL",
                 "TRADE_URL"}
TIMING_FIELDS = ("seconds", "bars_per_second")
log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- settings

def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """--set KEY=VALUE pairs -> {settings field: parsed value}, by config.py's own rules."""
    out: dict[str, Any] = {}
    for raw in pairs:
        key, sep, value = str(raw).partition("=")
        key = key.strip().upper()
        if not sep or not key:
            raise SettingsError(f"--set {raw!r} is invalid: use KEY=VALUE with the setting's "
                                "env-var name, e.g. --set LEVERAGE=5")
        if key not in _PARSERS:
            raise SettingsError(f"--set {key}={value!r} is invalid: {key} is not a setting; "
                                f"settable: {', '.join(sorted(set(_PARSERS) - _NOT_SETTABLE))}")
        if key == "STRATEGY_PROFILE":
            raise SettingsError(f"--set {key}={value!r} is invalid: use --profile {value or 'NAME'}")
        if key in _NOT_SETTABLE:
            raise SettingsError(f"--set {key}={value!r} is invalid: a backtest fixes {key} itself "
                                "(paper exchange, in-memory store, --symbol)")
        attr, parse = _PARSERS[key]
        out[attr] = parse(key, value)
    return out


def backtest_settings(symbol: str | Sequence[str], balance: float | None = None,
                      overrides: Mapping[str, Any] | None = None,
                      base: Settings | None = None) -> Settings:
    """The settings a backtest runs with: .env/environment defaults, then --set, validated.

    Always paper mode; `symbol`: one symbol or a portfolio's (the agent trades them in this
    order); keys and live confirmation are dropped (never needed).
    """
    if base is None:
        base = load_settings()
    changes: dict[str, Any] = dict(overrides or {})
    if balance is not None:
        if not (isinstance(balance, (int, float)) and math.isfinite(balance) and balance > 0):
            raise SettingsError(f"--balance={balance!r} is invalid: it must be a number > 0")
        changes["paper_balance"] = float(balance)
    changes.update(trading_mode="paper", api_key="", api_secret="", live_confirm="",
                   symbols=(symbol,) if isinstance(symbol, str) else tuple(symbol), replay_dir=None)
    return base.with_overrides(**changes)


# ----------------------------------------------------------------------------- trace

TRACE_EVENTS = ("decision", "entry", "exit", "close")


class TraceWriter:
    """One JSON line per trace event, written as it happens (memory stays flat).

    Lines are the agent's decision-listener records (`event: "decision"`, one per entry
    decision at a 15m close while flat) and the trade events the store records (`entry`, each
    partial or final `exit` fill, the `close` with net PnL and R); see docs/backtest.md.
    """

    def __init__(self, stream: IO[str] | None) -> None:
        self._stream = stream
        self.count = 0
        self.decisions = 0
        self._dumps = json.JSONEncoder(sort_keys=True, separators=(",", ":"), allow_nan=False).encode

    def write(self, record: Mapping[str, Any]) -> None:
        if self._stream is not None:
            self._stream.write(self._dumps(record) + "\n")
        self.count += 1

    def decision(self, record: Mapping[str, Any]) -> None:
        """The agent's decision listener (TradingAgent.decision_listeners)."""
        self.decisions += 1
        if self._stream is not None:
            self.write({"event": "decision", **{k: _round(v) if isinstance(v, float) else v
                                                for k, v in record.items()}})


def _round(x: Any) -> float | None:
    return None if x is None or x != x else round(float(x), 6)


class _TradeTrace:
    """The store's trade listener (rl.knowledge.store.TradeListener) that writes each trade
    event to the trace. It only reads what the store wrote, so a traced run makes exactly the
    trades of an untraced one."""

    def __init__(self, writer: TraceWriter) -> None:
        self._writer = writer

    def trade_opened(self, trade_id: int, *, symbol: str, side: str, opened_ms: int,
                     entry_price: float, quantity: float, stop_price: float | None,
                     target_price: float | None, phase: str | None) -> None:
        self._writer.write({"event": "entry", "time_ms": opened_ms, "symbol": symbol,
                            "trade_id": trade_id, "side": side, "price": _round(entry_price),
                            "quantity": _round(quantity), "stop": _round(stop_price),
                            "target": _round(target_price), "phase": phase})

    def exit_recorded(self, trade_id: int, *, time_ms: int, kind: str, price: float,
                      quantity: float, pnl: float, fee: float) -> None:
        self._writer.write({"event": "exit", "time_ms": time_ms, "trade_id": trade_id, "kind": kind,
                            "price": _round(price), "quantity": _round(quantity), "pnl": _round(pnl),
                            "fee": _round(fee)})

    def trade_closed(self, trade: dict, *, closed_ms: int, exit_reason: str) -> None:
        self._writer.write({"event": "close", "time_ms": closed_ms, "trade_id": int(trade["id"]),
                            "symbol": trade.get("symbol"), "exit_reason": exit_reason,
                            "net_pnl": _round(trade.get("net_pnl")), "fees": _round(trade.get("fees")),
                            "r_multiple": _round(trade.get("r_multiple"))})


# ----------------------------------------------------------------------------- result

@dataclass
class BacktestResult:
    """Everything a run produced; to_json() is what --json writes, to_report() feeds rl.backtest.report."""

    symbol: str
    date_from: str
    date_to: str
    settings: dict
    summary: dict
    final_weights: dict
    trades: list[dict]
    open_trades: list[dict]
    weight_history: list[dict]
    equity_time_ms: np.ndarray
    equity: np.ndarray
    price_time_ms: np.ndarray
    price_close: np.ndarray
    bars: int
    decisions: int
    gaps: int
    seconds: float
    stats: dict = field(default_factory=dict)
    # {config: the limits, pauses: every pause of new entries (pause_records)}
    protections: dict = field(default_factory=dict)
    # the tested bars as coarser candles for the report's chart (rl.backtest.candles); not in --json
    candles: dict = field(default_factory=dict)
    # a portfolio run (rl.backtest.portfolio): its symbols, each one's figures and span; the
    # JSON and report carry them only then, so a one-symbol document is unchanged
    symbols: list[str] = field(default_factory=list)
    per_symbol: dict = field(default_factory=dict)
    spans: list = field(default_factory=list)
    steps: int = 0

    @property
    def bars_per_second(self) -> float:
        return self.bars / self.seconds if self.seconds > 0 else float("inf")

    @property
    def portfolio(self) -> dict:
        """The portfolio part of the documents ({} for a one-symbol run)."""
        if not self.per_symbol:
            return {}
        return {"symbols": self.symbols, "per_symbol": self.per_symbol, "spans": self.spans,
                "steps": self.steps}

    def to_json(self) -> dict:
        """The --json document: summary figures, final weights, trades, bars and timing."""
        return {"symbol": self.symbol, **self.portfolio, "from": self.date_from, "to": self.date_to,
                **self.summary, "final_weights": self.final_weights,
                "bars": self.bars, "decisions": self.decisions, "gaps": self.gaps,
                "seconds": round(self.seconds, 3),
                "bars_per_second": round(self.bars_per_second, 1) if self.seconds > 0 else None,
                "settings": self.settings, "protections": self.protections,
                "trades": [{k: v for k, v in t.items() if k != "thought_chain"} for t in self.trades],
                "open_trades": [{k: v for k, v in t.items() if k != "thought_chain"}
                                for t in self.open_trades]}

    def to_report(self) -> dict:
        """The dict rl.backtest.report.render_report draws."""
        return {"symbol": self.symbol, **self.portfolio, "from": self.date_from, "to": self.date_to,
                "summary": {**self.summary, "bars": self.bars, "seconds": round(self.seconds, 2)},
                "final_weights": self.final_weights,
                "prices": {"time_ms": self.price_time_ms.tolist(), "close": self.price_close.tolist()},
                "equity": {"time_ms": self.equity_time_ms.tolist(), "equity": self.equity.tolist(),
                           "drawdown": drawdown_curve(self.equity)},
                "trades": self.trades + self.open_trades, "weight_history": self.weight_history,
                "protections": self.protections, "settings": self.settings, "candles": self.candles,
                "open_trades": len(self.open_trades)}


def _iso_day(ms: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ms / 1000))


def _iso_min(ms: int | None) -> str | None:
    return None if ms is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(ms / 1000))


def _iso_utc(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


def pause_records(state: ProtectionState) -> list[dict]:
    """Every pause of `state`'s history, oldest first, with its times as ISO UTC beside the ms
    (`active`: still running at the end of the run; its `until` is then the earliest lift)."""
    return [{"rule": p.rule, "started": _iso_utc(p.started_ms), "until": _iso_utc(p.until_ms),
             "started_ms": p.started_ms, "until_ms": p.until_ms, "active": p.active_at(state.as_of_ms),
             "reason_en": p.reason_en, "reason_zh": p.reason_zh,
             "details": {k: list(v) if isinstance(v, tuple) else v for k, v in p.details.items()}}
            for p in state.history]


def pause_counts(pauses: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Pauses per rule, every rule listed (0 when it never paused)."""
    return {rule: sum(1 for p in pauses if p["rule"] == rule) for rule in RULES}


def _trade_row(t: dict, store: Any) -> dict:
    full = store.trade(int(t["id"])) or t
    chain = full.get("thought_chain")
    return {"id": int(t["id"]), "side": t["side"], "status": t["status"],
            "opened_ms": int(t["opened_ms"]), "closed_ms": t.get("closed_ms"),
            "entry_time": _iso_min(t["opened_ms"]), "exit_time": _iso_min(t.get("closed_ms")),
            "entry_price": t["entry_price"], "exit_price": t.get("exit_price"),
            "quantity": t["quantity"], "pnl": t.get("net_pnl"), "fees": t.get("fees"),
            "r_multiple": t.get("r_multiple"), "exit_reason": t.get("exit_reason"),
            "phase": t.get("phase"), "long_score": t.get("long_score"),
            "short_score": t.get("short_score"),
            "summary_en": (chain or {}).get("summary_en"), "summary_zh": (chain or {}).get("summary_zh"),
            "thought_chain": chain}


# ----------------------------------------------------------------------------- the run

class StepClock:
    """The backtest's clock (rl.clock.Clock): the loop sets it to each bar's close. No lock:
    one thread owns it, and now_ms() is read many times per bar."""

    def __init__(self, start_ms: int) -> None:
        self.now = int(start_ms)

    def now_ms(self) -> int:
        return self.now

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        raise RuntimeError("a backtest never sleeps: run_backtest steps the agent bar by bar")


def build_backtest_world(settings: Settings, clock: Any, price_source: Callable[[str], float],
                         store_path: str | Path = ":memory:",
                         trace: TraceWriter | None = None,
                         params: StrategyParams | None = None) -> tuple[Any, Any, Any]:
    """(exchange, store, agent) wired as for paper trading, the agent in backtest mode: no
    market port (the caller primes it and feeds every bar to the exchange, then to step()).
    `params`: the strategy's numbers (None: from `settings`, as a live agent builds them)."""
    params = params or StrategyParams.from_settings(settings)

    exchange = PaperExchange(None, balance=settings.paper_balance, maker_fee=settings.maker_fee,
                             taker_fee=settings.taker_fee, default_leverage=settings.leverage,
                             clock=clock.now_ms, price_source=price_source, persist=False)
    store = KnowledgeStore(store_path, default_weights=params.levels.weights.as_dict(),
                           trade_listener=None if trace is None else _TradeTrace(trace))
    router = OrderRouter(exchange, store.orders, ioc_offset_bps=settings.ioc_offset_bps,
                         now_ms=clock.now_ms, id_factory=sequential_ids())
    agent = TradingAgent(settings, None, exchange, store, clock, router=router,
                         params=params)
    if trace is not None:
        agent.decision_listeners.append(trace.decision)
    return exchange, store, agent


def prime_frames(frame: Any, first: int, week_start_bar: int) -> tuple[dict, float, int]:
    """What a replay agent's first cycle primes with at the close of bar `first`, so a
    backtest starts from the very same analyzer state (parity): the 15m/8h/1w candles
    closed by bar `first`'s open as the market port shows them (rl.market.ports), the 1m bars
    before it, and the close of the bar before it. 1m history reaches back to the start of
    the current week (not just 498 bars) so the agent's own 15m/8h/1w aggregation starts
    from whole candles; 1m bars only feed the capped 1m chart ring, never a decision.
    Returns (frames_closed, price, time_ms)."""
    open_ms = index_to_ms(frame.index)
    cut = int(open_ms[first])
    # the market port over the data up to the bar after `first` (later bars are invisible at
    # that time anyway), asked at the replay's first cycle time, as run_cycle asks it
    sub = frame.iloc[: first + 2]
    # the analyzer reads open/high/low/close/volume only: the other summed columns become
    # integer zeros, which aggregate for free, instead of three more fsum passes over months
    # of 1m bars
    unused = [c for c in DETAIL_SUM_COLUMNS if c in sub]
    if unused:
        sub = sub.drop(columns=unused).assign(**{c: np.zeros(len(sub), dtype=np.int64) for c in unused})
    clock = StepClock(cut + MINUTE_MS)
    market = ReplayMarketData({"X": sub}, clock)
    frames: dict[str, Any] = {}
    for tf, limit in KLINE_LIMITS.items():
        if tf == "1m":
            continue
        df = market.klines("X", tf, limit).iloc[:-1]
        frames[tf] = df[index_to_ms(df.index) + INTERVAL_MS[tf] <= cut]
    m1_lo = min(max(0, first - (KLINE_LIMITS["1m"] - 2)), week_start_bar)
    frames["1m"] = frame.iloc[m1_lo:first]
    price = float(frame["close"].iloc[first - 1]) if first > 0 else float(frame["close"].iloc[first])
    return frames, price, cut


def _columns(frame: Any) -> tuple[list, ...]:
    """(open time, open, high, low, close, volume) of every 1m bar as plain lists."""
    return (index_to_ms(frame.index).tolist(), *(frame[k].to_numpy(dtype=np.float64).tolist()
                                                 for k in ("open", "high", "low", "close", "volume")))


def _scan_rules(levels: LevelParams) -> LevelParams:
    """The part of the level parameters a prepared scan depends on: not the weights (applied
    by `rank`, and moved by learning anyway) nor the proximity (read by the level book)."""
    return replace(levels, weights=LevelWeights(), proximity_atr=0.0)


@dataclass(frozen=True)
class PreparedMonth:
    """What a run over `data` computes before its first step and that no trade, weight or
    entry/exit/risk number changes: the bar columns, the prime frames and every level scan
    (candidates, merges, touch statistics, the six features). An optimizer builds it once per
    month and runs every trial on it (rl.optimize); a run with it makes exactly the trades of
    a run without it. Only the level-feature rules (`levels` minus weights and proximity)
    must be the ones the scans were prepared with (`check`)."""

    data: BacktestData
    columns: tuple[list, ...]
    frames: dict
    price0: float
    cut: int
    m1: Bars
    scans: list
    levels: LevelParams

    def check(self, params: StrategyParams) -> None:
        """Raise ValueError if `params` scores level features differently from the scans."""
        if _scan_rules(params.levels) != self.levels:
            raise ValueError("params.levels is invalid for this prepared month: its feature rules "
                             "differ from those the scans were prepared with (only levels.weights "
                             "and levels.proximity_atr may change)")


def prepare_month(data: BacktestData, params: StrategyParams | None = None) -> PreparedMonth:
    """The parameter-free inputs of `run_backtest(data, ...)` (see PreparedMonth); `params`:
    whose level-feature rules the scans use (default: the defaults)."""
    params = params or StrategyParams()
    frame, first = data.frame, data.first_bar
    columns = _columns(frame)
    open_ms = index_to_ms(frame.index)
    week0 = int(np.searchsorted(open_ms, int(bucket_start(columns[0][first], "1w")), side="left"))
    frames, price0, cut = prime_frames(frame, first, week0)
    scans = prepared_scans(frame, data.symbol, first, data.tested_bars, frames, params)
    return PreparedMonth(data=data, columns=columns, frames=frames, price0=price0, cut=cut,
                         m1=Bars.from_frame(frame), scans=scans, levels=_scan_rules(params.levels))


def run_backtest(data: BacktestData, settings: Settings, *, trace: IO[str] | None = None,
                 progress: bool | None = None, store_path: str | Path = ":memory:",
                 entry_policy: Callable[[Any, str, int, bool], Any] | None = None,
                 on_step: Callable[[int, int], None] | None = None,
                 params: StrategyParams | None = None,
                 month: PreparedMonth | None = None) -> BacktestResult:
    """Run the agent over every tested bar of `data` (see rl.backtest.data for the walk).

    Per bar i (close time T): the paper exchange is shown the bar (`on_bar`: fills against
    open/high/low/close), then `agent.step(T, bar)` runs the agent's one per-bar routine, then,
    while a position is open, the exchange is shown the price at T (`on_price`), exactly what
    a replay cycle does between bars. progress=None shows a tqdm bar only when stderr is a
    terminal; on_step(step, T) is called after each bar (tests). The agent's level scans are
    prepared a chunk of 15m closes ahead (rl.backtest.scans); the trades are the same as
    with scans computed one close at a time.
    entry_policy: the agent's TradingAgent.entry_policy (rl.backtest.baselines; None: its scores).
    params: the strategy's numbers (None: `StrategyParams.from_settings(settings)`).
    month: `prepare_month(data, ...)`, the run's parameter-free inputs computed once (an
    optimizer runs the same month with many params); `data` is then month.data. Same
    results as without it (tests/backtest/test_prepared_month.py).
    """
    if month is not None:
        data = month.data
    symbol = data.symbol
    frame = data.frame
    first = data.first_bar
    n = data.tested_bars
    open_ms = index_to_ms(frame.index)
    # plain Python lists: indexing them per bar is ~10x cheaper than numpy scalars
    t_l, o_l, h_l, l_l, c_l, v_l = month.columns if month is not None else _columns(frame)
    clock = StepClock(t_l[first] + MINUTE_MS)
    cur = [first]                                   # the bar whose close is "now"

    def price_source(_sym: str) -> float:           # the market port's last_price at now
        return c_l[cur[0]]

    writer = TraceWriter(trace)
    exchange, store, agent = build_backtest_world(settings, clock, price_source, store_path,
                                                  writer, params)
    agent.entry_policy = entry_policy
    eq = [0.0] * n                   # a list: storing a float is cheaper than into numpy
    show = sys.stderr.isatty() if progress is None else progress
    bar = None
    started = time.perf_counter()
    try:
        if month is None:
            week0 = int(np.searchsorted(open_ms, int(bucket_start(t_l[first], "1w")), side="left"))
            frames, price0, cut = prime_frames(frame, first, week0)
            scans = PreparedScans(frame, symbol, first, n, frames, agent.params)
        else:
            month.check(agent.params)
            frames, price0, cut = month.frames, month.price0, month.cut
            scans = PreparedScans.replay(month.scans)
        if show:
            bar = tqdm(total=n, unit="bar", file=sys.stderr, mininterval=0.5, desc=f"backtest {symbol}")
        agent.startup()                              # what the replay runner does first
        m1 = month.m1 if month is not None else Bars.from_frame(frame)
        agent.prime(symbol, frames, price0, cut, scan_source=scans, m1_source=(m1, first))
        del frames
        on_bar, on_price, step_fn = exchange.on_bar, exchange.on_price, agent.step
        margin_balance = exchange.margin_balance      # = account().margin_balance, no snapshot
        equity = margin_balance()
        bars: dict[str, tuple] = {}                 # the bar step() is shown, set before each call
        rows = zip(t_l[first:first + n], o_l[first:first + n], h_l[first:first + n], l_l[first:first + n],
                   c_l[first:first + n], v_l[first:first + n])
        for k, row in enumerate(rows):
            t, o, h, l, c, _ = row
            now = t + MINUTE_MS
            clock.now = now
            cur[0] = first + k
            on_bar(symbol, o, h, l, c, now - 1)
            bars[symbol] = row
            if step_fn(now, bars):
                # something happened (a 15m close or an open position): as a replay cycle does
                # in a position, show the exchange the price at now (a stop the agent just
                # moved past it triggers here, not at the next bar's open; flat and idle it is
                # a no-op), then read the equity. A flat minute changes neither.
                on_price(symbol, c, now)
                equity = margin_balance()
            eq[k] = equity
            if on_step is not None:
                on_step(k, now)
            if bar is not None and k % 1000 == 999:
                bar.update(1000)
        if bar is not None:
            bar.update(n - bar.n)
        seconds = time.perf_counter() - started
        log.debug("prepared scans: %d taken, %d computed by the agent", scans.hits, scans.misses)
    finally:
        if bar is not None:
            bar.close()
    eq_t = open_ms[first:first + n] + MINUTE_MS
    result = _collect(data, settings, store, n, eq_t, np.asarray(eq, dtype=np.float64),
                      writer.decisions, seconds)
    result.protections = {"config": agent.params.protections.to_dict(),
                          "pauses": pause_records(agent.protections.state(int(eq_t[-1])))}
    store.close()
    return result


def _collect(data: BacktestData, settings: Settings, store: Any, n: int, eq_t: np.ndarray,
             eq: np.ndarray, decisions: int, seconds: float) -> BacktestResult:
    rows = list(reversed(store.trades(limit=10**9)))          # oldest first
    closed = [_trade_row(t, store) for t in rows if t["status"] == "closed"]
    still_open = [_trade_row(t, store) for t in rows if t["status"] != "closed"]
    outcomes = [TradeOutcome(pnl=float(t["pnl"] or 0.0), fees=float(t["fees"] or 0.0),
                             r_multiple=t["r_multiple"], opened_ms=t["opened_ms"],
                             closed_ms=int(t["closed_ms"])) for t in closed]
    frame = data.frame
    open_ms = index_to_ms(frame.index)
    lo, hi = data.first_bar, data.first_bar + n
    first_price = float(frame["open"].iloc[lo])
    last_price = float(frame["close"].iloc[hi - 1])
    times_with_start = np.concatenate(([int(open_ms[lo])], eq_t))
    equity_with_start = np.concatenate(([settings.paper_balance], eq))
    summary = summarize(outcomes, times_with_start, equity_with_start, settings.paper_balance,
                        first_price=first_price, last_price=last_price).to_dict()
    if still_open:   # time in a position still open at the end is exposure too
        held = outcomes + [TradeOutcome(0.0, 0.0, None, t["opened_ms"], int(eq_t[-1])) for t in still_open]
        summary["exposure_pct"] = exposure(held, int(times_with_start[0]), int(times_with_start[-1])) * 100.0
    history = store.weight_history(limit=10**9)
    final = store.current_weights()
    return BacktestResult(
        symbol=data.symbol, date_from=_iso_day(int(open_ms[lo])), date_to=_iso_day(int(open_ms[hi - 1])),
        settings=public_settings(settings),
        summary=summary, final_weights=final, trades=closed, open_trades=still_open,
        weight_history=[{"time_ms": w["time_ms"], "weights": w["weights"], "reason": w["reason"]}
                        for w in history],
        equity_time_ms=times_with_start, equity=equity_with_start,
        price_time_ms=open_ms[lo:hi] + MINUTE_MS, price_close=frame["close"].to_numpy()[lo:hi],
        candles=_report_candles(frame, open_ms, lo, hi), bars=n, decisions=decisions, gaps=len(data.gaps),
        seconds=seconds)


def public_settings(settings: Settings) -> dict:
    """The settings a result shows: those that change its trades and costs (the report's
    "Settings used"; report_labels.SETTINGS names each)."""
    return {k: v for k, v in settings.public_dict().items() if k in SHOWN_SETTINGS}


SHOWN_SETTINGS = ("leverage", "max_risk_percent", "min_trades_for_adjust", "check_interval_flat",
                  "check_interval_position", "paper_balance", "maker_fee", "taker_fee", "ioc_offset_bps",
                  "entry_order", "take_profit_order", "max_notional_percent", "min_reward_r",
                  "max_drawdown_percent", "daily_loss_limit_percent", "stoploss_guard_trades",
                  "max_open_positions", "max_total_risk_percent", "max_correlation", "trade_filter")


def _report_candles(frame: Any, open_ms: np.ndarray, lo: int, hi: int) -> dict:
    minutes = bucket_minutes(hi - lo)
    o, h, low, c = (frame[col].to_numpy()[lo:hi] for col in ("open", "high", "low", "close"))
    out = resample_ohlc(open_ms[lo:hi], o, h, low, c, minutes=minutes)
    return {"minutes": minutes, **out}


# ----------------------------------------------------------------------------- output

_ROWS = (("trades", "Trades / 交易数", "{:d}"), ("win_rate", "Win rate / 胜率", "pct1"),
         ("net_pnl", "Net PnL / 净盈亏", "{:,.2f}"), ("return_pct", "Return / 收益率", "{:+.2f} %"),
         ("fees", "Fees / 手续费", "{:,.2f}"), ("max_drawdown_pct", "Max drawdown / 最大回撤", "{:.2f} %"),
         ("sharpe", "Sharpe", "{:.2f}"), ("sortino", "Sortino", "{:.2f}"),
         ("profit_factor", "Profit factor / 利润因子", "{:.2f}"), ("expectancy", "Expectancy / 期望", "{:,.2f}"),
         ("average_r", "Average R / 平均R", "{:+.2f}"), ("exposure_pct", "Exposure / 持仓时间", "{:.1f} %"),
         ("buy_hold_return_pct", "Buy & hold / 持有收益", "{:+.2f} %"))


def format_summary(result: BacktestResult) -> str:
    """The plain-text summary table the CLI prints."""
    s = result.summary
    lines = [f"Backtest {result.symbol} {result.date_from} → {result.date_to}: {result.bars:,} bars "
             f"in {result.seconds:.1f} s ({result.bars_per_second:,.0f} bars/s)"]
    if result.per_symbol:
        lines[0] += f", {result.steps:,} steps, one account / 同一账户"
    width = max(len(label) for _, label, _ in _ROWS) + 2
    for key, label, fmt in _ROWS:
        v = s.get(key)
        if v is None:
            text = "—"
        elif fmt == "pct1":
            text = f"{v * 100:.1f} %"
        else:
            text = fmt.format(v)
        lines.append(f"  {label:<{width}}{text}")
    if result.open_trades:
        lines.append(f"  {'Open at end / 未平仓':<{width}}{len(result.open_trades)} (in equity, not in trades)")
    counts = pause_counts(result.protections.get("pauses", []))
    lines.append(f"  {'Pauses / 风控暂停':<{width}}" + ", ".join(f"{r} {n}" for r, n in counts.items()))
    if result.per_symbol:
        from rl.backtest.portfolio import per_symbol_lines, span_lines
        lines.append("  Per symbol / 分品种:")
        lines += per_symbol_lines(result.per_symbol)
        lines.append("  Spans / 时段 (each symbol joins after its own warm-up and leaves when its data "
                     "ends / 各品种预热后加入，数据结束即退出):")
        lines += span_lines(result.spans)
    lines.append("  Final weights / 最终权重:")
    for k, w in result.final_weights.items():
        lines.append(f"    {k:<24}{w * 100:5.1f} %")
    return "\n".join(lines)


def dumps_json(doc: Mapping[str, Any]) -> str:
    """Deterministic JSON (sorted keys, NaN refused) so two runs can be compared byte for byte."""
    return json.dumps(doc, sort_keys=True, indent=1, ensure_ascii=False, allow_nan=False)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rl.backtest",
                                description="Run the trading agent over Binance archive 1m klines.")
    p.add_argument("--data", nargs="+", required=True, metavar="PATH",
                   help="archive .zip/.csv files, their folder, or the archive root (../shared/data)")
    p.add_argument("--symbol", required=True,
                   help="symbol to test, e.g. FILUSDT; several, comma-separated (FILUSDT,NEARUSDT): "
                        "one portfolio on one account")
    p.add_argument("--from", dest="date_from", metavar="YYYY-MM-DD", help="first day tested (UTC)")
    p.add_argument("--to", dest="date_to", metavar="YYYY-MM-DD", help="last day tested (UTC, inclusive)")
    p.add_argument("--balance", type=float, help="starting balance in USDT (default PAPER_BALANCE)")
    p.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    p.add_argument("--report", metavar="FILE.html", help="write a self-contained HTML report")
    p.add_argument("--trace", metavar="FILE.jsonl", help="write one JSON line per decision")
    p.add_argument("--profile", metavar="NAME",
                   help="strategy profile profiles/NAME.json (python -m rl.optimize); default STRATEGY_PROFILE")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting by its env-var name (repeatable), e.g. --set LEVERAGE=5")
    p.add_argument("--baselines", type=int, default=0, metavar="N",
                   help="also run frozen learning and N random-entry runs (20 or more for a "
                        "distribution) and report the agent against them (default 0: off)")
    p.add_argument("--seed", type=int, default=0, help="first random-entry run's seed (run i: seed + i)")
    p.add_argument("--jobs", type=int, default=1, help="processes for the baseline runs")
    return p


def parse_symbols(raw: str) -> tuple[str, ...]:
    """--symbol A or A,B,C -> ("A", "B", "C"), upper case, each once, in the order given."""
    out: list[str] = []
    for part in str(raw).split(","):
        sym = part.strip().upper()
        if not sym:
            raise ValueError(f"--symbol={raw!r} is invalid: give symbols like FILUSDT or "
                             "FILUSDT,NEARUSDT (no empty entries)")
        if sym in out:
            raise ValueError(f"--symbol={raw!r} is invalid: {sym} is given twice")
        out.append(sym)
    return tuple(out)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        symbols = parse_symbols(args.symbol)
        overrides = parse_overrides(args.overrides)
        if args.profile is not None:
            overrides.update(strategy_profile=args.profile.strip(),
                             strategy_overrides=read_profile(args.profile, "--profile"))
        settings = backtest_settings(symbols, args.balance, overrides)
        StrategyParams.from_settings(settings)      # a bad profile: one line, before loading data
        if len(symbols) > 1:
            from rl.backtest.portfolio import load_portfolio_data
            datas = load_portfolio_data(args.data, symbols, args.date_from, args.date_to)
        else:
            datas = [load_backtest_data(args.data, symbols[0], args.date_from, args.date_to)]
        if len(datas) > 1 and args.baselines:
            raise ValueError(f"--baselines={args.baselines} is invalid with several symbols: "
                             "baselines run one symbol at a time")
    except (SettingsError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    data = datas[0]
    if args.baselines < 0 or args.jobs < 1:
        print(f"error: --baselines={args.baselines} / --jobs={args.jobs} is invalid: "
              "--baselines must be >= 0 and --jobs >= 1", file=sys.stderr)
        return 2
    trace = open(args.trace, "w", encoding="utf-8") if args.trace else None
    baselines = None
    try:
        if args.baselines:
            from rl.backtest.baselines import run_with_baselines  # it imports this module
            result, baselines = run_with_baselines(data, settings, runs=args.baselines, seed=args.seed,
                                                   jobs=args.jobs, trace=trace)
        elif len(datas) > 1:
            from rl.backtest.portfolio import run_portfolio
            result = run_portfolio(datas, settings, trace=trace)
        else:
            result = run_backtest(data, settings, trace=trace)
    finally:
        if trace is not None:
            trace.close()
    print(format_summary(result))
    doc, report = result.to_json(), result.to_report()
    if baselines is not None:
        from rl.backtest.baselines import format_baselines
        print(format_baselines(baselines))
        doc["baselines"] = report["baselines"] = baselines
    if args.json:
        Path(args.json).write_text(dumps_json(doc) + "\n", encoding="utf-8")
    if args.report:
        Path(args.report).write_text(render_report(report), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
