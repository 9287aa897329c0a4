"""The risk protections through the real agent (rl.agent.protections over rl.risk): each rule
pauses entries on a scripted price path and lifts again, the pause is logged once at its start
and once at its lift, open positions are still managed, the next trade's thought chain notes
the pause, and a pause survives a restart from the same SQLite files.

The harness is tests/support/scripted_world.py's: the analysis says "enter long" at every 15m
close (score 60), so whether the agent enters is the protections' decision alone; support 99
and ATR 1 put every stop at 98.5, and a bar with a low of 98 stops a long out.
"""
from __future__ import annotations

import json

import pytest

from tests.support.protection_paths import DAY, ONLY_DAILY, ONLY_STOPS, entered_at, lines, run_to, stop_outs, trades
from tests.support.scripted_world import MIN, T0, World


def test_daily_loss_limit_stops_entries_after_that_days_losses_until_utc_midnight(tmp_path):
    w = World(tmp_path, stop_outs(2, 1500), daily_loss_limit_percent=1.5, **ONLY_DAILY)
    w.script.long = 60.0
    w.cycle()                                   # the first cycle (it primes the analysis)
    run_to(w, T0 + 120 * MIN)                   # 01:00 and 01:15 entries, both stopped out
    t1, t2 = trades(w)
    assert (t1["exit_reason"], t2["exit_reason"]) == ("stop", "stop")
    assert t1["net_pnl"] + t2["net_pnl"] < -150                  # over 1.5 % of 10,000
    # at the 01:30 close the account is 1.5 % below where the day began: no entry, a pause
    # until 00:00 UTC, started and logged once
    assert len(trades(w)) == 2 and w.state is None
    (started,) = lines(w, "⛔ 日亏损保护")
    assert started["time_ms"] == T0 + 90 * MIN and started["level"] == "WARNING"
    assert "2024-01-02 00:00 UTC" in started["message_en"]
    (active,) = w.agent.status()["protections"]["active"]
    assert active["rule"] == "daily_loss" and active["until_ms"] == T0 + DAY
    run_to(w, T0 + DAY - MIN)                   # the signal holds all day: 90 closes, no entry
    assert len(trades(w)) == 2
    skipped = lines(w, "⏸ 做多信号未入场")
    assert len(skipped) == 1 and "daily loss limit" in skipped[0]["message_en"]
    # the 00:00 close of the next day: lifted (logged once), and the signal enters again
    run_to(w, T0 + DAY + 2 * MIN)
    (lifted,) = lines(w, "✅ 日亏损保护解除")
    assert lifted["time_ms"] == T0 + DAY and "entries allowed again" in lifted["message_en"]
    t3 = trades(w)[2]
    assert entered_at(w)[2] == T0 + DAY and w.state is not None
    note = w.store.trade(t3["id"])["thought_chain"]["perception"]["protections"]
    assert note["active"] == [] and note["last_lifted"]["rule"] == "daily_loss"
    assert note["last_lifted"]["until_ms"] == T0 + DAY
    json.dumps(note, allow_nan=False)
    assert w.agent.status()["protections"]["allows_entry"] is True
    w.close()


def test_stoploss_guard_pauses_after_three_stop_outs_and_lifts_after_8_hours(tmp_path):
    w = World(tmp_path, stop_outs(3, 660), **ONLY_STOPS)
    w.script.long = 60.0
    w.cycle()
    run_to(w, T0 + 110 * MIN)
    assert [t["exit_reason"] for t in trades(w)] == ["stop"] * 3
    (started,) = lines(w, "⛔ 止损保护")
    third_close = trades(w)[2]["closed_ms"]
    assert started["time_ms"] == third_close == T0 + 91 * MIN
    assert "3 stop-outs within 6 h" in started["message_en"]
    run_to(w, third_close + 8 * 60 * MIN - MIN)           # 8 h: still paused, the signal skipped
    assert len(trades(w)) == 3 and len(lines(w, "⏸ 做多信号未入场")) == 1
    run_to(w, T0 + 10 * 60 * MIN + 2 * MIN)               # 09:31 lifts; 09:45 is the next 15m close
    (lifted,) = lines(w, "✅ 止损保护解除")
    assert lifted["time_ms"] == third_close + 8 * 60 * MIN
    t4 = trades(w)[3]
    assert entered_at(w)[3] == T0 + (9 * 60 + 45) * MIN
    perception = w.store.trade(t4["id"])["thought_chain"]["perception"]
    assert perception["protections"]["last_lifted"]["rule"] == "stoploss_guard"
    hist = w.agent.status()["protections"]["history"]
    assert [(h["rule"], h["active"]) for h in hist] == [("stoploss_guard", False)]
    w.close()


