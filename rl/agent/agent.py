"""TradingAgent: the six steps of the design, once per cycle for each configured symbol.

perceive (klines 1m/15m/8h/1w, forming candle dropped) → analyze (IncrementalAnalyzer with the
current learned weights) → decide (phase thresholds; no entry while a risk protection pauses
entries: AccountProtections, fed the account's equity at every 15m close and every closed
trade) → execute (OrderRouter: IOC entry, or a post-only maker entry polled every bar until it
fills or times out, and a protective stop; exit manager actions) → record (TradeJournal: one
transaction per logical write) → learn (after each close, once enough trades are closed).

Two drivers run the SAME per-bar routine `_on_bar` (see docs/strategy.md "Decision cadence"):
- `run_cycle(stop)` (live, paper, replay): fetches the 1m candles closed since the last cycle and
  hands each to `_on_bar` in order; returns the seconds to wait (60 s flat, 30 s in a position).
  The runner thread sleeps on the clock. A paper exchange given as `feed` is shown each bar.
- `step(now_ms, bars)` (backtest, after `prime`): one closed 1m candle per symbol, no I/O to the
  market port and no sleeping; a CandleFormer per symbol forms its 15m/8h/1w candles.
`_on_bar` decides only when a 15m candle closes (re-scoring the analysis then) and otherwise
only manages an open position against the cached analysis, so a flat minute costs a few
microseconds. The agent is composed of: the Reconciler (restart and reconcile with the
exchange), the TradeJournal (trade records and learning) and the StatusBoard (what the
dashboard reads).

Safety: every symbol's step runs inside `self.lock`, which manual dashboard actions take too,
so the agent and the trader never send orders over each other. Anything one symbol's cycle
raises is logged and the loop goes on. Before an entry order goes out its intent (perception,
plan) is written to the store, so a SIGKILL between the fill and the trade record is repaired
on restart with the full thought chain instead of a bare adopted position.
"""
from __future__ import annotations

import copy
import logging
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pandas as pd

from client import BinanceError, SymbolFilters, new_client_order_id
from config import Settings
from rl.agent import manual_stops, open_orders
from rl.agent.analyzer_port import OneMinuteAppender, SymbolAnalyzer
from rl.agent.exposure import AccountExposure, exposure_config
from rl.agent.filter_gate import PERCEPTION_KEY, FilterGate
from rl.agent.journal import TradeJournal, state_copy

# KLINE_LIMITS: what a first cycle reads, also imported from here by rl.backtest to prime alike
from rl.agent.kline_cursor import KLINE_LIMITS, KlineCursor, history_at_newest_bar  # noqa: F401
from rl.agent.protections import AccountProtections
from rl.agent.reconciler import EPS, Reconciler
from rl.agent.status import StatusBoard, agent_status, error_texts, merged_positions
from rl.analysis.analyzer import Analysis, IncrementalAnalyzer
from rl.analysis.levels.book import LevelScan
from rl.analysis.levels.candidates import Bars
from rl.clock import Clock
from rl.errors import AgentError, RateLimitError
from rl.execution.account_mode import ModeCheck, check_account_mode
from rl.execution.actions import exit_kind
from rl.execution.port import ExchangePort, OrderResult, SimulatedExchange
from rl.execution.position import PositionState
from rl.execution.router import EntryOutcome, OrderRouter, RestingEntry
from rl.knowledge.codec import Encoded
from rl.knowledge.store import KnowledgeStore
from rl.knowledge.thought import build_perception
from rl.market.candle_former import CandleFormer
from rl.market.candles import MINUTE_MS, index_to_ms
from rl.market.ports import MarketDataPort, MarketUnavailable
from rl.risk import Pause
from rl.risk.exposure import RULE_NAMES_EN as RULE_NAMES_EN_EXPOSURE
from rl.risk.exposure import RULE_NAMES_ZH as RULE_NAMES_ZH_EXPOSURE
from rl.risk.exposure import Refusal
from rl.risk.records import RULE_NAMES_EN, RULE_NAMES_ZH, format_utc
from rl.strategy.exits import evaluate_exit, holding_quietly
from rl.strategy.params import StrategyParams
from rl.strategy.phases import Decision, decide, phase_for
from rl.strategy.trade_plan import plan_trade

log = logging.getLogger("rl.agent.agent")
# (decision, symbol, time_ms, entries paused) -> the decision acted on (TradingAgent.entry_policy)
EntryPolicy = Callable[[Decision, str, int, bool], Decision]

_SIDE_ZH = {"BUY": "买入", "SELL": "卖出"}
_TYPE_ZH = {"MARKET": "市价", "LIMIT": "限价"}
_STATUS_ZH = {"NEW": "已挂单", "PARTIALLY_FILLED": "部分成交", "FILLED": "已成交", "CANCELED": "已撤销",
              "EXPIRED": "已过期", "REJECTED": "被拒绝", "EXPIRED_IN_MATCH": "撮合时过期"}


MODE_RECHECK_MS = 15 * 60_000


class _Stopped(Exception):
    """Raised between steps when the stop flag is set: unwinds a cycle without a half action."""


@dataclass
class _SymbolRuntime:
    """What the agent thread keeps per symbol (never handed to other threads). Its `state`,
    `pending` and `resting` are the Reconciler's PositionSlot."""

    analyzer: SymbolAnalyzer
    former: CandleFormer                     # step(): the 15m/8h/1w candles formed from 1m bars
    analysis: Analysis | None = None
    state: PositionState | None = None
    pending: bool = False                    # an entry of unknown outcome awaits the next sync
    resting: bool = False                    # a maker entry rests on the book: polled every bar
    entry_note: str = ""                     # the resting entry's last logged state
    # the resting entry's order as last seen, while part of it has filled (shown as a position)
    entry_order: OrderResult | None = None
    last_1m_ms: int | None = None            # open time of the newest closed 1m bar handled
    cursor: KlineCursor = field(default_factory=KlineCursor)   # run_cycle(): the market port's klines
    append_1m: OneMinuteAppender | None = None   # step(): the analyzer's cheaper 1m push, if any
    last_log: str = ""
    mode_note: str = ""                      # the account-mode refusal last logged for it

    @classmethod
    def of(cls, analyzer: SymbolAnalyzer) -> _SymbolRuntime:
        return cls(analyzer, CandleFormer(analyzer.push_candle))


def _trader_detail(exc: BaseException) -> str | None:
    """The part of an error a trader may see: the message of one of the project's own errors
    (rl.errors: written for the trader, naming no secrets; for a Binance error its code and
    msg), None for anything else, whose text (paths, SQL, payloads) only the Python log gets."""
    if isinstance(exc, BinanceError):
        return f"Binance {exc.code}: {exc.msg}" if exc.code is not None else (exc.msg or None)
    if isinstance(exc, AgentError):
        return str(exc) or None
    return None


