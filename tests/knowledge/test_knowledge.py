"""KnowledgeStore / TradeLogger: idempotent, atomic writes; statistics; bounded log; restarts."""
from __future__ import annotations

import sqlite3

import pytest

from rl.execution.port import OrderResult
from rl.knowledge.schema import KnowledgeError
from rl.knowledge.store import KnowledgeStore
from rl.strategy.learning import update_weights
from rl.strategy.params import LearningParams

W = {"volume_density": 0.20, "touch_bounce_count": 0.20, "bounce_magnitude": 0.15,
     "failed_breakout_count": 0.20, "duration_days": 0.10, "multi_tf_confirm": 0.15}


@pytest.fixture
def store(tmp_path):
    s = KnowledgeStore(tmp_path / "k.db", default_weights=W)
    yield s
    s.close()


def order(cid: str, status: str = "FILLED", qty: float = 1.0, price: float = 100.0) -> OrderResult:
    return OrderResult(symbol="BTCUSDT", order_id="42", client_order_id=cid, side="BUY", type="LIMIT",
                       status=status, price=price, orig_qty=qty, executed_qty=qty if status == "FILLED" else 0,
                       avg_price=price, reduce_only=False, time_in_force="IOC", update_time_ms=1000,
                       commission=0.05)


def open_one(store, cid="e1", side="LONG", entry=100.0, stop=98.0, qty=1.0, feats=None, t=1000):
    return store.open_trade(symbol="BTCUSDT", side=side, entry_client_order_id=cid, opened_ms=t,
                            entry_price=entry, quantity=qty, stop_price=stop,
                            target_price=entry + 2 * (entry - stop), leverage=10,
                            features=feats or {k: 0.5 for k in W},
                            perception={"price": entry}, action={"side": side}, entry_fee=0.05,
                            phase="exploration")


def test_schema_version_and_wal(store):
    from rl.knowledge.schema import MIGRATIONS

    assert store.schema_version == len(MIGRATIONS)
    other = sqlite3.connect(store.path)                 # WAL is a property of the file
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    other.close()
    assert store.integrity_check() == "ok"


def test_open_is_idempotent_and_links_orders(store):
    store.orders.record(order("e1"), "entry")
    tid = open_one(store)
    assert open_one(store) == tid                       # same fill recorded twice: one trade
    assert len(store.trades()) == 1
    assert store.orders.for_trade(tid)[0]["client_order_id"] == "e1"
    store.orders.record(order("e1", status="FILLED", qty=1.0), "entry")   # upsert keeps the link
    assert store.orders.get("e1")["trade_id"] == tid


def test_partial_exit_then_close_totals_r_and_thought_chain(store):
    tid = open_one(store)                                # risk = 2 * 1 = 2
    assert store.record_exit(tid, client_order_id="x1", time_ms=2000, kind="partial", price=102,
                             quantity=0.5, pnl=1.0, fee=0.02)
    assert not store.record_exit(tid, client_order_id="x1", time_ms=2000, kind="partial", price=102,
                                 quantity=0.5, pnl=1.0, fee=0.02)          # duplicate ignored
    assert store.open_trade_for("BTCUSDT")["remaining_qty"] == pytest.approx(0.5)
    store.record_exit(tid, client_order_id="x2", time_ms=3000, kind="target", price=104,
                      quantity=0.5, pnl=2.0, fee=0.03)
    t = store.close_trade(tid, closed_ms=3000, exit_reason="target", reward={"note": "ok"},
                          summary_zh="总结", summary_en="summary")
    assert t["status"] == "closed"
    assert t["realized_pnl"] == pytest.approx(3.0)
    assert t["fees"] == pytest.approx(0.10)
    assert t["r_multiple"] == pytest.approx((3.0 - 0.10) / 2.0)
    assert t["exit_price"] == pytest.approx(103.0)
    chain = store.trade(tid)["thought_chain"]
    assert chain["perception"] == {"price": 100.0} and chain["action"] == {"side": "LONG"}
    assert chain["reward"]["r_multiple"] == pytest.approx(1.45) and chain["reward"]["note"] == "ok"
    assert chain["summary_en"] == "summary"
    assert store.get_trade_count() == 1
    # closing again changes nothing
    again = store.close_trade(tid, closed_ms=9999, exit_reason="stop", reward={}, summary_zh="", summary_en="")
    assert again["closed_ms"] == 3000 and store.get_trade_count() == 1


