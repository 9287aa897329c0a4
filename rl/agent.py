"""TradingAgent: the six steps of the design, once per cycle for each configured symbol.

perceive (klines 1m/15m/8h/1w, forming candle dropped) → analyze (IncrementalAnalyzer with the
current learned weights) → decide (phase thresholds) → execute (OrderRouter: IOC entry and a
protective stop; exit manager actions) → record (KnowledgeStore, one transaction per logical
write) → learn (after each close, once enough trades are closed).

Two drivers run the SAME code:
- `run_cycle(stop)` (live, paper, replay): fetches frames from the market port, returns the
  seconds to wait (60 s flat, 30 s in a position). The runner thread sleeps on the clock.
- `step(now_ms, bars)` (backtest): one closed 1m candle per symbol, no I/O to the market port
  and no sleeping; it re-analyzes only when a 15m candle closes and otherwise only watches an
  open position against the cached analysis, so a flat minute costs a few microseconds.

Safety: every symbol's step runs inside `self.lock`, which manual dashboard actions take too,
so the agent and the trader never send orders over each other. Anything one symbol's cycle
raises is logged and the loop goes on. Before an entry order goes out its intent (perception,
plan) is written to the store, so a SIGKILL between the fill and the trade record is repaired
on restart with the full thought chain instead of a bare adopted position.
"""
from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from client import BinanceError, new_client_order_id
from config import Settings
from rl.analysis import Analysis, IncrementalAnalyzer
from rl.clock import Clock
from rl.exit_manager import ExitRules, evaluate_exit
from rl.knowledge import KnowledgeStore
from rl.learning import update_weights
from rl.level_finder import DEFAULT_WEIGHTS
from rl.market import DAY_MS, INTERVAL_MS, WEEK_MS, index_to_ms
from rl.marketdata import MarketUnavailable
from rl.phases import decide, phase_for
from rl.position import PositionState
from rl.router import CloseOutcome, OrderRouter
from rl.sl_tp import plan_trade
from rl.thought import build_action, build_perception, build_reward, summarize

log = logging.getLogger("rl.agent")

KLINE_LIMITS = {"1m": 500, "15m": 500, "8h": 500, "1w": 200}
HIGHER_TFS = ("15m", "8h", "1w")
WEEK_ANCHOR_MS = 4 * DAY_MS     # Monday 00:00 UTC, as rl.market.bucket_start
EPS = 1e-12


class _Stopped(Exception):
    """Raised between steps when the stop flag is set: unwinds a cycle without a half action."""


@dataclass
class _SymbolRuntime:
    """What the agent thread keeps per symbol (never handed to other threads)."""

    analyzer: IncrementalAnalyzer
    analysis: Analysis | None = None
    state: PositionState | None = None
    last_1m_ms: int | None = None            # newest closed 1m candle seen (live)
    fetched: dict[str, int] = field(default_factory=dict)   # timeframe -> world time of last fetch
    forming: dict[str, list[float] | None] = field(default_factory=dict)   # backtest aggregation
    last_log: str = ""


def _bucket(t: int, tf: str) -> int:
    """Open time of the `tf` candle containing t (same formula as rl.market.bucket_start)."""
    if tf == "1w":
        return (t - WEEK_ANCHOR_MS) // WEEK_MS * WEEK_MS + WEEK_ANCHOR_MS
    step = INTERVAL_MS[tf]
    return t // step * step


def _state_copy(st: PositionState) -> dict:
    """A reader-safe copy of a PositionState, ~50x cheaper than asdict (its lists hold flat
    dicts/strings that are never mutated after being appended)."""
    d = dict(vars(st))
    d["partial_exits"] = list(st.partial_exits)
    d["exit_reasons"] = list(st.exit_reasons)
    return d


def _analysis_view(a: Analysis) -> dict:
    """What a thought chain keeps of an analysis: everything but the full level list (the
    chosen level is stored on its own), so recording an entry stays cheap in backtests."""
    return {"price": a.price, "time_ms": a.time_ms, "long_score": a.long_score, "short_score": a.short_score,
            "long_breakdown": a.long_breakdown, "short_breakdown": a.short_breakdown,
            "indicators": {tf: dict(v) for tf, v in a.indicators.items()}, "atr_15m": a.atr_15m,
            "notes": list(a.notes),
            "best_support": a.best_support.price if a.best_support is not None else None,
            "best_resistance": a.best_resistance.price if a.best_resistance is not None else None}


def _exit_kind(reason: str) -> str:
    r = reason.lower()
    for key, kind in (("manual", "manual"), ("opposite", "signal"), ("target", "target"),
                      ("partial", "partial"), ("trailing", "trailing"), ("break-even", "break_even"),
                      ("liquidat", "liquidation"), ("stop", "stop")):
        if key in r:
            return kind
    return "reconcile"


