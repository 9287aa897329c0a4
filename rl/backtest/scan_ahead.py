"""A backtest's level scans, computed ahead in a second process while the agent trades.

Why this is sound: a level scan's expensive part (candidates, merge, touch statistics,
features: `BestLevelFinder.prepare`) depends only on the closed 15m/8h/1w candles and their
ATRs, never on trades or on the learned weights (those are applied by `rank`, in the agent's
process, at the moment of the decision). The candles a backtest will close are known from
the archive, so a worker can run the analyzer's candle pipeline over them and prepare every
15m close's scan before the agent gets there; the agent's analyzer takes a prepared scan only
when its own `scan_key()` (candles held, the last one of each timeframe, a fingerprint of
every candle pushed) is equal, and otherwise computes the scan itself. Each scan also carries
the worker's indicator snapshots after its close: under an equal key they are the agent's
own, so the agent defers its indicator updates and computes them only at a miss. So the
trades are identical with or without the worker (tests/test_scan_ahead.py checks every scan
of real months), only faster: on a 2-core machine the agent and the scans run side by side.

Causality: the worker forms candles from the archive exactly as the agent does (first open,
max high, min low, last close, fsum of volumes), and a scan at a 15m close sees only candles
closed by then; the backtest's no-lookahead test runs with the worker.
"""
from __future__ import annotations

import gc
import logging
import multiprocessing as mp
import pickle
import queue
import sys
import threading
import traceback
from bisect import bisect_left
from collections import deque
from multiprocessing.reduction import ForkingPickler
from typing import Any, Iterator

import numpy as np
import pandas as pd

from rl.analysis.levels import candidates as lv
from rl.analysis.levels import touches as ts
from rl.analysis.levels.finder import BestLevelFinder, LevelScan
from rl.market.candles import DETAIL_SUM_COLUMNS, INTERVAL_MS, MINUTE_MS, aggregate_arrays, bucket_end, bucket_start, index_to_ms
from rl.analysis.levels.window_cache import WindowCache
from rl.strategy.params import StrategyParams

log = logging.getLogger(__name__)

CHUNK = 48          # scans per message: few enough to start the agent early, many to cut overhead
FIRST_CHUNK = 4     # scans of the first message: the agent waits for it
LOOKAHEAD = 16      # messages the worker may have ready beyond the pipe (~200 KB each)


