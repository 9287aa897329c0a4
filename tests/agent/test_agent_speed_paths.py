"""The backtest speed paths give exactly what the plain paths give.

Each shortcut taken for speed (the paper exchange's trigger band, `position_amount`, bisected
`fills_since`, flat `to_dict`, the exit manager's early return, the learner's shared moments,
`json_safe`'s fast paths, the store's pre-encoded perception and entry context, the agent's
trimmed 1m prime) is compared here with the slow path it replaces, on random inputs, to
the bit: results of a backtest must not change because of them.
"""
from __future__ import annotations

import json
import math
import random
import sqlite3
from dataclasses import asdict, dataclass

import numpy as np
import pytest

import rl.paper.exchange
from rl.analysis.analyzer import IncrementalAnalyzer
from rl.execution.port import AccountSnapshot, Fill, OrderResult, PositionSnapshot, StopOrderInfo
from rl.execution.position import PositionState
from rl.knowledge.codec import Encoded, dumps, dumps_top
from rl.knowledge.schema import KnowledgeError
from rl.knowledge.store import KnowledgeStore
from rl.knowledge.thought import build_perception, json_safe
from rl.paper.exchange import PaperExchange
from rl.paper.matching import Matcher
from rl.strategy.exits import breakeven_stop, evaluate_exit
from rl.strategy.learning import feature_evidence, update_weights
from rl.strategy.params import ExitParams, LearningParams
from tests.support.candles import make_candles

SYM = "BTCUSDT"
W = {"a": 0.25, "b": 0.25, "c": 0.25, "d": 0.25}


# ----------------------------------------------------------------------------- paper exchange
class _AlwaysWalk(Matcher):
    """The reference: every bar walks the full path (no trigger-band shortcut)."""

    def trigger_band(self, symbol: str) -> tuple[float, float]:
        return (math.inf, -math.inf)


def _state(ex: PaperExchange) -> tuple:
    fills = [asdict(f) for f in ex.fills_since(SYM, 0)]
    pos = ex.position(SYM)
    return (ex.account().wallet_balance, None if pos is None else asdict(pos), fills,
            [s.to_dict() for s in ex.open_stops(SYM)], [o.to_dict() for o in ex.open_orders(SYM)])


def _random_session(matcher: type[Matcher], seed: int, monkeypatch: pytest.MonkeyPatch) -> tuple:
    """Entries, stops (moved), resting limits, take-profits, funding and a liquidation-prone
    leverage, driven by a random walk of bars and ticks, on a PaperExchange built with `matcher`."""
    rng = random.Random(seed)
    with monkeypatch.context() as m:
        m.setattr(rl.paper.exchange, "Matcher", matcher)
        ex = PaperExchange(None, balance=10_000.0, default_leverage=rng.choice([5, 20, 50, 125]),
                           funding_interval_ms=3_600_000, persist=False)
    px, t, n = 50_000.0, 0, 0
    ex.on_price(SYM, px, t)
    for _ in range(400):
        t += 60_000
        o = px
        c = max(1_000.0, px * (1 + rng.gauss(0, 0.004)))
        h = max(o, c) * (1 + abs(rng.gauss(0, 0.002)))
        lo = min(o, c) * (1 - abs(rng.gauss(0, 0.002)))
        ex.on_bar(SYM, o, h, lo, c, t)
        px = c
        if rng.random() < 0.3:
            ex.on_price(SYM, px * (1 + rng.gauss(0, 0.001)), t + 1)
        pos = ex.position(SYM)
        f = ex.filters(SYM)
        n += 1
        try:
            if pos is None and rng.random() < 0.2:
                side = rng.choice(["BUY", "SELL"])
                ex.place_order(SYM, side, "MARKET", 0.01 * rng.randint(1, 5), client_order_id=f"e{n}")
                sign = 1 if side == "BUY" else -1
                trig = f.round_price(px * (1 - sign * rng.uniform(0.002, 0.02)), "nearest")
                ex.place_stop(SYM, "SELL" if side == "BUY" else "BUY", "STOP_MARKET", trig, None, f"s{n}")
                if rng.random() < 0.5:
                    tp = f.round_price(px * (1 + sign * rng.uniform(0.002, 0.02)), "nearest")
                    ex.place_stop(SYM, "SELL" if side == "BUY" else "BUY", "TAKE_PROFIT_MARKET", tp,
                                  None, f"t{n}")
            elif pos is not None and rng.random() < 0.1:
                for s in ex.open_stops(SYM):
                    if s.type == "STOP_MARKET":
                        ex.cancel_stop(SYM, s.client_algo_id)
                sign = 1 if pos.amount > 0 else -1
                trig = f.round_price(px * (1 - sign * rng.uniform(0.001, 0.01)), "nearest")
                ex.place_stop(SYM, "SELL" if sign > 0 else "BUY", "STOP_MARKET", trig, None, f"m{n}")
            if rng.random() < 0.05:
                side = rng.choice(["BUY", "SELL"])
                lim = f.round_price(px * (1 + (-1 if side == "BUY" else 1) * rng.uniform(0.001, 0.01)),
                                    "nearest")
                ex.place_order(SYM, side, "LIMIT", 0.01, lim, "GTC", client_order_id=f"l{n}")
        except Exception:          # a reject (margin, would trigger, ...) is part of the session
            pass
    return _state(ex)


