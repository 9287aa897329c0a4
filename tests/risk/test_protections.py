"""Risk protections (rl.risk): each rule pauses and lifts on a scripted path with hand-computed
numbers, and the incremental fold equals a rebuild from the same facts at every step (what
makes the pauses survive kill -9 and a restart)."""
from __future__ import annotations

import json
import random
from typing import Any

import pytest

from rl.knowledge.store import KnowledgeStore
from rl.risk import ClosedTrade, EquityPoint, ProtectionConfig, ProtectionEvent, Protections, evaluate

M = 60_000
H = 3_600_000
DAY = 24 * H
T0 = 1_693_785_600_000          # 2023-09-04 00:00 UTC

DRAWDOWN_ONLY = ProtectionConfig(daily_loss_limit_percent=0, stoploss_guard_trades=0)
DAILY_ONLY = ProtectionConfig(max_drawdown_percent=0, stoploss_guard_trades=0)
STOPS_ONLY = ProtectionConfig(max_drawdown_percent=0, daily_loss_limit_percent=0)


def _feed(p: Protections, points: list[tuple[int, float]]) -> list[ProtectionEvent]:
    events: list[ProtectionEvent] = []
    for t, e in points:
        events += p.observe_equity(t, e)
    return events


def _stop(t: int, pnl: float, kind: str = "stop", tid: int | None = None,
          symbol: str = "BTCUSDT") -> ClosedTrade:
    return ClosedTrade(closed_ms=t, exit_kind=kind, net_pnl=pnl, symbol=symbol, trade_id=tid)


# ------------------------------------------------------------------ drawdown guard
def test_drawdown_pauses_at_the_limit_and_lifts_when_equity_recovers() -> None:
    p = Protections(DRAWDOWN_ONLY)
    assert _feed(p, [(T0, 10_000), (T0 + H, 10_500), (T0 + 2 * H, 9_500)]) == []   # 9.5 % below
    assert p.allows_entry(T0 + 2 * H)
    (ev,) = p.observe_equity(T0 + 3 * H, 9_450)          # (10,500 - 9,450) / 10,500 = 10 % exactly
    assert ev.kind == "started" and ev.time_ms == T0 + 3 * H
    assert ev.message_en == ("⛔ Drawdown guard: equity 10.0 % below its 30-day peak 10,500.00 (limit 10 %), "
                             "no new entries until it recovers or that peak leaves the window at "
                             "2023-10-04 01:00 UTC")
    assert ev.message_zh == ("⛔ 回撤保护: 权益较 30 日峰值 10,500.00 回撤 10.0% ≥ 10%，"
                             "暂停开仓，直到权益回升或该峰值于 2023-10-04 01:00 UTC 移出窗口")
    assert dict(ev.pause.details) == {"peak_equity": 10_500, "peak_ms": T0 + H, "equity": 9_450,
                                      "drawdown_percent": 10.0, "limit_percent": 10.0}
    assert ev.pause.until_ms == T0 + H + 30 * DAY           # the peak's exit: the earliest lift
    assert not p.allows_entry(T0 + 3 * H)
    assert _feed(p, [(T0 + 10 * H, 8_000), (T0 + 26 * H, 9_000)]) == []   # still paused, no repeat
    assert not p.allows_entry(T0 + 26 * H)
    # an open position's profit brings equity back within 10 % of the peak: lifted at once
    (lift,) = p.observe_equity(T0 + 27 * H, 9_451)
    assert lift.kind == "lifted" and lift.time_ms == T0 + 27 * H
    assert lift.message_en == ("✅ Drawdown guard lifted: equity 9,451.00 is within 10 % of the window's "
                               "peak 10,500.00, entries allowed again")
    assert lift.message_zh == "✅ 回撤保护解除: 权益 9,451.00 已回到窗口峰值 10,500.00 的 10% 以内，恢复开仓"
    assert p.allows_entry(T0 + 27 * H)
    assert [(q.started_ms, q.until_ms) for q in p.pauses] == [(T0 + 3 * H, T0 + 27 * H)]


