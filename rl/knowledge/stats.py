"""Read-side statistics over the knowledge store: win rate, PnL and R summary, per-feature
evidence and the equity curve, as the learner, the phases and the dashboard read them.

A plain view object (store.trade_logger) rather than more store methods: it only reads, through
the store's public trade reads and the shared database's locked `query`, so it never sees a
half-written trade.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from rl.knowledge.database import KnowledgeDb
from rl.strategy.learning import feature_evidence


class TradeReads(Protocol):
    """The store's reads the statistics build on (KnowledgeStore has them)."""

    def open_trades(self, symbol: str | None = None) -> list[dict]: ...

    def closed_samples(self) -> list[tuple[dict[str, float], float]]: ...

    def get_state(self, key: str, default: Any = None) -> Any: ...


class TradeLogger:
    """The statistics view over the store that the learner, the phases and the dashboard read."""

    def __init__(self, db: KnowledgeDb, trades: TradeReads) -> None:
        self._db = db
        self._trades = trades

    def summary(self) -> dict:
        """Win rate, PnL and R statistics over the agent's own closed trades (source 'agent');
        the trades a manual order made or changed are counted apart under "manual" (their
        PnL is the account's, their R is not the agent's)."""
        rows = self._db.query("SELECT net_pnl, r_multiple, fees, funding FROM trades"
                              " WHERE status='closed' AND source='agent'")
        manual = self._db.query("SELECT COUNT(*) AS n, COALESCE(SUM(net_pnl), 0) AS pnl FROM trades"
                                " WHERE status='closed' AND source!='agent'")[0]
        n = len(rows)
        wins = [r for r in rows if (r["net_pnl"] or 0) > 0]
        losses = [r for r in rows if (r["net_pnl"] or 0) <= 0]
        gross_win = sum(r["net_pnl"] for r in wins)
        gross_loss = -sum(r["net_pnl"] or 0 for r in losses)
        return {
            "trades": n,
            "open_trades": len(self._trades.open_trades()),
            "wins": len(wins), "losses": len(losses),
            "win_rate": (len(wins) / n) if n else 0.0,
            "net_pnl": sum(r["net_pnl"] or 0 for r in rows),
            "fees": sum(r["fees"] or 0 for r in rows),
            "funding": sum(r["funding"] or 0 for r in rows),
            "avg_r": (sum(r["r_multiple"] or 0 for r in rows) / n) if n else 0.0,
            "avg_win": (gross_win / len(wins)) if wins else 0.0,
            "avg_loss": (-gross_loss / len(losses)) if losses else 0.0,
            "profit_factor": (gross_win / gross_loss) if gross_loss > 0 else None,
            "manual": {"trades": int(manual["n"]), "net_pnl": float(manual["pnl"])},
        }

    def feature_stats(self, features: Sequence[str] | None = None) -> dict[str, dict]:
        """Per feature: correlation of its entry value with R, and its mean in wins vs losses."""
        samples = self._trades.closed_samples()
        names = list(features) if features is not None else sorted({k for s, _ in samples for k in s})
        return {k: v.to_dict() for k, v in feature_evidence(samples, names).items()}

    def equity_curve(self, initial_balance: float | None = None) -> list[dict]:
        """[{time_ms, equity}]: the starting balance, then one point per closed trade (net PnL,
        funding included; manual trades too: the curve is the account's). Nothing (an empty
        list) before the agent has run: no balance and no trade is no point, not 0 at 1970."""
        start = initial_balance if initial_balance is not None else self._trades.get_state("initial_balance")
        rows = self._db.query("SELECT opened_ms, closed_ms, net_pnl FROM trades WHERE status='closed'"
                              " ORDER BY closed_ms, id")
        if start is None and not rows:
            return []
        start = float(start) if start is not None else 0.0
        if not rows:
            return [{"time_ms": int(self._trades.get_state("initial_balance_ms", 0) or 0), "equity": start}]
        out = [{"time_ms": int(min(r["opened_ms"] for r in rows)), "equity": start}]
        eq = start
        for r in rows:
            eq += float(r["net_pnl"] or 0.0)
            out.append({"time_ms": int(r["closed_ms"]), "equity": eq})
        return out
