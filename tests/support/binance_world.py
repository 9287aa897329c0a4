"""The real TradingAgent in testnet mode against the fake Binance server (tests/support/
fake_binance_server.py): BinanceClient + BinanceExchange over loopback HTTP, a scripted
analysis (tests/support/scripted_world.py) over replayed candles, a real SQLite store, and a
ManualClock the client signs with (so the server's ledger carries the agent's times).

`ledger_problems` compares the store with the exchange's ledger: every entry fill is exactly
one planned trade (not adopted, with its planned stop), exits, fees and realized PnL add up,
the wallet moved by exactly the recorded PnL plus the funding the exchange booked, and every
open trade is the exchange's position.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from client import BinanceClient
from config import Settings
from rl.agent.agent import TradingAgent
from rl.analysis.levels.finder import DEFAULT_WEIGHTS
from rl.clock import ManualClock
from rl.execution.binance import BinanceExchange
from rl.knowledge.store import KnowledgeStore
from rl.market.candles import index_to_ms
from rl.market.ports import ReplayMarketData
from tests.support.fake_binance_server import API_KEY, API_SECRET, Bar, FakeBinanceServer
from tests.support.scripted_world import MIN, SYMBOL, T0, Script, ScriptedAnalyzer, candles

START_BAR = 60
# flat at 100, then: entry at 100 (stop 98.5), 1R partial + break-even, target 103, a re-entry
# near 103 stopped out by a dip, and a flat tail with a third entry that stays open
PATH: list[float | tuple[float, float, float, float]] = (
    [100.0] * START_BAR
    + [100.5, 101.0, (101.0, 101.6, 101.0, 101.5), 102.0, 102.5, (102.5, 103.3, 102.5, 103.2)]
    + [103.2] * 9 + [102.8, (102.8, 102.8, 101.4, 101.5), 101.5, 101.5] + [101.5] * 40)
END_BAR = len(PATH) - 1


class CandleMarket:
    """The one market both sides see: the price at a time and the 1m bars closed in a span."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.t = index_to_ms(frame.index).astype(np.int64)
        self.o, self.h, self.l, self.c = (frame[k].to_numpy(float) for k in ("open", "high", "low", "close"))

    def price_at(self, ms: int) -> float:
        """Close of the newest 1m bar closed by `ms` (ReplayMarketData.last_price)."""
        i = int(np.searchsorted(self.t + MIN, ms, side="right")) - 1
        return float(self.c[i]) if i >= 0 else float(self.o[0])

    def bars_between(self, from_ms: int, to_ms: int) -> Iterator[Bar]:
        lo = int(np.searchsorted(self.t, from_ms, side="left"))
        for i in range(lo, len(self.t)):
            if self.t[i] + MIN > to_ms:
                break
            yield int(self.t[i]), float(self.o[i]), float(self.h[i]), float(self.l[i]), float(self.c[i])


def market_frame(path=PATH) -> pd.DataFrame:
    return candles(list(path))


def new_server(frame: pd.DataFrame, **kw) -> FakeBinanceServer:
    m = CandleMarket(frame)
    kw.setdefault("funding_interval_ms", 5 * MIN)     # funding while the short trades are open
    kw.setdefault("client_timeout", 1.5)              # Rig's default: timeout faults hang past it
    return FakeBinanceServer(m.price_at, m.bars_between, start_ms=T0 + START_BAR * MIN, **kw)


class FollowingAnalyzer(ScriptedAnalyzer):
    """The scripted verdict with the support 1.0 below the price and the resistance 3.0 above:
    every entry's stop sits 1.5 below it (support - ATR/2) and its target 3.0 above, so the
    dip after the second entry stops it out."""

    def score(self, price: float, time_ms: int):
        self.script.support, self.script.resistance = float(price) - 1.0, float(price) + 3.0
        return super().score(price, time_ms)


class Rig:
    """One agent process' worth of parts (a restart builds a new Rig on the same files)."""

    def __init__(self, db: Path, url: str, frame: pd.DataFrame, clock: ManualClock,
                 script: Script | None = None, timeout: float = 1.5) -> None:
        self.clock = clock
        self.script = script or Script()
        self.script.long = 60.0
        self.client = BinanceClient(market_url=url, trade_url=url, api_key=API_KEY, api_secret=API_SECRET,
                                    timeout=timeout, sleep=lambda s: None,
                                    now=lambda: (clock.now_ms() + 0.5) / 1000.0)
        self.exchange = BinanceExchange(self.client, name="testnet")
        # Settings are built directly (not load_settings): TRADE_URL is a loopback test server
        self.settings = Settings(trading_mode="testnet", api_key=API_KEY, api_secret=API_SECRET,
                                 trade_url=url, market_data_url=url, db_path=db,
                                 reentry_cooldown_minutes=0, request_timeout=timeout,
                                 entry_order="ioc", take_profit_order="market")
        self.store = KnowledgeStore(db, default_weights=DEFAULT_WEIGHTS)
        self.market = ReplayMarketData({SYMBOL: frame}, clock)
        self.agent = TradingAgent(self.settings, self.market, self.exchange, self.store, clock,
                                  analyzer_factory=lambda sym, w: FollowingAnalyzer(self.script, sym, w))

    def close(self) -> None:
        self.store.close()
        self.client.session.close()