def test_drawdown_pause_ends_when_the_peak_leaves_the_window_unless_a_lower_peak_still_holds() -> None:
    p = Protections(DRAWDOWN_ONLY)
    # peak 10,000 at T0, a lower high of 9,800 a day later, then equity falls to 8,900
    _feed(p, [(T0, 10_000), (T0 + DAY, 9_800)])
    (ev,) = p.observe_equity(T0 + 2 * DAY, 8_900)            # 11 % below 10,000
    assert ev.pause.until_ms == T0 + 30 * DAY
    # at 30 days + 1 h the 10,000 peak has left; 9,800 is still in the window and 8,900 is
    # 9.18 % below it: within the limit, lifted
    (lift,) = p.observe_equity(T0 + 30 * DAY + H, 8_900)
    assert lift.kind == "lifted"
    view = p.state(T0 + 30 * DAY + H).drawdown
    assert view is not None and view.peak_equity == 9_800

    q = Protections(DRAWDOWN_ONLY)
    _feed(q, [(T0, 10_000), (T0 + DAY, 9_950)])
    (ev,) = q.observe_equity(T0 + 2 * DAY, 8_900)            # 11 % below 10,000
    # when 10,000 leaves, 9,950 still holds 8,900 10.6 % below: the pause goes on, quietly,
    # and its earliest end moves to when 9,950 leaves
    assert q.observe_equity(T0 + 30 * DAY + H, 8_900) == ()
    assert not q.allows_entry(T0 + 30 * DAY + H)
    (cur,) = q.state(T0 + 30 * DAY + H).active
    assert cur.until_ms == T0 + 31 * DAY and cur.started_ms == T0 + 2 * DAY
    (lift,) = q.observe_equity(T0 + 31 * DAY + H, 8_900)      # only 8,900s left in the window
    assert lift.kind == "lifted" and q.allows_entry(T0 + 31 * DAY + H)
    assert len(q.pauses) == 1


def test_drawdown_bounds_the_loss_within_any_window() -> None:
    """However long equity keeps falling, no new entry happens 10 % or more below the window's
    peak: the losses after the pause are only the positions already open."""
    p = Protections(DRAWDOWN_ONLY)
    rng = random.Random(7)
    equity, t, worst = 10_000.0, T0, 0.0
    peaks: list[tuple[int, float]] = []
    for _ in range(2_000):
        t += 15 * M
        equity *= 1 + rng.gauss(-0.0004, 0.004)
        p.observe_equity(t, equity)
        peaks = [(pt, pe) for pt, pe in peaks if pt >= t - 30 * DAY] + [(t, equity)]
        peak = max(pe for _, pe in peaks)
        if p.allows_entry(t):
            worst = max(worst, (peak - equity) / peak)
    assert worst < 0.10


# ------------------------------------------------------------------ daily loss limit
def test_daily_loss_pauses_until_the_next_utc_midnight_measured_from_the_carried_equity() -> None:
    p = Protections(DAILY_ONLY)
    # first day: no earlier observation, so the day is measured from its first one (10,000)
    assert _feed(p, [(T0 + H, 10_000), (T0 + 5 * H, 9_700)]) == []          # 3 % down
    (ev,) = p.observe_equity(T0 + 9 * H, 9_600)                              # 4 % down
    assert ev.message_en == ("⛔ Daily loss limit: equity 4.0 % below where the UTC day started "
                             "(limit 4 %), no new entries until 2023-09-05 00:00 UTC")
    assert ev.message_zh == ("⛔ 日亏损保护: 权益较今日(UTC)开始时下跌 4.0% ≥ 4%，"
                             "暂停开仓至 2023-09-05 00:00 UTC")
    assert (ev.pause.started_ms, ev.pause.until_ms) == (T0 + 9 * H, T0 + DAY)
    assert not p.allows_entry(T0 + DAY - 1) and p.allows_entry(T0 + DAY)
    assert p.observe_equity(T0 + DAY - M, 9_500) == ()                     # still the same day

    # next day: the reference is what the account carried over midnight (9,500), not the
    # day's first observation (9,400)
    (lift,) = p.observe_equity(T0 + DAY + 30 * M, 9_400)
    assert lift.kind == "lifted" and lift.time_ms == T0 + DAY
    assert lift.message_en == "✅ Daily loss limit lifted: a new UTC day began, entries allowed again"
    assert lift.message_zh == "✅ 日亏损保护解除: 新的 UTC 交易日开始，恢复开仓"
    view = p.state(T0 + DAY + 30 * M).daily_loss
    assert view is not None and view.reference_equity == 9_500 and view.day_start_ms == T0 + DAY
    assert p.observe_equity(T0 + DAY + 11 * H, 9_121) == ()               # 3.99 % below 9,500
    (ev2,) = p.observe_equity(T0 + DAY + 12 * H, 9_120)                   # 4 % below 9,500
    assert ev2.pause.until_ms == T0 + 2 * DAY
    assert dict(ev2.pause.details)["reference_equity"] == 9_500


