"""The knowledge store: SQLite as the single source of truth for what the agent did and learned.

Trades, orders, thought chains, feature values at entry, weight history, agent state and the
decision log live here, in one file, with numbered migrations (component "knowledge") and one
transaction per logical write. That is what lets the agent be SIGKILLed at any instant and
resume: a trade is either fully recorded (row + features + thought chain + linked orders) or not
at all, and every write that could be repeated after a crash is idempotent (keyed by the
exchange client order id), so a restart never duplicates a trade or an exit.

Thread model: one connection guarded by one RLock (rl.knowledge.database), shared by the store
and its repositories. The agent thread writes; the dashboard threads read through the same
lock, so they never see a half-written trade.
"""
from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from rl.knowledge.codec import Encoded, dumps, dumps_top
from rl.knowledge.database import KnowledgeDb
from rl.knowledge.decision_log import LOG_LIMIT, DecisionLog, checked_log_limit
from rl.knowledge.equity_marks import EquityMarks
from rl.knowledge.orders import OrderBook
from rl.knowledge.schema import SIDES, SOURCES, TRADE_STATUSES, KnowledgeError, finite
from rl.knowledge.stats import TradeLogger
from rl.strategy.learning import WeightUpdate, validate_weight_map


class TradeListener(Protocol):
    """Told of a trade's life as the store writes it (the backtest's --trace tees it to a file).

    Each call comes once the write has returned (inside a caller's batch, before that batch
    commits): `trade_opened` after every `open_trade` (a repeated fill reports the trade it
    already recorded), `exit_recorded` after a `record_exit` that recorded a new exit, and
    `trade_closed` after every `close_trade` with the trade as it returns it."""

    def trade_opened(self, trade_id: int, *, symbol: str, side: str, opened_ms: int,
                     entry_price: float, quantity: float, stop_price: float | None,
                     target_price: float | None, phase: str | None) -> None: ...

    def exit_recorded(self, trade_id: int, *, time_ms: int, kind: str, price: float,
                      quantity: float, pnl: float, fee: float) -> None: ...

    def trade_closed(self, trade: dict, *, closed_ms: int, exit_reason: str) -> None: ...


