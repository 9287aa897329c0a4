"""Strict parsing of everything the dashboard's API receives: one rule per kind of value.

Each parser takes the field's name and the raw value and returns the parsed value, or raises
`InputError` naming the field and the rule it broke (the API answers 400 with both). The rules
are deliberately stricter than Python's own `int()`/`float()`/`json`, which accept `"1_000"`,
Arabic-Indic digits, surrounding whitespace, `NaN`, `1e400` and JSON nested until the parser's
recursion gives out: on a trading API a typo must be refused, never read as some other number,
and no input may reach code that can only fail with a 500.

Nothing here knows Flask or the trading core, so the rules can be tested without HTTP.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, overload

from rl.errors import ValidationError

# A plain decimal in ASCII digits: "250", "0.5", ".5", "1e-3". No sign, no "_", no spaces.
_DECIMAL_SHAPE = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?")
_INTEGER_SHAPE = re.compile(r"-?[0-9]{1,20}")
_SYMBOL_SHAPE = re.compile(r"[A-Za-z0-9]{2,30}")
# Binance's newClientOrderId rule (client.CLIENT_ID_RE), matched against the whole string:
# `re.match` with `$` would let a trailing newline through.
_CLIENT_ID_SHAPE = re.compile(r"[.A-Z:/a-z0-9_-]{1,36}")

MAX_NUMBER_CHARS = 32         # "0.000000000000000000000000000001" fits; 5,000 zeros do not
MAX_NUMBER = Decimal("1e15")  # far above any Binance maxQty/maxPrice; keeps Decimal maths exact
MIN_NUMBER = Decimal("1e-12")  # far below any tick or step; "1e-400" must not become 0.0
MAX_BODY_BYTES = 16 * 1024    # an order body is ~100 bytes
MAX_JSON_DEPTH = 8            # the API's bodies are flat objects
_SHOWN_CHARS = 40             # how much of a refused value an error message repeats


class InputError(ValidationError):
    """A request value was refused: `field` and `rule` name what and why (HTTP `status`)."""

    def __init__(self, field: str, rule: str, raw: Any = None, *, shown: bool = True,
                 status: int = 400) -> None:
        value = f"={_shown(raw)}" if shown else ""
        super().__init__(f"{field}{value} is invalid: {rule}")
        self.field = field
        self.rule = rule
        self.status = status


def _shown(raw: Any) -> str:
    """The refused value as the message repeats it: repr, cut short (a 1 MB value stays out)."""
    text = repr(raw)
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "...'"


# ---------------------------------------------------------------------------- numbers
def parse_number(field: str, raw: Any, *, required: bool) -> float | None:
    """A number from MIN_NUMBER to MAX_NUMBER, from a JSON number or a plain ASCII decimal string.

    None or "" is "absent": an InputError when `required`, else None.
    """
    rule = "it must be a number from 1e-12 to 1e15 in ASCII digits, like 0.5"
    if raw is None or raw == "":
        if required:
            raise InputError(field, f"it is required: {rule.removeprefix('it must be ')}",
                             shown=False)
        return None
    if isinstance(raw, bool):                   # JSON true/false: bool is an int in Python
        raise InputError(field, rule, raw)
    if isinstance(raw, int):
        value = Decimal(raw)
    elif isinstance(raw, float):
        if not math.isfinite(raw):
            raise InputError(field, rule, raw)
        value = Decimal(repr(raw))
    elif isinstance(raw, str):
        if len(raw) > MAX_NUMBER_CHARS or not _DECIMAL_SHAPE.fullmatch(raw):
            raise InputError(field, rule, raw)
        value = Decimal(raw)
    else:
        raise InputError(field, rule, raw)
    if not (value.is_finite() and MIN_NUMBER <= value <= MAX_NUMBER):
        raise InputError(field, rule, raw)
    return float(value)


@overload
def parse_int(field: str, raw: str | None, *, lo: int, hi: int, default: int) -> int: ...
@overload
def parse_int(field: str, raw: str | None, *, lo: int, hi: int, default: None = None) -> int | None: ...
def parse_int(field: str, raw: str | None, *, lo: int, hi: int, default: int | None = None) -> int | None:
    """An integer lo..hi written in ASCII digits (an optional leading '-'); None/"" -> default."""
    if raw is None or raw == "":
        return default
    if not isinstance(raw, str) or not _INTEGER_SHAPE.fullmatch(raw) or not lo <= int(raw) <= hi:
        raise InputError(field, f"it must be an integer {lo}..{hi} in ASCII digits", raw)
    return int(raw)


# ---------------------------------------------------------------------------- words
def parse_symbol(field: str, raw: Any) -> str:
    """A symbol like BTCUSDT: 2..30 ASCII letters and digits, any case; returned upper-case."""
    if raw is None or raw == "":
        raise InputError(field, "it is required: a symbol like BTCUSDT", shown=False)
    if not isinstance(raw, str) or not _SYMBOL_SHAPE.fullmatch(raw):
        raise InputError(field, "it must be a symbol like BTCUSDT (2..30 ASCII letters and digits)",
                         raw)
    return raw.upper()


def parse_choice(field: str, raw: Any, choices: Iterable[str], *, default: str | None = None,
                 fold_case: bool = True) -> str:
    """One of `choices`; with `fold_case` the raw value may be in any case (ASCII only)."""
    options = tuple(choices)
    rule = f"it must be one of {', '.join(options)}"
    if raw is None or raw == "":
        if default is not None:
            return default
        raise InputError(field, f"it is required: one of {', '.join(options)}", shown=False)
    if not isinstance(raw, str) or not raw.isascii():
        raise InputError(field, rule, raw)
    value = raw.upper() if fold_case else raw
    if value not in options:
        raise InputError(field, rule, raw)
    return value


def parse_client_id(field: str, raw: Any) -> str | None:
    """An optional idempotency key in Binance's clientOrderId alphabet: ^[.A-Z:/a-z0-9_-]{1,36}$."""
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str) or not _CLIENT_ID_SHAPE.fullmatch(raw):
        raise InputError(field, "it must be 1..36 characters of A-Z a-z 0-9 . : / _ -", raw)
    return raw