def level_scans(frame: pd.DataFrame, symbol: str, first: int, n: int, week0: int,
                chunk: int = CHUNK, primed: dict[str, pd.DataFrame] | None = None,
                params: StrategyParams = StrategyParams()) -> Iterator[list[tuple[tuple, LevelScan]]]:
    """Lists of (scan_key, prepared scan), one per 15m close of the backtest over frame bars
    [first, first + n), in time order, starting from the analyzer state
    `rl.backtest.engine.prime_frames` gives the agent. The candles are pushed in close-time order; at
    each 15m close the 8h/1w candles closing with it are pushed first, as the agent does,
    then the scan's inputs are taken; every `chunk` closes they are prepared together
    (`BestLevelFinder.prepare_many`). The first chunks are smaller, so the agent waits less
    at the start. `params`: the agent's (the scans' features and score parts depend on them)."""
    from rl.analysis.analyzer import IncrementalAnalyzer
    from rl.backtest.engine import prime_frames

    # the prime frames: given by the backtest (computed once, before the worker started), or
    # made here the same way
    frames = primed if primed is not None else prime_frames(frame, first, week0)[0]
    an = IncrementalAnalyzer(symbol, score_params=params.score, level_params=params.levels)
    an.push_frames({tf: df for tf, df in frames.items() if tf != "1m"})   # as agent.prime, minus its scan
    primed = {tf: an.rings[tf].last_time() if tf in an.rings else None for tf in ("15m", "8h", "1w")}
    del frames
    archive = _Archive(frame, first + n)
    # the 1m rows after the prime's last candle of each timeframe form the newer candles: only
    # those are aggregated, and first only those of the first chunk's closes (the fsum of
    # every volume is most of this setup's cost): the rest waits until the agent has them
    lo = {tf: archive.after(primed[tf], tf) for tf in ("15m", "8h", "1w")}
    cut = archive.cut(lo["15m"], min(chunk, FIRST_CHUNK))
    head = {tf: archive.candles(tf, lo[tf], max(lo[tf], archive.before(cut, tf))) for tf in lo}
    higher = {tf: deque(head[tf]) for tf in ("8h", "1w")}
    r15 = an.rings.get("15m")
    held = r15.bars() if r15 is not None else None
    base = len(held) if held is not None else 0
    series = None                                     # made with the rest: the first closes go without
    todo: list = []                                   # (scan key, inputs, 15m window or None)
    sent = k = 0
    for stage in (head["15m"], None):
        if stage is None:                             # the rest of the run
            rest = {tf: archive.candles(tf, max(lo[tf], archive.before(cut, tf)), archive.rows) for tf in lo}
            for tf, q in higher.items():
                q.extend(rest[tf])
            series = _Series15m(held, head["15m"] + rest["15m"])
            stage = rest["15m"]
        for c15 in stage:
            an.push_candle("15m", *c15)
            end15 = c15[0] + INTERVAL_MS["15m"]
            for tf, q in higher.items():
                while q and q[0][0] + INTERVAL_MS[tf] <= end15:
                    an.push_candle(tf, *q.popleft())
            k += 1
            inp = an.scan_inputs()
            win = None if isinstance(inp, LevelScan) else (inp[0].get("15m"), inp[1].get("15m", float("nan")), base + k)
            # a shallow copy: a push replaces a timeframe's snapshot dict, never mutates it, so
            # the 8h/1w ones are the same objects across closes and pickle sends each once per message
            todo.append((an.scan_key(), inp, win, an.static_parts(), dict(an.snaps)))
            if len(todo) >= min(chunk, FIRST_CHUNK << (2 * sent)):    # 4, 16, then chunk (48)
                yield _prepared(an.finder, series, todo, an.states)
                todo = []
                sent += 1
    if todo:
        yield _prepared(an.finder, series, todo, an.states)


class _Archive:
    """The 1m rows a backtest will see, as arrays, aggregated into closed candles a span of
    rows at a time: a span cut at a bucket boundary of the timeframe gives the very candles
    of the whole (no bucket straddles the cut)."""

    def __init__(self, frame: pd.DataFrame, rows: int) -> None:
        self.rows = rows
        self.open_ms = index_to_ms(frame.index[:rows])
        self.last_close = int(self.open_ms[-1]) + MINUTE_MS if rows else 0
        self.cols = {c: frame[c].to_numpy()[:rows] for c in ("open", "high", "low", "close", "volume")}
        for c in DETAIL_SUM_COLUMNS:
            self.cols[c] = np.zeros(rows, dtype=np.int64)   # unused here; integer zeros sum for free

    def after(self, last_open: int | None, tf: str) -> int:
        """The first row after the candle of tf opening at last_open (0 for none)."""
        return 0 if last_open is None else int(np.searchsorted(self.open_ms, bucket_end(last_open, tf), side="right"))

    def cut(self, lo: int, closes: int) -> int:
        """The open time of the 15m bucket `closes` buckets after the one of row lo: the
        rows before it hold the first chunk's closes (fewer across a gap)."""
        return (bucket_start(int(self.open_ms[lo]), "15m") + closes * INTERVAL_MS["15m"]) if lo < self.rows else 0

    def before(self, t_ms: int, tf: str) -> int:
        """The first row of the tf bucket holding t_ms: rows before it fill whole buckets."""
        return int(np.searchsorted(self.open_ms, bucket_start(t_ms, tf), side="left"))

    def candles(self, tf: str, a: int, b: int) -> list[tuple]:
        """(open time, open, high, low, close, volume) of the tf candles of rows [a, b),
        closed by the last row (as the agent forms them)."""
        t, agg = aggregate_arrays(self.open_ms[a:b], {c: v[a:b] for c, v in self.cols.items()}, tf)
        keep = np.asarray(bucket_end(t, tf)) <= self.last_close
        return [(int(x), *row) for x, row in zip(
            t[keep].tolist(), zip(*(agg[c][keep].tolist() for c in ("open", "high", "low", "close", "volume"))))]


