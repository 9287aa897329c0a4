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

from rl import levels as lv
from rl.indicators import forward_extreme
from rl.level_finder import BestLevelFinder, LevelScan, _merged, _TfCache
from rl.market import aggregate_arrays, bucket_end, index_to_ms

log = logging.getLogger(__name__)

MINUTE_MS = 60_000
CHUNK = 48          # scans per message: few enough to start the agent early, many to cut overhead
LOOKAHEAD = 16      # messages the worker may have ready beyond the pipe (~200 KB each)


def level_scans(frame: pd.DataFrame, symbol: str, first: int, n: int, week0: int,
                chunk: int = CHUNK, primed: dict[str, pd.DataFrame] | None = None
                ) -> Iterator[list[tuple[tuple, LevelScan]]]:
    """Lists of (scan_key, prepared scan), one per 15m close of the backtest over frame bars
    [first, first + n), in time order, starting from the analyzer state
    `rl.backtest.prime_frames` gives the agent. The candles are pushed in close-time order; at
    each 15m close the 8h/1w candles closing with it are pushed first, as the agent does,
    then the scan's inputs are taken; every `chunk` closes they are prepared together
    (`prepare_many`). The first chunks are smaller, so the agent waits less at the start."""
    from rl.analysis import IncrementalAnalyzer
    from rl.backtest import prime_frames

    # the prime frames: given by the backtest (computed once, before the worker started), or
    # made here the same way
    frames = primed if primed is not None else prime_frames(frame, first, week0)[0]
    an = IncrementalAnalyzer(symbol)
    an.push_frames({tf: df for tf, df in frames.items() if tf != "1m"})   # as agent.prime, minus its scan
    primed = {tf: an.rings[tf].last_time() if tf in an.rings else None for tf in ("15m", "8h", "1w")}
    del frames
    hi = first + n                                    # rows the backtest will ever see
    open_ms = index_to_ms(frame.index[:hi])
    last_close = int(open_ms[-1]) + MINUTE_MS if hi else 0
    cols = {c: frame[c].to_numpy()[:hi] for c in ("open", "high", "low", "close", "volume")}
    for c in ("quote_volume", "trades", "taker_buy_volume", "taker_buy_quote_volume"):
        cols[c] = np.zeros(hi, dtype=np.int64)       # unused here; integer zeros sum for free
    candles = {}
    for tf in ("15m", "8h", "1w"):
        # the 1m bars after the prime's last candle of tf form the newer candles: only those
        # are aggregated (the fsum of every volume is most of this setup's cost)
        lo = 0 if primed[tf] is None else int(np.searchsorted(open_ms, bucket_end(primed[tf], tf), side="right"))
        t, agg = aggregate_arrays(open_ms[lo:], {c: v[lo:] for c, v in cols.items()}, tf)
        keep = np.asarray(bucket_end(t, tf)) <= last_close       # closed by the last tested bar
        candles[tf] = [(int(x), *row) for x, row in zip(
            t[keep].tolist(),
            zip(*(agg[c][keep].tolist() for c in ("open", "high", "low", "close", "volume"))))]
    higher = {tf: deque(candles[tf]) for tf in ("8h", "1w")}
    ends = {"8h": 8 * 3_600_000, "1w": 7 * 86_400_000}
    r15 = an.rings.get("15m")
    held = r15.bars() if r15 is not None else None
    series = _Series15m([held.t, held.h, held.l] if held is not None else [np.zeros(0, np.int64), np.zeros(0), np.zeros(0)],
                        candles["15m"])
    base = len(held) if held is not None else 0
    todo: list = []                                   # (scan key, inputs, 15m window or None)
    sent = 0
    for k, c15 in enumerate(candles["15m"]):
        an.push_candle("15m", *c15)
        end15 = c15[0] + 15 * MINUTE_MS
        for tf, q in higher.items():
            while q and q[0][0] + ends[tf] <= end15:
                an.push_candle(tf, *q.popleft())
        inp = an.scan_inputs()
        win = None if isinstance(inp, LevelScan) else (inp[0].get("15m"), inp[1].get("15m", float("nan")), base + k + 1)
        # a shallow copy: a push replaces a timeframe's snapshot dict, never mutates it, so the
        # 8h/1w ones are the same objects across closes and pickle sends each once per message
        todo.append((an.scan_key(), inp, win, an.static_parts(), dict(an.snaps)))
        if len(todo) >= min(chunk, 4 << (2 * sent)):        # 4, 16, then chunk (48)
            yield _prepared(an.finder, series, todo, an.states)
            todo = []
            sent += 1
    if todo:
        yield _prepared(an.finder, series, todo, an.states)