def test_close_with_learning_writes_weights_in_same_transaction(store, tmp_path):
    store.ensure_initial_weights(0)
    tid = open_one(store)
    store.record_exit(tid, client_order_id="x", time_ms=5, kind="stop", price=98, quantity=1, pnl=-2, fee=0)
    samples = [({**{k: 0.5 for k in W}, "touch_bounce_count": i / 40}, (i - 20) / 10) for i in range(40)]
    upd = update_weights(W, samples, LearningParams(min_trades=30))
    store.close_trade(tid, closed_ms=6, exit_reason="stop", reward={}, summary_zh="z", summary_en="e",
                      weight_update=upd)
    assert store.current_weights() == pytest.approx(upd.new)
    hist = store.weight_history()
    assert len(hist) == 2 and hist[-1]["trade_id"] == tid
    assert hist[-1]["evidence"]["touch_bounce_count"]["verdict"] == "helped"
    assert store.thought_chain(tid)["reward"]["weight_change"]["new"] == pytest.approx(upd.new)
    # weights survive a restart
    store.close()
    reopened = KnowledgeStore(tmp_path / "k.db", default_weights=W)
    assert reopened.current_weights() == pytest.approx(upd.new)
    reopened.close()


def test_failed_transaction_leaves_nothing(store):
    tid = open_one(store)
    with pytest.raises(RuntimeError):
        with store.batch():
            store.record_exit(tid, client_order_id="x", time_ms=5, kind="stop", price=98, quantity=1,
                              pnl=-2, fee=0)
            store.set_weights({**W}, 5, "z", "e")
            raise RuntimeError("crash mid-write")
    assert store.exit_totals(tid)["exits"] == []
    assert store.weight_history() == []
    assert store.current_weights() == W


def test_statistics_and_equity_curve(store):
    store.set_state("initial_balance", 1000.0)
    for i, (exit_price, pnl) in enumerate([(104, 4.0), (98, -2.0), (102, 2.0)]):
        tid = open_one(store, cid=f"e{i}", t=1000 * i, feats={**{k: 0.5 for k in W}, "volume_density": pnl})
        store.record_exit(tid, client_order_id=f"x{i}", time_ms=1000 * i + 500, kind="stop",
                          price=exit_price, quantity=1, pnl=pnl, fee=0.0)
        store.close_trade(tid, closed_ms=1000 * i + 500, exit_reason="stop", reward={}, summary_zh="",
                          summary_en="")
    s = store.trade_logger.summary()
    assert s["trades"] == 3 and s["wins"] == 2
    assert s["win_rate"] == pytest.approx(2 / 3)
    assert s["net_pnl"] == pytest.approx(4 - 2 + 2 - 3 * 0.05)
    curve = store.trade_logger.equity_curve()
    assert [p["equity"] for p in curve] == pytest.approx([1000, 1003.95, 1001.9, 1003.85])
    fs = store.trade_logger.feature_stats(list(W))
    assert fs["volume_density"]["verdict"] == "helped"
    assert fs["duration_days"]["verdict"] == "no_evidence"
    assert len(store.closed_samples()) == 3


def test_decision_log_is_bounded_and_pollable(tmp_path):
    s = KnowledgeStore(tmp_path / "l.db", default_weights=W, log_limit=50)
    ids = [s.decisions.log(i, "info", "BTCUSDT", f"第{i}条", f"line {i}") for i in range(120)]
    assert s.decisions.count() == 50
    newest = s.decisions.recent(limit=5)
    assert [r["id"] for r in newest] == ids[-1:-6:-1]
    assert [r["message_en"] for r in s.decisions.recent(after_id=ids[-3])] == ["line 119", "line 118"]
    with pytest.raises(KnowledgeError, match="level"):
        s.decisions.log(0, "loud", "", "", "")
    s.close()


def test_state_roundtrip(store):
    store.set_state("pending:BTCUSDT", {"cid": "e9", "plan": [1, 2]}, 5)
    assert store.get_state("pending:BTCUSDT") == {"cid": "e9", "plan": [1, 2]}
    store.delete_state("pending:BTCUSDT")
    assert store.get_state("pending:BTCUSDT", "none") == "none"