def _prepared(finder: BestLevelFinder, series: "_Series15m | None", todo: list,
              states: dict) -> list[tuple[tuple, LevelScan]]:
    """(scan key, prepared scan) for a chunk of closes (scan key, inputs, 15m window, static
    score parts, indicator snapshots): the 15m window caches, cut from the series, travel
    with the inputs; each scan carries the entry score's static components of its close
    (taken when the close's indicators were current) and those indicator snapshots, so the
    agent need compute neither (`IncrementalAnalyzer.score`). The last scan also carries a
    copy of the indicator states after its close (`states`, the analyzer's, current at the
    last close of the chunk), which bounds the agent's backlog of deferred candles."""
    wins = [w for _, _, w, _, _ in todo if w is not None]
    caches = iter(series.caches(wins) if series is not None else [None] * len(wins))
    inputs = [inp if w is None else (*inp, next(caches)) for _, inp, w, _, _ in todo]
    scans = finder.prepare_many(inputs)
    for scan, (_, _, _, (parts, added), snaps) in zip(scans, todo):
        scan.static = (parts, list(scan.notes) + added)
        scan.snaps = snaps
    if scans:
        # a copy (the worker pushes on into its own): through pickle, ~3x cheaper than deepcopy
        scans[-1].states = pickle.loads(pickle.dumps(states, pickle.HIGHEST_PROTOCOL))
    return list(zip([key for key, _, _, _, _ in todo], scans))


class _Series15m:
    """The whole 15m series a backtest will close (primed candles, then the stream), so a
    window's swing pivots, forward extremes and zero-range count are slices of arrays
    computed once instead of recomputed over 500 candles at every close, and its touch
    statistics read the series itself (`ts.touch_stats_windows`). All are local (a pivot
    needs 3 candles each side, a forward extreme the next 12), so inside a window they
    equal the window's own (only the last 12 forward extremes are cut by the window's end)."""

    def __init__(self, held: lv.Bars | None, stream: list[tuple]) -> None:
        cols = list(zip(*stream)) if stream else [()] * 6
        t, _, h, l, c, v = (np.array(x, dtype=np.int64 if k == 0 else float) for k, x in enumerate(cols))
        if held is not None:
            t, h, l, c, v = (np.concatenate([old, new]) for old, new in
                             zip((held.t, held.h, held.l, held.c, held.v), (t, h, l, c, v)))
        self.prep = ts.series_prep(t, h, l, c, v)
        s = lv.PIVOT_STRENGTH["15m"]
        ph, pl = lv.pivots(h, l, s)
        self.ph_list, self.pl_list = ph.tolist(), pl.tolist()   # bisect beats searchsorted per scalar
        # each pivot's candidate columns (price, timeframe code, source code, time), sliced per window
        self.ph_cand = (h[ph], np.zeros(len(ph), np.int64), np.zeros(len(ph), np.int64), t[ph])
        self.pl_cand = (l[pl], np.zeros(len(pl), np.int64), np.ones(len(pl), np.int64), t[pl])

    def caches(self, windows: list[tuple[lv.Bars | None, float, int]]) -> list[WindowCache | None]:
        """The 15m window cache of each (bars, atr, end), bars = series[end - len(bars):end],
        built from the series, with the windows' volume nodes found together; None for a
        window that is not that slice or has no usable ATR (the finder builds its own)."""
        fits = [self._fits(*w) for w in windows]
        ext = iter(self._extremes([(end - len(b), end) for (b, _, end), f in zip(windows, fits) if f]))
        ext = [next(ext) if f else None for f in fits]
        nodes = iter(lv.volume_nodes_many([(b.h, b.l, b.v, atr, e)
                                           for (b, atr, _), f, e in zip(windows, fits, ext) if f]))
        return [self._cache(b, atr, end, next(nodes), e) if f else None
                for (b, atr, end), f, e in zip(windows, fits, ext)]

    def _extremes(self, spans: list[tuple[int, int]]) -> list[tuple[float, float]]:
        """(lowest low, highest high) of series[a:end] for each (a, end), end - a >= 2, in a
        few calls for all: reduceat over [a, end - 1), then the last candle (exact: min/max)."""
        if not spans:
            return []
        idx = np.array(spans).ravel() - np.tile([0, 1], len(spans))      # a, end - 1, ...
        last = idx[1::2]
        lows = np.minimum(np.minimum.reduceat(self.prep.l, idx)[::2], self.prep.l[last])
        highs = np.maximum(np.maximum.reduceat(self.prep.h, idx)[::2], self.prep.h[last])
        return list(zip(lows.tolist(), highs.tolist()))

    def _fits(self, bars: lv.Bars | None, atr: float, end: int) -> bool:
        """Whether `bars` is series[end - len(bars):end] (long enough for the cut forward
        extremes) with a usable ATR."""
        if bars is None or not (atr == atr and atr > 0):
            return False
        n = len(bars)
        a = end - n
        t = self.prep.t
        return not (n <= 2 * lv.LOOKAHEAD or a < 0 or end > len(t) or int(t[a]) != int(bars.t[0])
                    or int(t[end - 1]) != int(bars.t[-1]))

    def _cache(self, bars: lv.Bars, atr: float, end: int, nodes: np.ndarray,
               extremes: tuple[float, float]) -> WindowCache:
        """The cache of a window that `_fits`, given its volume nodes and (lowest low,
        highest high)."""
        a = end - len(bars)
        s = lv.PIVOT_STRENGTH["15m"]
        i = slice(bisect_left(self.ph_list, a + s), bisect_left(self.ph_list, end - s))
        j = slice(bisect_left(self.pl_list, a + s), bisect_left(self.pl_list, end - s))
        k = len(nodes)
        pieces = [tuple(x[i] for x in self.ph_cand), tuple(x[j] for x in self.pl_cand),
                  (nodes, _NODE_CODES[0][:k], _NODE_CODES[1][:k], np.full(k, bars.t[0]))]
        return WindowCache(bars, atr, "15m", pieces, (self.prep, a, end, extremes[1] - extremes[0]))


