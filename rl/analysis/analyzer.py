"""One facade over the analysis brain: `analyze(...)` and the incremental `IncrementalAnalyzer`.

Inputs are CLOSED candles only (callers drop the forming candle), plus the live price where
a rule compares price with a band or a level: signals never repaint, live or in backtests.

Incremental path (backtests): indicator values of 15m/8h/1w advance in O(1) per closed
candle (`IndicatorState`), levels are rescanned only when a 15m/8h/1w candle closes (and
the finder reuses its 8h/1w work between their own closes), and the
per-1m-bar work is re-scoring the two price-dependent components (level, Bollinger) against
cached values. 1m indicators feed only the charts, so they are computed lazily on first
access. The result equals a fresh `analyze()` on the same candles (to float rounding).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import cast

import numpy as np
import pandas as pd

from rl.analysis import indicators as ind
from rl.analysis import signals as sig
from rl.analysis.levels.book import LevelBook, LevelScan
from rl.analysis.levels.candidates import Bars
from rl.analysis.levels.finder import BestLevelFinder
from rl.analysis.result import TIMEFRAMES, Analysis, LazyIndicators, assemble
from rl.strategy.params import LevelParams, ScoreParams

INDICATOR_KEYS = ("rsi", "macd", "macd_signal", "macd_hist", "bb_upper", "bb_middle", "bb_lower",
                  "atr", "ema_fast", "ema_slow", "k", "d", "j", "vwap")
EMA_FAST, EMA_SLOW = 20, 50
MAX_BARS = 500
# the default params (frozen, so one instance serves every call)
_DEFAULT_SCORE, _DEFAULT_LEVELS = ScoreParams(), LevelParams()


# ------------------------------------------------------------------------------ snapshots
def snapshot(b: Bars) -> dict[str, float]:
    """Last value of every indicator on closed candles, plus what the scoring rules read."""
    n = len(b)
    nan = float("nan")
    if n == 0:
        return {**{k: nan for k in INDICATOR_KEYS}, "close": nan, "open": nan, "volume": nan,
                "vol_avg": nan, "hist_prev1": nan, "hist_prev2": nan, "bars": 0}
    # the last values alone (bit-equal to the vector functions, ~2x faster); the vector
    # functions themselves only when an input holds NaN/inf (their warm-up rules apply then)
    out = ind.latest(b.t, b.h, b.l, b.c, b.v, EMA_FAST, EMA_SLOW) or _vector_last(b)
    out.update(close=float(b.c[-1]), open=float(b.o[-1]), volume=float(b.v[-1]),
               vol_avg=float(np.mean(b.v[-21:-1])) if n >= 21 else nan, bars=n)
    return out


def _vector_last(b: Bars) -> dict[str, float]:
    """`ind.latest` from the full vector indicator series (any input)."""
    c = b.c
    line, sg, hist = ind.macd(c)
    up, mid, lo = ind.bollinger(c)
    k, d, j = ind.kdj(b.h, b.l, c)
    last = {
        "rsi": ind.rsi(c)[-1], "macd": line[-1], "macd_signal": sg[-1], "macd_hist": hist[-1],
        "bb_upper": up[-1], "bb_middle": mid[-1], "bb_lower": lo[-1],
        "atr": ind.atr(b.h, b.l, c)[-1], "ema_fast": ind.ema(c, EMA_FAST)[-1],
        "ema_slow": ind.ema(c, EMA_SLOW)[-1], "k": k[-1], "d": d[-1], "j": j[-1],
        "vwap": ind._vwap_arrays(b.h, b.l, c, b.v, b.t)[-1],
        "hist_prev1": hist[-2] if len(c) >= 2 else float("nan"),
        "hist_prev2": hist[-3] if len(c) >= 3 else float("nan"),
    }
    return {key: float(v) for key, v in last.items()}


def _state_snapshot(st: ind.IndicatorState, b_last: tuple[float, float, float]) -> dict[str, float]:
    nan = float("nan")
    h = list(st.hist)
    vols = list(st.vols)
    out = dict(st.last)
    out.update(close=b_last[0], open=b_last[1], volume=b_last[2],
               vol_avg=float(np.asarray(vols[:-1]).sum() / 20) if len(vols) == 21 else nan,  # = np.mean
               hist_prev1=h[-2] if len(h) >= 2 else nan, hist_prev2=h[-3] if len(h) >= 3 else nan,
               bars=st.count)
    return out


def _public(s: dict[str, float]) -> dict[str, float]:
    return {k: s[k] for k in INDICATOR_KEYS}


def _check_inputs(symbol: str, price: float, time_ms: int) -> None:
    if not isinstance(symbol, str) or not symbol:
        raise ValueError(f"symbol: must be a non-empty string, got {symbol!r}")
    if isinstance(price, bool) or not isinstance(price, (int, float, np.floating)) or not (
            math.isfinite(price) and price > 0):
        raise ValueError(f"price: must be a positive finite number, got {price!r}")
    if isinstance(time_ms, bool) or not isinstance(time_ms, (int, np.integer)):
        raise ValueError(f"time_ms: must be an integer (ms since epoch), got {time_ms!r}")


def _static(snaps: dict[str, dict], book: LevelBook,
            score_params: ScoreParams) -> tuple[tuple[dict, dict], list[str]]:
    notes = list(book.notes)
    return sig.static_components(snaps, notes, score_params), notes


def _scan_inputs(bars: dict[str, Bars], snaps: dict[str, dict]) -> tuple[dict, dict, float] | LevelScan:
    """(15m/8h/1w bars, their ATRs, reference price) of a level scan, or the empty scan."""
    atrs = {tf: snaps[tf]["atr"] for tf in ("15m", "8h", "1w") if tf in snaps}
    ref = next((snaps[tf]["close"] for tf in ("15m", "8h", "1w") if tf in snaps and snaps[tf]["bars"] > 0),
               float("nan"))
    if ref != ref:
        return LevelScan.empty(ref, float("nan"), ["levels: no closed 15m/8h/1w candles"])
    return {tf: b for tf, b in bars.items() if tf != "1m"}, atrs, ref


def _prepare(finder: BestLevelFinder, bars: dict[str, Bars], snaps: dict[str, dict]) -> LevelScan:
    """The weight-independent part of a level scan (see BestLevelFinder.prepare)."""
    inp = _scan_inputs(bars, snaps)
    return inp if isinstance(inp, LevelScan) else finder.prepare(*inp)


def _scan(finder: BestLevelFinder, bars: dict[str, Bars], snaps: dict[str, dict]) -> LevelBook:
    return finder.rank(_prepare(finder, bars, snaps))


def _frames_to_bars(frames: dict[str, pd.DataFrame]) -> dict[str, Bars]:
    if not isinstance(frames, dict):
        raise ValueError("frames: must be a dict timeframe -> DataFrame of closed candles")
    unknown = sorted(set(frames) - set(TIMEFRAMES))
    if unknown:
        raise ValueError(f"frames: unknown timeframe(s) {unknown}; expected {list(TIMEFRAMES)}")
    return {tf: Bars.from_frame(df.iloc[-MAX_BARS:], f"frames[{tf!r}]") for tf, df in frames.items()}


def analyze(symbol: str, frames: dict[str, pd.DataFrame], price: float, time_ms: int,
            weights: dict[str, float] | None = None, *, score_params: ScoreParams = _DEFAULT_SCORE,
            level_params: LevelParams = _DEFAULT_LEVELS) -> Analysis:
    """Full analysis from scratch. `frames`: per timeframe, CLOSED candles only (UTC
    open_time index; float open/high/low/close/volume); the last MAX_BARS are used. Missing
    or short timeframes degrade the affected components (see `notes`); nothing raises for
    lack of history."""
    _check_inputs(symbol, price, time_ms)
    finder = BestLevelFinder(weights, level_params)
    bars = _frames_to_bars(frames)
    snaps = {tf: snapshot(b) for tf, b in bars.items()}
    notes = [f"{tf}: no candles supplied" for tf in TIMEFRAMES if tf not in bars]
    book = _scan(finder, bars, snaps)
    static, snotes = _static(snaps, book, score_params)
    empty = _public(snapshot(Bars(*(np.zeros(0),) * 6)))
    inds = LazyIndicators({tf: _public(snaps[tf]) if tf in snaps else dict(empty) for tf in TIMEFRAMES})
    return assemble(symbol, price, time_ms, snaps, book, static, notes + snotes, inds, score_params)


# ------------------------------------------------------------------------------ incremental
class _Ring:
    """Last `cap` closed candles of one timeframe in preallocated arrays (amortised O(1) push).

    When the buffer fills, the live window moves to a NEW buffer instead of being copied in
    place, so a `Bars` view handed out earlier never changes under its holder.
    """

    def __init__(self, cap: int) -> None:
        self.cap, self.n, self.start = cap, 0, 0
        self.t = np.zeros(2 * cap, dtype=np.int64)
        self.f = np.zeros((5, 2 * cap))

    def push(self, t: int, o: float, h: float, l: float, c: float, v: float) -> None:
        end = self.start + self.n
        if end == len(self.t):
            keep = min(self.n, self.cap - 1)
            nt, nf = np.zeros_like(self.t), np.zeros_like(self.f)
            nt[:keep], nf[:, :keep] = self.t[end - keep:end], self.f[:, end - keep:end]
            self.t, self.f, self.start, self.n, end = nt, nf, 0, keep, keep
        self.t[end] = t
        col = self.f[:, end]
        col[0], col[1], col[2], col[3], col[4] = o, h, l, c, v
        if self.n == self.cap:
            self.start += 1
        else:
            self.n += 1

    def last_time(self) -> int | None:
        return int(self.t[self.start + self.n - 1]) if self.n else None

    def bars(self) -> Bars:
        a, b = self.start, self.start + self.n
        f = self.f
        return Bars(self.t[a:b], f[0, a:b], f[1, a:b], f[2, a:b], f[3, a:b], f[4, a:b])


class _ListRing:
    """The 1m ring: the last `cap` closed 1m candles, appended at every bar of a backtest but
    read only for the charts and an entry's perception (lazy 1m indicators). Plain list
    appends cost a fraction of writing numpy scalars; arrays are built when read. A trim
    starts a NEW list, so a `view()` taken earlier keeps reading what it saw."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.rows: list[tuple] = []

    def push(self, t: int, o: float, h: float, l: float, c: float, v: float) -> None:
        rows = self.rows
        rows.append((t, o, h, l, c, v))
        if len(rows) >= 2 * self.cap:            # trim now and then, not at every push
            self.rows = rows[-self.cap:]

    @property
    def n(self) -> int:
        return min(len(self.rows), self.cap)

    def last_time(self) -> int | None:
        return int(self.rows[-1][0]) if self.rows else None

    def view(self) -> tuple[list[tuple], int]:
        """The candles held now, in O(1): read them later with `bars_of`."""
        return self.rows, len(self.rows)

    def bars_of(self, view: tuple[list[tuple], int]) -> Bars:
        rows, end = view
        part = rows[max(0, end - self.cap):end]
        if not part:
            return Bars(np.zeros(0, dtype=np.int64), *(np.zeros(0),) * 5)
        cols = list(zip(*part))
        return Bars(np.array(cols[0], dtype=np.int64), *(np.array(c, dtype=float) for c in cols[1:]))

    def bars(self) -> Bars:
        return self.bars_of(self.view())