def test_daily_loss_resets_at_midnight_without_a_pause() -> None:
    p = Protections(DAILY_ONLY)
    # 3.5 % down on day one, then 3.5 % more on day two: neither day reaches 4 %
    assert _feed(p, [(T0, 10_000), (T0 + DAY - M, 9_650), (T0 + DAY + H, 9_650),
                     (T0 + 2 * DAY - M, 9_312.25)]) == []
    assert p.pauses == ()
    view = p.state(T0 + 2 * DAY - M).daily_loss
    assert view is not None and view.loss_percent == pytest.approx(3.5)


# ------------------------------------------------------------------ stop-loss guard
def test_stoploss_guard_counts_losing_stop_like_exits_within_the_window() -> None:
    p = Protections(STOPS_ONLY)
    closes = [_stop(T0 + 1 * H, -50, tid=1),                     # counts, until 7 h
              _stop(T0 + 2 * H, +100, "target", tid=2),          # not a stop
              _stop(T0 + 150 * M, +30, "trailing", tid=3),       # a trailing stop that made money
              _stop(T0 + 3 * H, -20, "signal", tid=4),           # lost, but not stopped out
              _stop(T0 + 4 * H, -5, "break_even", tid=5),        # counts
              _stop(T0 + 7 * H, -40, "trailing", tid=6)]         # counts; the 1 h one is 6 h old
    for c in closes:
        assert p.observe_close(c) == ()
    view = p.state(T0 + 7 * H).stoploss_guard
    assert view is not None and view.stop_outs_in_window == 2
    (ev,) = p.observe_close(_stop(T0 + 8 * H, -500, "liquidation", tid=7, symbol="ETHUSDT"))
    assert ev.message_en == ("⛔ Stop-loss guard: 3 stop-outs within 6 h (limit 3), "
                             "no new entries until 2023-09-04 16:00 UTC")
    assert ev.message_zh == "⛔ 止损保护: 6 小时内止损 3 次 (上限 3 次)，暂停开仓至 2023-09-04 16:00 UTC"
    d = dict(ev.pause.details)
    assert d["trade_ids"] == (5, 6, 7) and d["symbols"] == ("BTCUSDT", "ETHUSDT")
    assert d["first_stop_ms"] == T0 + 4 * H
    assert not p.allows_entry(T0 + 16 * H - 1) and p.allows_entry(T0 + 16 * H)
    # the lift is noticed at the next fact of any kind, here an equity observation
    assert p.observe_equity(T0 + 15 * H, 10_000) == ()
    (lift,) = p.observe_equity(T0 + 16 * H, 10_000)
    assert lift.kind == "lifted" and lift.time_ms == T0 + 16 * H
    assert lift.message_en == "✅ Stop-loss guard lifted, entries allowed again"
    assert lift.message_zh == "✅ 止损保护解除，恢复开仓"


def test_a_stop_out_counts_toward_one_pause_only() -> None:
    p = Protections(ProtectionConfig(max_drawdown_percent=0, daily_loss_limit_percent=0,
                                     stoploss_guard_pause_hours=1))
    for h in (1, 2):
        p.observe_close(_stop(T0 + h * H, -10))
    # two stop-outs at the same millisecond: the third starts the pause, the fourth is
    # consumed with it (whichever order they arrive in)
    (ev,) = p.observe_close(_stop(T0 + 3 * H, -10, tid=9))
    assert ev.pause.started_ms == T0 + 3 * H and ev.pause.until_ms == T0 + 4 * H
    assert p.observe_close(_stop(T0 + 3 * H, -10, tid=8)) == ()
    # 4.5 h and 5 h: five stop-outs lie within 6 h, but only these two are not consumed yet
    assert [e.kind for e in p.observe_close(_stop(T0 + 270 * M, -10))] == ["lifted"]   # at 4 h
    assert p.observe_close(_stop(T0 + 5 * H, -10)) == ()
    assert p.allows_entry(T0 + 5 * H)
    (ev2,) = p.observe_close(_stop(T0 + 330 * M, -10))
    assert ev2.kind == "started" and ev2.pause.started_ms == T0 + 330 * M


