"""Bars for the backtest and the replay: which archive bars to load, and the one walk over them
both use, so a backtest and a dashboard replay of the same files make the same trades (parity).

The walk (`BarSchedule`): step times are 1m closes T (= the next bar's open). The backtest
(rl.backtest.engine.run_backtest) steps every one of them with `TradingAgent.step()`; the replay's
`run_cycle()` at T hands every 1m bar closed since its previous cycle to the same per-bar
routine (`_on_bar`), so both see each closed bar once, at its close, whatever the cycle
interval. A cycle is due at the start, then at the first step at or after `previous cycle +
the seconds run_cycle returned` (60 s flat / 30 s in a position: every closed bar).

Only bars with a successor in the data are stepped: at the last bar's close the forming bar's
open (the current price) is unknown. This makes a run on data cut at T an exact prefix of a
run on the full data (the no-lookahead test).

`BarClock` is the same walk paced by the wall clock for replay: the dashboard's AgentRunner
calls run_cycle() then clock.sleep(interval), and sleeping moves to the next due step, so the
runner cycles at exactly the world times the backtest steps. A ScaledClock cannot promise that:
its cycles land wherever wall-clock jitter puts them, and the paper exchange's clock (order and
fill times) would follow.
"""
from __future__ import annotations

import re
import threading
import time
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from rl.market.archive import ArchiveData, Gap, find_archive_files, load_archive
from rl.market.candles import MINUTE_MS, index_to_ms

DAY_MS = 86_400_000
_PERIOD = re.compile(r"-(\d{4}-\d{2}(?:-\d{2})?)\.(?:zip|csv)$")
# History loaded before --from so the 15m/8h indicators have data at the first step (the 1w
# trend needs more than any backtest can wait for; it says so in its notes and scores 0).
WARMUP_DAYS = 30


def parse_day(value: str | None, field_name: str) -> datetime | None:
    """'YYYY-MM-DD' -> UTC midnight; None stays None; anything else is a clear ValueError."""
    if value is None:
        return None
    try:
        d = datetime.strptime(str(value).strip(), "%Y-%m-%d")
    except ValueError:
        raise ValueError(f"{field_name}={value!r} is invalid: use a date YYYY-MM-DD "
                         "(UTC), e.g. 2023-09-01") from None
    return d.replace(tzinfo=UTC)


def _ms(d: datetime) -> int:
    return int(d.timestamp() * 1000)


@dataclass(frozen=True)
class BacktestData:
    """The loaded bars of one symbol: warm-up history first, then the tested range."""

    symbol: str
    frame: pd.DataFrame          # 1m kline frame (rl.market.candles shape), warm-up included
    gaps: list[Gap]
    files: list[Path]
    start_ms: int                # first step time (close of the first tested bar)
    first_bar: int               # index in `frame` of the first tested bar
    end_ms: int                  # close time of the last bar loaded

    @property
    def tested_bars(self) -> int:
        """Bars that will be stepped (the last bar has no successor, see module docstring)."""
        return max(0, len(self.frame) - 1 - self.first_bar)


def collect_files(paths: Sequence[str | Path], symbol: str) -> list[Path]:
    """Archive files named by --data: files as given, folders/archive roots searched for symbol."""
    if not paths:
        raise ValueError("--data is invalid: give at least one archive file or folder")
    out: list[Path] = []
    for p in paths:
        path = Path(p).expanduser()
        if path.is_file():
            found = [path]
        elif path.is_dir():
            found = find_archive_files(path, symbol)
        else:
            raise FileNotFoundError(f"--data={str(p)!r} is invalid: no such file or directory")
        out += [f for f in found if f not in out]
    return out


def load_backtest_data(paths: Sequence[str | Path], symbol: str, date_from: str | None = None,
                       date_to: str | None = None, warmup_days: int = WARMUP_DAYS) -> BacktestData:
    """Load `symbol`'s 1m bars for a backtest over [date_from, date_to] (inclusive UTC days).

    Of what follows date_to only the first bar is kept: its open is the price at the instant
    date_to's last bar closes, which the last step needs (see the module docstring). Up to
    `warmup_days` before date_from are loaded as history the agent may look at but does not
    trade on; without date_from the test starts at the first bar and the agent warms up on the
    job, as a fresh live agent would.
    """
    symbol = str(symbol).strip().upper()
    if not symbol:
        raise ValueError("--symbol is invalid: give the symbol to test, e.g. FILUSDT")
    lo, hi = parse_day(date_from, "--from"), parse_day(date_to, "--to")
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"--from={date_from!r} is invalid: it must not be after --to={date_to!r}")
    if warmup_days < 0:
        raise ValueError(f"warmup_days={warmup_days!r} is invalid: it must be >= 0")
    files = collect_files(paths, symbol)
    load_from = None if lo is None else (lo - timedelta(days=warmup_days)).strftime("%Y-%m-%d")
    # The step at --to's last close (midnight after it) needs the next bar's open, the price at
    # that instant; load the next day and keep only that one bar of it.
    load_to = None if hi is None else (hi + timedelta(days=1)).strftime("%Y-%m-%d")
    try:
        data: ArchiveData = load_archive(files, symbol=symbol, start=load_from, end=load_to)
    except FileNotFoundError:
        # load_archive names every file it looked at; the user needs the range they can ask for
        raise ValueError(f"--from/--to {date_from or '...'}..{date_to or '...'} is invalid: "
                         f"the {symbol} files under --data cover {_file_span(files)}") from None
    frame = data.frame
    if hi is not None:
        keep = int(np.searchsorted(index_to_ms(frame.index), _ms(hi + timedelta(days=1)), side="right"))
        frame = frame.iloc[:keep]
    if frame.empty:
        raise ValueError(f"--data holds no {symbol} bars in {date_from or '...'}..{date_to or '...'}")
    open_ms = index_to_ms(frame.index)
    first = 0 if lo is None else int(np.searchsorted(open_ms, _ms(lo), side="left"))
    if first >= len(frame) - 1:
        raise ValueError(f"--from={date_from!r} is invalid: the data for {symbol} ends at "
                         f"{_iso(int(open_ms[-1]))}, leaving nothing to test")
    gaps = [g for g in data.gaps if g.start_ms <= int(open_ms[-1])]
    return BacktestData(symbol=symbol, frame=frame, gaps=gaps, files=list(data.files),
                        start_ms=int(open_ms[first]) + MINUTE_MS, first_bar=first,
                        end_ms=int(open_ms[-1]) + MINUTE_MS - 1)