class _SourceRing:
    """A backtest's 1m ring: a window onto the archive's own arrays, which hold every bar the
    backtest will push, in order. A push moves the window's end (after checking the bar is
    the source's next one) and a read is slicing, where the list ring copies ~500 tuples into
    arrays at each read (at every entry). Views stay valid: the source never changes."""

    def __init__(self, cap: int, source: Bars, lo: int, end: int) -> None:
        self.cap, self.source, self.lo, self.end = cap, source, lo, end
        # the source's own int64 array, not a list copy: a copy of every bar's time as Python
        # ints grew the run's memory with the bars (~40 B a bar) for a check costing ~0.1 us
        self._times = source.t

    def push(self, t: int, o: float, h: float, l: float, c: float, v: float) -> None:
        i = self.end
        if i >= len(self._times) or int(self._times[i]) != t:
            raise ValueError(f"open_time_ms: 1m candle at {t} is not the source's next one "
                             f"({int(self._times[i]) if i < len(self._times) else 'none left'})")
        self.end = i + 1

    @property
    def n(self) -> int:
        return min(self.end - self.lo, self.cap)

    def last_time(self) -> int | None:
        return int(self._times[self.end - 1]) if self.end > self.lo else None

    def view(self) -> int:
        return self.end

    def bars_of(self, view: int) -> Bars:
        a, s = max(self.lo, view - self.cap), self.source
        return Bars(s.t[a:view], s.o[a:view], s.h[a:view], s.l[a:view], s.c[a:view], s.v[a:view])

    def bars(self) -> Bars:
        return self.bars_of(self.end)


