"""AgentRunner: the one background thread that runs the TradingAgent, and the dashboard's window
into it (see docs/internals.md "Agent runner").

The web service layer only ever talks to this class. Reads (status, logs, trades, weights) go
to the agent's published snapshot or to the SQLite store, never to state the agent thread is
mutating, so the dashboard cannot see a half-made decision. Writes from the dashboard (manual
order, close) go through the agent, which serializes them with its own cycle by one lock.
"""
from __future__ import annotations

import logging
import threading

from config import Settings
from rl.agent import replay_end
from rl.agent.agent import TradingAgent
from rl.agent.equity_curve import account_curve
from rl.clock import Clock
from rl.errors import AgentAlreadyRunning
from rl.execution.port import ExchangePort, SimulatedExchange
from rl.knowledge.store import KnowledgeStore
from rl.knowledge.symbol_pnl import store_symbol_pnl
from rl.market.ports import MarketDataPort

log = logging.getLogger(__name__)


class AgentRunner:
    """Start/stop the agent thread; JSON-safe views for the dashboard. `feed`: the simulated
    exchange the agent shows the market (paper, replay; see TradingAgent), unless `agent` is
    given ready-made."""

    def __init__(self, settings: Settings, market: MarketDataPort, exchange: ExchangePort,
                 store: KnowledgeStore, clock: Clock, agent: TradingAgent | None = None, *,
                 feed: SimulatedExchange | None = None) -> None:
        self.settings = settings
        self.market = market
        self.exchange = exchange
        self.store = store
        self.clock = clock
        self.agent = agent or TradingAgent(settings, market, exchange, store, clock, feed=feed)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._control = threading.Lock()      # start/stop against each other, not the cycle
        self._fatal: str | None = None
        # a replay played to the end of its data (rl.agent.replay_end): its summary, also
        # after a restart on its store; start() refuses then and says what to do instead
        self._finished: dict | None = replay_end.finished_summary(store)

    # ------------------------------------------------------------------ lifecycle
    @property
    def running(self) -> bool:
        t = self._thread
        return t is not None and t.is_alive()

    def start(self) -> None:
        """Start the background thread (reload state and reconcile first, inside it)."""
        with self._control:
            if self.running:
                raise AgentAlreadyRunning("the agent is already running: stop it first")
            if self._finished is not None:
                raise replay_end.refuse_start(self._finished, self.store.path)
            self._stop = threading.Event()
            self._fatal = None
            self._thread = threading.Thread(target=self._loop, args=(self._stop,),
                                            name="trading-agent", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to stop and wait for it; the agent checks the flag between steps."""
        with self._control:
            self._stop.set()
            t = self._thread
            if t is not None and t is not threading.current_thread():
                t.join(timeout)
                if t.is_alive():
                    log.warning("agent thread did not stop within %.1f s; it will stop after its "
                                "current exchange call returns", timeout)

    def _loop(self, stop: threading.Event) -> None:
        """The thread body: nothing a cycle raises ends it; only `stop` does, or a replay's
        clock running out of data (then the replay is finished: `_finish`)."""
        try:
            self.agent.startup(stop)
        except Exception as exc:       # reconcile failing must not keep the agent from trading later
            self.agent.note_error("startup", exc)
        while not stop.is_set():
            try:
                interval = self.agent.run_cycle(stop)
            except Exception as exc:   # run_cycle already isolates symbols; this is the last net
                self.agent.note_error("cycle", exc)
                self.agent.board.cycle_done(self.clock.now_ms())   # counted as a failed cycle
                interval = self.settings.check_interval_flat
            if stop.is_set():
                break
            if self.clock.sleep(interval, stop):
                break
            # a manual clock "sleeps" instantly: give other threads (and stop) a turn
            if stop.wait(0.001):
                break
        if not stop.is_set() and replay_end.clock_exhausted(self.clock):
            self._finish()

    def _finish(self) -> None:
        """The replay's data is played: keep its summary in the store and say it in the log."""
        end_ms = self.clock.now_ms()
        summary = replay_end.build_summary(self.store, self.exchange, end_ms, self.agent.positions)
        zh, en = replay_end.finished_lines(summary)
        log.info("%s", en)
        try:
            self.store.set_state(replay_end.FINISHED_KEY, summary, end_ms)
            self.store.decisions.log(end_ms, "INFO", "", zh, en)
        except Exception:   # noqa: BLE001 - the status still says finished; a restart replays the end
            log.exception("could not record the end of the replay")
        self._finished = summary

    # ------------------------------------------------------------------ reads
    def status(self) -> dict:
        s = self.agent.status()
        running = self.running
        s["running"] = running and self._finished is None
        # "finished": a replay played to its end (with `replay_finished`, its summary)
        s["state"] = "finished" if self._finished is not None else "running" if running else "stopped"
        s["replay_finished"] = dict(self._finished) if self._finished is not None else None
        s["mode"] = self.settings.mode_label
        s["symbols"] = list(self.settings.symbols)
        return s

    def logs(self, limit: int = 200, after_id: int | None = None) -> list[dict]:
        return self.store.decisions.recent(limit=limit, after_id=after_id)

    def levels(self, symbol: str) -> list[dict]:
        return self.agent.levels(self._symbol(symbol))

    def account(self) -> dict:
        return self.exchange.account().to_dict()

    def positions(self) -> list[dict]:
        return self.agent.positions()

    def trades(self, limit: int = 100) -> list[dict]:
        return self.store.trades(limit=limit)

    def symbol_pnl(self) -> dict:
        """Per-symbol realized net, unrealized, trades and win rate (rl.knowledge.symbol_pnl)."""
        return store_symbol_pnl(self.store, self.settings.symbols, self.positions())

    def trade(self, trade_id: int) -> dict | None:
        return self.store.trade(int(trade_id))

    def equity_curve(self) -> list[dict]:
        """The account's equity over time; its last point is the account now (see
        rl.agent.equity_curve)."""
        try:
            now_equity: float | None = float(self.exchange.account().margin_balance)
        except Exception:   # noqa: BLE001 - e.g. Binance unreachable: the stored curve still shows
            now_equity = None
        return account_curve(self.store, now_equity, self.clock.now_ms())

    def weight_history(self) -> list[dict]:
        return self.store.weight_history()

    # ------------------------------------------------------------------ manual actions
    def manual_order(self, symbol: str, side: str, type: str, quantity: float,
                     price: float | None = None, client_order_id: str | None = None,
                     reduce_only: bool = False, stop_loss: float | None = None,
                     take_profit: float | None = None) -> dict:
        return self.agent.manual_order(self._symbol(symbol), side, type, quantity, price,
                                       client_order_id=client_order_id, reduce_only=reduce_only,
                                       stop_loss=stop_loss, take_profit=take_profit)

    def close_position(self, symbol: str) -> dict:
        return self.agent.close_position(self._symbol(symbol))

    def open_orders(self) -> list[dict]:
        return self.agent.open_orders()

    def cancel_order(self, symbol: str, order_id: str, confirm_unprotected: bool = False) -> dict:
        return self.agent.cancel_order(self._symbol(symbol), order_id,
                                       confirm_unprotected=confirm_unprotected)

    def fills(self, limit: int = 100, days: int = 7, symbol: str | None = None) -> list[dict]:
        """Fills of the last `days` (Binance keeps userTrades queryable in 7-day windows), of
        one `symbol` or all."""
        return self.agent.fills(self.clock.now_ms() - days * 86_400_000, limit,
                                symbols=None if symbol is None else (self._symbol(symbol),))

    def order_history(self, limit: int = 100) -> list[dict]:
        return [{k: v for k, v in o.items() if k != "raw"} for o in self.store.orders.recent(limit)]

    def _symbol(self, symbol: str) -> str:
        s = str(symbol).upper()
        if s not in self.settings.symbols:
            raise ValueError(f"symbol={symbol!r} is invalid: it must be one of the configured SYMBOLS "
                             f"{', '.join(self.settings.symbols)}")
        return s
