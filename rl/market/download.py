"""Download Binance's monthly kline archives (data.binance.vision) for offline replay/backtest.

    python -m rl.data download --symbol FILUSDT --interval 1m --from 2023-08 --to 2023-11 \
        [--dest DIR] [--base-url URL]

Each month's zip is fetched with its .CHECKSUM file and verified with sha256 before it is put
in place, under the same layout as ../shared/data, so `load_archive(DEST, symbol=...)` finds it:

    DEST/binance/futures/um/monthly/klines/<SYMBOL>/<interval>/<SYMBOL>-<interval>-<YYYY>-<MM>.zip

Running it again is cheap and safe: verified files are skipped (offline, against the saved
.CHECKSUM), and an interrupted download left in `<file>.part` resumes with an HTTP Range
request instead of starting over. A file whose checksum does not match is never kept.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import requests

from config import load_settings
from rl.errors import ChecksumMismatch, DownloadError, NotPublished, SettingsError
from rl.market.candles import validate_interval

BASE_URL = "https://data.binance.vision"
ARCHIVE_PATH = "data/futures/um/monthly/klines/{symbol}/{interval}/{name}"
LOCAL_PATH = "binance/futures/um/monthly/klines/{symbol}/{interval}"
CHUNK = 1 << 16
_SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,30}$")
_MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True)
class MonthResult:
    month: str            # YYYY-MM
    path: Path
    status: str           # "downloaded" | "resumed" | "skipped"
    size: int


def parse_month(value: str, field: str) -> tuple[int, int]:
    m = _MONTH_RE.match(value.strip()) if isinstance(value, str) else None
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise ValueError(f"{field}={value!r} is invalid: use YYYY-MM, e.g. 2023-09")
    return int(m.group(1)), int(m.group(2))


def month_range(start: str, end: str) -> list[str]:
    """Inclusive list of 'YYYY-MM' from start to end."""
    y, m = parse_month(start, "--from")
    ey, em = parse_month(end, "--to")
    if (y, m) > (ey, em):
        raise ValueError(f"--from={start!r} is invalid: it must not be after --to={end!r}")
    out = []
    while (y, m) <= (ey, em):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def archive_name(symbol: str, interval: str, month: str) -> str:
    return f"{symbol}-{interval}-{month}.zip"


def archive_url(base_url: str, symbol: str, interval: str, month: str) -> str:
    name = archive_name(symbol, interval, month)
    return f"{base_url.rstrip('/')}/" + ARCHIVE_PATH.format(symbol=symbol, interval=interval, name=name)


def local_dir(dest: Path, symbol: str, interval: str) -> Path:
    return Path(dest) / LOCAL_PATH.format(symbol=symbol, interval=interval)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _parse_checksum(text: str, name: str, url: str) -> str:
    """'<sha256>  <filename>' -> the hex digest (validated)."""
    parts = text.strip().split()
    if not parts or not re.fullmatch(r"[0-9a-fA-F]{64}", parts[0]):
        raise DownloadError(f"{url} is not a checksum file (expected '<sha256>  {name}')")
    if len(parts) > 1 and parts[1].lstrip("*") != name:
        raise DownloadError(f"{url} is for {parts[1]}, not {name}")
    return parts[0].lower()


def _get(session: requests.Session, url: str, what: str, timeout: float, **kw) -> requests.Response:
    try:
        resp = session.get(url, timeout=timeout, **kw)
    except requests.RequestException as exc:
        raise DownloadError(f"{url} is unreachable: {type(exc).__name__}: {exc}. Check your "
                            "connection and run the same command again (it resumes)") from exc
    if resp.status_code == 404:
        resp.close()
        raise NotPublished(f"{what} is not published: HTTP 404 for {url}. Binance publishes a "
                           "month's file in the first days of the next month; check the symbol, "
                           "interval and month")
    return resp


def download_month(session: requests.Session, symbol: str, interval: str, month: str,
                   dest: Path, base_url: str = BASE_URL, timeout: float = 60.0,
                   progress: Callable[[int], None] | None = None) -> MonthResult:
    """Fetch, verify and place one month's zip; resumes a .part file. Raises DownloadError."""
    name = archive_name(symbol, interval, month)
    url = archive_url(base_url, symbol, interval, month)
    folder = local_dir(dest, symbol, interval)
    target = folder / name
    checksum_path = folder / (name + ".CHECKSUM")
    part = folder / (name + ".part")
    what = f"{symbol} {interval} {month}"

    # Already there and matching the checksum saved last time: nothing to do, no network.
    if target.is_file() and checksum_path.is_file():
        try:
            expected = _parse_checksum(checksum_path.read_text(), name, str(checksum_path))
            if sha256_of(target) == expected:
                return MonthResult(month, target, "skipped", target.stat().st_size)
        except DownloadError:
            pass

    resp = _get(session, url + ".CHECKSUM", what, timeout)
    if resp.status_code != 200:
        raise DownloadError(f"{what}: HTTP {resp.status_code} for {url}.CHECKSUM")
    checksum_text = resp.text
    expected = _parse_checksum(checksum_text, name, url + ".CHECKSUM")
    folder.mkdir(parents=True, exist_ok=True)
    checksum_path.write_text(checksum_text)

    if target.is_file():
        if sha256_of(target) == expected:
            return MonthResult(month, target, "skipped", target.stat().st_size)
        target.unlink()   # corrupt or replaced upstream: fetch again

    offset = part.stat().st_size if part.is_file() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    resp = _get(session, url, what, timeout, headers=headers, stream=True)
    status = "downloaded"
    with resp:
        if resp.status_code == 416:
            # Nothing more to send: the .part already holds the whole file (or is garbage).
            status = "resumed"
        elif resp.status_code == 206 and offset:
            status = "resumed"
            _stream(resp, part, "ab", progress)
        elif resp.status_code == 200:
            _stream(resp, part, "wb", progress)   # server ignored Range: start over
        else:
            raise DownloadError(f"{what}: HTTP {resp.status_code} for {url}")
    actual = sha256_of(part)
    if actual != expected:
        part.unlink()
        raise ChecksumMismatch(f"{what}: sha256 mismatch for {name}: expected {expected}, got "
                               f"{actual}. The file was not kept; run the command again to retry")
    os.replace(part, target)
    return MonthResult(month, target, status, target.stat().st_size)


