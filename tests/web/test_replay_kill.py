"""SIGKILL `python -m web.app --replay` again and again: the replay clock never goes back, and
at the end the paper wallet is the starting balance plus the trades' net PnL (fees and funding
included) to 1e-6, with no trade left unreconciled.

Each round starts the real server (waitress, the dashboard token from the page, POST
/api/agent/start) over a generated Binance-layout archive, waits for a moment that is picked
by polling (a number of replay steps, an open position, a new exit: never a fixed sleep) and
kills it. The next round must resume at or after the world time last seen and after every time
the two stores hold.
"""
from __future__ import annotations

import random
import re
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from tests.support.archives import write_archive
from tests.web.test_web_app_cli import clean_env, free_port, start

pytestmark = pytest.mark.slow          # restarts the real server a dozen times

SYMBOL = "BTCUSDT"
MIN = 60_000
DAYS = 5            # the replay starts half-way (its warm-up is at most half the data)
KILLS = 10
BALANCE = 10_000.0


def ro(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30.0)


class Server:
    """One `python -m web.app --replay` process with its agent started."""

    def __init__(self, tmp_path: Path, archive: Path, env: dict[str, str], n: int) -> None:
        self.port = free_port()
        self.log = tmp_path / f"server-{n}.log"
        self.proc = start(["--replay", str(archive), "--speed", "1000000", "--port", str(self.port),
                           "--db", str(tmp_path / "agent.db")], env, self.log)
        self.base = f"http://127.0.0.1:{self.port}"
        page = self._until(lambda: requests.get(self.base + "/", timeout=5).text, 90)
        token = re.search(r'name="dashboard-token" content="([^"]+)"', page)
        assert token, page[:500]
        r = requests.post(self.base + "/api/agent/start", headers={"X-Dashboard-Token": token.group(1)},
                          timeout=30)
        # a kill just after the data's last bar leaves a finished replay: nothing to start
        assert r.status_code == 200 or (r.status_code == 409 and "replay is finished" in r.text), r.text

    def _until(self, get: Callable, timeout: float):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                pytest.fail(f"web.app exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                return get()
            except requests.ConnectionError:
                time.sleep(0.05)
        pytest.fail(f"web.app did not answer in {timeout} s:\n{self.log.read_text()[-3000:]}")

    def meta(self) -> dict:
        return requests.get(self.base + "/api/meta", timeout=30).json()

    def status(self) -> dict:
        return requests.get(self.base + "/api/agent/status", timeout=30).json()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def store_times(tmp_path: Path) -> int:
    """The latest world time anything in the two stores carries."""
    a, p = ro(tmp_path / "agent.db"), ro(tmp_path / "agent-paper.db")
    try:
        got = [a.execute("SELECT MAX(opened_ms), MAX(closed_ms) FROM trades").fetchone(),
               a.execute("SELECT MAX(time_ms) FROM trade_exits").fetchone(),
               p.execute("SELECT MAX(time_ms) FROM paper_fills").fetchone()]
    finally:
        a.close()
        p.close()
    return max([t for row in got for t in row if t is not None] or [0])


def counts(tmp_path: Path) -> tuple[int, int, int]:
    """(open trades, exits, trades) in the knowledge store."""
    db = ro(tmp_path / "agent.db")
    try:
        return (db.execute("SELECT COUNT(*) FROM trades WHERE status='open'").fetchone()[0],
                db.execute("SELECT COUNT(*) FROM trade_exits").fetchone()[0],
                db.execute("SELECT COUNT(*) FROM trades").fetchone()[0])
    except sqlite3.OperationalError:       # not created yet
        return 0, 0, 0
    finally:
        db.close()


def test_replay_killed_again_and_again_never_rewinds_and_the_wallet_matches_the_trades(tmp_path):
    archive = write_archive(tmp_path / "archive", SYMBOL, "2024-01", n=DAYS * 1440, start="2024-01-01", seed=3)
    env = clean_env(tmp_path, MIN_REWARD_R="0.01", MIN_TRADES_FOR_ADJUST="3", PAPER_BALANCE=str(BALANCE),
                    LOG_LEVEL="warning")
    rng = random.Random(13)
    seen: int | None = None              # the world time last seen before a kill
    floor: int | None = None             # ... and the latest time the stores held after it
    kinds: list[str] = []
    for n in range(KILLS + 1):
        server = Server(tmp_path, archive, env, n)
        meta = server.meta()
        began = meta["replay"]["clock_start_ms"]
        if seen is not None:
            assert began >= seen, f"round {n}: the replay clock went back from {seen} to {began}"
            assert began >= floor, f"round {n}: resumed at {began}, before the stores' {floor}"
            assert meta["replay"]["resumed_from_ms"] is not None
        end = meta["replay"]["data_end_ms"]
        last = began
        if n == KILLS:                   # the last round runs to the end of the data
            run_to_end(server, end, last)
            break
        kind = ("steps", "open", "exit")[n % 3]
        open0, exits0, _ = counts(tmp_path)
        steps = rng.randint(30, 600)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            now = server.meta()["world_time_ms"]
            assert now >= last, "the replay clock went back while running"
            last = now
            o, x, _ = counts(tmp_path)
            if ((kind == "steps" and now >= began + steps * MIN) or (kind == "open" and o > 0 and open0 == 0)
                    or (kind == "exit" and x > exits0) or now >= end - 60 * MIN):
                break
            time.sleep(rng.uniform(0.0, 0.03))
        seen = server.meta()["world_time_ms"]
        server.kill()
        floor = store_times(tmp_path)
        kinds.append(kind)

    _, _, n_trades = counts(tmp_path)
    print(f"\n{len(kinds)} kills ({', '.join(f'{k}: {kinds.count(k)}' for k in ('steps', 'open', 'exit'))}), "
          f"{n_trades} trades")
    assert n_trades >= 5, "the scenario should trade"
    check_books(tmp_path)


def run_to_end(server: Server, end: int, last: int) -> None:
    deadline = time.monotonic() + 300
    while True:
        s = server.status()
        if s.get("state") == "finished" or (s["last_cycle_ms"] is not None and s["last_cycle_ms"] >= end - 2 * MIN):
            break
        assert time.monotonic() < deadline, "the replay did not finish"
        now = server.meta()["world_time_ms"]
        assert now >= last, "the replay clock went back while running"
        last = now
        time.sleep(0.05)
    server.stop()


def check_books(tmp_path: Path) -> None:
    agent, paper = ro(tmp_path / "agent.db"), ro(tmp_path / "agent-paper.db")
    for db in (agent, paper):
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    statuses = dict(agent.execute("SELECT status, COUNT(*) FROM trades GROUP BY status").fetchall())
    assert statuses.get("unreconciled", 0) == 0, "every exit's fills are on the paper exchange"
    # every entry fill on the exchange is exactly one trade
    entries = paper.execute("SELECT client_order_id, order_id FROM paper_orders "
                            "WHERE reduce_only=0 AND executed_qty>0").fetchall()
    keys = [r[0] for r in agent.execute("SELECT entry_client_order_id FROM trades")]
    assert len(keys) == len(set(keys)) == len(entries)
    for cid, oid in entries:
        assert sum(k in (cid, f"{SYMBOL}:{oid}") for k in keys) == 1, f"entry {cid}/{oid}"
    # the wallet is the balance plus every trade's net PnL (fees and funding included)
    wallet = paper.execute("SELECT wallet FROM paper_account").fetchone()[0]
    closed_net = agent.execute("SELECT COALESCE(SUM(net_pnl), 0) FROM trades WHERE status='closed'").fetchone()[0]
    open_part = agent.execute(
        "SELECT COALESCE((SELECT SUM(x.pnl - x.fee) FROM trade_exits x JOIN trades t ON t.id=x.trade_id"
        " WHERE t.status='open'), 0) - COALESCE((SELECT SUM(entry_fee) FROM trades WHERE status='open'), 0)"
    ).fetchone()[0]
    funding = paper.execute("SELECT COALESCE(SUM(amount), 0) FROM paper_funding").fetchone()[0]
    cols = {r[1] for r in agent.execute("PRAGMA table_info(trades)")}
    # funding a closed trade already carries in its net PnL (when trades record it) counts once
    in_trades = (agent.execute("SELECT COALESCE(SUM(funding), 0) FROM trades WHERE status='closed'").fetchone()[0]
                 if "funding" in cols else 0.0)
    books = BALANCE + closed_net + open_part + funding - in_trades
    print(f"paper wallet {wallet:.6f}, balance + trades' net PnL + funding {books:.6f}, "
          f"apart {wallet - books:+.6f} USDT (funding {funding:+.6f}); trades by status {statuses}")
    assert wallet == pytest.approx(books, abs=1e-6)
    # at most one position, and it is the open trade's, under a live stop
    pos = paper.execute("SELECT amount FROM paper_positions WHERE symbol=?", (SYMBOL,)).fetchall()
    open_trades = agent.execute("SELECT remaining_qty FROM trades WHERE status='open'").fetchall()
    assert len(pos) == len(open_trades) <= 1
    if pos:
        assert abs(pos[0][0]) == pytest.approx(open_trades[0][0])
        assert paper.execute("SELECT COUNT(*) FROM paper_stops WHERE status='NEW'").fetchone()[0] == 1
    agent.close()
    paper.close()
