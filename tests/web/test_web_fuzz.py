"""Fuzz the REST API over a real loopback server: every malformed request gets a 4xx JSON answer.

The app is served by waitress on a free 127.0.0.1 port, built by the real app factory over the
real AgentRunner, TradingAgent, KnowledgeStore and PaperExchange (SQLite files under tmp_path)
and replayed candles, exactly as tests/web/test_web_api.py wires it. A seeded generator builds
requests in which at least one value is malformed (numbers Python would read but a trading API
must not, non-ASCII symbols, ids past SQLite's range, broken or deeply nested JSON, bodies in
other encodings or content types, repeated parameters) and sends them as raw HTTP, so nothing
in a client library tidies them up. Each answer must be 4xx, JSON with an "error" string, and
free of anything internal (exception class names, tracebacks, source paths); afterwards the
paper account must not have traded. The summary table is printed (pytest -s shows it).
"""
from __future__ import annotations

import http.client
import json
import random
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.support.browser import serve_app
from tests.web.test_web_api import SYMBOL, TOKEN, paper_app

REQUESTS = 1200
SEED = 20261202
# What must never be in an answer: exception names, traceback lines, source files, reprs.
INTERNAL = re.compile(r"[A-Za-z]+(Error|Exception)\b|Traceback|File \"|\.py\b|<class |"
                      r"decimal\.|sqlite3|DivisionImpossible|InvalidOperation")

BAD_NUMBERS: list[Any] = [
    "1_000", "١٠", "１０", "٣.٥", "10\u200b", " 10", "10 ", "\t5", "5\n", "1,5", "1.2.3", "0x10",
    "+5", "-1", "0", "-0", "0.0", "NaN", "Infinity", "-Infinity", "inf", "1e400", "1e-400",
    "1e28", "1e30", "9" * 40, "0." + "0" * 60 + "1", "½", "五", "", " ", 1e28, 1e300, 10**30,
    10**400, -1, 0, 0.0, 1e-320, True, False, [], {}, [1], {"v": 1}, "null",
]
BAD_SYMBOLS: list[Any] = [
    "ﬁlusdt", "ＦＩＬＵＳＤＴ", "FİLUSDT", "FILUSDT\n", " FILUSDT", "FILUSDT ", "FIL USDT",
    "FIL-USDT", "FIL/USDT", "FILUSDT\x00", "fil\u200busdt", "A", "X" * 31, "X" * 5000, "",
    123, None, ["FILUSDT"], {"s": "FILUSDT"}, True, "ＢＴＣＵＳＤＴ", "%46ILUSDT",
]
BAD_WORDS: list[Any] = ["ＢＵＹ", "BUY ", " SELL", "buyı", "HOLD", "STOP", "LIMIT\n", "", 1, None,
                        [], "MARKET\x00", "ᴮᵁᴺ", "B" * 1000]
BAD_IDS: list[Any] = ["web 1", "x" * 37, "web-1\n", "wéb-1", "web#1", 12, [], {}, True, "\x00"]
BAD_INTS: list[str] = ["1_0", "٣", "５", " 5", "5 ", "5\n", "+5", "1e3", "0x1f", "5.0", "-1",
                       "0", "99999999999999999999999", str(2**63), str(2**64), "½", "NaN", "٠"]
INTERVALS_BAD = ["7m", "1m ", " 1m", "１m", "1M\n", "", "m1", "15M", "1h\x00"]


def _quote(value: Any) -> str:
    return quote(str(value), safe="")


def _valid_order() -> dict[str, Any]:
    return {"symbol": SYMBOL, "side": "BUY", "type": "LIMIT", "quantity": "10", "price": "3"}


