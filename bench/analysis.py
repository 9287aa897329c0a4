"""Benchmark the analysis brain: full analyze() and the incremental per-1m-bar path.

Run: python bench/analysis.py [--repeat N]   (or python -m bench.analysis)
Uses generated candles (4 timeframes x 500 closed candles), so it runs anywhere.
Prints median and p95 for: full analyze(); incremental score when no 15m candle closed;
incremental score right after a 15m close (levels rescanned; every 32nd 15m close also
closes an 8h candle, as in a real backtest, so the 8h caches are rebuilt there).

`--month SYMBOL:YYYY-MM` (with `--data`, default ../shared/data) also replays a real archive
month the way the agent's backtest drives the analyzer: every closed 1m candle pushed, every
closed 15m/8h/1w candle pushed, `score` at each 15m close; the previous month (if present)
warms the analyzer up untimed. Prints analyzer-only 1m bars/s.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:                     # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from rl.analysis.analyzer import IncrementalAnalyzer, analyze  # noqa: E402


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


_SPAN = {"15m": 900_000, "8h": 28_800_000, "1w": 604_800_000}
_WEEK_OFFSET = 4 * 86_400_000      # Binance weeks open Monday 00:00 UTC; 1970-01-01 was a Thursday


def replay_events(rows: list[tuple]) -> list[tuple]:
    """Analyzer calls for 1m rows (t, o, h, l, c, v): ("1m"|tf, candle...) pushes and
    ("score", price, time_ms) at each 15m close, in the agent's order."""
    out: list[tuple] = []
    forming: dict[str, list | None] = {}
    for t, o, h, l, c, v in rows:
        out.append(("1m", t, o, h, l, c, v))
        closed = False
        for tf, span in _SPAN.items():
            f = forming.get(tf)
            if f is None:
                off = _WEEK_OFFSET if tf == "1w" else 0
                b = (t - off) // span * span + off
                f = forming[tf] = [b, o, h, l, c, v, b + span]
            else:
                f[2], f[3], f[4], f[5] = max(f[2], h), min(f[3], l), c, f[5] + v
            if t + 60_000 >= f[6]:
                out.append((tf, *f[:6]))
                forming[tf] = None
                closed = closed or tf == "15m"
        if closed:
            out.append(("score", c, t))
    return out


def replay(inc: IncrementalAnalyzer, events: list[tuple]) -> None:
    push, score = inc.push_candle, inc.score
    for e in events:
        if e[0] == "score":
            score(e[1], e[2])
        else:
            push(*e)


def real_month(data: str, spec: str) -> None:
    from rl.market.archive import load_archive
    symbol, month = spec.split(":")
    prev = (pd.Period(month, "M") - 1).strftime("%Y-%m")
    try:
        frame = load_archive(data, symbol=symbol, start=prev, end=month).frame
    except FileNotFoundError:
        frame = load_archive(data, symbol=symbol, start=month, end=month).frame
    t = (frame.index.as_unit("ms").asi8).tolist()
    rows = list(zip(t, *(frame[k].to_numpy(float).tolist() for k in ("open", "high", "low", "close", "volume"))))
    first = int(pd.Timestamp(month + "-01", tz="UTC").value // 1_000_000)
    split = next(i for i, r in enumerate(rows) if r[0] >= first)
    events = replay_events(rows)
    cut = next(i for i, e in enumerate(events) if e[0] == "1m" and e[1] >= first)
    warm, timed = events[:cut], events[cut:]
    runs = []
    for _ in range(3):
        inc = IncrementalAnalyzer(symbol)
        replay(inc, warm)
        t0 = time.perf_counter()
        replay(inc, timed)
        runs.append(time.perf_counter() - t0)
    n, n15 = len(rows) - split, sum(1 for e in timed if e[0] == "score")
    best = min(runs)
    print(f"real month {symbol} {month} ({n} 1m bars, {n15} 15m closes, warmed on {split} bars): "
          f"best of 3 {best:.3f} s -> {n / best:,.0f} bars/s (analyzer only), "
          f"{best / n * 1e6:.1f} us per 1m bar")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=200)
    ap.add_argument("--month", help="SYMBOL:YYYY-MM, replay a real archive month (see module doc)")
    ap.add_argument("--data", default="../shared/data")
    args = ap.parse_args()
    if args.month:
        real_month(args.data, args.month)
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