@pytest.mark.parametrize("seed", range(12))
def test_trigger_band_shortcut_changes_nothing(seed, monkeypatch):
    assert _random_session(Matcher, seed, monkeypatch) == _random_session(_AlwaysWalk, seed, monkeypatch)


def test_trigger_band_follows_every_change():
    ex = PaperExchange(None, balance=10_000.0, persist=False)
    ex.on_price(SYM, 50_000.0, 0)
    ex.place_order(SYM, "BUY", "MARKET", 0.1, client_order_id="e")
    ex.place_stop(SYM, "SELL", "STOP_MARKET", 49_000.0, None, "s1")
    ex.on_bar(SYM, 50_000.0, 50_100.0, 49_500.0, 50_000.0, 60_000)      # inside the band
    assert ex.position(SYM) is not None
    ex.place_stop(SYM, "SELL", "STOP_MARKET", 49_600.0, 0.1, "s2")       # a new, nearer stop
    ex.on_bar(SYM, 50_000.0, 50_100.0, 49_500.0, 50_000.0, 120_000)     # crosses it
    assert ex.position(SYM) is None
    assert [f.price for f in ex.fills_since(SYM, 0)][-1] == 49_600.0


def test_position_amount_is_the_snapshots_amount():
    ex = PaperExchange(None, balance=10_000.0, persist=False)
    ex.on_price(SYM, 50_000.0, 0)
    assert ex.position_amount(SYM) is None and ex.position(SYM) is None
    ex.place_order(SYM, "SELL", "MARKET", 0.03, client_order_id="e")
    assert ex.position_amount(SYM) == ex.position(SYM).amount == -0.03


def test_fills_since_bisect_equals_full_scan_and_survives_a_clock_step_back():
    now = [0]
    ex = PaperExchange(None, balance=10_000.0, persist=False, clock=lambda: now[0])
    times = [1_000, 2_000, 2_000, 5_000, 3_000, 9_000]         # 3_000 after 5_000: clock stepped back
    for i, t in enumerate(times):
        ex.on_price(SYM, 50_000.0, t)
        now[0] = t
        ex.place_order(SYM, "BUY" if i % 2 == 0 else "SELL", "MARKET", 0.01, client_order_id=f"o{i}")
        every = ex.fills_since(SYM, 0)                  # since 0: all of them, in the order made
        for since in (0, 1_000, 2_000, 2_001, 3_000, 5_000, 9_000, 10_000):
            got = ex.fills_since(SYM, since)
            assert got == [f for f in every if f.time_ms >= since]
    assert [f.time_ms for f in every] == times           # the step back is in the log