def _body_request(rnd: random.Random) -> tuple[str, str, bytes, str]:
    """A POST /api/order or /api/close whose body has one malformed part."""
    path = rnd.choice(["/api/order", "/api/order", "/api/order", "/api/close"])
    body: Any = _valid_order() if path == "/api/order" else {"symbol": SYMBOL}
    how = rnd.randrange(9)
    if how == 0 and path == "/api/order":
        body[rnd.choice(["quantity", "price"])] = rnd.choice(BAD_NUMBERS)
    elif how == 1:
        body["symbol"] = rnd.choice(BAD_SYMBOLS)
    elif how == 2 and path == "/api/order":
        body[rnd.choice(["side", "type"])] = rnd.choice(BAD_WORDS)
    elif how == 3 and path == "/api/order":
        body["clientOrderId"] = rnd.choice(BAD_IDS)
    elif how == 4:
        body[rnd.choice(["prcie", "qty", "Symbol", "symbol\x00", "reduceOnly"])] = 1
    elif how == 5:                                   # a body that is not a flat JSON object
        raw = rnd.choice([b"[" * 50_000 + b"]" * 50_000, b'{"a":' * 2000 + b"1" + b"}" * 2000,
                          b"{not json", b"[]", b"null", b'"text"', b"123", b"\xff\xfe\x00",
                          b'{"symbol": NaN}', b'{"symbol": "FILUSDT", "symbol": "FILUSDT"}',
                          b"{" + b'"k": 1, ' * 4000 + b'"z": 1}', json.dumps([_valid_order()]).encode(),
                          b'{"quantity": 1e999999}', b"1" * 5000])
        return "POST", path, raw, "application/json"
    elif how == 6:                                   # a valid body of the wrong content type
        return "POST", path, json.dumps(body).encode(), rnd.choice(
            ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"])
    elif how == 7:                                   # valid JSON in another encoding
        return "POST", path, json.dumps(body).encode("utf-16"), "application/json"
    else:
        body["symbol"] = rnd.choice(BAD_SYMBOLS)
        if path == "/api/order":
            body["quantity"] = rnd.choice(BAD_NUMBERS)
    return "POST", path, json.dumps(body, ensure_ascii=rnd.random() < 0.5).encode(), "application/json"


def _get_request(rnd: random.Random) -> tuple[str, str, bytes, str]:
    """A GET with one malformed path part or query parameter."""
    how = rnd.randrange(8)
    if how == 0:
        return "GET", f"/api/trades/{_quote(rnd.choice(BAD_INTS + BAD_NUMBERS))}", b"", ""
    if how == 1:
        return "GET", f"/api/trades?limit={_quote(rnd.choice(BAD_INTS + ['1001']))}", b"", ""
    if how == 2:
        param = rnd.choice(["limit", "after_id"])            # after_id=0 is valid, limit=0 not
        value = rnd.choice([v for v in BAD_INTS if param == "limit" or v != "0"])
        return "GET", f"/api/agent/logs?{param}={_quote(value)}", b"", ""
    if how == 3:                                              # no symbol: the first one, valid
        value = rnd.choice([s for s in BAD_SYMBOLS if s not in (None, "")])
        return "GET", f"/api/agent/levels?symbol={_quote(value)}", b"", ""
    if how == 4:
        sym, itv = SYMBOL, "1m"
        if rnd.random() < 0.5:
            sym = rnd.choice([s for s in BAD_SYMBOLS if s not in (None, "")])
        else:
            itv = rnd.choice(INTERVALS_BAD)
        return "GET", f"/api/klines/{_quote(sym)}/{_quote(itv)}", b"", ""
    if how == 5:
        return "GET", f"/api/klines/{SYMBOL}/1m?limit={_quote(rnd.choice(BAD_INTS + ['1501']))}", b"", ""
    if how == 6:                                      # a parameter given twice
        return "GET", rnd.choice(["/api/trades?limit=5&limit=6", "/api/agent/logs?after_id=1&after_id=2",
                                  f"/api/klines/{SYMBOL}/1m?limit=5&limit=9"]), b"", ""
    return "GET", f"/api/klines_all/{_quote(rnd.choice([s for s in BAD_SYMBOLS if s]))}", b"", ""


def _route(path: str) -> str:
    """The route a request aimed at, for the table: /api/trades/<id>, /api/klines/<s>/<i>..."""
    parts = path.split("?")[0].split("/")
    if parts[2] in ("agent",):
        return "/".join(parts[:4])
    names = {"trades": ["<id>"], "klines": ["<symbol>", "<interval>"], "klines_all": ["<symbol>"]}
    return "/".join(parts[:3] + names.get(parts[2], [])[:len(parts) - 3])


def malformed_requests(n: int, seed: int) -> Iterator[tuple[str, str, bytes, str]]:
    rnd = random.Random(seed)
    for _ in range(n):
        yield _body_request(rnd) if rnd.random() < 0.6 else _get_request(rnd)


@pytest.fixture
def served(tmp_path: Path):
    with paper_app(tmp_path) as (app, runner, _clock, _frame), serve_app(app, threads=4) as base:
        yield int(base.rsplit(":", 1)[1]), runner


def test_malformed_requests_get_4xx_json_without_internals(served):
    port, runner = served
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    table: Counter[tuple[str, int]] = Counter()
    bad: list[str] = []
    for method, path, body, ctype in malformed_requests(REQUESTS, SEED):
        headers = {"X-Dashboard-Token": TOKEN, "Host": f"127.0.0.1:{port}"}
        if ctype:
            headers["Content-Type"] = ctype
        try:
            conn.request(method, path, body=body or None, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        except (http.client.HTTPException, OSError):
            conn.close()                               # the server closed it: a fresh one
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request(method, path, body=body or None, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        table[(f"{method} {_route(path)}", resp.status)] += 1
        text = raw.decode("utf-8", "replace")
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        ok = (400 <= resp.status < 500 and resp.getheader("Content-Type", "").startswith("application/json")
              and isinstance(data, dict) and isinstance(data.get("error"), str)
              and not INTERNAL.search(text))
        if not ok:
            bad.append(f"{method} {path[:80]!r} body={body[:60]!r} -> {resp.status} {text[:200]!r}")
        if resp.getheader("Connection", "").lower() == "close":
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.close()
    print(f"\n{REQUESTS} malformed requests (seed {SEED}) against 127.0.0.1:{port}")
    print(f"{'request':<36} {'status':>6} {'count':>6}")
    for (endpoint, status), count in sorted(table.items()):
        print(f"{endpoint:<36} {status:>6} {count:>6}")
    assert not bad, f"{len(bad)} of {REQUESTS} answers were not 4xx JSON without internals:\n" + "\n".join(bad[:25])
    assert sum(table.values()) == REQUESTS
    ex = runner.exchange
    assert ex.position(SYMBOL) is None and ex.open_orders(SYMBOL) == [] and ex.fills_since(SYMBOL, 0) == []