class TradingAgent:
    """The trading brain. Thread-safe for: `run_cycle`/`step` on one thread, `status`,
    `levels`, `positions` from any thread, manual actions serialized through `lock`."""

    def __init__(self, settings: Settings, market: Any, exchange: Any, store: KnowledgeStore,
                 clock: Clock, *, router: OrderRouter | None = None, rules: ExitRules | None = None,
                 feed_exchange: bool | None = None, symbols: Sequence[str] | None = None,
                 analyzer_factory: Callable[[str, dict], Any] | None = None) -> None:
        self.settings = settings
        self.market = market
        self.exchange = exchange
        self.store = store
        self.clock = clock
        self.symbols = tuple(symbols or settings.symbols)
        self.router = router or OrderRouter(exchange, store, ioc_offset_bps=settings.ioc_offset_bps,
                                            now_ms=clock.now_ms)
        self.rules = rules or ExitRules(fee_rate=settings.taker_fee)
        # Live paper / replay: nobody else shows the simulated exchange the market, so the agent
        # feeds it each newly closed 1m bar and the last price. Backtests feed it themselves.
        self.feed_exchange = hasattr(exchange, "on_bar") if feed_exchange is None else feed_exchange
        self.lock = threading.RLock()
        self._status_lock = threading.Lock()
        self._pub: dict[str, Any] = {"symbols": {}, "last_error": None, "last_cycle_ms": None,
                                     "connectivity": {"market": "unknown", "exchange": "unknown"}}
        if store._default_weights is None:
            store._default_weights = dict(DEFAULT_WEIGHTS)
        self._weights = store.current_weights()
        # analyzer_factory(symbol, weights) -> object with update/score/push_candle/set_weights
        # (IncrementalAnalyzer by default; tests script the market's verdict through it)
        make = analyzer_factory or IncrementalAnalyzer
        self._rt = {s: _SymbolRuntime(make(s, self._weights)) for s in self.symbols}

    # ================================================================== lifecycle
    def startup(self, stop: threading.Event | None = None) -> list[str]:
        """Reload state and reconcile every symbol with the exchange; returns what was done."""
        now = self.clock.now_ms()
        self.store.ensure_initial_weights(now)
        self._weights = self.store.current_weights()
        notes: list[str] = []
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
                    notes += self._restore(sym)
                except Exception as exc:
                    self.note_error(sym, exc)
        for n in notes:
            self._log("INFO", "", "重启对账：" + n, "restart reconcile: " + n)
        return notes

    def _restore(self, sym: str) -> list[str]:
        rt = self._rt[sym]
        now = self.clock.now_ms()
        notes: list[str] = []
        if self.feed_exchange:
            price = self.market.last_price(sym)
            self.exchange.on_price(sym, price, now)
        try:
            self.exchange.set_leverage(sym, self.settings.leverage)
        except BinanceError as exc:
            notes.append(f"{sym}: set leverage {self.settings.leverage}x failed: {exc}")
        trade = self.store.open_trade_for(sym)
        state = None
        if trade is not None:
            trade = self.store.trade(trade["id"])
            if trade["remaining_qty"] <= EPS:
                self._finalize(trade["id"], now, trade["exits"][-1]["kind"] if trade["exits"] else "reconcile")
                notes.append(f"{sym}: trade #{trade['id']} was fully exited before the restart: closed its record")
            else:
                state = self._state_from_trade(trade)
        if state is not None:
            self._adopt_live_stop(state, notes)
        intent = self.store.get_state(f"intent:{sym}")
        if intent is not None:
            if state is None:
                state = self._recover_intent(sym, intent, notes)
            self.store.delete_state(f"intent:{sym}")
        rt.state = state
        notes += self._sync(sym, now, restart=True)
        return notes

    @staticmethod
    def _state_from_trade(trade: Mapping[str, Any]) -> PositionState:
        """The saved PositionState, completed from the trade row (the row is the truth about
        size; a position saved by an older version may lack fields)."""
        base = {"symbol": trade["symbol"], "side": trade["side"], "entry_price": trade["entry_price"],
                "initial_qty": trade["quantity"], "initial_stop": trade["initial_stop"] or trade["stop_price"],
                "stop": trade["stop_price"], "target": trade["target_price"], "opened_ms": trade["opened_ms"],
                "fees": trade["entry_fee"], "entry_client_order_id": trade["entry_client_order_id"]}
        merged = {**base, **{k: v for k, v in (trade.get("position") or {}).items() if v is not None}}
        merged["qty"] = float(trade["remaining_qty"])
        merged["trade_id"] = int(trade["id"])
        return PositionState.from_dict(merged)

    def _adopt_live_stop(self, st: PositionState, notes: list[str]) -> None:
        """Killed between moving a stop on the exchange and saving it: the remembered stop is
        gone but our newer one is live. Take the live one (the most protective, since stops only
        move in our favour) instead of placing a duplicate; reconcile cancels any others."""
        live = [s for s in self.exchange.open_stops(st.symbol)
                if s.status == "NEW" and s.side == st.close_side and s.type == "STOP_MARKET"]
        if not live or st.stop_client_algo_id in {s.client_algo_id for s in live}:
            return
        best = max(live, key=lambda s: s.trigger_price * st.sign)
        st.stop_client_algo_id, st.stop_algo_id, st.stop = best.client_algo_id, best.algo_id, best.trigger_price
        if (st.stop - st.entry_price) * st.sign > 0:
            st.breakeven_done = True
        notes.append(f"{st.symbol}: the live stop {best.trigger_price:g} is newer than the saved one: adopted it")

    # ================================================================== live driver
    def run_cycle(self, stop: threading.Event | None = None) -> float:
        """One pass over every symbol; returns seconds until the next cycle."""
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
        with self._status_lock:
            self._pub["last_cycle_ms"] = self.clock.now_ms()
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
        # 1. perceive -------------------------------------------------------------
        try:
            frames = {tf: self.market.klines(sym, tf, limit).iloc[:-1]
                      for tf, limit in self._kline_limits(rt, now).items()}
            price = float(self.market.last_price(sym))
        except MarketUnavailable:
            self._connect("market", "down")
            raise
        self._connect("market", "ok")
        m1 = frames["1m"]
        m1_ms = index_to_ms(m1.index)        # any index resolution (pandas 3 may use µs)
        # bars closed since the last cycle (first cycle: only the newest one matters)
        k = len(m1) - 1 if rt.last_1m_ms is None else int(np.searchsorted(m1_ms, rt.last_1m_ms, side="right"))
        k = max(0, k)
        ohlc = m1[["open", "high", "low", "close"]].to_numpy()[k:]
        hi = max(price, float(ohlc[:, 1].max())) if len(ohlc) else price
        lo = min(price, float(ohlc[:, 2].min())) if len(ohlc) else price
        if self.feed_exchange:
            for t, (o_, h_, l_, c_) in zip(m1_ms[k:], ohlc):
                self.exchange.on_bar(sym, float(o_), float(h_), float(l_), float(c_), int(t) + 59_999)
            self.exchange.on_price(sym, price, now)
        if len(m1):
            rt.last_1m_ms = int(m1_ms[-1])
        self._check(stop)
        # 2. analyze --------------------------------------------------------------
        rt.analysis = rt.analyzer.update(frames, price, now)
        for tf, df in frames.items():
            # fresh = the newest closed candle is there (or the market has no older history):
            # until then the timeframe is fetched again next cycle
            span = WEEK_MS if tf == "1w" else INTERVAL_MS[tf]
            newest = int(index_to_ms(df.index[-1:])[0]) if len(df) else None
            if (newest is not None and newest >= _bucket(now, tf) - span) or len(df) < KLINE_LIMITS[tf] - 1:
                rt.fetched[tf] = now
        self._publish(sym)
        self._check(stop)
        # 3-6. decide / execute / record / learn ------------------------------------
        self._sync(sym, now)
        self._act(sym, price, hi, lo, now, fresh=True)

    @staticmethod
    def _kline_limits(rt: _SymbolRuntime, now: int) -> dict[str, int]:
        """What to fetch this cycle: everything on the first one; afterwards only the candles
        closed since the last fetch (+ margin), and a higher timeframe only when one of its
        candles closed. The analyzer keeps the history, so a replay or backtest cycle with
        nothing new costs one small 1m request instead of four of 500 rows."""
        out: dict[str, int] = {}
        for tf, full in KLINE_LIMITS.items():
            last = rt.fetched.get(tf)
            if last is None:
                out[tf] = full
                continue
            if tf != "1m" and _bucket(now, tf) == _bucket(last, tf):
                continue
            span = WEEK_MS if tf == "1w" else INTERVAL_MS[tf]
            out[tf] = int(min(full, max(0, now - last) // span + 3))
        return out

    # ================================================================== backtest driver
    def prime(self, symbol: str, frames_closed: Mapping[str, Any], price: float, time_ms: int) -> None:
        """Seed a symbol's analyzer with history before stepping (backtest warm-up)."""
        rt = self._rt[symbol]
        rt.analysis = rt.analyzer.update(dict(frames_closed), price, time_ms)

    def step(self, now_ms: int, bars: Mapping[str, Sequence[float]]) -> bool:
        """Backtest: `bars[symbol] = (open_time_ms, open, high, low, close, volume)` of the 1m
        candle that just closed (the exchange has already seen it). Returns True if anything
        beyond bookkeeping happened. No sleeping, no market-port I/O."""
        worked = False
        for sym, bar in bars.items():
            rt = self._rt[sym]
            t, o, h, l, c, v = int(bar[0]), float(bar[1]), float(bar[2]), float(bar[3]), float(bar[4]), float(bar[5])
            rt.analyzer.push_candle("1m", t, o, h, l, c, v)
            closed_15m = False
            nxt = t + 60_000
            forming = rt.forming
            for tf in HIGHER_TFS:
                f = forming.get(tf)
                if f is not None and t >= f[6]:          # a gap in the data skipped its close
                    rt.analyzer.push_candle(tf, int(f[0]), f[1], f[2], f[3], f[4], f[5])
                    f = None
                    closed_15m = closed_15m or tf == "15m"
                if f is None:
                    b = _bucket(t, tf)
                    f = forming[tf] = [b, o, h, l, c, v, b + (WEEK_MS if tf == "1w" else INTERVAL_MS[tf])]
                else:
                    if h > f[2]:
                        f[2] = h
                    if l < f[3]:
                        f[3] = l
                    f[4] = c
                    f[5] += v
                if nxt >= f[6]:                          # this bar was the bucket's last minute
                    rt.analyzer.push_candle(tf, int(f[0]), f[1], f[2], f[3], f[4], f[5])
                    forming[tf] = None
                    closed_15m = closed_15m or tf == "15m"
            state = rt.state
            if not closed_15m and state is None:
                continue
            with self.lock:
                try:
                    if state is not None:
                        pos = self.exchange.position(sym)
                        if (pos is None or abs(abs(pos.amount) - state.qty) > EPS
                                or state.unprotected_cycles > 0):
                            self._sync(sym, now_ms)
                    if closed_15m:
                        rt.analysis = rt.analyzer.score(c, now_ms)
                        self._publish(sym)
                    if rt.analysis is not None:
                        self._act(sym, c, h, l, now_ms, fresh=closed_15m)
                    worked = True
                except Exception as exc:
                    self.note_error(sym, exc)
        return worked

    # ================================================================== the decision
    def _act(self, sym: str, price: float, hi: float, lo: float, now: int, fresh: bool) -> None:
        rt = self._rt[sym]
        a = rt.analysis
        if a is None:
            return
        if rt.state is not None:
            self._manage(sym, rt.state, a, price, hi, lo, now)
            return
        if not fresh:
            return
        count = self.store.get_trade_count()
        d = decide(min(100.0, max(0.0, a.long_score)), min(100.0, max(0.0, a.short_score)), count)
        if d.action == "wait":
            if d.log_en != rt.last_log:
                rt.last_log = d.log_en
                self._log("INFO", sym, d.log_zh + " " + d.reason_zh, d.log_en + " " + d.reason_en, now)
            return
        rt.last_log = ""
        self._log("INFO", sym, d.log_zh + " " + d.reason_zh, d.log_en + " " + d.reason_en, now)
        self._enter(sym, "LONG" if d.action == "enter_long" else "SHORT", a, d, price, now)

    def _enter(self, sym: str, side: str, a: Analysis, d: Any, price: float, now: int) -> None:
        level = a.best_support if side == "LONG" else a.best_resistance
        opposing = a.best_resistance if side == "LONG" else a.best_support
        if level is None or not (a.atr_15m == a.atr_15m):
            self._log("WARNING", sym, f"无可用{'支撑' if side == 'LONG' else '阻力'}位或ATR，放弃入场",
                      f"no {'support' if side == 'LONG' else 'resistance'} level or ATR: entry skipped", now)
            return
        acct = self.exchange.account()
        filters = self.exchange.filters(sym)
        plan = plan_trade(side, price, level.price, a.atr_15m, acct.margin_balance, acct.available_balance,
                          opposing_level=opposing.price if opposing is not None else None,
                          risk_percent=self.settings.max_risk_percent, leverage=self.settings.leverage,
                          taker_fee=self.settings.taker_fee, filters=filters)
        if not plan.ok:
            self._log("WARNING", sym, "无法开仓：" + "；".join(plan.reasons),
                      "cannot enter: " + "; ".join(plan.reasons), now)
            return
        phase = phase_for(d.phase.trade_count)
        perception = build_perception(symbol=sym, time_ms=now, price=price, analysis=_analysis_view(a),
                                      level=level, phase=vars(phase), decision=vars(d) | {"phase": vars(phase)},
                                      weights=self._weights)
        intent = {"side": side, "time_ms": now, "plan": plan.to_dict(), "perception": perception,
                  "features": dict(level.features), "phase": phase.key,
                  "long_score": a.long_score, "short_score": a.short_score,
                  "reason_zh": d.reason_zh, "reason_en": d.reason_en}
        self.store.set_state(f"intent:{sym}", intent, now)
        out = self.router.open_position(sym, side, plan.qty, price, plan.stop, plan.target)
        self._connect("exchange", "ok")
        if out.state is None and out.order is not None and out.order.executed_qty > 0:
            # filled, then closed at once (price already beyond the stop): still a trade
            st = PositionState(symbol=sym, side=side, entry_price=out.order.avg_price,
                               qty=out.order.executed_qty, initial_qty=out.order.executed_qty,
                               stop=plan.stop, initial_stop=plan.stop, target=plan.target,
                               opened_ms=out.order.update_time_ms,
                               entry_client_order_id=out.order.client_order_id)
            self._record_open(sym, st, intent)
            self._rt[sym].state = st
            self._sync(sym, now)
            return
        if out.state is None:
            if not out.pending:
                self.store.delete_state(f"intent:{sym}")
            self._log("INFO", sym, f"未开仓：{out.reason}", f"no position: {out.reason}", now)
            return
        self._record_open(sym, out.state, intent)
        st = out.state
        self._log("INFO", sym,
                  f"✅ 开仓 {('做多' if side == 'LONG' else '做空')} {st.qty:g} @ {st.entry_price:g} "
                  f"止损 {st.stop:g} 止盈 {st.target if st.target is not None else '-'}",
                  f"✅ opened {side.lower()} {st.qty:g} @ {st.entry_price:g} stop {st.stop:g} "
                  f"target {st.target if st.target is not None else '-'} ({out.reason})", now)

    def _record_open(self, sym: str, st: PositionState, intent: Mapping[str, Any], note: str = "") -> int:
        """Trade row + features + perception/action + order links + intent removal: one transaction."""
        plan = intent.get("plan") or {}
        action = build_action(side=st.side, price=st.entry_price, quantity=st.initial_qty, stop=st.initial_stop,
                              target=st.target, leverage=self.settings.leverage,
                              order_ids=[x for x in (st.entry_client_order_id,) if x],
                              stop_order_id=st.stop_client_algo_id,
                              risk_amount=abs(st.entry_price - st.initial_stop) * st.initial_qty,
                              fee=st.fees, reason_zh=intent.get("reason_zh", ""),
                              reason_en=intent.get("reason_en", ""))
        action["plan"] = plan
        cid = st.entry_client_order_id or f"intent-{sym}-{intent.get('time_ms', st.opened_ms)}"
        st.entry_client_order_id = cid
        with self.store.batch():
            tid = self.store.open_trade(
                symbol=sym, side=st.side, entry_client_order_id=cid, opened_ms=st.opened_ms or int(intent.get("time_ms", 0)),
                entry_price=st.entry_price, quantity=st.initial_qty, stop_price=st.initial_stop,
                target_price=st.target, leverage=self.settings.leverage, features=intent.get("features") or {},
                perception=intent.get("perception") or {}, action=action, entry_fee=st.fees,
                phase=intent.get("phase"), long_score=intent.get("long_score"),
                short_score=intent.get("short_score"), note=note,
                order_ids=[x for x in (st.stop_client_algo_id,) if x])
            st.trade_id = tid
            self.store.update_trade(tid, position=_state_copy(st))
            self.store.delete_state(f"intent:{sym}")
        self._rt[sym].state = st
        self._publish(sym)
        return tid

    def _recover_intent(self, sym: str, intent: Mapping[str, Any], notes: list[str]) -> PositionState | None:
        """Killed between an entry fill and its record: rebuild the trade from the intent."""
        pos = self.exchange.position(sym)
        if pos is None or pos.amount == 0 or pos.side != intent.get("side"):
            notes.append(f"{sym}: an entry was being placed when the agent stopped; the exchange has no "
                         f"matching position, so it never filled")
            return None
        plan = intent.get("plan") or {}
        close_side = "SELL" if pos.amount > 0 else "BUY"
        stops = [s for s in self.exchange.open_stops(sym) if s.status == "NEW" and s.side == close_side]
        open_side = "BUY" if pos.amount > 0 else "SELL"
        fills = [f for f in self.exchange.fills_since(sym, int(intent.get("time_ms", 0)) - 60_000)
                 if f.side == open_side]
        entry_oid = str(fills[0].order_id) if fills else None
        known = self.store.find_order(sym, entry_oid) if entry_oid else None
        cid = known["client_order_id"] if known else (f"{sym}:{entry_oid}" if entry_oid else None)
        fee = sum(f.commission for f in fills if str(f.order_id) == entry_oid)
        st = PositionState(symbol=sym, side=pos.side, entry_price=pos.entry_price, qty=abs(pos.amount),
                           initial_qty=abs(pos.amount), stop=float(plan.get("stop")),
                           initial_stop=float(plan.get("stop")), target=plan.get("target"),
                           opened_ms=min([f.time_ms for f in fills] or [int(intent.get("time_ms", 0))]),
                           fees=fee, entry_client_order_id=cid,
                           stop_client_algo_id=stops[0].client_algo_id if stops else None,
                           stop_algo_id=stops[0].algo_id if stops else None)
        if stops:
            st.stop = stops[0].trigger_price
        tid = self._record_open(sym, st, intent, note="recovered after restart from the entry intent")
        notes.append(f"{sym}: entry filled just before the agent stopped: recorded trade #{tid} "
                     f"with its thought chain")
        return st

    # ================================================================== position upkeep
    def _manage(self, sym: str, st: PositionState, a: Analysis, price: float, hi: float, lo: float,
                now: int) -> None:
        st.observe(hi, lo)
        opposite = a.short_score if st.side == "LONG" else a.long_score
        f = self.exchange.filters(sym)
        actions = evaluate_exit(st, price, hi, lo, a.atr_15m if a.atr_15m == a.atr_15m else 0.0,
                                opposite, self.rules, step=float(f.market_step_size or f.step_size),
                                min_qty=float(f.market_min_qty or f.min_qty))
        if not actions:
            return
        new_state, outcomes = self.router.apply(st, actions)
        self._connect("exchange", "ok")
        for out in outcomes:
            if out.qty > 0 and out.order is not None:
                self._record_exit(st, out, now)
        if new_state is None:
            self._finalize(st.trade_id, now, _exit_kind(outcomes[-1].reason) if outcomes else "reconcile")
            self._rt[sym].state = None
        else:
            if st.trade_id is not None:
                self.store.update_trade(st.trade_id, stop_price=st.stop, position=_state_copy(st))
            for a_ in actions:
                self._log("INFO", sym, f"持仓调整：{a_.reason}", f"position update: {a_.reason}", now)
        self._publish(sym)

    def _record_exit(self, st: PositionState, out: CloseOutcome, now: int) -> None:
        """Record an exit the router just made. Keyed by the exchange order id, the same key the
        fill-based recovery uses, so a crash in between can never count an exit twice."""
        if st.trade_id is None or out.order is None or out.qty <= 0:
            return
        self.store.record_exit(st.trade_id, client_order_id=f"{st.symbol}:{out.order.order_id}", time_ms=now,
                               kind=_exit_kind(out.reason), price=out.exit_price or st.entry_price,
                               quantity=out.qty, pnl=out.realized_pnl, fee=out.fees,
                               position=_state_copy(st) if st.qty > EPS else None)
        if st.qty > EPS:
            self._log("INFO", st.symbol, f"部分平仓 {out.qty:g} @ {out.exit_price:g}：{out.reason}",
                      f"partial exit {out.qty:g} @ {out.exit_price:g}: {out.reason}", now)

    def _record_exit_fills(self, trade: Mapping[str, Any], kind_default: str) -> float:
        """Record every closing fill of this trade the store does not know yet (stop filled on
        the exchange, or an exit made just before a kill); returns the quantity added."""
        sym = trade["symbol"]
        close_side = "SELL" if trade["side"] == "LONG" else "BUY"
        sign = 1.0 if trade["side"] == "LONG" else -1.0
        groups: dict[str, list] = {}
        for f in self.exchange.fills_since(sym, int(trade["opened_ms"])):
            if f.side == close_side:
                groups.setdefault(str(f.order_id), []).append(f)
        added = 0.0
        remaining = float(trade["remaining_qty"])
        for oid, fills in groups.items():
            if remaining <= EPS:
                break
            qty = min(sum(f.qty for f in fills), remaining)
            price = sum(f.price * f.qty for f in fills) / sum(f.qty for f in fills)
            known = self.store.find_order(sym, oid)
            kind = kind_default
            if known is not None:
                kind = {"partial_exit": "partial", "manual": "manual"}.get(known["purpose"], kind_default)
            pnl = sum(f.realized_pnl for f in fills) or (price - trade["entry_price"]) * qty * sign
            if self.store.record_exit(trade["id"], client_order_id=f"{sym}:{oid}",
                                      time_ms=max(f.time_ms for f in fills), kind=kind, price=price,
                                      quantity=qty, pnl=pnl, fee=sum(f.commission for f in fills)):
                added += qty
                remaining -= qty
        return added

    def _sync(self, sym: str, now: int, restart: bool = False) -> list[str]:
        """Router reconcile: position gone (stop hit) → record its fills and close the trade;
        smaller than remembered → record the missing exit; unknown position → adopt it with a
        note; missing protective stop → re-place it. Returns the notes."""
        rt = self._rt[sym]
        before = rt.state
        before_qty = before.qty if before is not None else 0.0
        res = self.router.sync(sym, before)
        self._connect("exchange", "ok")
        notes = list(res.notes)
        if before is not None and before.trade_id is not None:
            ended = res.state is not before
            reduced = not ended and res.state.qty < before_qty - EPS
            if ended or reduced:
                trade = self.store.trade(before.trade_id)
                kind = ("trailing" if before.breakeven_done else "stop") if ended else "reconcile"
                if trade is not None and trade["status"] == "open":
                    self._record_exit_fills(trade, kind)
                    trade = self.store.trade(before.trade_id)
                    if ended and trade["remaining_qty"] > EPS and res.closed is not None:
                        # no fill to be found (exchange history unavailable): use the router's estimate
                        self.store.record_exit(before.trade_id, client_order_id=f"{sym}:outside-{before.trade_id}",
                                               time_ms=now, kind=kind, price=res.closed.exit_price or before.stop,
                                               quantity=trade["remaining_qty"], pnl=res.closed.realized_pnl,
                                               fee=res.closed.fees)
                    if ended:
                        exits = self.store.exit_totals(before.trade_id)["exits"]
                        self._finalize(before.trade_id, now, exits[-1]["kind"] if exits else kind)
                    elif res.state is not None:
                        self.store.update_trade(before.trade_id, position=_state_copy(res.state))
        rt.state = res.state
        if res.state is not None and res.state.trade_id is None:
            intent = self.store.get_state(f"intent:{sym}")
            if intent is not None and intent.get("side") == res.state.side:
                # an entry whose outcome was unknown turned out filled: it is our planned trade
                self._record_open(sym, res.state, intent)
                notes.append(f"{sym}: the entry of unknown outcome was filled: recorded trade #{res.state.trade_id}")
            else:
                self._record_open(sym, res.state, {"time_ms": now, "features": {}, "perception": {
                    "symbol": sym, "time_ms": now, "note": "adopted from the exchange"}},
                    note="adopted: the exchange held this position and the agent had no record of it")
                self.store.delete_state(f"intent:{sym}")
                notes.append(f"{sym}: adopted {res.state.side} {res.state.qty:g} @ {res.state.entry_price:g} "
                             f"with stop {res.state.stop:g}")
        elif res.state is not None and res.state.trade_id is not None:
            self.store.update_trade(res.state.trade_id, stop_price=res.state.stop, position=_state_copy(res.state))
        if notes and not restart:
            for n in notes:
                gone = "position gone" in n
                self._log("INFO" if gone else "WARNING", sym, ("持仓已由交易所平仓（止损触发）：" if gone else "对账：") + n,
                          ("closed on the exchange: " if gone else "reconcile: ") + n, now)
        self._publish(sym)
        return notes

    # ================================================================== close + learn
    def _finalize(self, trade_id: int | None, now: int, kind: str) -> None:
        """Close the record, learn from it and write both in ONE transaction."""
        if trade_id is None:
            return
        t = self.store.trade(trade_id)
        if t is None or t["status"] == "closed":
            return
        totals = self.store.exit_totals(trade_id)
        fees = float(t["entry_fee"]) + totals["fee"]
        net = totals["pnl"] - fees
        r = net / t["risk_amount"] if t["risk_amount"] > 0 else 0.0
        feats = t["features"]
        samples = self.store.closed_samples() + [(feats, r)]
        upd = update_weights(self._weights, samples, self.settings.min_trades_for_adjust)
        reward = build_reward(realized_pnl=totals["pnl"], fees=fees, r_multiple=r, exit_reason=kind,
                              weight_change=upd.to_dict())
        chain = t["thought_chain"] or {}
        zh, en = summarize(chain.get("perception") or {}, chain.get("action") or {}, reward)
        with self.store.batch():
            self.store.close_trade(trade_id, closed_ms=now, exit_reason=kind, reward=reward,
                                   summary_zh=zh, summary_en=en, weight_update=upd)
        if upd.applied:
            self._weights = dict(upd.new)
            for rt in self._rt.values():
                rt.analyzer.set_weights(self._weights)
            self._log("INFO", t["symbol"], "权重更新：" + upd.reason_zh, "weights updated: " + upd.reason_en, now)
        self._log("INFO", t["symbol"], "🏁 " + zh, "🏁 " + en, now)

    # ================================================================== manual actions
    def manual_order(self, symbol: str, side: str, type: str, quantity: float,
                     price: float | None = None) -> dict:
        """A trader's order from the dashboard, serialized with the agent's own by the lock."""
        if side not in ("BUY", "SELL"):
            raise ValueError(f"side={side!r} is invalid: it must be BUY or SELL")
        if type not in ("LIMIT", "MARKET"):
            raise ValueError(f"type={type!r} is invalid: it must be LIMIT or MARKET")
        q = float(quantity)
        if not (q > 0 and math.isfinite(q)):
            raise ValueError(f"quantity={quantity!r} is invalid: it must be a number > 0")
        if type == "LIMIT" and (price is None or not float(price) > 0):
            raise ValueError(f"price={price!r} is invalid: a LIMIT order needs a price > 0")
        with self.lock:
            now = self.clock.now_ms()
            f = self.exchange.filters(symbol)
            q = f.floor_qty(q, market=type == "MARKET")
            p = f.round_price(float(price), "nearest") if type == "LIMIT" else None
            order = self.exchange.place_order(symbol, side, type, q, p, "GTC" if type == "LIMIT" else None,
                                              client_order_id=new_client_order_id("man"))
            self.store.record_order(order, "manual")
            self._log("INFO", symbol, f"手动下单 {side} {type} {q:g}" + (f" @ {p:g}" if p else "") + f"：{order.status}",
                      f"manual order {side} {type} {q:g}" + (f" @ {p:g}" if p else "") + f": {order.status}", now)
            self._sync(symbol, now)
            return order.to_dict()

    def close_position(self, symbol: str) -> dict:
        """Close the whole position now (reduce-only market), record and learn from it."""
        with self.lock:
            now = self.clock.now_ms()
            self._sync(symbol, now)
            st = self._rt[symbol].state
            if st is None:
                return {"symbol": symbol, "closed": False, "reason": "no open position"}
            out = self.router.close(st, None, "manual close from the dashboard")
            if out.qty > 0:
                self._record_exit(st, out, now)
            if out.closed:
                self._finalize(st.trade_id, now, "manual")
                self._rt[symbol].state = None
            elif st.trade_id is not None:
                self.store.update_trade(st.trade_id, position=_state_copy(st))
            self._publish(symbol)
            return {"symbol": symbol, "closed": out.closed, "qty": out.qty, "price": out.exit_price,
                    "realized_pnl": out.realized_pnl, "fees": out.fees, "reason": out.reason}

    # ================================================================== status / logs
    def _log(self, level: str, sym: str, zh: str, en: str, now: int | None = None, pylog: bool = True) -> None:
        if pylog:
            log.log(getattr(logging, level, logging.INFO), "%s %s", sym, en)
        try:
            self.store.log(self.clock.now_ms() if now is None else now, level, sym, zh, en)
        except Exception:                       # the log must never take the agent down
            log.exception("writing the decision log failed")

    def note_error(self, sym: str, exc: BaseException) -> None:
        """Record a failed step: Python log with traceback, decision log, status.last_error."""
        now = self.clock.now_ms()
        msg = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, MarketUnavailable):
            self._connect("market", "down")
        elif isinstance(exc, BinanceError):
            self._connect("exchange", "down")
        expected = isinstance(exc, (MarketUnavailable, BinanceError))   # outages: no traceback spam
        log.error("cycle for %s failed: %s", sym or "-", msg, exc_info=None if expected else exc)
        with self._status_lock:
            self._pub["last_error"] = {"time_ms": now, "symbol": sym, "message": msg}
        self._log("ERROR", sym, f"本轮出错（下轮继续）：{msg}", f"cycle failed (will retry next cycle): {msg}", now,
                  pylog=False)

    def _connect(self, what: str, state: str) -> None:
        with self._status_lock:
            self._pub["connectivity"][what] = state

    def _publish(self, sym: str) -> None:
        """Hand readers immutable references (frozen Analysis, a fresh dict), never live objects."""
        rt = self._rt[sym]
        snap = {"analysis": rt.analysis, "position": _state_copy(rt.state) if rt.state is not None else None}
        with self._status_lock:
            self._pub["symbols"] = {**self._pub["symbols"], sym: snap}

    def status(self) -> dict:
        with self._status_lock:
            pub = {**self._pub, "connectivity": dict(self._pub["connectivity"]),
                   "symbols": dict(self._pub["symbols"])}
        count = self.store.get_trade_count()
        ph = phase_for(count)
        prev = {"exploration": 0, "learning": 30, "stable": 100}[ph.key]
        progress = 1.0 if ph.next_at is None else (count - prev) / (ph.next_at - prev)
        last_scores = {}
        for sym, snap in pub["symbols"].items():
            a = snap.get("analysis")
            if a is not None:
                last_scores[sym] = {"long": float(a.long_score), "short": float(a.short_score),
                                    "long_breakdown": a.long_breakdown, "short_breakdown": a.short_breakdown,
                                    "time_ms": a.time_ms}
        return {"phase": {"key": ph.key, "name_zh": ph.name_zh, "name_en": ph.name_en, "trade_count": count,
                          "next_at": ph.next_at, "progress": max(0.0, min(1.0, progress)),
                          "min_score": ph.min_score, "score_gap": ph.score_gap},
                "last_scores": last_scores, "weights": self.store.current_weights(),
                "last_error": pub["last_error"], "last_cycle_ms": pub["last_cycle_ms"],
                "connectivity": pub["connectivity"]}

    def levels(self, symbol: str) -> list[dict]:
        with self._status_lock:
            snap = self._pub["symbols"].get(symbol) or {}
        a = snap.get("analysis")
        return [x.to_dict() for x in a.levels] if a is not None else []

    def positions(self) -> list[dict]:
        with self._status_lock:
            snaps = dict(self._pub["symbols"])
        out = []
        for sym in self.symbols:
            pos = self.exchange.position(sym)
            mine = (snaps.get(sym) or {}).get("position")
            if pos is None and mine is None:
                continue
            d = pos.to_dict() if pos is not None else {"symbol": sym, "amount": 0.0}
            if mine is not None:
                d.update(stop=mine.get("stop"), target=mine.get("target"),
                         partial_exits=mine.get("partial_exits", []), trade_id=mine.get("trade_id"),
                         initial_stop=mine.get("initial_stop"))
            out.append(d)
        return out
