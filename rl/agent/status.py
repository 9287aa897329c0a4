"""StatusBoard: what other threads (the dashboard) may read of the agent, and how it is shown.

The agent thread publishes references to values nobody changes afterwards (a frozen Analysis,
a fresh copy of the position) and swaps them in under one short lock; readers copy the small
dicts around them. So a reader never waits for a cycle (the agent's own lock is held through
exchange calls) and never sees a half-made decision.
"""
from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from client import AuthError, BinanceError, NetworkError, OrderRejected, RateLimitError, UnknownOrderStatus
from rl.analysis.result import Analysis
from rl.execution.port import ExchangePort
from rl.market.ports import MarketUnavailable
from rl.risk import ProtectionState
from rl.strategy.params import PhaseParams
from rl.strategy.phases import phase_for


class StatusBoard:
    """The agent's published snapshot: per symbol the analysis and position, the last error,
    the last cycle's time, whether market and exchange answered, and the risk protections'
    newest state (account-wide)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._symbols: dict[str, dict[str, Any]] = {}
        self._protections: ProtectionState | None = None
        self._last_error: dict[str, Any] | None = None
        self._last_cycle_ms: int | None = None
        # errors seen so far, and at the start of the running cycle: a cycle that logged one
        # failed; the dashboard shows a run of them instead of a plain "running"
        self._errors = 0
        self._errors_at_start = 0
        self._failed_cycles = 0
        self._connectivity = {"market": "unknown", "exchange": "unknown"}
        self._account_mode: dict[str, Any] | None = None

    def publish(self, symbol: str, analysis: Analysis | None, position: dict | None) -> None:
        """A symbol's newest analysis and position (a copy the agent no longer changes)."""
        snap = {"analysis": analysis, "position": position}
        with self._lock:
            self._symbols = {**self._symbols, symbol: snap}

    def connect(self, what: str, state: str) -> None:
        """`what` ("market" or "exchange") answered ("ok") or did not ("down")."""
        with self._lock:
            self._connectivity[what] = state

    def error(self, record: dict[str, Any]) -> None:
        """The newest failed step: time_ms, symbol, message, message_zh, message_en."""
        with self._lock:
            self._last_error = record
            self._errors += 1

    def protections(self, state: ProtectionState) -> None:
        """The protections' newest state (frozen: readers may hold it)."""
        with self._lock:
            self._protections = state

    def account_mode(self, check: dict[str, Any]) -> None:
        """The newest account-mode check (ModeCheck.to_dict(): ok, problems, ...)."""
        with self._lock:
            self._account_mode = check

    def cycle_start(self) -> None:
        """A cycle begins: an error() from here to cycle_done() makes it a failed cycle."""
        with self._lock:
            self._errors_at_start = self._errors

    def cycle_done(self, time_ms: int) -> None:
        """A cycle ended: count it failed (one more in a row) or clean (the run is over)."""
        with self._lock:
            self._last_cycle_ms = time_ms
            failed = self._errors != self._errors_at_start
            self._failed_cycles = self._failed_cycles + 1 if failed else 0
            self._errors_at_start = self._errors

    def view(self) -> dict[str, Any]:
        """{symbols: {symbol: {analysis, position}}, last_error, last_cycle_ms, failed_cycles
        (consecutive cycles that logged an error, 0 after a clean one), connectivity,
        protections (a ProtectionState or None), account_mode (a ModeCheck dict or None)}."""
        with self._lock:
            return {"symbols": dict(self._symbols), "last_error": self._last_error,
                    "last_cycle_ms": self._last_cycle_ms, "connectivity": dict(self._connectivity),
                    "failed_cycles": self._failed_cycles,
                    "protections": self._protections, "account_mode": self._account_mode}

    def symbol(self, symbol: str) -> dict[str, Any]:
        """{analysis, position} of one symbol ({} before its first publication)."""
        with self._lock:
            return self._symbols.get(symbol) or {}


