"""Load Binance bulk-archive kline files (data.binance.vision) into the standard kline frame.

Accepts what a trader actually has on disk: one .zip or .csv, a list of them, the folder
``.../klines/<SYMBOL>/<interval>``, or the archive root (``../shared/data``) plus a symbol and
an optional month range. Newer futures files start with a header row, older ones do not; we
peek at the first line instead of trusting the date. Rows are sorted, exact duplicates
(overlapping daily + monthly files) dropped, and continuity verified: missing bars are
reported as `Gap`s rather than silently interpolated, because a strategy must know when its
history has holes.

Speed matters (a month of 1m bars is 43,200 rows and replay loads several months), so files
are parsed by pandas' C reader with explicit dtypes, never row by row.
"""
from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import cast, overload

import numpy as np
import pandas as pd

from rl.market.candles import bucket_end, bucket_start, frame_from_arrays, validate_interval

# The 12 columns of every archive CSV (and of /fapi/v1/klines rows).
ARCHIVE_COLUMNS = ("open_time", "open", "high", "low", "close", "volume", "close_time",
                   "quote_volume", "trades", "taker_buy_volume", "taker_buy_quote_volume",
                   "ignore")
_DTYPES = {"open_time": np.int64, "close_time": np.int64, "trades": np.int64,
           **{c: np.float64 for c in ("open", "high", "low", "close", "volume", "quote_volume",
                                      "taker_buy_volume", "taker_buy_quote_volume")}}
_NAME_RE = re.compile(r"^(?P<symbol>[A-Z0-9]+)-(?P<interval>\d+[smhdwM])-(?P<year>\d{4})-"
                      r"(?P<month>\d{2})(?:-(?P<day>\d{2}))?\.(?:zip|csv)$")
_MONTH_RE = re.compile(r"^(\d{4})-(\d{2})(?:-(\d{2}))?$")
# Where the archive layout puts one symbol's files, relative to the archive root.
_LAYOUTS = ("binance/futures/um/{period}/klines/{symbol}/{interval}",
            "futures/um/{period}/klines/{symbol}/{interval}",
            "klines/{symbol}/{interval}", "{symbol}/{interval}", "{symbol}")


@dataclass(frozen=True)
class Gap:
    """Missing bars: opens from start_ms (first missing) up to end_ms (next present, exclusive)."""

    start_ms: int
    end_ms: int
    missing_bars: int


