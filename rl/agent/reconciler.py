"""Reconciler: how the agent's memory of its positions is brought back in line with the exchange.

The exchange is the truth about positions and stops; the knowledge store is the truth about
what the agent meant (trades, intents). This is the one place that repairs a disagreement
between them:
- `restore` (on startup): reload the open trade, adopt a newer live stop, rebuild a trade from
  an entry intent written just before a kill (or follow the maker entry it placed again), then
  sync;
- `sync` (every cycle, and on any bar where the position does not match memory): record exits
  the exchange made (stop fills), adopt an unknown position with a note, re-place a missing
  protective stop, close the record of a position the exchange no longer has - or, when its
  closing fills cannot be found, mark it 'unreconciled' (never a guessed exit price) and look
  for them again every cycle until they turn up;
- `record_exit`: record an exit the router just made, under the key the fill-based recovery
  uses;
- `settle_entry`: what an entry's outcome means for memory and the store (record the trade,
  or drop the intent), the same for an IOC fill and a maker entry that ended.
Every write is keyed by an exchange order id, so running any of this twice never counts an
exit twice (kill -9 safety, see tests/test_kill_resume.py).

The agent's memory of a symbol is a `PositionSlot`: `restore` and `sync` write the new state
into it as soon as the exchange's truth is known, before the store writes that follow, so a
write that fails is retried next cycle from the reconciled state instead of adopting the
position a second time.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from client import BinanceError
from rl.agent.journal import LogFn, TradeJournal, state_copy
from rl.agent.late_fees import LateFees
from rl.agent.manual_trades import ManualTrades
from rl.execution.actions import EXIT_KIND_EN, EXIT_KIND_ZH, exit_kind, honest_exit_kind, reason_zh_for
from rl.execution.port import ExchangePort
from rl.execution.position import PositionState
from rl.execution.router import CloseOutcome, EntryOutcome, OrderRouter, error_detail
from rl.knowledge.store import KnowledgeStore

EPS = 1e-12
# after a restart, an entry intent at most this old without a position is looked up again
# (its order may still show up); an older one is taken as never filled
RESTART_LOOKUP_MS = 10 * 60_000

Note = tuple[str, str]      # (Chinese, English): every reconcile note goes to the log in both
# how far before a trade's opening its closing fills may be stamped (a cycle catching up at most
# a day of 1m bars, see _record_exit_fills); only searched when order ids tell the trades apart
CATCH_UP_MS = 2 * 86_400_000


def _order_number(order_id: Any) -> int | None:
    try:
        return int(str(order_id))
    except ValueError:
        return None


class PositionSlot(Protocol):
    """Where the agent keeps what it believes it holds in one symbol."""

    state: PositionState | None         # the position it manages, None when flat
    pending: bool                       # an entry of unknown outcome awaits the next sync
    resting: bool                       # a maker entry rests on the book (router.poll_entry)


class Reconciler:
    """Restart and reconcile (see the module doc). Notes are (zh, en) pairs so the run log is
    one language per column. `publish(symbol)` shows readers the symbol's new state;
    `exchange_ok()` records that the exchange answered."""

    def __init__(self, exchange: ExchangePort, router: OrderRouter, store: KnowledgeStore,
                 journal: TradeJournal, *, leverage: int, log: LogFn,
                 publish: Callable[[str], None], exchange_ok: Callable[[], None]) -> None:
        self.exchange = exchange
        self.router = router
        self.store = store
        self.journal = journal
        self._leverage = leverage
        self._log = log
        self._publish = publish
        self._exchange_ok = exchange_ok
        # the dashboard's orders: trades of their own, or marked on the agent's (manual_trades.py)
        self.manual = ManualTrades(exchange, store, journal, leverage=leverage, log=log, publish=publish,
                                   record_exit_fills=self._record_exit_fills)
        # symbol -> whether the store holds unreconciled trades of it (absent: not read yet)
        self._unreconciled: dict[str, bool] = {}
        # fees that could not be read when their order filled (late_fees.py)
        self.fees = LateFees(exchange, store, log)

    # ------------------------------------------------------------------ start-up
    def restore(self, sym: str, slot: PositionSlot, now: int) -> list[Note]:
        """Bring `sym` back after a (re)start: the store's open trade (or a trade rebuilt from
        an entry intent) into `slot`, then a sync. Returns the notes (not logged)."""
        notes: list[Note] = []
        # (leverage and margin type: TradingAgent.startup verified them before, and set them
        # only on a flat symbol: rl/execution/account_mode.py)
        trade = self.store.open_trade_for(sym)
        state = None
        if trade is not None:
            trade = self.store.trade(trade["id"])
        if trade is not None:
            if trade["remaining_qty"] <= EPS:
                self.fees.park_owed(int(trade["id"]), sym, (trade.get("position") or {}).get("unpriced_fees") or {},
                                    int(trade["opened_ms"]), now)
                self.journal.finalize(trade["id"], now, trade["exits"][-1]["kind"] if trade["exits"] else "reconcile")
                notes.append((f"{sym}：交易 #{trade['id']} 在重启前已全部平仓：关闭其记录",
                              f"{sym}: trade #{trade['id']} was fully exited before the restart: closed its record"))
            else:
                state = self._state_from_trade(trade)
        if state is not None:
            self._adopt_live_stop(state, notes)
        intent = self.store.get_state(f"intent:{sym}")
        slot.resting = False
        if intent is not None:
            if state is None and (intent.get("entry") or {}).get("order") == "maker":
                notes += self._resume_maker_entry(sym, slot, intent, now)    # keeps or ends the intent
                state = slot.state
            else:
                pending = False
                if state is None:
                    state = self._recover_intent(sym, slot, intent, notes, now)
                    pending = self.router.has_pending(sym)
                if not pending:     # an entry still to be found out keeps its plan
                    self.store.delete_state(f"intent:{sym}")
        slot.state = state
        notes += self.sync(sym, slot, now, restart=True)
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

    def _adopt_live_stop(self, st: PositionState, notes: list[Note]) -> None:
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
        notes.append((f"{st.symbol}：交易所上的止损单 {best.trigger_price:g} 比保存的更新：采用它",
                      f"{st.symbol}: the live stop {best.trigger_price:g} is newer than the saved one: adopted it"))

    def _recover_intent(self, sym: str, slot: PositionSlot, intent: Mapping[str, Any],
                        notes: list[Note], now: int) -> PositionState | None:
        """Killed between an entry fill and its record: rebuild the trade from the intent.
        Killed while its outcome was unknown (or before the answer came): no position yet
        proves nothing (Binance may show the order late), so a recent entry is pending again,
        with its plan, and found out on the router's lookup schedule."""
        pos = self.exchange.position(sym)
        plan = intent.get("plan") or {}
        if pos is None or pos.amount == 0 or pos.side != intent.get("side"):
            entry = intent.get("entry") or {}
            sent = int(entry.get("placed_ms") or intent.get("time_ms") or 0)
            if plan.get("stop") and intent.get("side") in ("LONG", "SHORT") and now - sent < RESTART_LOOKUP_MS:
                cid = entry.get("client_order_id")
                self.router.resume_pending(sym, str(intent["side"]), str(cid) if cid else None,
                                           float(plan["stop"]), plan.get("target"), sent,
                                           entry_type=str(entry.get("order") or "ioc"),
                                           qty=float(plan.get("qty") or 0.0))
                slot.pending = True
                name = cid or "?"
                notes.append((f"{sym}：代理停止时入场单 {name} 的结果未知；交易所暂无对应持仓，保留交易计划继续查询",
                              f"{sym}: the entry {name} was of unknown outcome when the agent stopped; no "
                              f"position yet, so its plan is kept and it is looked up again"))
                return None
            notes.append((f"{sym}：代理停止时正在下入场单；交易所没有对应持仓，说明未成交",
                          f"{sym}: an entry was being placed when the agent stopped; the exchange has no "
                          f"matching position, so it never filled"))
            return None
        close_side = "SELL" if pos.amount > 0 else "BUY"
        stops = [s for s in self.exchange.open_stops(sym) if s.status == "NEW" and s.side == close_side]
        open_side = "BUY" if pos.amount > 0 else "SELL"
        fills = [f for f in self.exchange.fills_since(sym, int(intent.get("time_ms", 0)) - 60_000)
                 if f.side == open_side]
        entry_oid = str(fills[0].order_id) if fills else None
        known = self.store.orders.find(sym, entry_oid) if entry_oid else None
        cid = known["client_order_id"] if known else (f"{sym}:{entry_oid}" if entry_oid else None)
        fee = sum(f.commission for f in fills if str(f.order_id) == entry_oid)
        st = PositionState(symbol=sym, side=pos.side, entry_price=pos.entry_price, qty=abs(pos.amount),
                           initial_qty=abs(pos.amount), stop=float(plan["stop"]),
                           initial_stop=float(plan["stop"]), target=plan.get("target"),
                           opened_ms=min([f.time_ms for f in fills] or [int(intent.get("time_ms", 0))]),
                           fees=fee, entry_client_order_id=cid,
                           stop_client_algo_id=stops[0].client_algo_id if stops else None,
                           stop_algo_id=stops[0].algo_id if stops else None)
        if stops:
            st.stop = stops[0].trigger_price
        tid = self._record_open(sym, slot, st, intent, note="recovered after restart from the entry intent")
        notes.append((f"{sym}：代理停止前入场单刚刚成交：已记录交易 #{tid} 及其思维链",
                      f"{sym}: entry filled just before the agent stopped: recorded trade #{tid} "
                      f"with its thought chain"))
        return st

    def _resume_maker_entry(self, sym: str, slot: PositionSlot, intent: Mapping[str, Any],
                            now: int) -> list[Note]:
        """Killed while a maker entry rested: follow its order again. Whatever filled meanwhile
        is protected now; past its timeout the rest is cancelled; an entry that ended is
        settled as on any bar (its filled part recorded as the planned trade)."""
        entry, plan = intent["entry"], intent.get("plan") or {}
        cid = str(entry["client_order_id"])
        self.router.resume_entry(sym, str(intent["side"]), cid, float(plan["stop"]), plan.get("target"),
                                 entry.get("expires_ms"), placed_ms=int(entry.get("placed_ms") or 0))
        out = self.router.poll_entry(sym, now)
        if out is None:
            return []
        self.settle_entry(sym, slot, out, intent, now)
        if out.resting:
            return [(f"{sym}：重启前挂出的入场单 {cid} 仍在等待成交：继续跟踪（{out.reason_zh}）",
                     f"{sym}: the maker entry {cid} placed before the restart still rests: "
                     f"followed again ({out.reason})")]
        return [(f"{sym}：重启前挂出的入场单 {cid} 已结束：{out.reason_zh}",
                 f"{sym}: the maker entry {cid} placed before the restart has ended: {out.reason}")]

    def settle_entry(self, sym: str, slot: PositionSlot, out: EntryOutcome,
                     intent: Mapping[str, Any], now: int) -> None:
        """What an entry's outcome means for memory and the store, the same for an IOC entry,
        a maker entry that ended on a bar and one resumed after a restart: a position is
        recorded as the planned trade with the intent's thought chain; a fill that was closed
        at once is recorded too (sync then records its exit); nothing filled → the intent is
        dropped. Still resting or of unknown outcome → the intent stays (a restart finds it)."""
        slot.resting = out.resting
        if out.resting:
            return
        if out.state is None and out.order is not None and out.order.executed_qty > 0:
            plan = intent.get("plan") or {}
            order = out.order
            st = PositionState(symbol=sym, side="LONG" if order.side == "BUY" else "SHORT",
                               entry_price=order.avg_price, qty=order.executed_qty,
                               initial_qty=order.executed_qty, stop=plan["stop"],
                               initial_stop=plan["stop"], target=plan.get("target"),
                               opened_ms=order.update_time_ms,
                               entry_client_order_id=order.client_order_id)
            self._record_open(sym, slot, st, intent)
            self.sync(sym, slot, now)
            return
        if out.state is None:
            slot.pending = bool(out.pending)     # sync looks it up until it is resolved
            if out.pending:
                self._remember_pending(sym, intent, now)
            else:
                self.store.delete_state(f"intent:{sym}")
            return
        self._record_open(sym, slot, out.state, intent)

    def _remember_pending(self, sym: str, intent: Mapping[str, Any], now: int) -> None:
        """The entry's outcome is unknown: its client id goes into the intent, so that a
        restart looks the same order up (its plan stays with it) instead of calling it unfilled."""
        p = self.router.pending_entry(sym)
        if p is None or not p.client_order_id or not intent:
            return
        if (intent.get("entry") or {}).get("client_order_id") == p.client_order_id:
            return
        entry = {"order": p.entry_type, "client_order_id": p.client_order_id, "placed_ms": p.sent_ms,
                 "expires_ms": p.expires_ms, "outcome": "unknown"}
        self.store.set_state(f"intent:{sym}", {**intent, "entry": entry}, now)

    def _record_open(self, sym: str, slot: PositionSlot, st: PositionState, intent: Mapping[str, Any],
                     note: str = "") -> int:
        """The journal's record of a position it did not know of, remembered at once."""
        tid = self.journal.record_open(sym, st, intent, note)
        slot.state = st
        self._publish(sym)
        return tid

    # ------------------------------------------------------------------ exits
    def record_exit(self, st: PositionState, out: CloseOutcome, now: int) -> None:
        """Record an exit the router just made. Keyed by the exchange order id, the same key the
        fill-based recovery uses, so a crash in between can never count an exit twice."""
        if st.trade_id is None or out.order is None or out.qty <= 0:
            return
        kind = self._honest_kind(st.trade_id, exit_kind(out.reason), out.qty, out.realized_pnl, out.fees)
        self.store.record_exit(st.trade_id, client_order_id=f"{st.symbol}:{out.order.order_id}", time_ms=now,
                               kind=kind, price=out.exit_price or st.entry_price,
                               quantity=out.qty, pnl=out.realized_pnl, fee=out.fees,
                               position=state_copy(st) if st.qty > EPS else None)
        if st.qty > EPS:
            self._log("INFO", st.symbol, f"部分平仓 {out.qty:g} @ {out.exit_price:g}：{out.reason_zh or '分批止盈'}",
                      f"partial exit {out.qty:g} @ {out.exit_price:g}: {out.reason}", now)

    def _honest_kind(self, trade_id: int, kind: str, qty: float, pnl: float, fee: float) -> str:
        """The exit's stored kind: a take-profit slice that, after its exit fee and its share of
        the entry fee, lost money is stored as "target_loss", not as a win."""
        if kind not in ("target", "partial"):
            return kind
        t = self.store.trade_row(trade_id, with_position=False)
        size = float(t["quantity"]) if t is not None else 0.0
        entry_fee = float(t["entry_fee"]) * qty / size if t is not None and size > 0 else 0.0
        return honest_exit_kind(kind, pnl - fee - entry_fee)

    def _record_exit_fills(self, trade: Mapping[str, Any], kind_default: str,
                           until_ms: int | None = None) -> BinanceError | None:
        """Record every closing fill of this trade the store does not know yet (stop filled on
        the exchange, or an exit made just before a kill). Returns the error when the
        exchange's fill history could not be read, else None.

        Which fills are the trade's: by the exchange's order ids when its entry order's id is
        known (ids only grow, on Binance as on paper): the closing-side fills of orders after
        its entry and before the next trade's entry. Fill times cannot say it: a cycle that
        catches up several bars stamps its entry with the cycle's time but a stop that fired
        on one of those bars with the bar's, i.e. earlier. Without the ids: the closing-side
        fills from its opening to `until_ms` (when an unreconciled trade was seen gone)."""
        sym = trade["symbol"]
        close_side = "SELL" if trade["side"] == "LONG" else "BUY"
        sign = 1.0 if trade["side"] == "LONG" else -1.0
        first = self._entry_order_id(trade)
        nxt = self.store.trade_after(sym, int(trade["id"]))
        last = self._entry_order_id(nxt) if nxt is not None else None
        since = int(trade["opened_ms"]) - (CATCH_UP_MS if first is not None else 0)
        try:
            history = self.exchange.fills_since(sym, since)
        except BinanceError as exc:
            return exc
        groups: dict[str, list] = {}
        for f in history:
            if f.side != close_side:
                continue
            num = _order_number(f.order_id)
            if first is not None and num is not None:
                mine = num > first and (last is None or num < last)
            else:
                mine = f.time_ms >= int(trade["opened_ms"]) and (until_ms is None or f.time_ms <= until_ms)
            if mine:
                groups.setdefault(str(f.order_id), []).append(f)
        remaining = float(trade["remaining_qty"])
        for oid, fills in groups.items():
            if remaining <= EPS:
                break
            qty = min(sum(f.qty for f in fills), remaining)
            price = sum(f.price * f.qty for f in fills) / sum(f.qty for f in fills)
            known = self.store.orders.find(sym, oid)
            kind = kind_default
            if known is not None:
                kind = {"partial_exit": "partial", "manual": "manual",
                        "take_profit": "target"}.get(known["purpose"], kind_default)
            pnl = sum(f.realized_pnl for f in fills) or (price - trade["entry_price"]) * qty * sign
            kind = self._honest_kind(int(trade["id"]), kind, qty, pnl, self._fee_share(fills, qty))
            if self.store.record_exit(trade["id"], client_order_id=f"{sym}:{oid}",
                                      time_ms=max(f.time_ms for f in fills), kind=kind, price=price,
                                      quantity=qty, pnl=pnl, fee=self._fee_share(fills, qty)):
                remaining -= qty
        return None

    def _entry_order_id(self, trade: Mapping[str, Any]) -> int | None:
        """The exchange's (numeric) order id of the trade's entry, None when not known."""
        sym, cid = str(trade["symbol"]), str(trade["entry_client_order_id"])
        known = self.store.orders.get(cid)
        if known is not None and known.get("order_id"):
            return _order_number(known["order_id"])
        return _order_number(cid.removeprefix(f"{sym}:")) if cid.startswith(f"{sym}:") else None

    def _book_vanished(self, trade_id: int, sym: str, kind: str, now: int) -> Note | None:
        """The position of open trade `trade_id` is gone: its exits from the exchange's fills,
        then the close (and the learning) - or, when fills are missing, the explicit
        'unreconciled' state instead of a guessed exit price (retried every cycle by
        `_retry_unreconciled`). Returns the note that says what happened (an ordinary exit
        booked from its fills), None when nothing or the 'unreconciled' warning was logged."""
        trade = self.store.trade_row(trade_id, with_position=False)
        if trade is None or trade["status"] != "open":
            return None
        failed = self._record_exit_fills(trade, kind)
        self.manual.note_exits(trade)
        trade = self.store.trade_row(trade_id, with_position=False)
        if trade is not None and trade["remaining_qty"] > EPS:
            if self.store.mark_unreconciled(trade_id, time_ms=now):
                self._unreconciled[sym] = True
                why_zh = "找不到" if failed is None else f"无法读取成交记录（{error_detail(failed)}），缺少"
                why_en = ("no fill closing" if failed is None else
                          f"the fill history could not be read ({failed}): no fill for")
                self._log("WARNING", sym,
                          f"交易 #{trade_id} 的持仓已在交易所消失，但{why_zh} {trade['remaining_qty']:g} 的平仓成交："
                          f"标记为“未对账”（盈亏未知，不计入学习和统计），之后每轮继续查找其成交",
                          f"trade #{trade_id}: the position is gone on the exchange but {why_en} "
                          f"{trade['remaining_qty']:g} of it was found: marked 'unreconciled' (PnL unknown, "
                          f"kept out of learning and statistics); its fills are looked for again every cycle", now)
            return None
        exits = self.store.exit_totals(trade_id)["exits"]
        last = exits[-1]["kind"] if exits else kind
        self.journal.finalize(trade_id, now, last)
        price = f" @ {float(exits[-1]['price']):g}" if exits and exits[-1].get("price") is not None else ""
        return (f"{sym}：交易 #{trade_id} 的{EXIT_KIND_ZH.get(last, '平仓')}单在交易所成交{price}，持仓已平",
                f"{sym}: trade #{trade_id} closed on the exchange by its {EXIT_KIND_EN.get(last, 'exit')}{price}")

    def _retry_unreconciled(self, sym: str, now: int) -> None:
        """Look again for the closing fills of `sym`'s unreconciled trades; a trade whose fills
        all turned up is recorded from them and closed as any other (learning included)."""
        if self._unreconciled.get(sym) is False:
            return                                   # none in the store (checked once a process)
        trades = self.store.unreconciled_trades(sym)
        self._unreconciled[sym] = bool(trades)
        for trade in trades:
            seen_gone = int(trade["closed_ms"] or now)
            if self._record_exit_fills(trade, "stop", until_ms=seen_gone) is not None:
                continue
            row = self.store.trade_row(trade["id"], with_position=False)
            if row is None or row["remaining_qty"] > EPS:
                continue
            exits = self.store.exit_totals(trade["id"])["exits"]
            self.journal.finalize(trade["id"], seen_gone, exits[-1]["kind"] if exits else "stop")
            self._log("INFO", sym, f"交易 #{trade['id']} 的平仓成交已找到：对账完成并已结算",
                      f"trade #{trade['id']}: its exit fills turned up: reconciled and closed", now)
            self._unreconciled[sym] = bool(self.store.unreconciled_trades(sym))

    @staticmethod
    def _fee_share(fills: list, qty: float) -> float:
        """The commission of `fills` that belongs to `qty` of them: all of it, unless a fill
        flipped the position (a manual sell beyond it), whose rest opened the next trade."""
        fee, total = sum(f.commission for f in fills), sum(f.qty for f in fills)
        return fee if qty >= total - EPS else fee * qty / total

    # ------------------------------------------------------------------ every cycle
    def sync(self, sym: str, slot: PositionSlot, now: int, *, restart: bool = False) -> list[Note]:
        """Router reconcile of `slot`'s position: gone (stop hit) → record its fills and close
        the trade; smaller than remembered → record the missing exit; unknown position → adopt
        it with a note; missing protective stop → re-place it. Logs the notes (unless
        `restart`: restore returns them) and returns them. A manual trade's position is only
        watched (ManualTrades.sync): no stop, no management."""
        self._retry_unreconciled(sym, now)
        if slot.state is not None and slot.state.manual:
            manual_notes, flipped = self.manual.sync(sym, slot, now)
            self._exchange_ok()
            if not restart:
                for n_zh, n_en in manual_notes:
                    self._log("INFO", sym, "对账：" + n_zh, "reconcile: " + n_en, now)
            if flipped:                 # the exchange holds the other side now: a new position
                manual_notes += self.sync(sym, slot, now, restart=restart)
            return manual_notes
        before = slot.state
        before_qty = before.qty if before is not None else 0.0
        if before is not None:
            self.fees.settle(before, now)
        self.fees.settle_parked(sym, now)
        res = self.router.sync(sym, before)
        self._exchange_ok()
        zh = list(res.notes_zh)
        notes: list[Note] = [(zh[i] if i < len(zh) else reason_zh_for(n), n) for i, n in enumerate(res.notes)]
        if before is not None and before.trade_id is not None:
            ended = res.state is not before
            reduced = not ended and res.state is not None and res.state.qty < before_qty - EPS
            if not ended and res.state is not None and res.state.qty > before_qty + EPS:
                # grown outside the agent (a manual add-on): recorded, the trade marked mixed
                grown = self.store.trade_row(before.trade_id, with_position=False)
                if grown is not None and grown["status"] == "open":
                    self.manual.took_in(grown, res.state, before_qty)
            if ended or reduced:
                kind = ("trailing" if before.breakeven_done else "stop") if ended else "reconcile"
                if ended:
                    self.fees.park(before, now)
                    booked = self._book_vanished(before.trade_id, sym, kind, now)
                    # the router can only guess why the position is gone ("stop, liquidation or
                    # manual close while away"); the fills say it: an ordinary exit is reported
                    # as one, and a truly vanished one was just logged as a warning, once
                    notes = [n for n in notes if "position gone" not in n[1]]
                    if booked is not None:
                        notes.insert(0, booked)
                else:
                    trade = self.store.trade_row(before.trade_id, with_position=False)
                    if trade is not None and trade["status"] == "open":
                        self._record_exit_fills(trade, kind)
                        self.manual.note_exits(trade)
                        if res.state is not None:
                            self.store.update_trade(before.trade_id, position=state_copy(res.state))
        slot.state = res.state
        # an entry of unknown outcome stays "pending" in the router until a sync resolves it
        slot.pending = res.state is None and self.router.has_pending(sym)
        # ... and may turn out to be a maker entry resting on the book: polled from now on
        slot.resting = self.router.resting_entry(sym) is not None
        if res.entry is not None and res.state is None and not res.entry.resting and not res.entry.pending:
            # it turned out unfilled, never placed, or filled and gone at once: its intent is
            # settled as for an entry answered at once (dropped, or its trade recorded)
            intent = self.store.get_state(f"intent:{sym}")
            if intent is not None:
                self.settle_entry(sym, slot, res.entry, intent, now)
        if res.state is not None and res.state.trade_id is None:
            intent = self.store.get_state(f"intent:{sym}")
            if intent is not None and intent.get("side") == res.state.side:
                # an entry whose outcome was unknown turned out filled: it is our planned trade
                self._record_open(sym, slot, res.state, intent)
                notes.append((f"{sym}：结果未知的入场单实际已成交：已记录交易 #{res.state.trade_id}",
                              f"{sym}: the entry of unknown outcome was filled: recorded trade #{res.state.trade_id}"))
            elif (manual := self.manual.adopt(sym, slot, res.state, now)) is not None:
                self.store.delete_state(f"intent:{sym}")
                notes.append(manual)
            else:
                self._record_open(sym, slot, res.state, {"time_ms": now, "features": {}, "perception": {
                    "symbol": sym, "time_ms": now, "note": "adopted from the exchange",
                    "note_zh": "从交易所接管", "note_en": "adopted from the exchange"}},
                    note="adopted: the exchange held this position and the agent had no record of it")
                self.store.delete_state(f"intent:{sym}")
                side_zh = "多单" if res.state.side == "LONG" else "空单"
                notes.append((f"{sym}：接管{side_zh} {res.state.qty:g} @ {res.state.entry_price:g}，"
                              f"止损 {res.state.stop:g}",
                              f"{sym}: adopted {res.state.side} {res.state.qty:g} @ {res.state.entry_price:g} "
                              f"with stop {res.state.stop:g}"))
        elif res.state is not None and res.state.trade_id is not None:
            self.store.update_trade(res.state.trade_id, stop_price=res.state.stop, position=state_copy(res.state))
        if notes and not restart:
            for n_zh, n_en in notes:
                gone = "closed on the exchange" in n_en or "position gone" in n_en
                self._log("INFO" if gone else "WARNING", sym,
                          n_zh if gone else "对账：" + n_zh, n_en if gone else "reconcile: " + n_en, now)
        self._publish(sym)
        return notes