def ledger_problems(server: FakeBinanceServer, store: KnowledgeStore) -> list[str]:
    """Where the store disagrees with the exchange's ledger (empty: they agree)."""
    out: list[str] = []
    trades = sorted(store.trades(limit=10_000), key=lambda t: t["id"])
    entries = server.entry_orders()
    for o in entries:
        keys = (o["clientOrderId"], f"{o['symbol']}:{o['orderId']}")
        m = [t for t in trades if t["entry_client_order_id"] in keys]
        if len(m) != 1:
            out.append(f"entry order {o['clientOrderId']} ({o['executedQty']} filled) is {len(m)} trades")
            continue
        t = m[0]
        if abs(t["quantity"] - float(o["executedQty"])) > 1e-9:
            out.append(f"trade #{t['id']}: quantity {t['quantity']} but {o['executedQty']} filled")
        if abs(t["entry_price"] - float(o["avgPrice"])) > 1e-6:
            out.append(f"trade #{t['id']}: entry price {t['entry_price']} but filled at {o['avgPrice']}")
    if len(trades) != len(entries):
        out.append(f"{len(trades)} trades in the store, {len(entries)} entry fills on the exchange")
    for t in trades:
        if (t["note"] or "").startswith("adopted"):
            out.append(f"trade #{t['id']} was adopted (its plan and thought chain are lost)")
        plan = ((store.thought_chain(t["id"]) or {}).get("action") or {}).get("plan") or {}
        if plan.get("stop") is None or abs(float(plan["stop"]) - float(t["initial_stop"] or 0)) > 0.11:
            out.append(f"trade #{t['id']}: stop {t['initial_stop']} is not its planned stop {plan.get('stop')}")
        x = store.exit_totals(t["id"])
        if abs(x["quantity"] + t["remaining_qty"] - t["quantity"]) > 1e-9:
            out.append(f"trade #{t['id']}: exits {x['quantity']} + open {t['remaining_qty']} != {t['quantity']}")
    fills = server.ledger.trades
    reduce_ids = {o["orderId"] for o in server.ledger.orders.values() if o["reduceOnly"]}
    exit_qty = sum(float(f["qty"]) for f in fills if f["orderId"] in reduce_ids)
    store_exit = sum(store.exit_totals(t["id"])["quantity"] for t in trades)
    if abs(exit_qty - store_exit) > 1e-9:
        out.append(f"exits: {exit_qty} closed on the exchange, {store_exit} recorded")
    fees = sum(-float(f["commission"]) for f in fills)
    store_fees = sum(t["entry_fee"] + store.exit_totals(t["id"])["fee"] for t in trades)
    if abs(fees - store_fees) > 1e-6:
        out.append(f"fees: {fees:.6f} paid on the exchange, {store_fees:.6f} recorded")
    pnl = sum(float(f["realizedPnl"]) for f in fills)
    store_pnl = sum(store.exit_totals(t["id"])["pnl"] for t in trades)
    if abs(pnl - store_pnl) > 1e-6:
        out.append(f"realized PnL: {pnl:.6f} on the exchange, {store_pnl:.6f} recorded")
    wallet = server.start_balance + store_pnl - store_fees + server.funding_total()
    if abs(server.ledger.wallet - wallet) > 1e-6:
        out.append(f"wallet {server.ledger.wallet:.6f} != start + recorded PnL - fees + funding {wallet:.6f}")
    open_trades = [t for t in trades if t["status"] == "open"]
    pos = server.ledger.positions.get(SYMBOL)
    amount = pos.amount if pos is not None else 0.0
    if (len(open_trades) == 1 and abs(open_trades[0]["remaining_qty"] - abs(amount)) > 1e-9) \
            or (not open_trades and amount != 0) or len(open_trades) > 1:
        out.append(f"open trades {[(t['id'], t['remaining_qty']) for t in open_trades]} vs position {amount}")
    if amount == 0 and any(a["algoStatus"] == "NEW" for a in server.ledger.algos.values()):
        out.append("flat, yet a stale reduce-only stop is still on the exchange")
    if server.stale_stops_at_entry:
        out.append(f"{server.stale_stops_at_entry} entries sent while a stale stop of an old position was live")
    if not server.protected(SYMBOL):
        out.append(f"the open position {amount} has no stop on the exchange")
    return out


def clock_at_start() -> ManualClock:
    return ManualClock(T0 + START_BAR * MIN)