def _prepared(finder: BestLevelFinder, series: "_Series15m", todo: list,
              states: dict) -> list[tuple[tuple, LevelScan]]:
    """(scan key, prepared scan) for a chunk of closes (scan key, inputs, 15m window, static
    score parts, indicator snapshots): the 15m window caches, cut from the series, travel
    with the inputs; each scan carries the entry score's static components of its close
    (taken when the close's indicators were current) and those indicator snapshots, so the
    agent need compute neither (`IncrementalAnalyzer.score`). The last scan also carries a
    copy of the indicator states after its close (`states`, the analyzer's, current at the
    last close of the chunk), which bounds the agent's backlog of deferred candles."""
    caches = iter(series.caches([w for _, _, w, _, _ in todo if w is not None]))
    inputs = [inp if w is None else (*inp, next(caches)) for _, inp, w, _, _ in todo]
    scans = prepare_many(finder, inputs)
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
    computed once instead of recomputed over 500 candles at every close. All are local (a
    pivot needs 3 candles each side, a forward extreme the next 12), so inside a window they
    equal the window's own (only the last 12 forward extremes are cut by the window's end
    and are recomputed)."""

    def __init__(self, held: list[np.ndarray], stream: list[tuple]) -> None:
        self.t = np.concatenate([held[0], np.array([c[0] for c in stream], dtype=np.int64)])
        self.h = np.concatenate([held[1], np.array([c[2] for c in stream], dtype=float)])
        self.l = np.concatenate([held[2], np.array([c[3] for c in stream], dtype=float)])
        s = lv.PIVOT_STRENGTH["15m"]
        self.ph, self.pl = lv.pivots(self.h, self.l, s)
        self.ph_list, self.pl_list = self.ph.tolist(), self.pl.tolist()   # bisect beats searchsorted per scalar
        # each pivot's candidate columns (price, source code, time), sliced per window
        self.ph_cand = (self.h[self.ph], np.zeros(len(self.ph), np.int64), self.t[self.ph])
        self.pl_cand = (self.l[self.pl], np.ones(len(self.pl), np.int64), self.t[self.pl])
        self.fmax = forward_extreme(self.h, lv.LOOKAHEAD, np.maximum, -np.inf)
        self.fmin = forward_extreme(self.l, lv.LOOKAHEAD, np.minimum, np.inf)
        self.rng = self.h - self.l
        self.zero_before = np.concatenate([[0], np.cumsum(self.rng <= 0)]).tolist()  # zero-range candles before i

    def caches(self, windows: list[tuple[lv.Bars | None, float, int]]) -> list[_TfCache | None]:
        """The 15m window cache of each (bars, atr, end), bars = series[end - len(bars):end],
        built from the series, with the windows' volume nodes found together; None for a
        window that is not that slice or has no usable ATR (the finder builds its own)."""
        fits = [self._fits(*w) for w in windows]
        ext = [(float(b.l.min()), float(b.h.max())) if f else None for (b, _, _), f in zip(windows, fits)]
        nodes = iter(lv.volume_nodes_many([(b.h, b.l, b.v, atr, e)
                                           for (b, atr, _), f, e in zip(windows, fits, ext) if f]))
        return [self._cache(b, atr, end, next(nodes), e) if f else None
                for (b, atr, end), f, e in zip(windows, fits, ext)]

    def _fits(self, bars: lv.Bars | None, atr: float, end: int) -> bool:
        """Whether `bars` is series[end - len(bars):end] (long enough for the cut forward
        extremes) with a usable ATR."""
        if bars is None or not (atr == atr and atr > 0):
            return False
        n = len(bars)
        a = end - n
        return not (n <= 2 * lv.LOOKAHEAD or a < 0 or end > len(self.t) or int(self.t[a]) != int(bars.t[0])
                    or int(self.t[end - 1]) != int(bars.t[-1]))

    def _cache(self, bars: lv.Bars, atr: float, end: int, nodes: np.ndarray,
               extremes: tuple[float, float]) -> _TfCache:
        """The cache of a window that `_fits`, given its volume nodes and (lowest low,
        highest high)."""
        n = len(bars)
        a = end - n
        K = lv.LOOKAHEAD
        s = lv.PIVOT_STRENGTH["15m"]
        h, l, c = bars.h, bars.l, bars.c
        i = slice(bisect_left(self.ph_list, a + s), bisect_left(self.ph_list, end - s))
        j = slice(bisect_left(self.pl_list, a + s), bisect_left(self.pl_list, end - s))
        (hp, hs, ht), (lp, ls, lt), k = self.ph_cand, self.pl_cand, len(nodes)
        cands = (np.concatenate([hp[i], lp[j], nodes]), np.concatenate([hs[i], ls[j], np.full(k, 2, np.int64)]),
                 np.concatenate([ht[i], lt[j], np.full(k, bars.t[0])]))
        tol = lv.TOUCH_ATR * atr
        nan = _NAN
        # forward extremes: the series' own for all but the last K - 1 candles of the window,
        # whose K-candle look-ahead the window's end cuts short
        fmax = np.concatenate([self.fmax[a:end - K + 1], np.maximum.accumulate(h[:n - K:-1])[::-1], nan])
        fmin = np.concatenate([self.fmin[a:end - K + 1], np.minimum.accumulate(l[:n - K:-1])[::-1], nan])
        prep = lv.TouchPrep(bars, atr, tol, l - tol, h + tol, self.rng[a:end], np.concatenate([nan, c]),
                            np.concatenate([c, nan]), fmax, fmin, self.zero_before[end] > self.zero_before[a],
                            extremes[1] - extremes[0], float(bars.v.sum()))
        return _TfCache(bars, atr, "15m", cands, prep)


_NAN = np.array([np.nan])


def prepare_many(finder: BestLevelFinder, inputs: list) -> list[LevelScan]:
    """`finder.prepare(bars, atrs, ref)` for consecutive scans' inputs (bars, atrs, ref[,
    15m window cache or None]) or ready empty scans, with the work they share done once
    (touch statistics of an 8h/1w window for all their new level prices in one call) and
    the rest done for all of them together: the merges (`lv.merge_arrays_many`), the 15m
    windows' touch statistics (`lv.touch_stats_many`) and the features of all their levels
    (`_features_arrays`). Each a few dozen vector operations whose fixed cost, paid once
    per chunk instead of once per scan, was most of a scan's; the results are identical to
    the per-scan path (tests/test_scan_ahead.py)."""
    out: list[LevelScan | None] = [None] * len(inputs)
    cands = []
    for i, inp in enumerate(inputs):
        if isinstance(inp, LevelScan):
            out[i] = inp
            continue
        if len(inp) > 3 and inp[3] is not None:
            finder._caches["15m"] = inp[3]
        c = finder._candidates(*inp[:3])
        if isinstance(c, LevelScan):
            out[i] = c
        else:   # the window caches as they are now: later scans of the chunk replace them
            cands.append((i, c, {tf: finder._caches[tf] for tf in c.tf_list}))
    pend = []
    for (i, c, caches), p in zip(cands, _merged([c for _, c, _ in cands])):
        if isinstance(p, LevelScan):
            out[i] = p
        else:
            pend.append((i, p, c.ref_price, caches))
    stats = _window_stats([(it[1], it[3]) for it in pend])
    groups: dict[tuple, list] = {}
    for k, item in enumerate(pend):
        groups.setdefault(tuple(item[1].tf_list), []).append((item, stats[k]))
    for tfs, items in groups.items():
        S = {tf: np.concatenate([st[tf] for _, st in items], axis=1) for tf in tfs}
        cat = [np.concatenate([getattr(it[1], k) for it, _ in items]) for k in ("prices", "tfm", "srm", "first_seen")]
        plist = [x for it, _ in items for x in it[1].plist]
        M = finder._features_arrays(S, cat[0], plist, cat[1], cat[2], cat[3], 0.0, 0.0, []).M
        a = 0
        for (i, p, ref, _), _ in items:
            b = a + len(p.plist)
            out[i] = LevelScan(ref, p.atr, p.notes, tfs, M[:, a:b])
            a = b
    return out  # type: ignore[return-value]


def _window_stats(scans: list[tuple[Any, dict[str, _TfCache]]]) -> list[dict[str, np.ndarray]]:
    """Per scan (its levels, its window cache per timeframe), the (7, levels) touch
    statistics per timeframe, as `_TfCache.stats` gives them. Windows that one scan alone
    reads (the 15m windows, new at every close) are computed together per timeframe
    (`_TfCache.fresh`); a window several scans share (8h/1w) computes their new prices in
    one `fill`, then each scan gathers its own."""
    readers: dict[int, list[tuple[int, str]]] = {}
    for k, (_, caches) in enumerate(scans):
        for tf, cache in caches.items():
            readers.setdefault(id(cache), []).append((k, tf))
    out: list[dict[str, np.ndarray]] = [{} for _ in scans]
    alone: dict[str, list[tuple[int, _TfCache]]] = {}
    for reads in readers.values():
        if len(reads) == 1:
            k, tf = reads[0]
            alone.setdefault(tf, []).append((k, scans[k][1][tf]))
            continue
        cache = scans[reads[0][0]][1][reads[0][1]]
        full = [[o == tf for o in scans[k][0].finest] for k, tf in reads]
        cache.fill([(scans[k][0].plist, f) for (k, _), f in zip(reads, full)])
        for k, tf in reads:
            out[k][tf] = cache.gather(scans[k][0].plist)
    for tf, items in alone.items():
        mats = _TfCache.fresh([(c, scans[k][0].prices, [o == tf for o in scans[k][0].finest]) for k, c in items])
        for (k, _), m in zip(items, mats):
            out[k][tf] = m
    return out


def _worker(conn: Any, frame: pd.DataFrame, symbol: str, first: int, n: int, week0: int,
            primed: dict[str, pd.DataFrame] | None = None) -> None:
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
        for batch in level_scans(frame, symbol, first, n, week0, primed=primed):
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
                 primed: dict[str, pd.DataFrame] | None = None) -> None:
        """`primed`: `rl.backtest.prime_frames(frame, first, week0)[0]` when the caller has it
        (the worker then starts from it instead of computing it again)."""
        ctx = _context()
        self._conn, child = ctx.Pipe(duplex=False)
        _widen(self._conn)
        self._proc = ctx.Process(target=_worker, args=(child, frame, symbol, first, n, week0, primed),
                                 name=f"scan-ahead-{symbol}", daemon=True)
        self._proc.start()
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