@pytest.mark.parametrize("kwargs, field", [
    ({"side": "UP"}, "side"),
    ({"entry_price": -1}, "entry_price"),
    ({"stop_price": 101.0}, "stop_price"),
    ({"quantity": float("nan")}, "quantity"),
])
def test_bad_trade_input_names_field(store, kwargs, field):
    base = dict(symbol="BTCUSDT", side="LONG", entry_client_order_id="e", opened_ms=1, entry_price=100.0,
                quantity=1.0, stop_price=98.0, target_price=104.0, leverage=10, features={},
                perception={}, action={})
    base.update(kwargs)
    with pytest.raises(KnowledgeError, match=field):
        store.open_trade(**base)
    assert store.trades() == []


def test_newer_schema_is_refused(tmp_path):
    KnowledgeStore(tmp_path / "n.db", default_weights=W).close()
    newer = sqlite3.connect(tmp_path / "n.db")          # as a newer program would leave it
    with newer:
        newer.execute("UPDATE schema_versions SET version=99 WHERE component='knowledge'")
    newer.close()
    with pytest.raises(RuntimeError, match="newer"):
        KnowledgeStore(tmp_path / "n.db", default_weights=W)
    assert sqlite3.connect(tmp_path / "n.db").execute("PRAGMA integrity_check").fetchone()[0] == "ok"


class Events:
    """A TradeListener that keeps what it was told."""

    def __init__(self):
        self.seen = []

    def trade_opened(self, trade_id, **kw):
        self.seen.append(("open", trade_id, kw["opened_ms"], kw["entry_price"], kw["phase"]))

    def exit_recorded(self, trade_id, **kw):
        self.seen.append(("exit", trade_id, kw["time_ms"], kw["kind"], kw["pnl"]))

    def trade_closed(self, trade, **kw):
        self.seen.append(("close", trade["id"], kw["closed_ms"], kw["exit_reason"], trade["status"]))


def test_trade_listener_hears_each_trade_write_after_it_returns(tmp_path):
    events = Events()
    s = KnowledgeStore(tmp_path / "e.db", default_weights=W, trade_listener=events)
    tid = open_one(s)
    assert open_one(s) == tid                            # a repeated fill reports its trade again
    for _ in range(2):                                   # the repeated exit is not reported
        s.record_exit(tid, client_order_id="x", time_ms=5, kind="stop", price=98, quantity=1, pnl=-2, fee=0)
    s.close_trade(tid, closed_ms=6, exit_reason="stop", reward={}, summary_zh="z", summary_en="e")
    with pytest.raises(KnowledgeError):                  # a refused write reports nothing
        s.record_exit(tid + 1, client_order_id="y", time_ms=7, kind="stop", price=98, quantity=1,
                      pnl=0, fee=0)
    assert events.seen == [("open", tid, 1000, 100.0, "exploration"), ("open", tid, 1000, 100.0, "exploration"),
                           ("exit", tid, 5, "stop", -2.0), ("close", tid, 6, "stop", "closed")]
    s.close()


def test_failed_batch_rolls_back_orders_and_log_with_the_trade(store):
    with pytest.raises(RuntimeError):
        with store.batch():
            store.orders.record(order("e1"), "entry")
            tid = open_one(store)
            store.decisions.log(1, "INFO", "BTCUSDT", "开仓", "opened")
            raise RuntimeError("crash mid-write")
    assert store.orders.get("e1") is None and store.trade(tid) is None
    assert store.entry_context(tid) is None and store.decisions.count() == 0


def test_default_weights_can_be_given_after_opening(tmp_path):
    s = KnowledgeStore(tmp_path / "d.db")
    assert s.default_weights is None
    with pytest.raises(KnowledgeError, match="default_weights"):
        s.current_weights()
    s.default_weights = W
    assert s.default_weights == W and s.ensure_initial_weights(0) == W
    assert s.weight_history()[0]["weights"] == W
    s.close()