def test_drawdown_guard_pauses_on_an_open_loss_keeps_managing_and_lifts_when_the_peak_leaves(tmp_path):
    # one long at 01:00 with a wide stop (support 90 -> stop 89.5); at 01:15 it is 4 points
    # down: 0.3 % of equity below the peak, entries paused; its stop still fills at 01:21
    path = [100.0] * 74 + [96.0] * 6 + [(96.0, 96.0, 89.0, 89.2)] + [96.0] * 1600
    w = World(tmp_path, path, max_drawdown_percent=0.3, drawdown_lookback_days=1.0,
              daily_loss_limit_percent=0.0, stoploss_guard_trades=0)
    w.script.long, w.script.support, w.script.resistance = 60.0, 90.0, 130.0
    w.cycle()
    assert w.state is not None and w.state.stop == pytest.approx(89.5)
    run_to(w, T0 + 76 * MIN)
    (started,) = lines(w, "⛔ 回撤保护")
    assert started["time_ms"] == T0 + 75 * MIN
    assert w.state is not None                            # the open position is still managed ...
    run_to(w, T0 + 3 * 60 * MIN)
    (t1,) = trades(w)
    assert t1["exit_reason"] == "stop" and t1["closed_ms"] == T0 + 81 * MIN     # ... to its stop
    assert len(lines(w, "⏸ 做多信号未入场")) == 1            # flat and paused: signals skipped
    # the 10,000 peak (01:00) and the 01:15 mark leave the 1-day window: lifted at 01:30 next day
    run_to(w, T0 + DAY + 92 * MIN)
    (lifted,) = lines(w, "✅ 回撤保护解除")
    assert lifted["time_ms"] == T0 + DAY + 90 * MIN
    assert entered_at(w)[1] == T0 + DAY + 90 * MIN and len(trades(w)) == 2
    w.close()


def test_a_pause_before_a_restart_is_the_same_pause_after_it(tmp_path):
    path = stop_outs(3, 700)
    w = World(tmp_path, path, persist=True, **ONLY_STOPS)
    w.script.long = 60.0
    w.cycle()
    run_to(w, T0 + 120 * MIN)                             # paused since 01:31, marks up to 02:00
    assert not w.agent.status()["protections"]["allows_entry"]
    live = w.agent.protections.state(T0 + 120 * MIN)
    w.close()                                             # the process dies (every write committed)

    w2 = World(tmp_path, path, persist=True, script=w.script, start_bar=120, **ONLY_STOPS)
    w2.cycle()
    assert w2.agent.protections.state(T0 + 120 * MIN) == live   # rebuilt from the SQLite files
    (active,) = w2.agent.status()["protections"]["active"]
    assert active["rule"] == "stoploss_guard" and active["until_ms"] == T0 + (91 + 480) * MIN
    run_to(w2, T0 + 9 * 60 * MIN)
    assert len(trades(w2)) == 3                           # still no entry after the restart
    run_to(w2, T0 + 10 * 60 * MIN)
    assert len(trades(w2)) == 4
    # its start was told before the restart only, its lift once after it
    assert len(lines(w2, "⛔ 止损保护")) == 1 and len(lines(w2, "✅ 止损保护解除")) == 1
    w2.close()


def test_equity_marks_are_written_at_15m_closes_and_read_back_at_start_up(tmp_path):
    w = World(tmp_path, [100.0] * 400, persist=True)
    w.cycle()
    run_to(w, T0 + 300 * MIN)
    marks = w.store.equity_marks.between(0, T0 + DAY)
    assert [t for t, _ in marks] == [T0 + k * 15 * MIN for k in range(4, 21)]   # 01:00 .. 05:00
    assert all(e == pytest.approx(10_000.0) for _, e in marks)
    w.close()
    w2 = World(tmp_path, [100.0] * 400, persist=True, start_bar=300)
    assert w2.agent.protections.state(T0 + 300 * MIN).drawdown.peak_equity == pytest.approx(10_000.0)
    w2.close()


# The child: the same path as above, in its own process, trading until the stop-loss guard has
# paused entries; then it says so and waits, to be killed by a signal (no close, no clean exit).
PAUSED_CHILD = r"""
import json, sys, pathlib
from tests.support.protection_paths import ONLY_STOPS, run_to, stop_outs
from tests.support.scripted_world import MIN, T0, World
w = World(pathlib.Path(sys.argv[1]), stop_outs(3, 700), persist=True, **ONLY_STOPS)
w.script.long = 60.0
w.cycle()
run_to(w, T0 + 120 * MIN)
print(json.dumps(w.agent.status()["protections"]["active"]), flush=True)
sys.stdin.read()                  # paused and idle until the signal comes
"""


def test_an_agent_killed_by_a_signal_during_a_pause_resumes_with_that_pause(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    from tests.support.paths import REPO_ROOT
    from tests.support.protection_paths import stop_outs
    from tests.support.scripted_world import Script, World

    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    with open(tmp_path / "child.err", "w") as err:
        p = subprocess.Popen([sys.executable, "-c", PAUSED_CHILD, str(tmp_path)], cwd=REPO_ROOT, env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True)
        line = p.stdout.readline()
        p.send_signal(signal.SIGKILL)
        p.wait(30)
    assert p.returncode == -signal.SIGKILL
    (before,) = json.loads(line or "null") or [(tmp_path / "child.err").read_text()[-2000:]]
    assert before["rule"] == "stoploss_guard" and before["until_ms"] == T0 + (91 + 480) * MIN

    script = Script()
    script.long = 60.0
    w = World(tmp_path, stop_outs(3, 700), persist=True, script=script, start_bar=120, **ONLY_STOPS)
    (active,) = w.agent.status()["protections"]["active"]       # restored at start-up
    assert (active["rule"], active["until_ms"]) == (before["rule"], before["until_ms"])
    w.cycle()
    run_to(w, T0 + 9 * 60 * MIN)
    assert len(trades(w)) == 3                                   # still no entry: the pause holds
    run_to(w, T0 + 10 * 60 * MIN)
    assert len(trades(w)) == 4                                   # and it lifts when it said it would
    assert len(lines(w, "⛔ 止损保护")) == 1 and len(lines(w, "✅ 止损保护解除")) == 1
    w.close()
