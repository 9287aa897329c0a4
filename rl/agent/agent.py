"""TradingAgent: the six steps of the design, once per cycle for each configured symbol.

perceive (klines 1m/15m/8h/1w, forming candle dropped) → analyze (IncrementalAnalyzer with the
current learned weights) → decide (phase thresholds) → execute (OrderRouter: IOC entry and a
protective stop; exit manager actions) → record (KnowledgeStore, one transaction per logical
write) → learn (after each close, once enough trades are closed).

Two drivers run the SAME per-bar routine `_on_bar` (see docs/strategy.md "Decision cadence"):
- `run_cycle(stop)` (live, paper, replay): fetches the 1m candles closed since the last cycle and
  hands each to `_on_bar` in order; returns the seconds to wait (60 s flat, 30 s in a position).
  The runner thread sleeps on the clock.
- `step(now_ms, bars)` (backtest): one closed 1m candle per symbol, no I/O to the market port
  and no sleeping, straight into `_on_bar`.
`_on_bar` decides only when a 15m candle closes (re-scoring the analysis then) and otherwise
only manages an open position against the cached analysis, so a flat minute costs a few
microseconds. Restart/reconcile lives in rl/agent/reconciler.py (RecoveryMixin).

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
from functools import partial
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from client import (AuthError, BinanceError, NetworkError, OrderRejected, RateLimitError,
                    UnknownOrderStatus, new_client_order_id)
from config import Settings
from rl.agent.bar_driver import HIGHER_TFS, BarDriverMixin
from rl.analysis.analyzer import Analysis, IncrementalAnalyzer
from rl.clock import Clock
from rl.strategy.exits import evaluate_exit, exit_kind, holding_quietly
from rl.knowledge.store import KnowledgeStore
from rl.knowledge.codec import Encoded
from rl.strategy.learning import EvidenceStats, update_weights
from rl.market.candles import INTERVAL_MS, MINUTE_MS, bucket_start, index_to_ms
from rl.market.ports import KLINES_MAX, MarketUnavailable
from rl.strategy.params import StrategyParams
from rl.strategy.phases import decide, phase_for
from rl.execution.position import PositionState
from rl.agent.reconciler import EPS, RecoveryMixin, _state_copy
from rl.execution.router import CloseOutcome, OrderRouter
from rl.strategy.trade_plan import plan_trade
from rl.knowledge.thought import build_action, build_perception, build_reward, features_zh, summarize

log = logging.getLogger("rl.agent.agent")

_SIDE_ZH = {"BUY": "买入", "SELL": "卖出"}
_TYPE_ZH = {"MARKET": "市价", "LIMIT": "限价"}
_STATUS_ZH = {"NEW": "已挂单", "PARTIALLY_FILLED": "部分成交", "FILLED": "已成交", "CANCELED": "已撤销",
              "EXPIRED": "已过期", "REJECTED": "被拒绝", "EXPIRED_IN_MATCH": "撮合时过期"}

KLINE_LIMITS = {"1m": 500, "15m": 500, "8h": 500, "1w": 200}


def error_texts(exc: BaseException) -> tuple[str, str]:
    """The plain first part of an error log line, (zh, en): what a trader needs to know (and
    that the agent carries on); the technical detail follows it in the line."""
    if isinstance(exc, MarketUnavailable):
        return "无法获取币安行情，下一轮重试", "Binance market data unavailable, retrying next cycle"
    if isinstance(exc, RateLimitError):
        return "币安限流，稍后重试", "Binance rate limit hit, retrying later"
    if isinstance(exc, AuthError):
        return ("币安拒绝了API密钥或签名，请检查密钥和权限",
                "Binance rejected the API key or signature: check the key and its permissions")
    if isinstance(exc, UnknownOrderStatus):
        return "订单结果未知，下一轮按订单号查询", "order outcome unknown, looking it up next cycle"
    if isinstance(exc, NetworkError):
        return "无法连接币安，下一轮重试", "Binance unreachable, retrying next cycle"
    if isinstance(exc, OrderRejected):
        return "币安拒绝了请求，下一轮重试", "Binance rejected the request, retrying next cycle"
    if isinstance(exc, BinanceError):
        return "币安返回错误，下一轮重试", "Binance returned an error, retrying next cycle"
    return "本轮出错，下一轮继续", "cycle failed, will retry next cycle"


class _Stopped(Exception):
    """Raised between steps when the stop flag is set: unwinds a cycle without a half action."""


@dataclass
class _SymbolRuntime:
    """What the agent thread keeps per symbol (never handed to other threads)."""

    analyzer: IncrementalAnalyzer
    analysis: Analysis | None = None
    state: PositionState | None = None
    last_1m_ms: int | None = None            # open time of the newest closed 1m bar handled
    pushed: dict[str, int] = field(default_factory=dict)    # timeframe -> newest candle given to the analyzer
    # step(): candles being formed, [open_ms, o, h, l, c, [1m volumes], end_ms]; 8h/1w hold
    # the closed 15m buckets of their bucket (the forming 15m one is folded in at its close)
    f15: list | None = None
    fhi: dict[str, list | None] = field(default_factory=lambda: {"8h": None, "1w": None})
    ring_1m: Any = None                      # the analyzer's 1m ring when it can be appended to directly
    pending: bool = False                    # an entry of unknown outcome awaits the next sync
    last_exit_ms: int | None = None          # newest close of this symbol's trades (cooldown)
    exit_loaded: bool = False                # last_exit_ms read from the store once (restart)
    last_log: str = ""


def _analysis_view(a: Analysis) -> dict:
    """What a thought chain keeps of an analysis: everything but the full level list (the
    chosen level is stored on its own), so recording an entry stays cheap in backtests."""
    return {"price": a.price, "time_ms": a.time_ms, "long_score": a.long_score, "short_score": a.short_score,
            "long_breakdown": a.long_breakdown, "short_breakdown": a.short_breakdown,
            "indicators": {tf: dict(v) for tf, v in a.indicators.items()}, "atr_15m": a.atr_15m,
            "notes": list(a.notes),
            "best_support": a.best_support.price if a.best_support is not None else None,
            "best_resistance": a.best_resistance.price if a.best_resistance is not None else None}



class TradingAgent(BarDriverMixin, RecoveryMixin):
    """The trading brain. Thread-safe for: `run_cycle`/`step` on one thread, `status`,
    `levels`, `positions` from any thread, manual actions serialized through `lock`."""

    def __init__(self, settings: Settings, market: Any, exchange: Any, store: KnowledgeStore,
                 clock: Clock, *, router: OrderRouter | None = None, params: StrategyParams | None = None,
                 feed_exchange: bool | None = None, symbols: Sequence[str] | None = None,
                 analyzer_factory: Callable[[str, dict], Any] | None = None) -> None:
        self.settings = settings
        self.market = market
        self.exchange = exchange
        self.store = store
        self.clock = clock
        self.symbols = tuple(symbols or settings.symbols)
        self.router = router or OrderRouter(exchange, store.orders, ioc_offset_bps=settings.ioc_offset_bps,
                                            now_ms=clock.now_ms)
        self.params = params or StrategyParams.from_settings(settings)   # every strategy number
        # Live paper / replay: nobody else shows the simulated exchange the market, so the agent
        # feeds it each newly closed 1m bar and the last price. Backtests feed it themselves.
        self.feed_exchange = hasattr(exchange, "on_bar") if feed_exchange is None else feed_exchange
        self.lock = threading.RLock()
        # Called with one dict per entry decision (time_ms, symbol, long_score, short_score,
        # min_score, score_gap, phase, trade_count, action, price): the backtest's --trace.
        self.decision_listeners: list[Callable[[dict], None]] = []
        self._status_lock = threading.Lock()
        self._pub: dict[str, Any] = {"symbols": {}, "last_error": None, "last_cycle_ms": None,
                                     "connectivity": {"market": "unknown", "exchange": "unknown"}}
        if store.default_weights is None:
            store.default_weights = self.params.levels.weights.as_dict()
        self._weights = store.current_weights()
        # analyzer_factory(symbol, weights) -> object with update/score/push_candle/set_weights
        # (IncrementalAnalyzer by default; tests script the market's verdict through it)
        make = analyzer_factory or partial(IncrementalAnalyzer, score_params=self.params.score,
                                           level_params=self.params.levels)
        self._rt = {s: _SymbolRuntime(make(s, self._weights)) for s in self.symbols}
        self._sizes: dict[str, tuple[Any, float, float]] = {}    # see _market_sizes
        # the learner's running statistics over every closed trade (see _finalize): O(1) a close
        self._evidence: EvidenceStats | None = None

    # ================================================================== lifecycle
    def startup(self, stop: threading.Event | None = None) -> list[str]:
        """Reload state and reconcile every symbol with the exchange; returns what was done."""
        now = self.clock.now_ms()
        self.store.ensure_initial_weights(now)
        self._weights = self.store.current_weights()
        notes: list[tuple[str, str]] = []          # (zh, en)
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
        # 1. perceive: closed candles only (the forming row is dropped) ---------------------
        try:
            frames = {tf: self.market.klines(sym, tf, limit).iloc[:-1]
                      for tf, limit in self._kline_limits(rt, now).items()}
            price = float(self.market.last_price(sym))
        except MarketUnavailable:
            self._connect("market", "down")
            raise
        self._connect("market", "ok")
        m1 = frames["1m"]
        if not len(m1):
            return
        m1_ms = index_to_ms(m1.index)        # any index resolution (pandas 3 may use µs)
        tf_ms = {tf: index_to_ms(df.index) for tf, df in frames.items() if tf != "1m"}
        if rt.last_1m_ms is None:
            # first cycle: prime with what was closed when the newest bar opened; that bar then
            # goes through _on_bar like every later one (a backtest primes and steps the same way)
            cut = int(m1_ms[-1])
            hist = {"1m": m1.iloc[:-1]}
            for tf, df in frames.items():
                if tf != "1m":
                    hist[tf] = df.iloc[:int(np.searchsorted(tf_ms[tf] + INTERVAL_MS[tf], cut, side="right"))]
            self.prime(sym, hist, float(m1["close"].iloc[-2]) if len(m1) > 1 else price, cut)
            k = len(m1) - 1
        else:
            k = int(np.searchsorted(m1_ms, rt.last_1m_ms, side="right"))
        # 2. reconcile with the exchange (stop filled, position changed by hand, ...) -----
        self._sync(sym, now)
        self._check(stop)
        # 3-6. every newly closed 1m bar: the same routine a backtest step runs ----------
        ohlcv = m1[["open", "high", "low", "close", "volume"]].to_numpy()
        tf_rows = {tf: frames[tf][["open", "high", "low", "close", "volume"]].to_numpy() for tf in tf_ms}
        for i in range(k, len(m1)):
            t = int(m1_ms[i])
            o, h, l, c, v = (float(x) for x in ohlcv[i])
            if self.feed_exchange:
                self.exchange.on_bar(sym, o, h, l, c, t + 59_999)
            rt.analyzer.push_candle("1m", t, o, h, l, c, v)
            closed_15m = False
            for tf, opens in tf_ms.items():     # higher-tf candles that closed with this bar
                last = rt.pushed.get(tf)
                lo = 0 if last is None else int(np.searchsorted(opens, last, side="right"))
                hi = int(np.searchsorted(opens + INTERVAL_MS[tf], t + MINUTE_MS, side="right"))
                for j in range(lo, hi):
                    rt.analyzer.push_candle(tf, int(opens[j]), *(float(x) for x in tf_rows[tf][j]))
                    rt.pushed[tf] = int(opens[j])
                    closed_15m = closed_15m or tf == "15m"
            rt.last_1m_ms = t
            self._on_bar(sym, rt, c, h, l, t + MINUTE_MS, closed_15m)
            self._check(stop)
        # between bars: a live paper stop triggers on the current price ------------------
        if rt.state is not None and self.feed_exchange:
            self.exchange.on_price(sym, price, now)
        # status for the dashboard: scores at the current price (display only: decisions use
        # the analysis of the last closed 15m candle, so the dashboard cannot change them)
        if rt.analysis is not None:
            self._publish(sym, rt.analyzer.score(price, now))

    @staticmethod
    def _kline_limits(rt: _SymbolRuntime, now: int) -> dict[str, int]:
        """What to fetch this cycle: everything on the first one; afterwards only the 1m
        candles closed since the last cycle (+ margin), and a higher timeframe only when one of
        its candles closed that was not pushed yet (a late candle is fetched again next cycle).
        The analyzer keeps the history, so a cycle with nothing new costs one small request."""
        if rt.last_1m_ms is None:
            return dict(KLINE_LIMITS)
        out = {"1m": int(min(KLINES_MAX, max(0, now - rt.last_1m_ms) // MINUTE_MS + 3))}
        for tf in HIGHER_TFS:
            last = rt.pushed.get(tf)
            newest_closed = bucket_start(now, tf) - INTERVAL_MS[tf]
            if last is None or newest_closed > last:
                gap = KLINE_LIMITS[tf] if last is None else (newest_closed - last) // INTERVAL_MS[tf] + 3
                out[tf] = int(min(KLINES_MAX, gap))
        return out

    # ================================================================== one closed 1m bar
    def _on_bar(self, sym: str, rt: _SymbolRuntime, close: float, high: float, low: float,
                now: int, closed_15m: bool) -> bool:
        """THE decision point, for both drivers (live/replay run_cycle and backtest step):
        called once per closed 1m bar, after the analyzer has seen every candle closed by it.

        Flat: decide only when a 15m candle closed (the strategy's oscillators live on 15m),
        at that bar's close. In a position: manage it on every bar against the analysis of the
        last 15m close, with the bar's high/low/close. Returns True if it did anything."""
        state = rt.state
        if not closed_15m and state is None and not rt.pending:
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
                if rt.analysis is not None:
                    self._act(sym, close, high, low, now, fresh=closed_15m)
            except Exception as exc:
                self.note_error(sym, exc)
        return True

    def _amount_differs(self, sym: str, qty: float) -> bool:
        """Does the exchange's position size differ from the remembered `qty` (or is it gone)?
        Asked on every bar in a position, so a simulated exchange's `position_amount` is used
        when it has one instead of building a full PositionSnapshot."""
        amount_of = getattr(self.exchange, "position_amount", None)
        if amount_of is not None:
            amt = amount_of(sym)
        else:
            pos = self.exchange.position(sym)
            amt = None if pos is None else pos.amount
        return amt is None or abs(abs(amt) - qty) > EPS

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
        if self._cooling_down(sym, rt, now):
            return
        count = self.store.get_trade_count()
        d = decide(min(100.0, max(0.0, a.long_score)), min(100.0, max(0.0, a.short_score)), count,
                   self.params.phases)
        if self.decision_listeners:
            record = {"time_ms": now, "symbol": sym, "long_score": d.long_score,
                      "short_score": d.short_score, "min_score": d.phase.min_score,
                      "score_gap": d.phase.score_gap, "phase": d.phase.key, "trade_count": count,
                      "action": d.action, "price": price}
            for listener in self.decision_listeners:
                listener(record)
        if d.action == "wait":
            if d.log_en != rt.last_log:
                rt.last_log = d.log_en
                self._log("INFO", sym, d.log_zh + " " + d.reason_zh, d.log_en + " " + d.reason_en, now)
            return
        rt.last_log = ""
        self._log("INFO", sym, d.log_zh + " " + d.reason_zh, d.log_en + " " + d.reason_en, now)
        self._enter(sym, "LONG" if d.action == "enter_long" else "SHORT", a, d, price, now)

    def _risk_scale(self, phase_key: str) -> float:
        return self.params.phases.rule(phase_key).risk_scale

    def _cooling_down(self, sym: str, rt: _SymbolRuntime, now: int) -> bool:
        """No new entry within REENTRY_COOLDOWN_MINUTES of this symbol's last close: re-entering
        the level that just stopped us out is the classic way to pay fees twice for one idea."""
        if not rt.exit_loaded:
            rt.last_exit_ms = self.store.last_closed_ms(sym)
            rt.exit_loaded = True
        wait_ms = self.params.entry.reentry_cooldown_minutes * 60_000
        return rt.last_exit_ms is not None and now - rt.last_exit_ms < wait_ms

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
                          params=self.params.plan,
                          risk_percent=self.params.plan.max_risk_percent * self._risk_scale(d.phase.key),
                          leverage=self.settings.leverage,
                          taker_fee=self.settings.taker_fee, filters=filters)
        if not plan.ok:
            self._log("WARNING", sym, "无法开仓：" + "；".join(plan.reasons_zh),
                      "cannot enter: " + "; ".join(plan.reasons), now)
            return
        phase = phase_for(d.phase.trade_count, self.params.phases)
        perception = build_perception(symbol=sym, time_ms=now, price=price, analysis=_analysis_view(a),
                                      level=level, phase=vars(phase), decision=vars(d) | {"phase": vars(phase)},
                                      weights=self._weights)
        plan_d = plan.to_dict()                                 # reasons and reasons_zh
        plan_d["reasons_en"] = list(plan.reasons)               # the dashboard shows either language
        # the perception is encoded once, for the intent and for the thought chain
        intent = {"side": side, "time_ms": now, "plan": plan_d, "perception": Encoded(perception),
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
            self._rt[sym].pending = bool(out.pending)     # _on_bar syncs until it is resolved
            if not out.pending:
                self.store.delete_state(f"intent:{sym}")
            self._log("INFO", sym, f"未开仓：{out.reason_zh or '入场单未成交'}", f"no position: {out.reason}", now)
            return
        self._record_open(sym, out.state, intent)
        st = out.state
        self._log("INFO", sym,
                  f"✅ 开仓 {('做多' if side == 'LONG' else '做空')} {st.qty:g} @ {st.entry_price:g} "
                  f"止损 {st.stop:g} 止盈 {st.target if st.target is not None else '-'}"
                  + (f"（{out.reason_zh}）" if out.reason_zh else ""),
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

    # ================================================================== position upkeep
    def _manage(self, sym: str, st: PositionState, a: Analysis, price: float, hi: float, lo: float,
                now: int) -> None:
        st.observe(hi, lo)
        opposite = a.short_score if st.side == "LONG" else a.long_score
        if holding_quietly(st, hi, lo, opposite, self.params.exits):
            return                            # evaluate_exit would return [] (most bars)
        f = self.exchange.filters(sym)
        step, min_qty = self._market_sizes(sym, f)
        atr = a.atr_15m
        actions = evaluate_exit(st, price, hi, lo, atr if atr == atr else 0.0, opposite, self.params.exits,
                                step=step, min_qty=min_qty, round_stop=f.round_price,
                                taker_fee=self.settings.taker_fee)
        if not actions:
            return
        new_state, outcomes = self.router.apply(st, actions)
        self._connect("exchange", "ok")
        for out in outcomes:
            if out.qty > 0 and out.order is not None:
                self._record_exit(st, out, now)
        if new_state is None:
            self._finalize(st.trade_id, now, exit_kind(outcomes[-1].reason) if outcomes else "reconcile")
            self._rt[sym].state = None
        else:
            if st.trade_id is not None:
                self.store.update_trade(st.trade_id, stop_price=st.stop, position=_state_copy(st))
            for a_ in actions:
                self._log("INFO", sym, f"持仓调整：{a_.reason_zh or '止损调整'}", f"position update: {a_.reason}", now)
        self._publish(sym)

    def _market_sizes(self, sym: str, f: Any) -> tuple[float, float]:
        """(market step, market min qty) of filters `f` as floats for the exit manager,
        converted from the filters' Decimals only when the exchange hands out a new filters
        object (the filters change only when exchangeInfo is reloaded)."""
        c = self._sizes.get(sym)
        if c is None or c[0] is not f:
            c = self._sizes[sym] = (f, float(f.market_step_size or f.step_size),
                                    float(f.market_min_qty or f.min_qty))
        return c[1], c[2]

    def _record_exit(self, st: PositionState, out: CloseOutcome, now: int) -> None:
        """Record an exit the router just made. Keyed by the exchange order id, the same key the
        fill-based recovery uses, so a crash in between can never count an exit twice."""
        if st.trade_id is None or out.order is None or out.qty <= 0:
            return
        self.store.record_exit(st.trade_id, client_order_id=f"{st.symbol}:{out.order.order_id}", time_ms=now,
                               kind=exit_kind(out.reason), price=out.exit_price or st.entry_price,
                               quantity=out.qty, pnl=out.realized_pnl, fee=out.fees,
                               position=_state_copy(st) if st.qty > EPS else None)
        if st.qty > EPS:
            self._log("INFO", st.symbol, f"部分平仓 {out.qty:g} @ {out.exit_price:g}：{out.reason_zh or '分批止盈'}",
                      f"partial exit {out.qty:g} @ {out.exit_price:g}: {out.reason}", now)

    # ================================================================== close + learn
    def _finalize(self, trade_id: int | None, now: int, kind: str) -> None:
        """Close the record, learn from it and write both in ONE transaction."""
        if trade_id is None:
            return
        t = self.store.trade_row(trade_id, with_position=False)   # the row only: nothing else is read here
        if t is None or t["status"] == "closed":
            return
        totals = self.store.exit_totals(trade_id)
        fees = float(t["entry_fee"]) + totals["fee"]
        net = totals["pnl"] - fees
        r = net / t["risk_amount"] if t["risk_amount"] > 0 else 0.0
        # what this process wrote at the entry, else (a trade from before a restart) the store
        entry = getattr(self.store, "entry_context", lambda _tid: None)(trade_id)
        if entry is not None:
            perception, action, feats = entry
        else:
            feats = self.store.features(trade_id)
        stats = self._evidence
        if stats is None or stats.count != self.store.get_trade_count() or stats.features != list(self._weights):
            # first close of this process (or the store changed under us): from the store
            stats = self._evidence = EvidenceStats.of(self.store.closed_samples(), list(self._weights))
        stats.add(feats, r)
        self._evidence = None                       # until the close below is stored
        upd = update_weights(self._weights, stats, self.params.learning)
        reward = build_reward(realized_pnl=totals["pnl"], fees=fees, r_multiple=r, exit_reason=kind,
                              weight_change=upd.to_dict())
        if entry is None:
            chain = self.store.thought_chain(trade_id) or {}
            perception, action = chain.get("perception") or {}, chain.get("action") or {}
        zh, en = summarize(perception, action, reward)
        with self.store.batch():
            self.store.close_trade(trade_id, closed_ms=now, exit_reason=kind, reward=reward,
                                   summary_zh=zh, summary_en=en, weight_update=upd)
        self._evidence = stats                      # = every closed trade's sample, this one too
        rt_closed = self._rt.get(t["symbol"])
        if rt_closed is not None:
            rt_closed.last_exit_ms, rt_closed.exit_loaded = now, True
        if upd.applied:
            self._weights = dict(upd.new)
            for rt in self._rt.values():
                rt.analyzer.set_weights(self._weights)
            self._log("INFO", t["symbol"], "权重更新：" + features_zh(upd.reason_zh),
                      "weights updated: " + upd.reason_en, now)
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
            self.store.orders.record(order, "manual")
            self._log("INFO", symbol, f"手动下单 {_SIDE_ZH[side]} {_TYPE_ZH[type]} {q:g}" + (f" @ {p:g}" if p else "")
                      + f"：{_STATUS_ZH.get(order.status, order.status)}",
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
            out = self.router.close(st, None, "manual close from the dashboard", "交易面板手动平仓")
            if out.qty > 0:
                self._record_exit(st, out, now)
            if out.closed:
                self._finalize(st.trade_id, now, "manual")
                self._rt[symbol].state = None
            elif st.trade_id is not None:
                self.store.update_trade(st.trade_id, position=_state_copy(st))
            self._publish(symbol)
            return {"symbol": symbol, "closed": out.closed, "qty": out.qty, "price": out.exit_price,
                    "realized_pnl": out.realized_pnl, "fees": out.fees, "reason": out.reason,
                    "reason_zh": out.reason_zh, "reason_en": out.reason}

    # ================================================================== status / logs
    def _log(self, level: str, sym: str, zh: str, en: str, now: int | None = None, pylog: bool = True) -> None:
        if pylog:
            log.log(getattr(logging, level, logging.INFO), "%s %s", sym, en)
        try:
            self.store.decisions.log(self.clock.now_ms() if now is None else now, level, sym, zh, en)
        except Exception:                       # the log must never take the agent down
            log.exception("writing the decision log failed")

    def note_error(self, sym: str, exc: BaseException) -> None:
        """Record a failed step: Python log with traceback, decision log, status.last_error."""
        now = self.clock.now_ms()
        msg = f"{type(exc).__name__}: {exc}"
        plain_zh, plain_en = error_texts(exc)
        if isinstance(exc, MarketUnavailable):
            self._connect("market", "down")
        elif isinstance(exc, BinanceError):
            self._connect("exchange", "down")
        expected = isinstance(exc, (MarketUnavailable, BinanceError))   # outages: no traceback spam
        log.error("cycle for %s failed: %s", sym or "-", msg, exc_info=None if expected else exc)
        with self._status_lock:
            self._pub["last_error"] = {"time_ms": now, "symbol": sym, "message": msg,
                                       "message_zh": f"{plain_zh}（{msg}）", "message_en": f"{plain_en} ({msg})"}
        self._log("ERROR", sym, f"{plain_zh}（{msg}）", f"{plain_en} ({msg})", now, pylog=False)

    def _connect(self, what: str, state: str) -> None:
        with self._status_lock:
            self._pub["connectivity"][what] = state

    def _publish(self, sym: str, analysis: Analysis | None = None) -> None:
        """Hand readers immutable references (frozen Analysis, a fresh dict), never live objects.
        `analysis`: a display-only re-score at the current price (run_cycle's status)."""
        rt = self._rt[sym]
        snap = {"analysis": analysis if analysis is not None else rt.analysis, "position": _state_copy(rt.state) if rt.state is not None else None}
        with self._status_lock:
            self._pub["symbols"] = {**self._pub["symbols"], sym: snap}

    def status(self) -> dict:
        with self._status_lock:
            pub = {**self._pub, "connectivity": dict(self._pub["connectivity"]),
                   "symbols": dict(self._pub["symbols"])}
        count = self.store.get_trade_count()
        ph = phase_for(count, self.params.phases)
        prev = self.params.phases.starts_at(ph.key)
        progress = 1.0 if ph.next_at is None else (count - prev) / (ph.next_at - prev)
        last_scores = {}
        for sym, snap in pub["symbols"].items():
            a = snap.get("analysis")
            if a is not None:
                last_scores[sym] = {"long": float(a.long_score), "short": float(a.short_score),
                                    "long_breakdown": a.long_breakdown, "short_breakdown": a.short_breakdown,
                                    "time_ms": a.time_ms, "price": float(a.price)}
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
