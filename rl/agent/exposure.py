"""AccountExposure: the agent's side of the exposure caps (rl/risk/exposure.py), account-wide.

At an entry signal (flat, a 15m close, not paused) the agent asks `check`: it gathers the
agent's other positions (open ones at their current stop; a maker entry resting or an entry of
unknown outcome at its planned risk), the candidate's risk budget, the account's equity and
the correlation of the candidate's closed 15m candles with each held symbol's, and the pure
rules answer. Only when another position is open does it read anything, so a single symbol
(or a flat account) costs nothing and changes nothing. A refusal is counted and kept for
`/api/agent/status`; the agent logs it (once per symbol and reason). Manual positions (the
trader's, opened from the dashboard) are not the agent's and are not counted.
"""
from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from rl.execution.position import PositionState
from rl.knowledge.store import KnowledgeStore
from rl.risk.exposure import (
    RULES,
    Correlation,
    ExposureConfig,
    OpenExposure,
    Refusal,
    check,
    correlation,
    open_risk_percent,
    risk_at_stop,
)

LAST_REFUSALS = 10          # how many of the newest refusals the status keeps


class _Slot(Protocol):
    """What the helper reads of the agent's per-symbol runtime."""

    analyzer: Any
    state: PositionState | None
    pending: bool
    resting: bool


def exposure_config(settings: Any) -> ExposureConfig:
    """The caps from the settings (defaults for a settings object without them)."""
    d = ExposureConfig()
    return ExposureConfig(
        max_open_positions=int(getattr(settings, "max_open_positions", d.max_open_positions)),
        max_total_risk_percent=float(getattr(settings, "max_total_risk_percent", d.max_total_risk_percent)),
        max_correlation=float(getattr(settings, "max_correlation", d.max_correlation)))


def _closes(analyzer: Any, tf: str) -> tuple[Any, Any] | None:
    """(open times, closes) of the closed `tf` candles the analyzer holds, None when it keeps
    none (or is a stand-in without them)."""
    read = getattr(analyzer, "closed_candles", None)
    bars = read(tf) if read is not None else None
    return None if bars is None else (bars.t, bars.c)


class AccountExposure:
    """The caps with what the agent knows (see the module doc). `check` runs on the agent's
    thread; `view` may be called from any thread."""

    def __init__(self, config: ExposureConfig, store: KnowledgeStore, *, taker_fee: float) -> None:
        self.config = config
        self._store = store
        self._taker_fee = taker_fee
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(RULES, 0)
        self._last: deque[dict[str, Any]] = deque(maxlen=LAST_REFUSALS)
        self._unmeasured: set[tuple[str, str]] = set()   # (symbol, held symbol) said "too few candles"
        self.equity: float | None = None        # the account's equity at the last 15m close

    def positions(self, slots: Mapping[str, _Slot]) -> list[OpenExposure]:
        """The agent's positions and entries under way, each with its risk at the stop."""
        out = []
        for sym, rt in slots.items():
            st = rt.state
            if st is not None:
                if not st.manual:
                    out.append(OpenExposure(sym, st.side, risk_at_stop(st.side, st.entry_price, st.stop,
                                                                      st.qty, self._taker_fee)))
            elif rt.resting or rt.pending:
                intent = self._store.get_state(f"intent:{sym}") or {}
                plan = intent.get("plan") or {}
                side = intent.get("side")
                risk = plan.get("risk")
                if side in ("LONG", "SHORT") and isinstance(risk, (int, float)) and math.isfinite(risk):
                    out.append(OpenExposure(sym, side, max(0.0, float(risk))))
        return out

    def check(self, sym: str, side: str, slots: Mapping[str, _Slot], risk_percent: float,
              equity: Callable[[], float], now: int) -> tuple[Refusal | None, list[tuple[str, str]]]:
        """(the refusal of an entry `side` in `sym` or None, notes to log once (zh, en)).

        `risk_percent`: the trade's risk budget in % of equity (MAX_RISK_PERCENT scaled by
        phase): the plan sizes the position so its risk at the stop, fees included, is at most
        that, so the budget is the candidate's planned risk (or more, when a notional or margin
        cap or the trade filter make it smaller). `equity()` is read only when another position
        is open."""
        held = [p for p in self.positions(slots) if p.symbol != sym]
        if not held:
            return None, []
        eq = float(equity())
        cfg = self.config
        corr: dict[str, Correlation] = {}
        notes: list[tuple[str, str]] = []
        if cfg.max_correlation:
            mine = _closes(slots[sym].analyzer, cfg.correlation_interval)
            for p in held:
                theirs = _closes(slots[p.symbol].analyzer, cfg.correlation_interval)
                c = (correlation(p.symbol, mine, theirs, cfg) if mine is not None and theirs is not None
                     else Correlation(p.symbol, None, 0))
                corr[p.symbol] = c
                if c.value is None:
                    notes += self._too_few(sym, c)
                else:
                    self._unmeasured.discard((sym, p.symbol))
        refusal = check(cfg, sym, side, eq * risk_percent / 100.0, held, eq, corr)
        if refusal is not None:
            with self._lock:
                self._counts[refusal.rule] += 1
                self._last.append({"time_ms": now, **refusal.to_dict()})
        return refusal, notes

    def _too_few(self, sym: str, c: Correlation) -> list[tuple[str, str]]:
        """The note that a correlation could not be measured: once per pair while it stays so."""
        if (sym, c.symbol) in self._unmeasured:
            return []
        self._unmeasured.add((sym, c.symbol))
        iv, need = self.config.correlation_interval, self.config.correlation_min_overlap
        return [(f"相关性未知：与 {c.symbol} 只有 {c.overlap} 根共同的已收盘 {iv} K线收益（至少 {need} 根），"
                 "不按相关性拒绝",
                 f"correlation unknown: only {c.overlap} closed {iv} candle returns shared with {c.symbol} "
                 f"(at least {need} needed), not refused on correlation")]

    def view(self, published: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        """For /api/agent/status: positions open vs the cap, their risk at the stops in % of
        the equity at the last 15m close vs the cap, refusals counted and the newest ones.
        `published`: the board's per-symbol snapshots (position copies), readable from any
        thread."""
        positions = []
        for sym, snap in published.items():
            pos = snap.get("position")
            if pos is None or pos.get("manual"):
                continue
            qty, entry, stop = pos.get("qty"), pos.get("entry_price"), pos.get("stop")
            if isinstance(qty, (int, float)) and isinstance(entry, (int, float)) and isinstance(stop, (int, float)):
                positions.append(OpenExposure(sym, pos["side"], risk_at_stop(pos["side"], entry, stop, qty,
                                                                             self._taker_fee)))
        eq = self.equity
        pct = open_risk_percent(positions, eq) if eq is not None else None
        with self._lock:
            counts, last = dict(self._counts), list(self._last)
        return {"open_positions": len(positions), "max_open_positions": self.config.max_open_positions,
                "open_risk": sum(p.risk for p in positions), "equity": eq,
                "open_risk_percent": pct, "max_total_risk_percent": self.config.max_total_risk_percent,
                "max_correlation": self.config.max_correlation, "config": self.config.to_dict(),
                "refusals": sum(counts.values()), "refusals_by_rule": counts,
                "last_refusals": list(reversed(last))}
