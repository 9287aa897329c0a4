"""SIGKILL the agent process mid-cycle many times and restart it: nothing lost or duplicated.

A child process runs the real agent (real analysis on generated candles, PaperExchange and
KnowledgeStore both persisted in SQLite, a ManualClock whose position survives in the store).
The parent kills it at random moments, restarts it, and at the end checks the two databases
against each other: every filled entry order on the exchange is exactly one trade in the store,
every closed trade's exits add up to its size, the paper wallet equals the start balance plus
the recorded net PnL, learning ran once per close, and both files pass PRAGMA integrity_check.
"""
from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from tests.support.paths import REPO_ROOT

pytestmark = pytest.mark.slow          # each test restarts the agent in subprocesses

SYMBOL = "BTCUSDT"
MIN_TRADES = 3
CHILD = r"""
import sys, pathlib
import pandas as pd
from tests.support.candles import make_candles
from config import Settings
from rl.agent.agent import TradingAgent
from rl.clock import ManualClock
from rl.knowledge.orders import OrderBook
from rl.knowledge.store import KnowledgeStore
from rl.analysis.levels.finder import DEFAULT_WEIGHTS
from rl.market.ports import ReplayMarketData
from rl.paper.exchange import PaperExchange

d, end_bar = pathlib.Path(sys.argv[1]), int(sys.argv[2])
if len(sys.argv) > 3:      # deterministic crash: SIGKILL ourselves on the nth call of a store (or orders.) method
    import os, signal
    name, nth = sys.argv[3].split(":")
    owner = OrderBook if name.startswith("orders.") else KnowledgeStore
    name = name.removeprefix("orders.")
    real, calls = getattr(owner, name), [0]
    def dying(self, *a, **k):
        calls[0] += 1
        if calls[0] == int(nth):
            os.kill(os.getpid(), signal.SIGKILL)
        return real(self, *a, **k)
    setattr(owner, name, dying)
import os
# KILL_SYMBOLS=A,B: a replay of several symbols on the one account (the first keeps seed 3)
symbols = os.environ.get("KILL_SYMBOLS", "BTCUSDT").split(",")
frames = {s: make_candles(n=end_bar + 100, seed=3 + 8 * i, vol=0.002) for i, s in enumerate(symbols)}
candles = frames[symbols[0]]
t0 = int(candles.index[0].value // 1_000_000)
store = KnowledgeStore(d / "agent.db", default_weights=DEFAULT_WEIGHTS)
clock = ManualClock(store.get_state("test_clock") or t0 + 3000 * 60_000)
market = ReplayMarketData(frames, clock)
ex = PaperExchange(d / "paper.db", balance=10_000.0, clock=clock.now_ms, funding_rate=0.0)
# no least reward: the crash points need trades to close on these generated candles
# TRADE_FILTER=on (env TF_ON): the learned filter judges from the first signal (no warm-up)
import os
from rl.strategy.params import StrategyParams
settings = Settings(db_path=d / "agent.db", min_trades_for_adjust=MIN_TRADES, min_reward_r=0.01,
                    trade_filter="on" if os.environ.get("TF_ON") else "off", symbols=tuple(symbols),
                    entry_order="ioc", take_profit_order="market")
params = StrategyParams.from_settings(settings).replace_flat({"filter.warmup_trades": 0})
agent = TradingAgent(settings, market, ex, store, clock, feed=ex, params=params)
agent.startup()
print("started", flush=True)
end = t0 + end_bar * 60_000
while clock.now_ms() < end:
    agent.run_cycle()
    clock.advance(60)
    store.set_state("test_clock", clock.now_ms())
print("finished", flush=True)
""".replace("MIN_TRADES", str(MIN_TRADES))


def spawn(tmp_path, end_bar: int, crash_at: str | None = None, filter_on: bool = False,
          symbols: tuple[str, ...] = (SYMBOL,)) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "KILL_SYMBOLS": ",".join(symbols)}
    env.pop("TF_ON", None)
    if filter_on:
        env["TF_ON"] = "1"
    err = open(tmp_path / "child.err", "a")     # a file, not a pipe: a full pipe would block the child
    return subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path), str(end_bar)] + ([crash_at] if crash_at else []),
                            cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=err, text=True, env=env)


@pytest.mark.parametrize("symbols", [(SYMBOL,), (SYMBOL, "ETHUSDT")], ids=["one-symbol", "two-symbols"])
def test_sigkill_mid_cycle_and_restart_loses_and_duplicates_nothing(tmp_path, symbols):
    """Also for a two-symbol replay on one account (issue 18): trades of both symbols, each
    entry fill exactly one trade, the one wallet equal to both symbols' recorded PnL."""
    end_bar = 6500
    rng = random.Random(11)
    kills = 0
    for _ in range(10):
        p = spawn(tmp_path, end_bar, symbols=symbols)
        line = p.stdout.readline()                    # wait until it is trading
        assert line.strip() == "started", (tmp_path / "child.err").read_text()[-3000:]
        time.sleep(rng.uniform(0.05, 0.5))
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            kills += 1
        p.wait(30)
    p = spawn(tmp_path, end_bar, symbols=symbols)
    out, _ = p.communicate(timeout=240)
    assert p.returncode == 0 and "finished" in out, (tmp_path / "child.err").read_text()[-3000:]
    assert kills >= 8

    check_consistency(tmp_path, symbols=symbols)


