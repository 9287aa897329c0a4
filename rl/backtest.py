"""Backtest: the live TradingAgent, unchanged, run over archive 1m bars.

    python -m rl.backtest --data ../shared/data --symbol FILUSDT --from 2023-09-01 --to 2023-09-30 \
        --json out.json --report out.html --trace decisions.jsonl --set LEVERAGE=5

No second strategy implementation: rl.agent.TradingAgent.run_cycle() (what the live runner
calls) over a ReplayMarketData (15m/8h/1w formed causally from 1m), a PaperExchange the agent
feeds each closed bar (fills from the bar's open/high/low) and a ManualClock set to each 1m
close of rl.backtest_data.BarSchedule: the walk the dashboard's replay clock takes too, so both
make the same trades (parity; see docs/backtest.md). Figures come from rl.metrics, shared with
the dashboard; the HTML report from rl.report.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Mapping, Sequence

import numpy as np

from config import _PARSERS, Settings, SettingsError, load_settings
from rl.backtest_data import BacktestData, BarSchedule, load_backtest_data
from rl.clock import ManualClock
from rl.market import MINUTE_MS, index_to_ms
from rl.metrics import TradeOutcome, drawdown_curve, exposure, summarize

# Settings a backtest decides itself; --set on them would be silently ignored, so refuse.
_NOT_SETTABLE = {"TRADING_MODE", "API_KEY", "API_SECRET", "LIVE_TRADING_CONFIRM", "SYMBOLS",
                 "DB_PATH", "HOST", "PORT", "REPLAY_DIR", "REPLAY_SPEED", "MARKET_DATA_URL",
                 "TRADE_URL"}
TIMING_FIELDS = ("seconds", "bars_per_second")


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
        if key in _NOT_SETTABLE:
            raise SettingsError(f"--set {key}={value!r} is invalid: a backtest fixes {key} itself "
                                "(paper exchange, in-memory store, --symbol)")
        attr, parse = _PARSERS[key]
        out[attr] = parse(key, value)
    return out


def backtest_settings(symbol: str, balance: float | None = None,
                      overrides: Mapping[str, Any] | None = None,
                      base: Settings | None = None) -> Settings:
    """The settings a backtest runs with: .env/environment defaults, then --set, validated.

    Always paper mode, one symbol; keys and live confirmation are dropped (never needed).
    """
    if base is None:
        base = load_settings()
    changes: dict[str, Any] = dict(overrides or {})
    if balance is not None:
        if not (isinstance(balance, (int, float)) and math.isfinite(balance) and balance > 0):
            raise SettingsError(f"--balance={balance!r} is invalid: it must be a number > 0")
        changes["paper_balance"] = float(balance)
    changes.update(trading_mode="paper", api_key="", api_secret="", live_confirm="",
                   symbols=(symbol,), replay_dir=None)
    return base.with_overrides(**changes)


# ----------------------------------------------------------------------------- trace

class TraceWriter:
    """One JSON line per decision, written as it happens (memory stays flat)."""

    def __init__(self, stream: IO[str] | None) -> None:
        self._stream = stream
        self.count = 0

    def write(self, record: Mapping[str, Any]) -> None:
        if self._stream is not None:
            self._stream.write(json.dumps(record, sort_keys=True, separators=(",", ":"),
                                          allow_nan=False) + "\n")
        self.count += 1


def decision_record(agent: Any, store: Any, symbol: str, time_ms: int) -> dict | None:
    """The trace line of the cycle the agent just ran at `time_ms` (None if it analysed nothing).

    Scores come from the agent's published status; the threshold and gap are the phase's for
    the closed-trade count the decision saw; the action is read from the store: a trade opened
    now is an entry, one closed now an exit, an open one a hold, else a wait.
    """
    st = agent.status()
    sc = st["last_scores"].get(symbol)
    if sc is None or sc.get("time_ms") != time_ms:
        return None
    ph = st["phase"]
    action = "wait"
    rows = store._query("SELECT side, status, opened_ms, closed_ms, exit_reason FROM trades "
                        "WHERE symbol=? AND (opened_ms=? OR closed_ms=? OR status='open')",
                        (symbol, time_ms, time_ms))
    for r in rows:
        if r["opened_ms"] == time_ms:
            action = "enter_long" if r["side"] == "LONG" else "enter_short"
            break
        if r["closed_ms"] == time_ms:
            action = f"exit_{r['exit_reason']}"
        elif r["status"] == "open" and action == "wait":
            action = "hold"
    return {"time_ms": int(time_ms), "symbol": symbol, "long": _round(sc["long"]),
            "short": _round(sc["short"]), "threshold": ph["min_score"], "gap": ph["score_gap"],
            "phase": ph["key"], "trades": ph["trade_count"], "action": action}


def _round(x: Any) -> float | None:
    return None if x is None or x != x else round(float(x), 6)


# ----------------------------------------------------------------------------- result

@dataclass
class BacktestResult:
    """Everything a run produced; to_json() is what --json writes, to_report() feeds rl.report."""

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
    cycles: int
    gaps: int
    seconds: float
    stats: dict = field(default_factory=dict)

    @property
    def bars_per_second(self) -> float:
        return self.bars / self.seconds if self.seconds > 0 else float("inf")

    def to_json(self) -> dict:
        """The --json document: summary figures, final weights, trades, bars and timing."""
        return {"symbol": self.symbol, "from": self.date_from, "to": self.date_to,
                **self.summary, "final_weights": self.final_weights,
                "bars": self.bars, "cycles": self.cycles, "gaps": self.gaps,
                "seconds": round(self.seconds, 3),
                "bars_per_second": round(self.bars_per_second, 1) if self.seconds > 0 else None,
                "settings": self.settings,
                "trades": [{k: v for k, v in t.items() if k != "thought_chain"} for t in self.trades],
                "open_trades": [{k: v for k, v in t.items() if k != "thought_chain"}
                                for t in self.open_trades]}

    def to_report(self) -> dict:
        """The dict rl.report.render_report draws."""
        return {"symbol": self.symbol, "from": self.date_from, "to": self.date_to,
                "summary": {**self.summary, "bars": self.bars, "seconds": round(self.seconds, 2)},
                "final_weights": self.final_weights,
                "prices": {"time_ms": self.price_time_ms.tolist(), "close": self.price_close.tolist()},
                "equity": {"time_ms": self.equity_time_ms.tolist(), "equity": self.equity.tolist(),
                           "drawdown": drawdown_curve(self.equity)},
                "trades": self.trades + self.open_trades, "weight_history": self.weight_history}


def _iso_day(ms: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ms / 1000))


def _iso_min(ms: int | None) -> str | None:
    return None if ms is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(ms / 1000))


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

def build_backtest_world(data_frames: Mapping[str, Any], settings: Settings, clock: Any,
                         store_path: str | Path = ":memory:") -> tuple[Any, Any, Any, Any]:
    """(market, exchange, store, agent) wired as the live agent is, for a backtest or replay."""
    from rl.agent import TradingAgent
    from rl.knowledge import KnowledgeStore
    from rl.level_finder import DEFAULT_WEIGHTS
    from rl.marketdata import ReplayMarketData
    from rl.paper import PaperExchange

    market = ReplayMarketData(dict(data_frames), clock)
    exchange = PaperExchange(None, balance=settings.paper_balance, maker_fee=settings.maker_fee,
                             taker_fee=settings.taker_fee, default_leverage=settings.leverage,
                             clock=clock.now_ms, price_source=market.last_price, persist=False)
    store = KnowledgeStore(store_path, default_weights=DEFAULT_WEIGHTS)
    agent = TradingAgent(settings, market, exchange, store, clock)
    return market, exchange, store, agent


def run_backtest(data: BacktestData, settings: Settings, *, trace: IO[str] | None = None,
                 progress: bool | None = None, store_path: str | Path = ":memory:",
                 on_step: Callable[[int, int], None] | None = None) -> BacktestResult:
    """Run the agent over every tested bar of `data` (see rl.backtest_data for the walk).

    progress=None shows a tqdm bar only when stderr is a terminal.
    """
    symbol = data.symbol
    schedule = BarSchedule({symbol: data.frame}, start_ms=data.start_ms)
    times = schedule.times
    n = len(times)
    clock = ManualClock(times[0])
    market, exchange, store, agent = build_backtest_world({symbol: data.frame}, settings, clock,
                                                          store_path)
    writer = TraceWriter(trace)
    eq = np.empty(n, dtype=np.float64)
    stop = threading.Event()
    show = sys.stderr.isatty() if progress is None else progress
    bar = None
    if show:
        from tqdm import tqdm
        bar = tqdm(total=n, unit="bar", file=sys.stderr, mininterval=0.5, desc=f"backtest {symbol}")
    started = time.perf_counter()
    try:
        agent.startup(stop)
        due = times[0]
        cycles = 0
        for step in range(n):
            t = times[step]
            clock.set(t)
            if t >= due:
                interval = agent.run_cycle(stop)
                due = t + int(float(interval) * 1000)
                cycles += 1
                if trace is not None:
                    rec = decision_record(agent, store, symbol, t)
                    if rec is not None:
                        writer.write(rec)
            eq[step] = exchange.account().margin_balance
            if on_step is not None:
                on_step(step, t)
            if bar is not None and step % 1000 == 999:
                bar.update(1000)
        if bar is not None:
            bar.update(n - bar.n)
        seconds = time.perf_counter() - started
    finally:
        if bar is not None:
            bar.close()
    result = _collect(data, settings, store, schedule, np.asarray(times, dtype=np.int64), eq,
                      cycles, seconds)
    store.close()
    return result


def _collect(data: BacktestData, settings: Settings, store: Any, schedule: BarSchedule,
             eq_t: np.ndarray, eq: np.ndarray, cycles: int, seconds: float) -> BacktestResult:
    rows = list(reversed(store.trades(limit=10**9)))          # oldest first
    closed = [_trade_row(t, store) for t in rows if t["status"] == "closed"]
    still_open = [_trade_row(t, store) for t in rows if t["status"] != "closed"]
    outcomes = [TradeOutcome(pnl=float(t["pnl"] or 0.0), fees=float(t["fees"] or 0.0),
                             r_multiple=t["r_multiple"], opened_ms=t["opened_ms"],
                             closed_ms=int(t["closed_ms"])) for t in closed]
    frame = data.frame
    open_ms = index_to_ms(frame.index)
    lo, hi = data.first_bar, data.first_bar + len(schedule)
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
        settings={k: v for k, v in settings.public_dict().items()
                  if k in ("leverage", "max_risk_percent", "min_trades_for_adjust", "check_interval_flat",
                           "check_interval_position", "paper_balance", "maker_fee", "taker_fee",
                           "ioc_offset_bps")},
        summary=summary, final_weights=final, trades=closed, open_trades=still_open,
        weight_history=[{"time_ms": w["time_ms"], "weights": w["weights"], "reason": w["reason"]}
                        for w in history],
        equity_time_ms=times_with_start, equity=equity_with_start,
        price_time_ms=open_ms[lo:hi] + MINUTE_MS, price_close=frame["close"].to_numpy()[lo:hi],
        bars=len(schedule), cycles=cycles, gaps=len(data.gaps), seconds=seconds)


# ----------------------------------------------------------------------------- output

_ROWS = (("trades", "Trades / 交易数", "{:d}"), ("win_rate", "Win rate / 胜率", "pct1"),
         ("net_pnl", "Net PnL / 净盈亏", "{:,.2f}"), ("return_pct", "Return / 收益率", "{:+.2f} %"),
         ("fees", "Fees / 手续费", "{:,.2f}"), ("max_drawdown_pct", "Max drawdown / 最大回撤", "{:.2f} %"),
         ("sharpe", "Sharpe", "{:.2f}"), ("sortino", "Sortino", "{:.2f}"),
         ("profit_factor", "Profit factor / 盈亏比", "{:.2f}"), ("expectancy", "Expectancy / 期望", "{:,.2f}"),
         ("average_r", "Average R / 平均R", "{:+.2f}"), ("exposure_pct", "Exposure / 持仓时间", "{:.1f} %"),
         ("buy_hold_return_pct", "Buy & hold / 持有收益", "{:+.2f} %"))


def format_summary(result: BacktestResult) -> str:
    """The plain-text summary table the CLI prints."""
    s = result.summary
    lines = [f"Backtest {result.symbol} {result.date_from} → {result.date_to}: {result.bars:,} bars "
             f"in {result.seconds:.1f} s ({result.bars_per_second:,.0f} bars/s)"]
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
    p.add_argument("--symbol", required=True, help="symbol to test, e.g. FILUSDT")
    p.add_argument("--from", dest="date_from", metavar="YYYY-MM-DD", help="first day tested (UTC)")
    p.add_argument("--to", dest="date_to", metavar="YYYY-MM-DD", help="last day tested (UTC, inclusive)")
    p.add_argument("--balance", type=float, help="starting balance in USDT (default PAPER_BALANCE)")
    p.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    p.add_argument("--report", metavar="FILE.html", help="write a self-contained HTML report")
    p.add_argument("--trace", metavar="FILE.jsonl", help="write one JSON line per decision")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting by its env-var name (repeatable), e.g. --set LEVERAGE=5")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        symbol = args.symbol.strip().upper()
        settings = backtest_settings(symbol, args.balance, parse_overrides(args.overrides))
        data = load_backtest_data(args.data, symbol, args.date_from, args.date_to)
    except (SettingsError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    trace = open(args.trace, "w", encoding="utf-8") if args.trace else None
    try:
        result = run_backtest(data, settings, trace=trace)
    finally:
        if trace is not None:
            trace.close()
    print(format_summary(result))
    if args.json:
        Path(args.json).write_text(dumps_json(result.to_json()) + "\n", encoding="utf-8")
    if args.report:
        from rl.report import render_report
        Path(args.report).write_text(render_report(result.to_report()), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