def test_a_version_1_file_upgrades_in_place_and_keeps_its_trades(tmp_path):
    from rl.db import connect, migrate
    from rl.knowledge.schema import COMPONENT, MIGRATIONS

    conn = connect(tmp_path / "old.db")                  # as the version before equity marks left it
    migrate(conn, COMPONENT, MIGRATIONS[:1])
    conn.close()
    s = KnowledgeStore(tmp_path / "old.db", default_weights=W)
    assert s.schema_version == len(MIGRATIONS) and s.equity_marks.count() == 0
    open_one(s)
    s.equity_marks.record(1_000, 10_000.0)
    s.close()
    again = KnowledgeStore(tmp_path / "old.db", default_weights=W)
    assert len(again.trades()) == 1 and again.equity_marks.between(0, 2_000) == [(1_000, 10_000.0)]
    again.close()


def test_equity_marks_replace_prune_and_read_back_in_time_order(tmp_path):
    s = KnowledgeStore(tmp_path / "m.db", default_weights=W)
    marks = s.equity_marks
    for t in (3_000, 1_000, 2_000):
        marks.record(t, 10_000.0 + t)
    marks.record(2_000, 9_999.5)                         # the same time again: replaced
    assert marks.between(0, 10_000) == [(1_000, 11_000.0), (2_000, 9_999.5), (3_000, 13_000.0)]
    assert marks.between(1_500, 2_500) == [(2_000, 9_999.5)]
    marks.record(4_000, 10_004.0, keep_from_ms=2_000)   # older rows go with the write
    assert [t for t, _ in marks.between(0, 10_000)] == [2_000, 3_000, 4_000]
    assert marks.discard_after(3_000) == 1 and marks.count() == 2
    with pytest.raises(KnowledgeError, match="equity=nan is invalid"):
        marks.record(5_000, float("nan"))
    s.close()
    reopened = KnowledgeStore(tmp_path / "m.db", default_weights=W)     # they survive a restart
    assert reopened.equity_marks.between(0, 10_000) == [(2_000, 9_999.5), (3_000, 13_000.0)]
    reopened.close()


def test_closed_between_lists_closes_by_close_time(store):
    for i, (opened, closed) in enumerate(((1_000, 9_000), (2_000, 5_000), (3_000, None))):
        tid = open_one(store, cid=f"e{i}", t=opened)
        if closed is not None:
            store.record_exit(tid, client_order_id=f"x{i}", time_ms=closed, kind="stop", price=98.0,
                              quantity=1.0, pnl=-2.0, fee=0.05)
            store.close_trade(tid, closed_ms=closed, exit_reason="stop", reward={}, summary_zh="", summary_en="")
    rows = store.closed_between(0, 10_000)
    assert [(r["id"], r["closed_ms"], r["exit_reason"]) for r in rows] == [(2, 5_000, "stop"), (1, 9_000, "stop")]
    assert rows[0]["net_pnl"] == pytest.approx(-2.1) and rows[0]["symbol"] == "BTCUSDT"
    assert [r["id"] for r in store.closed_between(6_000, 10_000)] == [1]


def test_a_version_2_file_with_trades_opens_and_its_trades_stay_the_agents(tmp_path):
    """Migration 3 (funding, source, trade_additions) on a file an older version wrote: its
    open and closed trades read back as the agent's with no funding, and still close/learn."""
    from rl.db import connect, migrate
    from rl.knowledge.schema import COMPONENT, MIGRATIONS

    conn = connect(tmp_path / "v2.db")
    migrate(conn, COMPONENT, MIGRATIONS[:2])
    conn.execute("INSERT INTO trades(symbol, side, status, entry_client_order_id, opened_ms, closed_ms,"
                 " entry_price, quantity, remaining_qty, stop_price, initial_stop, leverage, risk_amount,"
                 " entry_fee, exit_price, realized_pnl, fees, net_pnl, r_multiple, exit_reason)"
                 " VALUES('BTCUSDT','LONG','closed','old-1',1,2,100,1,0,98,98,10,2,0.05,102,2,0.1,1.9,0.95,'target')")
    conn.execute("INSERT INTO trades(symbol, side, status, entry_client_order_id, opened_ms, entry_price,"
                 " quantity, remaining_qty, stop_price, initial_stop, leverage, risk_amount)"
                 " VALUES('BTCUSDT','LONG','open','old-2',3,100,1,1,98,98,10,2)")
    conn.close()
    s = KnowledgeStore(tmp_path / "v2.db", default_weights=W)
    assert s.schema_version == len(MIGRATIONS) == 5
    old = s.trade(1)
    assert (old["source"], old["funding"], old["net_pnl"], old["additions"]) == ("agent", 0.0, 1.9, [])
    assert s.get_trade_count() == 1 and len(s.closed_samples()) == 1
    s.record_exit(2, client_order_id="x2", time_ms=4, kind="stop", price=98, quantity=1, pnl=-2, fee=0.05)
    closed = s.close_trade(2, closed_ms=4, exit_reason="stop", reward={}, summary_zh="", summary_en="",
                           funding=-0.3)
    assert closed["funding"] == -0.3 and closed["net_pnl"] == pytest.approx(-2 - 0.05 - 0.3)
    assert closed["r_multiple"] == pytest.approx(closed["net_pnl"] / 2)
    assert s.get_trade_count() == 2
    s.close()