def _file_span(files: Sequence[Path]) -> str:
    """'2023-08..2023-11' from archive names like FILUSDT-1m-2023-08.zip (days kept when named)."""
    periods = sorted(m.group(1) for p in files if (m := _PERIOD.search(p.name)))
    return f"{periods[0]}..{periods[-1]}" if periods else f"{len(files)} file(s) with no month in their names"


def _iso(ms: int) -> str:
    return pd.Timestamp(ms, unit="ms", tz="UTC").strftime("%Y-%m-%d %H:%M UTC")


# ----------------------------------------------------------------------------- the sequence

@dataclass
class BarSchedule:
    """The step times of a backtest or replay: every 1m close (over all symbols) that has a
    later bar in the data, from `start_ms` on (earlier bars are history)."""

    frames: Mapping[str, pd.DataFrame]
    start_ms: int | None = None          # first step time; default: the first bar's close
    times: list[int] = field(init=False)

    def __post_init__(self) -> None:
        if not self.frames:
            raise ValueError("frames is invalid: give at least one symbol's 1m bars")
        closes = []
        last_open = None
        for sym, frame in self.frames.items():
            open_ms = index_to_ms(frame.index)
            if len(open_ms) == 0:
                raise ValueError(f"frames[{sym!r}] is invalid: it has no bars")
            closes.append(open_ms + MINUTE_MS)
            last_open = int(open_ms[-1]) if last_open is None else max(last_open, int(open_ms[-1]))
        t = np.unique(np.concatenate(closes))
        t = t[t <= last_open]                       # a later bar must exist: its open is "now"
        if self.start_ms is not None:
            t = t[t >= int(self.start_ms)]
        self.times = t.tolist()

    def __len__(self) -> int:
        return len(self.times)


class BarClock:
    """Replay clock (rl.clock.Clock) that walks a BarSchedule, paced by the wall clock.

    now_ms() is the current step time. sleep(seconds) moves to the first step at or after
    now + seconds (with the agent's 60 s / 30 s: the next closed bar), having waited
    (world time) / speed of wall time since the replay began; when the agent is slower than
    that, no bar is skipped, the replay just runs behind. When no step is due before the
    data ends, the replay has finished: the clock stands at the last step, `exhausted`
    turns True and sleep returns True at once (the caller's loop ends as if stopped, and
    the runner reports the replay finished instead of waiting on a frozen clock).
    """

    def __init__(self, schedule: BarSchedule, speed: float = 60.0) -> None:
        if not (isinstance(speed, (int, float)) and speed > 0):
            raise ValueError(f"speed={speed!r} is invalid: it must be > 0")
        if len(schedule) == 0:
            raise ValueError("schedule is invalid: there is no bar to replay")
        self._times = schedule.times
        self._speed = float(speed)
        self._step = 0
        self._lock = threading.Lock()
        self._wall0 = time.monotonic()
        self._exhausted = False

    @property
    def speed(self) -> float:
        return self._speed

    @property
    def exhausted(self) -> bool:
        """True once a sleep found no step left to wait for: the replay has finished."""
        return self._exhausted

    @property
    def finished(self) -> bool:
        """True at the last step: nothing new will come."""
        return self._step >= len(self._times) - 1

    @property
    def end_ms(self) -> int:
        return self._times[-1]

    def now_ms(self) -> int:
        with self._lock:
            return self._times[self._step]

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        times = self._times
        due = times[self._step] + int(max(0.0, seconds) * 1000)
        if self.finished:
            self._exhausted = True
            return True
        nxt = bisect_left(times, due, self._step + 1)
        beyond = nxt >= len(times)          # no step is due before the data ends
        nxt = min(nxt, len(times) - 1)
        wait = self._wall0 + (times[nxt] - times[0]) / 1000.0 / self._speed - time.monotonic()
        if stop is not None:
            if stop.wait(max(0.0, wait)):
                return True
        elif wait > 0:
            time.sleep(wait)
        with self._lock:
            self._step = nxt
        if beyond:                          # the backtest would not cycle here either
            self._exhausted = True
            return True
        return False


def replay_clock(frames_1m: Mapping[str, pd.DataFrame], start_ms: int | None = None,
                 speed: float = 60.0) -> BarClock:
    """The clock for `python -m web.app --replay`: steps exactly the bars a backtest steps."""
    return BarClock(BarSchedule(frames_1m, start_ms=start_ms), speed)
