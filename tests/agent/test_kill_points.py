"""SIGKILL the agent at exact points inside its entry sequence, restart it, and check that no
position was ever without its stop and that the store equals the exchange's ledger.

The agent runs in a child process in testnet mode against the fake Binance server
(tests/support/fake_binance_server.py), which runs here in the test process. The server's kill
hooks SIGKILL the child when the entry reaches a given point, so the kill lands exactly there
whatever the machine's load (no sleeps: the hook fires on the request itself, and the test
waits for the process to exit):
- plan_written: the entry order POST arrives (its intent is in the store), not processed;
- order_sent: the entry order was processed (filled), no answer sent;
- fill_seen: the agent read the fill (the first request after the entry's answer);
- stop_placed: the protective stop was placed, no answer sent.
During the whole run (both processes) the server checks at every cycle boundary that each
open position has a reduce-only stop for its whole size: not once may one be crossed without.

`test_the_checks_catch_a_broken_recovery` runs the same checks on two mutants of the agent (no
protective stop after an entry; no entry plan written) and requires them to fail: checks that
cannot fail would prove nothing.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from rl.knowledge.store import KnowledgeStore
from tests.support.binance_world import END_BAR, ledger_problems, market_frame, new_server
from tests.support.fake_binance_server import FakeBinanceServer, KillHook
from tests.support.paths import REPO_ROOT

pytestmark = pytest.mark.slow          # each case starts the agent in two child processes

CHILD = r"""
import sys, pathlib
from tests.support.binance_world import Rig, clock_at_start, market_frame
from tests.support.scripted_world import MIN, T0

d, url, end_bar, mutant = pathlib.Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
if mutant == "no_stop":          # the router never places the protective stop after an entry fill
    from rl.execution.entries import EntryDesk
    real = EntryDesk._after_entry
    def _after_entry(self, *a, **k):
        self.stops.protect = lambda state, trigger: "ok"
        try:
            return real(self, *a, **k)
        finally:
            del self.stops.protect
    EntryDesk._after_entry = _after_entry
elif mutant == "no_plan":        # the agent never writes the entry plan (intent) before sending
    from rl.knowledge.store import KnowledgeStore
    real_set = KnowledgeStore.set_state
    def set_state(self, key, value, time_ms=0):
        if not key.startswith("intent:"):
            real_set(self, key, value, time_ms)
    KnowledgeStore.set_state = set_state
clock = clock_at_start()
rig = Rig(d / "agent.db", url, market_frame(), clock, timeout=15.0)   # no timeout faults here
saved = rig.store.get_state("test_clock")
if saved:
    clock.set(saved)
rig.agent.startup()
print("started", flush=True)
end = T0 + end_bar * MIN
while clock.now_ms() < end:
    rig.agent.run_cycle()
    clock.advance(60)
    rig.store.set_state("test_clock", clock.now_ms())
print("finished", flush=True)
"""

O, A = "POST /fapi/v1/order", "POST /fapi/v1/algoOrder"


def _entry(p: dict) -> bool:
    return p.get("reduceOnly") != "true"


POINTS = {                                   # kill point -> (endpoint, phase, predicate)
    "plan_written": (O, "before", _entry),
    "order_sent": (O, "after", _entry),
    "fill_seen": (O, "next", _entry),
    "stop_placed": (A, "after", None),
}


class Child:
    """The agent's process, started on demand; `kill` is what a hook calls."""

    def __init__(self, tmp_path: Path, url: str, mutant: str) -> None:
        self.tmp_path, self.url, self.mutant = tmp_path, url, mutant
        self.proc: subprocess.Popen | None = None
        self.killed = 0

    def start(self) -> subprocess.Popen:
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        out = open(self.tmp_path / "child.out", "a")   # files, not pipes: a full pipe blocks the child
        err = open(self.tmp_path / "child.err", "a")
        self.proc = subprocess.Popen([sys.executable, "-c", CHILD, str(self.tmp_path), self.url, str(END_BAR),
                                      self.mutant], cwd=REPO_ROOT, stdout=out, stderr=err, env=env)
        return self.proc

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.killed += 1

    def log(self) -> str:
        return (self.tmp_path / "child.err").read_text()[-3000:]


def run_kill_and_restart(tmp_path: Path, point: str | None, mutant: str = "none") -> tuple[FakeBinanceServer, list[str]]:
    """Run the agent until the kill `point` (None: no kill), restart it, run to the end; the
    server and the store's disagreements with its ledger."""
    frame = market_frame()
    with new_server(frame) as server:
        child = Child(tmp_path, server.url, mutant)
        if point is not None:
            endpoint, phase, when = POINTS[point]
            server.hooks = [KillHook(endpoint, phase, child.kill, when=when)]
        p = child.start()
        p.wait(timeout=180)
        if point is not None:
            assert p.returncode == -signal.SIGKILL and child.killed == 1, \
                f"the kill point {point} was never reached: {child.log()}"
            p = child.start()
            p.wait(timeout=180)
        assert p.returncode == 0, child.log()
        assert "finished" in (tmp_path / "child.out").read_text()
        store = KnowledgeStore(tmp_path / "agent.db")
        try:
            problems = ledger_problems(server, store)
            assert store.integrity_check() == "ok"
        finally:
            store.close()
    if server.max_unprotected:
        problems.append(f"a position crossed a cycle boundary without its stop at {server.unprotected_events}")
    if server.duplicate_entries:
        problems.append(f"{server.duplicate_entries} duplicate entries")
    return server, problems


# entries filled over the whole run: the scenario's three, except after a kill before the first
# entry was processed (plan_written): that one never reached the exchange, and the restarted
# agent does not take the signal at its restart bar while that entry's outcome is still being
# found out (#13 item 2: a sent entry stays pending, with its plan, for its lookup window)
ENTRIES = {"plan_written": 2}


@pytest.mark.parametrize("point", list(POINTS))
def test_kill_inside_the_entry_sequence_then_restart(tmp_path, point):
    server, problems = run_kill_and_restart(tmp_path, point)
    assert not problems
    assert len(server.entry_orders()) >= ENTRIES.get(point, 3)   # the run went on trading after the restart


@pytest.mark.parametrize("mutant, point, expect", [
    ("no_stop", None, "without its stop"),
    ("no_plan", "order_sent", "adopted"),
])
def test_the_checks_catch_a_broken_recovery(tmp_path, mutant, point, expect):
    _, problems = run_kill_and_restart(tmp_path, point, mutant)
    assert any(expect in p for p in problems), problems