class KnowledgeStore:
    """SQLite store of trades, thought chains, weights and agent state, with its repositories
    over the same database: `orders` (the router's OrderRecorder), `decisions` (the decision
    log), `equity_marks` (the equity the risk protections observed) and `trade_logger` (the
    statistics).

    Trades, thought chains and weights stay here together: close_trade writes all three in
    one transaction and keeps their caches in step."""

    def __init__(self, path: str | Path, default_weights: Mapping[str, float] | None = None,
                 log_limit: int = LOG_LIMIT, trade_listener: TradeListener | None = None) -> None:
        log_limit = checked_log_limit(log_limit)      # before the file is created
        self.path = Path(path)
        self._db = KnowledgeDb(path)
        self.schema_version = self._db.schema_version
        self.orders = OrderBook(self._db)
        self.decisions = DecisionLog(self._db, log_limit)
        self.equity_marks = EquityMarks(self._db)
        self._listener = trade_listener
        self._default_weights = dict(default_weights) if default_weights else None
        self._weights_cache: dict[str, float] | None = None
        self._count_cache: int | None = None
        self._samples_cache: list[tuple[dict[str, float], float]] | None = None
        # trade id -> (perception, action, features) as open_trade wrote them in THIS process,
        # until the trade closes: the close reads them from here instead of decoding the
        # thought chain it just wrote (see entry_context)
        self._entry_cache: dict[int, tuple[dict, dict, dict[str, float]]] = {}
        # a failed write (of any repository) drops the caches, so they never show a value the
        # database does not hold
        self._db.on_rollback(self._drop_caches)
        self.trade_logger = TradeLogger(self._db, self)

    # ------------------------------------------------------------------ plumbing
    def close(self) -> None:
        self._db.close()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group many logical writes into one transaction (backtest: thousands of steps per
        commit). Nested writes join it; an exception rolls all of them back."""
        with self._db.transaction():
            yield

    def _drop_caches(self) -> None:
        self._weights_cache = None
        self._count_cache = None
        self._samples_cache = None
        self._entry_cache.clear()      # a rolled-back insert's id is handed out again

    def integrity_check(self) -> str:
        return self._db.integrity_check()

    # ------------------------------------------------------------------ trades
    def open_trade(self, *, symbol: str, side: str, entry_client_order_id: str, opened_ms: int,
                   entry_price: float, quantity: float, stop_price: float | None,
                   target_price: float | None, leverage: int, features: Mapping[str, float],
                   perception: Mapping[str, Any] | Encoded, action: Mapping[str, Any],
                   entry_fee: float = 0.0, phase: str | None = None,
                   long_score: float | None = None, short_score: float | None = None,
                   note: str = "", position: Mapping[str, Any] | None = None,
                   order_ids: Sequence[str] = (), source: str = "agent") -> int:
        """Record an opened trade with its features and the first half of its thought chain.
        `source`: "agent", or "manual" for a position a dashboard order opened (kept out of
        the learning and the agent's statistics; see schema migration 3).

        Idempotent by `entry_client_order_id`: recording the same fill twice (a restart after a
        crash) returns the existing trade id instead of creating a duplicate."""
        if side not in SIDES:
            raise KnowledgeError(f"side={side!r} is invalid: it must be one of {SIDES}")
        if source not in SOURCES:
            raise KnowledgeError(f"source={source!r} is invalid: it must be one of {SOURCES}")
        if not entry_client_order_id:
            raise KnowledgeError("entry_client_order_id must be set: it makes the write idempotent")
        ep = finite("entry_price", entry_price, positive=True)
        qty = finite("quantity", quantity, positive=True)
        sp = finite("stop_price", stop_price, allow_none=True)
        tp = finite("target_price", target_price, allow_none=True)
        fee = finite("entry_fee", entry_fee)
        if sp is not None and ((side == "LONG" and sp >= ep) or (side == "SHORT" and sp <= ep)):
            raise KnowledgeError(f"stop_price={sp} is invalid for a {side} entered at {ep}: "
                                 "it must be on the losing side of the entry")
        feats = {str(k): finite(f"features[{k!r}]", v) for k, v in features.items()}
        risk = abs(ep - sp) * qty if sp is not None else 0.0
        with self._db.transaction() as conn:
            row = conn.execute("SELECT id FROM trades WHERE entry_client_order_id=?",
                               (entry_client_order_id,)).fetchone()
            if row:
                tid = int(row[0])
            else:
                cur = conn.execute(
                    "INSERT INTO trades(symbol, side, status, entry_client_order_id, opened_ms, entry_price,"
                    " quantity, remaining_qty, stop_price, target_price, initial_stop, leverage, risk_amount,"
                    " entry_fee, phase, long_score, short_score, note, position_json, source)"
                    " VALUES(?,?, 'open', ?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (symbol, side, entry_client_order_id, int(opened_ms), ep, qty, qty, sp, tp, sp,
                     int(leverage), risk, fee, phase, long_score, short_score, note,
                     dumps(dict(position or {})), source))
                assert cur.lastrowid is not None   # an INSERT sets it (a cursor has None before one)
                tid = cur.lastrowid
                conn.executemany("INSERT INTO trade_features(trade_id, feature, value) VALUES(?,?,?)",
                                 [(tid, k, v) for k, v in feats.items()])
                if type(perception) is Encoded:
                    perception_json = perception.json
                    perception = perception.value
                else:
                    perception = dict(perception)
                    perception_json = dumps(perception)
                action = dict(action)
                conn.execute(
                    "INSERT INTO thought_chains(trade_id, perception_json, action_json) VALUES(?,?,?)",
                    (tid, perception_json, dumps(action)))
                self.orders.link(tid, [entry_client_order_id, *order_ids])
                self._entry_cache[tid] = (perception, action, feats)
        if self._listener is not None:
            self._listener.trade_opened(tid, symbol=symbol, side=side, opened_ms=int(opened_ms),
                                        entry_price=ep, quantity=qty, stop_price=sp, target_price=tp,
                                        phase=phase)
        return tid

    def update_trade(self, trade_id: int, *, stop_price: float | None = None,
                     target_price: float | None = None, position: Mapping[str, Any] | None = None,
                     note: str | None = None) -> None:
        """Move the stop/target or save the position state (break-even, trailing, partials)."""
        sets: list[str] = []
        params: list[Any] = []
        if stop_price is not None:
            sets.append("stop_price=?")
            params.append(finite("stop_price", stop_price, positive=True))
        if target_price is not None:
            sets.append("target_price=?")
            params.append(finite("target_price", target_price, positive=True))
        if position is not None:
            sets.append("position_json=?")
            params.append(dumps(dict(position)))
        if note is not None:
            sets.append("note=?")
            params.append(note)
        if not sets:
            return
        with self._db.transaction() as conn:
            conn.execute(f"UPDATE trades SET {', '.join(sets)} WHERE id=?", (*params, int(trade_id)))

    def record_addition(self, trade_id: int, *, client_order_id: str, time_ms: int, price: float,
                        quantity: float, fee: float, position: Mapping[str, Any] | None = None) -> bool:
        """A manual order added `quantity` at `price` to the open trade's position (one net
        position on the exchange): the trade's size, remaining size, average entry and entry
        fee take it in, the order is linked, and an agent trade becomes "mixed" (out of the
        learning: its outcome is no longer the agent's decision alone). Idempotent by the
        order's `client_order_id` (False when it was already taken in)."""
        p = finite("price", price, positive=True)
        q = finite("quantity", quantity, positive=True)
        fee_v = finite("fee", fee)
        with self._db.transaction() as conn:
            t = conn.execute("SELECT * FROM trades WHERE id=?", (int(trade_id),)).fetchone()
            if t is None:
                raise KnowledgeError(f"trade_id={trade_id} is invalid: no such trade")
            if t["status"] != "open" or conn.execute(
                    "SELECT 1 FROM trade_additions WHERE client_order_id=?", (client_order_id,)).fetchone():
                return False
            old_q = float(t["quantity"])
            entry = (float(t["entry_price"]) * old_q + p * q) / (old_q + q)
            conn.execute("UPDATE trades SET quantity=?, remaining_qty=remaining_qty+?, entry_price=?,"
                         " entry_fee=entry_fee+?, source=CASE source WHEN 'agent' THEN 'mixed' ELSE source END"
                         " WHERE id=?", (old_q + q, q, entry, fee_v, int(trade_id)))
            conn.execute("INSERT INTO trade_additions(trade_id, client_order_id, time_ms, price, quantity, fee)"
                         " VALUES(?,?,?,?,?,?)", (int(trade_id), client_order_id, int(time_ms), p, q, fee_v))
            if position is not None:
                conn.execute("UPDATE trades SET position_json=? WHERE id=?", (dumps(dict(position)), int(trade_id)))
            self.orders.link(int(trade_id), [client_order_id])
        return True

    def add_fee(self, trade_id: int, fee: float, *, order_key: str,
                position: Mapping[str, Any] | None = None) -> None:
        """A commission found after its order filled (its fills could not be read then): added
        to the exit recorded under `order_key`, else to the entry fee; on a closed trade its
        fees, net PnL and R follow (its reward and the learning it caused stay as they were).
        With `position`, the position state is saved in the same transaction (the state that
        no longer owes this fee: a restart never adds it twice)."""
        fee_v = finite("fee", fee)
        with self._db.transaction() as conn:
            t = conn.execute("SELECT * FROM trades WHERE id=?", (int(trade_id),)).fetchone()
            if t is None:
                raise KnowledgeError(f"trade_id={trade_id} is invalid: no such trade")
            cur = conn.execute("UPDATE trade_exits SET fee=fee+? WHERE trade_id=? AND client_order_id=?",
                               (fee_v, int(trade_id), order_key))
            if cur.rowcount == 0:
                conn.execute("UPDATE trades SET entry_fee=entry_fee+? WHERE id=?", (fee_v, int(trade_id)))
            if t["status"] == "closed":
                risk = float(t["risk_amount"])
                net = float(t["net_pnl"] or 0.0) - fee_v
                conn.execute("UPDATE trades SET fees=fees+?, net_pnl=?, r_multiple=? WHERE id=?",
                             (fee_v, net, net / risk if risk > 0 else 0.0, int(trade_id)))
                self._samples_cache = None          # its R changed
            if position is not None:
                conn.execute("UPDATE trades SET position_json=? WHERE id=?", (dumps(dict(position)), int(trade_id)))

    def mark_mixed(self, trade_id: int) -> None:
        """A manual order changed this agent trade (sold part of it): it leaves the learning."""
        with self._db.transaction() as conn:
            conn.execute("UPDATE trades SET source='mixed' WHERE id=? AND source='agent'", (int(trade_id),))

    def record_exit(self, trade_id: int, *, client_order_id: str, time_ms: int, kind: str,
                    price: float, quantity: float, pnl: float, fee: float,
                    position: Mapping[str, Any] | None = None) -> bool:
        """Record one (partial) exit fill; returns False when it was already recorded."""
        p = finite("price", price, positive=True)
        q = finite("quantity", quantity, positive=True)
        with self._db.transaction() as conn:
            t = conn.execute("SELECT remaining_qty, status FROM trades WHERE id=?",
                             (int(trade_id),)).fetchone()
            if t is None:
                raise KnowledgeError(f"trade_id={trade_id} is invalid: no such trade")
            if conn.execute("SELECT 1 FROM trade_exits WHERE client_order_id=?",
                            (client_order_id,)).fetchone():
                return False
            pnl_v, fee_v = finite("pnl", pnl), finite("fee", fee)
            conn.execute(
                "INSERT INTO trade_exits(trade_id, client_order_id, time_ms, kind, price, quantity, pnl, fee)"
                " VALUES(?,?,?,?,?,?,?,?)",
                (int(trade_id), client_order_id, int(time_ms), kind, p, q, pnl_v, fee_v))
            remaining = max(0.0, float(t["remaining_qty"]) - q)
            conn.execute("UPDATE trades SET remaining_qty=? WHERE id=?", (remaining, int(trade_id)))
            if position is not None:
                conn.execute("UPDATE trades SET position_json=? WHERE id=?",
                             (dumps(dict(position)), int(trade_id)))
        if self._listener is not None:
            self._listener.exit_recorded(int(trade_id), time_ms=int(time_ms), kind=kind, price=p, quantity=q,
                                         pnl=pnl_v, fee=fee_v)
        return True

    def mark_unreconciled(self, trade_id: int, *, time_ms: int) -> bool:
        """The open trade's position is gone on the exchange and the fills that closed it
        were not found: status 'unreconciled' (out of the learning and the statistics, which
        read closed trades only; not restored as a position), `closed_ms` = when it was seen
        gone (its closing fills lie before it). Returns False if the trade was not open.
        close_trade closes it once its fills are recorded."""
        with self._db.transaction() as conn:
            cur = conn.execute("UPDATE trades SET status='unreconciled', closed_ms=?, exit_reason='unreconciled'"
                               " WHERE id=? AND status='open'", (int(time_ms), int(trade_id)))
            return cur.rowcount == 1

    def unreconciled_trades(self, symbol: str | None = None) -> list[dict]:
        """The trades whose exit fills are still missing (see mark_unreconciled), oldest first."""
        sql = "SELECT * FROM trades WHERE status='unreconciled'" + (" AND symbol=?" if symbol else "") + " ORDER BY id"
        return [self._trade_dict(r) for r in self._db.query(sql, (symbol,) if symbol else ())]

    def close_trade(self, trade_id: int, *, closed_ms: int, exit_reason: str,
                    reward: Mapping[str, Any], summary_zh: str, summary_en: str,
                    weight_update: WeightUpdate | None = None, funding: float = 0.0,
                    filter_state: Mapping[str, Any] | None = None) -> dict:
        """Close a trade in ONE transaction: totals from its exits, the reward and summary of its
        thought chain, (when learning ran) the new weights with their evidence, and (when the
        trade filter learned from it) the filter's new state. `funding`:
        what the position received (> 0) or paid (< 0) in funding while open; it is part of
        the net PnL (net = realized - fees + funding), so the closed trades add up to the
        wallet's change.

        Returns the closed trade. Closing an already closed trade changes nothing (idempotent)."""
        with self._db.transaction() as conn:
            t = conn.execute("SELECT * FROM trades WHERE id=?", (int(trade_id),)).fetchone()
            if t is None:
                raise KnowledgeError(f"trade_id={trade_id} is invalid: no such trade")
            if t["status"] != "closed":
                self._write_close(conn, t, closed_ms=int(closed_ms), exit_reason=exit_reason,
                                  reward=reward, summary_zh=summary_zh, summary_en=summary_en,
                                  weight_update=weight_update, funding=finite("funding", funding))
                if filter_state is not None:
                    self._write_filter_state(conn, filter_state, int(closed_ms))
                t = conn.execute("SELECT * FROM trades WHERE id=?", (int(trade_id),)).fetchone()
            closed = self._trade_dict(t)
        if self._listener is not None:
            self._listener.trade_closed(closed, closed_ms=int(closed_ms), exit_reason=exit_reason)
        return closed

    def _write_close(self, conn: sqlite3.Connection, t: sqlite3.Row, *, closed_ms: int, exit_reason: str,
                     reward: Mapping[str, Any], summary_zh: str, summary_en: str,
                     weight_update: WeightUpdate | None, funding: float = 0.0) -> None:
        """close_trade's writes for the open trade `t`, inside its transaction."""
        trade_id = int(t["id"])
        totals = self._exit_totals(trade_id)
        fees = float(t["entry_fee"]) + totals["fee"]
        net = totals["pnl"] - fees + funding
        risk = float(t["risk_amount"])
        r_mult = net / risk if risk > 0 else 0.0
        conn.execute(
            "UPDATE trades SET status='closed', closed_ms=?, exit_price=?, realized_pnl=?, fees=?,"
            " funding=?, net_pnl=?, r_multiple=?, exit_reason=?, remaining_qty=0 WHERE id=?",
            (closed_ms, totals["avg_price"], totals["pnl"], fees, funding, net, r_mult, exit_reason, trade_id))
        full_reward = {**dict(reward), "realized_pnl": totals["pnl"], "fees": fees,
                       "net_pnl": net, "r_multiple": r_mult, "exit_reason": exit_reason,
                       "exit_price": totals["avg_price"], "exits": totals["exits"]}
        if funding:
            full_reward["funding"] = funding
        if weight_update is not None:
            full_reward["weight_change"] = weight_update.to_dict()
            if weight_update.applied:
                self._write_weights(weight_update.new, closed_ms, weight_update.reason_zh,
                                    weight_update.reason_en,
                                    {k: v.to_dict() for k, v in weight_update.evidence.items()},
                                    weight_update.trade_count, trade_id)
        conn.execute(
            "UPDATE thought_chains SET reward_json=?, summary_zh=?, summary_en=? WHERE trade_id=?",
            (dumps(full_reward), summary_zh, summary_en, trade_id))
        self._count_cache = None
        self._entry_cache.pop(trade_id, None)
        if self._samples_cache is not None and t["source"] == "agent":
            feats = {r["feature"]: float(r["value"]) for r in conn.execute(
                "SELECT feature, value FROM trade_features WHERE trade_id=?", (trade_id,))}
            self._samples_cache.append((feats, r_mult))

    def entry_context(self, trade_id: int) -> tuple[dict, dict, dict[str, float]] | None:
        """(perception, action, features) of an open trade that `open_trade` recorded in this
        process, as it wrote them; None otherwise (read `thought_chain`/`features` then).

        The agent's perceptions and actions are plain JSON data (rl.knowledge.thought cleans them), so
        these hold the values `thought_chain` would decode, and the features the values
        `features` would read (its key order may differ). Closing a trade needs them once;
        this spares decoding the perception it wrote minutes ago. Treat them as read-only."""
        with self._db.lock:
            return self._entry_cache.get(int(trade_id))

    def exit_totals(self, trade_id: int) -> dict:
        with self._db.lock:
            return self._exit_totals(int(trade_id))

    def _exit_totals(self, trade_id: int) -> dict:
        rows = self._db.conn.execute("SELECT * FROM trade_exits WHERE trade_id=? ORDER BY id",
                                     (trade_id,)).fetchall()
        qty = sum(float(r["quantity"]) for r in rows)
        return {"pnl": sum(float(r["pnl"]) for r in rows), "fee": sum(float(r["fee"]) for r in rows),
                "quantity": qty,
                "avg_price": (sum(float(r["price"]) * float(r["quantity"]) for r in rows) / qty) if qty else None,
                "exits": [{k: r[k] for k in ("time_ms", "kind", "price", "quantity", "pnl", "fee",
                                             "client_order_id")} for r in rows]}

    def trade(self, trade_id: int) -> dict | None:
        """One trade with its features, exits, orders and thought chain (what the dashboard shows)."""
        rows = self._db.query("SELECT * FROM trades WHERE id=?", (int(trade_id),))
        if not rows:
            return None
        d = self._trade_dict(rows[0])
        d["features"] = self.features(int(trade_id))
        d["exits"] = self.exit_totals(int(trade_id))["exits"]
        d["additions"] = [dict(r) for r in self._db.query(
            "SELECT time_ms, price, quantity, fee, client_order_id FROM trade_additions WHERE trade_id=?"
            " ORDER BY id", (int(trade_id),))]
        d["orders"] = self.orders.for_trade(int(trade_id))
        d["thought_chain"] = self.thought_chain(int(trade_id))
        return d

    def trade_row(self, trade_id: int, with_position: bool = True) -> dict | None:
        """The trade's own row only (as trade() has it, without features, exits, orders or the
        thought chain): what the agent's reconcile and close paths read, without decoding the
        rest on every exit. with_position=False also leaves out the saved position (its JSON,
        tens of KB for a long trailing trade, is what those paths never read)."""
        rows = self._db.query("SELECT * FROM trades WHERE id=?", (int(trade_id),))
        if not rows:
            return None
        if with_position:
            return self._trade_dict(rows[0])
        d = dict(rows[0])
        del d["position_json"]
        return d

    def trades(self, limit: int = 100, status: str | None = None) -> list[dict]:
        """Newest first."""
        if status is not None and status not in TRADE_STATUSES:
            raise KnowledgeError(f"status={status!r} is invalid: it must be one of {', '.join(TRADE_STATUSES)}")
        sql = "SELECT * FROM trades" + (" WHERE status=?" if status else "") + " ORDER BY id DESC LIMIT ?"
        params = ((status,) if status else ()) + (max(0, int(limit)),)
        return [self._trade_dict(r) for r in self._db.query(sql, params)]

    def open_trades(self, symbol: str | None = None) -> list[dict]:
        sql = "SELECT * FROM trades WHERE status='open'" + (" AND symbol=?" if symbol else "") + " ORDER BY id"
        return [self._trade_dict(r) for r in self._db.query(sql, (symbol,) if symbol else ())]

    def last_closed_ms(self, symbol: str) -> int | None:
        """When the newest closed trade of `symbol` the agent took part in closed (the re-entry
        cooldown starts there; a manual trade's close starts none)."""
        rows = self._db.query("SELECT MAX(closed_ms) FROM trades WHERE symbol=? AND status='closed'"
                              " AND source!='manual'", (symbol,))
        return int(rows[0][0]) if rows and rows[0][0] is not None else None

    def closed_between(self, from_ms: int, to_ms: int) -> list[dict]:
        """The closed trades with from_ms <= closed_ms <= to_ms, oldest close first: id,
        symbol, closed_ms, exit_reason and net_pnl only (what the risk protections read)."""
        rows = self._db.query("SELECT id, symbol, closed_ms, exit_reason, net_pnl FROM trades"
                              " WHERE status='closed' AND closed_ms>=? AND closed_ms<=?"
                              " ORDER BY closed_ms, id", (int(from_ms), int(to_ms)))
        return [dict(r) for r in rows]

    def trade_after(self, symbol: str, trade_id: int) -> dict | None:
        """The row of `symbol`'s first trade recorded after trade `trade_id` (None: the latest)."""
        rows = self._db.query("SELECT * FROM trades WHERE symbol=? AND id>? ORDER BY id LIMIT 1",
                              (symbol, int(trade_id)))
        return self._trade_dict(rows[0]) if rows else None

    def open_trade_for(self, symbol: str) -> dict | None:
        rows = self.open_trades(symbol)
        return rows[-1] if rows else None

    def features(self, trade_id: int) -> dict[str, float]:
        return {r["feature"]: float(r["value"]) for r in
                self._db.query("SELECT feature, value FROM trade_features WHERE trade_id=?", (int(trade_id),))}

    @staticmethod
    def _trade_dict(r: sqlite3.Row) -> dict:
        d = dict(r)
        d["position"] = json.loads(d.pop("position_json") or "{}")
        return d

    def closed_samples(self) -> list[tuple[dict[str, float], float]]:
        """(feature values at entry, R multiple) for every closed trade of the agent's own
        (source 'agent': a manual or mixed trade says nothing about the agent's choices): the
        learner's input.

        Cached between closes (the learner asks after every close; re-reading every trade
        each time would make a long backtest quadratic)."""
        with self._db.lock:
            if self._samples_cache is None:
                self._samples_cache = self._read_samples()
            return [(dict(f), r) for f, r in self._samples_cache]

    def _read_samples(self) -> list[tuple[dict[str, float], float]]:
        rows = self._db.query(
            "SELECT t.id, t.r_multiple, f.feature, f.value FROM trades t"
            " LEFT JOIN trade_features f ON f.trade_id=t.id WHERE t.status='closed' AND t.source='agent'"
            " ORDER BY t.id")
        by_id: dict[int, tuple[dict[str, float], float]] = {}
        for r in rows:
            feats, _ = by_id.setdefault(int(r["id"]), ({}, float(r["r_multiple"] or 0.0)))
            if r["feature"] is not None:
                feats[r["feature"]] = float(r["value"])
        return list(by_id.values())

    # ------------------------------------------------------------------ thought chains
    def thought_chain(self, trade_id: int) -> dict | None:
        rows = self._db.query("SELECT * FROM thought_chains WHERE trade_id=?", (int(trade_id),))
        if not rows:
            return None
        r = rows[0]
        return {"trade_id": int(r["trade_id"]), "perception": json.loads(r["perception_json"]),
                "action": json.loads(r["action_json"]),
                "reward": json.loads(r["reward_json"]) if r["reward_json"] else None,
                "summary_zh": r["summary_zh"], "summary_en": r["summary_en"]}

    # ------------------------------------------------------------------ weights
    @property
    def default_weights(self) -> dict[str, float] | None:
        """The weights used until the history has a row (None: the caller must set them)."""
        return dict(self._default_weights) if self._default_weights is not None else None

    @default_weights.setter
    def default_weights(self, weights: Mapping[str, float]) -> None:
        self._default_weights = dict(weights) if weights else None

    def current_weights(self) -> dict[str, float]:
        """The newest weights (what the level finder uses next cycle); survives restarts."""
        with self._db.lock:
            if self._weights_cache is None:
                row = self._db.conn.execute("SELECT weights_json FROM weight_history ORDER BY id DESC LIMIT 1"
                                            ).fetchone()
                if row is not None:
                    self._weights_cache = json.loads(row[0])
                elif self._default_weights is not None:
                    self._weights_cache = dict(self._default_weights)
                else:
                    raise KnowledgeError("no weights stored and no default_weights given to KnowledgeStore")
            return dict(self._weights_cache)

    def set_weights(self, weights: Mapping[str, float], time_ms: int, reason_zh: str, reason_en: str,
                    evidence: Mapping[str, Any] | None = None, trade_id: int | None = None) -> None:
        w = validate_weight_map(weights)
        with self._db.transaction():
            self._write_weights(w, int(time_ms), reason_zh, reason_en, dict(evidence or {}),
                                self.get_trade_count(), trade_id)

    def ensure_initial_weights(self, time_ms: int) -> dict[str, float]:
        """Write the default weights as history row 1 if none exists, so the history has a start."""
        with self._db.transaction() as conn:
            if conn.execute("SELECT 1 FROM weight_history LIMIT 1").fetchone() is None:
                if self._default_weights is None:
                    raise KnowledgeError("no weights stored and no default_weights given to KnowledgeStore")
                self._write_weights(validate_weight_map(self._default_weights), int(time_ms),
                                    "初始权重（设计默认值）", "initial weights (design defaults)", {}, 0, None)
        return self.current_weights()

    def _write_weights(self, weights: Mapping[str, float], time_ms: int, reason_zh: str, reason_en: str,
                       evidence: Mapping[str, Any], trade_count: int, trade_id: int | None) -> None:
        self._db.conn.execute(
            "INSERT INTO weight_history(time_ms, trade_id, trade_count, weights_json, reason_zh, reason_en,"
            " evidence_json) VALUES(?,?,?,?,?,?,?)",
            (time_ms, trade_id, trade_count, dumps(dict(weights)), reason_zh, reason_en, dumps(evidence)))
        self._weights_cache = dict(weights)

    def weight_history(self, limit: int = 1000) -> list[dict]:
        """Oldest first: [{time_ms, weights, reason_zh, reason_en, reason, evidence, trade_count}]."""
        rows = self._db.query("SELECT * FROM (SELECT * FROM weight_history ORDER BY id DESC LIMIT ?)"
                              " ORDER BY id", (max(0, int(limit)),))
        return [{"id": r["id"], "time_ms": r["time_ms"], "trade_id": r["trade_id"],
                 "trade_count": r["trade_count"], "weights": json.loads(r["weights_json"]),
                 "reason": r["reason_en"], "reason_zh": r["reason_zh"], "reason_en": r["reason_en"],
                 "evidence": json.loads(r["evidence_json"])} for r in rows]

    # ------------------------------------------------------------------ trade filter
    def filter_state(self) -> dict | None:
        """The learned trade filter's newest state (None before it learned or counted anything)."""
        rows = self._db.query("SELECT state_json FROM trade_filter WHERE id=1")
        return json.loads(rows[0][0]) if rows else None

    def set_filter_state(self, state: Mapping[str, Any], time_ms: int) -> None:
        """Store the filter's state outside a close (its decision counts)."""
        with self._db.transaction() as conn:
            self._write_filter_state(conn, state, int(time_ms))

    @staticmethod
    def _write_filter_state(conn: sqlite3.Connection, state: Mapping[str, Any], time_ms: int) -> None:
        conn.execute("INSERT INTO trade_filter(id, state_json, updated_ms) VALUES(1,?,?)"
                     " ON CONFLICT(id) DO UPDATE SET state_json=excluded.state_json,"
                     " updated_ms=excluded.updated_ms", (dumps(dict(state)), time_ms))

    # ------------------------------------------------------------------ agent state
    def get_state(self, key: str, default: Any = None) -> Any:
        rows = self._db.query("SELECT value_json FROM agent_state WHERE key=?", (key,))
        return json.loads(rows[0][0]) if rows else default

    def set_state(self, key: str, value: Any, time_ms: int = 0) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO agent_state(key, value_json, updated_ms) VALUES(?,?,?)"
                " ON CONFLICT(key) DO UPDATE SET value_json=excluded.value_json, updated_ms=excluded.updated_ms",
                (key, dumps_top(value), int(time_ms)))

    def delete_state(self, key: str) -> None:
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM agent_state WHERE key=?", (key,))

    def last_event_ms(self) -> int | None:
        """The latest world time anything in this store carries (trades, exits, orders, the
        decision log, equity marks, weights), None for an empty store: a replay resumed on
        this store must not start before it (web.world)."""
        rows = self._db.query(
            "SELECT MAX(t) FROM (SELECT MAX(opened_ms) t FROM trades UNION ALL SELECT MAX(closed_ms) FROM trades"
            " UNION ALL SELECT MAX(time_ms) FROM trade_exits UNION ALL SELECT MAX(time_ms) FROM orders"
            " UNION ALL SELECT MAX(time_ms) FROM decision_log UNION ALL SELECT MAX(time_ms) FROM equity_marks"
            " UNION ALL SELECT MAX(time_ms) FROM weight_history)")
        return int(rows[0][0]) if rows and rows[0][0] is not None else None

    # ------------------------------------------------------------------ statistics
    def get_trade_count(self) -> int:
        """Closed trades of the agent's own (source 'agent'): the number the phases and the
        learner count."""
        with self._db.lock:
            if self._count_cache is None:
                self._count_cache = int(self._db.conn.execute(
                    "SELECT COUNT(*) FROM trades WHERE status='closed' AND source='agent'").fetchone()[0])
            return self._count_cache

