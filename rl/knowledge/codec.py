"""How the knowledge store writes JSON: one encoder for every JSON column, and `Encoded` for a
value written to several columns (encoded once).

The text is json.dumps(value, ensure_ascii=False, sort_keys=True), also accepting numpy scalars,
Paths and objects with to_dict(); sorted keys make the same value always give the same text.
"""
from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from collections.abc import Mapping as MappingABC
from pathlib import Path
from typing import Any


def _json_default(o: Any) -> Any:
    if hasattr(o, "to_dict"):
        return o.to_dict()
    if hasattr(o, "item"):            # numpy scalars
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


# = json.dumps(value, ensure_ascii=False, sort_keys=True, default=_json_default), without
# building a new encoder for every value written (json.dumps does for non-default options)
dumps = json.JSONEncoder(ensure_ascii=False, sort_keys=True, default=_json_default).encode


class Encoded(MappingABC):
    """A mapping together with the store's JSON text of it, encoded once for several writes:
    the agent's entry perception goes into the entry intent (`set_state`) and then into the
    thought chain (`open_trade`), and it is the bulk of both. Where a plain value is accepted
    the text written is exactly what the plain value would give; anything else sees a
    read-only mapping. Do not mutate `value` after wrapping it (the text would be stale)."""

    __slots__ = ("value", "json")

    def __init__(self, value: Mapping[str, Any]) -> None:
        self.value = dict(value)
        self.json = dumps(self.value)

    def __getitem__(self, key: str) -> Any:
        return self.value[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.value)

    def __len__(self) -> int:
        return len(self.value)

    def to_dict(self) -> dict:          # anywhere else (nested deeper) it encodes as its value
        return self.value


def dumps_top(value: Any) -> str:
    """`dumps(value)`, splicing in the text of top-level `Encoded` values of a dict with str
    keys: the encoder writes a dict as {"k": v, ...} in sorted key order with ", " and ": "
    separators, so encoding each item on its own and joining them gives the same text."""
    if (type(value) is dict and any(type(v) is Encoded for v in value.values())
            and all(type(k) is str for k in value)):
        return "{" + ", ".join(dumps(k) + ": " + (v.json if type(v) is Encoded else dumps(v))
                               for k, v in sorted(value.items(), key=lambda kv: kv[0])) + "}"
    return dumps(value)