def test_flat_to_dict_equals_asdict():
    objs = [AccountSnapshot(1.0, 2.0, 3.0, 4.0, 5.0),
            OrderResult("X", "1", "c", "BUY", "LIMIT", "NEW", 1.5, 2.0, 0.0, 0.0, False, None, 7, 0.1),
            StopOrderInfo("X", "2", "s", "SELL", "STOP_MARKET", 9.5, 0.0, True, "NEW", 3),
            Fill("X", "3", "1", "BUY", 1.0, 2.0, 0.0, 0.01, True, 4)]
    for o in objs:
        assert o.to_dict() == asdict(o) and list(o.to_dict()) == list(asdict(o))
    p = PositionSnapshot("X", -1.0, 2.0, 3.0, 4.0, 5.0, 3, 1.0)
    assert p.to_dict() == {**asdict(p), "side": "SHORT"}


# ----------------------------------------------------------------------------- exit manager
def _floor(qty, step):
    """A quantity rounded down to the exchange step (the exit manager's rule)."""
    return math.floor(qty / step + 1e-9) * step if step > 0 else qty


def _evaluate_exit_reference(state, price, high, low, atr, opposite_score, rules, step, min_qty):
    """evaluate_exit as it was written before its early return (the rules, spelled out)."""
    from rl.execution.actions import CloseAll, MoveStop, PartialClose
    sign = state.sign
    if opposite_score >= rules.opposite_score_exit:
        return [CloseAll("opp")]
    favourable = high if sign > 0 else low
    be = breakeven_stop(state, 0.0005)               # evaluate_exit's default taker fee
    pays = (price - be) * sign > 0                   # a market take-profit must pay the fees (#17)
    if state.target is not None and (favourable - state.target) * sign >= 0 and pays:
        return [CloseAll("target")]
    actions = []
    best = max(state.best_price, high) if sign > 0 else min(state.best_price, low)
    stop = state.stop
    if not state.partial_exits and state.r_multiple(favourable) >= rules.partial_at_r:
        qty = _floor(state.qty * rules.partial_fraction, step)
        rest = state.qty - qty
        if qty >= max(min_qty, 1e-12) and rest >= max(min_qty, 1e-12) and pays:
            actions.append(PartialClose(qty, "p"))
        if (be - stop) * sign > 0 and pays:
            actions.append(MoveStop(be, "be"))
            stop = be
    if state.partial_exits or state.breakeven_done or actions:
        trail = best - sign * rules.trail_atr * atr
        if atr > 0 and (trail - stop) * sign > 0 and (price - trail) * sign > 0:
            actions = [a for a in actions if not isinstance(a, MoveStop)]
            actions.append(MoveStop(trail, "trail"))
    return actions


def _shape(actions):
    return [(type(a).__name__, getattr(a, "qty", None), getattr(a, "new_stop", None)) for a in actions]


def test_evaluate_exit_matches_the_rules_on_random_bars():
    rng = random.Random(3)
    rules = ExitParams()
    for _ in range(5_000):
        side = rng.choice(["LONG", "SHORT"])
        sign = 1 if side == "LONG" else -1
        entry = rng.uniform(1, 100)
        istop = entry * (1 - sign * rng.choice([0.0, rng.uniform(0.001, 0.05)]))
        st = PositionState(SYM, side, entry, qty=rng.choice([0.001, 1.0, 3.0]), initial_qty=3.0,
                           stop=istop, initial_stop=istop,
                           target=rng.choice([None, entry * (1 + sign * rng.uniform(0.01, 0.1))]),
                           breakeven_done=rng.random() < 0.2)
        if rng.random() < 0.3:
            st.partial_exits.append({"qty": 1.0})
        st.best_price = entry * (1 + sign * rng.uniform(-0.01, 0.05))
        c = entry * (1 + rng.gauss(0, 0.03))
        h, lo = c * (1 + abs(rng.gauss(0, 0.01))), c * (1 - abs(rng.gauss(0, 0.01)))
        args = (st, c, h, lo, rng.choice([0.0, rng.uniform(0, 2)]), rng.choice([0.0, 50.0, 80.0]), rules,
                rng.choice([0.0, 0.001, 1.0]), rng.choice([0.0, 0.001, 2.0]))
        assert _shape(evaluate_exit(*args)) == _shape(_evaluate_exit_reference(*args))