def _analysis_view(a: Analysis) -> dict:
    """What a thought chain keeps of an analysis: everything but the full level list (the
    chosen level is stored on its own), so recording an entry stays cheap in backtests."""
    return {"price": a.price, "time_ms": a.time_ms, "long_score": a.long_score, "short_score": a.short_score,
            "long_breakdown": a.long_breakdown, "short_breakdown": a.short_breakdown,
            "indicators": {tf: dict(v) for tf, v in a.indicators.items()}, "atr_15m": a.atr_15m,
            "notes": list(a.notes),
            "best_support": a.best_support.price if a.best_support is not None else None,
            "best_resistance": a.best_resistance.price if a.best_resistance is not None else None}


class TradingAgent:
    """The trading brain. Thread-safe for: `run_cycle`/`step` on one thread, `status`,
    `levels`, `positions`, `managed_position` from any thread, manual actions serialized
    through `lock`.

    `market`: the market port run_cycle reads (None for a backtest, which primes and steps).
    `feed`: a simulated exchange nobody else shows the market (live paper, replay: usually
    `exchange` itself); run_cycle then shows it each newly closed 1m bar and the last price.
    A backtest feeds its exchange itself. `analyzer_factory(symbol, weights)`: the analysis
    per symbol (IncrementalAnalyzer; tests script the market's verdict through it)."""

    def __init__(self, settings: Settings, market: MarketDataPort | None, exchange: ExchangePort,
                 store: KnowledgeStore, clock: Clock, *, feed: SimulatedExchange | None = None,
                 router: OrderRouter | None = None, params: StrategyParams | None = None,
                 symbols: Sequence[str] | None = None,
                 analyzer_factory: Callable[[str, dict[str, float]], SymbolAnalyzer] | None = None) -> None:
        if feed is not None and market is None:
            raise ValueError("feed is invalid without a market: the agent shows the simulated exchange "
                             "the market port's bars (a backtest feeds its exchange itself: feed=None)")
        self.settings = settings
        self.market = market
        self.exchange = exchange
        self.feed = feed
        self.store = store
        self.clock = clock
        self.symbols = tuple(symbols or settings.symbols)
        self.router = router or OrderRouter(exchange, store.orders, ioc_offset_bps=settings.ioc_offset_bps,
                                            now_ms=clock.now_ms)
        # a resting take-profit must clear the round-trip fees at the rate this account pays
        self.router.targets.fee_rate = float(settings.taker_fee)
        self.params = params or StrategyParams.from_settings(settings)   # every strategy number
        self.lock = threading.RLock()
        # Called with one dict per entry decision (time_ms, symbol, long_score, short_score,
        # min_score, score_gap, phase, trade_count, action, price): the backtest's --trace.
        self.decision_listeners: list[Callable[[dict], None]] = []
        # Called at every entry decision (flat, 15m close, no cooldown) with (decision, symbol,
        # time_ms, paused) and returns the decision to act on; None: the scores decide. A
        # baseline's entry source (rl.backtest.baselines: random entries) plugs in here so it
        # keeps the agent's plan, sizing, exits and protections.
        self.entry_policy: EntryPolicy | None = None
        self.board = StatusBoard()
        if store.default_weights is None:
            store.default_weights = self.params.levels.weights.as_dict()
        # account-wide pauses on new entries after losses (rl.risk), rebuilt from the store at
        # start-up; the journal tells them of every close
        self.protections = AccountProtections(self.params.protections, store, log=self._log,
                                              publish=self.board.protections, now_ms=clock.now_ms())
        # caps on what the positions open together risk (rl.risk.exposure): asked at entry signals
        self.exposure = AccountExposure(exposure_config(settings), store, taker_fee=settings.taker_fee)
        # the learned trade filter (TRADE_FILTER=on): None keeps today's agent exactly
        self.trade_filter = (FilterGate(store, self.params.filter)
                             if getattr(settings, "trade_filter", "off") == "on" else None)
        self.journal = TradeJournal(store, leverage=settings.leverage,
                                    learning=self.params.learning,
                                    log=self._log, on_weights=self._use_weights,
                                    on_close=self.protections.trade_closed, funding=self._funding,
                                    filter_gate=self.trade_filter)
        self.reconciler = Reconciler(exchange, self.router, store, self.journal, leverage=settings.leverage,
                                     log=self._log, publish=self._publish,
                                     exchange_ok=lambda: self.board.connect("exchange", "ok"))
        make = analyzer_factory or partial(IncrementalAnalyzer, score_params=self.params.score,
                                           level_params=self.params.levels)
        self._rt = {s: _SymbolRuntime.of(make(s, self.journal.weights)) for s in self.symbols}
        self._sizes: dict[str, tuple[SymbolFilters, float, float]] = {}    # see _market_sizes
        # the account's verified modes (hedge / multi-assets / margin type / leverage): no entry
        # while a mismatch stands; checked at start-up, re-checked at an entry signal while one
        # stands (at most every MODE_RECHECK_MS)
        self._mode: ModeCheck | None = None

    def _funding(self, symbol: str, from_ms: int, to_ms: int) -> float:
        """The funding the account received (> 0) or paid (< 0) in `symbol` between the two
        times (the journal folds it into a closing trade's net PnL)."""
        return sum(f.amount for f in self.exchange.funding_since(symbol, from_ms) if f.time_ms <= to_ms)

    def _market_port(self) -> MarketDataPort:
        if self.market is None:
            raise RuntimeError("this agent has no market port (a backtest): drive it with prime() and step()")
        return self.market

    # ================================================================== lifecycle
    def startup(self, stop: threading.Event | None = None) -> list[str]:
        """Reload state and reconcile every symbol with the exchange; returns what was done."""
        now = self.clock.now_ms()
        self.journal.reload_weights(now)
        if self.trade_filter is not None:
            self.trade_filter.reload()
        # before the reconcile: a trade it closes is told to the rebuilt protections
        with self.lock:
            self.protections.restore(now)
        notes: list[tuple[str, str]] = []          # (zh, en)
        with self.lock:
            self._check_mode(now)
        if self.store.get_state("initial_balance") is None:
            try:
                self.store.set_state("initial_balance", self.exchange.account().wallet_balance, now)
                self.store.set_state("initial_balance_ms", now, now)
            except Exception as exc:            # not fatal: the equity curve starts at 0
                self.note_error("", exc)
        for sym in self.symbols:
            if stop is not None and stop.is_set():
                break
            with self.lock:
                try:
                    now = self.clock.now_ms()
                    if self.feed is not None:    # a paper exchange knows no price it was not shown
                        self.feed.on_price(sym, self._market_port().last_price(sym), now)
                    if self._hands_off():        # hedge mode: nothing on the account is ours
                        continue
                    notes += self.reconciler.restore(sym, self._rt[sym], now)
                except Exception as exc:
                    self.note_error(sym, exc)
        for zh, en in notes:
            self._log("INFO", "", "重启对账：" + zh, "restart reconcile: " + en)
        return [en for _, en in notes]

    # ================================================================== live driver
    def run_cycle(self, stop: threading.Event | None = None) -> float:
        """One pass over every symbol; returns seconds until the next cycle.

        Per symbol: fetch the 1m candles closed since the last cycle (the first cycle primes
        the analyzer from the full history first), run `_on_bar` for each of them in order,
        exactly as `step()` does in a backtest, then (only while in a position) show a paper
        exchange the current price so its stop can trigger between bars, and publish status.
        """
        self.board.cycle_start()
        for sym in self.symbols:
            if stop is not None and stop.is_set():
                break
            with self.lock:
                try:
                    self._cycle_symbol(sym, stop)
                except _Stopped:
                    break
                except Exception as exc:    # one symbol's bad cycle never ends the loop
                    self.note_error(sym, exc)
        self.board.cycle_done(self.clock.now_ms())
        return self.next_interval()

    def next_interval(self) -> float:
        if any(rt.state is not None for rt in self._rt.values()):
            return float(self.settings.check_interval_position)
        return float(self.settings.check_interval_flat)

    @staticmethod
    def _check(stop: threading.Event | None) -> None:
        if stop is not None and stop.is_set():
            raise _Stopped()

    def _cycle_symbol(self, sym: str, stop: threading.Event | None) -> None:
        rt = self._rt[sym]
        now = self.clock.now_ms()
        market = self._market_port()
        # 1. perceive: closed candles only (the forming row is dropped) ---------------------
        try:
            frames = {tf: market.klines(sym, tf, limit).iloc[:-1]
                      for tf, limit in rt.cursor.limits(rt.last_1m_ms, now).items()}
            price = float(market.last_price(sym))
        except MarketUnavailable:
            self.board.connect("market", "down")
            raise
        self.board.connect("market", "ok")
        m1 = frames["1m"]
        if not len(m1):
            return
        m1_ms = index_to_ms(m1.index)        # any index resolution (pandas 3 may use µs)
        if rt.last_1m_ms is None:            # first cycle: the newest bar is stepped, not primed
            hist, cut = history_at_newest_bar(frames)
            self.prime(sym, hist, float(m1["close"].iloc[-2]) if len(m1) > 1 else price, cut)
            k = len(m1) - 1
        else:
            k = int(np.searchsorted(m1_ms, rt.last_1m_ms, side="right"))
        # 2. reconcile with the exchange (stop filled, position changed by hand, ...) -----
        self._sync(sym, now)
        self._check(stop)
        # 3-6. every newly closed 1m bar: the same routine a backtest step runs ----------
        ohlcv = m1[["open", "high", "low", "close", "volume"]].to_numpy()
        rt.cursor.take(frames)
        for i in range(k, len(m1)):
            t = int(m1_ms[i])
            o, h, l, c, v = (float(x) for x in ohlcv[i])
            if self.feed is not None:
                self.feed.on_bar(sym, o, h, l, c, t + 59_999)
            rt.analyzer.push_candle("1m", t, o, h, l, c, v)
            closed_15m = rt.cursor.push_closed_with(t, rt.analyzer.push_candle)
            rt.last_1m_ms = t
            self._on_bar(sym, rt, c, h, l, t + MINUTE_MS, closed_15m)
            self._check(stop)
        # between bars: a live paper stop triggers on the current price ------------------
        if rt.state is not None and self.feed is not None:
            self.feed.on_price(sym, price, now)
        # status for the dashboard: scores at the current price (display only: decisions use
        # the analysis of the last closed 15m candle, so the dashboard cannot change them)
        if rt.analysis is not None:
            self._publish(sym, rt.analyzer.score(price, now))

    # ================================================================== backtest driver
    def prime(self, symbol: str, frames_closed: Mapping[str, pd.DataFrame], price: float, time_ms: int,
              scan_source: Callable[[tuple], LevelScan | None] | None = None,
              m1_source: tuple[Bars, int] | None = None) -> None:
        """Seed a symbol's analyzer with history before stepping (backtest warm-up; run_cycle's
        first cycle too).

        `frames_closed` holds the candles closed by `time_ms`. The higher-timeframe candles
        forming at `time_ms` are started from the 1m bars of frames_closed["1m"] inside their
        bucket, so the first 15m/8h/1w candle `step()` completes is the whole candle: give 1m
        history back to the start of the current week for an exact first weekly candle.
        `scan_source`: the analyzer's source of level scans a backtest prepared ahead.
        `m1_source`: (every 1m bar of the archive, the index of the first bar `step` will get):
        the 1m ring then reads the archive's arrays instead of keeping copies of the bars.
        """
        rt = self._rt[symbol]
        frames = dict(frames_closed)
        m1 = frames.get("1m")
        cap = rt.analyzer.max_bars
        if m1 is not None and len(m1) > cap:
            # its 1m ring keeps the newest `cap` candles: a week of 1m history (for the
            # forming candles) would be pushed only to drop all but those again
            frames["1m"] = m1.iloc[-cap:]
        rt.analysis = rt.analyzer.update(frames, price, time_ms)
        if scan_source is not None:
            rt.analyzer.scan_source = scan_source
        rt.cursor.primed(frames_closed)
        m1 = frames_closed.get("1m")
        rt.former.start(m1, time_ms, rt.cursor.pushed)
        if m1 is not None and len(m1):
            rt.last_1m_ms = int(index_to_ms(m1.index[-1:])[0])
        if m1_source is not None:
            rt.analyzer.follow_1m(*m1_source)
        rt.append_1m = rt.analyzer.one_minute_appender()

    def step(self, now_ms: int, bars: Mapping[str, Sequence[float]]) -> bool:
        """Backtest: `bars[symbol] = (open_time_ms, open, high, low, close, volume)` of the 1m
        candle that just closed (the exchange has already seen it). Returns True if anything
        beyond bookkeeping happened. No sleeping, no market-port I/O: each symbol's
        CandleFormer forms its 15m/8h/1w candles from these bars, bit for bit as the market
        port does."""
        worked = False
        for sym, bar in bars.items():
            rt = self._rt[sym]
            t, o, h, l, c, v = int(bar[0]), float(bar[1]), float(bar[2]), float(bar[3]), float(bar[4]), float(bar[5])
            prev = rt.last_1m_ms
            append = rt.append_1m
            if append is not None and prev is not None and t > prev:
                append(t, o, h, l, c, v)            # = push_candle("1m", ...) minus its checks
            else:
                rt.analyzer.push_candle("1m", t, o, h, l, c, v)
                rt.append_1m = rt.analyzer.one_minute_appender()
            rt.last_1m_ms = t
            closed_15m = rt.former.add(t, o, h, l, c, v)
            if self._on_bar(sym, rt, c, h, l, now_ms, closed_15m):
                worked = True
        return worked

    # ================================================================== one closed 1m bar
    def _on_bar(self, sym: str, rt: _SymbolRuntime, close: float, high: float, low: float,
                now: int, closed_15m: bool) -> bool:
        """THE decision point, for both drivers (live/replay run_cycle and backtest step):
        called once per closed 1m bar, after the analyzer has seen every candle closed by it.

        Flat: decide only when a 15m candle closed (the strategy's oscillators live on 15m),
        at that bar's close. In a position: manage it on every bar against the analysis of the
        last 15m close, with the bar's high/low/close. A resting maker entry is polled on every
        bar (no other entry meanwhile). Returns True if it did anything."""
        state = rt.state
        if not closed_15m and state is None and not rt.pending and not rt.resting:
            return False
        with self.lock:
            try:
                if state is not None or rt.pending:
                    if (rt.pending or state is None or state.unprotected_cycles > 0
                            or self._amount_differs(sym, state.qty)):
                        self._sync(sym, now)
                if closed_15m:
                    rt.analysis = rt.analyzer.score(close, now)
                    self._publish(sym)
                    self._mark_equity(now)
                if rt.resting and self._poll_entry(sym, rt, high, low, now, closed_15m):
                    return True       # entered during this bar: managed from the next one
                if rt.analysis is not None and not rt.resting:
                    self._act(sym, close, high, low, now, fresh=closed_15m)
            except Exception as exc:
                self.note_error(sym, exc)
        return True

    def _mark_equity(self, now: int) -> None:
        """The account's equity at this 15m close, for the risk protections: once per close
        (the first symbol to close it), before any entry decision at it. A failed read is
        logged and costs the protections one observation, never the position management."""
        if not self.protections.needs_mark(now):
            return
        try:
            equity = self.exchange.account().margin_balance
            self.protections.mark_equity(now, equity)
            self.exposure.equity = equity        # what the status's open risk % is of
        except Exception as exc:
            self.note_error("", exc)

    def _amount_differs(self, sym: str, qty: float) -> bool:
        """Does the exchange's position size differ from the remembered `qty` (or is it gone)?
        Asked on every bar in a position (position_amount: no full snapshot). While weighted
        reads are rate limited it cannot be asked: the position is managed from memory (its
        exits are reduce-only and its stop moves go through a 429; one for a position that is
        gone meanwhile is refused or expires), and the next sync that can read reconciles."""
        try:
            amt = self.exchange.position_amount(sym)
        except RateLimitError:
            return False
        return amt is None or abs(abs(amt) - qty) > EPS

    def _sync(self, sym: str, now: int) -> None:
        """Reconcile `sym` with the exchange (the Reconciler logs and publishes). Not in hedge
        mode: its LONG/SHORT legs and their stops are the trader's, never adopted or cancelled."""
        if self._hands_off():
            return
        self.reconciler.sync(sym, self._rt[sym], now)

    # ================================================================== account mode
    def _hands_off(self) -> bool:
        return self._mode is not None and self._mode.hands_off

    def _check_mode(self, now: int) -> ModeCheck:
        """Verify (and where safe fix) the account's modes; log what changed, publish it."""
        before = self._mode
        mode = self._mode = check_account_mode(self.exchange, self.symbols, self.settings.leverage, now)
        self.board.account_mode(mode.to_dict())
        for zh, en in mode.fixed:
            self._log("INFO", "", "账户设置已修正：" + zh, "account setting fixed: " + en, now)
        if mode.key() != (before.key() if before is not None else ""):
            for p in mode.problems:
                self._log("WARNING", p.symbol, "⛔ 账户模式不符，暂停开仓：" + p.zh,
                          "⛔ account mode mismatch, entries refused: " + p.en, now)
            if not mode.problems:
                self._log("INFO", "", "账户模式已核实（单向持仓、单资产、逐仓、杠杆与设置一致），允许开仓",
                          "account modes verified (one-way, single-asset, isolated, leverage as set): "
                          "entries allowed", now)
        if before is not None and before.hands_off and not mode.hands_off:
            # left hedge mode: what start-up skipped (restore) is done now
            for sym in self.symbols:
                try:
                    for zh, en in self.reconciler.restore(sym, self._rt[sym], now):
                        self._log("INFO", "", "对账：" + zh, "reconcile: " + en, now)
                except Exception as exc:
                    self.note_error(sym, exc)
        return mode

    def _mode_allows(self, sym: str, now: int) -> bool:
        """May an entry go out on `sym`? Not while an account-mode mismatch stands (it is read
        again here at most every MODE_RECHECK_MS, so a fix on Binance's side is seen); the
        refusal is logged once per symbol and mismatch."""
        mode = self._mode
        if mode is None or (mode.problems and now - mode.time_ms >= MODE_RECHECK_MS):
            mode = self._check_mode(now)
        blocking = mode.blocking(sym)
        rt = self._rt[sym]
        if not blocking:
            rt.mode_note = ""
            return True
        key = mode.key(sym)
        if key != rt.mode_note:
            rt.mode_note = key
            self._log("WARNING", sym, "入场信号未执行：" + "；".join(p.zh for p in blocking),
                      "entry signal not taken: " + "; ".join(p.en for p in blocking), now)
        return False

    # ================================================================== the decision
    def _act(self, sym: str, price: float, hi: float, lo: float, now: int, fresh: bool) -> None:
        rt = self._rt[sym]
        a = rt.analysis
        if a is None:
            return
        if rt.state is not None:
            if not rt.state.manual:     # a manual trade's position is the trader's to manage
                self._manage(sym, rt.state, a, price, hi, lo, now)
            return
        if not fresh or rt.pending:     # an entry of unknown outcome keeps its intent (plan)
            return
        if self._cooling_down(sym, now):
            return
        count = self.store.get_trade_count()
        d = decide(min(100.0, max(0.0, a.long_score)), min(100.0, max(0.0, a.short_score)), count,
                   self.params.phases)
        paused = self.protections.blocking(now)
        if self.entry_policy is not None:
            d = self.entry_policy(d, sym, now, bool(paused))
        refusal = None
        if d.action != "wait" and not paused:      # the exposure caps (nothing read when alone)
            refusal, notes = self.exposure.check(
                sym, "LONG" if d.action == "enter_long" else "SHORT", self._rt,
                self.params.plan.max_risk_percent * self._risk_scale(d.phase.key),
                lambda: self.exchange.account().margin_balance, now)
            for zh, en in notes:
                self._log("INFO", sym, zh, en, now)
        if self.decision_listeners:
            record = {"time_ms": now, "symbol": sym, "long_score": d.long_score,
                      "short_score": d.short_score, "min_score": d.phase.min_score,
                      "score_gap": d.phase.score_gap, "phase": d.phase.key, "trade_count": count,
                      "action": d.action, "price": price, "paused": [p.rule for p in paused]}
            if refusal is not None:                 # (only then: a lone symbol's trace is unchanged)
                record["exposure"] = refusal.to_dict()
            for listener in self.decision_listeners:
                listener(record)
        if d.action == "wait":
            if d.log_en != rt.last_log:
                rt.last_log = d.log_en
                self._log("INFO", sym, d.log_zh + " " + d.reason_zh, d.log_en + " " + d.reason_en, now)
            return
        if paused:
            self._skip_paused(sym, rt, d, paused, now)
            return
        if refusal is not None:
            self._skip_exposure(sym, rt, d, refusal, now)
            return
        rt.last_log = ""
        self._log("INFO", sym, d.log_zh + " " + d.reason_zh, d.log_en + " " + d.reason_en, now)
        self._enter(sym, "LONG" if d.action == "enter_long" else "SHORT", a, d, price, now)

    def _skip_paused(self, sym: str, rt: _SymbolRuntime, d: Decision, paused: Sequence[Pause],
                     now: int) -> None:
        """An entry signal while the risk protections pause entries: no order, one log line per
        signal side and pause (a signal that holds for hours is not repeated every 15m)."""
        until = min(p.until_ms for p in paused)
        key = f"paused:{d.action}:{','.join(p.rule for p in paused)}:{until}"
        if key == rt.last_log:
            return
        rt.last_log = key
        side_zh, side_en = ("做多", "long") if d.action == "enter_long" else ("做空", "short")
        self._log("INFO", sym,
                  f"⏸ {side_zh}信号未入场：{'、'.join(RULE_NAMES_ZH[p.rule] for p in paused)}暂停开仓中"
                  f"（最早 {format_utc(until)} 解除）| {d.reason_zh}",
                  f"⏸ {side_en} signal skipped: the {' and the '.join(RULE_NAMES_EN[p.rule] for p in paused)} "
                  f"pauses entries (until {format_utc(until)} at the earliest) | {d.reason_en}", now)

    def _skip_exposure(self, sym: str, rt: _SymbolRuntime, d: Decision, refusal: Refusal, now: int) -> None:
        """An entry signal an exposure cap refuses: no order, one log line per symbol and
        reason (the same refusal at the next 15m closes is counted, not logged again)."""
        key = "exposure:" + refusal.key
        if key == rt.last_log:
            return
        rt.last_log = key
        side_zh, side_en = ("做多", "long") if d.action == "enter_long" else ("做空", "short")
        self._log("INFO", sym, f"⏭ 跳过 | {side_zh}信号未入场：{RULE_NAMES_ZH_EXPOSURE[refusal.rule]}，"
                  f"{refusal.reason_zh} | {d.reason_zh}",
                  f"⏭ skipped | {side_en} signal not taken: the {RULE_NAMES_EN_EXPOSURE[refusal.rule]}, "
                  f"{refusal.reason_en} | {d.reason_en}", now)

    def _risk_scale(self, phase_key: str) -> float:
        return self.params.phases.rule(phase_key).risk_scale

    def _cooling_down(self, sym: str, now: int) -> bool:
        """No new entry within REENTRY_COOLDOWN_MINUTES of this symbol's last close: re-entering
        the level that just stopped us out is the classic way to pay fees twice for one idea."""
        last = self.journal.last_close_ms(sym)
        wait_ms = self.params.entry.reentry_cooldown_minutes * 60_000
        return last is not None and now - last < wait_ms

    def _enter(self, sym: str, side: str, a: Analysis, d: Decision, price: float, now: int) -> None:
        if not self._mode_allows(sym, now):
            return
        level = a.best_support if side == "LONG" else a.best_resistance
        opposing = a.best_resistance if side == "LONG" else a.best_support
        if level is None or not (a.atr_15m == a.atr_15m):
            self._log("WARNING", sym, f"无可用{'支撑' if side == 'LONG' else '阻力'}位或ATR，放弃入场",
                      f"no {'support' if side == 'LONG' else 'resistance'} level or ATR: entry skipped", now)
            return
        stake, judged = 1.0, None
        if self.trade_filter is not None:          # the learned filter may skip it or stake less
            judged = self._filter_entry(sym, side, a, d, dict(level.features), now)
            if judged is None:
                return
            stake = float(judged["stake"])
        acct = self.exchange.account()
        filters = self.exchange.filters(sym)
        maker = self.settings.entry_order == "maker"
        plan = plan_trade(side, price, level.price, a.atr_15m, acct.margin_balance, acct.available_balance,
                          opposing_level=opposing.price if opposing is not None else None,
                          params=self.params.plan,
                          risk_percent=self.params.plan.max_risk_percent * self._risk_scale(d.phase.key) * stake,
                          leverage=self.settings.leverage, taker_fee=self.settings.taker_fee,
                          # a maker entry fills at its limit (the price) at the maker fee; the
                          # IOC limit may fill up to its offset beyond the price, as taker
                          entry_fee=self.settings.maker_fee if maker else None,
                          entry_offset=0.0 if maker else self.settings.ioc_offset_bps / 10_000.0,
                          filters=filters)
        if not plan.ok:
            self._log("WARNING", sym, "无法开仓：" + "；".join(plan.reasons_zh),
                      "cannot enter: " + "; ".join(plan.reasons), now)
            return
        phase = phase_for(d.phase.trade_count, self.params.phases)
        perception = build_perception(symbol=sym, time_ms=now, price=price, analysis=_analysis_view(a),
                                      level=level, phase=vars(phase), decision=vars(d) | {"phase": vars(phase)},
                                      weights=self.journal.weights,
                                      protections=self.protections.context(now))
        if judged is not None:
            perception[PERCEPTION_KEY] = judged
        plan_d = plan.to_dict()                                 # reasons and reasons_zh
        plan_d["reasons_en"] = list(plan.reasons)               # the dashboard shows either language
        # the perception is encoded once, for the intent and for the thought chain
        intent = {"side": side, "time_ms": now, "plan": plan_d, "perception": Encoded(perception),
                  "features": dict(level.features), "phase": phase.key,
                  "long_score": a.long_score, "short_score": a.short_score,
                  "reason_zh": d.reason_zh, "reason_en": d.reason_en}
        cid = expires = None
        if maker:       # the order's id goes into the intent BEFORE it is sent: a restart finds it
            cid = self.router.entry_client_id()
            expires = now + int(self.settings.entry_timeout_seconds * 1000)
            intent["entry"] = {"order": "maker", "client_order_id": cid, "expires_ms": expires,
                               "placed_ms": now}
        self.store.set_state(f"intent:{sym}", intent, now)
        out = self.router.open_position(sym, side, plan.qty, price, plan.stop, plan.target,
                                        entry_type=self.settings.entry_order, expires_ms=expires,
                                        client_order_id=cid)
        self.board.connect("exchange", "ok")
        if out.resting:
            self._rt[sym].resting = True        # _on_bar polls it from the next bar on
            self._rt[sym].entry_note = out.reason
            self._log("INFO", sym, f"挂单入场：{('做多' if side == 'LONG' else '做空')} {plan.qty:g}，"
                      f"{out.reason_zh}，最迟 {self.settings.entry_timeout_seconds:g} 秒后撤单",
                      f"maker entry: {side.lower()} {plan.qty:g}, {out.reason}; cancelled after "
                      f"{self.settings.entry_timeout_seconds:g} s unless filled", now)
            return
        self.reconciler.settle_entry(sym, self._rt[sym], out, intent, now)
        self._log_entry(sym, out, now)
        self._rest_targets_after_entry(sym, now)

    def _filter_entry(self, sym: str, side: str, a: Analysis, d: Decision, level_features: dict[str, float],
                      now: int) -> dict | None:
        """Ask the learned trade filter about this signal: None (and a log line) when it skips
        it, else what the thought chain keeps (features, prediction, decision, stake)."""
        gate = self.trade_filter
        assert gate is not None
        x = gate.features(side, a, level_features, now)
        fd = gate.judge(sym, side, x, now)
        p = fd.prediction
        side_zh, side_en = ("做多", "long") if side == "LONG" else ("做空", "short")
        score = d.long_score if side == "LONG" else d.short_score
        top = ", ".join(f"{k} {v:+.2f}" for k, v in p.top())
        if not fd.take:
            self._log("INFO", sym,
                      f"⏭ 跳过 | {side_zh}:{score:.0f} 预期 {p.mean:+.2f}R ±{p.spread:.2f} "
                      f"P(>0) {p.p_positive:.0%}（学习过滤器，已学 {gate.model.learned} 笔）| 主要因素 {top}",
                      f"⏭ skipped | {side_en}:{score:.0f} expected {p.mean:+.2f}R ±{p.spread:.2f} "
                      f"P(>0) {p.p_positive:.0%} (learned filter, {gate.model.learned} trades learned) "
                      f"| drivers {top}", now)
            return None
        if fd.reason != "warmup":
            why_zh = "探索" if fd.reason == "explore" else "预期为正"
            why_en = "exploring" if fd.reason == "explore" else "positive edge"
            self._log("INFO", sym,
                      f"🧠 过滤器放行（{why_zh}）| {side_zh}:{score:.0f} 预期 {p.mean:+.2f}R ±{p.spread:.2f} "
                      f"P(>0) {p.p_positive:.0%}，风险 {fd.stake:.0%} | 主要因素 {top}",
                      f"🧠 filter takes it ({why_en}) | {side_en}:{score:.0f} expected {p.mean:+.2f}R "
                      f"±{p.spread:.2f} P(>0) {p.p_positive:.0%}, stake {fd.stake:.0%} of the risk budget "
                      f"| drivers {top}", now)
        return gate.record(fd, x)

    def _log_entry(self, sym: str, out: EntryOutcome, now: int) -> None:
        """The run log's line for an entry that ended (an IOC at once, a maker entry when it
        filled, timed out or was cancelled)."""
        if out.state is None:
            # (a fill closed at once is a trade: the sync that recorded its exit logged it)
            if out.order is None or out.order.executed_qty <= 0:
                self._log("INFO", sym, f"未开仓：{out.reason_zh or '入场单未成交'}", f"no position: {out.reason}", now)
            return
        st = out.state
        side = st.side
        self._log("INFO", sym,
                  f"✅ 开仓 {('做多' if side == 'LONG' else '做空')} {st.qty:g} @ {st.entry_price:g} "
                  f"止损 {st.stop:g} 止盈 {st.target if st.target is not None else '-'}"
                  + (f"（{out.reason_zh}）" if out.reason_zh else ""),
                  f"✅ opened {side.lower()} {st.qty:g} @ {st.entry_price:g} stop {st.stop:g} "
                  f"target {st.target if st.target is not None else '-'} ({out.reason})", now)

    def _poll_entry(self, sym: str, rt: _SymbolRuntime, high: float, low: float, now: int,
                    fresh: bool) -> bool:
        """Follow the resting maker entry of `sym` (router.poll_entry: fills protected at once,
        the rest cancelled at the timeout or when the setup is gone). When it ends, its filled
        part is recorded as the planned trade, with the intent's thought chain, exactly as an
        IOC fill is. Returns True when it ended with a position."""
        r = self.router.resting_entry(sym)
        out = None if r is None else self.router.poll_entry(sym, now, self._setup_holds(rt, r, high, low, fresh))
        if out is None:
            rt.resting = False
            return False
        self.board.connect("exchange", "ok")
        if out.resting:
            if out.reason != rt.entry_note:           # a new fill, or a cancel that failed
                rt.entry_note = out.reason
                self._log("INFO", sym, f"挂单入场：{out.reason_zh}", f"maker entry: {out.reason}", now)
                if out.state is not None and out.order is not None:
                    rt.entry_order = out.order
                    self._publish(sym)                # its filled part is a position now
            return False
        rt.entry_note = ""
        rt.entry_order = None
        self.reconciler.settle_entry(sym, rt, out, self.store.get_state(f"intent:{sym}") or {}, now)
        self._log_entry(sym, out, now)
        self._rest_targets_after_entry(sym, now)
        return rt.state is not None

    def _setup_holds(self, rt: _SymbolRuntime, entry: RestingEntry, high: float, low: float,
                     fresh: bool) -> bool:
        """Is the setup a resting maker entry was placed for still there? Not once the bar
        traded at or beyond its stop, nor when a fresh analysis (a 15m close) no longer decides
        for its side."""
        if (low <= entry.stop) if entry.side == "LONG" else (high >= entry.stop):
            return False
        a = rt.analysis
        if not fresh or a is None:
            return True
        d = decide(min(100.0, max(0.0, a.long_score)), min(100.0, max(0.0, a.short_score)),
                   self.store.get_trade_count(), self.params.phases)
        return d.action == ("enter_long" if entry.side == "LONG" else "enter_short")

    # ================================================================== position upkeep
    def _manage(self, sym: str, st: PositionState, a: Analysis, price: float, hi: float, lo: float,
                now: int) -> None:
        st.observe(hi, lo)
        if self.settings.take_profit_order == "maker":
            self._rest_targets(sym, st, now)
        opposite = a.short_score if st.side == "LONG" else a.long_score
        if holding_quietly(st, hi, lo, opposite, self.params.exits):
            return                            # evaluate_exit would return [] (most bars)
        f = self.exchange.filters(sym)
        step, min_qty = self._market_sizes(sym, f)
        atr = a.atr_15m
        tp = self.router.targets
        actions = evaluate_exit(st, price, hi, lo, atr if atr == atr else 0.0, opposite, self.params.exits,
                                step=step, min_qty=min_qty, round_stop=f.round_price,
                                taker_fee=self.settings.taker_fee,
                                resting_target=bool(st.take_profits) and tp.resting(st, "target"),
                                resting_partial=bool(st.take_profits) and tp.resting(st, "partial"))
        if not actions:
            return
        new_state, outcomes = self.router.apply(st, actions)
        self.board.connect("exchange", "ok")
        for out in outcomes:
            if out.qty > 0 and out.order is not None:
                self.reconciler.record_exit(st, out, now)
        if new_state is None:
            self.reconciler.fees.settle(st, now)     # a fee the close could not read yet
            self.reconciler.fees.park(st, now)
            self.journal.finalize(st.trade_id, now, exit_kind(outcomes[-1].reason) if outcomes else "reconcile")
            self._rt[sym].state = None
        else:
            if st.trade_id is not None:
                self.store.update_trade(st.trade_id, stop_price=st.stop, position=state_copy(st))
            for a_ in actions:
                self._log("INFO", sym, f"持仓调整：{a_.reason_zh or '止损调整'}", f"position update: {a_.reason}", now)
        self._publish(sym)

    def _rest_targets_after_entry(self, sym: str, now: int) -> None:
        """The take-profits of a position just opened go on at once (not a bar later)."""
        st = self._rt[sym].state
        if st is not None and not st.manual and self.settings.take_profit_order == "maker":
            self._rest_targets(sym, st, now)

    def _rest_targets(self, sym: str, st: PositionState, now: int) -> None:
        """TAKE_PROFIT_ORDER=maker: the take-profits the position lacks go on as resting
        reduce-only maker limits (rl.execution.targets), saved with the trade at once so a
        restart finds them."""
        ex = self.params.exits
        notes = self.router.targets.place(st, ex.partial_at_r, ex.partial_fraction)
        if not notes:
            return
        if st.trade_id is not None:
            self.store.update_trade(st.trade_id, position=state_copy(st))
        for en, zh in notes:
            self._log("INFO", sym, f"挂单止盈：{zh}", f"resting take-profit: {en}", now, pylog=False)

    def _market_sizes(self, sym: str, f: SymbolFilters) -> tuple[float, float]:
        """(market step, market min qty) of filters `f` as floats for the exit manager,
        converted from the filters' Decimals only when the exchange hands out a new filters
        object (the filters change only when exchangeInfo is reloaded)."""
        c = self._sizes.get(sym)
        if c is None or c[0] is not f:
            c = self._sizes[sym] = (f, float(f.market_step_size or f.step_size),
                                    float(f.market_min_qty or f.min_qty))
        return c[1], c[2]

    # ================================================================== manual actions
    def manual_order(self, symbol: str, side: str, type: str, quantity: float,
                     price: float | None = None, client_order_id: str | None = None,
                     reduce_only: bool = False, stop_loss: float | None = None,
                     take_profit: float | None = None) -> dict:
        """A trader's order from the dashboard, serialized with the agent's own by the lock.
        `reduce_only` orders can only shrink a position (the exchange refuses one on a flat
        symbol with -2022), so they never open a manual trade.

        With `client_order_id` the call is idempotent: an order the exchange already knows by
        that id is answered as it stands, never placed again (Binance only refuses a duplicate
        id while the first order is open; a filled one's id would be taken anew).

        On a symbol the agent is flat in, its fill is a manual trade of its own (no stop, not
        managed, kept out of the learning); on the agent's position it is taken into the
        agent's trade, which is then marked "mixed" (see rl/agent/manual_trades.py).

        `stop_loss` / `take_profit`: the trader's own, placed as reduce-only Algo orders for the
        size that filled (rl/agent/manual_stops.py); only for an order that opens a manual
        trade (a flat symbol, not reduce-only). The answer's "protection" says what was placed."""
        if side not in ("BUY", "SELL"):
            raise ValueError(f"side={side!r} is invalid: it must be BUY or SELL")
        if type not in ("LIMIT", "MARKET"):
            raise ValueError(f"type={type!r} is invalid: it must be LIMIT or MARKET")
        q = float(quantity)
        if not (q > 0 and math.isfinite(q)):
            raise ValueError(f"quantity={quantity!r} is invalid: it must be a number > 0")
        if type == "LIMIT" and (price is None or not float(price) > 0):
            raise ValueError(f"price={price!r} is invalid: a LIMIT order needs a price > 0")
        manual_stops.check_manual_stops(side, price if type == "LIMIT" else None, stop_loss, take_profit,
                                        reduce_only=reduce_only)
        with self.lock:
            wants_stops = stop_loss is not None or take_profit is not None
            rt = self._rt[symbol]
            if wants_stops and (rt.state is not None or rt.pending or rt.resting):
                field_, v = ("stopLoss", stop_loss) if stop_loss is not None else ("takeProfit", take_profit)
                raise ValueError(f"{field_}={v!r} is invalid: {symbol} has an open agent position or entry that "
                                 "a manual order would join; stops are only for a manual trade of its own")
            if wants_stops and type == "MARKET":
                manual_stops.check_manual_stops(side, float(self._market_port().last_price(symbol))
                                                if self.market is not None else None, stop_loss, take_profit)
            if client_order_id is not None:
                placed = self.exchange.get_order(symbol, client_order_id)
                if placed is not None:              # (an upsert: recorded even if it was not yet)
                    self.store.orders.record(placed, "manual")
                    return placed.to_dict()
            now = self.clock.now_ms()
            f = self.exchange.filters(symbol)
            q = f.floor_qty(q, market=type == "MARKET")
            p = f.round_price(float(price), "nearest") if type == "LIMIT" and price is not None else None
            order = self.exchange.place_order(symbol, side, type, q, p, "GTC" if type == "LIMIT" else None,
                                              reduce_only=reduce_only,
                                              client_order_id=client_order_id or new_client_order_id("man"))
            self.store.orders.record(order, "manual")
            protection: list[tuple[str, str]] = []
            if rt.state is None and not rt.pending and not rt.resting and not reduce_only:
                if self.reconciler.manual.open(symbol, rt, order, now) is not None and rt.state is not None:
                    protection = manual_stops.place(self.exchange, self.store, rt.state, stop_loss,
                                                    take_profit, now)
                    if protection and rt.state.trade_id is not None:
                        self.store.update_trade(rt.state.trade_id, stop_price=rt.state.stop or None,
                                                position=state_copy(rt.state))
                if order.is_open and wants_stops:      # a resting LIMIT: placed when it fills
                    manual_stops.remember(self.store, order.client_order_id, stop_loss, take_profit, now)
                    protection.append((f"{symbol}：止损/止盈将在挂单成交后挂出",
                                       f"{symbol}: the stop-loss/take-profit go on when the order fills"))
            for zh, en in protection:
                self._log("INFO", symbol, zh, en, now)
            ro_zh, ro_en = ("（只减仓）", " (reduce-only)") if reduce_only else ("", "")
            self._log("INFO", symbol, f"手动下单 {_SIDE_ZH[side]} {_TYPE_ZH[type]} {q:g}" + (f" @ {p:g}" if p else "")
                      + f"{ro_zh}：{_STATUS_ZH.get(order.status, order.status)}",
                      f"manual order {side} {type} {q:g}" + (f" @ {p:g}" if p else "")
                      + f"{ro_en}: {order.status}", now)
            self._sync(symbol, now)
            return {**order.to_dict(), "protection": [{"zh": zh, "en": en} for zh, en in protection]}

    def close_position(self, symbol: str) -> dict:
        """Close the whole position now (reduce-only market), record and learn from it."""
        with self.lock:
            now = self.clock.now_ms()
            self._sync(symbol, now)
            st = self._rt[symbol].state
            if st is None:
                return {"symbol": symbol, "closed": False, "reason": "no open position"}
            out = self.router.close(st, None, "manual close from the dashboard", "交易面板手动平仓")
            if out.qty > 0:
                self.reconciler.record_exit(st, out, now)
            if out.closed:
                self.reconciler.fees.settle(st, now)
                self.reconciler.fees.park(st, now)
                self.journal.finalize(st.trade_id, now, "manual")
                self._rt[symbol].state = None
            elif st.trade_id is not None:
                self.store.update_trade(st.trade_id, position=state_copy(st))
            self._publish(symbol)
            return {"symbol": symbol, "closed": out.closed, "qty": out.qty, "price": out.exit_price,
                    "realized_pnl": out.realized_pnl, "fees": out.fees, "reason": out.reason,
                    "reason_zh": out.reason_zh, "reason_en": out.reason}

    def open_orders(self) -> list[dict]:
        """Every open order and stop in the agent's symbols (rl.agent.open_orders)."""
        return open_orders.open_orders(self.exchange, self.store.orders, self.symbols)

    def cancel_order(self, symbol: str, order_id: str, confirm_unprotected: bool = False) -> dict:
        """Cancel one open order or stop from the dashboard, serialized with the agent's cycle;
        a stop-loss of an open position only with `confirm_unprotected`."""
        with self.lock:
            return open_orders.cancel(self.exchange, self.store.orders, symbol, order_id,
                                      confirm_unprotected=confirm_unprotected,
                                      log=lambda lv, sym, zh, en: self._log(lv, sym, zh, en))

    def fills(self, since_ms: int, limit: int = 100, symbols: Sequence[str] | None = None) -> list[dict]:
        """The account's fills in the agent's symbols (or those of `symbols`) since `since_ms`,
        newest first."""
        return open_orders.fills(self.exchange, self.store.orders, symbols or self.symbols, since_ms, limit)

    # ================================================================== status / logs
    def _log(self, level: str, sym: str, zh: str, en: str, now: int | None = None, pylog: bool = True) -> None:
        if pylog:
            log.log(getattr(logging, level, logging.INFO), "%s %s", sym, en)
        try:
            self.store.decisions.log(self.clock.now_ms() if now is None else now, level, sym, zh, en)
        except Exception:                       # the log must never take the agent down
            log.exception("writing the decision log failed")

    def note_error(self, sym: str, exc: BaseException) -> None:
        """Record a failed step: Python log with traceback, decision log, status.last_error.

        What the API shows (status.last_error, the decision log) is what a trader can read:
        the plain sentence and, for one of the project's own errors, its message; never an
        unexpected exception's text or type, which only the Python log gets (with traceback)."""
        now = self.clock.now_ms()
        msg = f"{type(exc).__name__}: {exc}"
        plain_zh, plain_en = error_texts(exc)
        if isinstance(exc, MarketUnavailable):
            self.board.connect("market", "down")
        elif isinstance(exc, BinanceError):
            self.board.connect("exchange", "down")
        expected = isinstance(exc, (MarketUnavailable, BinanceError))   # outages: no traceback spam
        log.error("cycle for %s failed: %s", sym or "-", msg, exc_info=None if expected else exc)
        detail = _trader_detail(exc)
        shown_zh = f"{plain_zh}（{detail}）" if detail else plain_zh
        shown_en = f"{plain_en} ({detail})" if detail else plain_en
        self.board.error({"time_ms": now, "symbol": sym, "message": shown_en,
                          "message_zh": shown_zh, "message_en": shown_en})
        self._log("ERROR", sym, shown_zh, shown_en, now, pylog=False)

    def _publish(self, sym: str, analysis: Analysis | None = None) -> None:
        """Show readers the symbol's analysis and a copy of its position. `analysis`: a
        display-only re-score at the current price (run_cycle's status)."""
        rt = self._rt[sym]
        position = state_copy(rt.state) if rt.state is not None else None
        r = self.router.resting_entry(sym) if rt.resting and position is None else None
        if r is not None and r.state is not None and rt.entry_order is not None:
            # a maker entry partly filled and still resting: its filled part is a position on
            # the exchange, protected by its stop; readers see it with the entry beside it
            o = rt.entry_order
            position = {**state_copy(r.state), "entry_resting": {
                "client_order_id": r.client_order_id, "price": o.price, "filled": o.executed_qty,
                "quantity": o.orig_qty, "expires_ms": r.expires_ms}}
        self.board.publish(sym, analysis if analysis is not None else rt.analysis, position)

    def _use_weights(self, weights: dict[str, float]) -> None:
        """Learning moved the weights: every symbol's analysis scores levels with them next."""
        for rt in self._rt.values():
            rt.analyzer.set_weights(weights)

    def status(self) -> dict:
        """Phase, last scores, weights, last error, last cycle time, connectivity and the risk
        protections (their newest state: active pauses, history, figures, limits)."""
        view = self.board.view()
        return agent_status(view, self.store.get_trade_count(), self.store.current_weights(),
                            self.params.phases, self.params.protections.to_dict(),
                            trade_filter=self.trade_filter.view() if self.trade_filter is not None else None,
                            exposure=self.exposure.view(view["symbols"]))

    def levels(self, symbol: str) -> list[dict]:
        a = self.board.symbol(symbol).get("analysis")
        return [x.to_dict() for x in a.levels] if a is not None else []

    def managed_position(self, symbol: str) -> PositionState | None:
        """The position the agent manages in `symbol` as last published (a copy), None when
        flat or while the position is the filled part of a maker entry still resting."""
        pos = self.board.symbol(symbol).get("position")
        if pos is None or pos.get("entry_resting"):    # a resting entry's part: not managed yet
            return None
        return PositionState.from_dict(copy.deepcopy(pos))

    def positions(self) -> list[dict]:
        """The exchange's positions in the agent's symbols, with the agent's stop, target,
        partial exits and trade id where it manages them."""
        return merged_positions(self.symbols, self.exchange, self.board.view()["symbols"])
