"""TradeJournal: the agent's record of its trades, and the learning that follows each close.

Opening a trade writes its row, features, perception and action, its order links and the
removal of its entry intent in ONE transaction; closing it writes the close, the reward half of
the thought chain and the weight update it caused in ONE transaction (kill -9 safety: a restart
finds either all of it or none). The journal keeps what the learner needs between closes (the
current weights and the running evidence over every closed trade, O(1) a close) and when each
symbol's last trade closed (the re-entry cooldown).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from rl.execution.actions import honest_exit_kind
from rl.execution.position import PositionState
from rl.knowledge.store import KnowledgeStore
from rl.knowledge.thought import build_action, build_reward, features_zh, summarize
from rl.strategy.learning import EvidenceStats, moved_features, update_weights
from rl.strategy.params import LearningParams

if TYPE_CHECKING:
    from rl.agent.filter_gate import FilterGate

# (level, symbol, Chinese, English, time_ms): a line of the decision log
LogFn = Callable[[str, str, str, str, int], None]
# (symbol, from_ms, to_ms) -> the funding the account received (> 0) or paid (< 0) in that
# symbol between the two times, both included (rl.agent.agent builds it over the exchange)
FundingFn = Callable[[str, int, int], float]


def state_copy(st: PositionState) -> dict:
    """A reader-safe copy of a PositionState, ~50x cheaper than asdict (its lists hold flat
    dicts/strings that are never mutated after being appended)."""
    d = dict(vars(st))
    d["partial_exits"] = list(st.partial_exits)
    d["unpriced_fees"] = dict(st.unpriced_fees)
    d["exit_reasons"] = list(st.exit_reasons)
    d["exit_reasons_zh"] = list(st.exit_reasons_zh)
    return d


class TradeJournal:
    """Trade records in the knowledge store, and learning from them (see the module doc).

    `on_weights(weights)` is called with the new weights whenever a close moved them (the
    agent hands them to its analyzers); `on_close(row)` with every trade a close transaction
    closed, as the store returned it (the risk protections count it); `log` writes the
    decision log; `funding` tells what funding a closing trade's position received or paid
    while open (None: none is counted)."""

    def __init__(self, store: KnowledgeStore, *, leverage: int, learning: LearningParams,
                 log: LogFn, on_weights: Callable[[dict[str, float]], None],
                 on_close: Callable[[dict], None] | None = None,
                 funding: FundingFn | None = None,
                 filter_gate: FilterGate | None = None) -> None:
        self.store = store
        self._funding = funding
        self._filter = filter_gate          # the learned trade filter (TRADE_FILTER=on), learns at closes
        self._leverage = leverage
        self._learning = learning
        self._log = log
        self._on_weights = on_weights
        self._on_close = on_close
        self._weights = store.current_weights()
        # the learner's running statistics over every closed trade (see finalize): O(1) a close
        self._evidence: EvidenceStats | None = None
        self._last_close: dict[str, int | None] = {}    # symbol -> newest close, read once

    @property
    def weights(self) -> dict[str, float]:
        """The current learned level-feature weights (do not change the dict)."""
        return self._weights

    def reload_weights(self, now: int) -> dict[str, float]:
        """Start-up: give the weight history its first row if it has none, then take the
        newest weights from the store."""
        self.store.ensure_initial_weights(now)
        self._weights = self.store.current_weights()
        return self._weights

    def last_close_ms(self, symbol: str) -> int | None:
        """When `symbol`'s newest trade closed (from the store the first time: a restart keeps
        the cooldown), None if it never traded."""
        if symbol not in self._last_close:
            self._last_close[symbol] = self.store.last_closed_ms(symbol)
        return self._last_close[symbol]

    def record_open(self, sym: str, st: PositionState, intent: Mapping[str, Any], note: str = "") -> int:
        """Trade row + features + perception/action + order links + intent removal: one
        transaction. Sets st.trade_id (and st.entry_client_order_id if it had none)."""
        plan = intent.get("plan") or {}
        action = build_action(side=st.side, price=st.entry_price, quantity=st.initial_qty, stop=st.initial_stop,
                              target=st.target, leverage=self._leverage,
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
                symbol=sym, side=st.side, entry_client_order_id=cid,
                opened_ms=st.opened_ms or int(intent.get("time_ms", 0)),
                entry_price=st.entry_price, quantity=st.initial_qty, stop_price=st.initial_stop,
                target_price=st.target, leverage=self._leverage, features=intent.get("features") or {},
                perception=intent.get("perception") or {}, action=action, entry_fee=st.fees,
                phase=intent.get("phase"), long_score=intent.get("long_score"),
                short_score=intent.get("short_score"), note=note,
                order_ids=[x for x in (st.stop_client_algo_id,) if x])
            st.trade_id = tid
            self.store.update_trade(tid, position=state_copy(st))
            self.store.delete_state(f"intent:{sym}")
        return tid

    def _funding_of(self, t: Mapping[str, Any], now: int) -> float:
        """The funding of `t`'s position from its opening to now (one position per symbol at
        a time: whatever funding the symbol saw meanwhile was this trade's). A failed lookup
        counts 0 and says so in the log rather than keep the trade from closing."""
        if self._funding is None:
            return 0.0
        try:
            return float(self._funding(t["symbol"], int(t["opened_ms"]), now))
        except Exception as exc:
            self._log("WARNING", t["symbol"], f"交易 #{t['id']} 的资金费查询失败（{exc}）：按 0 计入",
                      f"trade #{t['id']}: funding lookup failed ({exc}): counted as 0", now)
            return 0.0

    def finalize(self, trade_id: int | None, now: int, kind: str) -> None:
        """Close the record, learn from it and write both in ONE transaction (a trade that is
        already closed, or unknown, is left alone). The funding its position saw is part of
        its net PnL. A trade a manual order made or changed (source manual/mixed) is closed
        without learning: its R is not the agent's."""
        if trade_id is None:
            return
        t = self.store.trade_row(trade_id, with_position=False)   # the row only: nothing else is read here
        if t is None or t["status"] == "closed":
            return
        totals = self.store.exit_totals(trade_id)
        fees = float(t["entry_fee"]) + totals["fee"]
        funding = self._funding_of(t, now)
        net = totals["pnl"] - fees + funding
        kind = honest_exit_kind(kind, net)          # a take-profit that lost is not called one
        r = net / t["risk_amount"] if t["risk_amount"] > 0 else 0.0
        if t["source"] != "agent":
            self._finalize_unlearned(t, now, kind, totals, fees, funding, r)
            return
        # what this process wrote at the entry, else (a trade from before a restart) the store
        entry = self.store.entry_context(trade_id)
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
        upd = update_weights(self._weights, stats, self._learning)
        reward = build_reward(realized_pnl=totals["pnl"], fees=fees, r_multiple=r, exit_reason=kind,
                              weight_change=upd.to_dict(), funding=funding)
        if entry is None:
            chain = self.store.thought_chain(trade_id) or {}
            perception, action = chain.get("perception") or {}, chain.get("action") or {}
        zh, en = summarize(perception, action, reward)
        model = self._filter.learned(perception, r) if self._filter is not None else None
        if model is not None:
            reward["trade_filter"] = {"learned": model.learned, "r_learned": r}
        with self.store.batch():
            row = self.store.close_trade(trade_id, closed_ms=now, exit_reason=kind, reward=reward,
                                         summary_zh=zh, summary_en=en, weight_update=upd, funding=funding,
                                         filter_state=model.to_state() if model is not None else None)
        if model is not None and self._filter is not None:
            self._filter.adopt(model)
        self._evidence = stats                      # = every closed trade's sample, this one too
        self._last_close[t["symbol"]] = now
        if upd.applied:
            self._weights = dict(upd.new)
            self._on_weights(self._weights)
        if upd.applied and any(moved_features(upd.old, upd.new)):
            # logged only when a weight really changed: an unchanged step is no news
            self._log("INFO", t["symbol"], "权重更新：" + features_zh(upd.reason_zh),
                      "weights updated: " + upd.reason_en, now)
        self._log("INFO", t["symbol"], "🏁 " + zh, "🏁 " + en, now)
        if self._on_close is not None:
            self._on_close(row)

    def _finalize_unlearned(self, t: Mapping[str, Any], now: int, kind: str, totals: Mapping[str, Any],
                            fees: float, funding: float, r: float) -> None:
        """finalize for a manual or mixed trade: the close and its reward, no learning step
        (the weights and the learner's running evidence stay as they were)."""
        trade_id = int(t["id"])
        reward = build_reward(realized_pnl=totals["pnl"], fees=fees, r_multiple=r, exit_reason=kind,
                              funding=funding, source=t["source"])
        chain = self.store.thought_chain(trade_id) or {}
        zh, en = summarize(chain.get("perception") or {}, chain.get("action") or {}, reward)
        if t["source"] == "manual":
            zh, en = f"（手动交易，不参与学习）{zh}", f"(manual trade, kept out of the learning) {en}"
        else:
            zh, en = f"（含手动单，不参与学习）{zh}", f"(changed by a manual order, kept out of the learning) {en}"
        row = self.store.close_trade(trade_id, closed_ms=now, exit_reason=kind, reward=reward,
                                     summary_zh=zh, summary_en=en, weight_update=None, funding=funding)
        self._last_close[t["symbol"]] = self.store.last_closed_ms(t["symbol"])
        self._log("INFO", t["symbol"], "🏁 " + zh, "🏁 " + en, now)
        if self._on_close is not None:
            self._on_close(row)