def test_funding_is_part_of_a_trades_net_pnl_and_r(store):
    tid = open_one(store)
    store.record_exit(tid, client_order_id="x", time_ms=2000, kind="target", price=104, quantity=1, pnl=4.0,
                      fee=0.05)
    t = store.close_trade(tid, closed_ms=2000, exit_reason="target", reward={}, summary_zh="", summary_en="",
                          funding=-1.25)
    assert t["funding"] == -1.25 and t["net_pnl"] == pytest.approx(4.0 - 0.1 - 1.25)
    assert t["r_multiple"] == pytest.approx((4.0 - 0.1 - 1.25) / 2.0)
    assert store.thought_chain(tid)["reward"]["funding"] == -1.25
    assert store.trade_logger.summary()["funding"] == -1.25


def test_manual_and_mixed_trades_stay_out_of_the_learning_and_the_agents_statistics(store):
    store.set_state("initial_balance", 1000.0)
    agent = open_one(store, cid="a", feats={k: 0.9 for k in W})
    manual = store.open_trade(symbol="BTCUSDT", side="LONG", entry_client_order_id="man-1", opened_ms=1000,
                              entry_price=100.0, quantity=1.0, stop_price=None, target_price=None, leverage=10,
                              features={}, perception={}, action={}, source="manual")
    mixed = open_one(store, cid="m", feats={k: 0.1 for k in W})
    assert store.record_addition(mixed, client_order_id="man-2", time_ms=1500, price=102.0, quantity=1.0, fee=0.1)
    assert not store.record_addition(mixed, client_order_id="man-2", time_ms=1500, price=102.0, quantity=1.0,
                                     fee=0.1)                                   # idempotent
    m = store.trade(mixed)
    assert (m["source"], m["quantity"], m["remaining_qty"], m["entry_price"]) == ("mixed", 2.0, 2.0, 101.0)
    assert m["entry_fee"] == pytest.approx(0.15) and [a["client_order_id"] for a in m["additions"]] == ["man-2"]
    with pytest.raises(KnowledgeError, match="source"):
        store.open_trade(symbol="BTCUSDT", side="LONG", entry_client_order_id="bad", opened_ms=1, entry_price=1.0,
                         quantity=1.0, stop_price=None, target_price=None, leverage=1, features={}, perception={},
                         action={}, source="user")
    for tid, qty, pnl, at in ((agent, 1, 2.0, 3001), (mixed, 2, 3.0, 3002), (manual, 1, -5.0, 3009)):
        store.record_exit(tid, client_order_id=f"x{tid}", time_ms=at, kind="manual", price=100.0, quantity=qty,
                          pnl=pnl, fee=0.0)
        store.close_trade(tid, closed_ms=at, exit_reason="manual", reward={}, summary_zh="", summary_en="")
    assert store.get_trade_count() == 1
    assert [f["volume_density"] for f, _ in store.closed_samples()] == [0.9]   # the agent's only
    s = store.trade_logger.summary()
    assert s["trades"] == 1 and s["net_pnl"] == pytest.approx(2.0 - 0.05)
    assert s["manual"] == {"trades": 2, "net_pnl": pytest.approx(-5.0 + 3.0 - 0.15)}
    assert store.trade_logger.equity_curve()[-1]["equity"] == pytest.approx(1000 + 1.95 - 5.0 + 2.85)
    assert store.last_closed_ms("BTCUSDT") == 3002                  # a manual close starts no cooldown