def agent_status(view: Mapping[str, Any], trade_count: int, weights: dict[str, float],
                 phases: PhaseParams, protection_limits: Mapping[str, Any] | None = None,
                 trade_filter: Mapping[str, Any] | None = None,
                 exposure: Mapping[str, Any] | None = None) -> dict:
    """The dashboard's status of the agent from a board `view`: learning phase and progress,
    last scores per symbol, weights, last error, last cycle time, connectivity, and the risk
    protections (ProtectionState.to_dict() with the `config` limits beside it, or None), and the
    account-mode check (ok, problems with zh/en, what was read; None before the first), and
    the learned trade filter's view (`trade_filter`: trades learned from, weight and sd per
    feature, how often it says no; None when TRADE_FILTER is off), and the exposure caps
    (`exposure`: rl.agent.exposure.AccountExposure.view(); None when not given)."""
    ph = phase_for(trade_count, phases)
    prev = phases.starts_at(ph.key)
    progress = 1.0 if ph.next_at is None else (trade_count - prev) / (ph.next_at - prev)
    last_scores = {}
    for sym, snap in view["symbols"].items():
        a = snap.get("analysis")
        if a is not None:
            last_scores[sym] = {"long": float(a.long_score), "short": float(a.short_score),
                                "long_breakdown": a.long_breakdown, "short_breakdown": a.short_breakdown,
                                "time_ms": a.time_ms, "price": float(a.price)}
    state = view.get("protections")
    protections = None if state is None else {**state.to_dict(), "config": dict(protection_limits or {})}
    return {"phase": {"key": ph.key, "name_zh": ph.name_zh, "name_en": ph.name_en, "trade_count": trade_count,
                      "next_at": ph.next_at, "progress": max(0.0, min(1.0, progress)),
                      "min_score": ph.min_score, "score_gap": ph.score_gap},
            "last_scores": last_scores, "weights": weights,
            "last_error": view["last_error"], "last_cycle_ms": view["last_cycle_ms"],
            "failed_cycles": int(view.get("failed_cycles") or 0),
            "connectivity": view["connectivity"], "protections": protections,
            "account_mode": view.get("account_mode"),
            "trade_filter": dict(trade_filter) if trade_filter is not None else None,
            "exposure": dict(exposure) if exposure is not None else None}


def merged_positions(symbols: Sequence[str], exchange: ExchangePort,
                     published: Mapping[str, Mapping[str, Any]]) -> list[dict]:
    """The exchange's positions in `symbols` as dicts, each completed with the agent's stop,
    target, partial exits and trade id from its `published` snapshots where it manages it. The
    filled part of a maker entry still resting is the agent's position too (with its stop), and
    carries `entry_resting` (the order's id, price, filled and total quantity, expiry)."""
    out = []
    for sym in symbols:
        pos = exchange.position(sym)
        mine = (published.get(sym) or {}).get("position")
        if pos is None and mine is None:
            continue
        d = pos.to_dict() if pos is not None else {"symbol": sym, "amount": 0.0}
        if mine is not None:
            manual = bool(mine.get("manual"))          # a manual trade: only the trader's own stop
            manual_stop = (mine.get("stop") or None) if mine.get("stop_client_algo_id") else None
            d.update(stop=manual_stop if manual else mine.get("stop"), target=mine.get("target"),
                     partial_exits=mine.get("partial_exits", []), trade_id=mine.get("trade_id"),
                     initial_stop=None if manual else mine.get("initial_stop"),
                     source="manual" if manual else "agent")
            if mine.get("entry_resting"):            # a maker entry still resting, part filled
                d["entry_resting"] = dict(mine["entry_resting"])
        out.append(d)
    return out


def error_texts(exc: BaseException) -> tuple[str, str]:
    """The plain first part of an error log line, (zh, en): what a trader needs to know (and
    that the agent carries on); the technical detail follows it in the line."""
    if isinstance(exc, MarketUnavailable):
        return "无法获取币安行情，下一轮重试", "Binance market data unavailable, retrying next cycle"
    if isinstance(exc, RateLimitError):
        return "币安限流，稍后重试", "Binance rate limit hit, retrying later"
    if isinstance(exc, AuthError):
        return ("币安拒绝了API密钥或签名，请检查密钥和权限",
                "Binance rejected the API key or signature: check the key and its permissions")
    if isinstance(exc, UnknownOrderStatus):
        return "订单结果未知，下一轮按订单号查询", "order outcome unknown, looking it up next cycle"
    if isinstance(exc, NetworkError):
        return "无法连接币安，下一轮重试", "Binance unreachable, retrying next cycle"
    if isinstance(exc, OrderRejected):
        return "币安拒绝了请求，下一轮重试", "Binance rejected the request, retrying next cycle"
    if isinstance(exc, BinanceError):
        return "币安返回错误，下一轮重试", "Binance returned an error, retrying next cycle"
    return "本轮出错，下一轮继续", "cycle failed, will retry next cycle"
