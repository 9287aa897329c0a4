"""web.inputs: the one strict parser of what the API receives (no HTTP here).

Python's own int()/float()/json accept what a trading API must refuse: "1_000" is 1000,
"١٠" (Arabic-Indic) is 10, " 10 " is 10, "NaN" is a float, "ﬁlusdt".upper() is "FILUSDT",
and json.loads recurses until it raises RecursionError. Each case below is one of those.
"""
from __future__ import annotations

import json

import pytest

from web.inputs import (
    MAX_BODY_BYTES,
    InputError,
    check_fields,
    json_depth,
    parse_choice,
    parse_client_id,
    parse_int,
    parse_json_object,
    parse_number,
    parse_symbol,
)


@pytest.mark.parametrize("raw,value", [
    ("250", 250.0), ("0.5", 0.5), (".5", 0.5), ("5.", 5.0), ("1e-3", 0.001), ("1E3", 1000.0),
    (0.001, 0.001), (7, 7.0), ("1e15", 1e15), ("1e-12", 1e-12),
])
def test_number_accepts_plain_decimals_and_json_numbers(raw, value):
    assert parse_number("quantity", raw, required=True) == value


@pytest.mark.parametrize("raw", [
    "1_000", "١٠", "１０", "10\u200b", " 10", "10 ", "\t5", "5\n", "1,5", "1.2.3", "0x10", "+5",
    "-1", "0", "-0", "0.0", "NaN", "nan", "Infinity", "inf", "1e400", "1e-400", "1e16", "1e28",
    1e28, 10**30, -1, 0, 0.0, float("nan"), float("inf"), 1e-300, True, False, [], {}, [1],
    "9" * 33, "0." + "0" * 40 + "1", "½", "五",
])
def test_number_refuses_what_python_would_read(raw):
    with pytest.raises(InputError) as info:
        parse_number("quantity", raw, required=True)
    assert info.value.field == "quantity" and "ASCII digits" in info.value.rule
    assert str(info.value).startswith("quantity=") and info.value.status == 400


def test_number_absent_is_required_or_none():
    with pytest.raises(InputError, match=r"^price is invalid: it is required"):
        parse_number("price", None, required=True)
    assert parse_number("price", "", required=False) is None


def test_refused_value_is_shown_cut_short():
    with pytest.raises(InputError) as info:
        parse_number("quantity", "7" * 5000, required=True)
    assert len(str(info.value)) < 200


@pytest.mark.parametrize("raw", ["1_0", "٣", "５", " 5", "5 ", "5\n", "+5", "1e3", "0x1f", "5.0",
                                 "-1", "0", "2001", "9" * 30])
def test_int_is_ascii_digits_in_range(raw):
    with pytest.raises(InputError) as info:
        parse_int("limit", raw, lo=1, hi=2000)
    assert info.value.rule == "it must be an integer 1..2000 in ASCII digits"


def test_int_default_and_edges():
    assert parse_int("limit", None, lo=1, hi=10, default=3) == 3
    assert parse_int("limit", "", lo=1, hi=10, default=3) == 3
    assert parse_int("limit", "10", lo=1, hi=10) == 10
    assert parse_int("id", str(2**63 - 1), lo=1, hi=2**63 - 1) == 2**63 - 1
    with pytest.raises(InputError):
        parse_int("id", str(2**63), lo=1, hi=2**63 - 1)


@pytest.mark.parametrize("raw", [
    "ﬁlusdt",             # the ligature: "ﬁlusdt".upper() == "FILUSDT"
    "ＦＩＬＵＳＤＴ", "FİLUSDT", "FILUSDT\n", " FILUSDT", "FIL USDT", "FIL-USDT", "../etc",
    "FILUSDT\x00", "fil\u200busdt", "A", "X" * 31, 123, ["FILUSDT"],
])
def test_symbol_is_ascii_letters_and_digits(raw):
    with pytest.raises(InputError) as info:
        parse_symbol("symbol", raw)
    assert info.value.field == "symbol" and "ASCII" in info.value.rule


def test_symbol_any_case_returned_upper():
    assert parse_symbol("symbol", "filUSDT") == "FILUSDT"
    with pytest.raises(InputError, match="required"):
        parse_symbol("symbol", "")


def test_choice_folds_ascii_case_only():
    assert parse_choice("side", "buy", ("BUY", "SELL")) == "BUY"
    assert parse_choice("type", None, ("MARKET", "LIMIT"), default="MARKET") == "MARKET"
    for raw in ("ＢＵＹ", "BUY ", "buyı", 1, "HOLD"):
        with pytest.raises(InputError, match=r"one of BUY, SELL"):
            parse_choice("side", raw, ("BUY", "SELL"))
    with pytest.raises(InputError):           # "1M" is a month, "1m" a minute: never folded
        parse_choice("interval", "1M", ("1m",), fold_case=False)


def test_client_id_is_binances_alphabet_whole_string():
    assert parse_client_id("clientOrderId", "web-0123abcd") == "web-0123abcd"
    assert parse_client_id("clientOrderId", None) is None
    for raw in ("a" * 37, "web-1\n", "web 1", "wéb", "web#1", 12, ["x"]):
        with pytest.raises(InputError) as info:
            parse_client_id("clientOrderId", raw)
        assert info.value.field == "clientOrderId"


def test_json_depth_ignores_brackets_in_strings():
    assert json_depth('{"a": "[[[{{{", "b": [1, {"c": "\\"]]"}]}') == 3
    assert json_depth("[" * 50_000 + "]" * 50_000) == 50_000


@pytest.mark.parametrize("data,field,status", [
    (b"[" * 5_000 + b"]" * 5_000, "body", 400),          # json.loads: RecursionError
    (b'{"a":' * 20 + b"1" + b"}" * 20, "body", 400),
    (b"{not json", "body", 400),
    (b"\xff\xfe{}", "body", 400),
    (b'{"quantity": NaN}', "body", 400),
    (b'{"quantity": Infinity}', "body", 400),
    (b'{"quantity": 1, "quantity": 1000}', "body.'quantity'", 400),
    (b"[]", "body", 400),
    (b"null", "body", 400),
    (b'"BUY"', "body", 400),
    (b"1" * (MAX_BODY_BYTES + 1), "body", 413),
])
def test_json_body_refusals(data, field, status):
    with pytest.raises(InputError) as info:
        parse_json_object(data, is_json=True)
    assert (info.value.field, info.value.status) == (field, status)


def test_json_body_needs_json_type_and_may_be_empty():
    assert parse_json_object(b"", is_json=False) == {}
    assert parse_json_object(b'{"symbol": "FILUSDT"}', is_json=True) == {"symbol": "FILUSDT"}
    with pytest.raises(InputError, match="Content-Type"):
        parse_json_object(b"{}", is_json=False)
    assert json.loads("NaN") != json.loads("NaN")        # what the strict parser keeps out


def test_unknown_fields_are_named():
    with pytest.raises(InputError) as info:
        check_fields({"symbol": "X", "prcie": 1}, ("symbol", "price"))
    assert info.value.field == "body.'prcie'" and "symbol, price" in info.value.rule