def test_a_version_2_file_upgrades_to_unreconciled_and_keeps_every_child_row(tmp_path):
    """Migration 3 widens trades.status by 'unreconciled' in place: a trade's features, exits
    and thought chain survive (a table rebuild would cascade-delete them), and the file still
    refuses a status outside the list."""
    from rl.db import connect, migrate
    from rl.knowledge.schema import COMPONENT, MIGRATIONS

    conn = connect(tmp_path / "v2.db")                   # as the version before this one left it
    migrate(conn, COMPONENT, MIGRATIONS[:2])
    conn.execute("INSERT INTO trades(id, symbol, side, status, entry_client_order_id, opened_ms, entry_price,"
                 " quantity, remaining_qty, leverage, risk_amount) VALUES(1,'BTCUSDT','LONG','open','e1',1000,"
                 " 100.0, 1.0, 0.5, 10, 2.0)")
    conn.execute("INSERT INTO trade_features VALUES(1, 'touches', 0.5)")
    conn.execute("INSERT INTO trade_exits(trade_id, client_order_id, time_ms, kind, price, quantity, pnl, fee)"
                 " VALUES(1, 'BTCUSDT:7', 2000, 'partial', 103.0, 0.5, 1.5, 0.01)")
    conn.execute("INSERT INTO thought_chains(trade_id, perception_json, action_json) VALUES(1, '{}', '{}')")
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("UPDATE trades SET status='unreconciled' WHERE id=1")
    conn.close()
    s = KnowledgeStore(tmp_path / "v2.db", default_weights=W)
    assert s.schema_version == len(MIGRATIONS)
    assert s.mark_unreconciled(1, time_ms=3000) and not s.mark_unreconciled(1, time_ms=4000)
    t = s.trade(1)
    assert (t["status"], t["closed_ms"], t["features"]) == ("unreconciled", 3000, {"touches": 0.5})
    assert len(t["exits"]) == 1 and t["thought_chain"] is not None
    assert [x["id"] for x in s.unreconciled_trades("BTCUSDT")] == [1] and s.open_trades() == []
    assert s.trades(status="unreconciled")[0]["id"] == 1
    assert s.get_trade_count() == 0 and s.closed_samples() == []     # out of the learning
    assert s.integrity_check() == "ok"
    s.close()
    raw = sqlite3.connect(tmp_path / "v2.db")               # another connection reads the new CHECK
    with pytest.raises(sqlite3.IntegrityError):
        raw.execute("UPDATE trades SET status='lost' WHERE id=1")
    raw.close()


def test_the_trade_filter_state_is_written_with_the_close_or_not_at_all(tmp_path):
    """Migration 5 (trade_filter) on a version-4 file; the state goes in the close's
    transaction: a close that fails leaves the old state, a close that commits the new one."""
    from rl.db import connect, migrate
    from rl.knowledge.schema import COMPONENT, MIGRATIONS

    conn = connect(tmp_path / "v4.db")
    migrate(conn, COMPONENT, MIGRATIONS[:4])
    conn.close()
    s = KnowledgeStore(tmp_path / "v4.db", default_weights=W)
    assert s.schema_version == len(MIGRATIONS) and s.filter_state() is None
    s.set_filter_state({"learned": 0}, 1)
    tid = open_one(s)
    s.record_exit(tid, client_order_id="x1", time_ms=2, kind="stop", price=98, quantity=1, pnl=-2, fee=0.05)
    with pytest.raises(RuntimeError):
        with s.batch():
            s.close_trade(tid, closed_ms=3, exit_reason="stop", reward={}, summary_zh="", summary_en="",
                          filter_state={"learned": 1})
            raise RuntimeError("killed before the commit")
    assert s.filter_state() == {"learned": 0} and s.trade(tid)["status"] == "open"
    s.close_trade(tid, closed_ms=3, exit_reason="stop", reward={}, summary_zh="", summary_en="",
                  filter_state={"learned": 1})
    s.close()
    again = KnowledgeStore(tmp_path / "v4.db", default_weights=W)
    assert again.filter_state() == {"learned": 1} and again.trade(tid)["status"] == "closed"
    again.close()