# a 15m volume node's timeframe and source codes (a window has at most MAX_NODES nodes)
_NODE_CODES = (np.zeros(lv.MAX_NODES, np.int64), np.full(lv.MAX_NODES, 2, np.int64))


def _worker(conn: Any, frame: pd.DataFrame, symbol: str, first: int, n: int, week0: int,
            primed: dict[str, pd.DataFrame] | None, params: StrategyParams) -> None:
    """The worker process: prepare the chunks and hand them, pickled, to a writer thread, so a
    pipe left full while the agent is busy (its trades) does not stop the preparing: the
    worker runs up to LOOKAHEAD chunks ahead, and the agent, faster in quiet stretches, finds
    its scans ready (FILUSDT 2023-11: it waited ~50 ms for them near the end of the month).
    The writer only moves bytes (a write blocked on the pipe does not hold the GIL), so the
    pickling stays with the preparing thread. Bounded, so memory stays flat."""
    out: queue.Queue = queue.Queue(maxsize=LOOKAHEAD)
    writer = threading.Thread(target=_send_all, args=(conn, out), name="scan-ahead-writer", daemon=True)
    writer.start()
    try:
        for batch in level_scans(frame, symbol, first, n, week0, primed=primed, params=params):
            out.put(ForkingPickler.dumps(batch))      # what conn.send would write
        out.put(ForkingPickler.dumps(None))
    except BaseException:                             # tell the parent why, then end
        out.put(ForkingPickler.dumps(("error", traceback.format_exc())))
    out.put(None)
    writer.join()


def _send_all(conn: Any, out: queue.Queue) -> None:
    """Writer thread: queue -> pipe until the end. If the agent stopped listening, the
    process is ended by `ScanAhead.close` (terminate)."""
    try:
        while (payload := out.get()) is not None:
            conn.send_bytes(payload)                  # conn.recv() unpickles it
    except (BrokenPipeError, EOFError, OSError):
        pass                                          # the backtest ended or stopped listening
    finally:
        conn.close()