def test_a_close_recorded_late_lands_where_it_belongs() -> None:
    p = Protections(STOPS_ONLY)
    p.observe_close(_stop(T0 + 1 * H, -10, tid=1))
    p.observe_close(_stop(T0 + 3 * H, -10, tid=3))
    p.observe_equity(T0 + 4 * H, 10_000)
    (ev,) = p.observe_close(_stop(T0 + 2 * H, -10, tid=2))        # reconciled after the fact
    assert ev.pause.started_ms == T0 + 3 * H                      # the third stop-out by time
    assert not p.allows_entry(T0 + 4 * H)


# ------------------------------------------------------------------ rules together
def test_a_lift_says_which_other_pause_still_holds_entries() -> None:
    p = Protections()
    _feed(p, [(T0, 10_000), (T0 + H, 9_600)])                    # daily 4 %: until midnight
    (dd,) = p.observe_equity(T0 + 23 * H, 9_000)                 # drawdown 10 %: peak 10,000 at T0
    assert dd.pause.rule == "drawdown"
    (lift,) = p.observe_equity(T0 + DAY, 9_000)
    assert lift.pause.rule == "daily_loss"
    assert lift.message_en == ("✅ Daily loss limit lifted: a new UTC day began; the drawdown guard "
                               "still holds entries until 2023-10-04 00:00 UTC")
    assert lift.message_zh == ("✅ 日亏损保护解除: 新的 UTC 交易日开始；"
                               "回撤保护仍暂停开仓至 2023-10-04 00:00 UTC")
    state = p.state(T0 + DAY)
    assert [q.rule for q in state.active] == ["drawdown"] and not state.allows_entry()
    out = json.loads(json.dumps(state.to_dict(), allow_nan=False))
    assert out["allows_entry"] is False and [a["until_ms"] for a in out["active"]] == [T0 + 30 * DAY]
    assert [(h["rule"], h["active"]) for h in out["history"]] == [("daily_loss", False), ("drawdown", True)]


def test_active_lists_the_pauses_covering_a_moment_earliest_lift_first_and_last_lifted() -> None:
    p = Protections()
    assert p.active(T0) == () and p.last_lifted(T0) is None
    _feed(p, [(T0, 10_000), (T0 + H, 9_600)])                    # daily 4 %: until midnight
    p.observe_equity(T0 + 23 * H, 9_000)                         # drawdown 10 %: until T0 + 30 days
    assert [q.rule for q in p.active(T0 + 23 * H)] == ["daily_loss", "drawdown"]
    assert [q.rule for q in p.active(T0 + H - 1)] == []          # before the first pause began
    assert p.last_lifted(T0 + 23 * H) is None
    p.observe_equity(T0 + DAY, 9_000)
    assert [q.rule for q in p.active(T0 + DAY)] == ["drawdown"]
    lifted = p.last_lifted(T0 + DAY)
    assert lifted is not None and lifted.rule == "daily_loss" and lifted.until_ms == T0 + DAY
    assert p.allows_entry(T0 + DAY) is (p.active(T0 + DAY) == ())


def test_a_rule_set_to_zero_is_off() -> None:
    p = Protections(ProtectionConfig(max_drawdown_percent=0, daily_loss_limit_percent=0,
                                     stoploss_guard_trades=0))
    _feed(p, [(T0, 10_000), (T0 + H, 1_000)])
    for h in range(2, 8):
        p.observe_close(_stop(T0 + h * H, -100))
    s = p.state(T0 + 8 * H)
    assert s.allows_entry() and s.history == ()
    assert s.drawdown is None and s.daily_loss is None and s.stoploss_guard is None


def test_equity_observations_must_come_in_time_order() -> None:
    p = Protections()
    p.observe_equity(T0 + H, 10_000)
    p.observe_equity(T0 + H, 10_001)                             # the same time is fine
    with pytest.raises(ValueError, match=r"^time_ms=.* time order"):
        p.observe_equity(T0, 10_000)
    with pytest.raises(ValueError, match=r"^equity=nan is invalid"):
        p.observe_equity(T0 + 2 * H, float("nan"))