@pytest.mark.parametrize("crash_at", [
    "open_trade:1",       # entry filled and protected on the exchange, trade not yet recorded
    "orders.record:1",    # killed while the router reports the entry fill: only the intent knows
    "record_exit:1",      # an exit filled on the exchange, not yet recorded
    "close_trade:2",      # exits recorded, the close + learning transaction not yet written
    "update_trade:4",     # mid position upkeep (stop moved on the exchange, not in the store)
])
def test_kill_at_each_write_then_restart(tmp_path, crash_at):
    end_bar = 3800        # decisions only at 15m closes: enough bars for a second close
    p = spawn(tmp_path, end_bar, crash_at)
    p.communicate(timeout=120)
    assert p.returncode == -signal.SIGKILL, "the crash point was never reached"
    p = spawn(tmp_path, end_bar)
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 0 and "finished" in out, (tmp_path / "child.err").read_text()[-3000:]
    check_consistency(tmp_path, min_trades=1)


@pytest.mark.parametrize("crash_at", ["close_trade:2", "set_filter_state:3"])
def test_kill_with_the_trade_filter_then_restart_keeps_it_in_step(tmp_path, crash_at):
    """The filter's state is written in the close's transaction: killed just before a close
    (or before a decision's count is stored) and restarted, it has learned from exactly the
    closed trades, each once, and resumes from the stored state."""
    end_bar = 3800
    p = spawn(tmp_path, end_bar, crash_at, filter_on=True)
    p.communicate(timeout=120)
    assert p.returncode == -signal.SIGKILL, "the crash point was never reached"
    p = spawn(tmp_path, end_bar, filter_on=True)
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 0 and "finished" in out, (tmp_path / "child.err").read_text()[-3000:]
    check_consistency(tmp_path, min_trades=1)
    db = sqlite3.connect(tmp_path / "agent.db")
    state = json.loads(db.execute("SELECT state_json FROM trade_filter").fetchone()[0])
    closed = db.execute("SELECT COUNT(*) FROM trades WHERE status='closed'").fetchone()[0]
    assert closed >= 1 and state["learned"] == closed
    assert state["seen"] == state["taken"] + state["skipped"] >= closed


def check_consistency(tmp_path, min_trades: int = 5, symbols: tuple[str, ...] = (SYMBOL,)) -> None:
    agent_db = sqlite3.connect(tmp_path / "agent.db")
    paper_db = sqlite3.connect(tmp_path / "paper.db")
    for db in (agent_db, paper_db):
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    entries = paper_db.execute("SELECT client_order_id, order_id, executed_qty FROM paper_orders "
                               "WHERE reduce_only=0 AND executed_qty>0").fetchall()
    trades = agent_db.execute("SELECT id, entry_client_order_id, quantity, status, remaining_qty, net_pnl, "
                              "note, symbol FROM trades ORDER BY id").fetchall()
    assert len(trades) >= min_trades, "the scenario should trade"
    assert {t[7] for t in trades} == set(symbols), "every symbol should trade"
    # every exchange entry fill is exactly one trade, and no trade is without one
    keys = [t[1] for t in trades]
    assert len(keys) == len(set(keys))
    for cid, oid, qty in entries:
        matches = [t for t in trades if t[1] == cid or t[1] in {f"{s}:{oid}" for s in symbols}]
        assert len(matches) == 1, f"entry {cid}/{oid} recorded {len(matches)} times"
        assert matches[0][2] == pytest.approx(qty)
    assert len(entries) == len(trades)
    assert not [t for t in trades if t[6].startswith("adopted")]
    # closed trades: exits add up to the size; the wallet matches the recorded PnL
    for tid, _, qty, status, remaining, _, _, _ in trades:
        exited = agent_db.execute("SELECT COALESCE(SUM(quantity),0) FROM trade_exits WHERE trade_id=?",
                                  (tid,)).fetchone()[0]
        if status == "closed":
            assert exited == pytest.approx(qty), f"trade {tid}"
        else:
            assert exited + remaining == pytest.approx(qty)
    wallet = paper_db.execute("SELECT wallet FROM paper_account").fetchone()[0]
    closed_net = sum(t[5] for t in trades if t[3] == "closed")
    open_part = agent_db.execute(
        "SELECT COALESCE(SUM(x.pnl - x.fee), 0) - COALESCE((SELECT SUM(entry_fee) FROM trades WHERE status='open'), 0) "
        "FROM trade_exits x JOIN trades t ON t.id=x.trade_id WHERE t.status='open'").fetchone()[0]
    assert wallet == pytest.approx(10_000.0 + closed_net + open_part, abs=1e-6)
    # open trades match the exchange position of their symbol, each protected by a live stop
    for sym in symbols:
        open_trades = [t for t in trades if t[3] == "open" and t[7] == sym]
        pos = paper_db.execute("SELECT amount FROM paper_positions WHERE symbol=?", (sym,)).fetchall()
        assert len(open_trades) == len(pos) <= 1, sym
        if pos:
            assert abs(pos[0][0]) == pytest.approx(open_trades[0][4])
            assert paper_db.execute("SELECT COUNT(*) FROM paper_stops WHERE status='NEW' AND symbol=?",
                                    (sym,)).fetchone()[0] == 1
    # learning ran exactly once per close from the MIN_TRADES-th on
    n_closed = sum(1 for t in trades if t[3] == "closed")
    hist = agent_db.execute("SELECT COUNT(*) FROM weight_history").fetchone()[0]
    assert hist == 1 + max(0, n_closed - (MIN_TRADES - 1))
    # every closed trade has a complete thought chain
    incomplete = agent_db.execute(
        "SELECT COUNT(*) FROM trades t JOIN thought_chains c ON c.trade_id=t.id WHERE t.status='closed' "
        "AND (c.reward_json IS NULL OR c.summary_en='')").fetchone()[0]
    assert incomplete == 0