@dataclass(frozen=True)
class ArchiveData:
    """A loaded archive: the kline frame, its gaps and where it came from."""

    frame: pd.DataFrame
    gaps: list[Gap]
    files: list[Path]
    symbol: str | None
    interval: str
    duplicates_dropped: int = 0

    @property
    def start_ms(self) -> int:
        """Open time of the first bar (ValueError when empty)."""
        if self.frame.empty:
            raise ValueError("archive is empty: no bars to take a start time from")
        return int(self.frame.index[0].value // 1_000_000)

    @property
    def end_ms(self) -> int:
        """Close time of the last bar."""
        if self.frame.empty:
            raise ValueError("archive is empty: no bars to take an end time from")
        return int(self.frame["close_time"].iloc[-1])


# ----------------------------------------------------------------------------- parsing

@overload
def _month_bound(value: str, field_name: str, end: bool) -> int: ...
@overload
def _month_bound(value: None, field_name: str, end: bool) -> None: ...
@overload
def _month_bound(value: str | None, field_name: str, end: bool) -> int | None: ...
def _month_bound(value: str | None, field_name: str, end: bool) -> int | None:
    """'YYYY-MM' or 'YYYY-MM-DD' -> ms; for `end` the bound is exclusive (next month / day)."""
    if value is None:
        return None
    m = _MONTH_RE.match(str(value).strip())
    if not m:
        raise ValueError(f"{field_name}={value!r} is invalid: use YYYY-MM (or YYYY-MM-DD)")
    year, month, day = int(m.group(1)), int(m.group(2)), m.group(3)
    try:
        ts = pd.Timestamp(datetime(year, month, int(day) if day else 1, tzinfo=UTC))
    except ValueError:
        raise ValueError(f"{field_name}={value!r} is invalid: no such date") from None
    if end:
        ts = ts + (pd.Timedelta(days=1) if day else pd.offsets.MonthBegin(1))
    return int(ts.value // 1_000_000)


def _read_bytes(path: Path) -> bytes:
    if path.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(path) as zf:
                members = [n for n in zf.namelist() if n.lower().endswith(".csv")]
                if len(members) != 1:
                    raise ValueError(f"{path} is invalid: a Binance archive zip holds exactly one "
                                     f"CSV, found {len(members)}")
                return zf.read(members[0])
        except zipfile.BadZipFile as exc:
            raise ValueError(f"{path} is invalid: not a readable zip ({exc}); delete it and "
                             "download it again") from None
    return path.read_bytes()


def read_archive_file(path: str | Path) -> dict[str, np.ndarray]:
    """Parse one archive CSV/zip into column arrays (header row detected, times in ms)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"archive file {path} does not exist")
    raw = _read_bytes(path)
    first = raw.lstrip()[:1]
    if not first:
        return {c: np.empty(0, _DTYPES.get(c, np.float64)) for c in ARCHIVE_COLUMNS[:-1]}
    has_header = not (first.isdigit() or first == b"-")
    # the header and the first data row, whole, however long their decimals are
    lines = raw.lstrip().split(b"\n", 2)[:2]
    sample = lines[1] if has_header and len(lines) > 1 else lines[0]
    ncols = min(len(sample.split(b",")), len(ARCHIVE_COLUMNS))   # some exports drop "ignore"
    if ncols < 11:
        raise ValueError(f"{path} is invalid: a Binance kline CSV has 12 columns "
                         f"(open_time..ignore), this one has {ncols}")
    try:
        df = pd.read_csv(io.BytesIO(raw), header=None, skiprows=1 if has_header else 0,
                         names=list(ARCHIVE_COLUMNS[:ncols]), usecols=range(11), dtype=_DTYPES,
                         engine="c")
    except (ValueError, pd.errors.ParserError) as exc:
        raise ValueError(f"{path} is invalid: not a Binance kline CSV with 12 numeric columns "
                         f"({exc})") from None
    out = {c: df[c].to_numpy() for c in ARCHIVE_COLUMNS[:-1]}
    # Binance moved some archives to microsecond timestamps; normalise to ms.
    for col in ("open_time", "close_time"):
        if len(out[col]) and out[col][0] > 10**14:
            out[col] = out[col] // 1000
    return out


# ----------------------------------------------------------------------------- finding files

def _parse_name(path: Path) -> re.Match | None:
    return _NAME_RE.match(path.name)


def _files_in(directory: Path, symbol: str | None, interval: str) -> list[Path]:
    out = []
    for p in sorted(directory.iterdir()):
        m = _parse_name(p)
        if p.is_file() and m and m["interval"] == interval and (symbol is None or m["symbol"] == symbol):
            out.append(p)
    return out


def find_archive_files(source: str | Path | Sequence[str | Path], symbol: str | None = None,
                       interval: str = "1m") -> list[Path]:
    """The archive files `source` designates (a file, a list of files, a folder or the root)."""
    validate_interval(interval)
    if isinstance(source, (list, tuple)):
        files = [Path(p) for p in source]
        if not files:
            raise ValueError("source is invalid: the list of archive files is empty")
        for p in files:
            if not p.is_file():
                raise FileNotFoundError(f"archive file {p} does not exist")
        return files
    path = Path(cast("str | Path", source))     # a list or tuple of files was handled above
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"archive source {path} does not exist (give a .zip/.csv file, "
                                f"a folder of them, or the archive root with a symbol)")
    found = _files_in(path, symbol, interval)
    if symbol is not None:
        for layout in _LAYOUTS:
            for period in ("monthly", "daily"):
                sub = path / layout.format(period=period, symbol=symbol, interval=interval)
                if sub.is_dir() and sub != path:
                    found += [p for p in _files_in(sub, symbol, interval) if p not in found]
    if not found:
        there = archive_symbols(path)
        hint = f"; symbols there: {', '.join(there)}" if there else ""
        what = f"{symbol} {interval}" if symbol else f"{interval} (pass symbol= for an archive root)"
        raise FileNotFoundError(f"no Binance archive files for {what} under {path}{hint}")
    symbols = sorted({m["symbol"] for p in found if (m := _parse_name(p))})
    if len(symbols) > 1:
        raise ValueError(f"source {path} holds several symbols ({', '.join(symbols)}): pass symbol=")
    return found


def archive_symbols(root: str | Path) -> list[str]:
    """Symbols with monthly kline folders under an archive root laid out as Binance's (sorted)."""
    base = Path(root) / "binance/futures/um/monthly/klines"
    return sorted(d.name for d in base.iterdir() if d.is_dir()) if base.is_dir() else []


# ----------------------------------------------------------------------------- loading

def load_archive(source: str | Path | Sequence[str | Path], symbol: str | None = None,
                 start: str | None = None, end: str | None = None,
                 interval: str = "1m") -> ArchiveData:
    """Load archive klines; `start`/`end` are inclusive months ('YYYY-MM') or days ('YYYY-MM-DD').

    Raises FileNotFoundError when nothing matches, ValueError on malformed files, misaligned
    bars or two different rows for the same open time (which would make results depend on
    which file was read last).
    """
    validate_interval(interval)
    if symbol is not None:
        symbol = symbol.strip().upper()
    lo = _month_bound(start, "start", end=False)
    hi = _month_bound(end, "end", end=True)
    if lo is not None and hi is not None and lo >= hi:
        raise ValueError(f"start={start!r} is invalid: it must not be after end={end!r}")
    files = find_archive_files(source, symbol, interval)
    for p in files:
        m = _parse_name(p)
        if m and symbol and m["symbol"] != symbol:
            raise ValueError(f"{p} is invalid: it holds {m['symbol']}, not symbol={symbol!r}")
        if m and m["interval"] != interval:
            raise ValueError(f"{p} is invalid: it holds {m['interval']} bars, not interval={interval!r}")
    if lo is not None or hi is not None:
        files = [p for p in files if _overlaps(p, lo, hi)]
        if not files:
            raise FileNotFoundError(f"no archive files for {symbol or 'the symbol'} {interval} in "
                                    f"{start or '...'}..{end or '...'} under {source}")
    if symbol is None:
        names = {m["symbol"] for m in map(_parse_name, files) if m}
        symbol = names.pop() if len(names) == 1 else None

    parts = [read_archive_file(p) for p in files]
    cols = {c: np.concatenate([part[c] for part in parts]) for c in ARCHIVE_COLUMNS[:-1]}
    open_ms = cols.pop("open_time")
    if lo is not None or hi is not None:
        keep = (open_ms >= (lo if lo is not None else np.iinfo(np.int64).min)) & \
               (open_ms < (hi if hi is not None else np.iinfo(np.int64).max))
        open_ms = open_ms[keep]
        cols = {c: a[keep] for c, a in cols.items()}
    open_ms, cols, dropped = _sort_dedupe(open_ms, cols)
    _check_alignment(open_ms, cols["close_time"], interval)
    frame = frame_from_arrays(open_ms, cols)
    return ArchiveData(frame=frame, gaps=find_gaps(open_ms, interval), files=list(files),
                       symbol=symbol, interval=interval, duplicates_dropped=dropped)


def _overlaps(path: Path, lo: int | None, hi: int | None) -> bool:
    """Does a file named for a month (or day) overlap [lo, hi)? Unnamed files always might."""
    m = _parse_name(path)
    if not m:
        return True
    first = _month_bound(f"{m['year']}-{m['month']}" + (f"-{m['day']}" if m["day"] else ""),
                         "file", end=False)
    last = _month_bound(f"{m['year']}-{m['month']}" + (f"-{m['day']}" if m["day"] else ""),
                        "file", end=True)
    return (lo is None or last > lo) and (hi is None or first < hi)


def _sort_dedupe(open_ms: np.ndarray, cols: dict[str, np.ndarray]
                 ) -> tuple[np.ndarray, dict[str, np.ndarray], int]:
    if len(open_ms) > 1 and not (np.diff(open_ms) >= 0).all():
        order = np.argsort(open_ms, kind="stable")
        open_ms = open_ms[order]
        cols = {c: a[order] for c, a in cols.items()}
    if len(open_ms) < 2:
        return open_ms, cols, 0
    same = np.flatnonzero(open_ms[1:] == open_ms[:-1])   # row same+1 repeats row same
    if len(same) == 0:
        return open_ms, cols, 0
    equal = np.ones(len(same), dtype=bool)
    for a in cols.values():
        equal &= a[same + 1] == a[same]
    if not equal.all():
        bad = int(open_ms[same[~equal][0]])
        raise ValueError(f"archive is invalid: two different rows for open_time={bad} "
                         f"({_iso(bad)}); the files disagree, remove the wrong one")
    keep = np.ones(len(open_ms), dtype=bool)
    keep[same + 1] = False
    return open_ms[keep], {c: a[keep] for c, a in cols.items()}, int(len(same))


def _check_alignment(open_ms: np.ndarray, close_ms: np.ndarray, interval: str) -> None:
    bad = np.flatnonzero(bucket_start(open_ms, interval) != open_ms)
    if len(bad):
        t = int(open_ms[bad[0]])
        raise ValueError(f"archive is invalid: open_time={t} ({_iso(t)}) is not on a {interval} "
                         f"boundary; is this really {interval} data?")
    bad = np.flatnonzero(close_ms != bucket_end(open_ms, interval))
    if len(bad):
        t = int(open_ms[bad[0]])
        raise ValueError(f"archive is invalid: close_time={int(close_ms[bad[0]])} of the bar "
                         f"opening {_iso(t)} is not open + {interval} - 1 ms")


def find_gaps(open_ms: np.ndarray, interval: str) -> list[Gap]:
    """Holes in a sorted, aligned open-time series: each run of missing bars is one Gap."""
    if len(open_ms) < 2:
        return []
    expected = np.asarray(bucket_end(open_ms[:-1], interval), dtype=np.int64) + 1
    where = np.flatnonzero(open_ms[1:] != expected)
    gaps = []
    for i in where:
        start, stop = int(expected[i]), int(open_ms[i + 1])
        if interval == "1M":
            missing = len(pd.date_range(pd.Timestamp(start, unit="ms"), pd.Timestamp(stop - 1, unit="ms"),
                                        freq="MS"))
        else:
            missing = (stop - start) // (int(expected[i]) - int(open_ms[i]))
        gaps.append(Gap(start, stop, int(missing)))
    return gaps


def _iso(ms: int) -> str:
    return pd.Timestamp(ms, unit="ms", tz="UTC").strftime("%Y-%m-%d %H:%M UTC")


def load_symbols(source: str | Path, symbols: Iterable[str], start: str | None = None,
                 end: str | None = None, interval: str = "1m") -> dict[str, ArchiveData]:
    """`load_archive` for several symbols of one archive root (what replay needs)."""
    return {s.upper(): load_archive(source, symbol=s, start=start, end=end, interval=interval)
            for s in symbols}

