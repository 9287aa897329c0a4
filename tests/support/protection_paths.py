"""Scripted price paths and readers for the risk-protection tests (tests/agent/test_agent_protections.py,
tests/agent/test_log_language.py) over the scripted world: support 99 and ATR 1 put every stop
at 98.5, and a bar with a low of 98 stops a long out."""
from __future__ import annotations

from tests.support.scripted_world import MIN, World

DAY = 1440 * MIN
DIP = (100.0, 100.0, 98.0, 98.2)          # crosses the 98.5 stop: a losing stop-out

ONLY_DAILY = {"max_drawdown_percent": 0.0, "stoploss_guard_trades": 0}
ONLY_STOPS = {"max_drawdown_percent": 0.0, "daily_loss_limit_percent": 0.0}


def stop_outs(n: int, total: int) -> list:
    """Flat at 100; entries at 01:00, 01:15, ... (the 15m closes) each stopped out on the next
    bar, n times; then flat at 100 up to `total` bars."""
    path: list = [100.0] * 60
    for _ in range(n):
        path += [DIP] + [100.0] * 14
    return path + [100.0] * (total - len(path))


def run_to(w: World, ms: int) -> None:
    """Cycle with the clock jumping ahead (each cycle catches up every bar since the last,
    at most a day of them, each through the same per-bar routine)."""
    while w.clock.now_ms() < ms:
        w.clock.set(min(ms, w.clock.now_ms() + DAY))
        w.agent.run_cycle()


def lines(w: World, start: str) -> list[dict]:
    return [ln for ln in w.store.decisions.recent(5000) if ln["message_zh"].startswith(start)]


def trades(w: World) -> list[dict]:
    return list(reversed(w.store.trades(limit=100)))


def entered_at(w: World) -> list[int]:
    """When the agent decided each entry (a fill's own time is the paper exchange's clock, which
    a catch-up cycle has already moved on)."""
    return [ln["time_ms"] for ln in reversed(w.store.decisions.recent(5000))
            if ln["message_en"].startswith("🟢 Enter long")]