# ------------------------------------------------------------------ fold == rebuild
def _scripted_facts(seed: int = 11) -> tuple[list[EquityPoint], list[ClosedTrade]]:
    """Ten days: equity every 15 minutes on a random walk with losing stretches, and closes
    of every kind (deterministic for a seed)."""
    rng = random.Random(seed)
    equity = 10_000.0
    points: list[EquityPoint] = []
    closes: list[ClosedTrade] = []
    kinds = ("stop", "stop", "trailing", "target", "signal", "break_even", "liquidation")
    for i in range(10 * 96):
        t = T0 + i * 15 * M
        drift = -0.004 if (i // 96) % 3 == 1 else 0.0005        # every third day bleeds
        equity *= 1 + drift + rng.gauss(0, 0.004)
        points.append(EquityPoint(t, round(equity, 2)))
        if rng.random() < 0.12:
            kind = rng.choice(kinds)
            pnl = round(rng.gauss(-30 if kind in ("stop", "liquidation") else 20, 15), 2)
            closes.append(ClosedTrade(t, kind, pnl, rng.choice(("BTCUSDT", "ETHUSDT")), len(closes) + 1))
    return points, closes


def test_the_scripted_path_exercises_every_rule() -> None:
    points, closes = _scripted_facts()
    rules = {p.rule for p in evaluate(None, T0 + 10 * DAY, points, closes).history}
    assert rules == {"drawdown", "daily_loss", "stoploss_guard"}


@pytest.mark.slow
def test_incremental_fold_equals_a_rebuild_at_every_step() -> None:
    points, closes = _scripted_facts()
    cfg = ProtectionConfig()
    by_time: dict[int, list[ClosedTrade]] = {}
    for c in closes:
        by_time.setdefault(c.closed_ms, []).append(c)
    closes_first, equity_first = Protections(cfg), Protections(cfg)
    for pt in points:
        now = pt.time_ms
        # the same facts interleaved two ways, with questions in between: none of it matters
        for c in by_time.get(now, []):
            closes_first.observe_close(c)
        closes_first.observe_equity(now, pt.equity)
        closes_first.allows_entry(now + DAY)
        equity_first.observe_equity(now, pt.equity)
        equity_first.state(now + 7 * DAY)
        for c in by_time.get(now, []):
            equity_first.observe_close(c)
        rebuilt = evaluate(cfg, now, points, closes)            # later facts are left out
        assert closes_first.state(now) == rebuilt
        assert equity_first.state(now) == rebuilt
        assert closes_first.allows_entry(now) == rebuilt.allows_entry()
        assert closes_first.state(now).to_dict() == rebuilt.to_dict()


def test_closes_in_any_order_give_the_same_state() -> None:
    points, closes = _scripted_facts()
    shuffled = list(closes)
    random.Random(3).shuffle(shuffled)
    p = Protections()
    for i, pt in enumerate(points):
        p.observe_equity(pt.time_ms, pt.equity)
        if i % 40 == 39:                              # closes reconciled in batches, out of order
            for c in shuffled[:10]:
                p.observe_close(c)
            del shuffled[:10]
    for c in shuffled:
        p.observe_close(c)
    end = points[-1].time_ms
    assert p.state(end) == evaluate(None, end, points, closes)


def test_a_restart_from_the_recorded_facts_continues_with_the_same_events() -> None:
    points, closes = _scripted_facts()
    cfg = ProtectionConfig()

    def run(p: Protections, pts: list[EquityPoint], cls: list[ClosedTrade]) -> list[dict]:
        out: list[dict] = []
        for pt in pts:
            for c in cls:
                if c.closed_ms == pt.time_ms:
                    out += [e.to_dict() for e in p.observe_close(c)]
            out += [e.to_dict() for e in p.observe_equity(pt.time_ms, pt.equity)]
        return out

    whole = Protections(cfg)
    events = run(whole, points, closes)
    assert {e["kind"] for e in events} == {"started", "lifted"}
    for k in (1, 137, 300, 511, 800, len(points) - 1):            # killed after fact k-1
        cut = points[k].time_ms
        before = Protections(cfg)
        told = run(before, points[:k], [c for c in closes if c.closed_ms < cut])
        restarted = Protections.rebuild(cfg, points[:k], [c for c in closes if c.closed_ms < cut])
        assert restarted.state(cut - 1) == before.state(cut - 1)
        told += run(restarted, points[k:], [c for c in closes if c.closed_ms >= cut])
        assert told == events                                    # nothing repeated, nothing lost
        assert restarted.state(points[-1].time_ms) == whole.state(points[-1].time_ms)


def test_closes_read_back_from_a_reopened_store_rebuild_the_same_pause(tmp_path) -> None:
    path = tmp_path / "agent.db"
    store = KnowledgeStore(path)
    live = Protections(STOPS_ONLY)
    events: list[ProtectionEvent] = []
    for i, h in enumerate((1, 2, 3)):
        t = T0 + h * H
        tid = store.open_trade(symbol="BTCUSDT", side="LONG", entry_client_order_id=f"e{i}",
                               opened_ms=t - 30 * M, entry_price=100.0, quantity=1.0, stop_price=99.0,
                               target_price=103.0, leverage=10, features={}, perception={}, action={})
        store.record_exit(tid, client_order_id=f"x{i}", time_ms=t, kind="stop", price=99.0,
                          quantity=1.0, pnl=-1.0, fee=0.05)
        row = store.close_trade(tid, closed_ms=t, exit_reason="stop", reward={}, summary_zh="", summary_en="")
        events += live.observe_close(ClosedTrade.from_row(row))
    store.close()                                                # the process dies here
    reopened = KnowledgeStore(path)
    rebuilt = Protections.rebuild(STOPS_ONLY, [], [ClosedTrade.from_row(r)
                                                   for r in reopened.trades(status="closed")])
    reopened.close()
    assert [e.kind for e in events] == ["started"]
    assert rebuilt.state(T0 + 4 * H) == live.state(T0 + 4 * H)
    assert not rebuilt.allows_entry(T0 + 4 * H) and rebuilt.allows_entry(T0 + 11 * H)


def test_same_facts_same_answer() -> None:
    points, closes = _scripted_facts()
    a = json.dumps(evaluate(None, T0 + 10 * DAY, points, closes).to_dict(), allow_nan=False)
    b = json.dumps(evaluate(None, T0 + 10 * DAY, list(points), list(reversed(closes))).to_dict(),
                   allow_nan=False)
    assert a == b


# ------------------------------------------------------------------ config validation
@pytest.mark.parametrize("field, value", [
    ("max_drawdown_percent", -1), ("max_drawdown_percent", 100), ("max_drawdown_percent", float("nan")),
    ("drawdown_lookback_days", 0), ("drawdown_lookback_days", 366),
    ("daily_loss_limit_percent", -0.5), ("daily_loss_limit_percent", "4"),
    ("stoploss_guard_trades", -1), ("stoploss_guard_trades", 2.5), ("stoploss_guard_trades", True),
    ("stoploss_guard_window_hours", 0), ("stoploss_guard_pause_hours", -8),
    ("stop_exit_kinds", ()), ("stop_exit_kinds", ["stop"]), ("stop_exit_kinds", ("stop", "")),
])
def test_config_rejects_a_bad_value_in_one_line_naming_the_field(field: str, value: object) -> None:
    bad: dict[str, Any] = {field: value}
    with pytest.raises(ValueError) as err:
        ProtectionConfig(**bad)
    msg = str(err.value)
    assert msg.startswith(f"{field}=") and field in msg.split("invalid:", 1)[1] and "\n" not in msg


def test_default_config_is_json_safe() -> None:
    cfg = ProtectionConfig()
    assert json.loads(json.dumps(cfg.to_dict())) == {
        "max_drawdown_percent": 10.0, "drawdown_lookback_days": 30.0, "daily_loss_limit_percent": 4.0,
        "stoploss_guard_trades": 3, "stoploss_guard_window_hours": 6.0, "stoploss_guard_pause_hours": 8.0,
        "stop_exit_kinds": ["stop", "trailing", "break_even", "liquidation"]}


def test_how_far_back_a_rebuild_reads() -> None:
    """Equity: the drawdown window plus a day (the daily reference); closes: at least that, and
    twice window + pause, so a long stop-loss pause and what it consumed are both rebuilt."""
    assert ProtectionConfig().equity_history_ms == 31 * DAY
    assert ProtectionConfig().close_history_ms == 31 * DAY
    long_pause = ProtectionConfig(stoploss_guard_window_hours=48, stoploss_guard_pause_hours=720)
    assert long_pause.close_history_ms == 2 * (48 + 720) * H