def _widen(conn: Any) -> None:
    """Let the pipe hold several chunks: Linux allows up to /proc/sys/fs/pipe-max-size
    (1 MiB by default) instead of 64 KiB. A chunk is ~200 KB, so with the default the worker's
    send waited until the agent read, the worker was never more than one chunk ahead, and the
    agent waited whenever it crossed a quiet stretch faster than the worker (FILUSDT 2023-11:
    0.81-0.90 s -> 0.77-0.84 s). The bound still keeps memory flat. Elsewhere a no-op: the same
    run, less overlapped."""
    if not sys.platform.startswith("linux"):
        return
    import fcntl
    try:
        fcntl.fcntl(conn.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)
    except OSError as exc:              # a lower pipe-max-size: the run is the same, slower
        log.debug("scan-ahead: pipe kept at its default size (%s)", exc)


def _context() -> Any:
    """fork where the platform has it (starts in milliseconds, shares the loaded data);
    spawn elsewhere (Windows, macOS: the frame is pickled to the worker once)."""
    methods = mp.get_all_start_methods()
    return mp.get_context("fork" if sys.platform.startswith("linux") and "fork" in methods else "spawn")


class ScanAhead:
    """The agent side: a `scan_source` for IncrementalAnalyzer fed by a worker process.

    Call with the analyzer's scan key at a 15m close; returns the prepared scan the worker
    made for that state, or None (the analyzer then computes it: a data gap can make the
    agent's state at a close differ from the worker's, and a dead worker offers nothing).
    Scans are consumed in time order and dropped once passed, so memory stays flat."""

    def __init__(self, frame: pd.DataFrame, symbol: str, first: int, n: int, week0: int,
                 primed: dict[str, pd.DataFrame] | None = None,
                 params: StrategyParams = StrategyParams()) -> None:
        """`primed`: `rl.backtest.engine.prime_frames(frame, first, week0)[0]` when the caller has it
        (the worker then starts from it instead of computing it again). `params`: the agent's."""
        ctx = _context()
        self._conn, child = ctx.Pipe(duplex=False)
        _widen(self._conn)
        self._proc = ctx.Process(target=_worker, args=(child, frame, symbol, first, n, week0, primed, params),
                                 name=f"scan-ahead-{symbol}", daemon=True)
        # a forked worker's full collection would walk (and, writing their GC headers, copy)
        # every object inherited from this process: ~45 ms and a copied heap in the middle of
        # a month, with the agent waiting for its next chunk. Frozen objects are skipped.
        gc.freeze()
        try:
            self._proc.start()
        finally:
            gc.unfreeze()
        child.close()
        self._buf: deque = deque()
        self._done = False
        self.hits = 0
        self.misses = 0

    def _more(self) -> bool:
        """Read the next message; False when the worker has nothing more to give."""
        if self._done:
            return False
        try:
            msg = self._conn.recv()
        except (EOFError, OSError):
            msg = None
        if isinstance(msg, tuple):                     # ("error", traceback)
            log.warning("scan-ahead worker failed; the agent computes its scans itself:\n%s", msg[1])
            msg = None
        if msg is None:
            self._done = True
            return False
        self._buf.extend(msg)
        return True

    def __call__(self, key: tuple) -> LevelScan | None:
        t = key[0][0] if key and key[0] is not None else None
        if t is None:
            self.misses += 1
            return None
        buf = self._buf
        while True:
            while buf and buf[0][0][0][0] < t:         # scans of closes already passed
                buf.popleft()
            if buf or not self._more():
                break
        if buf and buf[0][0] == key:
            self.hits += 1
            return buf.popleft()[1]
        self.misses += 1
        return None

    def close(self) -> None:
        try:
            self._conn.close()
        finally:
            if self._proc.is_alive():
                self._proc.terminate()
            self._proc.join(timeout=5)
