"""QBitFlow's canonical JSON: the exact bytes a webhook body is stored, sent and signed as.

Keys sorted at every level, `,`/`:` separators, UTF-8 left literal except `<`, `>`, `&`
(escaped `\\u003c`, `\\u003e`, `\\u0026` like Go's encoding/json), whole numbers without `.0`.
Non-whole numbers are written the way a float prints them, and only when a float holds them
exactly: receivers (QBitFlow's SDKs among them) parse bodies into floats and re-serialize
before checking a signature, so any other number would not survive the round trip. Amounts
therefore travel as strings; `json_number` decides for the few numbers that stay numbers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import orjson


class NotCanonical(ValueError):
    """A value canonical JSON cannot carry as a number (NaN, infinity, inexact as a float)."""


def json_number(value: Decimal | int) -> Decimal | int | str:
    """`value` as a JSON number when it survives a float round trip, else as its exact string."""
    if isinstance(value, int):
        return value
    try:
        _normalise(value)
    except NotCanonical:
        return str(value)
    return value


_PLAIN = frozenset({str, int, bool, type(None)})


def _normalise(value: Any, floats: list[bool] | None = None) -> Any:
    """`value` with whole numbers as ints and exact Decimals as floats; appends to `floats`
    when a float remains (those take the standard library's float formatting)."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    # Plain leaves are kept inline, without a call each: most of a body is strings and ints.
    if kind is dict:
        return {
            key if type(key) is str else str(key): item
            if type(item) in _PLAIN
            else _normalise(item, floats)
            for key, item in value.items()
        }
    if kind is list or kind is tuple:
        return [item if type(item) in _PLAIN else _normalise(item, floats) for item in value]
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        return str.__str__(value)  # a str subclass (an enum) as its plain text
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise NotCanonical("NaN and infinity are not JSON")
        if value.is_integer():
            return int(value)
        if floats is not None:
            floats.append(True)
        return float(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise NotCanonical("NaN and infinity are not JSON")
        if value == value.to_integral_value():
            return int(value)
        as_float = float(value)
        if Decimal(repr(as_float)) != value:
            raise NotCanonical(f"{value} is not exact as a float; send it as a string")
        if floats is not None:
            floats.append(True)
        return as_float
    if isinstance(value, Mapping):
        return {str(key): _normalise(item, floats) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalise(item, floats) for item in value]
    raise NotCanonical(f"{type(value).__name__} is not a JSON value")


def canonical_json(value: Any) -> str:
    """The canonical text of an already-decoded JSON value (floats or Decimals for numbers)."""
    floats: list[bool] = []
    normalised = _normalise(value, floats)
    rendered = None
    if not floats:  # orjson writes floats its own way (1e-7, not 1e-07); everything else alike
        try:
            rendered = orjson.dumps(normalised, option=orjson.OPT_SORT_KEYS).decode()
        except orjson.JSONEncodeError:  # integers beyond 64 bits
            rendered = None
    if rendered is None:
        rendered = json.dumps(normalised, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    # These three only ever occur inside strings in JSON text, so a plain replace is safe.
    return rendered.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
