"""Deferred indicator updates in IncrementalAnalyzer (a backtest with a scan-ahead worker).

With a `scan_source`, 15m/8h/1w pushes only append to the rings and a backlog; a rescan the
source has a scan for takes the source's indicator snapshots, any other read flushes the
backlog into the IndicatorStates. Whatever the mix of hits and misses, every analysis,
snapshot and state must equal those of an analyzer that never deferred. The scan key
fingerprints every candle pushed (not just the ring), the same in every process.
"""
from __future__ import annotations

import functools
import math
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rl.analysis.analyzer import IncrementalAnalyzer, _state_snapshot
from rl.analysis.levels.book import LevelScan
from tests.conftest import make_candles

M15 = make_candles(1400, seed=5, freq="15min", price=80.0, vol=0.004)
T15 = (M15.index.asi8 // 1_000_000).tolist()
ROWS15 = list(zip(T15, *(M15[c].tolist() for c in ("open", "high", "low", "close", "volume"))))


def _stream(n: int):
    """(15m candle, 8h candle closing with it or None) for the first n 15m candles."""
    out = []
    for k in range(n):
        h8 = None
        if (k + 1) % 32 == 0:
            part = ROWS15[k - 31:k + 1]
            h8 = (part[0][0], part[0][1], max(p[2] for p in part), min(p[3] for p in part), part[-1][4],
                  math.fsum(p[5] for p in part))
        out.append((ROWS15[k], h8))
    return out


def _push(an: IncrementalAnalyzer, item) -> None:
    c15, h8 = item
    an.push_candle("15m", *c15)
    if h8 is not None:
        an.push_candle("8h", *h8)


def _same_value(a, b) -> bool:
    return a == b or (a != a and b != b)          # NaN where the other has NaN


def _same_snaps(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        a[tf].keys() == b[tf].keys() and all(_same_value(a[tf][k], b[tf][k]) for k in a[tf]) for tf in a)


def _worker_scans(stream) -> dict:
    """What rl.backtest.scan_ahead ships, made in-process: key -> prepared scan with the static parts
    and the snapshots of each close, from an analyzer that never defers."""
    w = IncrementalAnalyzer("X")
    out = {}
    for item in stream:
        _push(w, item)
        scan = w.prepare_scan()
        parts, added = w.static_parts()
        scan.static = (parts, list(scan.notes) + added)
        scan.snaps = dict(w.snaps)
        out[w.scan_key()] = scan
    return out


STREAM = _stream(1400)


@functools.cache
def _ahead() -> dict:
    return _worker_scans(STREAM)


def test_any_mix_of_hits_misses_and_skipped_closes_equals_never_deferring() -> None:
    """Hits for a stretch, then closes not scored at all (a long backlog), then forced misses,
    then hits again, then a source whose scans carry no snapshots: every analysis equals the
    one of an analyzer without a source, and at the end so do the snapshots and states."""
    ref = IncrementalAnalyzer("X")
    mine = IncrementalAnalyzer("X")
    took = {"hit": 0, "miss": 0}

    def source(key):
        k = phase["k"]
        if 400 <= k < 700 or k % 97 == 0:                # forced misses (and a few in between)
            took["miss"] += 1
            return None
        scan = _ahead().get(key)
        if scan is not None and k >= 1200:               # a source that ships no snapshots
            scan = pickle.loads(pickle.dumps(scan))
            scan.snaps = None
        took["hit" if scan is not None else "miss"] += 1
        return scan

    phase = {"k": 0}
    mine.scan_source = source
    deferred_max = 0
    for k, item in enumerate(STREAM):
        phase["k"] = k
        _push(ref, item)
        _push(mine, item)
        if 250 <= k < 380:                               # no rescan here: the backlog only grows
            continue
        deferred_max = max(deferred_max, len(mine._backlog.get("15m", ())))
        price, t = item[0][4] * (1 + 0.001 * (k % 7 - 3)), item[0][0] + 900_000
        a, b = mine.score(price, t), ref.score(price, t)
        assert a.to_dict() == b.to_dict(), k
        assert _same_snaps(mine.snaps, ref.snaps), k
    assert took["hit"] > 900 and took["miss"] > 300
    assert deferred_max >= 150                           # hits really left the states behind
    for tf, n in (("15m", 1400), ("8h", 1400 // 32)):
        s, r = mine.states[tf], ref.states[tf]
        assert s.count == r.count == n
        assert _same_snaps({tf: _state_snapshot(s, (0.0, 0.0, 0.0))}, {tf: _state_snapshot(r, (0.0, 0.0, 0.0))})
    assert not mine._backlog


def test_reads_between_closes_see_current_values() -> None:
    """`snaps`, `states`, `static_parts`, `scan_inputs` and the analysis' indicators read while
    a backlog is pending all flush it first; unsetting the source catches up at the next push."""
    ref = IncrementalAnalyzer("X")
    mine = IncrementalAnalyzer("X")
    mine.scan_source = lambda key: None
    for item in STREAM[:300]:
        _push(ref, item)
        _push(mine, item)
    assert len(mine._backlog["15m"]) == 300 and not mine._states   # nothing computed yet
    assert mine.states["15m"].count == 300 and not mine._backlog
    for item in STREAM[300:340]:
        _push(ref, item)
        _push(mine, item)
    assert _same_snaps(mine.snaps, ref.snaps)
    for item in STREAM[340:360]:
        _push(ref, item)
        _push(mine, item)
    assert mine.static_parts() == ref.static_parts()
    for item in STREAM[360:380]:
        _push(ref, item)
        _push(mine, item)
    assert mine.scan_inputs()[1:] == ref.scan_inputs()[1:]         # ATRs and reference price
    for item in STREAM[380:390]:
        _push(ref, item)
        _push(mine, item)
    assert _same_snaps({"8h": mine._indicators()["8h"]}, {"8h": ref._indicators()["8h"]})
    for item in STREAM[390:400]:
        _push(ref, item)
        _push(mine, item)
    mine.scan_source = None
    _push(ref, STREAM[400])
    _push(mine, STREAM[400])
    assert not mine._backlog and _same_snaps(mine._snaps, ref._snaps)
    assert mine.score(80.0, 0).to_dict() == ref.score(80.0, 0).to_dict()


def test_a_source_scan_for_another_state_is_never_offered_for_ours() -> None:
    """A state the worker never had (one candle differs) has a key of its own: a source
    keyed like rl.backtest.scan_ahead misses it, and the analyzer computes its own values."""
    changed = list(STREAM[:600])
    t, o, h, l, c, v = changed[550][0]
    changed[550] = ((t, o, h * 1.01, l, c, v), changed[550][1])
    ref = IncrementalAnalyzer("X")
    mine = IncrementalAnalyzer("X")
    hits = []
    mine.scan_source = lambda key: hits.append(key in _ahead()) or _ahead().get(key)
    for k, item in enumerate(changed):
        _push(ref, item)
        _push(mine, item)
        if k % 10 == 9:
            assert mine.score(c, 0).to_dict() == ref.score(c, 0).to_dict(), k
    assert all(hits[:55]) and not any(hits[55:])


def test_the_key_fingerprints_history_the_ring_no_longer_holds() -> None:
    """Two analyzers whose rings hold the same last 60 candles but whose earlier candles
    differ (so their indicator states do) get different keys; the same candles, equal keys."""
    def key_after(rows, max_bars=60):
        an = IncrementalAnalyzer("X", max_bars=max_bars)
        for r in rows:
            an.push_candle("15m", *r)
        return an.scan_key()

    rows = ROWS15[:200]
    other = [(rows[0][0], rows[0][1], rows[0][2], rows[0][3], rows[0][4] * 1.001, rows[0][5])] + rows[1:]
    assert key_after(rows) == key_after(list(rows))
    assert key_after(rows) != key_after(other)
    assert key_after(rows, 500)[0][:7] == key_after(other, 500)[0][:7]   # same last candle and count


def test_the_key_does_not_depend_on_the_hash_seed() -> None:
    """A spawned worker has its own PYTHONHASHSEED; its keys must equal the agent's."""
    code = ("import sys; sys.path.insert(0, '.');"
            "from tests.test_deferred_indicators import ROWS15; from rl.analysis.analyzer import IncrementalAnalyzer;"
            "an = IncrementalAnalyzer('X'); [an.push_candle('15m', *r) for r in ROWS15[:100]];"
            "print(repr(an.scan_key()))")
    root = Path(__file__).resolve().parents[1]
    outs = []
    for seed in ("0", "4242"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        outs.append(subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True,
                                   text=True, check=True).stdout)
    an = IncrementalAnalyzer("X")
    for r in ROWS15[:100]:
        an.push_candle("15m", *r)
    assert outs[0] == outs[1] == repr(an.scan_key()) + "\n"


def test_level_scan_carries_snapshots_through_pickle_outside_equality() -> None:
    scan = next(iter(_ahead().values()))
    back = pickle.loads(pickle.dumps(scan))
    assert back == scan and _same_snaps(back.snaps, scan.snaps) and back.static == scan.static
    bare = LevelScan.empty(1.0, float("nan"), ["n"])
    assert bare.snaps is None and bare == scan.__class__.empty(1.0, float("nan"), ["n"])
    bare.snaps = {"15m": {"atr": 1.0}}
    assert bare == LevelScan.empty(1.0, float("nan"), ["n"])       # snapshots are not part of ==
    old = LevelScan.__new__(LevelScan)
    old.__setstate__(bare.__getstate__()[:6])                     # a 6-field state still loads
    assert old.snaps is None and old == bare


def test_push_candle_still_checks_its_inputs_while_deferring() -> None:
    an = IncrementalAnalyzer("X")
    an.scan_source = lambda key: None
    an.push_candle("15m", *ROWS15[0])
    with pytest.raises(ValueError, match="open_time_ms"):
        an.push_candle("15m", *ROWS15[0])
    with pytest.raises(ValueError, match="tf"):
        an.push_candle("4h", *ROWS15[1])
    assert np.isfinite(an.snaps["15m"]["close"])


def test_states_sent_now_and_then_bound_the_backlog_and_change_nothing() -> None:
    """The worker sends its indicator states with the last scan of each message: the agent
    adopts them, so its backlog never holds more than a message's candles, and every analysis,
    snapshot and state still equals those of an analyzer that never deferred."""
    import copy
    every = 40
    w = IncrementalAnalyzer("X")
    ahead = {}
    for k, item in enumerate(STREAM):
        _push(w, item)
        scan = w.prepare_scan()
        parts, added = w.static_parts()
        scan.static = (parts, list(scan.notes) + added)
        scan.snaps = dict(w.snaps)
        if k % every == every - 1:
            scan.states = copy.deepcopy(w.states)
        ahead[w.scan_key()] = pickle.loads(pickle.dumps(scan))       # as the pipe delivers it
    ref, mine = IncrementalAnalyzer("X"), IncrementalAnalyzer("X")
    mine.scan_source = ahead.get
    longest = 0
    for k, item in enumerate(STREAM):
        _push(ref, item)
        _push(mine, item)
        longest = max(longest, len(mine._backlog.get("15m", ())))
        price, t = item[0][4] * (1 + 0.001 * (k % 5 - 2)), item[0][0] + 900_000
        assert mine.score(price, t).to_dict() == ref.score(price, t).to_dict(), k
        assert _same_snaps(mine.snaps, ref.snaps), k
    assert longest == every                              # bounded by the states sent
    for tf, n in (("15m", 1400), ("8h", 1400 // 32)):
        s, r = mine.states[tf], ref.states[tf]
        assert s.count == r.count == n
        assert _same_snaps({tf: _state_snapshot(s, (0.0, 0.0, 0.0))}, {tf: _state_snapshot(r, (0.0, 0.0, 0.0))})
