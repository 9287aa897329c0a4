"""Binance monthly kline zips: write generated ones, read real ones."""
from __future__ import annotations

import zipfile
from pathlib import Path

import pandas as pd

from rl.market.candles import MINUTE_MS, index_to_ms
from tests.support.candles import make_candles


def write_archive(dirpath: Path, symbol: str, month: str, n: int, start: str, seed: int = 3,
                  header: bool = True, price: float = 5.0) -> Path:
    """A Binance-layout monthly zip of generated 1m candles (a random walk from `price`)."""
    df = make_candles(n, start=start, seed=seed, price=price)
    open_ms = index_to_ms(df.index)
    lines = ["open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,"
             "taker_buy_quote_volume,ignore"] if header else []
    for t, r in zip(open_ms, df.itertuples()):
        lines.append(f"{t},{r.open:.4f},{r.high:.4f},{r.low:.4f},{r.close:.4f},{r.volume:.1f},"
                     f"{t + MINUTE_MS - 1},{r.volume * r.close:.1f},10,{r.volume / 2:.1f},"
                     f"{r.volume * r.close / 2:.1f},0")
    dirpath.mkdir(parents=True, exist_ok=True)
    path = dirpath / f"{symbol}-1m-{month}.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{symbol}-1m-{month}.csv", "\n".join(lines) + "\n")
    return path


def read_archive(path) -> pd.DataFrame:
    with zipfile.ZipFile(path) as z:
        name = z.namelist()[0]
        with z.open(name) as f:
            df = pd.read_csv(f, header=None)
    if not str(df.iloc[0, 0]).isdigit():  # newer files have a header row
        df = df.iloc[1:]
    df = df.iloc[:, :6].astype(float)
    df.columns = ["open_time", "open", "high", "low", "close", "volume"]
    df.index = pd.to_datetime(df.open_time.astype("int64"), unit="ms", utc=True).rename("open_time")
    return df.drop(columns="open_time")
