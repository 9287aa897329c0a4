"""Walk-forward folds over calendar months, and which months the archive holds per symbol.

Rolling (default): fold k trains on months [k, k + train) and tests on the `test` months right
after; the next fold moves on by `test` months, so the test windows tile the tail of the
months without overlap and their stitched equity is one continuous out-of-sample run.
Anchored (--anchored): every fold's training starts at the first month (it grows).
A month is a unit: every (symbol, month) runs on its own, the agent starting fresh from the
trial's parameters (with the 30 days before as warm-up history, rl.backtest.data), so the
parameter-free work of a month is prepared once and reused by every trial.
"""
from __future__ import annotations

import calendar
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rl.backtest.data import collect_files

_MONTH_FILE = re.compile(r"^(?P<symbol>[A-Z0-9]+)-1m-(?P<month>\d{4}-\d{2})\.(?:zip|csv)$")


@dataclass(frozen=True)
class Fold:
    """One walk-forward step: parameters chosen on `train` run on the unseen `test` months."""

    index: int                     # 1-based
    train: tuple[str, ...]         # 'YYYY-MM', in order
    test: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"index": self.index, "train": list(self.train), "test": list(self.test),
                "train_from": month_days(self.train[0])[0], "train_to": month_days(self.train[-1])[1],
                "test_from": month_days(self.test[0])[0], "test_to": month_days(self.test[-1])[1]}


def month_days(month: str) -> tuple[str, str]:
    """'2023-09' -> ('2023-09-01', '2023-09-30')."""
    y, m = (int(x) for x in month.split("-"))
    return f"{y:04d}-{m:02d}-01", f"{y:04d}-{m:02d}-{calendar.monthrange(y, m)[1]:02d}"


def make_folds(months: Sequence[str], train: int, test: int, anchored: bool = False) -> list[Fold]:
    """The folds over consecutive `months` (sorted 'YYYY-MM'); ValueError naming the flag when
    there are too few months for one fold."""
    if train < 1:
        raise ValueError(f"--train-months={train!r} is invalid: it must be >= 1")
    if test < 1:
        raise ValueError(f"--test-months={test!r} is invalid: it must be >= 1")
    ms = sorted(months)
    if len(ms) < train + test:
        raise ValueError(f"--train-months={train} --test-months={test} is invalid: the data holds "
                         f"{len(ms)} month(s) ({', '.join(ms) or 'none'}), one fold needs {train + test}")
    out: list[Fold] = []
    start = train
    while start + test <= len(ms):
        lo = 0 if anchored else start - train
        out.append(Fold(len(out) + 1, tuple(ms[lo:start]), tuple(ms[start:start + test])))
        start += test
    return out


def months_by_symbol(data: Sequence[str | Path], symbols: Sequence[str]) -> dict[str, dict[str, Path]]:
    """symbol -> {month: its monthly 1m archive file} found under `data`."""
    out: dict[str, dict[str, Path]] = {}
    for sym in symbols:
        found: dict[str, Path] = {}
        for f in collect_files(data, sym):
            m = _MONTH_FILE.match(f.name)
            if m and m["symbol"] == sym:
                found[m["month"]] = f
        out[sym] = dict(sorted(found.items()))
    return out


def consecutive(months: Sequence[str]) -> list[str]:
    """The longest run of consecutive calendar months at the end of `months` (sorted)."""
    ms = sorted(set(months))
    if not ms:
        return []
    run = [ms[-1]]
    for m in reversed(ms[:-1]):
        y, mo = (int(x) for x in run[0].split("-"))
        prev = f"{y - 1:04d}-12" if mo == 1 else f"{y:04d}-{mo - 1:02d}"
        if m != prev:
            break
        run.insert(0, m)
    return run


def sha256(path: Path) -> str:
    """Hex SHA-256 of a data file (the profile's provenance)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