# ----------------------------------------------------------------------------- learning
def _pearson_reference(xs, ys):
    n = len(xs)
    if n < 2:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    if sxx <= 1e-18 * max(1.0, mx * mx) * n or syy <= 1e-18 * max(1.0, my * my) * n:
        return None
    r = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / math.sqrt(sxx * syy)
    return max(-1.0, min(1.0, r))


def _same_r(got, ref) -> bool:
    """The running (Welford) correlation equals the two-pass formula to float rounding."""
    return (got is None and ref is None) or (got is not None and ref is not None and abs(got - ref) <= 1e-12)


def test_learning_matches_the_plain_formulas():
    rng = random.Random(11)
    for _ in range(400):
        n = rng.randint(0, 80)
        samples = []
        for _ in range(n):
            vals = {f: rng.choice([rng.random(), 0.0, 1.0, None]) for f in W if rng.random() > 0.1}
            samples.append((vals, rng.choice([rng.gauss(0, 1), 0.0, -1.0])))
        ev = feature_evidence(samples, list(W))
        for f, e in ev.items():
            pairs = [(float(v[f]), float(r)) for v, r in samples if f in v and v[f] is not None]
            ref = _pearson_reference([x for x, _ in pairs], [y for _, y in pairs])
            assert _same_r(e.correlation, ref) and e.n == len(pairs)
        xs = [rng.random() for _ in range(n)]
        ys = [rng.random() for _ in range(n)]
        r = feature_evidence([({"x": x}, y) for x, y in zip(xs, ys)], ["x"])["x"].correlation
        assert _same_r(r, _pearson_reference(xs, ys))
    update_weights(W, [({"a": 1.0}, 1.0)] * 3, LearningParams(min_trades=2))     # runs end to end


def test_learning_names_the_first_bad_sample():
    samples = [({"a": 1.0}, 1.0), ({"a": 2.0}, 1.0), ({"a": 2.0}, float("inf"))]
    with pytest.raises(ValueError, match=r"samples\[2\] feature 'a'"):
        feature_evidence(samples, ["a"])


# ----------------------------------------------------------------------------- thought chains
def _num(x):
    """JSON-safe number: numpy scalars to float, NaN/inf to None."""
    if x is None or isinstance(x, (bool, str)):
        return x
    if hasattr(x, "item"):
        x = x.item()
    if isinstance(x, (int, float)):
        return x if isinstance(x, int) or math.isfinite(x) else None
    return x