def parse_flag(field: str, raw: Any) -> bool:
    """An optional JSON boolean (absent/null = false); "yes", 1 and the like are refused, so a
    typo never turns into a reduce-only order or away from one."""
    if raw is None:
        return False
    if not isinstance(raw, bool):
        raise InputError(field, "it must be true or false (a JSON boolean)", raw)
    return raw


# ---------------------------------------------------------------------------- bodies
def parse_json_object(data: bytes, *, is_json: bool) -> dict[str, Any]:
    """The request body as a flat JSON object; an empty body is {}.

    Refused (field "body"): a non-JSON content type, more than MAX_BODY_BYTES (413), bytes that
    are not UTF-8, nesting deeper than MAX_JSON_DEPTH (checked before parsing, so the parser's
    recursion is never the limit), NaN/Infinity, a key given twice, anything but an object.
    """
    if not data:
        return {}
    if len(data) > MAX_BODY_BYTES:
        raise InputError("body", f"it must be at most {MAX_BODY_BYTES} bytes", shown=False, status=413)
    if not is_json:
        raise InputError("body", "it must be JSON (Content-Type: application/json)", shown=False)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError("body", "it must be JSON in UTF-8", shown=False) from None
    if json_depth(text) > MAX_JSON_DEPTH:
        raise InputError("body", f"it must be a flat JSON object (nested at most {MAX_JSON_DEPTH} "
                                 "levels)", shown=False)
    try:
        body = json.loads(text, parse_constant=_no_constant, object_pairs_hook=_unique_keys)
    except _DuplicateKey as dup:
        raise InputError(f"body.{dup.key}", "it is given twice", shown=False) from None
    except ValueError:
        raise InputError("body", "it must be valid JSON", shown=False) from None
    if not isinstance(body, dict):
        raise InputError("body", "it must be a JSON object", shown=False)
    return body


def check_fields(payload: Any, allowed: Iterable[str]) -> dict[str, Any]:
    """`payload` as a JSON object whose keys are all in `allowed` (a misspelt optional field
    must not be silently ignored)."""
    if not isinstance(payload, dict):
        raise InputError("body", "it must be a JSON object", shown=False)
    known = tuple(allowed)
    for key in payload:
        if key not in known:
            raise InputError(f"body.{_shown(key)}", f"it is not a field here: the fields are "
                                                    f"{', '.join(known)}", shown=False)
    return payload


def json_depth(text: str) -> int:
    """The deepest nesting of [ and { in JSON text, outside strings (no parsing, no recursion)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = _shown(key)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
