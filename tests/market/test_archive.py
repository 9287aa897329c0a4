"""rl.market.archive: loading Binance archive files (zip/csv, header or not), continuity and gaps."""
from __future__ import annotations

import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rl.market.archive import Gap, find_gaps, load_archive
from rl.market.candles import COLUMNS

MIN = 60_000
HEADER = ("open_time,open,high,low,close,volume,close_time,quote_volume,count,"
          "taker_buy_volume,taker_buy_quote_volume,ignore")


def ms(text: str) -> int:
    return int(pd.Timestamp(text, tz="UTC").value // 1_000_000)


def rows_for(start: str, n: int, base: float = 10.0) -> list[str]:
    t0 = ms(start)
    out = []
    for i in range(n):
        p = base + i * 0.001
        out.append(f"{t0 + i * MIN},{p:.4f},{p + 0.01:.4f},{p - 0.01:.4f},{p + 0.005:.4f},"
                   f"{100 + i}.5,{t0 + i * MIN + MIN - 1},{1000 + i}.25,{i + 1},50.5,500.5,0")
    return out


def write(path: Path, lines: list[str], header: bool) -> Path:
    """Write lines as Binance does: a CSV, or a zip holding one CSV of the same name."""
    text = "\n".join(([HEADER] if header else []) + lines) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".zip":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(path.stem + ".csv", text)
    else:
        path.write_text(text)
    return path


def month_dir(root: Path, symbol: str) -> Path:
    return root / "binance" / "futures" / "um" / "monthly" / "klines" / symbol / "1m"


# --------------------------------------------------------------------------- formats

@pytest.mark.parametrize("suffix, header", [(".zip", True), (".zip", False), (".csv", True),
                                            (".csv", False)])
def test_one_file_any_format_gives_the_same_frame(tmp_path, suffix, header):
    f = write(tmp_path / f"BTCUSDT-1m-2024-01{suffix}", rows_for("2024-01-01", 90), header)
    data = load_archive(f)
    df = data.frame
    assert list(df.columns) == list(COLUMNS) and len(df) == 90
    assert df.index[0] == pd.Timestamp("2024-01-01", tz="UTC") and str(df.index.tz) == "UTC"
    assert df["open"].iloc[1] == 10.001 and df["trades"].iloc[2] == 3
    assert df["volume"].iloc[0] == 100.5 and df["close_time"].iloc[0] == ms("2024-01-01") + MIN - 1
    assert df["trades"].dtype == np.int64 and df["high"].dtype == np.float64
    assert data.gaps == [] and data.symbol == "BTCUSDT"
    assert data.start_ms == ms("2024-01-01") and data.end_ms == ms("2024-01-01 01:30") - 1


def test_root_with_symbol_and_month_range(tmp_path):
    d = month_dir(tmp_path, "FILUSDT")
    for month, n in (("2023-08", 10), ("2023-09", 20), ("2023-10", 30), ("2023-11", 40)):
        write(d / f"FILUSDT-1m-{month}.zip", rows_for(f"{month}-01", n), header=month >= "2023-10")
    write(month_dir(tmp_path, "NEARUSDT") / "NEARUSDT-1m-2023-09.zip", rows_for("2023-09-01", 5), True)

    data = load_archive(tmp_path, symbol="FILUSDT", start="2023-09", end="2023-10")
    assert [p.name for p in data.files] == ["FILUSDT-1m-2023-09.zip", "FILUSDT-1m-2023-10.zip"]
    assert len(data.frame) == 50
    assert data.frame.index.min() == pd.Timestamp("2023-09-01", tz="UTC")
    assert data.frame.index.is_monotonic_increasing
    # a month apart: the missing rest of September is one reported gap
    assert data.gaps == [Gap(ms("2023-09-01 00:20"), ms("2023-10-01"),
                             (ms("2023-10-01") - ms("2023-09-01 00:20")) // MIN)]

    assert len(load_archive(d).frame) == 100                        # the .../FILUSDT/1m folder
    assert len(load_archive(tmp_path, symbol="filusdt", start="2023-11").frame) == 40
    two = load_archive([d / "FILUSDT-1m-2023-11.zip", d / "FILUSDT-1m-2023-08.zip"])
    assert two.frame.index[0] == pd.Timestamp("2023-08-01", tz="UTC")   # sorted


def test_gaps_are_reported_not_filled(tmp_path):
    lines = rows_for("2024-03-04", 60)
    kept = lines[:10] + lines[13:40] + lines[41:]          # holes: bars 10..12 and bar 40
    data = load_archive(write(tmp_path / "ETHUSDT-1m-2024-03.csv", kept, header=True))
    t0 = ms("2024-03-04")
    assert data.gaps == [Gap(t0 + 10 * MIN, t0 + 13 * MIN, 3), Gap(t0 + 40 * MIN, t0 + 41 * MIN, 1)]
    assert len(data.frame) == 56
    assert find_gaps(np.array([0, MIN, 2 * MIN], dtype=np.int64), "1m") == []


def test_exact_duplicates_dropped_conflicts_rejected(tmp_path):
    lines = rows_for("2024-03-01", 30)
    a = write(tmp_path / "a" / "XUSDT-1m-2024-03.csv", lines[:20], header=True)
    b = write(tmp_path / "b" / "XUSDT-1m-2024-03.zip", lines[10:][::-1], header=False)  # unsorted
    data = load_archive([a, b])
    assert len(data.frame) == 30 and data.duplicates_dropped == 10 and data.gaps == []
    assert data.frame.index.is_monotonic_increasing

    changed = lines[15].replace(",1015.25,", ",9999.0,")
    c = write(tmp_path / "c" / "XUSDT-1m-2024-03.csv", [changed], header=False)
    with pytest.raises(ValueError, match="two different rows for open_time"):
        load_archive([a, c])


def test_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_archive(tmp_path / "nope")
    d = month_dir(tmp_path, "AUSDT")
    write(d / "AUSDT-1m-2024-01.zip", rows_for("2024-01-01", 3), True)
    write(d / "BUSDT-1m-2024-01.zip", rows_for("2024-01-01", 3), True)
    with pytest.raises(ValueError, match="several symbols .*AUSDT, BUSDT.*symbol="):
        load_archive(d)
    with pytest.raises(FileNotFoundError, match="symbols there: AUSDT"):
        load_archive(tmp_path)
    with pytest.raises(ValueError, match="start='2024/01' is invalid"):
        load_archive(tmp_path, symbol="AUSDT", start="2024/01")
    with pytest.raises(ValueError, match="must not be after"):
        load_archive(tmp_path, symbol="AUSDT", start="2024-02", end="2024-01")
    with pytest.raises(FileNotFoundError, match="no archive files for AUSDT 1m in 2025-01"):
        load_archive(tmp_path, symbol="AUSDT", start="2025-01", end="2025-02")
    bad = rows_for("2024-01-01", 3)
    bad[1] = bad[1].replace(str(ms("2024-01-01") + MIN), str(ms("2024-01-01") + MIN + 7), 1)
    with pytest.raises(ValueError, match="not on a 1m boundary"):
        load_archive(write(tmp_path / "CUSDT-1m-2024-01.csv", bad, True))
    junk = tmp_path / "DUSDT-1m-2024-01.csv"
    junk.write_text("open_time,open\nhello,world\n")
    with pytest.raises(ValueError, match="has 12 columns .*this one has 2"):
        load_archive(junk)
    junk.write_text(HEADER + "\n" + ",".join(["x"] * 12) + "\n")
    with pytest.raises(ValueError, match="not a Binance kline CSV"):
        load_archive(junk)


# --------------------------------------------------------------------------- real data

@pytest.mark.shared_data
def test_real_archive_two_months(shared_data_dir):
    started = time.perf_counter()
    data = load_archive(shared_data_dir, symbol="FILUSDT", start="2023-09", end="2023-10")
    elapsed = time.perf_counter() - started
    print(f"loaded {len(data.frame)} FILUSDT 1m bars in {elapsed * 1000:.0f} ms")
    df = data.frame
    assert len(df) == (30 + 31) * 24 * 60 and data.gaps == []
    assert df.index[0] == pd.Timestamp("2023-09-01", tz="UTC")
    assert df.index[-1] == pd.Timestamp("2023-10-31 23:59", tz="UTC")
    assert (np.diff(df.index.asi8) == MIN * 1_000_000).all()
    assert (df["high"] >= df[["open", "close"]].max(axis=1)).all()
    assert (df["low"] <= df[["open", "close"]].min(axis=1)).all()


@pytest.mark.shared_data
def test_real_archive_folder_all_months(shared_data_dir):
    folder = shared_data_dir / "binance/futures/um/monthly/klines/NEARUSDT/1m"
    data = load_archive(folder)
    assert data.symbol == "NEARUSDT" and len(data.frame) == 132_480 and data.gaps == []


def test_eleven_column_crlf_export_is_accepted(tmp_path):
    lines = [",".join(r.split(",")[:11]) for r in rows_for("2024-01-01", 4)]
    f = tmp_path / "XUSDT-1m-2024-01.csv"
    f.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    df = load_archive(f).frame
    assert len(df) == 4 and df["taker_buy_quote_volume"].iloc[0] == 500.5


def test_header_and_long_first_row_beyond_200_bytes(tmp_path) -> None:
    from rl.market.archive import read_archive_file
    header = ("open_time,open,high,low,close,volume,close_time,quote_volume,count,"
              "taker_buy_volume,taker_buy_quote_volume,ignore")
    row = ("1693526400000,4.12345678901234567,4.12345678901234567,4.12345678901234567,"
           "4.12345678901234567,12345.123456789012345,1693526459999,50901.1234567890123456,"
           "57,6012.12345678901234,24781.1234567890123456,0")
    assert len(header) + len(row) > 200
    f = tmp_path / "X-1m-2023-09.csv"
    f.write_text(header + "\n" + row + "\n", encoding="utf-8")
    cols = read_archive_file(f)
    assert cols["open_time"][0] == 1693526400000
    assert abs(cols["close"][0] - 4.123456789012346) < 1e-12