def _stream(resp: requests.Response, part: Path, mode: str,
            progress: Callable[[int], None] | None) -> None:
    try:
        with open(part, mode) as fh:
            for chunk in resp.iter_content(CHUNK):
                fh.write(chunk)
                if progress:
                    progress(len(chunk))
    except requests.RequestException as exc:
        # Keep the .part: the next run resumes from where this one stopped.
        raise DownloadError(f"download of {part.name[:-5]} broke off ({type(exc).__name__}); "
                            "run the same command again to resume") from exc


def download(symbol: str, interval: str, start: str, end: str, dest: Path,
             base_url: str = BASE_URL, session: requests.Session | None = None,
             out: Callable[[str], None] = print) -> tuple[list[MonthResult], list[DownloadError]]:
    """Download every month in [start, end]; failures are collected, not fatal to the rest."""
    symbol = symbol.strip().upper()
    if not _SYMBOL_RE.match(symbol):
        raise ValueError(f"--symbol={symbol!r} is invalid: use a futures symbol such as BTCUSDT")
    validate_interval(interval, "--interval")
    months = month_range(start, end)
    session = session or requests.Session()
    done: list[MonthResult] = []
    failed: list[DownloadError] = []
    for month in months:
        try:
            with _progress_bar(f"{symbol}-{interval}-{month}") as bar:
                result = download_month(session, symbol, interval, month, Path(dest), base_url,
                                        progress=bar.update)
        except DownloadError as exc:
            failed.append(exc)
            out(f"FAILED  {exc}")
            continue
        done.append(result)
        out(f"{result.status:10s} {result.path} ({result.size:,} bytes)")
    return done, failed


def _progress_bar(desc: str):
    from tqdm import tqdm

    # Disabled automatically when stderr is not a terminal (logs, tests).
    return tqdm(desc=desc, unit="B", unit_scale=True, leave=False, disable=None, file=sys.stderr)


def _default_dest() -> Path:
    """Where the rest of the project looks for archives: BINANCE_DATA_DIR, else ../shared/data."""
    try:
        return load_settings().data_dir
    except SettingsError as exc:
        raise SystemExit(f"error: {exc} (or pass --dest DIR)") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rl.data",
                                     description="Binance USDⓈ-M futures archive tools")
    sub = parser.add_subparsers(dest="command", required=True)
    dl = sub.add_parser("download", help="download monthly kline zips from data.binance.vision")
    dl.add_argument("--symbol", required=True, help="e.g. BTCUSDT")
    dl.add_argument("--interval", default="1m", help="kline interval (default 1m)")
    dl.add_argument("--from", dest="start", required=True, metavar="YYYY-MM")
    dl.add_argument("--to", dest="end", required=True, metavar="YYYY-MM")
    dl.add_argument("--dest", type=Path, default=None,
                    help="archive root (default: BINANCE_DATA_DIR / ../shared/data)")
    dl.add_argument("--base-url", default=BASE_URL, help=f"archive host (default {BASE_URL})")
    args = parser.parse_args(argv)

    dest = args.dest if args.dest is not None else _default_dest()
    try:
        done, failed = download(args.symbol, args.interval, args.start, args.end, dest,
                                args.base_url)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(done)} month(s) ready under {local_dir(dest, args.symbol.upper(), args.interval)}"
          + (f", {len(failed)} failed" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