class IncrementalAnalyzer:
    """Same result as `analyze()`, computing only what changed since the last call.

    Feed closed candles with `push_candle` (cheapest, for backtests) or whole frames with
    `update`; then `score(price, time_ms)` re-scores against the new price in microseconds
    when no 15m/8h/1w candle closed.

    With a `scan_source` (a backtest's level scans prepared ahead, rl.backtest.scans), a
    rescan takes the prepared scan it offers for `scan_key()` and computes it only if offered
    none.
    """

    def __init__(self, symbol: str, weights: dict[str, float] | None = None, max_bars: int = MAX_BARS, *,
                 score_params: ScoreParams = _DEFAULT_SCORE, level_params: LevelParams = _DEFAULT_LEVELS) -> None:
        if not isinstance(max_bars, int) or max_bars < 60:
            raise ValueError(f"max_bars: must be an integer >= 60, got {max_bars!r}")
        if not isinstance(symbol, str) or not symbol:
            raise ValueError(f"symbol: must be a non-empty string, got {symbol!r}")
        self.symbol = symbol
        self.score_params = score_params
        self.finder = BestLevelFinder(weights, level_params)
        self.max_bars = max_bars
        self.rings: dict[str, _Ring | _ListRing | _SourceRing] = {}
        self._states: dict[str, ind.IndicatorState] = {}
        # per 15m/8h/1w timeframe, the indicator snapshot of every candle pushed
        self.snaps: dict[str, dict] = {}
        # per timeframe, its part of scan_key(): the last candle, the candles held and (last)
        # a hash chain over every candle pushed since creation, the fingerprint of the whole
        # history the indicator states depend on
        self._key_parts: dict[str, tuple] = {}
        self._dirty_levels = True
        self._book: LevelBook                    # ranked by the first score (levels start dirty)
        self._static: tuple[dict, dict] = ({}, {})
        self._static_notes: list[str] = []
        self._pub: dict[str, dict] = {}             # _public(snap) per timeframe, for the Analysis
        # one Bars object per timeframe until its next candle: the level finder recognises an
        # unchanged 8h/1w window by identity and reuses its candidates and touch statistics
        self._bars: dict[str, Bars] = {}
        self._trend_memo: tuple | None = None     # ((8h snap, 1w snap), (trend pair, notes))
        # key -> prepared LevelScan or None (see score); set by a backtest with scans ahead
        self.scan_source: Callable[[tuple], LevelScan | None] | None = None

    def follow_1m(self, source: Bars, end: int) -> None:
        """From now on, the 1m candles pushed are `source`'s rows end, end+1, ... (a backtest
        over an archive): the 1m ring becomes a window onto source instead of a copy. The
        candles held now must be source's rows just before `end` (checked)."""
        ring = self.rings.get("1m")
        held = ring.bars() if ring is not None else None
        lo = end - (len(held) if held is not None else 0)
        if lo < 0 or end > len(source) or (held is not None and not all(
                np.array_equal(getattr(held, f), getattr(source, f)[lo:end]) for f in "tohlcv")):
            raise ValueError(f"source: its rows before {end} are not the 1m candles held")
        self.rings["1m"] = _SourceRing(self.max_bars, source, lo, end)

    def one_minute_appender(self) -> Callable[[int, float, float, float, float, float], None] | None:
        """`push_candle("1m", ...)` without its checks, for a caller that keeps the time order
        itself (a backtest, once per bar): 1m candles only go to the chart ring (their
        indicators are computed when read), so appending to the ring directly leaves the
        analyzer as push_candle would. None before the first 1m candle; ask again after
        push_candle("1m", ...) or follow_1m, which may start a new ring."""
        ring = self.rings.get("1m")
        return None if ring is None else ring.push

    def closed_candles(self, tf: str) -> Bars | None:
        """The closed candles of `tf` held (a view nobody changes), None before the first: what
        the agent's exposure caps read their correlations from (rl/agent/exposure.py)."""
        ring = self.rings.get(tf)
        return ring.bars() if ring is not None and ring.n else None

    def set_weights(self, weights: dict[str, float]) -> None:
        """New level-feature weights (from learning); levels are rescored on the next call."""
        finder = BestLevelFinder(weights, self.finder.params)
        finder._caches = self.finder._caches   # window caches hold no weight-dependent value
        self.finder = finder
        self._dirty_levels = True

    def push_candle(self, tf: str, open_time_ms: int, o: float, h: float, l: float, c: float, v: float) -> None:
        """Append one newly CLOSED candle of timeframe `tf` (must be newer than the last)."""
        if tf not in TIMEFRAMES:
            raise ValueError(f"tf: unknown timeframe {tf!r}; expected {list(TIMEFRAMES)}")
        ring = self.rings.get(tf)
        if ring is None:
            ring = self.rings[tf] = _ListRing(self.max_bars) if tf == "1m" else _Ring(self.max_bars)
        last = ring.last_time()
        if last is not None and open_time_ms <= last:
            raise ValueError(f"open_time_ms: {tf} candle at {open_time_ms} is not after the last one ({last})")
        ring.push(open_time_ms, o, h, l, c, v)
        self._bars.pop(tf, None)
        if tf == "1m":
            return  # chart-only: computed lazily from the ring
        part = self._key_parts.get(tf)
        fp = hash((part[-1] if part is not None else 0, open_time_ms, o, h, l, c, v))
        # this timeframe's part of scan_key(), as the ring stores the candle (int, floats)
        self._key_parts[tf] = (int(open_time_ms), ring.n, float(o), float(h), float(l), float(c), float(v), fp)
        self._dirty_levels = True
        st = self._states.get(tf)
        if st is None:
            st = self._states[tf] = ind.IndicatorState(ema_fast=EMA_FAST, ema_slow=EMA_SLOW)
        st.push(open_time_ms, o, h, l, c, v)
        snap = self.snaps[tf] = _state_snapshot(st, (c, o, v))
        self._pub[tf] = _public(snap)

    def update(self, frames_closed: dict[str, pd.DataFrame], price: float, time_ms: int) -> Analysis:
        """Take closed-candle frames (any subset of timeframes; absent = unchanged), push the
        candles newer than what is held, and score at `price`."""
        self.push_frames(frames_closed)
        return self.score(price, time_ms)

    def push_frames(self, frames_closed: dict[str, pd.DataFrame]) -> None:
        """`update` without the scoring: push the candles of `frames_closed` newer than what is
        held (a backtest's scan preparer, rl.backtest.scans, primes its analyzer with this)."""
        for tf, df in frames_closed.items():
            if tf not in TIMEFRAMES:
                raise ValueError(f"frames_closed: unknown timeframe {tf!r}")
            if not len(df):
                continue
            ring = self.rings.get(tf)
            last = ring.last_time() if ring else None
            if last is not None and int(df.index[-1].value // 1_000_000) == last:
                continue
            b = Bars.from_frame(df, f"frames_closed[{tf!r}]")
            new = np.flatnonzero(b.t > last) if last is not None else np.arange(len(b))
            # as Python numbers: indicator states then run on floats, not numpy scalars
            for row in zip(*(x[new].tolist() for x in (b.t, b.o, b.h, b.l, b.c, b.v))):
                self.push_candle(tf, *row)

    def _indicators(self) -> LazyIndicators:
        lazy = {}
        if "1m" in self.rings:
            # the 1m ring is a list ring (push_candle) or a source window (follow_1m), never a _Ring
            ring = cast("_ListRing | _SourceRing", self.rings["1m"])
            view = ring.view()                       # the candles held now, read when asked
            lazy["1m"] = lambda v=view, r=ring: _public(snapshot(r.bars_of(v)))
        ready = dict(self._pub)
        for tf in TIMEFRAMES:
            if tf not in ready and tf not in lazy:
                ready[tf] = {k: float("nan") for k in INDICATOR_KEYS}
        return LazyIndicators(ready, lazy)

    def scan_key(self) -> tuple:
        """What a level scan of the current state depends on: per timeframe the candles held,
        the last one, and a fingerprint of every candle pushed since creation (the ATRs, from
        the indicator states, depend on all of them, not just the ring's). Two analyzers fed
        the same candles give the same key; a scan prepared ahead by another analyzer
        (rl.backtest.scans) is used only under an equal key.

        The fingerprint is a hash chain over (time, o, h, l, c, v) tuples. A NaN in a candle
        hashes by identity and only makes keys differ (a miss: the safe direction)."""
        parts = self._key_parts                      # kept by push_candle
        return parts.get("15m"), parts.get("8h"), parts.get("1w")

    def _static_of(self, book: LevelBook) -> tuple[tuple[dict, dict], list[str]]:
        """`_static(self.snaps, book)`: the entry score's price-independent components and
        the notes (the scan's, then the ones they add). The trend component is reused while
        the 8h and 1w snapshots (new dicts at each of their closes) are the same objects: 31
        of 32 rescans."""
        snaps = self.snaps
        key = (snaps.get("8h"), snaps.get("1w"))
        memo = self._trend_memo
        if memo is None or memo[0][0] is not key[0] or memo[0][1] is not key[1]:
            trend_notes: list[str] = []
            memo = self._trend_memo = (key, (sig.trend_component(snaps, trend_notes, self.score_params),
                                             trend_notes))
        notes = list(book.notes)
        return sig.static_components(snaps, notes, self.score_params, trend=memo[1]), notes

    def _level_bars(self) -> dict[str, Bars]:
        bars = {}
        for tf, r in self.rings.items():
            if tf != "1m":
                b = self._bars.get(tf)
                bars[tf] = b if b is not None else self._bars.setdefault(tf, r.bars())
        return bars

    def scan_inputs(self) -> tuple[dict, dict, float] | LevelScan:
        """What `BestLevelFinder.prepare` takes for the current state (bars are immutable
        views: they stay valid after later pushes), or the empty scan."""
        return _scan_inputs(self._level_bars(), self.snaps)

    def prepare_scan(self) -> LevelScan:
        """The weight-independent part of the level scan of the current state."""
        return _prepare(self.finder, self._level_bars(), self.snaps)

    def score(self, price: float, time_ms: int) -> Analysis:
        """Analysis at `price` from the cached state (rescans levels only if a candle closed).
        With `scan_source` set (a backtest's scans prepared ahead, rl.backtest.scans), a rescan
        takes the prepared scan it offers for `scan_key()` and computes it only if offered none."""
        _check_inputs(self.symbol, price, time_ms)
        if self._dirty_levels:
            scan = self.scan_source(self.scan_key()) if self.scan_source is not None else None
            if scan is None:
                scan = self.prepare_scan()
            self._book = self.finder.rank(scan)
            self._static, self._static_notes = self._static_of(self._book)
            self._dirty_levels = False
        notes = [f"{tf}: no candles supplied" for tf in TIMEFRAMES if tf not in self.rings]
        return assemble(self.symbol, price, time_ms, self.snaps, self._book, self._static,
                         notes + self._static_notes, self._indicators(), self.score_params)
