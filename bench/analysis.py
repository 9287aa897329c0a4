"""Benchmark the analysis brain: full analyze() and the incremental per-1m-bar path.

Run: python -m bench.analysis [--repeat N]
Uses generated candles (4 timeframes x 500 closed candles), so it runs anywhere.
Prints median and p95 for: full analyze(); incremental score when no 15m candle closed;
incremental score right after a 15m close (levels rescanned; every 32nd 15m close also
closes an 8h candle, as in a real backtest, so the 8h caches are rebuilt there).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from rl.analysis import IncrementalAnalyzer, analyze


def candles(n: int, freq: str, seed: int, vol: float, price: float = 100.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = price * np.exp(np.cumsum(rng.normal(0, vol, n)))
    open_ = np.concatenate([[price], close[:-1]])
    spread = np.abs(rng.normal(0, vol, n)) * close
    idx = pd.date_range("2024-01-01", periods=n, freq=freq, tz="UTC", name="open_time")
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close) + spread,
                         "low": np.minimum(open_, close) - spread, "close": close,
                         "volume": rng.gamma(2.0, 50.0, n)}, index=idx)


def stats(xs: list[float]) -> str:
    a = np.asarray(xs) * 1e3
    return f"median {np.median(a):.3f} ms  p95 {np.percentile(a, 95):.3f} ms  (n={len(a)})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=200)
    args = ap.parse_args()
    frames = {"1m": candles(500, "1min", 1, 0.001), "15m": candles(500, "15min", 2, 0.004),
              "8h": candles(500, "8h", 3, 0.02), "1w": candles(500, "7D", 4, 0.06)}
    price = float(frames["15m"].close.iloc[-1])
    analyze("BENCH", frames, price, 0)  # warm up imports and caches
    full = []
    for i in range(args.repeat):
        t = time.perf_counter()
        analyze("BENCH", frames, price * (1 + 1e-4 * (i % 7)), 0)
        full.append(time.perf_counter() - t)
    print("full analyze (4 tf x 500 candles): " + stats(full))

    extra = candles(15 * args.repeat + 15, "1min", 9, 0.001, price)
    extra15 = extra.resample("15min").agg({"open": "first", "high": "max", "low": "min",
                                           "close": "last", "volume": "sum"})
    base = pd.Timestamp("2030-01-01", tz="UTC").value // 1_000_000
    inc = IncrementalAnalyzer("BENCH")
    inc.update(frames, price, 0)
    o, h, l, c, v = (extra[k].to_numpy() for k in ("open", "high", "low", "close", "volume"))
    # plain floats up front: pandas row access inside the timed loop would be measured too
    g15 = list(zip(*(extra15[k].to_numpy().tolist() for k in ("open", "high", "low", "close", "volume"))))
    quiet, closing = [], []
    for i in range(len(extra) - 15):
        t = time.perf_counter()
        inc.push_candle("1m", base + i * 60_000, o[i], h[i], l[i], c[i], v[i])
        closed = (i + 1) % 15 == 0
        if closed:
            k = i // 15
            inc.push_candle("15m", base + k * 900_000, *g15[k])
            if (k + 1) % 32 == 0:                         # an 8h candle closes with this 15m one
                part = g15[k - 31:k + 1]
                inc.push_candle("8h", base + (k - 31) * 900_000, part[0][0], max(p[1] for p in part),
                                min(p[2] for p in part), part[-1][3], sum(p[4] for p in part))
        inc.score(float(c[i]), i)
        (closing if closed else quiet).append(time.perf_counter() - t)
    print("incremental, no 15m close (push 1m + score): " + stats(quiet))
    print("incremental, 15m close (rescan levels):      " + stats(closing))
    per_bar = (np.mean(quiet) * 14 + np.mean(closing)) / 15
    print(f"incremental amortised per 1m bar: {per_bar * 1e6:.1f} us -> {1 / per_bar:,.0f} bars/s (analysis only)")


if __name__ == "__main__":
    main()