def _clean_reference(obj):
    from collections.abc import Mapping
    if hasattr(obj, "to_dict") and not isinstance(obj, Mapping):
        obj = obj.to_dict()
    if isinstance(obj, Mapping):
        return {str(k): _clean_reference(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean_reference(v) for v in obj]
    return _num(obj)


@dataclass(frozen=True)
class _Lv:
    price: float
    features: dict

    def to_dict(self) -> dict:
        return asdict(self)


def test_clean_fast_paths_equal_the_general_rules():
    obj = {"f": 1.5, "nan": float("nan"), "inf": -math.inf, 3: "int key", "np": np.float64(2.5),
           "npnan": np.float64("nan"), "i": np.int64(7), "b": np.bool_(True), "t": (1, 2.0, None),
           "nested": {"x": [np.float32(0.5), {"y": float("nan")}]}, "lv": _Lv(1.0, {"a": np.float64(0.3)}),
           "s": "text", "none": None, "bool": False}
    for _ in range(2):                       # the second pass uses the per-type cache
        got, ref = json_safe(obj), _clean_reference(obj)
        assert json.dumps(got, sort_keys=True) == json.dumps(ref, sort_keys=True)
        assert repr(got) == repr(ref)
    p = build_perception(symbol="X", time_ms=1, price=np.float64(2.0), analysis=obj,
                         level=_Lv(1.0, {"a": 0.5}), phase={"key": "exploration"})
    assert p["level"]["features"] == {"a": 0.5} and p["price"] == 2.0


# ----------------------------------------------------------------------------- knowledge store
def test_encoded_values_are_written_as_the_plain_value_would_be():
    rng = random.Random(5)
    perception = {"b": [1.0, float("nan")], "a": {"z": "中文", "y": rng.random()}, "c": None}
    enc = Encoded(perception)
    intent = {"side": "LONG", "perception": enc, "time_ms": 5, "plan": {"q": 1.0}, "aa": [], "zz": {}}
    plain = {**intent, "perception": perception}
    assert dumps_top(intent) == dumps(plain)
    assert dumps({"nested": {"p": enc}}) == dumps({"nested": {"p": perception}})
    assert dumps_top({1: enc}) == dumps({1: perception})          # non-str keys: plain path
    assert dict(enc) == perception and enc["c"] is None and len(enc) == 3   # a read-only mapping
    s = KnowledgeStore(":memory:", default_weights=W)
    s.set_state("intent:X", intent, 1)
    assert s.get_state("intent:X") == json.loads(dumps(plain))


def _open(s: KnowledgeStore, cid: str, perception) -> int:
    return s.open_trade(symbol="X", side="LONG", entry_client_order_id=cid, opened_ms=1, entry_price=100.0,
                        quantity=1.0, stop_price=90.0, target_price=None, leverage=5,
                        features={"a": 0.5, "b": 1}, perception=perception, action={"side": "LONG"})


def test_open_trade_with_encoded_perception_and_entry_context():
    s = KnowledgeStore(":memory:", default_weights=W)
    perception = {"symbol": "X", "scores": {"long": 61.0}}
    t1 = _open(s, "e1", Encoded(perception))
    t2 = _open(s, "e2", perception)
    assert s.thought_chain(t1)["perception"] == s.thought_chain(t2)["perception"] == perception
    for tid in (t1, t2):
        p, a, feats = s.entry_context(tid)
        assert p == s.thought_chain(tid)["perception"] and a == s.thought_chain(tid)["action"]
        assert feats == s.features(tid)
    assert _open(s, "e1", {"other": 1}) == t1 and s.entry_context(t1)[0] == perception   # idempotent
    s.record_exit(t1, client_order_id="x1", time_ms=2, kind="stop", price=95.0, quantity=1.0, pnl=-5.0, fee=0.0)
    s.close_trade(t1, closed_ms=2, exit_reason="stop", reward={}, summary_zh="z", summary_en="e")
    assert s.entry_context(t1) is None and s.entry_context(t2) is not None
    assert s.entry_context(999) is None


def test_entry_context_is_dropped_with_a_rolled_back_open():
    s = KnowledgeStore(":memory:", default_weights=W)
    with pytest.raises(RuntimeError):
        with s.batch():
            tid = _open(s, "e1", {"symbol": "X"})
            raise RuntimeError("crash inside the transaction")
    assert s.entry_context(tid) is None and s.trade_row(tid) is None
    tid2 = _open(s, "e2", {"symbol": "Y"})               # may reuse the rolled-back id
    assert s.entry_context(tid2)[0] == {"symbol": "Y"}


def test_log_trims_only_past_the_limit():
    s = KnowledgeStore(":memory:", default_weights=W, log_limit=3)
    for i in range(3):
        s.decisions.log(i, "INFO", "X", f"中{i}", f"en{i}")
    assert s.decisions.count() == 3
    for i in range(3, 6):
        s.decisions.log(i, "INFO", "X", f"中{i}", f"en{i}")
    assert s.decisions.count() == 3 and [r["message_en"] for r in s.decisions.recent()] == ["en5", "en4", "en3"]
    with pytest.raises(KnowledgeError, match="level"):
        s.decisions.log(1, "LOUD", "X", "z", "e")


def test_log_without_its_own_transaction_still_rolls_back_and_trims_exactly(tmp_path):
    a = KnowledgeStore(tmp_path / "k.db", default_weights=W, log_limit=4)
    b = KnowledgeStore(tmp_path / "k.db", default_weights=W, log_limit=4)    # a second writer
    a.decisions.log(1, "INFO", "X", "z", "a1")
    a.decisions.log(2, "INFO", "X", "z", "a2")
    with pytest.raises(RuntimeError):
        with a.batch():
            a.decisions.log(3, "INFO", "X", "z", "rolled back")
            raise RuntimeError("crash")
    b.decisions.log(4, "INFO", "X", "z", "b1")
    b.decisions.log(5, "INFO", "X", "z", "b2")
    a.decisions.log(6, "INFO", "X", "z", "a3")          # a's next id is not the one it expects
    a.decisions.log(7, "INFO", "X", "z", "a4")
    assert [r["message_en"] for r in a.decisions.recent()] == ["a4", "a3", "b2", "b1"]
    assert a.decisions.count() == 4


# ----------------------------------------------------------------------------- agent prime
def test_prime_pushes_only_the_1m_candles_the_ring_keeps():
    """prime() gives the analyzer only the 1m candles its ring keeps, yet the forming 15m
    candle is still started from all of its minutes in the history: the candle step()
    completes equals the market port's, bit for bit."""
    from config import Settings
    from rl.agent.agent import TradingAgent
    from rl.analysis.levels.finder import DEFAULT_WEIGHTS
    from rl.clock import ManualClock
    from rl.market.candles import index_to_ms, resample

    bars = make_candles(3_015, start="2024-01-01", freq="1min")
    m1 = bars.iloc[:3_007]                   # the 15m candle forming at the end has 7 minutes
    m15 = make_candles(300, start="2023-12-29", freq="15min", seed=3)
    t = int(m1.index[-1].value // 1_000_000) + 60_000
    full = IncrementalAnalyzer(SYM, max_bars=500)
    full.update({"1m": m1, "15m": m15}, float(m1["close"].iloc[-1]), t)
    made: list[IncrementalAnalyzer] = []
    agent = TradingAgent(Settings(db_path=":memory:"), None, PaperExchange(None, persist=False),
                         KnowledgeStore(":memory:", default_weights=DEFAULT_WEIGHTS), ManualClock(t),
                         symbols=[SYM], analyzer_factory=lambda s, w: made.append(
                             IncrementalAnalyzer(s, w, max_bars=500)) or made[-1])
    agent.prime(SYM, {"1m": m1, "15m": m15}, float(m1["close"].iloc[-1]), t)
    mine, = made
    for name in ("t", "o", "h", "l", "c", "v"):
        assert np.array_equal(getattr(mine.rings["1m"].bars(), name), getattr(full.rings["1m"].bars(), name))
    a, b = mine.score(100.0, t), full.score(100.0, t)
    assert dict(a.indicators["1m"]) == pytest.approx(dict(b.indicators["1m"]), nan_ok=True)
    assert repr(dict(a.indicators["1m"])) == repr(dict(b.indicators["1m"]))
    rest = bars.iloc[3_007:]
    for ts, row in zip(index_to_ms(rest.index).tolist(),
                       rest[["open", "high", "low", "close", "volume"]].itertuples(index=False)):
        agent.step(ts + 60_000, {SYM: (ts, *row)})
    got = mine.rings["15m"].bars()
    want = resample(bars, "15m").iloc[-1]
    assert int(got.t[-1]) == int(index_to_ms(resample(bars, "15m").index)[-1])
    assert (got.o[-1], got.h[-1], got.l[-1], got.c[-1], got.v[-1]) == tuple(
        float(want[k]) for k in ("open", "high", "low", "close", "volume"))
    assert [getattr(mine.rings["1m"].bars(), k)[-1] for k in "tc"] == [int(index_to_ms(bars.index)[-1]),
                                                                        float(bars["close"].iloc[-1])]


# ----------------------------------------------------------------------------- indicator loops
def _seeded_reference(x, period, alpha):
    """The textbook loop _seeded_recursion replaced (np.mean seed, one multiply-add a value)."""
    out = np.full(len(x), np.nan)
    ok = np.flatnonzero(~np.isnan(x))
    f = int(ok[0]) if len(ok) else len(x)
    if len(x) - f < period:
        return out
    y = float(np.mean(x[f:f + period]))
    out[f + period - 1] = y
    for i in range(f + period, len(x)):
        y = alpha * float(x[i]) + (1.0 - alpha) * y
        out[i] = y
    return out


def _kdj_reference(h, l, c, n, m1, m2):
    from numpy.lib.stride_tricks import sliding_window_view
    k_out, d_out = np.full(len(c), np.nan), np.full(len(c), np.nan)
    if len(c) < n:
        return k_out, d_out, 3.0 * k_out - 2.0 * d_out
    hh, ll = np.max(sliding_window_view(h, n), axis=1), np.min(sliding_window_view(l, n), axis=1)
    rng_ = hh - ll
    with np.errstate(divide="ignore", invalid="ignore"):
        rsv = np.where(rng_ > 0, (c[n - 1:] - ll) / rng_ * 100.0, 50.0)
    rsv[np.isnan(hh)] = np.nan
    kv = dv = 50.0
    for i, r in enumerate(rsv.tolist()):
        kv = ((m1 - 1) * kv + r) / m1
        dv = ((m2 - 1) * dv + kv) / m2
        k_out[n - 1 + i], d_out[n - 1 + i] = kv, dv
    return k_out, d_out, 3.0 * k_out - 2.0 * d_out


def _bits(a) -> bytes:
    return np.ascontiguousarray(np.asarray(a, dtype=np.float64)).tobytes()


def test_indicator_loops_are_bit_identical_to_the_textbook_loops():
    from rl.analysis import indicators as ind
    rng = np.random.default_rng(21)
    for trial in range(300):
        n = int(rng.integers(0, 90))
        c = 100 + np.cumsum(rng.normal(size=n)) * rng.choice([1e-3, 1.0, 50.0])
        h, l = c + rng.random(n), c - rng.random(n)
        if trial % 4 == 0 and n:
            c[: int(rng.integers(0, n))] = np.nan          # leading NaNs (MACD's signal line)
        if trial % 6 == 0 and n:
            h[int(rng.integers(0, n))] = np.nan            # a NaN inside the KDJ windows
        if trial % 9 == 0:
            h, l = c.copy(), c.copy()                      # zero range: RSV 50
        p = int(rng.integers(1, 25))
        alpha = float(rng.choice([2.0 / (p + 1), 1.0 / p]))       # EMA's, or Wilder's RMA's
        smooth = ind.ema if alpha == 2.0 / (p + 1) else ind.rma
        assert _bits(smooth(c, p)) == _bits(_seeded_reference(c, p, alpha))
        kn, m1, m2 = int(rng.integers(1, 12)), int(rng.integers(1, 5)), int(rng.integers(1, 5))
        for got, ref in zip(ind.kdj(h, l, c, kn, m1, m2), _kdj_reference(h, l, c, kn, m1, m2)):
            assert _bits(got) == _bits(ref)


# ----------------------------------------------------------------------------- position JSON
def test_saved_position_json_equals_a_plain_encoding(tmp_path):
    s = KnowledgeStore(tmp_path / "k.db", default_weights=W)
    saved = sqlite3.connect(tmp_path / "k.db")          # reads the text the store committed
    tid = _open(s, "e-pos", {"p": 1})
    st = PositionState(symbol="X", side="LONG", entry_price=100.0, qty=1.0, initial_qty=1.0,
                       stop=90.0, initial_stop=90.0, trade_id=tid)
    from rl.agent.journal import state_copy
    rng = random.Random(4)
    for i in range(40):
        if rng.random() < 0.6:
            st.exit_reasons.append(f"stop → {90 + i}: trailing \"{i}\"\n")
            st.exit_reasons_zh.append(f"止损 → {90 + i}：移动止损")
        if rng.random() < 0.1:
            st.partial_exits.append({"qty": 0.5, "price": 101.0 + i, "reason": "tp", "time_ms": i})
        pos = state_copy(st)
        s.update_trade(tid, stop_price=90.0 + i, position=pos)
        row = saved.execute("SELECT position_json FROM trades WHERE id=?", (tid,)).fetchone()[0]
        assert row == dumps(pos)
    # a rebuilt list of reasons and a value holding NUL characters encode as the plain value too
    st.exit_reasons = ["other", "\x00list:exit_reasons\x00"]
    pos = {**state_copy(st), "note": "\x00list:exit_reasons\x00"}
    s.record_exit(tid, client_order_id="x1", time_ms=5, kind="partial", price=101.0, quantity=0.5,
                  pnl=0.5, fee=0.01, position=pos)
    assert saved.execute("SELECT position_json FROM trades WHERE id=?", (tid,)).fetchone()[0] == dumps(pos)
    assert s.trade_row(tid)["position"] == json.loads(dumps(pos))
    saved.close()
    s.close()


def test_learning_when_every_trade_has_every_feature_equals_the_reference():
    rng = random.Random(12)
    for _ in range(200):
        n = rng.randint(0, 60)
        samples = [({f: rng.choice([rng.random(), 0.0, 1, 2.5]) for f in W}, rng.choice([rng.gauss(0, 1), 0.0, -1]))
                   for _ in range(n)]
        ev = feature_evidence(samples, list(W))
        for f, e in ev.items():
            xs, ys = [float(v[f]) for v, _ in samples], [float(r) for _, r in samples]
            assert _same_r(e.correlation, _pearson_reference(xs, ys)) and e.n == n
            wins = [x for x, y in zip(xs, ys) if y > 0]
            assert repr(e.mean_when_win) == repr(sum(wins) / len(wins) if wins else None)
    bad = [({"a": 1.0, "b": 1.0}, 1.0), ({"a": float("nan"), "b": 1.0}, 1.0)]
    with pytest.raises(ValueError, match=r"samples\[1\] feature 'a'"):
        feature_evidence(bad, ["b", "a"])


def test_trade_row_without_position_is_the_row_minus_the_position():
    s = KnowledgeStore(":memory:", default_weights=W)
    tid = _open(s, "e-row", {"p": 1})
    s.update_trade(tid, position={"exit_reasons": ["a", "b"], "qty": 1.0})
    full, lean = s.trade_row(tid), s.trade_row(tid, with_position=False)
    assert full["position"] == {"exit_reasons": ["a", "b"], "qty": 1.0}
    assert lean == {k: v for k, v in full.items() if k != "position"}
    assert s.trade_row(tid + 1, with_position=False) is None


def test_holding_quietly_only_where_no_rule_acts():
    """The agent skips its exit work on bars `holding_quietly` accepts: on those the rules
    must propose nothing, and it must accept the common quiet bar (before 1R)."""
    from rl.strategy.exits import holding_quietly
    rng = random.Random(5)
    rules = ExitParams()
    quiet = 0
    for _ in range(5_000):
        side = rng.choice(["LONG", "SHORT"])
        sign = 1 if side == "LONG" else -1
        entry = rng.uniform(1, 100)
        istop = entry * (1 - sign * rng.choice([0.0, rng.uniform(0.001, 0.05)]))
        st = PositionState(SYM, side, entry, qty=3.0, initial_qty=3.0, stop=istop, initial_stop=istop,
                           target=rng.choice([None, entry * (1 + sign * rng.uniform(0.01, 0.1))]),
                           breakeven_done=rng.random() < 0.2)
        if rng.random() < 0.2:
            st.partial_exits.append({"qty": 1.0})
        st.best_price = entry
        c = entry * (1 + rng.gauss(0, 0.02))
        h, lo = c * (1 + abs(rng.gauss(0, 0.01))), c * (1 - abs(rng.gauss(0, 0.01)))
        opp = rng.choice([0.0, 50.0, 70.0, 80.0])
        if holding_quietly(st, h, lo, opp, rules):
            quiet += 1
            assert evaluate_exit(st, c, h, lo, rng.uniform(0, 2), opp, rules, 0.001, 0.001) == []
            assert _evaluate_exit_reference(st, c, h, lo, rng.uniform(0, 2), opp, rules, 0.001, 0.001) == []
    assert quiet > 1_000
